//! tiktoken's `.tiktoken` ranks files: one `base64(token) rank` per line.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{Error, Result};

/// Parse a ranks file; `what` names it in errors.
pub fn parse_ranks(data: &[u8], what: &str) -> Result<Vec<(Vec<u8>, u32)>> {
    let text =
        std::str::from_utf8(data).map_err(|e| Error::format(what, format!("not UTF-8: {e}")))?;
    let mut ranks = Vec::with_capacity(text.len() / 16);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| Error::format(what, format!("line {}: {why}: {line:?}", i + 1));
        let (tok, rank) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected \"<base64 token> <rank>\""))?;
        let bytes = STANDARD
            .decode(tok)
            .map_err(|_| bad("token is not base64"))?;
        let rank: u32 = rank.parse().map_err(|_| bad("rank is not an integer"))?;
        ranks.push((bytes, rank));
    }
    if ranks.is_empty() {
        return Err(Error::format(what, "no ranks in file"));
    }
    Ok(ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_bad_lines() {
        let r = parse_ranks(b"IQ== 0\nIg== 1\n", "x.tiktoken").unwrap();
        assert_eq!(r, vec![(b"!".to_vec(), 0), (b"\"".to_vec(), 1)]);
        let e = parse_ranks(b"IQ== 0\n!!! 1\n", "x.tiktoken")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.tiktoken: line 2: token is not base64"),
            "{e}"
        );
        assert!(parse_ranks(b"", "e").is_err());
    }
}
