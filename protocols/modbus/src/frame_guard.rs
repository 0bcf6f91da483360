//! A guard on the bytes a Modbus TCP server sends back.
//!
//! tokio-modbus trusts the MBAP length field and waits for up to 64 KiB
//! when a server claims a long frame, so a broken server costs a full
//! timeout per request. [`MbapScanner`] (sans-IO) follows the frame
//! boundaries in the received stream and refuses a header whose length
//! cannot be a Modbus response (more than 254 bytes of unit id + PDU, or
//! less than 2) or whose protocol id is not 0. [`GuardedStream`] applies it to
//! a socket so such a frame fails at once as `InvalidData`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const HEADER_LEN: usize = 7;
/// Unit id (1) + the largest PDU (253).
pub const MAX_MBAP_LENGTH: u16 = 254;

/// Why the received stream is not Modbus TCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbapError {
    #[error("MBAP length {0} is outside 2..=254")]
    Length(u16),
    #[error("MBAP protocol id {0} is not 0 (Modbus)")]
    ProtocolId(u16),
}

/// Tracks MBAP frame boundaries across arbitrary chunks of a byte stream.
#[derive(Debug, Clone, Default)]
pub struct MbapScanner {
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// Body bytes still to skip in the current frame.
    body_left: usize,
}

impl MbapScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds received bytes; an error means the stream cannot be trusted any
    /// more (the scanner stays in the error state until reset).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), MbapError> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header_filled).min(bytes.len());
            self.header[self.header_filled..self.header_filled + n].copy_from_slice(&bytes[..n]);
            self.header_filled += n;
            bytes = &bytes[n..];
            if self.header_filled == HEADER_LEN {
                let protocol = u16::from_be_bytes([self.header[2], self.header[3]]);
                let length = u16::from_be_bytes([self.header[4], self.header[5]]);
                if protocol != 0 {
                    return Err(MbapError::ProtocolId(protocol));
                }
                if !(2..=MAX_MBAP_LENGTH).contains(&length) {
                    return Err(MbapError::Length(length));
                }
                // The length counts the unit id, which is part of the header.
                self.body_left = usize::from(length) - 1;
                self.header_filled = 0;
            }
        }
        Ok(())
    }
}

/// A transport whose received bytes pass through an [`MbapScanner`].
#[derive(Debug)]
pub struct GuardedStream<T> {
    inner: T,
    scanner: MbapScanner,
    failed: Option<MbapError>,
}

impl<T> GuardedStream<T> {
    pub fn new(inner: T) -> Self {
        GuardedStream {
            inner,
            scanner: MbapScanner::new(),
            failed: None,
        }
    }
}

fn invalid(e: &MbapError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = &this.failed {
            return Poll::Ready(Err(invalid(e)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(e) = this.scanner.feed(&buf.filled()[before..]) {
                    let err = invalid(&e);
                    this.failed = Some(e);
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(tid: u16, pdu: &[u8]) -> Vec<u8> {
        let mut f = tid.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        f.push(1);
        f.extend_from_slice(pdu);
        f
    }

    #[test]
    fn valid_frames_pass_in_any_chunking() {
        let mut stream = frame(1, &[3, 4, 0, 1, 0, 2]);
        stream.extend(frame(2, &[0x83, 2]));
        stream.extend(frame(
            3,
            &[3, 250]
                .iter()
                .copied()
                .chain([0u8; 250])
                .collect::<Vec<_>>(),
        ));
        for chunk in 1..stream.len() {
            let mut s = MbapScanner::new();
            for c in stream.chunks(chunk) {
                assert_eq!(s.feed(c), Ok(()), "chunk {chunk}");
            }
        }
    }

    #[test]
    fn oversized_and_foreign_frames_are_refused() {
        let mut s = MbapScanner::new();
        assert_eq!(
            s.feed(&[0, 1, 0, 0, 0x01, 0x2C, 1]),
            Err(MbapError::Length(300))
        );
        let mut s = MbapScanner::new();
        assert_eq!(s.feed(&[0, 1, 0, 0, 0, 1, 1]), Err(MbapError::Length(1)));
        let mut s = MbapScanner::new();
        assert_eq!(
            s.feed(&[0, 1, 0x12, 0x34, 0, 3, 1]),
            Err(MbapError::ProtocolId(0x1234))
        );
        // The second frame is the bad one, split across chunks.
        let mut s = MbapScanner::new();
        let mut stream = frame(1, &[3, 2, 0, 7]);
        stream.extend([0, 2, 0, 0, 0xFF]);
        assert_eq!(s.feed(&stream), Ok(()));
        assert_eq!(s.feed(&[0xFF, 1]), Err(MbapError::Length(0xFFFF)));
    }

    proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let mut s = MbapScanner::new();
            for c in chunks {
                if s.feed(&c).is_err() {
                    break;
                }
            }
        }
    }
}
