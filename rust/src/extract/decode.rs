//! Bytes to text: byte-order mark, then `<meta charset>`, then detection.
//!
//! A declared charset is trusted unless the bytes contradict it: a page that
//! declares UTF-8 but is not valid UTF-8, or declares a legacy charset but
//! is valid UTF-8 with non-ASCII bytes (a common server misconfiguration),
//! goes to detection (chardetng) instead.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// How far into the page `<meta charset>` is looked for. The HTML spec's
/// prescan reads 1024 bytes; real pages put long `<head>` preambles first.
const PRESCAN: usize = 4096;
/// How many bytes chardetng reads.
const DETECT: usize = 64 * 1024;

/// Decodes `bytes` to text, replacing invalid sequences with U+FFFD.
/// `url`'s top-level domain helps detection when nothing is declared.
pub fn decode<'a>(bytes: &'a [u8], url: Option<&str>) -> Cow<'a, str> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return text;
    }
    let valid_utf8 = simd_valid_utf8(bytes);
    let declared = declared_charset(&bytes[..bytes.len().min(PRESCAN)]);
    let enc = match declared {
        // A UTF-16 label in ASCII-compatible bytes means UTF-8 (HTML spec).
        Some(e) if e == UTF_16LE || e == UTF_16BE => UTF_8,
        Some(e) if e == UTF_8 && valid_utf8 => UTF_8,
        Some(e) if e != UTF_8 && (!valid_utf8 || bytes.is_ascii()) => e,
        _ if valid_utf8 => UTF_8,
        _ => detect(bytes, url),
    };
    if enc == UTF_8 {
        return String::from_utf8_lossy(bytes);
    }
    let (text, _, _) = enc.decode(bytes);
    text
}

fn simd_valid_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

fn detect(bytes: &[u8], url: Option<&str>) -> &'static Encoding {
    let mut det = chardetng::EncodingDetector::new();
    det.feed(&bytes[..bytes.len().min(DETECT)], true);
    let tld = url.and_then(tld);
    det.guess(tld.as_ref().map(String::as_bytes), true)
}

/// The top-level domain of an http(s) URL, if it has one, lowercased:
/// chardetng asserts (panics) on upper case, and hosts are case-insensitive
/// (`http://EXAMPLE.DE/` is as German as `http://example.de/`).
fn tld(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#', ':']).next()?;
    let last = host.rsplit('.').next()?;
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| last.to_ascii_lowercase())
}

/// The encoding named by the first `<meta charset=...>` or
/// `<meta http-equiv=content-type content="...; charset=...">` in `head`.
fn declared_charset(head: &[u8]) -> Option<&'static Encoding> {
    let mut i = 0;
    while let Some(off) = find_ci(&head[i..], b"<meta") {
        let start = i + off + 5;
        let end = head[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(head.len(), |p| start + p);
        let tag = &head[start..end];
        if let Some(p) = find_ci(tag, b"charset") {
            let mut v = &tag[p + 7..];
            v = trim_start(v);
            if let Some(rest) = v.strip_prefix(b"=") {
                let rest = trim_start(rest);
                let rest = rest
                    .strip_prefix(b"\"")
                    .or_else(|| rest.strip_prefix(b"'"))
                    .unwrap_or(rest);
                let len = rest
                    .iter()
                    .position(|&b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'>'))
                    .unwrap_or(rest.len());
                if let Some(enc) = Encoding::for_label(&rest[..len]) {
                    return Some(enc);
                }
            }
        }
        i = end.min(head.len());
        if i >= head.len() {
            break;
        }
    }
    None
}

fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &v[n..]
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_wins() {
        let mut b = vec![0xFF, 0xFE];
        for u in "<p>héllo".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&b, None), "<p>héllo");
    }

    #[test]
    fn meta_charset_is_used() {
        let html = b"<meta charset=\"windows-1251\"><p>\xcf\xf0\xe8\xe2\xe5\xf2";
        assert!(decode(html, None).ends_with("Привет"));
        let html =
            b"<meta http-equiv=Content-Type content='text/html; charset=ISO-8859-1'><p>caf\xe9";
        assert!(decode(html, None).ends_with("café"));
    }

    #[test]
    fn wrong_declaration_falls_back() {
        // Declares latin-1 but is valid UTF-8 with non-ASCII: UTF-8.
        let html = "<meta charset=iso-8859-1><p>café naïve".as_bytes();
        assert!(decode(html, None).ends_with("café naïve"));
        // Declares UTF-8 but is not: detection.
        let html = b"<meta charset=utf-8><p>Die Stra\xdfe ist gr\xfcn und sch\xf6n, \xfcberall";
        assert!(decode(html, Some("https://example.de/x")).contains("Straße"));
    }

    #[test]
    fn upper_case_hosts_do_not_panic() {
        // Found by fuzz/warc: chardetng asserts on an upper-case TLD.
        let html = b"<p>Die Stra\xdfe ist gr\xfcn und sch\xf6n, \xfcberall";
        for url in ["http://EXAMPLE.DE/", "http://s0.eAxample/", "HTTP://x.De"] {
            let lower = url.to_ascii_lowercase();
            assert_eq!(decode(html, Some(url)), decode(html, Some(&lower)));
        }
        assert_eq!(tld("http://a.B.Com:80/x").as_deref(), Some("com"));
    }

    #[test]
    fn undeclared_legacy_is_detected() {
        let html = b"<p>\xc2\xe0\xf1\xff \xef\xee\xf8\xe5\xeb \xe2 \xec\xe0\xe3\xe0\xe7\xe8\xed \xe7\xe0 \xf5\xeb\xe5\xe1\xee\xec";
        let text = decode(html, None);
        assert!(text.contains("Вася пошел"), "{text}");
    }

    #[test]
    fn tld_of_urls() {
        assert_eq!(tld("https://www.example.co.uk/a?b").as_deref(), Some("uk"));
        assert_eq!(tld("http://127.0.0.1:8080/"), None);
    }
}
