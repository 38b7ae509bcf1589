//! The rayon thread pool every batch kernel runs on.
//!
//! Its size comes from `FASTLLM_NUM_THREADS` (else the number of cores) or
//! from `set_num_threads`. A pool is tied to the process that built it:
//! after `fork()` (DataLoader workers) the child has the pool's memory but
//! none of its threads, and work sent to it would wait forever. So the pool
//! remembers its pid, and a child builds a fresh pool on first use instead.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

struct Pool {
    pid: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static REQUESTED: Mutex<Option<usize>> = Mutex::new(None);

/// Threads asked for by `set_num_threads`, else `FASTLLM_NUM_THREADS`, else
/// the number of available cores.
fn wanted_threads() -> Result<usize> {
    if let Some(n) = *REQUESTED.lock().unwrap() {
        return Ok(n);
    }
    match std::env::var("FASTLLM_NUM_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::invalid(format!(
                "FASTLLM_NUM_THREADS must be a positive integer, got {v:?}"
            ))),
        },
        Err(_) => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
    }
}

fn build(threads: usize) -> Result<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("fastllm-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::invalid(format!("cannot start {threads} threads: {e}")))
}

/// The pool for this process, built on first use (and again after a fork or
/// a `set_num_threads`).
pub fn get() -> Result<Arc<ThreadPool>> {
    let pid = std::process::id();
    let threads = wanted_threads()?;
    let mut slot = POOL.lock().unwrap();
    if let Some(p) = slot.as_ref() {
        if p.pid == pid && p.threads == threads {
            return Ok(p.pool.clone());
        }
    }
    if let Some(old) = slot.take() {
        if old.pid != pid {
            // Inherited across fork(): its worker threads do not exist here,
            // so dropping it would wait on them. Leak it instead.
            std::mem::forget(old);
        }
    }
    let pool = build(threads)?;
    *slot = Some(Pool {
        pid,
        threads,
        pool: pool.clone(),
    });
    Ok(pool)
}

/// Run `f` on the pool (inside it, rayon's parallel iterators use its threads).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(get()?.install(f))
}

/// Set the number of threads for later kernels. `0` is an error.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("num_threads must be >= 1, got 0"));
    }
    *REQUESTED.lock().unwrap() = Some(n);
    Ok(())
}

/// The number of threads the next kernel will use.
pub fn num_threads() -> Result<usize> {
    wanted_threads()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn set_and_use_threads() {
        assert!(set_num_threads(0).is_err());
        set_num_threads(3).unwrap();
        assert_eq!(num_threads().unwrap(), 3);
        let seen = install(rayon::current_num_threads).unwrap();
        assert_eq!(seen, 3);
        let total: u64 = install(|| (0..1000u64).into_par_iter().sum()).unwrap();
        assert_eq!(total, 499_500);
        set_num_threads(2).unwrap();
        assert_eq!(install(rayon::current_num_threads).unwrap(), 2);
    }
}
