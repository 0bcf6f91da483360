//! Helpers for the driver's integration tests: the Python outstation peer
//! (`hil/peers/dnp3_outstation.py`, dnp3py) and a running driver.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcmms_dnp3::Dnp3Config;
use dcmms_protocols_core::{CommandSender, DeviceStats, PointResolver};
use dcmms_shared::{PointId, Sample};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it installs hil/requirements.txt)";
const DNP3PY_VERSION: &str = "0.6.0";

pub fn python() -> String {
    std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails the test with an install hint unless python and dnp3py are there.
pub async fn require_dnp3py() {
    let py = python();
    let out = Command::new(&py)
        .args([
            "-c",
            "from importlib.metadata import version; import dnp3.outstation; print(version('dnp3py'))",
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {py:?} ({e}): {INSTALL_HINT}, or set DCMMS_PYTHON"));
    assert!(
        out.status.success(),
        "dnp3py is not installed for {py:?}: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        version, DNP3PY_VERSION,
        "dnp3py {version} found, {DNP3PY_VERSION} needed: {INSTALL_HINT}"
    );
}

/// One event the peer made.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PeerEvent {
    pub kind: String,
    pub index: u16,
    pub value: f64,
    pub ts_ms: i64,
}

/// The running outstation; killed when dropped.
pub struct Peer {
    pub port: u16,
    pub log: PathBuf,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    child: Child,
}

impl Peer {
    pub async fn start(dir: &Path) -> Peer {
        require_dnp3py().await;
        let script = repo_root().join("hil/peers/dnp3_outstation.py");
        let log = dir.join("commands.jsonl");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("peer prints its port within 30 s")
            .expect("read peer stdout")
            .expect("peer exited before printing its port");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from peer: {first:?}"));
        Peer {
            port,
            log,
            stdin,
            stdout,
            child,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Asks the outstation to change points; returns the events it made.
    pub async fn make_events(&mut self) -> Vec<PeerEvent> {
        self.stdin
            .write_all(b"events\n")
            .await
            .expect("write to peer");
        self.stdin.flush().await.expect("flush peer stdin");
        let line = tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
            .await
            .expect("peer answers within 10 s")
            .expect("read peer stdout")
            .expect("peer exited");
        let json = line
            .strip_prefix("EVENTS ")
            .unwrap_or_else(|| panic!("unexpected line from peer: {line:?}"));
        serde_json::from_str(json).expect("events are JSON")
    }

    /// What reached the outstation's command and time handlers, in order.
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Interns names to dense ids, like the gateway does.
#[derive(Default)]
pub struct Names(pub HashMap<String, PointId>);

impl PointResolver for Names {
    fn resolve(&mut self, name: &str) -> PointId {
        let next = PointId(self.0.len() as u32);
        *self.0.entry(name.to_owned()).or_insert(next)
    }
}

/// A driver running in the background, with everything it sent so far.
pub struct Running {
    pub names: Names,
    pub stats: Arc<DeviceStats>,
    pub commands: Option<CommandSender>,
    pub batches: Vec<Vec<Sample>>,
    rx: mpsc::Receiver<Vec<Sample>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    pub fn start(cfg: &Dnp3Config) -> Running {
        let mut names = Names::default();
        let driver = dcmms_dnp3::build(cfg, Path::new("."), &mut names).expect("valid config");
        let stats = driver.stats();
        let commands = driver.commands();
        let (tx, rx) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(driver.run(tx, cancel.clone()));
        Running {
            names,
            stats,
            commands,
            batches: Vec::new(),
            rx,
            cancel,
            task,
        }
    }

    pub fn id(&self, point: &str) -> PointId {
        self.names.0[point]
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.batches.iter().flatten()
    }

    /// The samples of one point, in the order they were sent.
    pub fn of(&self, point: &str) -> Vec<Sample> {
        let id = self.id(point);
        self.samples().filter(|s| s.point == id).copied().collect()
    }

    /// Collects batches until `done` holds, or fails after `limit`.
    pub async fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Running) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(batch)) => self.batches.push(batch),
                Ok(None) => panic!("driver stopped while waiting for {what}"),
                Err(_) => panic!(
                    "no {what} within {limit:?}; stats {:?}; got {} batches",
                    self.stats.snapshot(),
                    self.batches.len()
                ),
            }
        }
    }

    /// Cancels the driver and checks that it stops promptly.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("driver stops within 3 s of cancellation")
            .expect("driver task does not panic");
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or fails after `limit`.
pub async fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
