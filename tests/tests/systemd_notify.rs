//! The daemons speak systemd's notify protocol: READY=1 once listeners are
//! bound and state is open, WATCHDOG=1 at half the watchdog timeout, and
//! STOPPING=1 when an ordered shutdown starts. The test plays the service
//! manager: it binds the NOTIFY_SOCKET datagram socket and reads it.

use dcmms_e2e::procs::{dump_log, get_json, GatewayProc, HubProc};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// 400 ms watchdog: pings are expected every 200 ms.
const WATCHDOG_USEC: &str = "400000";

struct ServiceManager {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl ServiceManager {
    fn bind(dir: &Path) -> anyhow::Result<(ServiceManager, std::path::PathBuf)> {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path)?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok((
            ServiceManager {
                sock,
                seen: Vec::new(),
            },
            path,
        ))
    }

    /// Reads messages until one has `line` as a line; returns that message.
    fn until(&mut self, line: &str, timeout: Duration) -> anyhow::Result<String> {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        while start.elapsed() < timeout {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if msg.lines().any(|l| l == line) {
                        return Ok(msg);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!(
            "no {line:?} within {timeout:?}; received so far: {:?}",
            self.seen
        )
    }

    /// Counts WATCHDOG=1 messages over `window`.
    fn watchdog_pings(&mut self, window: Duration) -> anyhow::Result<usize> {
        let start = Instant::now();
        let mut pings = 0;
        while start.elapsed() < window {
            if self.until("WATCHDOG=1", window).is_ok() {
                pings += 1;
            }
        }
        Ok(pings)
    }

    fn index_of(&self, line: &str) -> Option<usize> {
        self.seen.iter().position(|m| m.lines().any(|l| l == line))
    }
}

#[test]
fn gateway_notifies_ready_watchdog_and_stopping() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = HubProc::start(&dir.path().join("hub"), "sqlite://hub.db", 0)?;
    HubProc::enroll(&hub.config, "sd-site", "gw-1", &dir.path().join("certs"))?;
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"site = "sd-site"
gateway = "gw-1"
state_dir = "gw-state"
[uplink]
host = "127.0.0.1"
port = {}
bundle_dir = "certs"
[http]
listen = "127.0.0.1:0"
"#,
            hub.mqtt.port()
        ),
    )?;
    let (mut manager, socket) = ServiceManager::bind(dir.path())?;
    let gw = GatewayProc::start_with_env(
        dir.path(),
        &config,
        &[
            ("NOTIFY_SOCKET", socket.as_os_str()),
            ("WATCHDOG_USEC", WATCHDOG_USEC.as_ref()),
        ],
    )?;
    let log = gw.log.clone();
    let result = (|| -> anyhow::Result<()> {
        let ready = manager.until("READY=1", Duration::from_secs(30))?;
        assert!(
            ready.contains("STATUS=0 devices, 0 points, http 127.0.0.1:"),
            "{ready}"
        );
        // Ready means listening and the buffer open.
        let health = get_json(&gw.url("/health"))?;
        assert_eq!(health["status"], "ok", "{health}");
        // READY came after the start-up timeout extension for the buffer.
        let extend = manager
            .seen
            .iter()
            .position(|m| m.starts_with("EXTEND_TIMEOUT_USEC="));
        assert!(
            extend.is_some_and(|e| Some(e) < manager.index_of("READY=1")),
            "{:?}",
            manager.seen
        );
        let pings = manager.watchdog_pings(Duration::from_secs(2))?;
        assert!(
            pings >= 3,
            "{pings} watchdog pings in 2 s at a 400 ms timeout"
        );
        Ok(())
    })();
    if result.is_err() {
        dump_log(&log);
    }
    result?;
    gw.stop()?;
    let stopping = manager.until("STOPPING=1", Duration::from_secs(5))?;
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let text = std::fs::read_to_string(&log)?;
    assert!(text.contains("buffer committed"), "{text}");
    hub.stop()
}

#[test]
fn hub_notifies_ready_watchdog_and_stopping() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir)?;
    let config = hub_dir.join("hub.toml");
    std::fs::write(
        &config,
        r#"state_dir = "state"
[database]
url = "sqlite://hub.db"
[broker]
listen = "127.0.0.1:0"
[api]
listen = "127.0.0.1:0"
"#,
    )?;
    let (mut manager, socket) = ServiceManager::bind(dir.path())?;
    let hub = HubProc::start_with_env(
        &hub_dir,
        &config,
        &[
            ("NOTIFY_SOCKET", socket.as_os_str()),
            ("WATCHDOG_USEC", WATCHDOG_USEC.as_ref()),
        ],
    )?;
    let log = hub.log.clone();
    let result = (|| -> anyhow::Result<()> {
        let ready = manager.until("READY=1", Duration::from_secs(30))?;
        assert!(
            ready.contains(&format!("STATUS=api {}, mqtt {}", hub.api, hub.mqtt)),
            "{ready}"
        );
        let health = get_json(&hub.url("/health"))?;
        assert_eq!(health["status"], "ok", "{health}");
        let pings = manager.watchdog_pings(Duration::from_secs(2))?;
        assert!(
            pings >= 3,
            "{pings} watchdog pings in 2 s at a 400 ms timeout"
        );
        Ok(())
    })();
    if result.is_err() {
        dump_log(&log);
    }
    result?;
    hub.stop()?;
    manager.until("STOPPING=1", Duration::from_secs(5))?;
    Ok(())
}
