//! Language identification, embedded (the `whatlang` crate: trigram
//! profiles and script detection for 69 languages, no model download).
//! Codes are ISO 639-1 where the language has one, else whatlang's 639-3.

use crate::guard::{self, Doc};

/// whatlang's ISO 639-3 codes to ISO 639-1.
const ISO1: &[(&str, &str)] = &[
    ("epo", "eo"),
    ("eng", "en"),
    ("rus", "ru"),
    ("cmn", "zh"),
    ("spa", "es"),
    ("por", "pt"),
    ("ita", "it"),
    ("ben", "bn"),
    ("fra", "fr"),
    ("deu", "de"),
    ("ukr", "uk"),
    ("kat", "ka"),
    ("ara", "ar"),
    ("hin", "hi"),
    ("jpn", "ja"),
    ("heb", "he"),
    ("yid", "yi"),
    ("pol", "pl"),
    ("amh", "am"),
    ("jav", "jv"),
    ("kor", "ko"),
    ("nob", "nb"),
    ("dan", "da"),
    ("swe", "sv"),
    ("fin", "fi"),
    ("tur", "tr"),
    ("nld", "nl"),
    ("hun", "hu"),
    ("ces", "cs"),
    ("ell", "el"),
    ("bul", "bg"),
    ("bel", "be"),
    ("mar", "mr"),
    ("kan", "kn"),
    ("ron", "ro"),
    ("slv", "sl"),
    ("hrv", "hr"),
    ("srp", "sr"),
    ("mkd", "mk"),
    ("lit", "lt"),
    ("lav", "lv"),
    ("est", "et"),
    ("tam", "ta"),
    ("vie", "vi"),
    ("urd", "ur"),
    ("tha", "th"),
    ("guj", "gu"),
    ("uzb", "uz"),
    ("pan", "pa"),
    ("aze", "az"),
    ("ind", "id"),
    ("tel", "te"),
    ("pes", "fa"),
    ("mal", "ml"),
    ("ori", "or"),
    ("mya", "my"),
    ("nep", "ne"),
    ("sin", "si"),
    ("khm", "km"),
    ("tuk", "tk"),
    ("aka", "ak"),
    ("zul", "zu"),
    ("sna", "sn"),
    ("afr", "af"),
    ("lat", "la"),
    ("slk", "sk"),
    ("cat", "ca"),
    ("tgl", "tl"),
    ("hye", "hy"),
];

/// One document's language: code and confidence in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lang {
    pub code: &'static str,
    pub confidence: f64,
}

/// The language of `text`, looking at its first `max_bytes` bytes (cut at a
/// character boundary); None when nothing can be told (no letters).
pub fn detect(text: &str, max_bytes: usize) -> Option<Lang> {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let info = whatlang::detect(&text[..end])?;
    let code3 = info.lang().code();
    let code = ISO1
        .iter()
        .find(|(c3, _)| *c3 == code3)
        .map_or(code3, |(_, c1)| c1);
    Some(Lang {
        code,
        confidence: info.confidence(),
    })
}

/// [`detect`] over a batch in parallel (call it on the pool), under the
/// one panic policy (`crate::guard`).
pub fn detect_batch<D: AsRef<str> + Sync>(
    docs: &[Option<D>],
    max_bytes: usize,
) -> Vec<Doc<Option<Lang>>> {
    guard::map_documents(docs, |t| detect(t.as_ref(), max_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_languages() {
        let cases = [
            (
                "The quick brown fox jumps over the lazy dog and runs into the forest.",
                "en",
            ),
            (
                "Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald.",
                "de",
            ),
            (
                "Le renard brun rapide saute par-dessus le chien paresseux et court dans la forêt.",
                "fr",
            ),
            (
                "El rápido zorro marrón salta sobre el perro perezoso y corre hacia el bosque.",
                "es",
            ),
            (
                "La volpe marrone veloce salta sopra il cane pigro e corre nella foresta.",
                "it",
            ),
            ("敏捷的棕色狐狸跳过了懒狗，然后跑进了森林。", "zh"),
        ];
        for (text, want) in cases {
            let got = detect(text, 10_000).unwrap();
            assert_eq!(got.code, want, "{text}");
            assert!((0.0..=1.0).contains(&got.confidence));
        }
        assert_eq!(detect("1234 !!! ...", 10_000), None);
        // a cut inside a multi-byte character is moved back, not a panic
        assert!(detect("ééééé", 3).is_some() || detect("ééééé", 3).is_none());
    }
}
