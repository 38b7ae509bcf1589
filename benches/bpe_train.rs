//! Criterion bench: byte-level BPE training, split into counting (`feed`) and
//! merging (`finish`). Run: `cargo bench --bench bpe_train`.
//!
//! Input: the file named by `FASTLLM_BENCH_TEXT` (UTF-8 documents separated
//! by U+001E), else about 4 MB of synthetic pseudo-prose. Vocab size from
//! `FASTLLM_BENCH_VOCAB` (default 16000).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::bpe::pretok::CL100K_PATTERN;
use fastllm_core::bpe::train::{TrainConfig, Trainer};
use std::hint::black_box;

fn corpus() -> Vec<String> {
    if let Ok(path) = std::env::var("FASTLLM_BENCH_TEXT") {
        let all = std::fs::read_to_string(&path).expect("FASTLLM_BENCH_TEXT is not readable");
        return all.split('\u{1e}').map(str::to_owned).collect();
    }
    // Deterministic pseudo-prose with a Zipf-like word choice, so that the
    // merges have a realistic long tail.
    let syll = [
        "an", "ber", "co", "de", "el", "fin", "ga", "ho", "in", "jo", "ka", "lo", "ma", "ne", "or",
        "pa", "qu", "ri", "st", "th", "ur", "ve", "wa", "xy", "zo", "é", "ü", "日",
    ];
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: Vec<String> = (0..20_000)
        .map(|_| {
            let n = 1 + (next() % 4) as usize;
            (0..n)
                .map(|_| syll[(next() % syll.len() as u64) as usize])
                .collect()
        })
        .collect();
    (0..1000)
        .map(|_| {
            let mut doc = String::new();
            for _ in 0..600 {
                let r = (next() % 1_000_000) as f64 / 1_000_000.0;
                let i = ((words.len() as f64).powf(r) as usize).min(words.len() - 1);
                doc.push_str(&words[i]);
                doc.push_str(match next() % 12 {
                    0 => ", ",
                    1 => ".\n",
                    2 => " 1984 ",
                    _ => " ",
                });
            }
            doc
        })
        .collect()
}

fn config(vocab_size: usize) -> TrainConfig {
    TrainConfig {
        pattern: CL100K_PATTERN.to_owned(),
        vocab_size,
        min_frequency: 0,
        special_tokens: vec!["<|endoftext|>".to_owned()],
    }
}

fn fed(docs: &[&str], vocab_size: usize) -> Trainer {
    let mut t = Trainer::new(config(vocab_size)).unwrap();
    for chunk in docs.chunks(256) {
        t.feed(chunk).unwrap();
    }
    t
}

fn bench(c: &mut Criterion) {
    let docs = corpus();
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let vocab: usize = std::env::var("FASTLLM_BENCH_VOCAB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16000);

    let mut g = c.benchmark_group("bpe_train");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("feed", |b| {
        b.iter(|| black_box(fed(&docs, vocab)).num_words())
    });
    g.bench_function(format!("finish_{vocab}"), |b| {
        b.iter_batched(
            || fed(&docs, vocab),
            |t| t.finish(|_, _| {}).unwrap().merges.len(),
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function(format!("total_{vocab}"), |b| {
        b.iter(|| fed(&docs, vocab).finish(|_, _| {}).unwrap().merges.len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
