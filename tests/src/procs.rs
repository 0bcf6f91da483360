//! Real processes for end-to-end tests: the hub, the gateway and the
//! third-party Modbus peer, each started on port 0 with its bound address
//! read back from a ready file or its first output line; logs go to files
//! in the test's folder and are printed when a test fails.

use anyhow::{bail, Context};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built by `cargo test --workspace` (or
/// `cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    // A test runs from target/<profile>/deps/, a binary from target/<profile>/.
    let parent = exe.parent().expect("executable folder");
    let dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("target dir")
    } else {
        parent
    };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --bins` or `cargo test --workspace`)",
        p.display()
    );
    p
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Polls `f` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_ready_file(path: &Path, child: &mut Child, what: &str) -> anyhow::Result<Value> {
    wait_for(what, Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(anyhow::anyhow!("{what} exited early with {status}")));
        }
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Value>(&text).ok().map(Ok)
    })?
}

fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    cmd.stdout(out).stderr(err).stdin(Stdio::null());
    cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))
}

fn sigterm_and_wait(child: &mut Child, what: &str) -> anyhow::Result<()> {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} exited with {status} after SIGTERM");
            }
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("{what} did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints the last lines of a log file (for failing tests).
pub fn dump_log(path: &Path) {
    if let Ok(text) = std::fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(400);
        eprintln!(
            "---- {} (last {} lines)",
            path.display(),
            lines.len() - from
        );
        for l in &lines[from..] {
            eprintln!("{l}");
        }
    }
}

/// The first administrator's password of every hub the harness starts
/// (passed as `DCMMS_ADMIN_PASSWORD` unless the caller sets it).
pub const TEST_ADMIN_PASSWORD: &str = "e2e administrator secret";

/// A running hub process, logged in as its administrator.
pub struct HubProc {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub api: SocketAddr,
    pub mqtt: SocketAddr,
    pub log: PathBuf,
    /// Bearer token of the administrator, for `/api/v1` requests.
    pub token: String,
    child: Child,
}

impl HubProc {
    /// Writes a config in `dir` (database `db_url`, broker on `mqtt_port`,
    /// 0 for any) and starts the hub.
    pub fn start(dir: &Path, db_url: &str, mqtt_port: u16) -> anyhow::Result<HubProc> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                r#"state_dir = "state"
[database]
url = "{db_url}"
[broker]
listen = "127.0.0.1:{mqtt_port}"
hostnames = ["localhost", "127.0.0.1"]
[api]
listen = "127.0.0.1:0"
"#
            ),
        )?;
        Self::start_with(dir, &config)
    }

    pub fn start_with(dir: &Path, config: &Path) -> anyhow::Result<HubProc> {
        Self::start_with_env(dir, config, &[])
    }

    /// [`Self::start_with`] with extra environment variables. The hub gets
    /// [`TEST_ADMIN_PASSWORD`] as `DCMMS_ADMIN_PASSWORD` unless `env` sets
    /// it; the harness logs in with it once the hub is ready.
    pub fn start_with_env(
        dir: &Path,
        config: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<HubProc> {
        let ready = dir.join("hub.ready");
        let _ = std::fs::remove_file(&ready);
        let log = dir.join("hub.log");
        let mut cmd = Command::new(bin("dcmms-hub"));
        let admin_password = env
            .iter()
            .find(|(k, _)| *k == "DCMMS_ADMIN_PASSWORD")
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| TEST_ADMIN_PASSWORD.to_owned());
        cmd.env("DCMMS_ADMIN_PASSWORD", &admin_password);
        cmd.envs(env.iter().copied());
        cmd.arg("--config")
            .arg(config)
            .arg("--ready-file")
            .arg(&ready);
        let mut child = spawn_logged(cmd, &log)?;
        let v = read_ready_file(&ready, &mut child, "hub ready file")
            .inspect_err(|_| dump_log(&log))?;
        let addr = |k: &str| -> anyhow::Result<SocketAddr> {
            v[k].as_str()
                .with_context(|| format!("ready file lacks {k}"))?
                .parse()
                .context("address")
        };
        let api = addr("api")?;
        let token = login(api, "admin", &admin_password).inspect_err(|_| dump_log(&log))?;
        Ok(HubProc {
            dir: dir.to_owned(),
            config: config.to_owned(),
            api,
            mqtt: addr("mqtt")?,
            log,
            token,
            child,
        })
    }

    /// `GET` an API path with the administrator's token.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        get_json_auth(&self.url(path), &self.token)
    }

    /// Runs `dcmms-hub enroll` for a gateway, writing its bundle to `out`.
    pub fn enroll(config: &Path, site: &str, gateway: &str, out: &Path) -> anyhow::Result<()> {
        let o = Command::new(bin("dcmms-hub"))
            .arg("enroll")
            .arg("--config")
            .arg(config)
            .args(["--site", site, "--gateway", gateway, "--out"])
            .arg(out)
            .output()?;
        if !o.status.success() {
            bail!("enroll failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.api, path)
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        sigterm_and_wait(&mut self.child, "hub").inspect_err(|_| dump_log(&self.log))
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running gateway process.
pub struct GatewayProc {
    pub http: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl GatewayProc {
    pub fn start(dir: &Path, config: &Path) -> anyhow::Result<GatewayProc> {
        Self::start_with_env(dir, config, &[])
    }

    /// [`Self::start`] with extra environment variables.
    pub fn start_with_env(
        dir: &Path,
        config: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<GatewayProc> {
        let ready = dir.join("gateway.ready");
        let _ = std::fs::remove_file(&ready);
        let log = dir.join("gateway.log");
        let mut cmd = Command::new(bin("dcmms-gateway"));
        cmd.envs(env.iter().copied());
        cmd.arg("--config")
            .arg(config)
            .arg("--ready-file")
            .arg(&ready);
        let mut child = spawn_logged(cmd, &log)?;
        let v = read_ready_file(&ready, &mut child, "gateway ready file")
            .inspect_err(|_| dump_log(&log))?;
        let http = v["http"]
            .as_str()
            .context("ready file lacks http")?
            .parse()?;
        Ok(GatewayProc { http, log, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn status(&self) -> anyhow::Result<Value> {
        get_json(&self.url("/api/v1/status"))
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        sigterm_and_wait(&mut self.child, "gateway").inspect_err(|_| dump_log(&self.log))
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pymodbus peer (`hil/peers/modbus_server.py`), logging every read it
/// serves.
pub struct ModbusPeer {
    pub addr: SocketAddr,
    pub served_log: PathBuf,
    child: Child,
}

impl ModbusPeer {
    pub fn start(dir: &Path) -> anyhow::Result<ModbusPeer> {
        let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
        let served_log = dir.join("served.jsonl");
        let mut child = Command::new(&python)
            .arg(repo_root().join("hil/peers/modbus_server.py"))
            .arg("--log")
            .arg(&served_log)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {python}; run scripts/install-test-deps.sh"))?;
        let stdout = child.stdout.take().context("peer stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .with_context(|| {
                format!("pymodbus peer did not start (printed {line:?}); run scripts/install-test-deps.sh")
            })?;
        Ok(ModbusPeer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            served_log,
            child,
        })
    }

    /// Stops serving; the served log is final from here on.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every served read, in order.
    pub fn served(&self) -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.served_log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).context("served log line"))
            .collect()
    }
}

impl Drop for ModbusPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs in to the hub API at `api`; returns the bearer token.
pub fn login(api: SocketAddr, username: &str, password: &str) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!("http://{api}/api/v1/auth/login");
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(&url)
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("POST {url}: body"))?;
        if !status.is_success() {
            bail!("POST {url}: {status}: {body}");
        }
        body["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no token in {body}"))
    })
}

/// `GET` without authentication (the gateway's API, the hub's `/health`).
pub fn get_json(url: &str) -> anyhow::Result<Value> {
    get_json_with(url, None)
}

/// `GET` with a bearer token.
pub fn get_json_auth(url: &str, token: &str) -> anyhow::Result<Value> {
    get_json_with(url, Some(token))
}

fn get_json_with(url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("GET {url}: body"))?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {body}");
        }
        Ok(body)
    })
}

pub fn get_text(url: &str) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async { Ok(reqwest::get(url).await?.text().await?) })
}

/// An HTTP answer, taken apart: status, `Content-Type` and body text.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HttpReply {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("status {}: body is not JSON: {}", self.status, self.body))
    }
}

/// Sends `method url` with a bearer token and, optionally, a body of the
/// given content type; any status is an answer (only transport failures
/// are errors).
pub fn request_auth(
    method: &str,
    url: &str,
    token: &str,
    body: Option<(&str, Vec<u8>)>,
) -> anyhow::Result<HttpReply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).context("HTTP method")?;
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method.clone(), url)
            .bearer_auth(token);
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}: body"))?;
        Ok(HttpReply {
            status,
            content_type,
            body,
        })
    })
}

/// A request with a bearer token and an optional JSON body; returns the
/// status and the JSON body (`null` when empty or not JSON), whatever the
/// status, so that a test can check refusals too.
pub fn send_json_auth(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("HTTP method {method:?}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method.clone(), url)
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: body"))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    })
}

fn json_auth_ok(method: &str, url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    let (status, json) = send_json_auth(method, url, token, Some(body))?;
    if !(200..300).contains(&status) {
        bail!("{method} {url}: {status}: {json}");
    }
    Ok(json)
}

/// `POST` a JSON body with a bearer token; fails on a status other than 2xx.
pub fn post_json_auth(url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    json_auth_ok("POST", url, token, body)
}

/// `PATCH` a JSON body with a bearer token; fails on a status other than 2xx.
pub fn patch_json_auth(url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    json_auth_ok("PATCH", url, token, body)
}

/// `PUT` a JSON body with a bearer token; fails on a status other than 2xx.
pub fn put_json_auth(url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    json_auth_ok("PUT", url, token, body)
}
