//! Notifications to the service manager (systemd `Type=notify`): readiness
//! once every listener is bound and state is open, watchdog keep-alives, and
//! the start of an ordered shutdown.
//!
//! Without `NOTIFY_SOCKET` in the environment (run by hand, in most tests)
//! every call does nothing. A notification that cannot be sent is logged and
//! never stops the daemon: the service manager then acts on its own timeouts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The daemon's line to the service manager.
#[derive(Debug)]
pub struct ServiceNotifier {
    enabled: bool,
    watchdog: Option<Duration>,
    warned: AtomicBool,
}

impl ServiceNotifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Self {
        ServiceNotifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            warned: AtomicBool::new(false),
        }
    }

    /// True when a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog timeout the service manager enforces (`WatchdogSec`).
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog.filter(|d| !d.is_zero())
    }

    /// How often to ping: half the watchdog timeout, so one late ping does
    /// not get the daemon killed.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_timeout().map(|d| d / 2)
    }

    /// `READY=1` with a one-line status.
    pub fn ready(&self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// A new status line (shown by `systemctl status`).
    pub fn status(&self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`: the daemon is alive and making progress.
    pub fn watchdog(&self) {
        self.send(&[sd_notify::NotifyState::Watchdog]);
    }

    /// `STOPPING=1`: an ordered shutdown has begun.
    pub fn stopping(&self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// Asks for more time before the start or stop timeout fires (for a
    /// long buffer recovery or flush).
    pub fn extend_timeout(&self, by: Duration) {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[sd_notify::NotifyState::ExtendTimeoutUsec(usec)]);
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            // Once: a broken socket would otherwise log on every ping.
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot notify the service manager");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    // One test touches the process environment, so everything that depends on
    // it runs inside it, in order.
    #[test]
    fn messages_reach_the_notify_socket_and_watchdog_is_halved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The only test in the crate that reads these variables.
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "3000000");
        std::env::remove_var("WATCHDOG_PID");
        let n = ServiceNotifier::from_env();
        assert!(n.enabled());
        assert_eq!(n.watchdog_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(1500)));
        let mut buf = [0u8; 512];
        let mut recv = || {
            let len = sock.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        };
        n.ready("up");
        assert_eq!(recv(), "READY=1\nSTATUS=up\n");
        n.watchdog();
        assert_eq!(recv(), "WATCHDOG=1\n");
        n.stopping("bye");
        assert_eq!(recv(), "STOPPING=1\nSTATUS=bye\n");

        // Another process's watchdog is not ours.
        std::env::set_var("WATCHDOG_PID", "1");
        assert_eq!(ServiceNotifier::from_env().watchdog_interval(), None);

        // No socket: nothing is sent and nothing fails.
        std::env::remove_var("NOTIFY_SOCKET");
        let quiet = ServiceNotifier::from_env();
        assert!(!quiet.enabled());
        quiet.ready("up");
        quiet.watchdog();
        // A dead socket path is logged, never fatal.
        std::env::set_var("NOTIFY_SOCKET", dir.path().join("gone.sock"));
        ServiceNotifier::from_env().watchdog();
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
