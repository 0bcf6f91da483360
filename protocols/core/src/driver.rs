//! The contract between the gateway and a protocol driver.
//!
//! A driver is built from its config (in the protocol crate), then run as one
//! task per device. It owns its connection and its reconnect policy; it must
//! never end on a device error, only when cancelled or when the gateway drops
//! the sample channel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dcmms_shared::{PointId, Sample};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::command::CommandSender;
use crate::stats::DeviceStats;

/// The future a running driver is.
pub type DriverFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Interns point names to compact ids. The gateway implements it; drivers call
/// it while they are built (never while running) with names of the form
/// `device/point`.
pub trait PointResolver {
    fn resolve(&mut self, name: &str) -> PointId;
}

/// One device's acquisition loop.
pub trait Driver: Send + 'static {
    /// The device name from the config.
    fn device(&self) -> &str;

    /// Counters of this device, shared with the running task.
    fn stats(&self) -> Arc<DeviceStats>;

    /// The sender for writes/commands, if this driver supports them and has
    /// at least one writable point. Called by the gateway before `run`.
    fn commands(&self) -> Option<CommandSender> {
        None
    }

    /// Polls until `cancel` fires (or `sink` is closed), sending one
    /// `Vec<Sample>` per poll cycle that reached out to the device. Device
    /// errors become Bad-quality samples and counters; the loop reconnects
    /// with backoff and never returns early because of them.
    fn run(
        self: Box<Self>,
        sink: mpsc::Sender<Vec<Sample>>,
        cancel: CancellationToken,
    ) -> DriverFuture;
}

/// Milliseconds since the Unix epoch from the wall clock (0 if the clock is
/// before 1970, which only a broken RTC produces).
pub fn unix_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unix_ms() {
        assert_eq!(unix_time_ms(UNIX_EPOCH + Duration::from_millis(1234)), 1234);
        assert_eq!(unix_time_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
