//! Criterion bench of the Rust BPE encoder on real text: pre-tokenization
//! alone, then full encoding, for cl100k_base and o200k_base.
//!
//! Run: `cargo bench --bench bpe_encode`. Reads ../shared/data (or
//! $FASTLLM_SHARED_DATA); prints a note and does nothing when it is absent.

use std::io::Read;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::bpe::model::Bpe;
use fastllm_core::bpe::pretok::{Pretokenizer, CL100K_PATTERN, O200K_PATTERN};
use fastllm_core::bpe::tiktoken::parse_ranks;

fn data_dir() -> Option<PathBuf> {
    let root = std::env::var_os("FASTLLM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    root.join("text").is_dir().then_some(root)
}

/// About 4 MB of text: a slice of each file of the corpus (prose, code,
/// many languages), read from the gzipped JSONL with a minimal decoder.
fn sample(root: &Path) -> String {
    let mut text = String::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("text"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .collect();
    files.sort();
    for f in files {
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&f).unwrap());
        let mut raw = String::new();
        gz.read_to_string(&mut raw).unwrap();
        let mut taken = 0;
        for line in raw.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["text"].as_str().unwrap_or("");
            taken += t.len();
            text.push_str(t);
            if taken > 400_000 {
                break;
            }
        }
    }
    text
}

fn bench(c: &mut Criterion) {
    let Some(root) = data_dir() else {
        eprintln!("bpe_encode: ../shared/data not found; set FASTLLM_SHARED_DATA");
        return;
    };
    let text = sample(&root);
    let mut g = c.benchmark_group("bpe_encode");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    for (name, pattern) in [
        ("cl100k_base", CL100K_PATTERN),
        ("o200k_base", O200K_PATTERN),
    ] {
        let data =
            std::fs::read(root.join(format!("tokenizers/tiktoken/{name}.tiktoken"))).unwrap();
        let bpe = Bpe::from_ranks(parse_ranks(&data, name).unwrap(), vec![], pattern).unwrap();
        let pretok = Pretokenizer::new(pattern).unwrap();
        g.bench_function(format!("{name}/split"), |b| {
            b.iter(|| pretok.split(&text).count())
        });
        g.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| bpe.encode_ordinary(&text).len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
