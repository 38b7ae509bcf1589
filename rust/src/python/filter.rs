//! Bindings for `crate::filter`: a batch of texts through the quality
//! filters on the rayon pool, GIL released. Configs arrive as dicts whose
//! keys `fastllm/data/filters.py` has already checked; a key this side does
//! not know is still an error naming it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use super::arrow::Texts;
use crate::filter::{
    c4::C4, fineweb::FineWeb, gopher_quality::GopherQuality, gopher_repetition::GopherRepetition,
};
use crate::filter::{langid, pii, words, Reason};
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

/// The filters of one call, applied in datatrove's FineWeb order.
struct Chain {
    repetition: Option<GopherRepetition>,
    quality: Option<GopherQuality>,
    c4: Option<C4>,
    fineweb: Option<FineWeb>,
}

impl Chain {
    /// (reason to drop, text after C4's line removal when C4 ran).
    fn run(&self, text: &str) -> (Option<Reason>, Option<String>) {
        if let Some(r) = self.repetition.as_ref().and_then(|f| f.check(text)) {
            return (Some(r), None);
        }
        if let Some(r) = self.quality.as_ref().and_then(|f| f.check(text)) {
            return (Some(r), None);
        }
        let mut out = None;
        if let Some(f) = &self.c4 {
            match f.apply(text) {
                Ok(t) => out = Some(t),
                Err(r) => return (Some(r), None),
            }
        }
        let cur = out.as_deref().unwrap_or(text);
        if let Some(r) = self.fineweb.as_ref().and_then(|f| f.check(cur)) {
            return (Some(r), None);
        }
        (None, out)
    }
}

/// Runs the configured quality filters (a dict per filter; None leaves it
/// out) over `texts` (a list of str or an Arrow string/binary column).
/// Returns, per text, the reason it is dropped (None when kept, and for a
/// null, which the Python side names) and, where C4 ran and kept it, the
/// text with C4's dropped lines removed.
#[pyfunction]
#[pyo3(signature = (texts, gopher_repetition = None, gopher_quality = None, c4 = None, fineweb = None))]
#[allow(clippy::type_complexity)]
pub(super) fn quality_filter(
    py: Python<'_>,
    texts: Texts,
    gopher_repetition: Option<Bound<'_, PyDict>>,
    gopher_quality: Option<Bound<'_, PyDict>>,
    c4: Option<Bound<'_, PyDict>>,
    fineweb: Option<Bound<'_, PyDict>>,
) -> PyResult<(Vec<Option<String>>, Vec<Option<String>>)> {
    let chain = Chain {
        repetition: gopher_repetition
            .as_ref()
            .map(self::gopher_repetition)
            .transpose()?,
        quality: gopher_quality
            .as_ref()
            .map(self::gopher_quality)
            .transpose()?,
        c4: c4.as_ref().map(self::c4).transpose()?,
        fineweb: fineweb.as_ref().map(self::fineweb).transpose()?,
    };
    let results: Vec<(Option<Reason>, Option<String>)> = py.detach(|| {
        pool::install(|| {
            texts.par_map(|t| {
                let Some(t) = t else { return (None, None) };
                // A panic is a bug; it drops one document, not the batch.
                catch_unwind(AssertUnwindSafe(|| chain.run(t)))
                    .unwrap_or_else(|_| (Some("internal_error".into()), None))
            })
        })
    })?;
    Ok(results
        .into_iter()
        .map(|(r, t)| (r.map(|r| r.into_owned()), t))
        .unzip())
}

/// Language code (ISO 639-1) and confidence of each text, from its first
/// `max_bytes` bytes; None and 0.0 where no language can be told (and for
/// a null).
#[pyfunction]
#[pyo3(signature = (texts, max_bytes = 10_000))]
pub(super) fn detect_languages(
    py: Python<'_>,
    texts: Texts,
    max_bytes: usize,
) -> PyResult<(Vec<Option<&'static str>>, Vec<f64>)> {
    let found: Vec<Option<langid::Lang>> = py.detach(|| {
        pool::install(|| {
            texts.par_map(|t| {
                let t = t?;
                catch_unwind(AssertUnwindSafe(|| langid::detect(t, max_bytes))).unwrap_or(None)
            })
        })
    })?;
    Ok(found
        .into_iter()
        .map(|l| l.map_or((None, 0.0), |l| (Some(l.code), l.confidence)))
        .unzip())
}

/// `texts` with PII replaced by the given placeholders (None leaves that
/// kind alone); a null stays None.
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
) -> PyResult<Vec<Option<String>>> {
    let cfg = pii::PiiConfig {
        email,
        ip,
        phone,
        credit_card,
        iban,
    };
    Ok(py.detach(|| {
        pool::install(|| {
            texts.par_map(|t| {
                let t = t?;
                Some(
                    catch_unwind(AssertUnwindSafe(|| pii::mask(t, &cfg)))
                        .unwrap_or_else(|_| t.to_string()),
                )
            })
        })
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
    Ok(())
}
