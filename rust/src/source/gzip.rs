//! Multi-member gzip that survives damage.
//!
//! Common Crawl compresses every WARC record as its own gzip member, so a
//! file is a run of members back to back. `Members` inflates them in order as
//! one byte stream, like `flate2::bufread::MultiGzDecoder`, but a member that
//! is truncated or corrupt does not end the stream: the damage is noted as a
//! [`Break`] at the decompressed offset where that member's output stops,
//! and reading resumes at the next gzip header found after the start of the
//! bad member. Bytes between members that are not a gzip header are skipped
//! (and counted). The WARC reader uses the breaks to say why a record was
//! lost.

use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};

use flate2::bufread::GzDecoder;

/// The first three bytes of a gzip member: ID1, ID2 and CM = deflate.
pub const MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// A gzip member starts here: the magic, and a flag byte without the
/// reserved bits (which weeds out most chance matches in compressed data).
fn is_header(head: &[u8]) -> bool {
    head.len() >= 4 && head[..3] == MAGIC && head[3] & 0xE0 == 0
}

/// Input that can go back to a byte it has already read, cheaply when that
/// byte is still buffered (a damaged member is re-scanned from its start).
pub trait Rewind: BufRead + Seek {
    fn rewind_to(&mut self, pos: u64) -> io::Result<()> {
        self.seek(SeekFrom::Start(pos)).map(|_| ())
    }
}

impl<T: AsRef<[u8]>> Rewind for Cursor<T> {}

impl<R: Read + Seek> Rewind for BufReader<R> {
    fn rewind_to(&mut self, pos: u64) -> io::Result<()> {
        // Within the buffer this moves an index; a plain seek would drop
        // the buffer and read it again for every damaged member.
        let here = self.stream_position()?;
        self.seek_relative(pos as i64 - here as i64)
    }
}

/// What went wrong in a damaged member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// The input ended inside the member.
    Truncated,
    /// Bad deflate data, a bad header or a checksum mismatch.
    Corrupt,
}

/// A damaged member: its output ends at decompressed offset `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Break {
    pub offset: u64,
    /// Where the damaged member starts in the compressed input.
    pub input_offset: u64,
    pub kind: BreakKind,
}

enum State<R: BufRead> {
    Between(R),
    // Boxed: the decoder's state is large beside a bare reader.
    Member(Box<GzDecoder<R>>),
}

/// The concatenated output of every readable gzip member of `R`.
pub struct Members<R: Rewind> {
    state: Option<State<R>>,
    member_start: u64,
    /// `out` when the current member started.
    member_out: u64,
    out: u64,
    /// Set after a damaged member until a member inflates cleanly: resyncing
    /// may land on chance headers inside compressed data, and those failures
    /// belong to the same damage.
    resyncing: bool,
    breaks: Vec<Break>,
    episodes: u64,
    garbage: u64,
}

impl<R: Rewind> Members<R> {
    pub fn new(inner: R) -> Self {
        Members {
            state: Some(State::Between(inner)),
            member_start: 0,
            member_out: 0,
            out: 0,
            resyncing: false,
            breaks: Vec::new(),
            episodes: 0,
            garbage: 0,
        }
    }

    /// Damaged members that produced output, and the first member of each
    /// episode of damage, in order.
    pub fn breaks(&self) -> &[Break] {
        &self.breaks
    }

    /// Episodes of damage: runs of failing members (and chance headers
    /// found while resyncing) up to the next member that inflates cleanly.
    pub fn damage_episodes(&self) -> u64 {
        self.episodes
    }

    /// Compressed bytes skipped because they were not part of any member.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage
    }

    /// Decompressed bytes produced so far.
    pub fn total_out(&self) -> u64 {
        self.out
    }

    /// Moves `r` to the next gzip header; false at the end of the input.
    fn seek_member(&mut self, r: &mut R) -> io::Result<bool> {
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            match memchr::memchr(MAGIC[0], buf) {
                None => {
                    let n = buf.len();
                    self.skip(r, n);
                }
                Some(i) if i + 4 <= buf.len() => {
                    if is_header(&buf[i..]) {
                        self.skip(r, i);
                        return Ok(true);
                    }
                    self.skip(r, i + 1);
                }
                Some(i) => {
                    // A candidate split across the buffer's end: look at it
                    // with a read and a step back.
                    self.skip(r, i);
                    let at = r.stream_position()?;
                    let mut head = [0u8; 4];
                    let n = read_up_to(r, &mut head)?;
                    r.rewind_to(at)?;
                    if is_header(&head[..n]) {
                        return Ok(true);
                    }
                    if n < head.len() {
                        // The input ends in a short header-looking tail.
                        self.skip(r, n);
                        return Ok(false);
                    }
                    self.skip(r, 1);
                }
            }
        }
    }

    fn skip(&mut self, r: &mut R, n: usize) {
        r.consume(n);
        if !self.resyncing {
            self.garbage += n as u64;
        }
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Rewind> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self
                .state
                .take()
                .expect("gzip state is always set between calls")
            {
                State::Between(mut r) => {
                    let found = self.seek_member(&mut r);
                    match found {
                        Ok(true) => {
                            self.member_start = r.stream_position()?;
                            self.member_out = self.out;
                            self.state = Some(State::Member(Box::new(GzDecoder::new(r))));
                        }
                        Ok(false) => {
                            self.state = Some(State::Between(r));
                            return Ok(0);
                        }
                        Err(e) => {
                            self.state = Some(State::Between(r));
                            return Err(e);
                        }
                    }
                }
                State::Member(mut d) => match d.read(buf) {
                    Ok(0) => {
                        self.resyncing = false;
                        self.state = Some(State::Between((*d).into_inner()));
                    }
                    Ok(n) => {
                        self.out += n as u64;
                        self.state = Some(State::Member(d));
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        self.state = Some(State::Member(d));
                    }
                    Err(e) => {
                        // A chance header met while resyncing fails without
                        // output and is not news; a member that gave data
                        // and then failed (a bad checksum) always is.
                        if !self.resyncing || self.out > self.member_out {
                            let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
                                BreakKind::Truncated
                            } else {
                                BreakKind::Corrupt
                            };
                            self.breaks.push(Break {
                                offset: self.out,
                                input_offset: self.member_start,
                                kind,
                            });
                        }
                        if !self.resyncing {
                            self.episodes += 1;
                        }
                        self.resyncing = true;
                        // The decoder may have read past the damage into the
                        // next member: look again from just after this
                        // member's first byte.
                        let mut r = (*d).into_inner();
                        let resume = r.rewind_to(self.member_start + 1);
                        self.state = Some(State::Between(r));
                        resume?;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::{Cursor, Write};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(input: Vec<u8>) -> (Vec<u8>, Members<Cursor<Vec<u8>>>) {
        let mut m = Members::new(Cursor::new(input));
        let mut out = Vec::new();
        m.read_to_end(&mut out).unwrap();
        (out, m)
    }

    #[test]
    fn concatenated_members_read_as_one_stream() {
        let input = [gz(b"first "), gz(b""), gz(b"second")].concat();
        let (out, m) = read_all(input);
        assert_eq!(out, b"first second");
        assert!(m.breaks().is_empty());
        assert_eq!(m.garbage_bytes(), 0);
        assert_eq!(m.total_out(), 12);
    }

    #[test]
    fn garbage_between_members_is_skipped_and_counted() {
        let input = [gz(b"a"), b"\x1fjunk\x1f\x8b".to_vec(), gz(b"b")].concat();
        let (out, m) = read_all(input);
        assert_eq!(out, b"ab");
        assert_eq!(m.garbage_bytes(), 7);
        assert!(m.breaks().is_empty());
    }

    #[test]
    fn truncated_last_member_keeps_what_came_before() {
        let whole = gz(&b"x".repeat(1000));
        let input = [gz(b"kept"), whole[..whole.len() - 20].to_vec()].concat();
        let (out, m) = read_all(input);
        assert!(out.starts_with(b"kept"));
        assert_eq!(m.breaks().len(), 1);
        assert_eq!(m.breaks()[0].kind, BreakKind::Truncated);
        assert_eq!(m.breaks()[0].offset, out.len() as u64);
    }

    #[test]
    fn corrupt_member_resyncs_to_the_next() {
        let mut bad = gz(&b"y".repeat(5000));
        let mid = bad.len() / 2;
        for b in &mut bad[12..mid] {
            *b ^= 0x5a;
        }
        let input = [gz(b"one "), bad, gz(b"two")].concat();
        let (out, m) = read_all(input);
        assert!(out.starts_with(b"one "));
        assert!(out.ends_with(b"two"));
        assert_eq!(m.breaks().len(), 1);
        assert_eq!(m.breaks()[0].kind, BreakKind::Corrupt);
    }

    #[test]
    fn checksum_mismatch_is_a_break_after_the_data() {
        let mut member = gz(b"payload");
        let n = member.len();
        member[n - 8] ^= 1; // CRC32
        let (out, m) = read_all([member, gz(b"!")].concat());
        assert_eq!(out, b"payload!");
        assert_eq!(m.breaks().len(), 1);
        assert_eq!(m.breaks()[0].offset, 7);
    }

    #[test]
    fn every_member_with_data_and_a_bad_checksum_is_a_break() {
        let bad = |data: &[u8]| {
            let mut m = gz(data);
            let n = m.len();
            m[n - 8] ^= 1;
            m
        };
        let input = [gz(b"a"), bad(b"b"), bad(b"c"), gz(b"d"), bad(b"e")].concat();
        let (out, m) = read_all(input);
        assert_eq!(out, b"abcde");
        let at: Vec<u64> = m.breaks().iter().map(|b| b.offset).collect();
        assert_eq!(at, [2, 3, 5]);
        assert_eq!(m.damage_episodes(), 2);
    }

    #[test]
    fn magic_split_across_the_buffer_edge() {
        // A BufReader of 4 bytes puts the next member's header across refills.
        let input = [gz(b"left"), b"zz".to_vec(), gz(b"right")].concat();
        let mut m = Members::new(std::io::BufReader::with_capacity(4, Cursor::new(input)));
        let mut out = Vec::new();
        m.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"leftright");
        assert_eq!(m.garbage_bytes(), 2);
    }

    #[test]
    fn anything_at_all_ends() {
        for input in [
            &b""[..],
            b"\x1f",
            b"\x1f\x8b",
            b"\x1f\x8b\x08",
            b"\x1f\x8b\x08\x00\x00",
        ] {
            let (out, _) = read_all(input.to_vec());
            assert!(out.is_empty());
        }
    }
}
