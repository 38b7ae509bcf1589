//! Bindings for `crate::filter`: argument conversion only. Configs arrive
//! as dicts whose keys `fastllm/data/filters.py` has already checked (a key
//! this side does not know is still an error naming it); the chain, the
//! batch functions and the panic policy are plain Rust (`filter::chain`,
//! `crate::guard`); results go back as Arrow arrays, GIL released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use super::arrow::{floats, strings, ArrowArray, Texts};
use crate::filter::chain::{Chain, Verdict};
use crate::filter::{
    c4::C4, fineweb::FineWeb, gopher_quality::GopherQuality, gopher_repetition::GopherRepetition,
};
use crate::filter::{langid, pii, words};
use crate::guard::{self, Doc, Failures, INTERNAL_ERROR};
use crate::pool;

/// Reads `dict` into `target` through `set(key, value)`, which returns
/// false for a key it does not know.
fn fill(
    what: &str,
    dict: &Bound<'_, PyDict>,
    mut set: impl FnMut(&str, &Bound<'_, PyAny>) -> PyResult<bool>,
) -> PyResult<()> {
    for (k, v) in dict.iter() {
        let key: String = k.extract()?;
        let known =
            set(&key, &v).map_err(|e| PyValueError::new_err(format!("{what}.{key}: {e}")))?;
        if !known {
            return Err(PyValueError::new_err(format!(
                "{what}: unknown key {key:?}"
            )));
        }
    }
    Ok(())
}

fn gopher_quality(d: &Bound<'_, PyDict>) -> PyResult<GopherQuality> {
    let mut f = GopherQuality::default();
    fill("gopher_quality", d, |k, v| {
        match k {
            "min_doc_words" => f.min_doc_words = v.extract()?,
            "max_doc_words" => f.max_doc_words = v.extract()?,
            "min_avg_word_length" => f.min_avg_word_length = v.extract()?,
            "max_avg_word_length" => f.max_avg_word_length = v.extract()?,
            "max_symbol_word_ratio" => f.max_symbol_word_ratio = v.extract()?,
            "max_bullet_lines_ratio" => f.max_bullet_lines_ratio = v.extract()?,
            "max_ellipsis_lines_ratio" => f.max_ellipsis_lines_ratio = v.extract()?,
            "max_non_alpha_words_ratio" => f.max_non_alpha_words_ratio = v.extract()?,
            "min_stop_words" => f.min_stop_words = v.extract()?,
            "stop_words" => f.stop_words = v.extract()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(f)
}

fn gopher_repetition(d: &Bound<'_, PyDict>) -> PyResult<GopherRepetition> {
    let mut f = GopherRepetition::default();
    fill("gopher_repetition", d, |k, v| {
        match k {
            "dup_line_frac" => f.dup_line_frac = v.extract()?,
            "dup_para_frac" => f.dup_para_frac = v.extract()?,
            "dup_line_char_frac" => f.dup_line_char_frac = v.extract()?,
            "dup_para_char_frac" => f.dup_para_char_frac = v.extract()?,
            "top_n_grams" => f.top_n_grams = v.extract()?,
            "dup_n_grams" => f.dup_n_grams = v.extract()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(f)
}

fn c4(d: &Bound<'_, PyDict>) -> PyResult<C4> {
    let mut f = C4::default();
    fill("c4", d, |k, v| {
        match k {
            "remove_citations" => f.remove_citations = v.extract()?,
            "filter_no_terminal_punct" => f.filter_no_terminal_punct = v.extract()?,
            "min_num_sentences" => f.min_num_sentences = v.extract()?,
            "min_words_per_line" => f.min_words_per_line = v.extract()?,
            "max_word_length" => f.max_word_length = v.extract()?,
            "filter_lorem_ipsum" => f.filter_lorem_ipsum = v.extract()?,
            "filter_javascript" => f.filter_javascript = v.extract()?,
            "filter_curly_bracket" => f.filter_curly_bracket = v.extract()?,
            "filter_policy" => f.filter_policy = v.extract()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(f)
}

fn fineweb(d: &Bound<'_, PyDict>) -> PyResult<FineWeb> {
    let mut f = FineWeb::default();
    fill("fineweb", d, |k, v| {
        match k {
            "line_punct_thr" => f.line_punct_thr = v.extract()?,
            "line_punct_exclude_zero" => f.line_punct_exclude_zero = v.extract()?,
            "stop_chars" => {
                let s: Option<Vec<String>> = v.extract()?;
                f.stop_chars = s.map(|v| v.iter().filter_map(|x| x.chars().next()).collect());
            }
            "short_line_thr" => f.short_line_thr = v.extract()?,
            "short_line_length" => f.short_line_length = v.extract()?,
            "char_duplicates_ratio" => f.char_duplicates_ratio = v.extract()?,
            "new_line_ratio" => f.new_line_ratio = v.extract()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(f)
}

/// Runs the configured quality filters (a dict per filter; None leaves it
/// out) over `texts` (a list of str or an Arrow string/binary column), in
/// the chain's order (`crate::filter::chain`). Returns two Arrow string
/// columns and the failures: per text, the reason it is dropped (null when
/// kept, and for a null, which the Python side names; `internal_error`
/// where the filters panicked), the text after C4's line removal where C4
/// ran and kept it (else null), and `(row, panic message)` of every text
/// whose filters panicked.
#[pyfunction]
#[pyo3(signature = (texts, gopher_repetition = None, gopher_quality = None, c4 = None, fineweb = None))]
pub(super) fn quality_filter(
    py: Python<'_>,
    texts: Texts,
    gopher_repetition: Option<Bound<'_, PyDict>>,
    gopher_quality: Option<Bound<'_, PyDict>>,
    c4: Option<Bound<'_, PyDict>>,
    fineweb: Option<Bound<'_, PyDict>>,
) -> PyResult<(ArrowArray, ArrowArray, Failures)> {
    let chain = Chain {
        gopher_repetition: gopher_repetition
            .as_ref()
            .map(self::gopher_repetition)
            .transpose()?,
        gopher_quality: gopher_quality
            .as_ref()
            .map(self::gopher_quality)
            .transpose()?,
        c4: c4.as_ref().map(self::c4).transpose()?,
        fineweb: fineweb.as_ref().map(self::fineweb).transpose()?,
    };
    Ok(py.detach(|| -> crate::Result<_> {
        let docs = pool::install(|| chain.run_batch(&texts.rows_str()))?;
        let reasons = strings(docs.iter().map(|d| match d {
            Doc::Done(Verdict::Drop(r)) => Some(r.as_ref()),
            Doc::Failed(_) => Some(INTERNAL_ERROR),
            _ => None,
        }));
        let edited = strings(docs.iter().map(|d| match d {
            Doc::Done(Verdict::Edited(t)) => Some(t.as_str()),
            _ => None,
        }));
        Ok((reasons, edited, guard::failures(&docs)))
    })?)
}

/// Language code (ISO 639-1) and confidence of each text, from its first
/// `max_bytes` bytes, as an Arrow string and an Arrow float64 column: null
/// and 0.0 where no language can be told, for a null, and where detection
/// panicked; those rows are also in the failures, `(row, panic message)`.
#[pyfunction]
#[pyo3(signature = (texts, max_bytes = 10_000))]
pub(super) fn detect_languages(
    py: Python<'_>,
    texts: Texts,
    max_bytes: usize,
) -> PyResult<(ArrowArray, ArrowArray, Failures)> {
    Ok(py.detach(|| -> crate::Result<_> {
        let docs = pool::install(|| langid::detect_batch(&texts.rows_str(), max_bytes))?;
        let lang = |d: &Doc<Option<langid::Lang>>| d.ok().copied().flatten();
        let codes = strings(docs.iter().map(|d| lang(d).map(|l| l.code)));
        let conf = floats(
            docs.iter()
                .map(|d| lang(d).map_or(0.0, |l| l.confidence))
                .collect(),
        );
        Ok((codes, conf, guard::failures(&docs)))
    })?)
}

/// `texts` with PII replaced by the given placeholders (None leaves that
/// kind alone), as an Arrow string column, and the failures. It fails
/// closed: a text whose masking panicked is null in the column (never the
/// unmasked text) and listed in the failures, `(row, panic message)`. A
/// null stays null.
#[pyfunction]
#[pyo3(signature = (texts, email, ip, phone, credit_card, iban))]
pub(super) fn mask_pii(
    py: Python<'_>,
    texts: Texts,
    email: Option<String>,
    ip: Option<String>,
    phone: Option<String>,
    credit_card: Option<String>,
    iban: Option<String>,
) -> PyResult<(ArrowArray, Failures)> {
    let cfg = pii::PiiConfig {
        email,
        ip,
        phone,
        credit_card,
        iban,
    };
    Ok(py.detach(|| -> crate::Result<_> {
        let docs = pool::install(|| pii::mask_batch(&texts.rows_str(), &cfg))?;
        let masked = strings(docs.iter().map(|d| d.ok().map(String::as_str)));
        Ok((masked, guard::failures(&docs)))
    })?)
}

/// Test support for the panic policy, inert otherwise: `texts` through the
/// same guard and the same Arrow output as `mask_pii`, with a "kernel" that
/// returns each text unchanged but panics on every text containing
/// `marker`. No other kernel reads it; the tests put it in place of a real
/// kernel (monkeypatch) to watch a real panic cross the boundary.
#[pyfunction]
pub(super) fn _panic_for_test(
    py: Python<'_>,
    texts: Texts,
    marker: String,
) -> PyResult<(ArrowArray, Failures)> {
    Ok(py.detach(|| -> crate::Result<_> {
        let docs = pool::install(|| {
            guard::map_documents(&texts.rows_str(), |t| {
                if t.contains(marker.as_str()) {
                    panic!("injected panic for a test (marker {marker:?})");
                }
                t.to_string()
            })
        })?;
        let out = strings(docs.iter().map(|d| d.ok().map(String::as_str)));
        Ok((out, guard::failures(&docs)))
    })?)
}

/// The English words of `text` as datatrove's spaCy tokenizer splits them.
#[pyfunction]
pub(super) fn filter_words(text: &str) -> Vec<String> {
    words::words(text).into_iter().map(String::from).collect()
}

/// The number of sentences spaCy's sentencizer finds in `text`.
#[pyfunction]
pub(super) fn count_sentences(text: &str) -> usize {
    words::count_sentences(text)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(quality_filter, m)?)?;
    m.add_function(wrap_pyfunction!(filter_words, m)?)?;
    m.add_function(wrap_pyfunction!(detect_languages, m)?)?;
    m.add_function(wrap_pyfunction!(mask_pii, m)?)?;
    m.add_function(wrap_pyfunction!(count_sentences, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    Ok(())
}
