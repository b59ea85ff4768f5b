//! Before hyper sees a connection: its first bytes must start an HTTP request line (a method
//! token followed by a space), so a TLS handshake or other protocol on an L7 port is closed at
//! once with an event instead of being answered 400. The bytes read are handed back to hyper
//! through [`Prefixed`].

use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Longest method token accepted before the first space.
const MAX_METHOD: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// Starts like HTTP: the bytes read so far.
    Http(Bytes),
    NotHttp,
    /// Closed before any byte.
    Eof,
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Classifies a prefix: `None` while undecided.
fn classify(buf: &[u8]) -> Option<bool> {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    for (i, b) in buf[start..].iter().enumerate() {
        if *b == b' ' {
            return Some(i > 0);
        }
        if !tchar(*b) || i >= MAX_METHOD {
            return Some(false);
        }
    }
    None
}

/// Reads until the first bytes show whether this is HTTP (the caller bounds it with a timeout).
pub async fn sniff<R: AsyncRead + Unpin>(io: &mut R) -> io::Result<Sniffed> {
    let mut buf = Vec::with_capacity(64);
    loop {
        let mut chunk = [0u8; 64];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(if buf.is_empty() {
                Sniffed::Eof
            } else {
                Sniffed::NotHttp
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        match classify(&buf) {
            Some(true) => return Ok(Sniffed::Http(buf.into())),
            Some(false) => return Ok(Sniffed::NotHttp),
            None if buf.len() > 4 * MAX_METHOD => return Ok(Sniffed::NotHttp),
            None => {}
        }
    }
}

/// A stream whose first bytes were already read.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_and_other_protocols() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(true));
        assert_eq!(classify(b"\r\nPOST "), Some(true));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Some(false));
        assert_eq!(classify(b" GET"), Some(false));
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.6\r\n"), Some(false));
        assert_eq!(classify(&[b'A'; 40]), Some(false));
    }
}
