//! Hugging Face `tokenizer.json` for byte-level BPE: read (GPT-2 style, and
//! Llama-3 / Qwen style with a Split pre-tokenizer before ByteLevel) and
//! write (a file `tokenizers.Tokenizer.from_file` loads and that encodes as
//! we do).

use serde_json::{json, Map, Value};

use super::bytelevel;
use super::model::Bpe;
use super::pretok::HF_BYTELEVEL_PATTERN;
use crate::error::{Error, Result};

fn bad(reason: impl Into<String>) -> Error {
    Error::format("tokenizer.json", reason)
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn is_null_or_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// The split pattern a byte-level pre-tokenizer config implies.
fn pattern_of(pre: &Value) -> Result<String> {
    match get_str(pre, "type") {
        Some("ByteLevel") => {
            if pre.get("add_prefix_space").and_then(Value::as_bool) == Some(true) {
                return Err(bad(
                    "pre_tokenizer ByteLevel with add_prefix_space=true is not supported",
                ));
            }
            if pre.get("use_regex").and_then(Value::as_bool) == Some(false) {
                return Err(bad(
                    "pre_tokenizer ByteLevel with use_regex=false and no Split before it \
                     is not supported",
                ));
            }
            Ok(HF_BYTELEVEL_PATTERN.to_owned())
        }
        Some("Sequence") => {
            let parts = pre
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("pre_tokenizer Sequence has no pretokenizers list"))?;
            match parts.as_slice() {
                [split, byte_level]
                    if get_str(split, "type") == Some("Split")
                        && get_str(byte_level, "type") == Some("ByteLevel") =>
                {
                    if byte_level.get("use_regex").and_then(Value::as_bool) == Some(true) {
                        return Err(bad(
                            "pre_tokenizer Sequence[Split, ByteLevel(use_regex=true)] is not supported",
                        ));
                    }
                    if byte_level.get("add_prefix_space").and_then(Value::as_bool) == Some(true) {
                        return Err(bad(
                            "pre_tokenizer ByteLevel with add_prefix_space=true is not supported",
                        ));
                    }
                    let behavior = get_str(split, "behavior").unwrap_or("Isolated");
                    if behavior != "Isolated" {
                        return Err(bad(format!(
                            "pre_tokenizer Split behavior {behavior:?} is not supported (only \"Isolated\")"
                        )));
                    }
                    if split.get("invert").and_then(Value::as_bool) == Some(true) {
                        return Err(bad("pre_tokenizer Split with invert=true is not supported"));
                    }
                    split
                        .get("pattern")
                        .and_then(|p| get_str(p, "Regex"))
                        .map(str::to_owned)
                        .ok_or_else(|| bad("pre_tokenizer Split has no pattern.Regex"))
                }
                _ => {
                    let types: Vec<&str> =
                        parts.iter().map(|p| get_str(p, "type").unwrap_or("?")).collect();
                    Err(bad(format!(
                        "pre_tokenizer Sequence {types:?} is not supported (expected [\"Split\", \"ByteLevel\"])"
                    )))
                }
            }
        }
        Some(other) => Err(bad(format!(
            "pre_tokenizer type {other:?} is not supported (expected ByteLevel, or Sequence[Split, ByteLevel])"
        ))),
        None => Err(bad("pre_tokenizer is missing: a byte-level BPE needs ByteLevel")),
    }
}

fn token_bytes(token: &str) -> Result<Vec<u8>> {
    bytelevel::decode(token).ok_or_else(|| {
        bad(format!(
            "vocabulary token {token:?} is not in byte-level form (this is not a byte-level BPE)"
        ))
    })
}

/// Parse a `tokenizer.json` document into a model.
pub fn from_json(text: &str) -> Result<Bpe> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let model = root
        .get("model")
        .ok_or_else(|| bad("no \"model\" section"))?;
    match get_str(model, "type") {
        Some("BPE") | None => {}
        Some(other) => {
            return Err(bad(format!(
                "model.type is {other:?}; only \"BPE\" is supported"
            )))
        }
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix", "dropout"] {
        if !is_null_or_empty(model.get(key)) {
            return Err(bad(format!("model.{key} is set; it is not supported")));
        }
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "model.byte_fallback=true is not supported (not a byte-level BPE)",
        ));
    }
    let nfc = match root.get("normalizer") {
        None | Some(Value::Null) => false,
        Some(n) => match get_str(n, "type") {
            Some("NFC") => true,
            t => {
                return Err(bad(format!(
                    "normalizer {:?} is not supported (only none or NFC)",
                    t.unwrap_or("?")
                )))
            }
        },
    };
    let pre = root
        .get("pre_tokenizer")
        .filter(|v| !v.is_null())
        .ok_or_else(|| bad("pre_tokenizer is missing: a byte-level BPE needs ByteLevel"))?;
    let pattern = pattern_of(pre)?;
    let ignore_merges = model
        .get("ignore_merges")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let mut specials: Vec<(String, u32)> = Vec::new();
    if let Some(added) = root.get("added_tokens").and_then(Value::as_array) {
        for t in added {
            let content =
                get_str(t, "content").ok_or_else(|| bad("added token without content"))?;
            let id = t
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("added token {content:?} has no id")))?;
            specials.push((content.to_owned(), id as u32));
        }
    }
    let vocab_obj = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("model.vocab is missing or not an object"))?;
    let mut vocab = Vec::with_capacity(vocab_obj.len());
    for (tok, id) in vocab_obj {
        let id = id
            .as_u64()
            .filter(|&i| i <= u32::MAX as u64)
            .ok_or_else(|| bad(format!("model.vocab[{tok:?}] is not a valid id")))?
            as u32;
        // An added token that is also in the vocabulary (GPT-2's
        // <|endoftext|>) is a special token, matched before pre-tokenization.
        if specials.iter().any(|(s, sid)| *sid == id && s == tok) {
            continue;
        }
        vocab.push((token_bytes(tok)?, id));
    }
    let merges_val = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("model.merges is missing or not a list"))?;
    let mut merges = Vec::with_capacity(merges_val.len());
    for (i, m) in merges_val.iter().enumerate() {
        let (a, b) = match m {
            Value::String(s) => s
                .split_once(' ')
                .ok_or_else(|| bad(format!("model.merges[{i}] {s:?} is not \"left right\"")))?,
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(bad(format!("model.merges[{i}] is not a pair of strings"))),
            },
            _ => return Err(bad(format!("model.merges[{i}] is not a merge"))),
        };
        merges.push((token_bytes(a)?, token_bytes(b)?));
    }
    let mut bpe = Bpe::from_merges(vocab, &merges, specials, &pattern, ignore_merges)
        .map_err(|e| bad(e.to_string()))?;
    bpe.set_nfc(nfc);
    Ok(bpe)
}

/// Start of the atom that ends just before byte `end` of `p` (a class
/// `[...]`, a group `(...)`, an escape such as `\p{N}` or `\d`, or one char).
fn atom_start(p: &str, end: usize) -> Option<usize> {
    let b = p.as_bytes();
    let last = *b.get(end.checked_sub(1)?)?;
    match last {
        b']' | b')' => {
            let (open, close) = if last == b']' {
                (b'[', b']')
            } else {
                (b'(', b')')
            };
            let mut depth = 0i32;
            let mut i = end;
            while i > 0 {
                i -= 1;
                let escaped = i > 0 && b[i - 1] == b'\\' && !(i > 1 && b[i - 2] == b'\\');
                if escaped {
                    continue;
                }
                if b[i] == close {
                    depth += 1;
                } else if b[i] == open {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
            }
            None
        }
        b'}' => {
            // \p{..} / \P{..}
            let open = p[..end].rfind('{')?;
            let start = open.checked_sub(2)?;
            (b[start] == b'\\').then_some(start)
        }
        _ => {
            let start = p[..end].char_indices().next_back()?.0;
            if start > 0 && b[start - 1] == b'\\' {
                Some(start - 1)
            } else {
                Some(start)
            }
        }
    }
}

/// Oniguruma (HF tokenizers' regex engine) reads `X{1,3}+` as `(X{1,3})+`,
/// not as a possessive interval as PCRE2 and fancy-regex do. Write such an
/// interval as the atomic group `(?>X{1,3})`, which means the same in all
/// three.
fn onig_compatible(pattern: &str) -> String {
    let mut out = pattern.to_owned();
    let mut search = 0;
    while let Some(rel) = out[search..].find("}+") {
        let close = search + rel; // index of '}'
        let Some(open) = out[..close].rfind('{') else {
            break;
        };
        let interval = &out[open + 1..close];
        let is_interval = !interval.is_empty()
            && interval.chars().all(|c| c.is_ascii_digit() || c == ',')
            && !(open > 0 && out.as_bytes()[open - 1] == b'\\');
        if !is_interval {
            search = close + 2;
            continue;
        }
        match atom_start(&out, open) {
            Some(start) => {
                let atom_and_interval = out[start..=close].to_owned();
                let replaced = format!("(?>{atom_and_interval})");
                out.replace_range(start..close + 2, &replaced);
                search = start + replaced.len();
            }
            None => search = close + 2,
        }
    }
    out
}

/// Write `bpe` as a `tokenizer.json` document.
pub fn to_json(bpe: &Bpe) -> String {
    let mut vocab = Map::new();
    // Special tokens are listed in the vocabulary too, under their text, as
    // HF's trainer writes them (and `from_json` reads them back as specials).
    for id in 0..bpe.vocab_size() as u32 {
        if let Some(s) = bpe.special_id_of(id) {
            vocab.insert(s.to_owned(), json!(id));
        } else if let Some(b) = bpe.token_bytes(id) {
            vocab.insert(bytelevel::encode(b), json!(id));
        }
    }
    let tok = |id: u32| bytelevel::encode(bpe.token_bytes(id).unwrap_or_default());
    let merges: Vec<Value> = bpe
        .merges()
        .iter()
        .map(|&(a, b)| json!([tok(a), tok(b)]))
        .collect();
    let added: Vec<Value> = bpe
        .specials()
        .iter()
        .map(|(s, id)| {
            json!({"id": id, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": if bpe.nfc() { json!({"type": "NFC"}) } else { Value::Null },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": onig_compatible(bpe.pattern())},
                 "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                 "use_regex": false}
            ]
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true,
                           "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": bpe.ignore_merges(),
            "vocab": vocab, "merges": merges
        }
    });
    serde_json::to_string_pretty(&doc).expect("JSON of plain values")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_json(pre: Value) -> String {
        let mut vocab = Map::new();
        for b in 0..=255u8 {
            vocab.insert(bytelevel::encode(&[b]), json!(b));
        }
        vocab.insert("Ġt".into(), json!(256));
        vocab.insert("<|endoftext|>".into(), json!(257));
        json!({
            "added_tokens": [{"id": 257, "content": "<|endoftext|>", "special": true}],
            "normalizer": null,
            "pre_tokenizer": pre,
            "model": {"type": "BPE", "vocab": vocab, "merges": ["Ġ t"]}
        })
        .to_string()
    }

    #[test]
    fn reads_gpt2_style_and_round_trips() {
        let bpe = from_json(&tiny_json(
            json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}),
        ))
        .unwrap();
        assert_eq!(bpe.encode_ordinary(" t"), vec![256]);
        assert_eq!(bpe.specials(), &[("<|endoftext|>".to_string(), 257)]);
        let again = from_json(&to_json(&bpe)).unwrap();
        assert_eq!(again.encode_ordinary(" t t"), vec![256, 256]);
        assert_eq!(again.vocab_size(), 258);
    }

    #[test]
    fn possessive_intervals_become_atomic_groups() {
        assert_eq!(onig_compatible(r"\p{N}{1,3}+|x"), r"(?>\p{N}{1,3})|x");
        assert_eq!(onig_compatible(r"[a-z]{2}+"), r"(?>[a-z]{2})");
        assert_eq!(onig_compatible(r"(ab){1,}+"), r"(?>(ab){1,})");
        assert_eq!(onig_compatible(r"a{3}+"), r"(?>a{3})");
        assert_eq!(onig_compatible(r"\p{L}++"), r"\p{L}++");
        assert_eq!(onig_compatible(r"\{1}+"), r"\{1}+");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = from_json("{").err().unwrap().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let mut doc: Value = serde_json::from_str(&tiny_json(
            json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}),
        ))
        .unwrap();
        doc["normalizer"] = json!({"type": "NFKC"});
        let e = from_json(&doc.to_string()).err().unwrap().to_string();
        assert!(e.contains("normalizer \"NFKC\""), "{e}");
        // NFC is read, applied and written back.
        doc["normalizer"] = json!({"type": "NFC"});
        let bpe = from_json(&doc.to_string()).unwrap();
        assert_eq!(
            bpe.encode_ordinary("e\u{301}"),
            bpe.encode_ordinary("\u{e9}")
        );
        assert!(from_json(&to_json(&bpe)).unwrap().nfc());
        let e = from_json(&tiny_json(json!({"type": "Whitespace"})))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"Whitespace\""), "{e}");
        let wp = r#"{"model": {"type": "WordPiece", "vocab": {}}}"#;
        assert!(from_json(wp)
            .err()
            .unwrap()
            .to_string()
            .contains("WordPiece"));
    }
}
