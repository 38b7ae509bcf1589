//! Criterion bench: text -> MinHash signatures (bytes/s, one thread), the
//! shingling alone, and LSH clustering of ready signatures.
//! Run: `cargo bench --bench minhash`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastllm_core::dedup::minhash::MinHasher;
use fastllm_core::dedup::near::{clusters, LshConfig};
use fastllm_core::dedup::shingle::{shingle_hashes_into, Scratch};
use std::hint::black_box;

fn corpus() -> Vec<String> {
    // Deterministic pseudo-prose over a 2,000-word vocabulary, ~6 KB a doc.
    let vocab: Vec<String> = (0..2000u32)
        .map(|i| {
            let len = 2 + (i.wrapping_mul(2654435761) >> 29) as usize;
            (0..len)
                .map(|k| (b'a' + ((i as usize * 7 + k * 13) % 26) as u8) as char)
                .collect()
        })
        .collect();
    let mut state = 0x2545F4914F6CDD1Du64;
    (0..400)
        .map(|_| {
            let mut doc = String::new();
            for w in 0..1000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                doc.push_str(&vocab[(state % vocab.len() as u64) as usize]);
                doc.push_str(if w % 12 == 11 { ". " } else { " " });
            }
            doc
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = corpus();
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let m = MinHasher::new(128, 5, 0).unwrap();
    let mut g = c.benchmark_group("minhash");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    g.bench_function("shingle_hashes", |b| {
        let (mut scratch, mut hashes) = (Scratch::default(), Vec::new());
        b.iter(|| {
            let mut acc = 0u64;
            for d in &docs {
                shingle_hashes_into(black_box(d), 5, &mut scratch, &mut hashes);
                acc ^= hashes.iter().fold(0, |a, h| a ^ h);
            }
            acc
        })
    });
    g.bench_function("signatures_128", |b| {
        let (mut scratch, mut hashes) = (Scratch::default(), Vec::new());
        let mut sig = vec![0u64; 128];
        b.iter(|| {
            for d in &docs {
                m.signature_into(black_box(d), &mut scratch, &mut hashes, &mut sig);
            }
            sig[0]
        })
    });
    g.finish();

    let sigs = m.signatures(&docs);
    let cfg = LshConfig {
        threshold: 0.8,
        bands: 14,
        rows: 9,
        verify: true,
    };
    c.bench_function("lsh_clusters_400_docs", |b| {
        b.iter(|| clusters(black_box(&sigs), 128, &cfg).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
