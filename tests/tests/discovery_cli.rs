//! The gateway's discovery commands against third-party peers and files:
//! what they write is a point map that the gateway's config accepts.

use dcmms_e2e::procs::{bin, repo_root, ModbusPeer};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn gateway(args: &[&str]) -> Output {
    Command::new(bin("dcmms-gateway"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dcmms-gateway")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A gateway config in `dir` around `devices`, with an enrolled bundle so
/// that `--check-config` checks everything.
fn check_with(dir: &Path, devices: &str) -> Output {
    if !dir.join("certs/cert.pem").exists() {
        let hub_cfg = dir.join("hub.toml");
        std::fs::write(&hub_cfg, "state_dir = \"hub\"\n").unwrap();
        let out = Command::new(bin("dcmms-hub"))
            .arg("enroll")
            .arg("--config")
            .arg(&hub_cfg)
            .args(["--site", "s1", "--gateway", "g1", "--out"])
            .arg(dir.join("certs"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "site = \"s1\"\ngateway = \"g1\"\n[uplink]\nhost = \"127.0.0.1\"\nbundle_dir = \"certs\"\n{devices}"
        ),
    )
    .unwrap();
    gateway(&["--config", cfg.to_str().unwrap(), "--check-config"])
}

#[test]
fn import_scl_writes_a_point_map_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let scl = repo_root().join("hil/scl/bay-01.icd");
    let out_file = dir.path().join("bay-01.toml");
    let out = gateway(&[
        "import-scl",
        scl.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("\"BAY01\", 8 points"), "{stderr}");
    let map = std::fs::read_to_string(&out_file).unwrap();
    for reference in [
        "LD0/MMXU1.TotW.mag.f",
        "LD0/Q0XCBR1.Pos.stVal",
        "LD0/GGIO1.SPCSO1.stVal",
    ] {
        assert!(map.contains(reference), "{reference} missing:\n{map}");
    }

    // The file is a point map the gateway builds a device from.
    let check = check_with(
        dir.path(),
        "[[iec61850]]\nname = \"bay-01\"\naddress = \"127.0.0.1:10102\"\nied_name = \"BAY01\"\npoints_file = \"bay-01.toml\"\n",
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("1 devices, 8 points"),
        "{}",
        text(&check.stdout)
    );

    // Never overwritten; CSV on stdout without --out.
    let again = gateway(&[
        "import-scl",
        scl.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    let csv = gateway(&["import-scl", scl.to_str().unwrap(), "--format", "csv"]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let stdout = text(&csv.stdout);
    assert!(stdout.starts_with("name,reference,fc"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        9,
        "a header and 8 points:\n{stdout}"
    );

    // A file that is not SCL is refused with its name.
    let bad = dir.path().join("bad.icd");
    std::fs::write(&bad, "<SCL><IED").unwrap();
    let out = gateway(&["import-scl", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad.icd"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn discover_modbus_scans_the_pymodbus_peer() {
    let dir = tempfile::tempdir().unwrap();
    let mut peer = ModbusPeer::start(dir.path()).unwrap();
    let found = dir.path().join("found");
    let out = gateway(&[
        "discover",
        "modbus",
        "--address",
        &peer.addr.to_string(),
        "--units",
        "1-2",
        "--count",
        "4",
        "--timeout-ms",
        "500",
        "--name",
        "inv",
        "--out",
        found.to_str().unwrap(),
    ]);
    peer.stop();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unit   1 answered"), "{stderr}");
    assert!(stderr.contains("2/2 unit ids tried"), "{stderr}");
    let config = std::fs::read_to_string(found.join("modbus-found.toml")).unwrap();
    assert!(config.contains("inv-unit-1"), "{config}");
    let csv = std::fs::read_to_string(found.join("points/inv-unit-1.csv")).unwrap();
    assert_eq!(
        csv.lines().filter(|l| !l.starts_with('#')).count(),
        5,
        "{csv}"
    );

    // The starter config is valid as it is.
    let check = check_with(&found, &config);
    assert!(check.status.success(), "{}", text(&check.stderr));

    // Bad input is refused before anything is tried.
    let out = gateway(&[
        "discover",
        "modbus",
        "--address",
        "127.0.0.1:1",
        "--units",
        "0-3",
        "--out",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--units"),
        "{}",
        text(&out.stderr)
    );
    let out = gateway(&[
        "discover",
        "modbus",
        "--address",
        "127.0.0.1:1",
        "--units",
        "1",
        "--out",
        "x",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot open 127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );
}

/// The libiec61850 server of the `pyiec61850-ng` wheel
/// (`hil/peers/iec61850_server.py`); it stops when its stdin closes.
struct IedPeer {
    child: Child,
    port: u16,
}

impl IedPeer {
    fn start() -> IedPeer {
        let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo_root().join("hil/peers/iec61850_server.py"))
            .args(["--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with pyiec61850-ng: run scripts/install-test-deps.sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("IEC 61850 peer did not start: {line:?}"));
        IedPeer { child, port }
    }
}

impl Drop for IedPeer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn discover_iec61850_reads_the_libiec61850_model() {
    let dir = tempfile::tempdir().unwrap();
    let peer = IedPeer::start();
    let address = format!("127.0.0.1:{}", peer.port);
    let out_file = dir.path().join("ied1.csv");
    let out = gateway(&[
        "discover",
        "iec61850",
        "--address",
        &address,
        "--ied-name",
        "IED1",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    drop(peer);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = std::fs::read_to_string(&out_file).unwrap();
    for reference in [
        "LD0/MMXU1.TotW.mag.f",
        "LD0/GGIO1.AnIn1.mag.f",
        "LD0/GGIO1.SPCSO1.stVal",
    ] {
        assert!(csv.contains(reference), "{reference} missing:\n{csv}");
    }
    let check = check_with(
        dir.path(),
        &format!(
            "[[iec61850]]\nname = \"bay\"\naddress = \"{address}\"\nied_name = \"IED1\"\npoints_file = \"ied1.csv\"\n"
        ),
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
}

/// The asyncua server of `hil/peers/opcua_server.py`; killed on drop.
struct OpcUaPeer {
    child: Child,
    endpoint: String,
}

impl OpcUaPeer {
    fn start(args: &[&str]) -> OpcUaPeer {
        let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo_root().join("hil/peers/opcua_server.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with asyncua: run scripts/install-test-deps.sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("OPC UA peer did not start: {line:?}"))
            .to_owned();
        OpcUaPeer { child, endpoint }
    }
}

impl Drop for OpcUaPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn discover_opcua_browses_the_asyncua_server() {
    let dir = tempfile::tempdir().unwrap();
    let peer = OpcUaPeer::start(&["--bulk", "20"]);
    let out_file = dir.path().join("plc.csv");
    let pki = dir.path().join("pki");
    let out = gateway(&[
        "discover",
        "opcua",
        "--endpoint",
        &peer.endpoint,
        "--pki-dir",
        pki.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("26 usable as points"), "{stderr}");
    assert!(stderr.contains("2 writable on the server"), "{stderr}");
    let csv = std::fs::read_to_string(&out_file).unwrap();
    for line in [
        "Plant.Sine,ns=2;s=Plant.Sine,subscribe",
        "Plant.Setpoint,ns=2;s=Plant.Setpoint,subscribe",
        "Bulk.V0019,ns=2;s=Bulk.V0019,subscribe",
    ] {
        assert!(csv.contains(line), "{line} missing:\n{csv}");
    }
    // The file is not overwritten.
    let again = gateway(&[
        "discover",
        "opcua",
        "--endpoint",
        &peer.endpoint,
        "--pki-dir",
        pki.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    // A secured browse with a password from the environment: a wrong one
    // is refused with the cause named.
    let denied = Command::new(bin("dcmms-gateway"))
        .args(["discover", "opcua", "--endpoint", &peer.endpoint])
        .args(["--security-policy", "basic256sha256", "--trust-server-cert"])
        .arg("--pki-dir")
        .arg(&pki)
        .args(["--user", "operator", "--password-env", "DCMMS_TEST_PW"])
        .env("DCMMS_TEST_PW", "not-the-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("user and password"),
        "{}",
        text(&denied.stderr)
    );
    drop(peer);
    let check = check_with(
        dir.path(),
        "[[opcua]]\nname = \"plc\"\nendpoint = \"opc.tcp://127.0.0.1:4840/\"\npoints_file = \"plc.csv\"\n",
    );
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(stdout.contains("26 points"), "{stdout}");
}

#[test]
fn opcua_cert_creates_the_device_certificate_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        "site = \"s1\"\ngateway = \"g1\"\n[uplink]\nhost = \"127.0.0.1\"\nbundle_dir = \"certs\"\n[[opcua]]\nname = \"ppc\"\nendpoint = \"opc.tcp://127.0.0.1:4840/\"\nsecurity_policy = \"basic256sha256\"\npoints = [{ name = \"p\", node_id = \"ns=2;i=1\" }]\n",
    )
    .unwrap();
    let run = || {
        gateway(&[
            "--config",
            cfg.to_str().unwrap(),
            "opcua-cert",
            "--device",
            "ppc",
        ])
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cert = dir.path().join("pki/opcua/own/cert.der");
    assert_eq!(text(&out.stdout).trim(), cert.to_str().unwrap());
    let der = std::fs::read(&cert).unwrap();
    assert_eq!(der[0], 0x30, "a DER certificate");
    assert!(dir.path().join("pki/opcua/private/private.pem").exists());
    let again = run();
    assert!(!again.status.success(), "an existing certificate is kept");
    assert_eq!(std::fs::read(&cert).unwrap(), der);
    let other = gateway(&[
        "--config",
        cfg.to_str().unwrap(),
        "opcua-cert",
        "--device",
        "nope",
    ]);
    assert!(text(&other.stderr).contains("no [[opcua]] device named \"nope\""));
}
