//! LSH banding: which documents become candidate pairs.
//!
//! A signature of `bands · rows` values (the rest unused) is cut into bands;
//! two documents whose values agree on a whole band land in the same bucket.
//! For Jaccard `s` a pair collides with probability `1 − (1 − s^r)^b`.
//! [`optimal_params`] picks `(b, r)` as datasketch's `_optimal_param` does:
//! minimize `w_fp · ∫_0^t P(s) ds + w_fn · ∫_t^1 (1 − P(s)) ds` over every
//! `b · r <= num_perm`, the first minimum in `b`-then-`r` order winning.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{Error, Result};

fn collide(s: f64, b: i32, r: i32) -> f64 {
    1.0 - (1.0 - s.powi(r)).powi(b)
}

/// ∫_lo^hi f by composite Simpson. The integrands are polynomials in `s`
/// whose steepest case (r = num_perm) is smooth enough that 2,000 panels
/// keep the error far below the gaps between candidate parameters.
fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const N: usize = 2000;
    if hi <= lo {
        return 0.0;
    }
    let h = (hi - lo) / N as f64;
    let mut acc = f(lo) + f(hi);
    for i in 1..N {
        let x = lo + i as f64 * h;
        acc += if i % 2 == 1 { 4.0 } else { 2.0 } * f(x);
    }
    acc * h / 3.0
}

pub fn false_positive_probability(threshold: f64, b: usize, r: usize) -> f64 {
    integrate(|s| collide(s, b as i32, r as i32), 0.0, threshold)
}

pub fn false_negative_probability(threshold: f64, b: usize, r: usize) -> f64 {
    integrate(|s| 1.0 - collide(s, b as i32, r as i32), threshold, 1.0)
}

/// The largest `num_perm` [`optimal_params`] searches (a second or two).
pub const MAX_SEARCH_PERM: usize = 4096;

/// `(bands, rows)` for `threshold` and `num_perm` (datasketch's rule).
pub fn optimal_params(
    threshold: f64,
    num_perm: usize,
    false_positive_weight: f64,
    false_negative_weight: f64,
) -> Result<(usize, usize)> {
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(Error::invalid(format!(
            "threshold must be in (0, 1), got {threshold}"
        )));
    }
    // The search tries every (b, r) with b * r <= num_perm, about
    // num_perm * ln(num_perm) pairs of integrals: bounded so that a typo
    // cannot hang the caller.
    if !(2..=MAX_SEARCH_PERM).contains(&num_perm) {
        return Err(Error::invalid(format!(
            "num_perm must be in [2, {MAX_SEARCH_PERM}] to search bands and rows, got {num_perm} \
             (pass bands and rows yourself beyond that)"
        )));
    }
    let weights_ok = |w: f64| w.is_finite() && w >= 0.0;
    if !weights_ok(false_positive_weight)
        || !weights_ok(false_negative_weight)
        || false_positive_weight + false_negative_weight <= 0.0
    {
        return Err(Error::invalid(format!(
            "false_positive_weight and false_negative_weight must be >= 0 and not both 0, \
             got {false_positive_weight} and {false_negative_weight}"
        )));
    }
    let mut best = f64::INFINITY;
    let mut opt = (0, 0);
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let fp = false_positive_probability(threshold, b, r);
            let fn_ = false_negative_probability(threshold, b, r);
            let err = fp * false_positive_weight + fn_ * false_negative_weight;
            if err < best {
                best = err;
                opt = (b, r);
            }
        }
    }
    Ok(opt)
}

/// Check `(bands, rows)` against a signature length.
pub fn check_bands(bands: usize, rows: usize, num_perm: usize) -> Result<()> {
    if bands == 0 || rows == 0 || bands * rows > num_perm {
        return Err(Error::invalid(format!(
            "bands and rows must be >= 1 with bands * rows <= num_perm ({num_perm}), \
             got bands={bands}, rows={rows}"
        )));
    }
    Ok(())
}

/// The bucket key of band `band` of one signature: xxh3-64 of the band's
/// values (little-endian bytes), seeded with the band index.
#[inline]
pub fn band_key(sig: &[u64], band: usize, rows: usize) -> u64 {
    let vals = &sig[band * rows..(band + 1) * rows];
    // Copy into a stack buffer: one hash call over contiguous bytes.
    let mut buf = [0u8; 8 * 64];
    if rows <= 64 {
        for (i, v) in vals.iter().enumerate() {
            buf[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        return xxh3_64_with_seed(&buf[..8 * rows], band as u64);
    }
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    xxh3_64_with_seed(&bytes, band as u64)
}

/// Band keys of a row-major `(n, num_perm)` signature buffer as a row-major
/// `(n, bands)` buffer.
pub fn band_keys(sigs: &[u64], num_perm: usize, bands: usize, rows: usize) -> Vec<u64> {
    sigs.chunks_exact(num_perm)
        .flat_map(|sig| (0..bands).map(move |band| band_key(sig, band, rows)))
        .collect()
}

/// Signature Jaccard: the fraction of positions where two signatures agree.
#[inline]
pub fn signature_similarity(x: &[u64], y: &[u64]) -> f64 {
    let eq = x.iter().zip(y).filter(|(a, b)| a == b).count();
    eq as f64 / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasketch_choices() {
        // datasketch 2.0 `_optimal_param(t, n, 0.5, 0.5)` (checked against the
        // installed datasketch in the Python tests as well).
        assert_eq!(optimal_params(0.5, 128, 0.5, 0.5).unwrap(), (25, 5));
        assert_eq!(optimal_params(0.8, 128, 0.5, 0.5).unwrap(), (9, 13));
        assert_eq!(optimal_params(0.9, 256, 0.5, 0.5).unwrap(), (9, 28));
        assert_eq!(optimal_params(0.8, 128, 0.1, 0.9).unwrap(), (14, 9));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = optimal_params(1.5, 128, 0.5, 0.5).unwrap_err();
        assert!(e.to_string().contains("threshold"));
        let e = optimal_params(0.5, 1, 0.5, 0.5).unwrap_err();
        assert!(e.to_string().contains("num_perm"));
        assert!(check_bands(3, 50, 128).is_err());
        assert!(check_bands(2, 64, 128).is_ok());
    }

    #[test]
    fn higher_threshold_means_more_rows() {
        let (_, r_lo) = optimal_params(0.3, 128, 0.5, 0.5).unwrap();
        let (_, r_hi) = optimal_params(0.9, 128, 0.5, 0.5).unwrap();
        assert!(r_hi > r_lo);
    }

    #[test]
    fn keys_depend_on_band_values_and_index() {
        let s = [1u64, 2, 3, 4, 1, 2, 3, 4];
        assert_ne!(band_key(&s, 0, 4), band_key(&s, 1, 4)); // seeded by band
        let t = [1u64, 2, 3, 4, 9, 9, 9, 9];
        assert_eq!(band_key(&s, 0, 4), band_key(&t, 0, 4));
        assert_eq!(band_keys(&s, 8, 2, 4).len(), 2);
        assert_eq!(signature_similarity(&s, &t), 0.5);
    }
}
