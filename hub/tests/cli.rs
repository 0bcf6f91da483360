//! The `dcmms-hub` binary: shipped example configs, `--check-config`,
//! `generate-config`, `enroll`, and a real start on port 0 with a ready
//! file, then SIGTERM.

use dcmms_hub::Config;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
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

#[test]
fn runs_on_port_zero_writes_ready_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        "state_dir = \"state\"\n[broker]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let ready = dir.path().join("ready.json");
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut child = hub_bin()
        .arg("--config")
        .arg(&cfg)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let doc: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default();
            panic!("hub exited early ({status}):\n{log}");
        }
        assert!(Instant::now() < deadline, "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let api = doc["api"].as_str().unwrap();
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

    let (status, body) = http_get(api, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(api, "/api/v1/gateways");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"gateways\":[]"), "{body}");

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hub did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("hub stopped"), "{log}");
}
