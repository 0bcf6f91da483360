//! The gateway binary's command line: config checking and its errors.

use dcmms_e2e::procs::{bin, repo_root};
use std::process::Command;

fn check(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin("dcmms-gateway"))
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .output()
        .expect("run dcmms-gateway");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(repo_root().join("gateway/examples/gateway.toml")).unwrap();

    let bad = dir.path().join("bad-interval.toml");
    std::fs::write(
        &bad,
        example.replace("commit_interval_ms = 250", "commit_interval_ms = 0"),
    )
    .unwrap();
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("bad-interval.toml") && err.contains("buffer.commit_interval_ms"),
        "{err}"
    );

    let bad = dir.path().join("typo.toml");
    std::fs::write(&bad, example.replace("max_in_flight", "max_inflight")).unwrap();
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("typo.toml") && err.contains("max_inflight"),
        "{err}"
    );

    let bad = dir.path().join("bad-point.toml");
    std::fs::write(
        &bad,
        example.replace("data_type = \"u32\"", "data_type = \"u33\""),
    )
    .unwrap();
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("bad-point.toml") && err.contains("u33"),
        "{err}"
    );
}

#[test]
fn check_config_accepts_the_example_with_an_enrolled_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let hub_cfg = dir.path().join("hub.toml");
    std::fs::write(&hub_cfg, "state_dir = \"hub\"\n").unwrap();
    let out = Command::new(bin("dcmms-hub"))
        .arg("enroll")
        .arg("--config")
        .arg(&hub_cfg)
        .args(["--site", "solar-north", "--gateway", "gw-01", "--out"])
        .arg(dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let example =
        std::fs::read_to_string(repo_root().join("gateway/examples/gateway.toml")).unwrap();
    let csv = repo_root().join("hil/points/solar-inverter.csv");
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        example.replace("../../hil/points/solar-inverter.csv", csv.to_str().unwrap()),
    )
    .unwrap();
    let (ok, err) = check(&cfg);
    assert!(ok, "{err}");

    // Without the bundle the check fails and says which file is missing.
    std::fs::remove_file(dir.path().join("certs/key.pem")).unwrap();
    let (ok, err) = check(&cfg);
    assert!(!ok);
    assert!(err.contains("key.pem"), "{err}");
}
