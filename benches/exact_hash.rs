//! Criterion bench: exact content hashing throughput (bytes/s), raw and
//! normalized, on synthetic prose. Run: `cargo bench --bench exact_hash`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::dedup::exact::content_hash;
use std::hint::black_box;

fn corpus() -> Vec<String> {
    // Deterministic pseudo-prose: words of varied length, punctuation, case.
    let words = [
        "The", "quick", "brown", "fox,", "jumps", "over", "the", "lazy", "dog.", "Über", "naïve",
        "café", "résumé", "\n\n", "data", "pipeline", "tokens", "—", "ok!",
    ];
    let mut state = 0x2545F4914F6CDD1Du64;
    (0..2000)
        .map(|_| {
            let mut doc = String::new();
            for _ in 0..400 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                doc.push_str(words[(state % words.len() as u64) as usize]);
                doc.push(' ');
            }
            doc
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = corpus();
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let mut g = c.benchmark_group("exact_hash");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("raw", |b| {
        b.iter(|| {
            docs.iter()
                .map(|d| content_hash(black_box(d), false))
                .fold(0u128, |a, h| a ^ h)
        })
    });
    g.bench_function("normalized", |b| {
        b.iter(|| {
            docs.iter()
                .map(|d| content_hash(black_box(d), true))
                .fold(0u128, |a, h| a ^ h)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
