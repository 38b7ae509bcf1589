//! Byte-level BPE training that reproduces Hugging Face `BpeTrainer` (with a
//! `Split` + `ByteLevel` pre-tokenizer and `initial_alphabet =
//! ByteLevel.alphabet()`) merge for merge, id for id.
//!
//! Streaming: `feed` splits each batch in parallel and keeps only the count of
//! every distinct pre-token; `finish` runs the merges.
//!
//! The rules that fix the output, as in tokenizers/src/models/bpe/trainer.rs:
//! - the alphabet is always all 256 bytes (HF with `initial_alphabet =
//!   ByteLevel.alphabet()` and no `limit_alphabet`), seen in the text or not;
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
//!
//! Equal merges need equal pre-tokens: HF splits with Oniguruma, which reads
//! a possessive interval such as tiktoken's `\p{N}{1,3}+` as `(\p{N}{1,3})+`
//! (any run of digits), where PCRE2 reads it as possessive `{1,3}`. Give HF
//! the pattern with `\p{N}{1,3}` (same pieces in PCRE2) to compare.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rayon::ThreadPool;
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
    /// Count of every distinct pre-token seen so far, in `SHARDS` maps by
    /// `shard_of`, so batches merge into them in parallel.
    words: Vec<WordCounts>,
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
            words: (0..SHARDS).map(|_| WordCounts::default()).collect(),
        })
    }

    /// Number of distinct pre-tokens counted so far.
    pub fn num_words(&self) -> usize {
        self.words.iter().map(|m| m.len()).sum()
    }

    /// Split `texts` (in parallel on the shared pool) and add their pieces'
    /// counts. Only the counts are kept, never the text.
    pub fn feed(&mut self, texts: &[&str]) -> Result<()> {
        pool::install(|| self.feed_here(texts))
    }

    /// `feed` on the current rayon pool.
    fn feed_here(&mut self, texts: &[&str]) {
        if texts.is_empty() {
            return;
        }
        let pretok = &self.pretok;
        // A few chunks per thread so uneven documents still balance; each
        // chunk counts into maps of borrowed slices (no allocation per
        // piece), one per shard; then each shard of the global count takes
        // its part of every chunk, shards in parallel, copying only the
        // distinct pieces.
        let chunk = texts
            .len()
            .div_ceil(rayon::current_num_threads() * 4)
            .max(1);
        let locals: Vec<Vec<FxHashMap<&str, u64>>> = texts
            .par_chunks(chunk)
            .map(|part| {
                let mut m: Vec<FxHashMap<&str, u64>> =
                    (0..SHARDS).map(|_| FxHashMap::default()).collect();
                for text in part {
                    for piece in pretok.split(text) {
                        *m[shard_of(piece.as_bytes())].entry(piece).or_insert(0) += 1;
                    }
                }
                m
            })
            .collect();
        self.words
            .par_iter_mut()
            .enumerate()
            .for_each(|(s, global)| {
                for local in &locals {
                    for (piece, &n) in &local[s] {
                        add_count(global, piece.as_bytes(), n);
                    }
                }
            });
    }

    /// Add pre-counted words (bytes → count), bypassing the splitter: each
    /// is a pre-token that merges never cross.
    pub fn feed_counts<'a>(&mut self, counts: impl IntoIterator<Item = (&'a [u8], u64)>) {
        for (w, n) in counts {
            add_count(&mut self.words[shard_of(w)], w, n);
        }
    }

    /// Run the merges. `progress(done, total)` is called as the vocabulary
    /// grows, about every 1% of `total` new tokens and once at the end.
    pub fn finish(self, progress: impl FnMut(usize, usize)) -> Result<TrainOutput> {
        let Trainer { config, words, .. } = self;
        // The parallel set-up runs on the pool; the merge loop is sequential
        // and stays on the caller's thread (so `progress` need not be Send).
        let prepared = pool::install(|| prepare(&config, words))??;
        let pool = pool::get()?;
        Ok(merge(&config, prepared, Some(&pool), progress))
    }
}

type WordCounts = FxHashMap<Box<[u8]>, u64>;

/// Shards of the pre-token count.
const SHARDS: usize = 64;

/// The shard of a pre-token. A hash independent of the maps' own (FxHash),
/// so that each shard's keys still spread over its table.
#[inline]
fn shard_of(piece: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(piece) % SHARDS as u64) as usize
}

#[inline]
fn add_count(map: &mut WordCounts, w: &[u8], n: u64) {
    match map.get_mut(w) {
        Some(c) => *c += n,
        None => {
            map.insert(w.into(), n);
        }
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

/// The merge queue: a max-heap of `Entry` that pops in exactly the heap's
/// order but keeps the entries below a floor count in an unsorted list.
/// Most entries are rare pairs that are never popped; leaving them out of the
/// heap keeps it small (cheaper pushes and pops, fewer cache misses). When
/// the heap runs dry the floor drops and the entries above it move in.
struct Queue {
    heap: BinaryHeap<Entry>,
    /// Entries with `count < floor`, in no order.
    low: Vec<Entry>,
    floor: u64,
}

impl Queue {
    /// A queue of `entries` whose heap starts with about `want` of them.
    fn new(entries: Vec<Entry>, want: usize) -> Self {
        let mut q = Queue {
            heap: BinaryHeap::new(),
            low: entries,
            floor: u64::MAX,
        };
        q.refill(want.max(1024));
        q
    }

    fn push(&mut self, e: Entry) {
        if e.count >= self.floor {
            self.heap.push(e);
        } else {
            self.low.push(e);
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        // Every heap entry is >= floor > every low entry, so the heap's top
        // is the top of all.
        if self.heap.is_empty() && !self.low.is_empty() {
            let want = (self.low.len() / 8).max(1024);
            self.refill(want);
        }
        self.heap.pop()
    }

    /// Lower the floor so that at least `want` low entries (all of them if
    /// fewer) move into the heap.
    fn refill(&mut self, want: usize) {
        if self.low.is_empty() {
            return;
        }
        let k = want.min(self.low.len()) - 1;
        // The k-th largest count becomes the floor.
        self.low
            .select_nth_unstable_by(k, |x, y| y.count.cmp(&x.count));
        self.floor = self.low[k].count;
        let floor = self.floor;
        let mut moved = Vec::new();
        self.low.retain(|e| {
            if e.count >= floor {
                moved.push(*e);
                false
            } else {
                true
            }
        });
        self.heap.extend(moved);
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

/// All words in one flat array, each as a 3-slot header (symbol count,
/// word count low and high halves) followed by its symbol ids; it shrinks in
/// place as it merges. A word is named by the offset of its header, so a
/// merge reads one place in memory per word instead of four arrays.
struct Words {
    data: Vec<u32>,
    /// Header offsets of all words, in order.
    offsets: Vec<u32>,
}

const HEADER: usize = 3;

impl Words {
    #[inline]
    fn syms(&self, w: u32) -> &[u32] {
        let w = w as usize;
        &self.data[w + HEADER..w + HEADER + self.data[w] as usize]
    }

    #[inline]
    fn count(&self, w: u32) -> u64 {
        let w = w as usize;
        self.data[w + 1] as u64 | (self.data[w + 2] as u64) << 32
    }
}

fn build_words(words: Vec<WordCounts>, byte_id: &[u32; 256]) -> Result<Words> {
    // Each shard becomes its own run of words (in parallel, which also
    // spreads the freeing of the keys); the runs are then joined.
    let runs: Vec<Vec<u32>> = words
        .into_par_iter()
        .map(|shard| {
            let mut data = Vec::new();
            for (w, n) in shard {
                // Single-byte words hold no pair and never change the result.
                if w.len() > 1 {
                    data.extend_from_slice(&[w.len() as u32, n as u32, (n >> 32) as u32]);
                    data.extend(w.iter().map(|&b| byte_id[b as usize]));
                }
            }
            data
        })
        .collect();
    let total: usize = runs.iter().map(Vec::len).sum();
    if total > u32::MAX as usize {
        return Err(Error::invalid(format!(
            "too much distinct text to train on: the distinct pre-tokens take {total} \
             symbols and headers, the limit is {}",
            u32::MAX
        )));
    }
    let mut data = Vec::with_capacity(total);
    for run in runs {
        data.extend_from_slice(&run);
    }
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < data.len() {
        offsets.push(at as u32);
        at += HEADER + data[at] as usize;
    }
    Ok(Words { data, offsets })
}

/// Initial pair counts and, per pair, the words holding it (each once), in
/// parallel over word ranges; the per-range maps are merged in range order.
fn count_pairs(words: &Words) -> FxHashMap<u64, (u64, Vec<u32>)> {
    let n = words.offsets.len();
    let parts = (rayon::current_num_threads() * 4).max(1);
    let step = n.div_ceil(parts).max(1);
    let maps: Vec<FxHashMap<u64, (u64, Vec<u32>)>> = words
        .offsets
        .par_chunks(step)
        .map(|part| {
            let mut m: FxHashMap<u64, (u64, Vec<u32>)> = FxHashMap::default();
            for &w in part {
                let c = words.count(w);
                for win in words.syms(w).windows(2) {
                    let e = m.entry(pack(win[0], win[1])).or_default();
                    e.0 += c;
                    if e.1.last() != Some(&w) {
                        e.1.push(w);
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

/// How far ahead in a word list to prefetch.
const AHEAD: usize = 8;

/// Ask the CPU to start loading the word at `w` (its header and first
/// symbols), so the merge loop does not stall on one cache miss per word.
#[inline(always)]
fn prefetch(data: &[u32], w: u32) {
    prefetch_ptr(data.as_ptr().wrapping_add(w as usize));
}

#[inline(always)]
fn prefetch_ptr(p: *const u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint; it never faults, even on a bad
        // address.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The word array shared by the threads of a parallel merge step, each
/// rewriting its own words.
struct SharedWords {
    ptr: *mut u32,
    len: usize,
}

// SAFETY: threads only reach words through `word`, whose caller guarantees
// that no two threads hold the same word.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    fn new(data: &mut [u32]) -> Self {
        Self {
            ptr: data.as_mut_ptr(),
            len: data.len(),
        }
    }

    #[inline(always)]
    fn prefetch(&self, w: u32) {
        prefetch_ptr(self.ptr.wrapping_add(w as usize));
    }

    /// The header and symbols of word `w`.
    ///
    /// # Safety
    /// No other reference to word `w` may exist while the result lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn word(&self, w: u32) -> &mut [u32] {
        let start = w as usize;
        assert!(start < self.len);
        // SAFETY: `start` is in bounds (checked); the length read from the
        // header is checked against the array before the slice is made.
        unsafe {
            let n = HEADER + *self.ptr.add(start) as usize;
            assert!(start + n <= self.len);
            std::slice::from_raw_parts_mut(self.ptr.add(start), n)
        }
    }
}

/// Everything the merge loop starts from.
struct Prepared {
    init: Initial,
    words: Words,
    pairs: FxHashMap<u64, (u64, Vec<u32>)>,
}

/// The initial vocabulary, the words as symbols and their pair counts (in
/// parallel on the current rayon pool).
fn prepare(config: &TrainConfig, words: Vec<WordCounts>) -> Result<Prepared> {
    let init = initial_vocab(&config.special_tokens);
    let words = build_words(words, &init.byte_id)?;
    let pairs = count_pairs(&words);
    Ok(Prepared { init, words, pairs })
}

/// The merge loop (sequential).
/// Steps touching at least this many words are split across the pool's
/// threads; smaller ones cost less than waking the threads. (Tiny in unit
/// tests, so their small corpora take the parallel path too.)
const PARALLEL_WORDS: usize = if cfg!(test) { 8 } else { 4096 };

/// The merge loop. It runs on the caller's thread; only the steps that
/// touch many words (the first few hundred) are spread over `pool`.
fn merge(
    config: &TrainConfig,
    prepared: Prepared,
    pool: Option<&ThreadPool>,
    mut progress: impl FnMut(usize, usize),
) -> TrainOutput {
    let Prepared {
        init:
            Initial {
                mut keys,
                mut ids,
                specials,
                ..
            },
        mut words,
        pairs,
    } = prepared;
    let num_special = specials.len();
    let initial = keys.len();
    let total = config.vocab_size.saturating_sub(initial);

    let mut counts: FxHashMap<u64, i64> = FxHashMap::default();
    counts.reserve(pairs.len());
    let mut slots = Slots::default();
    let mut heap_init = Vec::with_capacity(pairs.len());
    for (pair, (c, ws)) in pairs {
        counts.insert(pair, c as i64);
        if c > 0 {
            let slot = slots.put(ws);
            heap_init.push(Entry {
                count: c,
                pair,
                slot,
            });
        }
    }
    let mut queue = Queue::new(heap_init, 2 * total);

    let mut merges: Vec<(u64, u32)> = Vec::new();
    let mut step = Step::default();
    // One per thread, for the parallel steps.
    let mut helpers: Vec<Step> = Vec::new();
    let mut born: Vec<(u64, Vec<u32>)> = Vec::new();
    let report_every = (total / 100).max(1);
    let mut next_report = report_every;

    while keys.len() < config.vocab_size {
        let Some(mut top) = queue.pop() else { break };
        let current = counts.get(&top.pair).copied().unwrap_or(0).max(0) as u64;
        if top.count != current {
            // Stale: requeue at the current count (a zero count could only
            // surface once every other entry is zero too, which ends
            // training anyway, so it is dropped here).
            if current > 0 {
                top.count = current;
                queue.push(top);
            } else {
                step.recycle(slots.take(top.slot));
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
        match pool {
            Some(pool) if pos.len() >= PARALLEL_WORDS && pool.current_num_threads() > 1 => {
                let n = pool.current_num_threads();
                helpers.resize_with(n, Step::default);
                let chunk = pos.len().div_ceil(n);
                let shared = SharedWords::new(&mut words.data);
                pool.install(|| {
                    pos.par_chunks(chunk)
                        .zip(helpers.par_iter_mut())
                        .for_each(|(part, step)| {
                            step.reserve(keys.len());
                            for (i, &w) in part.iter().enumerate() {
                                if let Some(&n) = part.get(i + AHEAD) {
                                    shared.prefetch(n);
                                }
                                // SAFETY: a word list holds each word once,
                                // and the chunks split it, so no two threads
                                // touch the same word.
                                let word = unsafe { shared.word(w) };
                                merge_word(word, w, a, b, new_id, step);
                            }
                        })
                });
                for step in &mut helpers[..pos.len().div_ceil(chunk)] {
                    step.apply(a, b, new_id, &mut counts, &mut born);
                }
            }
            _ => {
                step.reserve(keys.len());
                for (i, &w) in pos.iter().enumerate() {
                    if let Some(&n) = pos.get(i + AHEAD) {
                        prefetch(&words.data, n);
                    }
                    let start = w as usize;
                    let end = start + HEADER + words.data[start] as usize;
                    merge_word(&mut words.data[start..end], w, a, b, new_id, &mut step);
                }
                step.apply(a, b, new_id, &mut counts, &mut born);
            }
        }
        step.recycle(pos);

        // Queue the new pairs, sorted so that equal entries always enter the
        // heap in the same order. (Equal pairs come from different threads
        // and are joined into one set: their relative order is irrelevant.)
        born.sort_unstable_by_key(|e| e.0);
        coalesce(&mut born, pack(new_id, new_id));
        for (pair, ws) in born.drain(..) {
            let c = counts.get(&pair).copied().unwrap_or(0);
            if c > 0 {
                let slot = slots.put(ws);
                queue.push(Entry {
                    count: c as u64,
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
    TrainOutput {
        merges,
        vocab,
        num_special,
    }
}

/// Join the entries of `born` (sorted by pair) that name the same pair, as
/// HF keeps one word set per pair and step. They come from different threads
/// (disjoint words: concatenate) or, for `(new, new)` after a reused id, from
/// both sides of one word (sort and dedup).
fn coalesce(born: &mut Vec<(u64, Vec<u32>)>, new_new: u64) {
    if born.windows(2).all(|w| w[0].0 != w[1].0) {
        return;
    }
    let mut out: Vec<(u64, Vec<u32>)> = Vec::with_capacity(born.len());
    for (pair, ws) in born.drain(..) {
        match out.last_mut() {
            Some(last) if last.0 == pair => last.1.extend(ws),
            _ => out.push((pair, ws)),
        }
    }
    for (pair, ws) in &mut out {
        if *pair == new_new {
            ws.sort_unstable();
            ws.dedup();
        }
    }
    *born = out;
}

/// The count changes of one merge step `(a, b) -> new`, gathered in arrays
/// indexed by the neighbouring symbol: every changed pair has `a`, `b` or
/// `new` on one side, so an occurrence costs an array update instead of a
/// hash lookup, and each distinct pair touches the count map once.
#[derive(Default)]
struct Step {
    /// (x, a) loses.
    lost_left: Vec<i64>,
    /// (b, y) loses.
    lost_right: Vec<i64>,
    /// (x, new) gains, and the words it appeared in.
    gain_left: Vec<i64>,
    words_left: Vec<Vec<u32>>,
    /// (new, y) gains, and the words it appeared in.
    gain_right: Vec<i64>,
    words_right: Vec<Vec<u32>>,
    /// Symbols with a non-zero entry in each array above.
    touched: [Vec<u32>; 4],
    /// Emptied word lists kept for reuse.
    spare: Vec<Vec<u32>>,
}

impl Step {
    /// Keep an emptied word list's allocation for a later gain.
    fn recycle(&mut self, mut list: Vec<u32>) {
        if list.capacity() > 0 {
            list.clear();
            self.spare.push(list);
        }
    }

    fn reserve(&mut self, symbols: usize) {
        if self.lost_left.len() < symbols {
            self.lost_left.resize(symbols, 0);
            self.lost_right.resize(symbols, 0);
            self.gain_left.resize(symbols, 0);
            self.gain_right.resize(symbols, 0);
            self.words_left.resize_with(symbols, Vec::new);
            self.words_right.resize_with(symbols, Vec::new);
        }
    }

    #[inline]
    fn lose_left(&mut self, x: u32, c: i64) {
        let e = &mut self.lost_left[x as usize];
        if *e == 0 {
            self.touched[0].push(x);
        }
        *e += c;
    }

    #[inline]
    fn lose_right(&mut self, y: u32, c: i64) {
        let e = &mut self.lost_right[y as usize];
        if *e == 0 {
            self.touched[1].push(y);
        }
        *e += c;
    }

    #[inline]
    fn gain_left(&mut self, x: u32, c: i64, w: u32) {
        let e = &mut self.gain_left[x as usize];
        let ws = &mut self.words_left[x as usize];
        if *e == 0 {
            self.touched[2].push(x);
            if let Some(v) = self.spare.pop() {
                *ws = v;
            }
        }
        *e += c;
        if ws.last() != Some(&w) {
            ws.push(w);
        }
    }

    #[inline]
    fn gain_right(&mut self, y: u32, c: i64, w: u32) {
        let e = &mut self.gain_right[y as usize];
        let ws = &mut self.words_right[y as usize];
        if *e == 0 {
            self.touched[3].push(y);
            if let Some(v) = self.spare.pop() {
                *ws = v;
            }
        }
        *e += c;
        if ws.last() != Some(&w) {
            ws.push(w);
        }
    }

    /// Apply the gathered changes to `counts` and hand out the pairs made
    /// (with their words) in `born`; leaves the arrays zeroed.
    fn apply(
        &mut self,
        a: u32,
        b: u32,
        new: u32,
        counts: &mut FxHashMap<u64, i64>,
        born: &mut Vec<(u64, Vec<u32>)>,
    ) {
        for x in self.touched[0].drain(..) {
            *counts.entry(pack(x, a)).or_insert(0) -=
                std::mem::take(&mut self.lost_left[x as usize]);
        }
        for y in self.touched[1].drain(..) {
            *counts.entry(pack(b, y)).or_insert(0) -=
                std::mem::take(&mut self.lost_right[y as usize]);
        }
        for x in self.touched[2].drain(..) {
            let pair = pack(x, new);
            *counts.entry(pair).or_insert(0) += std::mem::take(&mut self.gain_left[x as usize]);
            born.push((pair, std::mem::take(&mut self.words_left[x as usize])));
        }
        for y in self.touched[3].drain(..) {
            let pair = pack(new, y);
            *counts.entry(pair).or_insert(0) += std::mem::take(&mut self.gain_right[y as usize]);
            born.push((pair, std::mem::take(&mut self.words_right[y as usize])));
        }
    }
}

fn key_bytes(k: &Key) -> &[u8] {
    match k {
        Key::Bytes(b) => b,
        // Specials never occur inside words, so never in a merged pair.
        Key::Special(s) => s.as_bytes(),
    }
}

/// Merge every non-overlapping `(a, b)` of word `w`, left to right, into
/// `new`, recording the count changes the way HF's `Word::merge` reports
/// them: the neighbours' old pairs lose the word's count, the new pairs gain
/// it (with the word). The merged pair's own count is left alone (HF does
/// the same; it is never read again unless the pair is made anew).
#[inline]
fn merge_word(word: &mut [u32], w: u32, a: u32, b: u32, new: u32, step: &mut Step) {
    let c = (word[1] as u64 | (word[2] as u64) << 32) as i64;
    let len = word[0] as usize;
    let syms = &mut word[HEADER..HEADER + len];
    let (mut r, mut o) = (0, 0);
    while r < len {
        if r + 1 < len && syms[r] == a && syms[r + 1] == b {
            if o > 0 {
                let prev = syms[o - 1];
                step.lose_left(prev, c);
                step.gain_left(prev, c, w);
            }
            if r + 2 < len {
                let next = syms[r + 2];
                step.lose_right(next, c);
                step.gain_right(next, c, w);
            }
            syms[o] = new;
            r += 2;
        } else {
            syms[o] = syms[r];
            r += 1;
        }
        o += 1;
    }
    word[0] = o as u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        pattern: &str,
        vocab_size: usize,
        min_frequency: u64,
        specials: &[&str],
    ) -> TrainConfig {
        TrainConfig {
            pattern: pattern.to_owned(),
            vocab_size,
            min_frequency,
            special_tokens: specials.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Train on `texts` with a private pool of `threads` threads (the shared
    /// pool's size is process-wide and other tests set it).
    fn train_on(threads: usize, config: TrainConfig, texts: &[&str]) -> TrainOutput {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut t = Trainer::new(config.clone()).unwrap();
        for chunk in texts.chunks(3) {
            pool.install(|| t.feed_here(chunk));
        }
        let prepared = pool.install(|| prepare(&config, t.words)).unwrap();
        merge(&config, prepared, Some(&pool), |_, _| {})
    }

    fn merges(out: &TrainOutput) -> Vec<(&str, &str)> {
        out.merges
            .iter()
            .map(|(a, b)| {
                (
                    std::str::from_utf8(a).unwrap(),
                    std::str::from_utf8(b).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn bytes_take_ids_in_byte_level_character_order() {
        let id = initial_vocab(&[]).byte_id;
        let expect = [
            (b'!', 0),
            (b'~', 93),
            (0xA1, 94),
            (0xAC, 105),
            (0xAE, 106),
            (0xFF, 187),
            (0x00, 188),
            (b' ', 220),
            (0x7F, 221),
            (0xA0, 254),
            (0xAD, 255),
        ];
        for (b, i) in expect {
            assert_eq!(id[b as usize], i, "byte {b:#x}");
        }
    }

    #[test]
    fn hand_checked_merges() {
        let texts = ["abc abc abd"];
        let out = train_on(1, config(r"\S+|\s+", 259, 0, &[]), &texts);
        assert_eq!(merges(&out), [("a", "b"), ("ab", "c"), ("ab", "d")]);
        assert_eq!(out.vocab.len(), 259);
        assert_eq!(&out.vocab[256..], [&b"ab"[..], b"abc", b"abd"]);
        assert_eq!(out.vocab[0], b"!");

        // min_frequency: "abd" is seen once.
        let out = train_on(1, config(r"\S+|\s+", 300, 2, &[]), &texts);
        assert_eq!(merges(&out), [("a", "b"), ("ab", "c")]);
        assert_eq!(out.vocab.len(), 258);
    }

    #[test]
    fn ties_go_to_the_smaller_ids_not_the_smaller_bytes() {
        // (" ", "z") and ("x", "y") are both seen once; space's id (220) is
        // above x's (87), so ("x", "y") comes first.
        let out = train_on(1, config(r".+", 258, 0, &[]), &[" z", "xy"]);
        assert_eq!(merges(&out), [("x", "y"), (" ", "z")]);
    }

    #[test]
    fn runs_count_every_adjacent_pair() {
        // "aaa" holds (a, a) twice, so it ties with "bb" twice and wins on id.
        let out = train_on(1, config(r"\S+", 259, 0, &[]), &["aaa bb bb"]);
        assert_eq!(merges(&out), [("a", "a"), ("b", "b"), ("aa", "a")]);
        let out = train_on(1, config(r"\S+", 258, 0, &[]), &["aaaa"]);
        assert_eq!(merges(&out), [("a", "a"), ("aa", "aa")]);
    }

    #[test]
    fn special_tokens_come_first_once_and_are_reused() {
        let out = train_on(1, config(r"\S+", 300, 0, &["<s>", "</s>", "<s>"]), &[]);
        assert_eq!(out.num_special, 2);
        assert_eq!(out.vocab.len(), 258);
        assert_eq!(&out.vocab[..3], [&b"<s>"[..], b"</s>", b"!"]);
        assert!(out.merges.is_empty());

        // A special token spelling a byte takes that byte's place.
        let out = train_on(1, config(r"\S+", 300, 0, &["!"]), &[]);
        assert_eq!(out.vocab.len(), 256);
        assert_eq!(&out.vocab[..2], [&b"!"[..], b"\""]);

        // A merge that spells a special token reuses its id (HF does too).
        let out = train_on(1, config(r"\S+", 300, 0, &["ab"]), &["ab ab"]);
        assert_eq!(merges(&out), [("a", "b")]);
        assert_eq!(out.vocab.len(), 257);
    }

    #[test]
    fn empty_input_gives_the_initial_vocabulary() {
        let out = train_on(2, config(r"\S+", 1000, 0, &["<|endoftext|>"]), &[]);
        assert!(out.merges.is_empty());
        assert_eq!(out.vocab.len(), 257);
        let out = train_on(2, config(r"\S+", 1000, 0, &[]), &["", "a b c"]);
        assert!(out.merges.is_empty());
    }

    #[test]
    fn bad_configs_are_clear_errors() {
        let e = Trainer::new(config(r"\S+", 256, 0, &["<s>"]))
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("vocab_size 256") && msg.contains("257"),
            "{msg}"
        );
        assert!(Trainer::new(config(r"\S+", 256, 0, &[])).is_ok());
        let e = Trainer::new(config(r"\S+", 300, 0, &["a", ""]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("special_tokens[1]"));
        let e = Trainer::new(config(r"(", 300, 0, &[])).err().unwrap();
        assert!(e.to_string().contains("does not compile"));
    }

    fn corpus() -> Vec<String> {
        let parts = [
            "th", "e ", "an", "d ", "ing", " ", "日本", "é", "\n", "  ", "123", "!",
        ];
        let mut x = 0x9E3779B97F4A7C15u64;
        (0..300)
            .map(|_| {
                (0..60)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        parts[(x % parts.len() as u64) as usize]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn same_output_on_one_and_four_threads() {
        let docs = corpus();
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let cfg = config(
            crate::bpe::pretok::CL100K_PATTERN,
            600,
            0,
            &["<|endoftext|>"],
        );
        let one = train_on(1, cfg.clone(), &docs);
        let four = train_on(4, cfg, &docs);
        assert!(one.merges.len() > 100);
        assert_eq!(one, four);
    }

    #[test]
    fn progress_reaches_the_total() {
        let docs = corpus();
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let cfg = config(crate::bpe::pretok::GPT2_PATTERN, 456, 0, &[]);
        let mut t = Trainer::new(cfg).unwrap();
        t.feed(&docs).unwrap();
        let mut seen = Vec::new();
        let out = t.finish(|done, total| seen.push((done, total))).unwrap();
        assert_eq!(out.vocab.len(), 456);
        assert_eq!(seen.last(), Some(&(200, 200)));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(seen.len() <= 102);
    }
}
