//! Writes documents into size-capped shards and publishes each by rename.
//!
//! A shard is built as `NAME.bin.tmp` + `NAME.idx.tmp`; when it is full (or
//! at `finish`) both are synced and renamed, `.bin` first and `.idx` last,
//! so a crash leaves only `.tmp` files or, between the two renames, a `.bin`
//! with no `.idx`, which no reader opens. A writer dropped before `finish`
//! deletes its open shard's temporary files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::format::{DType, Index};
use crate::error::{Error, Result};
use crate::pool;

/// Batches with at least this many ids are checked on the thread pool.
const PAR_CHECK_IDS: usize = 1 << 20;

/// Token bytes staged before one `write` call: big enough that the syscall
/// cost vanishes, small next to a shard. The buffer holds up to twice this
/// (a full stage plus one chunk of a document) and never reallocates.
const STAGE_BYTES: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// Shards are named `{prefix}_{00000}.bin/.idx`.
    pub prefix: String,
    /// Token ids must be below this; it also picks the dtype (Megatron's rule).
    pub vocab_size: usize,
    /// Appended after every document when set.
    pub eos_id: Option<u32>,
    /// Cap on a shard's `.bin` size in bytes.
    pub max_shard_bytes: u64,
    /// fsync data before the rename (durable across power loss).
    pub sync: bool,
}

impl WriterConfig {
    pub fn new(dir: impl Into<PathBuf>, vocab_size: usize) -> Self {
        WriterConfig {
            dir: dir.into(),
            prefix: "shard".into(),
            vocab_size,
            eos_id: None,
            max_shard_bytes: 1 << 30,
            sync: true,
        }
    }

    pub fn dtype(&self) -> DType {
        DType::for_vocab(self.vocab_size)
    }
}

/// One published shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// File stem: the shard is `{name}.bin` + `{name}.idx` in the directory.
    pub name: String,
    pub documents: u64,
    /// Tokens including the EOS tokens.
    pub tokens: u64,
    /// Size of the `.bin` file.
    pub bin_bytes: u64,
    /// Holds a single document larger than the cap.
    pub oversized: bool,
}

struct OpenShard {
    name: String,
    tmp_bin: PathBuf,
    file: File,
    stage: Stage,
    sizes: Vec<i32>,
    bytes: u64,
}

impl OpenShard {
    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(self.stage.as_le_bytes())
            .map_err(|e| Error::io(&self.tmp_bin, e))?;
        self.stage.clear();
        Ok(())
    }
}

/// Tokens converted to the shard's dtype, waiting for one `write` call.
/// Typed vectors rather than bytes: `extend` from a mapped slice compiles to
/// a vectorized narrowing copy with no zero-fill of the destination.
enum Stage {
    U16(Vec<u16>),
    I32(Vec<i32>),
}

impl Stage {
    fn new(dtype: DType) -> Stage {
        match dtype {
            DType::U16 => Stage::U16(Vec::with_capacity(STAGE_BYTES + 1)),
            _ => Stage::I32(Vec::with_capacity(STAGE_BYTES / 2 + 1)),
        }
    }

    /// Ids are checked against the vocabulary before they get here.
    fn extend(&mut self, ids: &[u32]) {
        match self {
            Stage::U16(v) => v.extend(ids.iter().map(|&t| t as u16)),
            Stage::I32(v) => v.extend(ids.iter().map(|&t| t as i32)),
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            Stage::U16(v) => 2 * v.len(),
            Stage::I32(v) => 4 * v.len(),
        }
    }

    fn clear(&mut self) {
        match self {
            Stage::U16(v) => v.clear(),
            Stage::I32(v) => v.clear(),
        }
    }

    /// The staged tokens as little-endian bytes (in place; free on
    /// little-endian machines, where `to_le` is the identity).
    fn as_le_bytes(&mut self) -> &[u8] {
        match self {
            Stage::U16(v) => {
                v.iter_mut().for_each(|x| *x = x.to_le());
                // SAFETY: u16 has no padding and u8 has alignment 1; the
                // byte view covers exactly the vector's initialized elements.
                unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), 2 * v.len()) }
            }
            Stage::I32(v) => {
                v.iter_mut().for_each(|x| *x = x.to_le());
                // SAFETY: as above, for i32.
                unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), 4 * v.len()) }
            }
        }
    }
}

/// Documents and tokens (EOS included) written per source label.
pub type SourceCounts = BTreeMap<String, (u64, u64)>;

pub struct ShardWriter {
    cfg: WriterConfig,
    dtype: DType,
    open: Option<OpenShard>,
    done: Vec<ShardInfo>,
    sources: SourceCounts,
}

impl ShardWriter {
    pub fn new(cfg: WriterConfig) -> Result<Self> {
        if cfg.vocab_size == 0 || cfg.vocab_size > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "vocab_size must be in 1..=2^31-1, got {}",
                cfg.vocab_size
            )));
        }
        if let Some(e) = cfg.eos_id {
            if e as usize >= cfg.vocab_size {
                return Err(Error::invalid(format!(
                    "eos_id {e} is not below vocab_size {}",
                    cfg.vocab_size
                )));
            }
        }
        if cfg.max_shard_bytes == 0 {
            return Err(Error::invalid("max_shard_bytes must be >= 1, got 0"));
        }
        if cfg.prefix.is_empty() || cfg.prefix.contains(['/', '\\']) {
            return Err(Error::invalid(format!(
                "prefix must be a non-empty file name, got {:?}",
                cfg.prefix
            )));
        }
        fs::create_dir_all(&cfg.dir).map_err(|e| Error::io(&cfg.dir, e))?;
        Ok(ShardWriter {
            dtype: cfg.dtype(),
            cfg,
            open: None,
            done: Vec::new(),
            sources: BTreeMap::new(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shards published so far.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.done
    }

    pub fn sources(&self) -> &SourceCounts {
        &self.sources
    }

    /// Add one document.
    pub fn add_document(&mut self, ids: &[u32], source: &str) -> Result<()> {
        self.add_documents(ids, &[0, ids.len() as i64], source)
    }

    /// Add documents given flat `ids` and `offsets` (document i is
    /// `ids[offsets[i]..offsets[i+1]]`). The batch is checked whole before
    /// any of it is written: a bad batch writes nothing.
    pub fn add_documents(&mut self, ids: &[u32], offsets: &[i64], source: &str) -> Result<()> {
        self.check_batch(ids, offsets)?;
        let eos = self.cfg.eos_id.is_some() as u64;
        let item = self.dtype.itemsize() as u64;
        let (mut docs, mut tokens) = (0u64, 0u64);
        for w in offsets.windows(2) {
            let doc = &ids[w[0] as usize..w[1] as usize];
            let len = doc.len() as u64 + eos;
            let bytes = len * item;
            let fits = self
                .open
                .as_ref()
                .is_none_or(|s| s.sizes.is_empty() || s.bytes + bytes <= self.cfg.max_shard_bytes);
            if !fits {
                self.close_open(false)?;
            }
            let oversized = bytes > self.cfg.max_shard_bytes;
            if oversized {
                // Alone in its own shard, published at once and reported.
                self.close_open(false)?;
            }
            if self.open.is_none() {
                self.open = Some(self.start_shard()?);
            }
            self.append(doc)?;
            if oversized {
                self.close_open(true)?;
            }
            docs += 1;
            tokens += len;
        }
        let entry = self.sources.entry(source.to_string()).or_default();
        entry.0 += docs;
        entry.1 += tokens;
        Ok(())
    }

    /// Publish the open shard and return every shard written.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.close_open(false)?;
        Ok(std::mem::take(&mut self.done))
    }

    fn check_batch(&self, ids: &[u32], offsets: &[i64]) -> Result<()> {
        let Some(&first) = offsets.first() else {
            return Err(Error::invalid(
                "offsets must have at least one entry (documents + 1)",
            ));
        };
        if first < 0 {
            return Err(Error::invalid(format!("offsets[0] is negative: {first}")));
        }
        for (i, w) in offsets.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(Error::invalid(format!(
                    "offsets decrease at {}: {} < {}",
                    i + 1,
                    w[1],
                    w[0]
                )));
            }
            if w[1] - w[0] >= i32::MAX as i64 {
                return Err(Error::invalid(format!(
                    "document {i} has {} tokens; the format allows < 2^31 per document",
                    w[1] - w[0]
                )));
            }
        }
        let last = *offsets.last().unwrap();
        if last as u64 > ids.len() as u64 {
            return Err(Error::invalid(format!(
                "offsets end at {last} but there are {} ids",
                ids.len()
            )));
        }
        let used = &ids[first as usize..last as usize];
        // A branch-free max (vectorizes), spread over the pool for big batches
        // (it is a whole extra read of the ids); the culprit is searched for
        // only when there is one.
        let max = if used.len() < PAR_CHECK_IDS {
            used.iter().copied().max().unwrap_or(0)
        } else {
            pool::install(|| {
                used.par_chunks(PAR_CHECK_IDS / 4)
                    .map(|c| c.iter().copied().max().unwrap_or(0))
                    .max()
                    .unwrap_or(0)
            })?
        };
        if max as usize >= self.cfg.vocab_size {
            let at = used.iter().position(|&t| t == max).unwrap() + first as usize;
            let doc = offsets.partition_point(|&o| o <= at as i64) - 1;
            return Err(Error::invalid(format!(
                "token id {max} (document {doc} of the batch) is not below vocab_size {}",
                self.cfg.vocab_size
            )));
        }
        Ok(())
    }

    fn path(&self, file: &str) -> PathBuf {
        self.cfg.dir.join(file)
    }

    fn start_shard(&mut self) -> Result<OpenShard> {
        let name = format!("{}_{:05}", self.cfg.prefix, self.done.len());
        for ext in ["bin", "idx"] {
            let p = self.path(&format!("{name}.{ext}"));
            if p.exists() {
                return Err(Error::invalid(format!(
                    "{}: already exists; refusing to overwrite a finished shard",
                    p.display()
                )));
            }
        }
        let tmp_bin = self.path(&format!("{name}.bin.tmp"));
        let file = File::create(&tmp_bin).map_err(|e| Error::io(&tmp_bin, e))?;
        Ok(OpenShard {
            name,
            tmp_bin,
            file,
            stage: Stage::new(self.dtype),
            sizes: Vec::new(),
            bytes: 0,
        })
    }

    fn append(&mut self, doc: &[u32]) -> Result<()> {
        let eos = self.cfg.eos_id;
        let item = self.dtype.itemsize();
        let s = self.open.as_mut().expect("an open shard");
        for chunk in doc.chunks(STAGE_BYTES / item) {
            s.stage.extend(chunk);
            if s.stage.byte_len() >= STAGE_BYTES {
                s.flush()?;
            }
        }
        if let Some(e) = eos {
            s.stage.extend(&[e]);
        }
        let len = doc.len() + eos.is_some() as usize;
        s.sizes.push(len as i32);
        s.bytes += (len * item) as u64;
        Ok(())
    }

    /// Sync and publish the open shard, if any.
    fn close_open(&mut self, oversized: bool) -> Result<()> {
        let Some(mut s) = self.open.take() else {
            return Ok(());
        };
        let bin = self.path(&format!("{}.bin", s.name));
        let idx = self.path(&format!("{}.idx", s.name));
        let tmp_idx = self.path(&format!("{}.idx.tmp", s.name));
        let result = (|| {
            s.flush()?;
            if self.cfg.sync {
                s.file.sync_data().map_err(|e| Error::io(&s.tmp_bin, e))?;
            }
            let sizes = std::mem::take(&mut s.sizes);
            let documents = sizes.len() as u64;
            let index = Index::from_sizes(self.dtype, sizes);
            write_file(&tmp_idx, &index.to_bytes(), self.cfg.sync)?;
            fs::rename(&s.tmp_bin, &bin).map_err(|e| Error::io(&bin, e))?;
            fs::rename(&tmp_idx, &idx).map_err(|e| Error::io(&idx, e))?;
            if self.cfg.sync {
                sync_dir(&self.cfg.dir)?;
            }
            Ok(ShardInfo {
                name: s.name.clone(),
                documents,
                tokens: s.bytes / self.dtype.itemsize() as u64,
                bin_bytes: s.bytes,
                oversized,
            })
        })();
        match result {
            Ok(info) => {
                self.done.push(info);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&s.tmp_bin);
                let _ = fs::remove_file(&tmp_idx);
                Err(e)
            }
        }
    }
}

impl Drop for ShardWriter {
    /// An unfinished shard is abandoned: its temporary files go, and nothing
    /// appears under a final name.
    fn drop(&mut self) {
        if let Some(s) = self.open.take() {
            let _ = fs::remove_file(&s.tmp_bin);
        }
    }
}

fn write_file(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(data).map_err(|e| Error::io(path, e))?;
    if sync {
        f.sync_data().map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the renames durable; on platforms where a directory cannot be
    // opened for sync this is a no-op.
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::reader::ShardReader;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fastllm-shard-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn round_trip_with_eos_and_cap() {
        let dir = tmpdir("rt");
        let mut cfg = WriterConfig::new(&dir, 1000);
        cfg.eos_id = Some(0);
        cfg.max_shard_bytes = 20; // 10 uint16 tokens
        cfg.sync = false;
        let mut w = ShardWriter::new(cfg).unwrap();
        let docs: Vec<Vec<u32>> = vec![
            vec![1, 2, 3],
            vec![4, 5, 6, 7],
            vec![8],
            (10..40).collect(),
            vec![],
        ];
        let ids: Vec<u32> = docs.concat();
        let mut offsets = vec![0i64];
        for d in &docs {
            offsets.push(offsets.last().unwrap() + d.len() as i64);
        }
        w.add_documents(&ids, &offsets, "web").unwrap();
        assert_eq!(w.sources()["web"], (5, 43));
        let shards = w.finish().unwrap();
        // [1,2,3,0]+[4,5,6,7,0] = 9 tokens; [8,0] would make 11 > 10: new shard.
        let counts: Vec<(u64, bool)> = shards.iter().map(|s| (s.documents, s.oversized)).collect();
        assert_eq!(counts, vec![(2, false), (1, false), (1, true), (1, false)]);
        let mut got = Vec::new();
        for s in &shards {
            let mut r = ShardReader::open(dir.join(&s.name)).unwrap();
            assert_eq!(r.index.dtype, DType::U16);
            for i in 0..r.len() {
                got.push(r.document(i).unwrap());
            }
        }
        let want: Vec<Vec<u32>> = docs
            .iter()
            .map(|d| d.iter().copied().chain([0]).collect())
            .collect();
        assert_eq!(got, want);
        assert!(names(&dir).iter().all(|n| !n.ends_with(".tmp")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn int32_for_large_vocab_and_bad_ids() {
        let dir = tmpdir("i32");
        let mut cfg = WriterConfig::new(&dir, 100_000);
        cfg.sync = false;
        let mut w = ShardWriter::new(cfg).unwrap();
        assert_eq!(w.dtype(), DType::I32);
        let e = w.add_document(&[5, 100_000], "x").unwrap_err();
        assert!(e.to_string().contains("token id 100000"), "{e}");
        assert!(w.add_documents(&[1, 2], &[0, 3], "x").is_err());
        assert!(w.add_documents(&[1, 2], &[1, 0], "x").is_err());
        w.add_document(&[70_000, 1], "x").unwrap();
        let shards = w.finish().unwrap();
        let mut r = ShardReader::open(dir.join(&shards[0].name)).unwrap();
        assert_eq!(r.document(0).unwrap(), vec![70_000, 1]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn big_batches_are_checked_whole_before_writing() {
        let dir = tmpdir("big");
        let mut cfg = WriterConfig::new(&dir, 1000);
        cfg.sync = false;
        let mut w = ShardWriter::new(cfg).unwrap();
        let n = PAR_CHECK_IDS as i64;
        let mut ids = vec![7u32; 2 * PAR_CHECK_IDS];
        *ids.last_mut().unwrap() = 1000;
        let e = w.add_documents(&ids, &[0, n, 2 * n], "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("token id 1000 (document 1 of the batch)"),
            "{e}"
        );
        assert!(names(&dir).is_empty());
        *ids.last_mut().unwrap() = 999;
        w.add_documents(&ids, &[0, n, 2 * n], "x").unwrap();
        assert_eq!(w.finish().unwrap()[0].tokens, 2 * n as u64);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_writer_leaves_no_shard() {
        let dir = tmpdir("drop");
        let mut cfg = WriterConfig::new(&dir, 50);
        cfg.sync = false;
        let mut w = ShardWriter::new(cfg).unwrap();
        w.add_document(&[1, 2, 3], "x").unwrap();
        assert_eq!(names(&dir), vec!["shard_00000.bin.tmp"]);
        drop(w);
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
