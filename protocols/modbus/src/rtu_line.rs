//! The serial line under the RTU client.
//!
//! [`RtuLine`] wraps the port and owns the line discipline tokio-modbus
//! leaves to the caller: before each request it throws away bytes nobody
//! asked for (typically the late answer of a unit that already timed out,
//! which would otherwise be taken for the next answer) and waits until the
//! line has been quiet for the inter-frame gap. [`LineActivity`] records
//! when the line last carried a byte, so the bus loop can wait for the gap
//! itself and keep that wait out of its round-trip times.
//!
//! Flushes are not passed on: the inner stream must not buffer writes (a
//! serial port or pty does not), and a serial port's flush is `tcdrain`, a
//! blocking call that would stall an executor thread for the whole
//! transmission.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes drained per request at most; a line that never stops talking is
/// left to the frame decoder and the timeout.
const MAX_DRAIN: usize = 4096;
const NEVER: u64 = u64::MAX;

/// When the line last carried a byte, and how many unasked bytes were
/// thrown away. Shared between the line and the bus loop.
#[derive(Debug)]
pub struct LineActivity {
    base: Instant,
    last_ns: AtomicU64,
    discarded: AtomicU64,
}

impl LineActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(LineActivity {
            base: Instant::now(),
            last_ns: AtomicU64::new(NEVER),
            discarded: AtomicU64::new(0),
        })
    }

    fn mark(&self, now: Instant) {
        let ns =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(NEVER - 1);
        self.last_ns.store(ns, Ordering::Relaxed);
    }

    /// The instant the line will have been quiet for `gap`, if it ever
    /// carried a byte.
    pub fn quiet_at(&self, gap: Duration) -> Option<Instant> {
        match self.last_ns.load(Ordering::Relaxed) {
            NEVER => None,
            ns => Some(self.base + Duration::from_nanos(ns) + gap),
        }
    }

    /// Waits until the line has been quiet for `gap`. Returns at once when
    /// it already has: a sleep with a deadline in the past would still wait
    /// for the next turn of the runtime's 1 ms timer.
    pub async fn wait_quiet(&self, gap: Duration) {
        if let Some(at) = self.quiet_at(gap) {
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
        }
    }

    /// Unasked bytes thrown away before requests, since the line was made.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }
}

/// A serial stream that keeps the inter-frame gap and drops stale input
/// before each request.
#[derive(Debug)]
pub struct RtuLine<T> {
    inner: T,
    gap: Duration,
    activity: Arc<LineActivity>,
    /// Between the first write of a request and its flush.
    sending: bool,
    sleep: Pin<Box<Sleep>>,
}

impl<T> RtuLine<T> {
    pub fn new(inner: T, gap: Duration, activity: Arc<LineActivity>) -> Self {
        RtuLine {
            inner,
            gap,
            activity,
            sending: false,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl<T: AsyncRead + Unpin> RtuLine<T> {
    /// Reads and discards whatever is already buffered.
    fn drain(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 256];
        let mut total = 0;
        while total < MAX_DRAIN {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len();
                    total += n;
                    self.activity
                        .discarded
                        .fetch_add(n as u64, Ordering::Relaxed);
                    self.activity.mark(Instant::now());
                }
                // Nothing buffered (Pending), end of stream, or an error the
                // next read will report.
                _ => break,
            }
        }
        if total > 0 {
            tracing::debug!(bytes = total, "discarded unasked bytes before a request");
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for RtuLine<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.mark(Instant::now());
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RtuLine<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.sending {
            this.drain(cx);
            if let Some(at) = this.activity.quiet_at(this.gap) {
                if Instant::now() < at {
                    this.sleep.as_mut().reset(at);
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
            this.sending = true;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sending {
            this.sending = false;
            this.activity.mark(Instant::now());
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn requests_wait_for_the_gap_after_the_last_byte() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let activity = LineActivity::new();
        let gap = Duration::from_millis(4);
        let mut line = RtuLine::new(ours, gap, Arc::clone(&activity));
        assert_eq!(activity.quiet_at(gap), None);

        // The first request goes out at once.
        let t0 = Instant::now();
        line.write_all(&[1, 3, 0, 0]).await.unwrap();
        line.flush().await.unwrap();
        assert_eq!(Instant::now(), t0);
        let mut got = [0u8; 4];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [1, 3, 0, 0]);

        // An answer arrives 10 ms later; the next request waits 4 ms more.
        tokio::time::sleep(Duration::from_millis(10)).await;
        theirs.write_all(&[1, 3, 2, 0, 7]).await.unwrap();
        let mut answer = [0u8; 5];
        line.read_exact(&mut answer).await.unwrap();
        let answered = Instant::now();
        assert_eq!(activity.quiet_at(gap), Some(answered + gap));
        line.write_all(&[2, 3, 0, 0]).await.unwrap();
        line.flush().await.unwrap();
        assert_eq!(Instant::now() - answered, gap);
        assert_eq!(activity.discarded_bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_bytes_are_discarded_before_a_request() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let activity = LineActivity::new();
        let mut line = RtuLine::new(ours, Duration::from_millis(2), Arc::clone(&activity));
        // A late answer nobody reads any more.
        theirs
            .write_all(&[9, 3, 2, 0, 1, 0xAA, 0xBB])
            .await
            .unwrap();
        tokio::task::yield_now().await;
        line.write_all(&[1, 3, 0, 0]).await.unwrap();
        line.flush().await.unwrap();
        assert_eq!(activity.discarded_bytes(), 7);
        // The answer to this request is read intact.
        theirs.write_all(&[1, 3, 2, 0, 5]).await.unwrap();
        let mut answer = [0u8; 5];
        line.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [1, 3, 2, 0, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_gap_never_waits() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut line = RtuLine::new(ours, Duration::ZERO, LineActivity::new());
        let t0 = Instant::now();
        for _ in 0..3 {
            line.write_all(&[1]).await.unwrap();
            line.flush().await.unwrap();
            theirs.write_all(&[2]).await.unwrap();
            let mut b = [0u8; 1];
            line.read_exact(&mut b).await.unwrap();
        }
        assert_eq!(Instant::now(), t0);
    }
}
