//! WARC and WET files as documents.
//!
//! A WARC file is a run of records, each a header block (`WARC/1.0`, then
//! `Name: value` lines, then a blank line) followed by `Content-Length`
//! bytes of content and `\r\n\r\n`. The header block is parsed by the `warc`
//! crate (`warc::parser::headers`); this module frames records by their
//! Content-Length, picks the documents and survives damage:
//!
//! - WARC: `response` records; an `application/http` block loses its HTTP
//!   headers (split by `httparse`) and keeps the body bytes. A payload typed
//!   as something other than HTML (`WARC-Identified-Payload-Type`, else the
//!   HTTP `Content-Type`) is dropped as `non_html`. id = `WARC-Record-ID`,
//!   url = `WARC-Target-URI`.
//! - WET: `conversion` records, whose block is the page's text (UTF-8;
//!   invalid bytes are replaced and counted).
//! - Other record types (warcinfo, request, metadata, ...) are counted by
//!   type and skipped.
//!
//! Plain and gzip files (one member per record as Common Crawl ships them,
//! or one member for the whole file) are told apart by their first bytes.
//! Nothing in the input can make the reader panic, loop or hold more than
//! about `max_record_bytes` in memory: a record that cannot be read is
//! counted under a [`Reason`], and reading resumes at the next line that
//! starts with `WARC/` after the bad record's first byte, so every readable
//! record before and after it is still returned.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::source::gzip::{BreakKind, Members, Rewind};

/// Which documents to take from the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `response` records; the payload is the HTML bytes.
    Warc,
    /// `conversion` records; the payload is UTF-8 text.
    Wet,
}

/// Why a document or a record was not returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A response whose payload type is not HTML.
    NonHtml,
    /// A document with an empty payload.
    Empty,
    /// An `application/http` response without the blank line that ends the
    /// HTTP headers.
    BadHttpHeader,
    /// The header block is not `WARC/<version>` and `Name: value` lines.
    BadHeader,
    /// The content does not end where Content-Length says.
    BadContentLength,
    /// The input ends inside the record.
    TruncatedRecord,
    /// Larger than `max_record_bytes` (skipped without reading it into memory).
    TooLarge,
    /// The gzip member holding the record ends early.
    TruncatedGzip,
    /// The gzip member holding the record is damaged.
    CorruptGzip,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NonHtml => "non_html",
            Reason::Empty => "empty",
            Reason::BadHttpHeader => "bad_http_header",
            Reason::BadHeader => "bad_header",
            Reason::BadContentLength => "bad_content_length",
            Reason::TruncatedRecord => "truncated_record",
            Reason::TooLarge => "too_large",
            Reason::TruncatedGzip => "truncated_gzip",
            Reason::CorruptGzip => "corrupt_gzip",
        }
    }
}

/// What a reader has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Well-formed records of any type.
    pub records: u64,
    /// Documents returned.
    pub docs: u64,
    /// Records or documents not returned, by reason.
    pub dropped: BTreeMap<Reason, u64>,
    /// Well-formed records of types that are not documents, by `WARC-Type`.
    pub other_types: BTreeMap<String, u64>,
    /// Bytes outside any record (before a `WARC/` line, or between gzip
    /// members), skipped.
    pub garbage_bytes: u64,
    /// Damaged gzip members (each episode of damage once).
    pub gzip_errors: u64,
    /// WET texts whose invalid UTF-8 was replaced with U+FFFD.
    pub utf8_repaired: u64,
}

/// One document, borrowing its payload from the reader's window.
#[derive(Debug, PartialEq, Eq)]
pub struct Doc<'a> {
    pub id: String,
    pub url: String,
    /// HTML bytes (WARC) or UTF-8 text (WET).
    pub payload: Cow<'a, [u8]>,
}

/// Reader settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub kind: Kind,
    /// Records with more content than this are skipped as `too_large`; it
    /// also bounds the reader's memory.
    pub max_record_bytes: usize,
}

impl Options {
    pub fn new(kind: Kind) -> Self {
        Options {
            kind,
            max_record_bytes: 64 << 20,
        }
    }
}

/// At most this many messages are kept (the counts keep counting).
const MAX_MESSAGES: usize = 100;
/// A header block longer than this is garbage, not a record.
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Bytes read from the input at a time.
const CHUNK: usize = 1 << 20;
/// Bytes looked at after a record's content to check where it ends.
const LOOKAHEAD: usize = 16;

enum Input<R: Rewind> {
    Plain(R),
    Gzip(Box<Members<R>>),
}

impl<R: Rewind> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gzip(m) => m.read(buf),
        }
    }
}

/// The parts of a header block the reader uses.
#[derive(Default)]
struct Fields {
    header_len: usize,
    content_len: usize,
    warc_type: String,
    id: String,
    url: String,
    content_type: String,
    payload_type: String,
}

/// Where a document's payload is: in the window, or repaired into a copy.
enum Payload {
    Window(usize, usize),
    Owned(Vec<u8>),
}

enum Header {
    Ok(Fields),
    /// Not enough bytes yet to see the whole header block.
    Incomplete,
    Bad,
}

/// Parses the header block at the start of `buf` with the warc crate.
fn parse_header(buf: &[u8]) -> Header {
    let (rest, (_version, headers, content_len)) = match warc::parser::headers(buf) {
        Ok(parsed) => parsed,
        Err(e) if e.is_incomplete() => return Header::Incomplete,
        Err(_) => return Header::Bad,
    };
    // The parser stops at the first line that is not a header; only a blank
    // line ends the block.
    let blank = if rest.starts_with(b"\r\n") {
        2
    } else if rest.starts_with(b"\n") {
        1
    } else if rest.is_empty() || rest == b"\r" {
        return Header::Incomplete;
    } else {
        return Header::Bad;
    };
    let mut f = Fields {
        header_len: buf.len() - rest.len() + blank,
        content_len,
        ..Fields::default()
    };
    for (name, value) in headers {
        let slot = if name.eq_ignore_ascii_case("WARC-Type") {
            &mut f.warc_type
        } else if name.eq_ignore_ascii_case("WARC-Record-ID") {
            &mut f.id
        } else if name.eq_ignore_ascii_case("WARC-Target-URI") {
            &mut f.url
        } else if name.eq_ignore_ascii_case("Content-Type") {
            &mut f.content_type
        } else if name.eq_ignore_ascii_case("WARC-Identified-Payload-Type") {
            &mut f.payload_type
        } else {
            continue;
        };
        if slot.is_empty() {
            *slot = String::from_utf8_lossy(value).trim().to_string();
        }
    }
    Header::Ok(f)
}

/// `text/html; charset=utf-8` → `text/html`.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn is_html(media_type: &str) -> bool {
    media_type.eq_ignore_ascii_case("text/html")
        || media_type.eq_ignore_ascii_case("application/xhtml+xml")
}

/// Splits an HTTP response into its Content-Type and body; None when the
/// headers never end.
fn split_http(block: &[u8]) -> Option<(Option<String>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .parse_response(&mut response, block);
    if let Ok(httparse::Status::Complete(n)) = parsed {
        let ct = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("Content-Type"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned());
        return Some((ct, n));
    }
    // Too many headers, or a status line httparse refuses: the body still
    // starts after the first blank line.
    let crlf = memchr::memmem::find(block, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(block, b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some((None, end))
}

/// Gzip when the input starts with a gzip header, or when it does not start
/// with a record but a gzip header follows soon (junk before the first member).
fn looks_gzipped(head: &[u8]) -> bool {
    if head.starts_with(&[0x1f, 0x8b]) {
        return true;
    }
    let text = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    if head[text..].starts_with(b"WARC/") {
        return false;
    }
    let window = &head[..head.len().min(64 << 10)];
    memchr::memmem::find(window, &crate::source::gzip::MAGIC).is_some()
}

/// Reads the documents of one WARC or WET file.
pub struct WarcReader<R: Rewind> {
    input: Input<R>,
    opts: Options,
    /// The window: decompressed bytes from stream offset `base` on.
    buf: Vec<u8>,
    /// `buf[pos..end]` is read and not yet parsed.
    pos: usize,
    end: usize,
    base: u64,
    eof: bool,
    /// Set while skipping the rest of a bad record (those bytes are not
    /// counted as garbage: the record was counted).
    after_bad: bool,
    counts: Counts,
    messages: Vec<String>,
}

impl WarcReader<BufReader<File>> {
    /// Opens `path`; gzip or plain is told from the first bytes.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> crate::Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| crate::Error::io(path, e))?;
        WarcReader::new(BufReader::with_capacity(CHUNK, file), opts)
            .map_err(|e| crate::Error::io(path, e))
    }
}

impl<R: Rewind> WarcReader<R> {
    pub fn new(mut inner: R, opts: Options) -> io::Result<Self> {
        let gzip = looks_gzipped(inner.fill_buf()?);
        let input = if gzip {
            Input::Gzip(Box::new(Members::new(inner)))
        } else {
            Input::Plain(inner)
        };
        Ok(WarcReader {
            input,
            opts,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            after_bad: false,
            counts: Counts::default(),
            messages: Vec::new(),
        })
    }

    /// Counts so far (final once `next_doc` returned None).
    pub fn counts(&self) -> Counts {
        let mut c = self.counts.clone();
        if let Input::Gzip(m) = &self.input {
            c.garbage_bytes += m.garbage_bytes();
            c.gzip_errors = m.damage_episodes();
        }
        c
    }

    /// What went wrong where, one line each (the first `MAX_MESSAGES`).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The next document, or None at the end of the input. Errors are the
    /// input's own I/O errors; damage in the file is counted, not returned.
    pub fn next_doc(&mut self) -> io::Result<Option<Doc<'_>>> {
        Ok(self.next_payload()?.map(|(f, payload)| Doc {
            id: f.id,
            url: f.url,
            payload: match payload {
                Payload::Window(a, b) => Cow::Borrowed(&self.buf[a..b]),
                Payload::Owned(v) => Cow::Owned(v),
            },
        }))
    }

    fn next_payload(&mut self) -> io::Result<Option<(Fields, Payload)>> {
        loop {
            let Some(f) = self.next_record()? else {
                return Ok(None);
            };
            // `next_record` left pos at the record's end.
            let block_start = self.pos - f.content_len;
            let wanted = match self.opts.kind {
                Kind::Warc => "response",
                Kind::Wet => "conversion",
            };
            if !f.warc_type.eq_ignore_ascii_case(wanted) {
                match self.counts.other_types.get_mut(f.warc_type.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        self.counts.other_types.insert(f.warc_type, 1);
                    }
                }
                continue;
            }
            let block = &self.buf[block_start..self.pos];
            let payload = match self.opts.kind {
                Kind::Warc => {
                    let (http_type, body_start) =
                        if media_type(&f.content_type).eq_ignore_ascii_case("application/http") {
                            match split_http(block) {
                                Some((ct, n)) => (ct, block_start + n),
                                None => {
                                    Self::drop_doc(
                                        &mut self.counts,
                                        &mut self.messages,
                                        Reason::BadHttpHeader,
                                        self.base + block_start as u64,
                                        &f.id,
                                    );
                                    continue;
                                }
                            }
                        } else {
                            (None, block_start)
                        };
                    let declared = if f.payload_type.is_empty() {
                        http_type.as_deref().map(media_type).unwrap_or("")
                    } else {
                        media_type(&f.payload_type)
                    };
                    if !declared.is_empty() && !is_html(declared) {
                        *self.counts.dropped.entry(Reason::NonHtml).or_default() += 1;
                        continue;
                    }
                    Payload::Window(body_start, self.pos)
                }
                // `from_utf8` first: its validation is several times faster
                // than the lossy decoder's, and almost every text is valid.
                Kind::Wet => match std::str::from_utf8(block) {
                    Ok(_) => Payload::Window(block_start, self.pos),
                    Err(_) => {
                        self.counts.utf8_repaired += 1;
                        Payload::Owned(String::from_utf8_lossy(block).into_owned().into_bytes())
                    }
                },
            };
            let empty = match &payload {
                Payload::Window(a, b) => self.buf[*a..*b].iter().all(u8::is_ascii_whitespace),
                Payload::Owned(v) => v.iter().all(u8::is_ascii_whitespace),
            };
            if empty {
                *self.counts.dropped.entry(Reason::Empty).or_default() += 1;
                continue;
            }
            self.counts.docs += 1;
            return Ok(Some((f, payload)));
        }
    }

    fn drop_doc(
        counts: &mut Counts,
        messages: &mut Vec<String>,
        reason: Reason,
        at: u64,
        id: &str,
    ) {
        *counts.dropped.entry(reason).or_default() += 1;
        if messages.len() < MAX_MESSAGES {
            messages.push(format!("record {id} at byte {at}: {}", reason.as_str()));
        }
    }

    fn avail(&self) -> usize {
        self.end - self.pos
    }

    /// Reads until `need` bytes are available from `pos` or the input ends.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.avail() >= need || self.eof {
            return Ok(());
        }
        // Drop what was parsed; the copy is at most the unparsed tail.
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.base += self.pos as u64;
            self.pos = 0;
        }
        // The buffer stays initialized past `end`, so reads go straight into
        // it without zeroing it again for every read.
        let size = self.end + (need - self.end).max(CHUNK);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        while self.end < need {
            let n = match self.input.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                break;
            }
            self.end += n;
        }
        Ok(())
    }

    /// The first gzip break in `(start, end]` (stream offsets), if any.
    /// Breaks come in offset order: a binary search keeps a file with many
    /// damaged members linear.
    fn break_in(&self, start: u64, end: u64) -> Option<BreakKind> {
        let Input::Gzip(m) = &self.input else {
            return None;
        };
        let breaks = m.breaks();
        let i = breaks.partition_point(|b| b.offset <= start);
        breaks.get(i).filter(|b| b.offset <= end).map(|b| b.kind)
    }

    /// Why the record spanning `(start, end]` was lost: a gzip break inside
    /// it names the cause, else `fallback`.
    fn reason_for(&self, start: u64, end: u64, fallback: Reason) -> Reason {
        match self.break_in(start, end) {
            Some(BreakKind::Truncated) => Reason::TruncatedGzip,
            Some(BreakKind::Corrupt) => Reason::CorruptGzip,
            None => fallback,
        }
    }

    /// Counts a lost record starting at window index `start` and moves past
    /// its first byte, so that resyncing finds the record after it.
    fn bad_record(&mut self, start: usize, end: u64, reason: Reason, id: &str) {
        let at = self.base + start as u64;
        let reason = self.reason_for(at, end, reason);
        let id = if id.is_empty() { "?" } else { id };
        Self::drop_doc(&mut self.counts, &mut self.messages, reason, at, id);
        self.pos = start + 1;
        self.after_bad = true;
    }

    /// Moves `pos` to the next line that starts with `WARC/`.
    fn resync(&mut self) -> io::Result<()> {
        let from = self.base + self.pos as u64;
        let mut skipped = 0u64;
        loop {
            let hay = &self.buf[self.pos..self.end];
            if let Some(i) = memchr::memmem::find(hay, b"\nWARC/") {
                skipped += i as u64 + 1;
                self.pos += i + 1;
                break;
            }
            // Keep a tail that may hold the start of a split "\nWARC/".
            let keep = if self.eof { 0 } else { hay.len().min(5) };
            let drop = hay.len() - keep;
            skipped += drop as u64;
            self.pos += drop;
            if self.eof {
                break;
            }
            self.fill(keep + CHUNK)?;
            if self.avail() <= keep && self.eof {
                skipped += self.avail() as u64;
                self.pos = self.end;
                break;
            }
        }
        if !self.after_bad && skipped > 0 {
            self.counts.garbage_bytes += skipped;
            if self.messages.len() < MAX_MESSAGES {
                self.messages.push(format!(
                    "{skipped} bytes that are not a WARC record skipped at byte {from}"
                ));
            }
        }
        Ok(())
    }

    /// The next well-formed record's header fields, with `pos` at the end of
    /// its content; None at the end of the input.
    fn next_record(&mut self) -> io::Result<Option<Fields>> {
        loop {
            // Padding between records: the \r\n\r\n after each record's
            // content, and whatever blank lines writers add.
            loop {
                self.fill(1)?;
                if self.avail() == 0 {
                    return Ok(None);
                }
                let hay = &self.buf[self.pos..self.end];
                let n = hay
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                self.pos += n;
                if n < hay.len() {
                    break;
                }
            }
            self.fill(5)?;
            let head = &self.buf[self.pos..self.end];
            if self.eof && head.len() < 5 && b"WARC/".starts_with(head) {
                self.bad_record(self.pos, u64::MAX, Reason::TruncatedRecord, "");
                continue;
            }
            if !head.starts_with(b"WARC/") {
                self.resync()?;
                continue;
            }
            self.after_bad = false;
            let header = loop {
                match parse_header(&self.buf[self.pos..self.end]) {
                    Header::Incomplete if !self.eof && self.avail() < MAX_HEADER_BYTES => {
                        let more = (2 * self.avail()).clamp(CHUNK, MAX_HEADER_BYTES);
                        self.fill(more)?;
                    }
                    h => break h,
                }
            };
            // `fill` may move the window, but the record always starts at pos.
            let start = self.pos;
            let f = match header {
                Header::Ok(f) => f,
                Header::Incomplete if self.eof => {
                    self.bad_record(start, u64::MAX, Reason::TruncatedRecord, "");
                    continue;
                }
                Header::Incomplete | Header::Bad => {
                    let end = self.base + (start + MAX_HEADER_BYTES.min(self.avail())) as u64;
                    self.bad_record(start, end, Reason::BadHeader, "");
                    continue;
                }
            };
            let at = self.base + start as u64;
            let end = at
                .saturating_add(f.header_len as u64)
                .saturating_add(f.content_len as u64);
            if f.content_len > self.opts.max_record_bytes {
                // Not skipped by its Content-Length, which may be a lie that
                // would swallow the records after it: resyncing streams past
                // a real one without holding it.
                self.bad_record(start, end, Reason::TooLarge, &f.id);
                continue;
            }
            let len = f.header_len + f.content_len;
            self.fill(len + LOOKAHEAD)?;
            let start = self.pos;
            if self.avail() < len {
                self.bad_record(start, end.saturating_add(4), Reason::TruncatedRecord, &f.id);
                continue;
            }
            // The content must be followed by the \r\n\r\n the format puts
            // there (a shorter run of line ends is let pass only at the end
            // of the input): that is what catches a wrong Content-Length.
            let after = &self.buf[start + len..self.end];
            let blank = after
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let ends_well = after.starts_with(b"\r\n\r\n") || (self.eof && blank == after.len());
            if !ends_well {
                self.bad_record(
                    start,
                    end.saturating_add(4),
                    Reason::BadContentLength,
                    &f.id,
                );
                continue;
            }
            // A gzip break inside a well-framed record: a checksum mismatch
            // at the end of its member.
            if self.break_in(at, end + blank.min(4) as u64).is_some() {
                self.bad_record(start, end.saturating_add(4), Reason::CorruptGzip, &f.id);
                continue;
            }
            self.counts.records += 1;
            self.pos = start + len;
            return Ok(Some(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::{Cursor, Write};

    fn record(warc_type: &str, id: &str, extra: &str, content: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "WARC/1.0\r\nWARC-Type: {warc_type}\r\nWARC-Record-ID: {id}\r\n\
             WARC-Date: 2024-01-01T00:00:00Z\r\n{extra}Content-Length: {}\r\n\r\n",
            content.len()
        )
        .into_bytes();
        r.extend_from_slice(content);
        r.extend_from_slice(b"\r\n\r\n");
        r
    }

    fn response(id: &str, url: &str, content_type: &str, body: &str) -> Vec<u8> {
        let http = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        record(
            "response",
            id,
            &format!(
                "WARC-Target-URI: {url}\r\nContent-Type: application/http; msgtype=response\r\n"
            ),
            http.as_bytes(),
        )
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gz_each(records: &[Vec<u8>]) -> Vec<u8> {
        records.iter().flat_map(|r| gz(r)).collect()
    }

    fn read(input: Vec<u8>, kind: Kind) -> (Vec<(String, String, Vec<u8>)>, Counts) {
        let mut r = WarcReader::new(Cursor::new(input), Options::new(kind)).unwrap();
        let mut docs = Vec::new();
        while let Some(d) = r.next_doc().unwrap() {
            docs.push((d.id, d.url, d.payload.into_owned()));
        }
        (docs, r.counts())
    }

    fn ids(docs: &[(String, String, Vec<u8>)]) -> Vec<&str> {
        docs.iter().map(|d| d.0.as_str()).collect()
    }

    fn sample() -> Vec<Vec<u8>> {
        vec![
            record("warcinfo", "<urn:info>", "", b"software: test\r\n"),
            record(
                "request",
                "<urn:req1>",
                "WARC-Target-URI: http://a/\r\n",
                b"GET / HTTP/1.1\r\n\r\n",
            ),
            response(
                "<urn:r1>",
                "http://a/",
                "text/html; charset=utf-8",
                "<html>one</html>",
            ),
            record("metadata", "<urn:meta1>", "", b"fetchTimeMs: 1\r\n"),
            response("<urn:r2>", "http://b/img.png", "image/png", "\u{89}PNG"),
            response(
                "<urn:r3>",
                "http://c/",
                "application/xhtml+xml",
                "<html>three</html>\n",
            ),
        ]
    }

    #[test]
    fn responses_with_http_headers_stripped() {
        let (docs, c) = read(sample().concat(), Kind::Warc);
        assert_eq!(ids(&docs), ["<urn:r1>", "<urn:r3>"]);
        assert_eq!(docs[0].1, "http://a/");
        assert_eq!(docs[0].2, b"<html>one</html>");
        assert_eq!(docs[1].2, b"<html>three</html>\n");
        assert_eq!(c.records, 6);
        assert_eq!(c.docs, 2);
        assert_eq!(c.dropped, BTreeMap::from([(Reason::NonHtml, 1)]));
        assert_eq!(c.other_types.len(), 3);
        assert_eq!(c.garbage_bytes, 0);
    }

    #[test]
    fn gzip_per_record_reads_the_same() {
        let plain = read(sample().concat(), Kind::Warc);
        let gzip = read(gz_each(&sample()), Kind::Warc);
        assert_eq!(plain, gzip);
        let whole = read(gz(&sample().concat()), Kind::Warc);
        assert_eq!(plain, whole);
    }

    #[test]
    fn payload_type_header_wins_over_http() {
        let r = record(
            "response",
            "<urn:x>",
            "WARC-Identified-Payload-Type: application/pdf\r\nContent-Type: application/http\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n%PDF",
        );
        let (docs, c) = read(r, Kind::Warc);
        assert!(docs.is_empty());
        assert_eq!(c.dropped[&Reason::NonHtml], 1);
    }

    #[test]
    fn wet_conversion_records() {
        let input = [
            record("warcinfo", "<urn:i>", "", b"x"),
            record(
                "conversion",
                "<urn:t1>",
                "WARC-Target-URI: http://t/\r\nContent-Type: text/plain\r\n",
                "Ünïcode text\nline two".as_bytes(),
            ),
            record("conversion", "<urn:t2>", "", b"bad \xff utf8"),
            record("conversion", "<urn:t3>", "", b""),
        ]
        .concat();
        let (docs, c) = read(input, Kind::Wet);
        assert_eq!(ids(&docs), ["<urn:t1>", "<urn:t2>"]);
        assert_eq!(docs[0].2, "Ünïcode text\nline two".as_bytes());
        assert_eq!(docs[1].2, "bad \u{fffd} utf8".as_bytes());
        assert_eq!(c.utf8_repaired, 1);
        assert_eq!(c.dropped[&Reason::Empty], 1);
    }

    #[test]
    fn garbage_between_records_is_skipped() {
        let s = sample();
        let input = [
            b"leading junk\r\n".to_vec(),
            s[2].clone(),
            b"junk in the middle\r\n".to_vec(),
            s[5].clone(),
        ]
        .concat();
        let (docs, c) = read(input, Kind::Warc);
        assert_eq!(ids(&docs), ["<urn:r1>", "<urn:r3>"]);
        assert_eq!(c.garbage_bytes, 14 + 20);
    }

    #[test]
    fn bad_content_length_loses_only_that_record() {
        let s = sample();
        for delta in [-3i64, 5, 4000] {
            let mut bad = response(
                "<urn:bad>",
                "http://x/",
                "text/html",
                "<p>body of the bad one</p>",
            );
            let text = String::from_utf8(bad.clone()).unwrap();
            let cl_at = text.find("Content-Length: ").unwrap() + 16;
            let cl_end = cl_at + text[cl_at..].find('\r').unwrap();
            let cl: i64 = text[cl_at..cl_end].parse().unwrap();
            bad.splice(cl_at..cl_end, (cl + delta).to_string().into_bytes());
            for input in [
                [s[2].clone(), bad.clone(), s[5].clone()].concat(),
                gz_each(&[s[2].clone(), bad.clone(), s[5].clone()]),
            ] {
                let (docs, c) = read(input, Kind::Warc);
                assert_eq!(ids(&docs), ["<urn:r1>", "<urn:r3>"], "delta {delta}");
                let lost: u64 = c.dropped.values().sum();
                assert_eq!(lost, 1, "delta {delta}: {:?}", c.dropped);
            }
        }
    }

    #[test]
    fn truncated_record_keeps_the_ones_before() {
        let s = sample();
        let input = [s[2].clone(), s[5].clone()].concat();
        for cut in [s[2].len() + 3, s[2].len() + 60, input.len() - 5] {
            let (docs, c) = read(input[..cut].to_vec(), Kind::Warc);
            assert_eq!(ids(&docs), ["<urn:r1>"]);
            assert_eq!(c.dropped[&Reason::TruncatedRecord], 1, "cut {cut}");
        }
    }

    #[test]
    fn truncated_gzip_keeps_the_members_before() {
        let s = sample();
        let input = gz_each(&[s[2].clone(), s[5].clone()]);
        let first = gz(&s[2]).len();
        for cut in [first + 15, input.len() - 3] {
            let (docs, c) = read(input[..cut].to_vec(), Kind::Warc);
            assert_eq!(ids(&docs), ["<urn:r1>"], "cut {cut}");
            assert_eq!(
                c.dropped.get(&Reason::TruncatedGzip),
                Some(&1),
                "cut {cut}: {c:?}"
            );
            assert_eq!(c.gzip_errors, 1);
        }
    }

    #[test]
    fn corrupt_member_in_the_middle() {
        let s = sample();
        let mut bad = gz(&s[3]);
        let n = bad.len();
        bad[n - 8] ^= 0xff; // CRC32 of the metadata record
        let mut worse = gz(&s[4]);
        for b in &mut worse[12..20] {
            *b = 0;
        }
        let input = [gz(&s[2]), bad, worse, gz(&s[5])].concat();
        let (docs, c) = read(input, Kind::Warc);
        assert_eq!(ids(&docs), ["<urn:r1>", "<urn:r3>"]);
        assert!(c.gzip_errors >= 1);
    }

    #[test]
    fn non_utf8_headers() {
        let mut r = record(
            "response",
            "<urn:@@>",
            "WARC-Target-URI: http://%%/\r\nContent-Type: application/http\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Bin: \xfe\r\n\r\n<p>ok</p>",
        );
        // Byte values a &str cannot hold; the lengths stay the same.
        let fix = |r: &mut Vec<u8>, from: &[u8], to: &[u8]| {
            let i = memchr::memmem::find(r, from).unwrap();
            r[i..i + from.len()].copy_from_slice(to);
        };
        fix(&mut r, b"@@", b"\xc3\x28");
        fix(&mut r, b"%%", b"\xff\xfe");
        let (docs, _) = read(r, Kind::Warc);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].0, "<urn:\u{fffd}(>");
        assert_eq!(docs[0].1, "http://\u{fffd}\u{fffd}/");
        assert_eq!(docs[0].2, b"<p>ok</p>");
        // A header *name* that is not ASCII is not a header line.
        let bad =
            b"WARC/1.0\r\nWARC-Typ\xe9: response\r\nContent-Length: 0\r\n\r\n\r\n\r\n".to_vec();
        let input = [bad, sample()[2].clone()].concat();
        let (docs, c) = read(input, Kind::Warc);
        assert_eq!(ids(&docs), ["<urn:r1>"]);
        assert_eq!(c.dropped[&Reason::BadHeader], 1);
    }

    #[test]
    fn too_large_is_skipped_by_its_length() {
        let s = sample();
        let big = response("<urn:big>", "http://big/", "text/html", &"x".repeat(5000));
        let input = [s[2].clone(), big, s[5].clone()].concat();
        let mut opts = Options::new(Kind::Warc);
        opts.max_record_bytes = 1000;
        let mut r = WarcReader::new(Cursor::new(input), opts).unwrap();
        let mut got = Vec::new();
        while let Some(d) = r.next_doc().unwrap() {
            got.push(d.id);
        }
        assert_eq!(got, ["<urn:r1>", "<urn:r3>"]);
        assert_eq!(r.counts().dropped[&Reason::TooLarge], 1);
    }

    #[test]
    fn huge_content_length_does_not_allocate_or_panic() {
        let bad = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 18446744073709551615\r\n\r\nabc\r\n\r\n".to_vec();
        let (docs, c) = read([bad, sample()[2].clone()].concat(), Kind::Warc);
        assert_eq!(ids(&docs), ["<urn:r1>"]);
        assert_eq!(c.dropped.values().sum::<u64>(), 1);
    }

    #[test]
    fn http_without_blank_line() {
        let r = record(
            "response",
            "<urn:h>",
            "Content-Type: application/http\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html",
        );
        let (docs, c) = read(r, Kind::Warc);
        assert!(docs.is_empty());
        assert_eq!(c.dropped[&Reason::BadHttpHeader], 1);
    }

    #[test]
    fn every_prefix_and_every_byte_flip_ends_cleanly() {
        let input = gz_each(&sample());
        for cut in 0..input.len() {
            let (docs, _) = read(input[..cut].to_vec(), Kind::Warc);
            assert!(docs.len() <= 2);
        }
        let plain = sample().concat();
        for i in (0..plain.len()).step_by(7) {
            let mut m = plain.clone();
            m[i] ^= 0x55;
            let (docs, _) = read(m, Kind::Warc);
            assert!(docs.len() <= 3);
        }
    }
}
