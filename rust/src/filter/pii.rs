//! PII masking: e-mail addresses, public IP addresses (v4 and v6, as
//! datatrove's `PIIFormatter` keeps private, loopback, link-local,
//! multicast and reserved ones), phone numbers, payment-card numbers
//! (Luhn-checked) and IBANs (mod-97 checked), each replaced by a
//! configurable placeholder.
//!
//! Precision comes before recall: IPv4-looking version numbers
//! ("version 1.2.3.4", "v1.2.3.4"), dates, ISBNs and plain number lists are
//! left alone; see the tests for the look-alikes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use pcre2::bytes::{Regex, RegexBuilder};

use crate::guard::{self, Doc};

/// Placeholders; None leaves that kind of PII as it is.
#[derive(Clone, Debug)]
pub struct PiiConfig {
    pub email: Option<String>,
    pub ip: Option<String>,
    pub phone: Option<String>,
    pub credit_card: Option<String>,
    pub iban: Option<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            email: Some("<EMAIL>".into()),
            ip: Some("<IP_ADDRESS>".into()),
            phone: Some("<PHONE>".into()),
            credit_card: Some("<CREDIT_CARD>".into()),
            iban: Some("<IBAN>".into()),
        }
    }
}

fn re(p: &str) -> Regex {
    RegexBuilder::new()
        .utf(true)
        .ucp(true)
        .jit_if_available(true)
        .build(p)
        .expect("PII pattern compiles")
}

struct Patterns {
    email: Regex,
    iban: Regex,
    card: Regex,
    ipv6: Regex,
    ipv4: Regex,
    phone: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // datatrove's e-mail pattern, domain part only (no IP literals)
        email: re(r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\b"),
        iban: re(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"),
        card: re(r"(?<![\w.,-])[0-9](?:[ -]?[0-9]){12,18}(?![\w-]|[.,][0-9])"),
        ipv6: re(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![\w:])"),
        ipv4: re(r"(?<![\w.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![\w]|\.[0-9])"),
        phone: re(r"(?<![\w+.,/-])(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,8}(?:[ .-][0-9]{1,8}){0,5}(?![\w]|[.,/-][0-9])"),
    })
}

/// The Luhn checksum of the digits of `s` is valid.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// ISO 13616 check: move the first four characters to the end, letters to
/// 10..35, the number mod 97 must be 1.
pub fn iban_valid(s: &str) -> bool {
    let s: String = s.chars().filter(|c| *c != ' ').collect();
    if !(15..=34).contains(&s.len()) || !s.is_ascii() {
        return false;
    }
    let mut rem: u32 = 0;
    for c in s[4..].chars().chain(s[..4].chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A Luhn-valid number with an issuer prefix and that issuer's length
/// (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro), in
/// one block or in the groups cards print (4-4-4-4(-3), Amex 4-6-5).
fn card_like(s: &str) -> bool {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    let n = d.len();
    let ok_len = if d.starts_with("34") || d.starts_with("37") {
        n == 15
    } else if d.starts_with('4') {
        matches!(n, 13 | 16 | 19)
    } else if [
        "51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27",
    ]
    .iter()
    .any(|p| d.starts_with(p))
    {
        n == 16
    } else if ["6", "35", "30", "36", "38", "50", "56", "57", "58"]
        .iter()
        .any(|p| d.starts_with(p))
    {
        (14..=19).contains(&n)
    } else {
        false
    };
    let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
    let ok_groups = groups.len() == 1
        || groups == [4, 6, 5]
        || (groups[..groups.len() - 1].iter().all(|&g| g == 4)
            && (1..=4).contains(groups.last().unwrap_or(&0)));
    ok_len && ok_groups && luhn(&d)
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

/// Whether the word before `start` says the number that follows is a
/// version ("version 1.2.3.4", "v1.2.3.4", "release: 1.2.3.4").
fn version_context(text: &str, start: usize) -> bool {
    let before = &text[..start];
    if before.ends_with(['v', 'V']) {
        return true;
    }
    let trimmed = before.trim_end_matches([' ', ':', '\t']);
    let word: String = trimmed
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<String>()
        .to_lowercase();
    matches!(
        word.trim_end_matches('.'),
        "version"
            | "ver"
            | "v"
            | "release"
            | "build"
            | "firmware"
            | "update"
            | "rev"
            | "revision"
            | "versión"
            | "versio"
    )
}

fn isbn_context(text: &str, start: usize) -> bool {
    let from = start.saturating_sub(16);
    let mut from = from;
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    text[from..start].to_ascii_uppercase().contains("ISBN")
}

fn phone_like(text: &str, start: usize, m: &str) -> bool {
    let digits = m.bytes().filter(u8::is_ascii_digit).count();
    let plus = m.starts_with('+');
    let paren = m.contains('(');
    let groups = m.split([' ', '.', '-']).filter(|g| !g.is_empty()).count();
    if !(if plus { 8..=15 } else { 10..=15 }).contains(&digits) || isbn_context(text, start) {
        return false;
    }
    if !plus && !paren {
        // a bare run needs grouping that phones have and other numbers lack:
        // "555-123-4567", "030 1234 5678" (leading 0); not "2019 2020 2021"
        let first = m.split([' ', '.', '-']).next().unwrap_or("");
        let seps: Vec<char> = m.chars().filter(|c| matches!(c, ' ' | '.' | '-')).collect();
        let consistent = seps.windows(2).all(|w| w[0] == w[1]);
        if groups < 2 || !consistent {
            return false;
        }
        if seps[0] == ' ' && !first.starts_with('0') {
            return false;
        }
        if seps[0] == '.' && groups != 3 {
            return false;
        }
        // ISBN-13 shapes: 978/979 prefixes
        if first == "978" || first == "979" {
            return false;
        }
    }
    true
}

/// Replaces each match of `re` in `text` that `keep` accepts by `with`.
fn replace(
    text: &str,
    re: &Regex,
    with: &str,
    mut accept: impl FnMut(&str, usize, &str) -> bool,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in re.find_iter(text.as_bytes()) {
        // A matcher error (pcre2's match or JIT stack limit) would leave
        // this kind of PII unmasked: fail the document instead, which the
        // panic policy (`crate::guard`) turns into a drop.
        let m = m.unwrap_or_else(|e| panic!("PII pattern failed on this text: {e}"));
        let (a, b) = (m.start(), m.end());
        let s = &text[a..b];
        if accept(text, a, s) {
            out.push_str(&text[last..a]);
            out.push_str(with);
            last = b;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// [`mask`] over a batch in parallel (call it on the pool), under the one
/// panic policy: it fails closed, a document whose masking panics comes
/// back as [`Doc::Failed`], which holds no text.
pub fn mask_batch<D: AsRef<str> + Sync>(docs: &[Option<D>], cfg: &PiiConfig) -> Vec<Doc<String>> {
    guard::map_documents(docs, |t| mask(t.as_ref(), cfg))
}

/// `text` with its PII replaced by the placeholders of `cfg`.
pub fn mask(text: &str, cfg: &PiiConfig) -> String {
    let p = patterns();
    let mut t = text.to_string();
    // Every kind needs a digit or an '@': most texts are returned untouched
    // after one scan.
    if !t.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return t;
    }
    if let Some(w) = &cfg.email {
        if t.contains('@') {
            t = replace(&t, &p.email, w, |_, _, _| true);
        }
    }
    if let Some(w) = &cfg.iban {
        t = replace(&t, &p.iban, w, |_, _, s| iban_valid(s));
    }
    if let Some(w) = &cfg.credit_card {
        t = replace(&t, &p.card, w, |_, _, s| card_like(s));
    }
    if let Some(w) = &cfg.ip {
        if t.contains(':') {
            t = replace(&t, &p.ipv6, w, |_, _, s| {
                s.parse::<Ipv6Addr>().is_ok_and(public_v6)
            });
        }
        t = replace(&t, &p.ipv4, w, |text, a, s| {
            s.parse::<Ipv4Addr>().is_ok_and(public_v4) && !version_context(text, a)
        });
    }
    if let Some(w) = &cfg.phone {
        t = replace(&t, &p.phone, w, phone_like);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask(s, &PiiConfig::default())
    }

    #[test]
    fn masks_each_kind() {
        assert_eq!(
            m("write to jane.doe+x@mail.example.com now"),
            "write to <EMAIL> now"
        );
        assert_eq!(
            m("server 8.8.8.8 and 2606:4700:4700::1111."),
            "server <IP_ADDRESS> and <IP_ADDRESS>."
        );
        assert_eq!(
            m("call (555) 123-4567 or +44 20 7946 0958"),
            "call <PHONE> or <PHONE>"
        );
        assert_eq!(m("card 4111 1111 1111 1111 ok"), "card <CREDIT_CARD> ok");
        assert_eq!(m("IBAN DE89 3704 0044 0532 0130 00."), "IBAN <IBAN>.");
        assert_eq!(m("GB82WEST12345698765432"), "<IBAN>");
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "version 1.2.3.4 fixes it",
            "upgrade to v1.2.3.4 today",
            "private 192.168.1.1, loopback 127.0.0.1, 10.0.0.7, link fe80::1, ::1",
            "on 2024-01-15 at 12:30:45, 15.01.2024",
            "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2",
            "978-3-16-148410-0",
            "card 4111 1111 1111 1112 fails Luhn",
            "IBAN DE89 3704 0044 0532 0130 01 fails mod 97",
            "years 2019 2020 2021 2022",
            "pi is 3.14159265358979 and e is 2.718281828",
            "no pii here at all",
        ] {
            assert_eq!(m(s), s, "{s}");
        }
    }

    #[test]
    fn checks() {
        assert!(luhn("79927398713") && !luhn("79927398710"));
        assert!(
            iban_valid("GB82 WEST 1234 5698 7654 32") && !iban_valid("GB82 WEST 1234 5698 7654 33")
        );
        let none = PiiConfig {
            email: None,
            ip: None,
            phone: None,
            credit_card: None,
            iban: None,
        };
        assert_eq!(mask("a@b.com 8.8.8.8", &none), "a@b.com 8.8.8.8");
    }
}
