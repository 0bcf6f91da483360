//! The `dcmms-hub` binary: shipped example configs, `--check-config`,
//! `generate-config`, `enroll`, and a real start on port 0 with a ready
//! file, then SIGTERM.

use dcmms_hub::Config;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn hub_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dcmms-hub"))
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_example_is_valid() {
    let files = examples();
    assert!(!files.is_empty(), "hub/examples holds no .toml file");
    for f in files {
        Config::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let out = hub_bin()
            .arg("--config")
            .arg(&f)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[broker]\nmax_segment_count = 0\n").unwrap();
    let out = hub_bin()
        .arg("--config")
        .arg(&f)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&f.display().to_string()), "{err}");
    assert!(err.contains("broker.max_segment_count"), "{err}");

    std::fs::write(&f, "[database]\nurl = 42\n").unwrap();
    let out = hub_bin()
        .arg("--config")
        .arg(&f)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("url"), "{err}");
}

#[test]
fn generate_config_prints_the_annotated_defaults() {
    let out = hub_bin().arg("generate-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, dcmms_hub::DEFAULT_CONFIG_TOML);
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 10,
        "annotated"
    );
}

#[test]
fn enroll_writes_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(&cfg, "state_dir = \"state\"\n").unwrap();
    let out_dir = dir.path().join("gw1");
    let out = hub_bin()
        .args(["enroll", "--config"])
        .arg(&cfg)
        .args(["--site", "solar-7", "--gateway", "gw1", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("state/ca/ca.pem").exists());
    let mode = std::fs::metadata(out_dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read(out_dir.join("cert.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let o = cert
        .subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(o, dcmms_shared::topic::tenant_id("solar-7", "gw1"));

    let bad = hub_bin()
        .args(["enroll", "--config"])
        .arg(&cfg)
        .args(["--site", "solar 7", "--gateway", "gw1", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("site"));
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, None, None)
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&serde_json::Value>,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    if json.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn login(api: &str, username: &str, password: &str) -> (u16, String) {
    http(
        api,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&serde_json::json!({ "username": username, "password": password })),
    )
}

/// A hub process started on port 0 with its log (stdout and stderr) in a
/// file; `start` waits for the ready file.
struct Hub {
    child: std::process::Child,
    log: PathBuf,
    api: String,
    doc: serde_json::Value,
}

impl Hub {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Hub {
        let cfg = dir.join("hub.toml");
        std::fs::write(
            &cfg,
            "state_dir = \"state\"\n[broker]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let n = std::fs::read_dir(dir).unwrap().count();
        let log = dir.join(format!("hub-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = hub_bin();
        cmd.env_remove("DCMMS_ADMIN_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("--config")
            .arg(&cfg)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let doc: serde_json::Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break serde_json::from_str(&text).unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("hub exited early ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "no ready file");
            std::thread::sleep(Duration::from_millis(20));
        };
        let api = doc["api"].as_str().unwrap().to_owned();
        Hub {
            child,
            log,
            api,
            doc,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status must be success.
    fn stop(mut self) -> String {
        let kill = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "hub did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert!(status.success(), "{status}\n{log}");
        assert!(log.contains("hub stopped"), "{log}");
        log
    }
}

/// The generated administrator password from the marked block, if any.
fn printed_password(log: &str) -> Option<String> {
    log.lines()
        .skip_while(|l| !l.contains("first administrator ===="))
        .find_map(|l| l.strip_prefix("password: "))
        .map(str::to_owned)
}

#[test]
fn runs_on_port_zero_writes_ready_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]);
    let doc = &hub.doc;
    let api = hub.api.clone();
    let mqtt = doc["mqtt"].as_str().unwrap();
    assert!(
        api.starts_with("127.0.0.1:") && !api.ends_with(":0"),
        "{doc}"
    );
    assert!(
        mqtt.starts_with("127.0.0.1:") && !mqtt.ends_with(":0"),
        "{doc}"
    );
    assert!(Path::new(doc["ca"].as_str().unwrap()).exists());
    std::net::TcpStream::connect(mqtt).expect("broker listening");

    let (status, body) = http_get(&api, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&api, "/api/v1/gateways");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    let (status, body) = http_get(&api, "/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(
        body.contains("\"openapi\":\"3.1"),
        "{}",
        &body[..100.min(body.len())]
    );

    // No default password: a generated one, shown once in a marked block
    // (and nowhere else), that logs in.
    let log = hub.log();
    let password = printed_password(&log).unwrap_or_else(|| panic!("no password block:\n{log}"));
    assert_eq!(password.len(), 24);
    assert_eq!(log.matches(password.as_str()).count(), 1, "{log}");
    let (status, body) = login(&api, "admin", &password);
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(&api, "GET", "/api/v1/gateways", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"gateways\":[]"), "{body}");
    let (status, body) = login(&api, "admin", "not the password");
    assert_eq!(status, 401, "{body}");
    let (_, metrics) = http_get(&api, "/metrics");
    assert!(
        metrics.contains("dcmms_hub_logins_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    let log = hub.stop();
    assert_eq!(log.matches(password.as_str()).count(), 1, "{log}");

    // A second start: no new password, none printed; the first still works.
    let hub = Hub::start(dir.path(), &[]);
    let log = hub.log();
    assert!(printed_password(&log).is_none(), "{log}");
    assert!(!log.contains(&password), "{log}");
    let (status, body) = login(&hub.api, "admin", &password);
    assert_eq!(status, 200, "{body}");
    hub.stop();
}

#[test]
fn first_administrator_from_the_environment() {
    // Too short: the hub refuses to start and says why.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hub.toml"),
        "state_dir = \"state\"\n[broker]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = hub_bin()
        .env("DCMMS_ADMIN_PASSWORD", "short")
        .arg("--config")
        .arg(dir.path().join("hub.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DCMMS_ADMIN_PASSWORD") && err.contains("12 characters"),
        "{err}"
    );
    assert!(
        !err.contains("short\n") && !err.contains("\"short\""),
        "{err}"
    );

    // Long enough: used, never printed.
    let secret = "correct horse battery staple";
    let hub = Hub::start(dir.path(), &[("DCMMS_ADMIN_PASSWORD", secret)]);
    let log = hub.log();
    assert!(printed_password(&log).is_none(), "{log}");
    assert!(!log.contains(secret), "{log}");
    let (status, body) = login(&hub.api, "admin", secret);
    assert_eq!(status, 200, "{body}");
    hub.stop();
}
