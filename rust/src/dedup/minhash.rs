//! MinHash signatures by universal hashing modulo the Mersenne prime 2^61 − 1.
//!
//! Permutation `j` maps a shingle hash `h` (64-bit xxh3, `shingle.rs`) to
//! `(a_j · h + b_j) mod p` with `p = 2^61 − 1`, as datasketch and text-dedup
//! do (they use 32-bit hashes; ours are 64-bit, and values are not masked,
//! so every value is below `p`). The signature is the minimum per
//! permutation over the document's shingles. A document with no shingles
//! (empty after normalization) has the signature `u64::MAX` everywhere.
//!
//! The parameters come from `seed` through splitmix64:
//! `a_j = 1 + next() mod (p − 1)`, `b_j = next() mod p`, drawn in the order
//! a_0, b_0, a_1, b_1, ... (tests/dedup/reference.py does the same).

use rayon::prelude::*;

use super::shingle::{shingle_hashes_into, Scratch};
use crate::error::{Error, Result};

/// The Mersenne prime 2^61 − 1.
pub const P: u64 = (1 << 61) - 1;

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

/// `x mod p` for any 64-bit `x`.
#[inline(always)]
pub fn reduce(x: u64) -> u64 {
    let r = (x & P) + (x >> 61); // <= p + 7
    (r + ((r + 1) >> 61)) & P
}

/// The permutation parameters and the shingle size: everything that makes a
/// signature. Kept as split 32-bit halves so that the hot loop multiplies
/// 32 x 32 -> 64 bits, which vectorizes (vpmuludq), where a 64 x 64 -> 128
/// multiply would not.
pub struct MinHasher {
    num_perm: usize,
    ngram: usize,
    a: Vec<u64>,
    b: Vec<u64>,
    a_lo: Vec<u32>,
    a_hi: Vec<u32>,
    // The same halves widened to 64-bit lanes, for the AVX-512 kernel.
    a_lo64: Vec<u64>,
    a_hi64: Vec<u64>,
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
            a.push(1 + rng.next_u64() % (P - 1));
            b.push(rng.next_u64() % P);
        }
        let a_lo: Vec<u32> = a.iter().map(|&x| x as u32).collect();
        let a_hi: Vec<u32> = a.iter().map(|&x| (x >> 32) as u32).collect();
        Ok(Self {
            num_perm,
            ngram,
            a_lo64: a_lo.iter().map(|&x| x as u64).collect(),
            a_hi64: a_hi.iter().map(|&x| x as u64).collect(),
            a,
            b,
            a_lo,
            a_hi,
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
        sig.fill(P); // above every permuted value (they are < p)
        #[cfg(target_arch = "x86_64")]
        {
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

    /// AVX-512 by hand: eight permutations per register, the running
    /// minimum and the parameters held in registers across all shingles
    /// (one pass over the shingles per eight permutations), unsigned 64-bit
    /// minimum in one instruction. Permutations past a multiple of eight go
    /// through the generic loop.
    ///
    /// AVX-512 intrinsics are stable since Rust 1.89: this function is why
    /// the crate needs 1.89 (Cargo.toml's `rust-version` says 1.85 until the
    /// lead raises it; clippy is told here).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[clippy::msrv = "1.89"]
    unsafe fn fold_avx512(&self, hashes: &[u64], sig: &mut [u64]) {
        use std::arch::x86_64::*;
        const M29_HI: u64 = ((1 << 29) - 1) << 32;
        let n = self.num_perm;
        let full = n / 8 * 8;
        let split: Vec<[u64; 3]> = hashes
            .iter()
            .map(|&h| {
                let (lo, hi, hi8) = split(h);
                [lo as u64, hi as u64, hi8 as u64]
            })
            .collect();
        let p = _mm512_set1_epi64(P as i64);
        let m29_hi = _mm512_set1_epi64(M29_HI as i64);
        // Blocks of shingles that stay in L1 (24 KB) while every group of
        // eight permutations passes over them.
        for block in split.chunks(1024) {
            for c in (0..full).step_by(8) {
                // SAFETY: c + 8 <= full <= len of each of these arrays.
                let a_lo = _mm512_loadu_si512(self.a_lo64[c..].as_ptr().cast());
                let a_hi = _mm512_loadu_si512(self.a_hi64[c..].as_ptr().cast());
                let b = _mm512_loadu_si512(self.b[c..].as_ptr().cast());
                let mut m = _mm512_loadu_si512(sig[c..].as_ptr().cast());
                for &[lo, hi, hi8] in block {
                    let (h_lo, h_hi, h_hi8) = (
                        _mm512_set1_epi64(lo as i64),
                        _mm512_set1_epi64(hi as i64),
                        _mm512_set1_epi64(hi8 as i64),
                    );
                    // The arithmetic of `mul_add_mod`, eight lanes at a time.
                    let ll = _mm512_mul_epu32(a_lo, h_lo);
                    let mid = _mm512_add_epi64(
                        _mm512_mul_epu32(a_lo, h_hi),
                        _mm512_mul_epu32(a_hi, h_lo),
                    );
                    let hh8 = _mm512_mul_epu32(a_hi, h_hi8);
                    let mut t =
                        _mm512_add_epi64(_mm512_and_si512(ll, p), _mm512_srli_epi64::<61>(ll));
                    t = _mm512_add_epi64(t, _mm512_and_si512(_mm512_slli_epi64::<32>(mid), m29_hi));
                    t = _mm512_add_epi64(t, _mm512_srli_epi64::<29>(mid));
                    t = _mm512_add_epi64(t, _mm512_add_epi64(hh8, b));
                    let r = _mm512_add_epi64(_mm512_and_si512(t, p), _mm512_srli_epi64::<61>(t));
                    // r < 2p: the canonical value is min(r, r - p) (r - p
                    // wraps around when r < p).
                    let v = _mm512_min_epu64(r, _mm512_sub_epi64(r, p));
                    m = _mm512_min_epu64(m, v);
                }
                _mm512_storeu_si512(sig[c..].as_mut_ptr().cast(), m);
            }
        }
        if full < n {
            self.fold_range(hashes, &mut sig[full..], full);
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

    /// Fold into `sig`, which holds permutations `first..first + sig.len()`.
    #[inline(always)]
    fn fold_range(&self, hashes: &[u64], sig: &mut [u64], first: usize) {
        let n = sig.len();
        let (a_lo, a_hi, b) = (
            &self.a_lo[first..first + n],
            &self.a_hi[first..first + n],
            &self.b[first..first + n],
        );
        // Shingles four at a time, permutations innermost: each pass over the
        // parameter arrays (which the compiler turns into SIMD lanes) loads
        // a, b and the running minimum once for four shingles.
        let mut blocks = hashes.chunks_exact(4);
        for hs in &mut blocks {
            let h = [split(hs[0]), split(hs[1]), split(hs[2]), split(hs[3])];
            for j in 0..n {
                let mut m = sig[j] as i64;
                for &(lo, hi, hi8) in &h {
                    m = m.min(mul_add_mod(a_lo[j], a_hi[j], lo, hi, hi8, b[j]) as i64);
                }
                sig[j] = m as u64;
            }
        }
        for &x in blocks.remainder() {
            let (lo, hi, hi8) = split(x);
            for j in 0..n {
                let v = mul_add_mod(a_lo[j], a_hi[j], lo, hi, hi8, b[j]) as i64;
                sig[j] = (sig[j] as i64).min(v) as u64;
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
}

/// A shingle hash reduced mod p, as `(low 32 bits, high bits, 8 · high bits)`
/// (the high bits are < 2^29, so 8 times them still fits in 32 bits).
#[inline(always)]
fn split(h: u64) -> (u32, u32, u32) {
    let h = reduce(h);
    (h as u32, (h >> 32) as u32, ((h >> 32) << 3) as u32)
}

/// `(a · h + b) mod p` for `a, h < p` given as 32-bit halves, with `b < p`.
///
/// With `a = a1·2^32 + a0` and `h = h1·2^32 + h0` (a1, h1 < 2^29):
/// `a·h = a1h1·2^64 + (a1h0 + a0h1)·2^32 + a0h0`, and mod p, 2^61 ≡ 1 and
/// 2^64 ≡ 8. Every term stays below 2^62, so the sum fits in 64 bits. All
/// multiplies are 32 x 32 -> 64 bits, which SIMD has (vpmuludq); values
/// stay below 2^63, so the caller's minimum can be a signed compare.
#[inline(always)]
fn mul_add_mod(a_lo: u32, a_hi: u32, h_lo: u32, h_hi: u32, h_hi8: u32, b: u64) -> u64 {
    const M29: u64 = (1 << 29) - 1;
    let ll = a_lo as u64 * h_lo as u64;
    let mid = a_lo as u64 * h_hi as u64 + a_hi as u64 * h_lo as u64;
    let hh8 = a_hi as u64 * h_hi8 as u64; // a1h1·8 < 2^61
    let s = (ll & P) + (ll >> 61) + ((mid & M29) << 32) + (mid >> 29) + hh8 + b; // < 2^63
    let r = (s & P) + (s >> 61); // <= p + 3
                                 // One conditional subtraction: r - p is negative (as i64) exactly when
                                 // r < p, and a select on the sign is one blend.
    let t = r.wrapping_sub(P);
    if (t as i64) < 0 {
        r
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: u64, h: u64, b: u64) -> u64 {
        ((a as u128 * h as u128 + b as u128) % P as u128) as u64
    }

    #[test]
    fn mul_add_mod_matches_u128() {
        let mut rng = SplitMix64(7);
        let edge = [0, 1, 2, P - 1, P - 2, 1 << 32, (1 << 32) - 1, (1 << 61) - 2];
        for i in 0..100_000 {
            let a = if i < 64 {
                edge[i % 8]
            } else {
                rng.next_u64() % P
            };
            let h = if i < 64 {
                edge[i / 8]
            } else {
                rng.next_u64() % P
            };
            let b = rng.next_u64() % P;
            let got = mul_add_mod(
                a as u32,
                (a >> 32) as u32,
                h as u32,
                (h >> 32) as u32,
                ((h >> 32) << 3) as u32,
                b,
            );
            assert_eq!(got, naive(a, h, b), "a={a} h={h} b={b}");
        }
        for x in [
            0,
            1,
            P - 1,
            P,
            P + 1,
            u64::MAX,
            u64::MAX - 1,
            2 * P,
            2 * P + 1,
        ] {
            assert_eq!(reduce(x), x % P);
        }
    }

    #[test]
    fn signature_is_min_over_shingles() {
        let m = MinHasher::new(16, 2, 3).unwrap();
        let text = "a b c d a b";
        let hs = super::super::shingle::shingle_hashes(text, 2);
        let (a, b) = m.params();
        let want: Vec<u64> = (0..16)
            .map(|j| hs.iter().map(|&h| naive(a[j], h % P, b[j])).min().unwrap())
            .collect();
        assert_eq!(m.signature(text), want);
        assert_eq!(m.signature(""), vec![EMPTY; 16]);
    }

    #[test]
    fn every_kernel_path_matches_the_definition() {
        // 13 and 21 perms: the AVX-512 kernel plus its generic remainder;
        // 3000 words: more than one block of shingles.
        let text: String = (0..3000)
            .map(|i| format!("w{} ", (i * 7919) % 1000))
            .collect();
        let hs = super::super::shingle::shingle_hashes(&text, 3);
        for num_perm in [1, 8, 13, 21, 128] {
            let m = MinHasher::new(num_perm, 3, 11).unwrap();
            let (a, b) = m.params();
            let want: Vec<u64> = (0..num_perm)
                .map(|j| hs.iter().map(|&h| naive(a[j], h % P, b[j])).min().unwrap())
                .collect();
            assert_eq!(m.signature(&text), want, "dispatched, num_perm={num_perm}");
            let mut sig = vec![P; num_perm];
            m.fold_generic(&hs, &mut sig);
            assert_eq!(sig, want, "generic, num_perm={num_perm}");
        }
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
