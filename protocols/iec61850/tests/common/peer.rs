//! Starts the libiec61850 peer (`hil/peers/iec61850_server.py`) as a process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it installs hil/requirements.txt)";
pub const WHEEL_VERSION: &str = "1.6.1.10";

pub fn python() -> String {
    std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails the test with an install hint unless python and pyiec61850-ng are
/// available in the pinned version.
pub async fn require_wheel() {
    let py = python();
    let out = Command::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, pyiec61850.pyiec61850; print(m.version('pyiec61850-ng'))",
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {py:?} ({e}): {INSTALL_HINT}, or set DCMMS_PYTHON"));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "pyiec61850-ng is not installed for {py:?}: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        version, WHEEL_VERSION,
        "pyiec61850-ng {version} found, {WHEEL_VERSION} needed: {INSTALL_HINT}"
    );
}

/// A running peer; killed when dropped.
pub struct Peer {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Peer {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the peer now (it is also killed on drop).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts the peer with a value step every `tick_ms`.
pub async fn start_peer(dir: &Path, tick_ms: u32) -> Peer {
    require_wheel().await;
    let script = repo_root().join("hil/peers/iec61850_server.py");
    let log = dir.join("served.jsonl");
    let mut child = Command::new(python())
        .arg(&script)
        .arg("--log")
        .arg(&log)
        .arg("--log-ticks")
        .arg("--tick-ms")
        .arg(tick_ms.to_string())
        .stdin(Stdio::piped())
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
        .expect("peer printed nothing (did it crash? see stderr)");
    let port = first
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from peer: {first:?}"));
    Peer { port, log, child }
}

/// One line of the peer's log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Logged {
    pub event: String,
    #[serde(default)]
    pub r#ref: Option<String>,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    #[serde(default)]
    pub counter: Option<u64>,
    #[serde(default)]
    pub t_ms: Option<i64>,
}

pub fn logged(log: &Path) -> Vec<Logged> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

/// The step time (device `t`) of each counter value.
pub fn tick_times(log: &Path) -> std::collections::HashMap<u64, i64> {
    logged(log)
        .into_iter()
        .filter(|l| l.event == "tick")
        .filter_map(|l| Some((l.counter?, l.t_ms?)))
        .collect()
}
