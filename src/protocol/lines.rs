//! Bounded lines: every line a node (or the mux carrying it) sends the master, and every line
//! the mux reads, is read through [`read_line`] (or [`read_line_blocking`]), which never holds
//! more than [`MAX_LINE`] + 1 bytes of one line, however long the line is.

use std::io::{self, BufRead};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line, bytes (its newline not counted). A node's longest honest line is a progress
/// event of a few hundred bytes and its stderr's messages; 1 MiB leaves room for any of them
/// (an error body quoted whole, a long URL) while one line held per stream of each of hundreds
/// of nodes stays well below the master's memory.
pub const MAX_LINE: usize = 1 << 20;

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A line is in the buffer, with its newline (the last line of a stream may lack it).
    Full,
    /// The stream ended: the buffer is empty.
    End,
    /// The line passes the limit: the buffer holds its first `max + 1` bytes, the rest of the
    /// stream is unread. A relay that passes such a line on passes those bytes, so that the
    /// reader at the end (the master's follower) sees it pass the limit too.
    TooLong,
}

/// Moves what `available` holds of the current line into `buf` (holding at most `max` bytes):
/// the bytes consumed, and the line's state once it is complete or too long.
fn scan(available: &[u8], buf: &mut Vec<u8>, max: usize) -> (usize, Option<Line>) {
    let room = max + 1 - buf.len();
    match available.iter().position(|b| *b == b'\n') {
        Some(i) if i < room => {
            buf.extend_from_slice(&available[..=i]);
            (i + 1, Some(Line::Full))
        }
        _ => {
            let n = available.len().min(room);
            buf.extend_from_slice(&available[..n]);
            (n, (buf.len() > max).then_some(Line::TooLong))
        }
    }
}

/// Reads the next line of `r` into `buf` (cleared first), at most `max` bytes before its newline.
/// Not for a `select!` branch: cancelled, it loses the part of a line it had read (see
/// [`read_line_resumable`]).
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    read_line_resumable(r, buf, max).await
}

/// [`read_line`] that may be cancelled (a `select!` branch) without losing a byte: what it had
/// read of a line stays in `buf`, and the next call goes on from there. The caller empties
/// `buf` once it has used each line returned.
pub async fn read_line_resumable<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Full
            });
        }
        let (used, line) = scan(available, buf, max);
        r.consume(used);
        if let Some(line) = line {
            return Ok(line);
        }
    }
}

/// [`read_line`] for blocking readers.
pub fn read_line_blocking<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Full
            });
        }
        let (used, line) = scan(available, buf, max);
        r.consume(used);
        if let Some(line) = line {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless stream of `a`: no newline, ever.
    struct Endless;

    impl io::Read for Endless {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            out.fill(b'a');
            Ok(out.len())
        }
    }

    #[test]
    fn lines_are_read_whole_up_to_the_limit() {
        let mut r = io::Cursor::new(b"ab\n\ncdef\nlast".to_vec());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line_blocking(&mut r, &mut buf, 4).unwrap() {
                Line::End => break,
                line => got.push((line, String::from_utf8(buf.clone()).unwrap())),
            }
        }
        let full = |s: &str| (Line::Full, s.to_string());
        assert_eq!(
            got,
            [full("ab\n"), full("\n"), full("cdef\n"), full("last")]
        );
        let mut r = io::Cursor::new(b"abcde\nx\n".to_vec());
        assert_eq!(
            read_line_blocking(&mut r, &mut buf, 4).unwrap(),
            Line::TooLong
        );
        assert_eq!(buf, b"abcde");
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_at_the_limit() {
        let mut r = io::BufReader::new(Endless);
        let mut buf = Vec::new();
        let line = read_line_blocking(&mut r, &mut buf, MAX_LINE).unwrap();
        assert_eq!((line, buf.len()), (Line::TooLong, MAX_LINE + 1));

        let (mut w, rd) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let chunk = vec![b'a'; 64 * 1024];
            while w.write_all(&chunk).await.is_ok() {}
        });
        let mut rd = tokio::io::BufReader::new(rd);
        let line = read_line(&mut rd, &mut buf, MAX_LINE).await.unwrap();
        assert_eq!((line, buf.len()), (Line::TooLong, MAX_LINE + 1));
        assert!(buf.capacity() < 3 * MAX_LINE, "{}", buf.capacity());
    }
}
