//! Criterion bench: shard writing throughput, in bytes of tokens written per
//! second (the .bin bytes: 2 per token for uint16, 4 for int32), for 64M
//! tokens in documents of 50..4000 tokens with an EOS after each, into 256 MiB
//! shards. Without fsync, so it measures the writer and the kernel's write
//! path; `benches/python/bench_shards.py` adds fsync and prints the disk's
//! own speed (dd) beside it.
//!
//! Run: `cargo bench --bench shard_write` (FASTLLM_BENCH_DIR picks the
//! directory; default the system temp dir).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::shard::{ShardWriter, WriterConfig};

const TOKENS: usize = 64 << 20;

fn corpus(vocab: u32) -> (Vec<u32>, Vec<i64>) {
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut offsets = vec![0i64];
    while (*offsets.last().unwrap() as usize) < TOKENS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 50 + (state % 3950) as i64;
        offsets.push((offsets.last().unwrap() + len).min(TOKENS as i64));
    }
    let ids = (0..TOKENS as u64)
        .map(|i| (i.wrapping_mul(2654435761) % (vocab as u64 - 1)) as u32)
        .collect();
    (ids, offsets)
}

fn bench(c: &mut Criterion) {
    let root = std::env::var_os("FASTLLM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("fastllm-shard-bench-{}", std::process::id()));
    let mut g = c.benchmark_group("shard_write");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (vocab, name) in [(50257u32, "uint16"), (128256, "int32")] {
        let (ids, offsets) = corpus(vocab);
        let item = if vocab < 65500 { 2 } else { 4 };
        let docs = offsets.len() as u64 - 1;
        g.throughput(Throughput::Bytes((TOKENS as u64 + docs) * item));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let _ = std::fs::remove_dir_all(&root);
                    let mut cfg = WriterConfig::new(&root, vocab as usize);
                    cfg.eos_id = Some(vocab - 1);
                    cfg.max_shard_bytes = 256 << 20;
                    cfg.sync = false;
                    let t = Instant::now();
                    let mut w = ShardWriter::new(cfg).unwrap();
                    w.add_documents(&ids, &offsets, "bench").unwrap();
                    w.finish().unwrap();
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, bench);
criterion_main!(benches);
