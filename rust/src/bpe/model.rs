//! The BPE model: vocabulary, merge table, special tokens, and the encoder
//! and decoder over them.
//!
//! Two merge semantics are supported, both as "repeatedly merge the adjacent
//! pair of lowest rank, leftmost first":
//! - Hugging Face (`from_merges`): a pair's rank is its index in `merges`.
//! - tiktoken (`from_ranks`): a pair's rank is the rank of the token the two
//!   parts concatenate to.
//!
//! Both are stored the same way, as a map from an id pair to (rank, merged
//! id), so the encoder has one code path.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::FxHashMap;

use super::pretok::Pretokenizer;
use crate::error::{Error, Result};
use crate::guard::{self, Doc};

/// Pieces longer than this use the heap-based merge (O(n log n)); shorter
/// ones the simple scan, which is faster for the short pieces that make up
/// almost all text.
const LONG_PIECE: usize = 96;

const NO_MERGE: u64 = u64::MAX;

/// Pieces that are not whole tokens (words split into several tokens, runs
/// of CJK text) recur; each thread remembers their ids. The cache belongs to
/// one model at a time and is emptied when full, so memory stays bounded.
const CACHE_ENTRIES: usize = 1 << 16;
const CACHE_PIECE_BYTES: usize = 256;

struct PieceCache {
    owner: u64,
    map: FxHashMap<Box<[u8]>, Box<[u32]>>,
}

thread_local! {
    static CACHE: RefCell<PieceCache> = RefCell::new(PieceCache {
        owner: u64::MAX,
        map: FxHashMap::default(),
    });
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(0);

/// Pieces of up to 7 bytes (most words) are looked up by a key packed into
/// one u64 — bytes in the low 56 bits, length in the top 8 — so the lookup
/// touches one hash-table slot instead of chasing a pointer to heap bytes.
const SHORT_PIECE: usize = 7;

#[inline]
fn short_key(piece: &[u8]) -> u64 {
    debug_assert!(piece.len() <= SHORT_PIECE);
    let mut buf = [0u8; 8];
    buf[..piece.len()].copy_from_slice(piece);
    u64::from_le_bytes(buf) | (piece.len() as u64) << 56
}

#[inline]
fn pair_key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// Which special tokens found in text become their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialMode {
    /// Special-token text is an error (the caller did not allow it).
    Reject,
    /// Special-token text becomes the special token's id.
    Allow,
    /// Special-token text is encoded as ordinary text.
    Ignore,
}

pub struct Bpe {
    /// id → bytes, for every id below `vocab_size` (empty for unused ids).
    token_bytes: Vec<Vec<u8>>,
    /// bytes → id, every ordinary token.
    vocab: FxHashMap<Vec<u8>, u32>,
    /// bytes → id, for the tokens a piece may map to directly: those that
    /// BPE itself would produce from their bytes. Skips the merge loop for
    /// the (many) pieces that are whole tokens. Split by length: `direct_short`
    /// holds those of at most SHORT_PIECE bytes under `short_key`.
    direct: FxHashMap<Vec<u8>, u32>,
    direct_short: FxHashMap<u64, u32>,
    byte_ids: [u32; 256],
    /// (left, right) → rank << 32 | merged id.
    pairs: FxHashMap<u64, u64>,
    /// Merges in rank order (for saving), as id pairs.
    merges: Vec<(u32, u32)>,
    specials: Vec<(String, u32)>,
    special_matcher: Option<AhoCorasick>,
    pretok: Pretokenizer,
    vocab_size: usize,
    /// Whole-token pieces map to the token without merging (tiktoken, and
    /// HF files with `ignore_merges`).
    ignore_merges: bool,
    /// Identifies this model to the per-thread piece cache.
    cache_id: u64,
    /// Normalize ordinary text to NFC before splitting (HF `normalizer: NFC`,
    /// as Qwen's tokenizer.json has).
    nfc: bool,
}

impl Bpe {
    /// Hugging Face semantics: `vocab` maps token bytes to ids and `merges`
    /// are in priority order. With `ignore_merges` (Llama-3 style), a piece
    /// that is itself a token maps to it without merging.
    pub fn from_merges(
        vocab: Vec<(Vec<u8>, u32)>,
        merges: &[(Vec<u8>, Vec<u8>)],
        specials: Vec<(String, u32)>,
        pattern: &str,
        ignore_merges: bool,
    ) -> Result<Self> {
        let mut bpe = Self::with_vocab(vocab, specials, pattern)?;
        bpe.merges.reserve(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let (ia, ib) = match (bpe.vocab.get(a.as_slice()), bpe.vocab.get(b.as_slice())) {
                (Some(&ia), Some(&ib)) => (ia, ib),
                _ => {
                    return Err(Error::invalid(format!(
                        "merges[{rank}] ({}, {}) names a token that is not in the vocabulary",
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b)
                    )))
                }
            };
            let mut joined = a.clone();
            joined.extend_from_slice(b);
            let Some(&id) = bpe.vocab.get(&joined) else {
                return Err(Error::invalid(format!(
                    "merges[{rank}] ({}, {}) makes {:?}, which is not in the vocabulary",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b),
                    String::from_utf8_lossy(&joined)
                )));
            };
            // A repeated merge keeps its first (highest-priority) rank, as in HF.
            bpe.pairs
                .entry(pair_key(ia, ib))
                .or_insert(((rank as u64) << 32) | id as u64);
            bpe.merges.push((ia, ib));
        }
        bpe.build_direct(ignore_merges);
        Ok(bpe)
    }

    /// tiktoken semantics: `ranks` maps token bytes to rank (= id).
    pub fn from_ranks(
        ranks: Vec<(Vec<u8>, u32)>,
        specials: Vec<(String, u32)>,
        pattern: &str,
    ) -> Result<Self> {
        let mut bpe = Self::with_vocab(ranks, specials, pattern)?;
        // Every split of a token into two tokens is a candidate merge with
        // the token's rank; sorted by (rank, left, right) they also form the
        // HF merges list that `save` writes.
        let mut merges: Vec<(u32, u32, u32)> = Vec::new();
        for (bytes, &id) in &bpe.vocab {
            for k in 1..bytes.len() {
                if let (Some(&l), Some(&r)) =
                    (bpe.vocab.get(&bytes[..k]), bpe.vocab.get(&bytes[k..]))
                {
                    merges.push((id, l, r));
                }
            }
        }
        merges.sort_unstable();
        for &(id, l, r) in &merges {
            bpe.pairs
                .insert(pair_key(l, r), ((id as u64) << 32) | id as u64);
            bpe.merges.push((l, r));
        }
        // tiktoken maps a piece that is a whole token straight to it.
        bpe.build_direct(true);
        Ok(bpe)
    }

    fn with_vocab(
        vocab: Vec<(Vec<u8>, u32)>,
        specials: Vec<(String, u32)>,
        pattern: &str,
    ) -> Result<Self> {
        let pretok = Pretokenizer::new(pattern)?;
        let max_id = vocab
            .iter()
            .map(|(_, id)| *id)
            .chain(specials.iter().map(|(_, id)| *id))
            .max()
            .ok_or_else(|| Error::invalid("the vocabulary is empty"))?;
        let vocab_size = max_id as usize + 1;
        let mut token_bytes = vec![Vec::new(); vocab_size];
        let mut map = FxHashMap::default();
        map.reserve(vocab.len());
        for (bytes, id) in vocab {
            if bytes.is_empty() {
                return Err(Error::invalid(format!("token id {id} is empty")));
            }
            if !token_bytes[id as usize].is_empty() {
                return Err(Error::invalid(format!("token id {id} is used twice")));
            }
            token_bytes[id as usize] = bytes.clone();
            if let Some(prev) = map.insert(bytes, id) {
                return Err(Error::invalid(format!(
                    "tokens {prev} and {id} have the same bytes"
                )));
            }
        }
        let mut byte_ids = [u32::MAX; 256];
        for b in 0..=255u8 {
            match map.get([b].as_slice()) {
                Some(&id) => byte_ids[b as usize] = id,
                None => {
                    return Err(Error::invalid(format!(
                        "the vocabulary has no token for byte 0x{b:02x}: a byte-level BPE needs all 256"
                    )))
                }
            }
        }
        for (s, id) in &specials {
            if s.is_empty() {
                return Err(Error::invalid(format!("special token {id} is empty")));
            }
            let slot = &mut token_bytes[*id as usize];
            if !slot.is_empty() {
                return Err(Error::invalid(format!(
                    "special token {s:?} has id {id}, which an ordinary token already uses"
                )));
            }
            *slot = s.as_bytes().to_vec();
        }
        let special_matcher = if specials.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(specials.iter().map(|(s, _)| s.as_str()))
                    .map_err(|e| Error::invalid(format!("special tokens: {e}")))?,
            )
        };
        Ok(Self {
            token_bytes,
            vocab: map,
            direct: FxHashMap::default(),
            direct_short: FxHashMap::default(),
            byte_ids,
            pairs: FxHashMap::default(),
            merges: Vec::new(),
            specials,
            special_matcher,
            pretok,
            vocab_size,
            ignore_merges: false,
            cache_id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            nfc: false,
        })
    }

    /// HF semantics: a token may be used directly only if merging its own
    /// bytes produces it (or, with `ignore_merges`, always).
    fn build_direct(&mut self, ignore_merges: bool) {
        self.ignore_merges = ignore_merges;
        let mut direct = FxHashMap::default();
        let mut short = FxHashMap::default();
        let mut buf = Vec::new();
        for (bytes, &id) in &self.vocab {
            if !ignore_merges {
                buf.clear();
                self.merge_piece(bytes, &mut buf);
                if !(buf.len() == 1 && buf[0] == id) {
                    continue;
                }
            }
            if bytes.len() <= SHORT_PIECE {
                short.insert(short_key(bytes), id);
            } else {
                direct.insert(bytes.clone(), id);
            }
        }
        self.direct = direct;
        self.direct_short = short;
    }

    /// Normalize text to NFC before encoding (HF's NFC normalizer).
    pub fn set_nfc(&mut self, on: bool) {
        self.nfc = on;
    }

    pub fn nfc(&self) -> bool {
        self.nfc
    }

    pub fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn pattern(&self) -> &str {
        self.pretok.pattern()
    }

    pub fn specials(&self) -> &[(String, u32)] {
        &self.specials
    }

    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    /// The bytes of token `id` (specials: their text), if the id is used.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.token_bytes
            .get(id as usize)
            .filter(|b| !b.is_empty())
            .map(Vec::as_slice)
    }

    /// The id of an ordinary token given by its bytes.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.vocab.get(bytes).copied()
    }

    /// The special token with this id, if it is one.
    pub fn special_id_of(&self, id: u32) -> Option<&str> {
        self.specials
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(s, _)| s.as_str())
    }

    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.specials
            .iter()
            .find(|(s, _)| s == text)
            .map(|(_, id)| *id)
    }

    #[inline]
    fn pair(&self, a: u32, b: u32) -> u64 {
        *self.pairs.get(&pair_key(a, b)).unwrap_or(&NO_MERGE)
    }

    /// BPE-merge one pre-tokenized piece into `out`.
    #[inline]
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        let hit = if piece.len() <= SHORT_PIECE {
            self.direct_short.get(&short_key(piece))
        } else {
            self.direct.get(piece)
        };
        if let Some(&id) = hit {
            out.push(id);
            return;
        }
        if piece.len() > CACHE_PIECE_BYTES {
            return self.merge_piece(piece, out);
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.owner != self.cache_id {
                cache.map.clear();
                cache.owner = self.cache_id;
            }
            if let Some(ids) = cache.map.get(piece) {
                out.extend_from_slice(ids);
                return;
            }
            let start = out.len();
            self.merge_piece(piece, out);
            if cache.map.len() >= CACHE_ENTRIES {
                cache.map.clear();
            }
            cache.map.insert(piece.into(), out[start..].into());
        })
    }

    fn merge_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() > LONG_PIECE {
            return self.merge_long(piece, out);
        }
        // Simple scan: `best[i]` is the merge of (ids[i], ids[i+1]).
        let mut ids: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let mut best: Vec<u64> = ids.windows(2).map(|w| self.pair(w[0], w[1])).collect();
        loop {
            let mut min = NO_MERGE;
            let mut at = 0;
            for (i, &m) in best.iter().enumerate() {
                if m < min {
                    min = m;
                    at = i;
                }
            }
            if min == NO_MERGE {
                break;
            }
            ids[at] = min as u32;
            ids.remove(at + 1);
            best.remove(at);
            if at > 0 {
                best[at - 1] = self.pair(ids[at - 1], ids[at]);
            }
            if at < best.len() {
                best[at] = self.pair(ids[at], ids[at + 1]);
            }
        }
        out.extend_from_slice(&ids);
    }

    /// Heap-based merge for long pieces (a megabyte of one letter is one
    /// piece): O(n log n) instead of the scan's O(n²). Symbols form a linked
    /// list; stale heap entries are skipped when popped.
    fn merge_long(&self, piece: &[u8], out: &mut Vec<u32>) {
        let n = piece.len();
        let mut ids: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let mut next: Vec<usize> = (1..=n).collect(); // n = none
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect(); // usize::MAX = none
        let mut alive = vec![true; n];
        // (rank, position, left id, right id), smallest first.
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            let m = self.pair(ids[i], ids[i + 1]);
            if m != NO_MERGE {
                heap.push(Reverse(((m >> 32) as u32, i, ids[i], ids[i + 1])));
            }
        }
        while let Some(Reverse((_, i, l, r))) = heap.pop() {
            let j = next[i];
            if !alive[i] || j >= n || ids[i] != l || ids[j] != r {
                continue;
            }
            let m = self.pair(l, r);
            ids[i] = m as u32;
            alive[j] = false;
            let k = next[j];
            next[i] = k;
            if k < n {
                prev[k] = i;
                let m = self.pair(ids[i], ids[k]);
                if m != NO_MERGE {
                    heap.push(Reverse(((m >> 32) as u32, i, ids[i], ids[k])));
                }
            }
            let p = prev[i];
            if p != usize::MAX {
                let m = self.pair(ids[p], ids[i]);
                if m != NO_MERGE {
                    heap.push(Reverse(((m >> 32) as u32, p, ids[p], ids[i])));
                }
            }
        }
        let mut i = 0;
        while i < n {
            out.push(ids[i]);
            i = next[i];
        }
    }

    /// Encode text with no special-token handling.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) {
        use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
        if self.nfc && is_nfc_quick(text.chars()) != IsNormalized::Yes {
            let normalized: String = text.nfc().collect();
            for piece in self.pretok.split(&normalized) {
                self.encode_piece(piece.as_bytes(), out);
            }
            return;
        }
        for piece in self.pretok.split(text) {
            self.encode_piece(piece.as_bytes(), out);
        }
    }

    /// Encode `text`. Special-token text is handled by `mode`; with
    /// `Reject`, specials listed in `allowed` still become ids.
    pub fn encode_into(
        &self,
        text: &str,
        mode: SpecialMode,
        allowed: &[bool],
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let matcher = match (&self.special_matcher, mode) {
            (Some(m), SpecialMode::Allow | SpecialMode::Reject) => m,
            _ => {
                self.encode_ordinary_into(text, out);
                return Ok(());
            }
        };
        let mut start = 0;
        for m in matcher.find_iter(text) {
            let k = m.pattern().as_usize();
            let ok = mode == SpecialMode::Allow || allowed.get(k).copied().unwrap_or(false);
            if !ok {
                return Err(Error::invalid(format!(
                    "the text contains the special token {:?} at byte {}; allow it with \
                     allowed_special, or encode it as ordinary text with disallowed_special=()",
                    self.specials[k].0,
                    m.start()
                )));
            }
            self.encode_ordinary_into(&text[start..m.start()], out);
            out.push(self.specials[k].1);
            start = m.end();
        }
        self.encode_ordinary_into(&text[start..], out);
        Ok(())
    }

    /// [`encode_into`](Self::encode_into) over a batch in parallel (call it
    /// on the pool), under the one panic policy (`crate::guard`): a text
    /// whose encoding panics comes back as [`Doc::Failed`] (no ids), a null
    /// row as [`Doc::Null`]. A special-token error is the text's `Err`.
    ///
    /// A panic cannot leave the per-thread piece cache wrong for the next
    /// text: its `RefCell` borrow ends as the panic unwinds, and a piece's
    /// ids are inserted only after they are complete.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[Option<S>],
        mode: SpecialMode,
        allowed: &[bool],
    ) -> Vec<Doc<Result<Vec<u32>>>> {
        guard::map_documents(texts, |t| {
            let t = t.as_ref();
            let mut ids = Vec::with_capacity(t.len() / 3 + 1);
            self.encode_into(t, mode, allowed, &mut ids).map(|_| ids)
        })
    }

    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_ordinary_into(text, &mut out);
        out
    }

    /// Concatenated bytes of `ids`; an id outside the vocabulary is an error.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match self.token_bytes(id) {
                Some(b) => out.extend_from_slice(b),
                None => {
                    return Err(Error::invalid(format!(
                        "token id {id} is not in the vocabulary (size {})",
                        self.vocab_size
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpe::pretok::GPT2_PATTERN;

    fn bytes_vocab() -> Vec<(Vec<u8>, u32)> {
        (0..=255u8).map(|b| (vec![b], b as u32)).collect()
    }

    fn toy_hf() -> Bpe {
        // merges: "a b" → "ab" (256), "ab c" → "abc" (257), "b c" → "bc" (258)
        let mut v = bytes_vocab();
        v.push((b"ab".to_vec(), 256));
        v.push((b"abc".to_vec(), 257));
        v.push((b"bc".to_vec(), 258));
        let merges = vec![
            (b"a".to_vec(), b"b".to_vec()),
            (b"ab".to_vec(), b"c".to_vec()),
            (b"b".to_vec(), b"c".to_vec()),
        ];
        Bpe::from_merges(
            v,
            &merges,
            vec![("<|eot|>".into(), 259)],
            GPT2_PATTERN,
            false,
        )
        .unwrap()
    }

    #[test]
    fn the_batch_is_each_text_encoded() {
        let bpe = toy_hf();
        let texts = [Some("abc bc"), None, Some("x <|eot|>")];
        let out =
            crate::pool::install(|| bpe.encode_batch(&texts, SpecialMode::Allow, &[])).unwrap();
        let ids: Vec<Option<Vec<u32>>> = out
            .iter()
            .map(|d| d.ok().map(|r| r.as_ref().unwrap().clone()))
            .collect();
        let mut want = Vec::new();
        bpe.encode_into("x <|eot|>", SpecialMode::Allow, &[], &mut want)
            .unwrap();
        assert_eq!(
            ids,
            vec![Some(bpe.encode_ordinary("abc bc")), None, Some(want)]
        );
        // A special-token error is that text's Err, not a panic.
        let out = crate::pool::install(|| bpe.encode_batch(&texts, SpecialMode::Reject, &[false]))
            .unwrap();
        assert!(matches!(&out[2], Doc::Done(Err(_))));
        assert!(matches!(&out[0], Doc::Done(Ok(_))));
    }

    #[test]
    fn merges_follow_rank_order() {
        let bpe = toy_hf();
        assert_eq!(bpe.encode_ordinary("abc"), vec![257]);
        assert_eq!(bpe.encode_ordinary("bc"), vec![258]);
        assert_eq!(bpe.encode_ordinary("abcbc"), vec![257, 258]);
        assert_eq!(bpe.encode_ordinary("x"), vec![b'x' as u32]);
    }

    #[test]
    fn unreachable_tokens_are_not_used_directly() {
        // "abd" is in the vocab but no merge makes it: HF encodes by merges.
        let mut v = bytes_vocab();
        v.push((b"ab".to_vec(), 256));
        v.push((b"abd".to_vec(), 257));
        let merges = vec![(b"a".to_vec(), b"b".to_vec())];
        let bpe = Bpe::from_merges(v, &merges, vec![], GPT2_PATTERN, false).unwrap();
        assert_eq!(bpe.encode_ordinary("abd"), vec![256, b'd' as u32]);
    }

    #[test]
    fn long_and_short_paths_agree() {
        let bpe = toy_hf();
        let text: String = "abc".repeat(200);
        let mut short = Vec::new();
        for _ in 0..200 {
            short.extend(bpe.encode_ordinary("abc"));
        }
        let mut long = Vec::new();
        bpe.merge_long(text.as_bytes(), &mut long);
        assert_eq!(long, short);
        let mut scan = Vec::new();
        // force the scan on the same long input
        let ids_scan = {
            let mut ids: Vec<u32> = text.bytes().map(|b| b as u32).collect();
            loop {
                let best = ids
                    .windows(2)
                    .enumerate()
                    .map(|(i, w)| (bpe.pair(w[0], w[1]), i))
                    .min();
                match best {
                    Some((m, i)) if m != NO_MERGE => {
                        ids[i] = m as u32;
                        ids.remove(i + 1);
                    }
                    _ => break,
                }
            }
            ids
        };
        scan.extend(ids_scan);
        assert_eq!(long, scan);
    }

    #[test]
    fn tiktoken_ranks_use_leftmost_lowest() {
        let mut v = bytes_vocab();
        v.push((b"aa".to_vec(), 256));
        v.push((b"aaa".to_vec(), 257));
        let bpe = Bpe::from_ranks(v, vec![], GPT2_PATTERN).unwrap();
        assert_eq!(bpe.encode_ordinary("aaa"), vec![257]);
        // 5 a's: aa aa a → (aa,a)=aaa? pieces "aaaaa": aa,aa,a then aa+a → [aa, aaa]
        assert_eq!(bpe.encode_ordinary("aaaaa"), vec![256, 257]);
    }

    #[test]
    fn specials_rejected_allowed_or_ignored() {
        let bpe = toy_hf();
        let mut out = Vec::new();
        let err = bpe
            .encode_into("x<|eot|>y", SpecialMode::Reject, &[false], &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("<|eot|>"));
        out.clear();
        bpe.encode_into("x<|eot|>y", SpecialMode::Reject, &[true], &mut out)
            .unwrap();
        assert_eq!(out, vec![b'x' as u32, 259, b'y' as u32]);
        out.clear();
        bpe.encode_into("x<|eot|>", SpecialMode::Ignore, &[], &mut out)
            .unwrap();
        assert!(!out.contains(&259));
        assert_eq!(bpe.decode_bytes(&out).unwrap(), b"x<|eot|>");
    }

    #[test]
    fn decode_rejects_unknown_ids() {
        let bpe = toy_hf();
        assert_eq!(bpe.decode_bytes(&[257, 259]).unwrap(), b"abc<|eot|>");
        assert!(bpe
            .decode_bytes(&[100_000])
            .unwrap_err()
            .to_string()
            .contains("100000"));
    }

    #[test]
    fn bad_vocabularies_are_errors() {
        let v: Vec<(Vec<u8>, u32)> = (0..=254u8).map(|b| (vec![b], b as u32)).collect();
        let e = Bpe::from_merges(v, &[], vec![], GPT2_PATTERN, false)
            .err()
            .unwrap();
        assert!(e.to_string().contains("0xff"));
        let e = Bpe::from_merges(
            bytes_vocab(),
            &[(b"a".to_vec(), b"q".to_vec())],
            vec![],
            GPT2_PATTERN,
            false,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("merges[0]"));
    }
}
