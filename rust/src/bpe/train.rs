//! Byte-level BPE training that reproduces Hugging Face `BpeTrainer` (with a
//! `Split` + `ByteLevel` pre-tokenizer and `initial_alphabet =
//! ByteLevel.alphabet()`) merge for merge, id for id.
//!
//! Streaming: `feed` splits each batch in parallel and keeps only the count of
//! every distinct pre-token; `finish` runs the merges.
//!
//! The rules that fix the output, as in tokenizers/src/models/bpe/trainer.rs:
//! - ids: the special tokens first (in order, repeats skipped), then the 256
//!   bytes ordered by the code point of their GPT-2 byte-level character
//!   (`!`..`~`, `¡`..`¬`, `®`..`ÿ`, then the bytes mapped above U+00FF), then
//!   each new token in the order it is made;
//! - the next merge is the pair with the highest count, ties going to the
//!   smallest (left id, right id); counts are of adjacent symbol pairs, so
//!   `aaa` counts `(a, a)` twice;
//! - a merge whose token already exists (two pairs can spell the same bytes)
//!   reuses that id and does not grow the vocabulary; training stops when
//!   the vocabulary reaches `vocab_size`, when no pair is left, or when the
//!   best count is below `min_frequency`;
//! - every queue entry carries the words it was pushed for and a merge only
//!   rewrites those words. A pair re-created after a reused id can then hold
//!   two entries and be merged twice; `TrainOutput::merges` lists it once, at
//!   its last rank, as HF's saved `tokenizer.json` does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::bpe::pretok::Pretokenizer;
use crate::error::{Error, Result};
use crate::pool;

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Pre-tokenization regex; merges never cross its pieces.
    pub pattern: String,
    /// Final vocabulary size, special tokens and the 256 bytes included.
    pub vocab_size: usize,
    /// A pair seen fewer times than this is never merged.
    pub min_frequency: u64,
    /// Tokens placed first in the vocabulary, in this order.
    pub special_tokens: Vec<String>,
}

/// The trained model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainOutput {
    /// Merges in rank order, as (left bytes, right bytes).
    pub merges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Token bytes by id. The first `num_special` entries are the special
    /// tokens (their UTF-8 bytes); the rest are byte strings.
    pub vocab: Vec<Vec<u8>>,
    /// How many distinct special tokens lead `vocab`.
    pub num_special: usize,
}

/// Streaming trainer: `feed` batches of text, then `finish`.
pub struct Trainer {
    config: TrainConfig,
    pretok: Pretokenizer,
    /// Count of every distinct pre-token seen so far.
    words: FxHashMap<Box<[u8]>, u64>,
}

impl Trainer {
    pub fn new(config: TrainConfig) -> Result<Self> {
        let pretok = Pretokenizer::new(&config.pattern)?;
        if let Some(i) = config.special_tokens.iter().position(|s| s.is_empty()) {
            return Err(Error::invalid(format!("special_tokens[{i}] is empty")));
        }
        let init = initial_vocab(&config.special_tokens);
        if config.vocab_size < init.keys.len() {
            return Err(Error::invalid(format!(
                "vocab_size {} is smaller than the initial vocabulary ({} special tokens \
                 and the 256 bytes: {})",
                config.vocab_size,
                init.specials.len(),
                init.keys.len(),
            )));
        }
        Ok(Self {
            config,
            pretok,
            words: FxHashMap::default(),
        })
    }

    /// Number of distinct pre-tokens counted so far.
    pub fn num_words(&self) -> usize {
        self.words.len()
    }

    /// Split `texts` (in parallel on the shared pool) and add their pieces'
    /// counts. Only the counts are kept, never the text.
    pub fn feed(&mut self, texts: &[&str]) -> Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        let pretok = &self.pretok;
        let threads = pool::num_threads()?;
        // A few chunks per thread so uneven documents still balance; each
        // chunk counts into a map of borrowed slices (no allocation per
        // piece), and only distinct pieces are copied into the global map.
        let chunk = texts.len().div_ceil(threads * 4).max(1);
        let locals: Vec<FxHashMap<&str, u64>> = pool::install(|| {
            texts
                .par_chunks(chunk)
                .map(|part| {
                    let mut m: FxHashMap<&str, u64> = FxHashMap::default();
                    for text in part {
                        for piece in pretok.split(text) {
                            *m.entry(piece).or_insert(0) += 1;
                        }
                    }
                    m
                })
                .collect()
        })?;
        for local in locals {
            self.words.reserve(local.len() / 2);
            for (piece, n) in local {
                match self.words.get_mut(piece.as_bytes()) {
                    Some(c) => *c += n,
                    None => {
                        self.words.insert(piece.as_bytes().into(), n);
                    }
                }
            }
        }
        Ok(())
    }

    /// Add pre-counted words (bytes → count), bypassing the splitter.
    pub fn feed_counts<'a>(&mut self, counts: impl IntoIterator<Item = (&'a [u8], u64)>) {
        for (w, n) in counts {
            match self.words.get_mut(w) {
                Some(c) => *c += n,
                None => {
                    self.words.insert(w.into(), n);
                }
            }
        }
    }

    /// Run the merges. `progress(done, total)` is called as the vocabulary
    /// grows, about every 1% of `total` new tokens and once at the end.
    pub fn finish(self, progress: impl FnMut(usize, usize)) -> Result<TrainOutput> {
        let Trainer { config, words, .. } = self;
        train(&config, words, progress)
    }
}

/// The byte → GPT-2 byte-level character code point (ByteLevel's alphabet).
fn byte_level_char(b: u8) -> u32 {
    match b {
        b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF => b as u32,
        _ => {
            // The others, in byte order, take 256, 257, ...
            let below = (0..b)
                .filter(|&x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
                .count();
            256 + below as u32
        }
    }
}

/// The bytes a special token collides with: what its characters spell in the
/// byte-level alphabet, when every character is in it (HF compares vocabulary
/// strings, and a merged token is stored as those characters).
fn special_key(token: &str) -> Option<Vec<u8>> {
    let mut back = [None; 512];
    for b in 0..=255u8 {
        back[byte_level_char(b) as usize] = Some(b);
    }
    token
        .chars()
        .map(|c| back.get(c as usize).copied().flatten())
        .collect()
}

/// Key of a vocabulary entry: token bytes, or a special token that spells no
/// bytes (it can collide with nothing but an equal special token).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Bytes(Vec<u8>),
    Special(String),
}

/// The vocabulary before any merge.
struct Initial {
    /// Keys by id.
    keys: Vec<Key>,
    /// Ids of keys.
    ids: FxHashMap<Key, u32>,
    /// The distinct special tokens, which hold ids `0..specials.len()`.
    specials: Vec<String>,
    /// Id of each byte.
    byte_id: [u32; 256],
}

fn initial_vocab(special_tokens: &[String]) -> Initial {
    let mut keys: Vec<Key> = Vec::new();
    let mut ids: FxHashMap<Key, u32> = FxHashMap::default();
    let mut specials = Vec::new();
    for t in special_tokens {
        let k = match special_key(t) {
            Some(b) => Key::Bytes(b),
            None => Key::Special(t.clone()),
        };
        if !ids.contains_key(&k) {
            ids.insert(k.clone(), keys.len() as u32);
            keys.push(k);
            specials.push(t.clone());
        }
    }
    let mut order: Vec<u8> = (0..=255).collect();
    order.sort_by_key(|&b| byte_level_char(b));
    let mut byte_id = [0u32; 256];
    for b in order {
        let k = Key::Bytes(vec![b]);
        byte_id[b as usize] = match ids.get(&k) {
            Some(&id) => id,
            None => {
                let id = keys.len() as u32;
                ids.insert(k.clone(), id);
                keys.push(k);
                id
            }
        };
    }
    Initial {
        keys,
        ids,
        specials,
        byte_id,
    }
}

#[inline]
fn pack(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

#[inline]
fn unpack(p: u64) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// A queue entry: a pair, its count when pushed, and the words it was pushed
/// for (`slot` into `Slots`). Max-heap order: count, then the smaller pair.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry {
    count: u64,
    pair: u64,
    slot: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.count
            .cmp(&other.count)
            .then_with(|| other.pair.cmp(&self.pair))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Word lists of queue entries, with freed lists reused (no allocation per
/// push once warm).
#[derive(Default)]
struct Slots {
    lists: Vec<Vec<u32>>,
    free: Vec<u32>,
}

impl Slots {
    fn put(&mut self, words: Vec<u32>) -> u32 {
        match self.free.pop() {
            Some(s) => {
                self.lists[s as usize] = words;
                s
            }
            None => {
                self.lists.push(words);
                (self.lists.len() - 1) as u32
            }
        }
    }

    fn take(&mut self, slot: u32) -> Vec<u32> {
        self.free.push(slot);
        std::mem::take(&mut self.lists[slot as usize])
    }
}

/// All words as symbol ids in one flat array: word `w` lives at
/// `syms[start[w]..start[w] + len[w]]` and shrinks in place as it merges.
struct Words {
    syms: Vec<u32>,
    start: Vec<u32>,
    len: Vec<u32>,
    count: Vec<u64>,
}

fn build_words(words: FxHashMap<Box<[u8]>, u64>, byte_id: &[u32; 256]) -> Words {
    // Single-byte words hold no pair and never change the result.
    let mut list: Vec<(Box<[u8]>, u64)> = words.into_iter().filter(|(w, _)| w.len() > 1).collect();
    // A fixed order keeps every internal list the same from run to run (the
    // output does not depend on it, but debugging is easier).
    list.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let total: usize = list.iter().map(|(w, _)| w.len()).sum();
    let mut out = Words {
        syms: Vec::with_capacity(total),
        start: Vec::with_capacity(list.len()),
        len: Vec::with_capacity(list.len()),
        count: Vec::with_capacity(list.len()),
    };
    for (w, n) in list {
        out.start.push(out.syms.len() as u32);
        out.len.push(w.len() as u32);
        out.count.push(n);
        out.syms.extend(w.iter().map(|&b| byte_id[b as usize]));
    }
    out
}

/// Initial pair counts and, per pair, the words holding it (each once), in
/// parallel over word ranges; the per-range maps are merged in range order.
fn count_pairs(words: &Words) -> FxHashMap<u64, (u64, Vec<u32>)> {
    let n = words.start.len();
    let parts = (rayon::current_num_threads() * 4).max(1);
    let step = n.div_ceil(parts).max(1);
    let maps: Vec<FxHashMap<u64, (u64, Vec<u32>)>> = (0..n.div_ceil(step))
        .into_par_iter()
        .map(|p| {
            let mut m: FxHashMap<u64, (u64, Vec<u32>)> = FxHashMap::default();
            for w in p * step..((p + 1) * step).min(n) {
                let s = words.start[w] as usize;
                let syms = &words.syms[s..s + words.len[w] as usize];
                let c = words.count[w];
                for win in syms.windows(2) {
                    let e = m.entry(pack(win[0], win[1])).or_default();
                    e.0 += c;
                    if e.1.last() != Some(&(w as u32)) {
                        e.1.push(w as u32);
                    }
                }
            }
            m
        })
        .collect();
    let mut it = maps.into_iter();
    let mut all = it.next().unwrap_or_default();
    for m in it {
        for (pair, (c, ws)) in m {
            let e = all.entry(pair).or_default();
            e.0 += c;
            e.1.extend_from_slice(&ws);
        }
    }
    all
}

fn train(
    config: &TrainConfig,
    words: FxHashMap<Box<[u8]>, u64>,
    mut progress: impl FnMut(usize, usize),
) -> Result<TrainOutput> {
    let Initial {
        mut keys,
        mut ids,
        specials,
        byte_id,
    } = initial_vocab(&config.special_tokens);
    let num_special = specials.len();
    let initial = keys.len();
    let total = config.vocab_size.saturating_sub(initial);

    // The parallel part runs on the pool; the merge loop is sequential and
    // stays on the caller's thread (so `progress` need not be Send).
    let (mut words, pairs) = pool::install(|| {
        let words = build_words(words, &byte_id);
        let pairs = count_pairs(&words);
        (words, pairs)
    })?;

    let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
    counts.reserve(pairs.len());
    let mut slots = Slots::default();
    let mut heap_init = Vec::with_capacity(pairs.len());
    for (pair, (c, ws)) in pairs {
        counts.insert(pair, c);
        if c > 0 {
            let slot = slots.put(ws);
            heap_init.push(Entry {
                count: c,
                pair,
                slot,
            });
        }
    }
    let mut queue = BinaryHeap::from(heap_init);

    let mut merges: Vec<(u64, u32)> = Vec::new();
    // Pairs made by this step's merge, with the words they appeared in.
    let mut born: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    let mut born_sorted: Vec<(u64, Vec<u32>)> = Vec::new();
    let report_every = (total / 100).max(1);
    let mut next_report = report_every;

    while keys.len() < config.vocab_size {
        let Some(mut top) = queue.pop() else { break };
        let current = counts.get(&top.pair).copied().unwrap_or(0);
        if top.count != current {
            // Stale: requeue at the current count (a zero count could only
            // surface once every other entry is zero too, which ends
            // training anyway, so it is dropped here).
            if current > 0 {
                top.count = current;
                queue.push(top);
            } else {
                slots.take(top.slot);
            }
            continue;
        }
        if top.count < config.min_frequency.max(1) {
            break;
        }

        let (a, b) = unpack(top.pair);
        let mut bytes = key_bytes(&keys[a as usize]).to_vec();
        bytes.extend_from_slice(key_bytes(&keys[b as usize]));
        let key = Key::Bytes(bytes);
        let new_id = match ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = keys.len() as u32;
                ids.insert(key.clone(), id);
                keys.push(key);
                id
            }
        };
        merges.push((top.pair, new_id));

        let pos = slots.take(top.slot);
        for &w in &pos {
            merge_word(&mut words, w, a, b, new_id, &mut counts, &mut born);
        }

        // Queue the new pairs (sorted, so equal entries always enter the
        // heap in the same order).
        born_sorted.extend(born.drain());
        born_sorted.sort_unstable_by_key(|e| e.0);
        for (pair, ws) in born_sorted.drain(..) {
            let c = counts.get(&pair).copied().unwrap_or(0);
            if c > 0 {
                let slot = slots.put(ws);
                queue.push(Entry {
                    count: c,
                    pair,
                    slot,
                });
            }
        }

        let done = keys.len() - initial;
        if done >= next_report {
            progress(done, total);
            next_report = done + report_every;
        }
    }
    progress(keys.len() - initial, total);

    // A pair merged twice keeps its last rank (HF stores merges in a map).
    let mut last: FxHashMap<u64, usize> = FxHashMap::default();
    for (rank, &(pair, _)) in merges.iter().enumerate() {
        last.insert(pair, rank);
    }
    let merges = merges
        .iter()
        .enumerate()
        .filter(|(rank, (pair, _))| last[pair] == *rank)
        .map(|(_, &(pair, _))| {
            let (a, b) = unpack(pair);
            (
                key_bytes(&keys[a as usize]).to_vec(),
                key_bytes(&keys[b as usize]).to_vec(),
            )
        })
        .collect();

    // Special tokens are returned as their own UTF-8, not as the bytes their
    // characters spell.
    let vocab = specials
        .into_iter()
        .map(String::into_bytes)
        .chain(keys.into_iter().skip(num_special).map(|k| match k {
            Key::Bytes(b) => b,
            Key::Special(s) => s.into_bytes(),
        }))
        .collect();
    Ok(TrainOutput {
        merges,
        vocab,
        num_special,
    })
}

fn key_bytes(k: &Key) -> &[u8] {
    match k {
        Key::Bytes(b) => b,
        // Specials never occur inside words, so never in a merged pair.
        Key::Special(s) => s.as_bytes(),
    }
}

/// Merge every non-overlapping `(a, b)` of word `w`, left to right, into
/// `new`, updating pair counts the way HF's `Word::merge` reports them: the
/// neighbours' old pairs lose the word's count, the new pairs gain it and
/// are recorded in `born` with the word. The merged pair's own count is left
/// alone (HF does the same; it is never read again unless re-created).
#[inline]
fn merge_word(
    words: &mut Words,
    w: u32,
    a: u32,
    b: u32,
    new: u32,
    counts: &mut FxHashMap<u64, u64>,
    born: &mut FxHashMap<u64, Vec<u32>>,
) {
    let s = words.start[w as usize] as usize;
    let len = words.len[w as usize] as usize;
    let c = words.count[w as usize];
    let syms = &mut words.syms[s..s + len];
    let (mut r, mut o) = (0, 0);
    while r < len {
        if r + 1 < len && syms[r] == a && syms[r + 1] == b {
            if o > 0 {
                let prev = syms[o - 1];
                dec(counts, pack(prev, a), c);
                gain(counts, born, pack(prev, new), c, w);
            }
            if r + 2 < len {
                let next = syms[r + 2];
                dec(counts, pack(b, next), c);
                gain(counts, born, pack(new, next), c, w);
            }
            syms[o] = new;
            r += 2;
        } else {
            syms[o] = syms[r];
            r += 1;
        }
        o += 1;
    }
    words.len[w as usize] = o as u32;
}

#[inline]
fn dec(counts: &mut FxHashMap<u64, u64>, pair: u64, c: u64) {
    if let Some(x) = counts.get_mut(&pair) {
        *x = x.saturating_sub(c);
    }
}

#[inline]
fn gain(
    counts: &mut FxHashMap<u64, u64>,
    born: &mut FxHashMap<u64, Vec<u32>>,
    pair: u64,
    c: u64,
    w: u32,
) {
    *counts.entry(pair).or_insert(0) += c;
    let ws = born.entry(pair).or_default();
    if ws.last() != Some(&w) {
        ws.push(w);
    }
}
