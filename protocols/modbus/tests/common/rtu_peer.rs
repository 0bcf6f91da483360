//! Starts the Modbus RTU peer (`hil/peers/modbus_rtu_server.py`, pymodbus
//! serial server) on one end of a socat pty pair, or the same units over
//! Modbus TCP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::peer::{python, repo_root, require_pymodbus};

const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh (pyserial from hil/requirements.txt, socat from apt)";

/// A running peer; socat and the peer are killed when dropped.
pub struct RtuPeer {
    /// The pty the driver opens.
    pub port: PathBuf,
    /// TCP port when started with `start_tcp_units_peer`.
    pub tcp_port: Option<u16>,
    /// JSON lines, one per served request.
    pub log: PathBuf,
    /// Unit ids written here stop answering.
    pub silence: PathBuf,
    _children: Vec<Child>,
}

impl RtuPeer {
    /// Makes `units` silent (an empty list makes every unit answer again).
    pub fn silence(&self, units: &[u8]) {
        let text: Vec<String> = units.iter().map(u8::to_string).collect();
        // Written to a temporary name and renamed, so the peer never reads a
        // half-written file.
        let tmp = self.silence.with_extension("tmp");
        std::fs::write(&tmp, text.join(" ")).expect("write silence file");
        std::fs::rename(&tmp, &self.silence).expect("rename silence file");
    }
}

async fn require_pyserial() {
    let out = Command::new(python())
        .args(["-c", "import serial; print(serial.__version__)"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run python ({e}): {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "pyserial is not installed: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_for(path: &Path, what: &str) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{what} {} did not appear within 10 s",
        path.display()
    );
}

fn peer_command(dir: &Path, units: &str) -> (Command, PathBuf, PathBuf) {
    let script = repo_root().join("hil/peers/modbus_rtu_server.py");
    let log = dir.join("served.jsonl");
    let silence = dir.join("silence");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg("--units")
        .arg(units)
        .arg("--log")
        .arg(&log)
        .arg("--silence-file")
        .arg(&silence)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    (cmd, log, silence)
}

async fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("peer reports readiness within 30 s")
        .expect("read peer stdout")
        .expect("peer exited before it was ready")
}

/// socat pty pair in `dir` plus the RTU peer serving `units` (e.g. "1,2,3")
/// on one end; the driver opens `RtuPeer::port`.
pub async fn start_rtu_peer(dir: &Path, units: &str) -> RtuPeer {
    require_pymodbus().await;
    require_pyserial().await;
    let peer_end = dir.join("peer-tty");
    let our_end = dir.join("gateway-tty");
    let socat = Command::new("socat")
        .arg("-d")
        .arg("-d")
        .arg(format!("pty,raw,echo=0,link={}", peer_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", our_end.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start socat ({e}): {INSTALL_HINT}"));
    wait_for(&peer_end, "socat pty").await;
    wait_for(&our_end, "socat pty").await;

    let (mut cmd, log, silence) = peer_command(dir, units);
    let mut peer = cmd
        .arg("--port")
        .arg(&peer_end)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the RTU peer: {e}"));
    let line = first_line(&mut peer).await;
    assert_eq!(line, "READY", "unexpected first line from the RTU peer");
    RtuPeer {
        port: our_end,
        tcp_port: None,
        log,
        silence,
        _children: vec![peer, socat],
    }
}

/// The same units over Modbus TCP on a free port.
pub async fn start_tcp_units_peer(dir: &Path, units: &str) -> RtuPeer {
    require_pymodbus().await;
    let (mut cmd, log, silence) = peer_command(dir, units);
    let mut peer = cmd
        .arg("--tcp")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the peer: {e}"));
    let line = first_line(&mut peer).await;
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the peer: {line:?}"));
    RtuPeer {
        port: PathBuf::new(),
        tcp_port: Some(port),
        log,
        silence,
        _children: vec![peer],
    }
}

/// One served request from the peer's log.
#[derive(Debug, serde::Deserialize)]
pub struct Request {
    pub t: f64,
    pub unit: u8,
    pub fc: u8,
    pub address: u16,
    pub count: u16,
    pub write: Option<Vec<i64>>,
    pub silenced: bool,
}

pub fn requests(log: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // Only whole lines: the peer may be writing the last one.
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && l.len() > 1)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}
