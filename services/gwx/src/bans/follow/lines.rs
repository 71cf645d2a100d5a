//! Splitting a byte stream into lines, without I/O and in bounded memory.
//!
//! Bytes are fed in chunks as they were read; every complete line (ending in `\n`) is
//! handed to a callback, borrowed from the chunk when it lies inside one, so a line
//! costs no allocation here beyond the `String` finally sent. The start of a line that
//! is not complete yet waits in a buffer capped at the line limit: the rest of an
//! over-long line is thrown away (the line is emitted truncated) instead of buffered.

use std::ops::ControlFlow;

/// Longest line kept, in bytes; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// Capacity above which the partial-line buffer is given back after a long line.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Splits fed chunks into lines. See the module docs.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    /// The start of the current, incomplete line (at most `max` bytes).
    pending: Vec<u8>,
    max: usize,
    /// The current line went past `max`: its further bytes are dropped.
    overflow: bool,
    /// The current line is to be skipped entirely (it began before we started).
    skip: bool,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max: max.max(1),
            overflow: false,
            skip: false,
        }
    }

    /// Drops everything up to and including the next `\n` without emitting it.
    pub(crate) fn skip_to_next_line(&mut self) {
        self.reset();
        self.skip = true;
    }

    /// Forgets the incomplete line, if any.
    pub(crate) fn reset(&mut self) {
        self.pending.clear();
        self.overflow = false;
        self.skip = false;
    }

    /// Feeds one chunk. `emit(line, truncated, end)` gets each complete line without its
    /// `\n`, whether it was cut at the limit, and the index in `chunk` just past its `\n`.
    /// Stops early, returning `Break`, when `emit` does.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        mut emit: impl FnMut(&[u8], bool, usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut start = 0;
        while let Some(i) = find_newline(&chunk[start..]) {
            let end = start + i;
            let part = &chunk[start..end];
            start = end + 1;
            if self.skip {
                self.skip = false;
                continue;
            }
            let flow = if self.pending.is_empty() && !self.overflow {
                let cut = part.len() > self.max;
                emit(&part[..part.len().min(self.max)], cut, start)
            } else {
                self.push(part);
                let flow = emit(&self.pending, self.overflow, start);
                self.clear_pending();
                flow
            };
            flow?;
        }
        if !self.skip {
            self.push(&chunk[start..]);
        }
        ControlFlow::Continue(())
    }

    /// Hands out the incomplete line, if there is one, as if it were complete: for a
    /// file rotated away or truncated with a partial last line.
    pub(crate) fn flush<R>(&mut self, emit: impl FnOnce(&[u8], bool) -> R) -> Option<R> {
        let skip = std::mem::take(&mut self.skip);
        if skip || (self.pending.is_empty() && !self.overflow) {
            return None;
        }
        let r = emit(&self.pending, self.overflow);
        self.clear_pending();
        Some(r)
    }

    fn push(&mut self, part: &[u8]) {
        let room = self.max - self.pending.len();
        if part.len() > room {
            self.pending.extend_from_slice(&part[..room]);
            self.overflow = true;
        } else {
            self.pending.extend_from_slice(part);
        }
    }

    fn clear_pending(&mut self) {
        self.overflow = false;
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }
}

/// The text of a line as fail2ban reads it: trailing `\r` removed (fail2ban strips
/// `\r\n`), leading NUL bytes removed (the hole a writer without `O_APPEND` leaves after
/// a copytruncate), invalid UTF-8 replaced by U+FFFD.
pub(crate) fn to_text(mut bytes: &[u8]) -> String {
    while let [rest @ .., b'\r'] = bytes {
        bytes = rest;
    }
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// Index of the first `\n`, eight bytes at a time.
pub(crate) fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut words = s.chunks_exact(8);
    let mut i = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ NL;
        // A zero byte in `w` is a '\n' in `word`; the lowest flagged byte is exact.
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &mut LineSplitter, chunk: &[u8]) -> Vec<(String, bool, usize)> {
        let mut out = Vec::new();
        let _ = s.feed(chunk, |l, cut, end| {
            out.push((to_text(l), cut, end));
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn lines_in_pieces_wait_for_their_newline() {
        let mut s = LineSplitter::new(MAX_LINE);
        assert!(split(&mut s, b"al").is_empty());
        assert!(split(&mut s, b"pha").is_empty());
        assert_eq!(
            split(&mut s, b"\nbeta\r\ngam"),
            vec![("alpha".into(), false, 1), ("beta".into(), false, 7)]
        );
        assert_eq!(split(&mut s, b"ma\n"), vec![("gamma".into(), false, 3)]);
        assert_eq!(s.flush(|l, _| l.to_vec()), None);
    }

    #[test]
    fn partial_line_is_flushed_once() {
        let mut s = LineSplitter::new(MAX_LINE);
        split(&mut s, b"tail without newline");
        assert_eq!(
            s.flush(|l, _| to_text(l)).as_deref(),
            Some("tail without newline")
        );
        assert_eq!(s.flush(|l, _| to_text(l)), None);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_dropped() {
        let mut s = LineSplitter::new(8);
        // Within one chunk.
        assert_eq!(
            split(&mut s, b"0123456789abc\nok\n"),
            vec![("01234567".into(), true, 14), ("ok".into(), false, 17)]
        );
        // Across chunks: the buffer never holds more than the limit.
        split(&mut s, b"012345");
        split(&mut s, b"6789");
        split(&mut s, b"abcdef");
        assert!(s.pending.len() <= 8);
        assert_eq!(split(&mut s, b"x\n"), vec![("01234567".into(), true, 2)]);
        assert_eq!(split(&mut s, b"next\n"), vec![("next".into(), false, 5)]);
    }

    #[test]
    fn skip_drops_the_first_line() {
        let mut s = LineSplitter::new(MAX_LINE);
        s.skip_to_next_line();
        assert!(split(&mut s, b"rest of an old li").is_empty());
        assert_eq!(split(&mut s, b"ne\nnew\n"), vec![("new".into(), false, 7)]);
    }

    #[test]
    fn break_stops_feeding() {
        let mut s = LineSplitter::new(MAX_LINE);
        let mut seen = Vec::new();
        let flow = s.feed(b"a\nb\nc\n", |l, _, _| {
            seen.push(to_text(l));
            if seen.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert!(flow.is_break());
        assert_eq!(seen, ["a", "b"]);
    }

    #[test]
    fn text_is_lossy_and_trimmed() {
        assert_eq!(to_text(b"\0\0\0ok\r"), "ok");
        assert_eq!(to_text(b"caf\xe9 \xff"), "caf\u{fffd} \u{fffd}");
        assert_eq!(to_text(b"mid\0dle"), "mid\0dle");
    }

    #[test]
    fn find_newline_agrees_with_a_plain_scan() {
        // Deterministic pseudo-random bytes, dense in '\n' and in bytes near it.
        let mut x: u32 = 0x9e37_79b9;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                [b'\n', b'\x0b', b'\t', 0x8a, b'a', 0, 0xff][(x % 7) as usize]
            })
            .collect();
        for start in 0..data.len() {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 64] {
                let s = &data[start..(start + len).min(data.len())];
                assert_eq!(find_newline(s), s.iter().position(|&b| b == b'\n'));
            }
        }
    }
}
