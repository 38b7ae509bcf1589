//! Out-of-core band keys: sorted runs on disk and their k-way merge.
//!
//! A run holds `(band, key, doc)` records sorted ascending, in a file with a
//! magic number, a version and a record count. Merging the runs of every
//! shard streams them in one global order with a heap of one record per run,
//! so memory is one buffered reader per run, whatever the corpus size. Each
//! `(band, key)` group yields the same star edges as the in-memory mode
//! (`near.rs`): `(smallest doc, member)`. Files are written under a
//! temporary name and renamed when complete, so a crash never leaves a file
//! that looks finished.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const RUN_MAGIC: &[u8; 8] = b"FLDDRUN\0";
pub const EDGE_MAGIC: &[u8; 8] = b"FLDDEDGE";
pub const VERSION: u32 = 1;
/// magic (8) + version (4) + reserved (4) + count (8).
pub const HEADER_LEN: usize = 24;

pub type Record = (u64, u64, u64);

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Write `words` (u64, little-endian) after a header, atomically.
fn write_atomic(path: &Path, magic: &[u8; 8], count: u64, words: &[u64]) -> Result<()> {
    let tmp = tmp_name(path);
    let io = |e| Error::io(&tmp, e);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io)?);
    w.write_all(magic).map_err(io)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
    w.write_all(&0u32.to_le_bytes()).map_err(io)?;
    w.write_all(&count.to_le_bytes()).map_err(io)?;
    for x in words {
        w.write_all(&x.to_le_bytes()).map_err(io)?;
    }
    let f = w
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn read_header(path: &Path, r: &mut impl Read, magic: &[u8; 8]) -> Result<u64> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
    let what = path.display().to_string();
    if &h[..8] != magic {
        return Err(Error::format(
            what,
            "bad magic number (not a dedup file of this kind)",
        ));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
    if version != VERSION {
        return Err(Error::format(
            what,
            format!("version {version}, this build reads {VERSION}"),
        ));
    }
    Ok(u64::from_le_bytes(h[16..24].try_into().unwrap()))
}

/// Sort `records` and write them as one run at `path`.
pub fn write_run(path: &Path, records: &mut [Record]) -> Result<()> {
    records.sort_unstable();
    let words: Vec<u64> = records.iter().flat_map(|&(b, k, d)| [b, k, d]).collect();
    write_atomic(path, RUN_MAGIC, records.len() as u64, &words)
}

struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut r = BufReader::with_capacity(1 << 16, f);
        let left = read_header(path, &mut r, RUN_MAGIC)?;
        if len != HEADER_LEN as u64 + 24 * left {
            return Err(Error::format(
                path.display().to_string(),
                format!("{len} bytes, header says {left} records (truncated?)"),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            r,
            left,
        })
    }

    fn next(&mut self) -> Result<Option<Record>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 24];
        self.r
            .read_exact(&mut b)
            .map_err(|e| Error::io(&self.path, e))?;
        self.left -= 1;
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
        Ok(Some((w(0), w(1), w(2))))
    }
}

/// Every record of a run, in file order.
pub fn read_run(path: &Path) -> Result<Vec<Record>> {
    let mut r = RunReader::open(path)?;
    let mut out = Vec::with_capacity(r.left as usize);
    while let Some(rec) = r.next()? {
        out.push(rec);
    }
    Ok(out)
}

/// K-way merge of sorted runs into star edges `(smallest doc, member)` per
/// `(band, key)` group, written to `out` (pairs of u64). Returns the edge
/// count. Runs must each be sorted (as `write_run` leaves them).
pub fn merge_runs(paths: &[PathBuf], out: &Path) -> Result<u64> {
    let mut readers = paths
        .iter()
        .map(|p| RunReader::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(rec) = r.next()? {
            heap.push(Reverse((rec, i)));
        }
    }
    let mut edges: Vec<u64> = Vec::new();
    let mut group: Option<(u64, u64, u64)> = None; // (band, key, first doc)
    let mut last: Option<Record> = None;
    while let Some(Reverse((rec, i))) = heap.pop() {
        if let Some(prev) = last {
            if rec < prev {
                return Err(Error::format(
                    paths[i].display().to_string(),
                    "run is not sorted",
                ));
            }
        }
        last = Some(rec);
        let (band, key, doc) = rec;
        match group {
            Some((b, k, first)) if b == band && k == key => {
                if doc != first {
                    edges.push(first);
                    edges.push(doc);
                }
            }
            _ => group = Some((band, key, doc)),
        }
        if let Some(next) = readers[i].next()? {
            heap.push(Reverse((next, i)));
        }
    }
    let count = edges.len() as u64 / 2;
    write_atomic(out, EDGE_MAGIC, count, &edges)?;
    Ok(count)
}

/// The edges written by `merge_runs`.
pub fn read_edges(path: &Path) -> Result<Vec<(u64, u64)>> {
    let mut bytes = Vec::new();
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let count = read_header(path, &mut f, EDGE_MAGIC)?;
    f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 != 16 * count {
        return Err(Error::format(
            path.display().to_string(),
            format!("{} bytes of edges, header says {count} edges", bytes.len()),
        ));
    }
    let w = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
    Ok((0..count as usize)
        .map(|e| (w(2 * e), w(2 * e + 1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fastllm-ext-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn merge_gives_star_edges_per_group() {
        let d = dir("merge");
        let mut a = vec![(0, 7, 5), (0, 7, 1), (1, 3, 2), (0, 9, 4)];
        let mut b = vec![(0, 7, 3), (1, 3, 6), (1, 4, 8)];
        write_run(&d.join("a.run"), &mut a).unwrap();
        write_run(&d.join("b.run"), &mut b).unwrap();
        assert_eq!(read_run(&d.join("a.run")).unwrap()[0], (0, 7, 1));
        let n = merge_runs(&[d.join("a.run"), d.join("b.run")], &d.join("e.bin")).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            read_edges(&d.join("e.bin")).unwrap(),
            vec![(1, 3), (1, 5), (2, 6)]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncated_and_foreign_files_are_format_errors() {
        let d = dir("bad");
        let p = d.join("a.run");
        write_run(&p, &mut [(0, 1, 2), (0, 1, 3)]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = merge_runs(std::slice::from_ref(&p), &d.join("e.bin")).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        std::fs::write(&p, b"not a run file at all, no no no").unwrap();
        assert!(read_run(&p).unwrap_err().to_string().contains("magic"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
