//! MinHash signatures by multiply-shift universal hashing.
//!
//! Permutation `j` maps a shingle hash `h` (64-bit xxh3, `shingle.rs`) to
//! `((a_j · h + b_j) mod 2^64) >> 32`: Dietzfelbinger's multiply-shift
//! scheme with an odd multiplier, the top 32 bits of the product. The
//! signature is the minimum per permutation over the document's shingles, so
//! every value is below 2^32. A document with no shingles (empty after
//! normalization) has the signature `u64::MAX` everywhere.
//!
//! Why not `(a · h + b) mod (2^61 − 1)` (datasketch's family): on 64-bit
//! shingle hashes it needs four 32 x 32 multiplies and a two-step modular
//! reduction per permutation, about 20 vector instructions per eight
//! permutations, and that fold was two thirds of the text -> signature time.
//! Multiply-shift needs one 64-bit multiply (vpmullq with AVX-512DQ; three
//! 32-bit ones without), an add and a minimum, and the final shift is taken
//! once per signature (shifting is monotone, so the
//! minimum of the 64-bit values shifted is the minimum of the shifted
//! values). 32-bit values are what datasketch and rensa keep as well.
//!
//! The parameters come from `seed` through splitmix64:
//! `a_j = next() | 1`, `b_j = next()`, drawn in the order a_0, b_0, a_1,
//! b_1, ... (tests/dedup/reference.py does the same).

use rayon::prelude::*;

use super::shingle::{shingle_hashes_into, Scratch};
use crate::error::{Error, Result};
use crate::guard::{self, Failures};

/// The signature value of a document without shingles.
pub const EMPTY: u64 = u64::MAX;

/// The splitmix64 generator (Steele, Lea, Flood 2014).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The value of permutation `(a, b)` for shingle hash `h`, before the final
/// shift: `a · h + b mod 2^64`.
#[inline(always)]
fn permute(a: u64, b: u64, h: u64) -> u64 {
    a.wrapping_mul(h).wrapping_add(b)
}

/// The permutation parameters and the shingle size: everything that makes a
/// signature.
pub struct MinHasher {
    num_perm: usize,
    ngram: usize,
    a: Vec<u64>,
    b: Vec<u64>,
    // The multipliers' 32-bit halves in 64-bit lanes, for the AVX-512 kernel
    // (its multiply is 32 x 32 -> 64 bits, vpmuludq).
    a_lo: Vec<u64>,
    a_hi: Vec<u64>,
}

impl MinHasher {
    pub fn new(num_perm: usize, ngram: usize, seed: u64) -> Result<Self> {
        if num_perm == 0 {
            return Err(Error::invalid("num_perm must be >= 1, got 0"));
        }
        if ngram == 0 {
            return Err(Error::invalid("ngram must be >= 1, got 0"));
        }
        let mut rng = SplitMix64(seed);
        let mut a = Vec::with_capacity(num_perm);
        let mut b = Vec::with_capacity(num_perm);
        for _ in 0..num_perm {
            a.push(rng.next_u64() | 1);
            b.push(rng.next_u64());
        }
        Ok(Self {
            num_perm,
            ngram,
            a_lo: a.iter().map(|&x| x & 0xFFFF_FFFF).collect(),
            a_hi: a.iter().map(|&x| x >> 32).collect(),
            a,
            b,
        })
    }

    pub fn num_perm(&self) -> usize {
        self.num_perm
    }

    pub fn ngram(&self) -> usize {
        self.ngram
    }

    /// `(a, b)` of every permutation.
    pub fn params(&self) -> (&[u64], &[u64]) {
        (&self.a, &self.b)
    }

    /// Fold the shingle hashes into `sig` (length `num_perm`).
    pub fn fold_hashes(&self, hashes: &[u64], sig: &mut [u64]) {
        assert_eq!(sig.len(), self.num_perm);
        if hashes.is_empty() {
            sig.fill(EMPTY);
            return;
        }
        sig.fill(u64::MAX);
        self.fold_dispatch(hashes, sig);
        for v in sig.iter_mut() {
            *v >>= 32;
        }
    }

    #[inline]
    fn fold_dispatch(&self, hashes: &[u64], sig: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: the CPU has these features (checked just above).
                unsafe { self.fold_avx512dq(hashes, sig) };
                return;
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has these features (checked just above).
                unsafe { self.fold_avx512(hashes, sig) };
                return;
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { self.fold_avx2(hashes, sig) };
                return;
            }
        }
        self.fold_generic(hashes, sig);
    }

    /// AVX-512 by hand: eight permutations per register, sixteen per pass
    /// (two independent chains), the running minima and the parameters held
    /// in registers across a block of shingles, unsigned 64-bit minimum in
    /// one instruction. `a · h mod 2^64` is `a_lo·h_lo + ((a_lo·h_hi +
    /// a_hi·h_lo) << 32)`: three vpmuludq. Permutations past a multiple of
    /// sixteen go through the generic loop.
    ///
    /// AVX-512 intrinsics are stable since Rust 1.89: this function is why
    /// the crate needs 1.89 (Cargo.toml's `rust-version` says 1.85 until the
    /// lead raises it; clippy is told here).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[clippy::msrv = "1.89"]
    unsafe fn fold_avx512(&self, hashes: &[u64], sig: &mut [u64]) {
        use std::arch::x86_64::*;
        let n = self.num_perm;
        let full = n / 16 * 16;
        // Blocks of shingles that stay in L1 while every group of sixteen
        // permutations passes over them.
        for block in hashes.chunks(2048) {
            for c in (0..full).step_by(16) {
                // SAFETY (all loads and stores): c + 16 <= full <= the
                // length of each of these arrays.
                macro_rules! ld {
                    ($v:expr, $k:expr) => {
                        _mm512_loadu_si512($v[c + $k..].as_ptr().cast())
                    };
                }
                let (a_lo0, a_hi0, b0) = (ld!(self.a_lo, 0), ld!(self.a_hi, 0), ld!(self.b, 0));
                let (a_lo1, a_hi1, b1) = (ld!(self.a_lo, 8), ld!(self.a_hi, 8), ld!(self.b, 8));
                let mut m0 = ld!(sig, 0);
                let mut m1 = ld!(sig, 8);
                for &h in block {
                    let h_lo = _mm512_set1_epi64(h as i64);
                    let h_hi = _mm512_set1_epi64((h >> 32) as i64);
                    let v0 = _mm512_add_epi64(
                        _mm512_add_epi64(_mm512_mul_epu32(a_lo0, h_lo), b0),
                        _mm512_slli_epi64::<32>(_mm512_add_epi64(
                            _mm512_mul_epu32(a_lo0, h_hi),
                            _mm512_mul_epu32(a_hi0, h_lo),
                        )),
                    );
                    let v1 = _mm512_add_epi64(
                        _mm512_add_epi64(_mm512_mul_epu32(a_lo1, h_lo), b1),
                        _mm512_slli_epi64::<32>(_mm512_add_epi64(
                            _mm512_mul_epu32(a_lo1, h_hi),
                            _mm512_mul_epu32(a_hi1, h_lo),
                        )),
                    );
                    m0 = _mm512_min_epu64(m0, v0);
                    m1 = _mm512_min_epu64(m1, v1);
                }
                _mm512_storeu_si512(sig[c..].as_mut_ptr().cast(), m0);
                _mm512_storeu_si512(sig[c + 8..].as_mut_ptr().cast(), m1);
            }
        }
        if full < n {
            self.fold_range(hashes, &mut sig[full..], full);
        }
    }

    /// AVX-512 with the DQ extension: `a · h mod 2^64` is one vpmullq, so a
    /// permutation costs a multiply, an add and an unsigned minimum. Four
    /// registers of eight permutations per pass over a block of shingles
    /// (one broadcast of the hash feeds 32 permutations, and four
    /// independent chains hide the multiply's latency), then single
    /// registers, then the generic loop for fewer than eight.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    #[clippy::msrv = "1.89"]
    unsafe fn fold_avx512dq(&self, hashes: &[u64], sig: &mut [u64]) {
        let n = self.num_perm;
        let vec_end = n / 8 * 8;
        for block in hashes.chunks(2048) {
            let mut c = 0;
            while c + 32 <= vec_end {
                self.fold_dq_group::<4>(block, sig, c);
                c += 32;
            }
            while c < vec_end {
                self.fold_dq_group::<1>(block, sig, c);
                c += 8;
            }
        }
        if vec_end < n {
            self.fold_range(hashes, &mut sig[vec_end..], vec_end);
        }
    }

    /// Permutations `c .. c + 8·G` over `block` (`c + 8·G <= num_perm`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    #[clippy::msrv = "1.89"]
    #[inline]
    unsafe fn fold_dq_group<const G: usize>(&self, block: &[u64], sig: &mut [u64], c: usize) {
        use std::arch::x86_64::*;
        assert!(c + 8 * G <= sig.len() && sig.len() == self.num_perm);
        let mut a = [_mm512_setzero_si512(); G];
        let mut b = [_mm512_setzero_si512(); G];
        let mut m = [_mm512_setzero_si512(); G];
        for g in 0..G {
            let k = c + 8 * g;
            // SAFETY: k + 8 <= num_perm, the length of a, b and sig.
            a[g] = _mm512_loadu_si512(self.a[k..].as_ptr().cast());
            b[g] = _mm512_loadu_si512(self.b[k..].as_ptr().cast());
            m[g] = _mm512_loadu_si512(sig[k..].as_ptr().cast());
        }
        for &h in block {
            let hv = _mm512_set1_epi64(h as i64);
            for g in 0..G {
                let v = _mm512_add_epi64(_mm512_mullo_epi64(a[g], hv), b[g]);
                m[g] = _mm512_min_epu64(m[g], v);
            }
        }
        for g in 0..G {
            // SAFETY: as for the loads.
            _mm512_storeu_si512(sig[c + 8 * g..].as_mut_ptr().cast(), m[g]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fold_avx2(&self, hashes: &[u64], sig: &mut [u64]) {
        self.fold_generic(hashes, sig)
    }

    #[inline(always)]
    fn fold_generic(&self, hashes: &[u64], sig: &mut [u64]) {
        self.fold_range(hashes, sig, 0)
    }

    /// Fold into `sig`, which holds permutations `first..first + sig.len()`
    /// (unshifted 64-bit values).
    #[inline(always)]
    fn fold_range(&self, hashes: &[u64], sig: &mut [u64], first: usize) {
        let n = sig.len();
        let (a, b) = (&self.a[first..first + n], &self.b[first..first + n]);
        // Shingles four at a time, permutations innermost: each pass over the
        // parameter arrays (which the compiler turns into SIMD lanes) loads
        // a, b and the running minimum once for four shingles.
        let mut blocks = hashes.chunks_exact(4);
        for hs in &mut blocks {
            for j in 0..n {
                let mut m = sig[j];
                for &h in hs {
                    m = m.min(permute(a[j], b[j], h));
                }
                sig[j] = m;
            }
        }
        for &h in blocks.remainder() {
            for j in 0..n {
                sig[j] = sig[j].min(permute(a[j], b[j], h));
            }
        }
    }

    /// The signature of one text into `sig`, with reusable buffers.
    pub fn signature_into(
        &self,
        text: &str,
        scratch: &mut Scratch,
        hashes: &mut Vec<u64>,
        sig: &mut [u64],
    ) {
        shingle_hashes_into(text, self.ngram, scratch, hashes);
        self.fold_hashes(hashes, sig);
    }

    pub fn signature(&self, text: &str) -> Vec<u64> {
        let mut sig = vec![0; self.num_perm];
        self.signature_into(text, &mut Scratch::default(), &mut Vec::new(), &mut sig);
        sig
    }

    /// Signatures of a batch as one row-major `(texts.len(), num_perm)`
    /// buffer, spread over the current rayon pool. Each document is computed
    /// alone, so the result does not depend on the number of threads.
    pub fn signatures<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<u64> {
        let mut out = vec![0u64; texts.len() * self.num_perm];
        out.par_chunks_mut(self.num_perm)
            .zip(texts.par_iter())
            .for_each_init(
                || (Scratch::default(), Vec::new()),
                |(scratch, hashes), (sig, t)| self.signature_into(t.as_ref(), scratch, hashes, sig),
            );
        out
    }

    /// [`signatures`](Self::signatures) under the one panic policy
    /// (`crate::guard`): a document whose signature panics has zeros in its
    /// row (no signature; drop it) and is in the failures, `(row, panic
    /// message)`. The scratch buffers are cleared at the start of every
    /// document, so one that panicked leaves nothing for the next.
    pub fn signature_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> (Vec<u64>, Failures) {
        let mut out = vec![0u64; texts.len() * self.num_perm];
        let failed = guard::fill_rows(
            texts,
            &mut out,
            self.num_perm,
            0,
            || (Scratch::default(), Vec::new()),
            |(scratch, hashes), t, sig| self.signature_into(t.as_ref(), scratch, hashes, sig),
        );
        (out, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: u64, h: u64, b: u64) -> u64 {
        (((a as u128 * h as u128 + b as u128) % (1u128 << 64)) >> 32) as u64
    }

    fn want(m: &MinHasher, hs: &[u64]) -> Vec<u64> {
        let (a, b) = m.params();
        (0..m.num_perm())
            .map(|j| hs.iter().map(|&h| naive(a[j], h, b[j])).min().unwrap())
            .collect()
    }

    #[test]
    fn the_guarded_batch_equals_the_plain_one() {
        let m = MinHasher::new(64, 3, 9).unwrap();
        let texts: Vec<String> = (0..100)
            .map(|i| format!("doc {i} with some words, {} more", i * 7))
            .chain(["".to_string()])
            .collect();
        let (sigs, failed) = crate::pool::install(|| m.signature_batch(&texts)).unwrap();
        assert!(failed.is_empty());
        assert_eq!(sigs, m.signatures(&texts));
        assert!(sigs[100 * 64..].iter().all(|&v| v == EMPTY));
    }

    #[test]
    fn parameters_are_odd_multipliers() {
        let m = MinHasher::new(64, 1, 5).unwrap();
        let (a, b) = m.params();
        assert!(a.iter().all(|&x| x & 1 == 1));
        let mut rng = SplitMix64(5);
        assert_eq!(a[0], rng.next_u64() | 1);
        assert_eq!(b[0], rng.next_u64());
    }

    #[test]
    fn signature_is_min_over_shingles() {
        let m = MinHasher::new(16, 2, 3).unwrap();
        let text = "a b c d a b";
        let hs = super::super::shingle::shingle_hashes(text, 2);
        let sig = m.signature(text);
        assert_eq!(sig, want(&m, &hs));
        assert!(sig.iter().all(|&v| v < 1 << 32));
        assert_eq!(m.signature(""), vec![EMPTY; 16]);
    }

    #[test]
    fn every_kernel_path_matches_the_definition() {
        // 13, 21 and 40 perms: the AVX-512 kernel plus its generic
        // remainder; 5000 words: more than one block of shingles; extreme
        // hashes for the carries of the split multiply.
        let text: String = (0..5000)
            .map(|i| format!("w{} ", (i * 7919) % 1000))
            .collect();
        let mut hs = super::super::shingle::shingle_hashes(&text, 3);
        let edge = [0, 1, u64::MAX, 1 << 32, (1 << 32) - 1, 1 << 63];
        for num_perm in [1, 8, 13, 16, 21, 40, 45, 128] {
            let m = MinHasher::new(num_perm, 3, 11).unwrap();
            assert_eq!(m.signature(&text), want(&m, &hs), "num_perm={num_perm}");
            for &e in &edge {
                let mut sig = vec![0; num_perm];
                m.fold_hashes(&[e], &mut sig);
                assert_eq!(sig, want(&m, &[e]), "hash {e}");
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                let mut sig = vec![u64::MAX; num_perm];
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { m.fold_avx512(&hs, &mut sig) };
                let shifted: Vec<u64> = sig.iter().map(|v| v >> 32).collect();
                assert_eq!(shifted, want(&m, &hs), "avx512f, num_perm={num_perm}");
            }
            let mut sig = vec![u64::MAX; num_perm];
            m.fold_generic(&hs, &mut sig);
            let shifted: Vec<u64> = sig.iter().map(|v| v >> 32).collect();
            assert_eq!(shifted, want(&m, &hs), "generic, num_perm={num_perm}");
        }
        hs.extend(edge);
        let m = MinHasher::new(128, 3, 0).unwrap();
        let mut sig = vec![0; 128];
        m.fold_hashes(&hs, &mut sig);
        assert_eq!(sig, want(&m, &hs));
    }

    #[test]
    fn batch_equals_single_and_seeds_differ() {
        let m = MinHasher::new(32, 3, 0).unwrap();
        let texts = ["one two three four", "", "x", "one two three five"];
        let flat = m.signatures(&texts);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(&flat[i * 32..(i + 1) * 32], &m.signature(t)[..]);
        }
        let other = MinHasher::new(32, 3, 1).unwrap();
        assert_ne!(other.signature(texts[0]), m.signature(texts[0]));
        assert!(MinHasher::new(0, 3, 0).is_err());
        assert!(MinHasher::new(8, 0, 0).is_err());
    }
}
