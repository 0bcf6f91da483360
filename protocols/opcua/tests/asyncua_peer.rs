//! The driver against a third-party OPC UA server: the Python `asyncua`
//! 2.1.0 server of `hil/peers/opcua_server.py` (values change every
//! period, with source timestamps; security None and Basic256Sha256
//! Sign/SignAndEncrypt; anonymous and user/password identities). Needs
//! python3 with asyncua (`scripts/install-test-deps.sh`); fails, not skips,
//! without it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dcmms_opcua::{
    browse, build_driver, connect, create_client_certificate, load_point_map, write_points_csv,
    write_points_toml, BrowseOptions, OpcUaConfig, PointConfig, PointMode, SecurityModeName,
    SecurityPolicyName, SubscriptionStats, WriteType,
};
use dcmms_protocols_core::{
    unix_time_ms, Command, CommandError, CommandSender, CommandValue, DeviceStats, Driver,
    PointResolver,
};
use dcmms_shared::{PointId, Quality, Sample};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command as Process};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ASYNCUA_VERSION: &str = "2.1.0";
const PASSWORD: &str = "s3cret-pass";
const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (it installs hil/requirements.txt)";

fn python() -> String {
    std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

async fn require_asyncua() {
    let py = python();
    let out = Process::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, asyncua; print(m.version('asyncua'))",
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {py:?} ({e}): {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "asyncua is not installed for {py:?}: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        v, ASYNCUA_VERSION,
        "asyncua {v} found, {ASYNCUA_VERSION} needed: {INSTALL_HINT}"
    );
}

/// A running asyncua server; killed when dropped.
struct Peer {
    endpoint: String,
    port: u16,
    child: Child,
}

impl Peer {
    async fn start(args: &[&str]) -> Peer {
        require_asyncua().await;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hil/peers/opcua_server.py");
        let mut child = Process::new(python())
            .arg(&script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the peer says READY within 60 s")
            .expect("peer stdout")
            .expect("the peer printed a line");
        let endpoint = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected peer output {line:?}"))
            .to_owned();
        let port = endpoint
            .rsplit(':')
            .next()
            .and_then(|s| s.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port in the endpoint");
        Peer {
            endpoint,
            port,
            child,
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

#[derive(Default)]
struct Names(HashMap<String, PointId>);

impl PointResolver for Names {
    fn resolve(&mut self, name: &str) -> PointId {
        let next = PointId(self.0.len() as u32);
        *self.0.entry(name.to_owned()).or_insert(next)
    }
}

impl Names {
    fn id(&self, point: &str) -> PointId {
        *self
            .0
            .get(&format!("plc/{point}"))
            .unwrap_or_else(|| panic!("no point {point}"))
    }
}

struct Running {
    names: Names,
    samples: Arc<Mutex<Vec<(i64, Sample)>>>,
    stats: Arc<DeviceStats>,
    subs: Arc<SubscriptionStats>,
    commands: Option<CommandSender>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(cfg: &OpcUaConfig, dir: &Path) -> Running {
        let mut names = Names::default();
        let driver = build_driver(cfg, dir, &mut names).expect("config is valid");
        let stats = driver.stats();
        let subs = driver.subscription_stats();
        let commands = driver.commands();
        let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Box::new(driver).run(tx, cancel.clone()));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&samples);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let now = unix_time_ms(SystemTime::now());
                sink.lock()
                    .expect("lock")
                    .extend(batch.into_iter().map(|s| (now, s)));
            }
        });
        Running {
            names,
            samples,
            stats,
            subs,
            commands,
            cancel,
            task,
        }
    }

    fn of(&self, point: &str) -> Vec<(i64, Sample)> {
        let id = self.names.id(point);
        self.samples
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, s)| s.point == id)
            .copied()
            .collect()
    }

    async fn wait(&self, limit: Duration, what: &str, pred: impl Fn(&Running) -> bool) {
        let deadline = Instant::now() + limit;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; stats {:?}, subscription {:?}",
                self.stats.snapshot(),
                self.subs.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn write(&self, point: &str, value: CommandValue) -> Result<(), CommandError> {
        let cmd = self
            .commands
            .as_ref()
            .expect("a writable point gives a command sender");
        tokio::time::timeout(
            Duration::from_secs(10),
            cmd.execute(Command {
                point: point.to_owned(),
                value,
            }),
        )
        .await
        .expect("the write is answered within 10 s")
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("driver stops within 5 s of cancellation")
            .expect("driver does not panic");
    }
}

fn base_config(endpoint: &str) -> OpcUaConfig {
    let mut c = OpcUaConfig::new("plc", endpoint);
    c.publishing_interval_ms = 100;
    c.poll_interval_ms = 200;
    c.connect_timeout_ms = 10_000;
    c.request_timeout_ms = 3000;
    c.backoff_min_ms = 200;
    c.backoff_max_ms = 800;
    c
}

fn point(name: &str, node: &str) -> PointConfig {
    let mut p = PointConfig::new(name, node);
    p.sampling_interval_ms = Some(100);
    p
}

fn good_values(samples: &[(i64, Sample)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|(_, s)| s.quality == Quality::Good)
        .map(|(_, s)| s.value)
        .collect()
}

/// Security None, anonymous: subscribed values arrive and change, stamped
/// with the server's source timestamps (or the server timestamp when the
/// value has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_data_arrives_with_source_timestamps() {
    let peer = Peer::start(&["--period-ms", "100"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = base_config(&peer.endpoint);
    cfg.points = vec![
        point("sine", "ns=2;s=Plant.Sine"),
        point("counter", "ns=2;s=Plant.Counter"),
        point("toggle", "ns=2;s=Plant.Toggle"),
        point("nosrc", "ns=2;s=Plant.NoSourceTs"),
        {
            // The counter steps by 1 each period. asyncua 2.1.0 applies an
            // absolute deadband to the change since the previous value
            // (not since the last reported one, as Part 4 has it), so with
            // a deadband of 2 it reports the first value only.
            let mut p = point("counter_db", "ns=2;s=Plant.Counter");
            p.deadband = Some(2.0);
            p
        },
    ];
    let run = Running::start(&cfg, dir.path());
    run.wait(Duration::from_secs(30), "20 counter values", |r| {
        good_values(&r.of("counter")).len() >= 20
    })
    .await;
    let counters = good_values(&run.of("counter"));
    assert!(
        counters.windows(2).all(|w| w[1] > w[0]),
        "the counter only goes up: {counters:?}"
    );
    let sines = run.of("sine");
    let distinct: BTreeSet<u64> = good_values(&sines).iter().map(|v| v.to_bits()).collect();
    assert!(distinct.len() >= 10, "the sine changes: {distinct:?}");
    assert!(good_values(&sines)
        .iter()
        .all(|v| (-100.0..=100.0).contains(v)));
    // Source timestamps: not the arrival time, strictly increasing, and
    // before arrival (usually by a publishing interval; the bound is loose
    // because the test machines are shared).
    let ts: Vec<i64> = sines.iter().map(|(_, s)| s.ts_ms).collect();
    assert!(ts.windows(2).all(|w| w[1] > w[0]), "{ts:?}");
    for (arrived, s) in &sines {
        let lag = arrived - s.ts_ms;
        assert!(
            (0..10_000).contains(&lag),
            "sample {s:?} arrived {lag} ms after its time"
        );
    }
    assert!(
        sines.iter().any(|(arrived, s)| *arrived != s.ts_ms),
        "timestamps come from the server, not from the arrival time"
    );
    let nosrc = good_values(&run.of("nosrc"));
    assert!(
        nosrc.len() >= 5,
        "the value without a source timestamp arrives too"
    );
    let toggles: BTreeSet<u64> = good_values(&run.of("toggle"))
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert!(!toggles.is_empty());
    let filtered = good_values(&run.of("counter_db"));
    assert_eq!(
        filtered.len(),
        1,
        "steps of 1 stay inside the deadband of 2: {filtered:?}"
    );
    let subs = run.subs.snapshot();
    assert_eq!((subs.monitored, subs.polled, subs.refused_items), (5, 0, 0));
    assert!(subs.notifications >= 40, "{subs:?}");
    let stats = run.stats.snapshot();
    assert!(
        stats.connected && stats.polls_ok > 0 && stats.errors() == 0,
        "{stats:?}"
    );
    run.stop().await;
}

/// Basic256Sha256 with both certificates checked (the server trusts only
/// the gateway's certificate, the gateway only the server's) and a
/// user/password identity, in SignAndEncrypt and Sign modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_with_certificates_and_user_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_pki = dir.path().join("server-pki");
    let server_trust = dir.path().join("server-trusts");
    std::fs::create_dir_all(&server_trust).expect("mkdir");
    // The gateway's certificate first: the server is told to trust it.
    let mut cfg = base_config("opc.tcp://127.0.0.1:4840/dcmms/");
    cfg.security_policy = SecurityPolicyName::Basic256sha256;
    cfg.pki_dir = PathBuf::from("pki");
    cfg.create_certificate = false;
    cfg.user = Some("operator".into());
    cfg.password = Some(PASSWORD.into());
    let plan = cfg.connect_plan(dir.path()).expect("plan");
    let (cert, _key) = create_client_certificate(&plan, false).expect("client certificate");
    std::fs::copy(&cert, server_trust.join("gateway.der")).expect("copy cert");
    assert!(
        create_client_certificate(&plan, false).is_err(),
        "an existing certificate is not overwritten"
    );

    let peer = Peer::start(&[
        "--pki",
        server_pki.to_str().expect("utf8"),
        "--trust-dir",
        server_trust.to_str().expect("utf8"),
        "--no-anonymous",
        "--password",
        PASSWORD,
        "--period-ms",
        "100",
    ])
    .await;
    cfg.endpoint = peer.endpoint.clone();
    cfg.points = vec![point("counter", "ns=2;s=Plant.Counter")];

    // Not yet trusting the server: refused, with the way out in the error.
    let plan = cfg.connect_plan(dir.path()).expect("plan");
    let err = connect(&plan)
        .await
        .err()
        .expect("an untrusted server is refused");
    let text = err.to_string();
    assert!(text.contains("trusted"), "{text}");
    // As the hint says: move the server's certificate from rejected/ to
    // trusted/.
    let rejected: Vec<PathBuf> = std::fs::read_dir(dir.path().join("pki/rejected"))
        .expect("the refused certificate is kept in rejected/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let trusted = dir.path().join("pki/trusted");
    std::fs::create_dir_all(&trusted).expect("mkdir");
    std::fs::rename(
        &rejected[0],
        trusted.join(rejected[0].file_name().expect("name")),
    )
    .expect("trust the server");

    for mode in [SecurityModeName::SignAndEncrypt, SecurityModeName::Sign] {
        cfg.security_mode = Some(mode);
        let plan = cfg.connect_plan(dir.path()).expect("plan");
        match connect(&plan).await {
            Ok(conn) => conn.close().await,
            Err(e) => panic!("{mode:?}: {e}"),
        }
        let run = Running::start(&cfg, dir.path());
        run.wait(Duration::from_secs(30), "10 counter values", |r| {
            good_values(&r.of("counter")).len() >= 10
        })
        .await;
        let stats = run.stats.snapshot();
        assert!(
            stats.connected && stats.errors() == 0,
            "{mode:?}: {stats:?}"
        );
        run.stop().await;
    }
}

/// A wrong password: a clear error naming the cause, counted, every point
/// Bad, and retried with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_counted_error() {
    let peer = Peer::start(&["--no-anonymous", "--password", PASSWORD]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = base_config(&peer.endpoint);
    cfg.user = Some("operator".into());
    cfg.password = Some("wrong".into());
    cfg.points = vec![point("counter", "ns=2;s=Plant.Counter")];
    let plan = cfg.connect_plan(dir.path()).expect("plan");
    let err = connect(&plan)
        .await
        .err()
        .expect("a wrong password is refused");
    let text = err.to_string();
    assert!(text.contains("user and password"), "{text}");
    assert!(!text.contains("wrong"), "the password is not shown: {text}");

    let run = Running::start(&cfg, dir.path());
    run.wait(Duration::from_secs(20), "two refused attempts", |r| {
        let s = r.stats.snapshot();
        s.exceptions >= 2 && s.reconnects >= 1
    })
    .await;
    let counter = run.of("counter");
    assert!(!counter.is_empty() && counter.iter().all(|(_, s)| s.quality == Quality::Bad));
    assert!(!run.stats.snapshot().connected);
    run.stop().await;
}

/// Points in poll mode are read on the poll timer; a monitored item the
/// server refuses (an unknown node) falls back to polling, whose reads
/// give a Bad sample for it and Good ones for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_points_and_refused_items_fall_back_to_reads() {
    let peer = Peer::start(&["--period-ms", "100"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = base_config(&peer.endpoint);
    let mut polled = point("counter", "ns=2;s=Plant.Counter");
    polled.mode = PointMode::Poll;
    polled.sampling_interval_ms = None;
    let mut scaled = point("sine_kw", "ns=2;s=Plant.Sine");
    scaled.scale = 0.5;
    scaled.deadband = Some(0.0);
    cfg.points = vec![polled, point("missing", "ns=2;s=Plant.NoSuchNode"), scaled];
    let run = Running::start(&cfg, dir.path());
    run.wait(Duration::from_secs(30), "polled counter values", |r| {
        good_values(&r.of("counter")).len() >= 5 && !r.of("missing").is_empty()
    })
    .await;
    let subs = run.subs.snapshot();
    assert_eq!(
        (subs.monitored, subs.polled, subs.refused_items),
        (1, 2, 1),
        "{subs:?}"
    );
    assert!(run
        .of("missing")
        .iter()
        .all(|(_, s)| s.quality == Quality::Bad));
    let counters = good_values(&run.of("counter"));
    assert!(counters.windows(2).all(|w| w[1] >= w[0]), "{counters:?}");
    assert!(good_values(&run.of("sine_kw"))
        .iter()
        .all(|v| (-50.0..=50.0).contains(v)));
    assert!(run.stats.snapshot().last_rtt_us > 0);
    run.stop().await;
}

/// Writes reach the server (its write log shows them) and come back
/// through the subscription; unknown and read-only points are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("writes.log");
    let peer = Peer::start(&["--log-writes", log.to_str().expect("utf8")]).await;
    let mut cfg = base_config(&peer.endpoint);
    let mut sp = point("setpoint", "ns=2;s=Plant.Setpoint");
    sp.writable = true;
    sp.scale = 0.1; // engineering value = raw * 0.1
    let mut en = point("enabled", "ns=2;s=Plant.Enabled");
    en.writable = true;
    en.data_type = Some(WriteType::Boolean);
    cfg.points = vec![sp, en, point("sine", "ns=2;s=Plant.Sine")];
    let run = Running::start(&cfg, dir.path());
    run.wait(Duration::from_secs(30), "connected", |r| {
        r.stats.snapshot().connected
    })
    .await;
    run.write("setpoint", CommandValue::Analog(1.25))
        .await
        .expect("setpoint write");
    run.write("enabled", CommandValue::Binary(true))
        .await
        .expect("enabled write");
    assert!(matches!(
        run.write("sine", CommandValue::Analog(1.0)).await,
        Err(CommandError::NotWritable(_))
    ));
    assert!(matches!(
        run.write("nope", CommandValue::Analog(1.0)).await,
        Err(CommandError::UnknownPoint(_))
    ));
    assert!(matches!(
        run.write("enabled", CommandValue::Analog(0.5)).await,
        Err(CommandError::BadValue(_))
    ));
    run.wait(Duration::from_secs(10), "the written setpoint back", |r| {
        good_values(&r.of("setpoint"))
            .iter()
            .any(|v| (v - 1.25).abs() < 1e-9)
    })
    .await;
    let written = std::fs::read_to_string(&log).expect("write log");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines, ["Setpoint=12.5", "Enabled=true"]);
    run.stop().await;
}

/// The server dies and comes back on the same port: points go Bad, writes
/// are refused as not connected, then the driver reconnects and the
/// subscription delivers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts() {
    let mut peer = Peer::start(&["--period-ms", "100"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = base_config(&peer.endpoint);
    let mut sp = point("setpoint", "ns=2;s=Plant.Setpoint");
    sp.writable = true;
    sp.data_type = Some(WriteType::Double);
    cfg.points = vec![point("counter", "ns=2;s=Plant.Counter"), sp];
    let run = Running::start(&cfg, dir.path());
    run.wait(Duration::from_secs(30), "first values", |r| {
        good_values(&r.of("counter")).len() >= 5
    })
    .await;
    peer.kill().await;
    run.wait(Duration::from_secs(30), "the loss noticed", |r| {
        !r.stats.snapshot().connected
            && r.of("counter")
                .last()
                .is_some_and(|(_, s)| s.quality == Quality::Bad)
    })
    .await;
    assert_eq!(
        run.write("setpoint", CommandValue::Analog(1.0)).await,
        Err(CommandError::NotConnected)
    );
    let before = run.of("counter").len();
    let port = peer.port.to_string();
    let _peer2 = Peer::start(&["--port", &port, "--period-ms", "100"]).await;
    run.wait(Duration::from_secs(40), "values after the restart", |r| {
        let c = r.of("counter");
        c.len() > before + 5 && c.last().is_some_and(|(_, s)| s.quality == Quality::Good)
    })
    .await;
    let stats = run.stats.snapshot();
    assert!(stats.connected && stats.reconnects >= 1, "{stats:?}");
    assert!(stats.transport_errors + stats.timeouts >= 1, "{stats:?}");
    run.write("setpoint", CommandValue::Analog(2.0))
        .await
        .expect("write after reconnect");
    run.stop().await;
}

/// Browsing the server gives a point map (TOML and CSV) that the config
/// loader accepts and that names the server's variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_gives_a_point_map_the_loader_accepts() {
    let peer = Peer::start(&["--bulk", "300"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = base_config(&peer.endpoint);
    let plan = cfg.connect_plan(dir.path()).expect("plan");
    let conn = connect(&plan).await.expect("session");
    let mut calls = 0;
    let found = browse(&conn.session, &BrowseOptions::default(), |_, _| calls += 1)
        .await
        .expect("browse");
    conn.close().await;
    assert!(calls > 0);
    let map = found.point_map();
    let by_name: HashMap<&str, &str> = map
        .iter()
        .map(|p| (p.name.as_str(), p.node_id.as_str()))
        .collect();
    assert_eq!(by_name.get("Plant.Sine"), Some(&"ns=2;s=Plant.Sine"));
    assert_eq!(
        by_name.get("Plant.Setpoint"),
        Some(&"ns=2;s=Plant.Setpoint")
    );
    assert_eq!(by_name.get("Bulk.V0299"), Some(&"ns=2;s=Bulk.V0299"));
    assert_eq!(map.len(), 6 + 300, "{by_name:?}");
    let setpoint = found
        .variables
        .iter()
        .find(|v| v.path == ["Plant", "Setpoint"])
        .expect("setpoint");
    assert!(setpoint.writable && setpoint.data_type == Some(WriteType::Double));
    let sine = found
        .variables
        .iter()
        .find(|v| v.path == ["Plant", "Sine"])
        .expect("sine");
    assert!(!sine.writable);

    for (file, text) in [
        ("points.toml", write_points_toml(&map)),
        ("points.csv", write_points_csv(&map)),
    ] {
        std::fs::write(dir.path().join(file), text).expect("write map");
        assert_eq!(
            load_point_map(&dir.path().join(file)).expect("load").len(),
            map.len()
        );
        let mut c = base_config(&peer.endpoint);
        c.points_file = Some(PathBuf::from(file));
        let plan = c.validate(dir.path()).expect("the browsed map validates");
        assert_eq!(plan.points.len(), map.len());
    }
}
