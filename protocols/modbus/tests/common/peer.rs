//! Starts the pymodbus peer (`hil/peers/modbus_server.py`) as a process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it installs hil/requirements.txt)";

pub fn python() -> String {
    std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails the test with an install hint unless python and pymodbus 3.16.1
/// are available.
pub async fn require_pymodbus() {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import pymodbus; print(pymodbus.__version__)"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {py:?} ({e}): {INSTALL_HINT}, or set DCMMS_PYTHON"));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "pymodbus is not installed for {py:?}: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        version, "3.16.1",
        "pymodbus {version} found, 3.16.1 needed: {INSTALL_HINT}"
    );
}

/// A running peer; killed when dropped.
pub struct Peer {
    pub port: u16,
    pub log: PathBuf,
    _child: Child,
}

pub async fn start_peer(dir: &Path) -> Peer {
    require_pymodbus().await;
    let script = repo_root().join("hil/peers/modbus_server.py");
    let log = dir.join("served.jsonl");
    let mut child = Command::new(python())
        .arg(&script)
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("peer prints its port within 30 s")
        .expect("read peer stdout")
        .expect("peer printed nothing");
    let port = first
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from peer: {first:?}"));
    Peer {
        port,
        log,
        _child: child,
    }
}

/// One served read from the peer's log.
#[derive(Debug, serde::Deserialize)]
pub struct Served {
    pub table: String,
    pub address: u16,
    pub counter: u32,
    pub values: Vec<serde_json::Value>,
}

pub fn served(log: &Path) -> Vec<Served> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}
