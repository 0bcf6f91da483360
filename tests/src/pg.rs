//! A throwaway PostgreSQL cluster for tests.
//!
//! [`PgCluster::start`] runs `initdb` in a fresh temporary folder (as the
//! `postgres` user when the tests run as root, since PostgreSQL refuses to
//! run as root), starts the server on a free loopback port with its socket
//! in that folder, creates database `dcmms`, and hands back its URL. Drop
//! stops the server (`pg_ctl stop -m immediate`) and removes the folder.
//!
//! Missing server binaries are an error, never a silent skip: a test that
//! needs PostgreSQL fails when it cannot have one.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where Debian/Ubuntu packages put the server binaries.
const PG_ROOT: &str = "/usr/lib/postgresql";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    url: String,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<String>,
    dir: Option<tempfile::TempDir>,
}

impl PgCluster {
    /// Initialises and starts a cluster; returns once it accepts
    /// connections and database `dcmms` exists.
    pub fn start() -> anyhow::Result<PgCluster> {
        let bin = find_bin_dir()?;
        let run_as = if is_root()? {
            Some("postgres".to_owned())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("dcmms-pg-")
            .tempdir()
            .context("creating the cluster folder")?;
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user)?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("handing {} to user {user}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let mut cluster = PgCluster {
            url: String::new(),
            port: 0,
            bin,
            data,
            run_as,
            dir: Some(dir),
        };
        cluster.init()?;
        // The port is free when picked but may be taken before the server
        // binds it; try a few.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            match cluster.start_on(port) {
                Ok(()) => {
                    cluster.port = port;
                    cluster.url = format!("postgres://postgres@127.0.0.1:{port}/dcmms");
                    cluster.create_db()?;
                    return Ok(cluster);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    /// `postgres://postgres@127.0.0.1:PORT/dcmms` (trust authentication).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn folder(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn init(&self) -> anyhow::Result<()> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .context("running initdb")?;
        check(&out, "initdb")
    }

    fn start_on(&self, port: u16) -> anyhow::Result<()> {
        let log = self.folder().join("server.log");
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.folder().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(&opts)
            .args(["-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "start"])
            .output()
            .context("running pg_ctl start")?;
        if let Err(e) = check(&out, "pg_ctl start") {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = self.stop();
            bail!("{e:#}\nserver log:\n{log}");
        }
        // pg_ctl -w already waited; confirm over TCP, bounded.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = self
                .command("pg_isready")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-q",
                ])
                .status()
                .context("running pg_isready")?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.stop();
                bail!("PostgreSQL on port {port} not ready after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_db(&self) -> anyhow::Result<()> {
        let out = self
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "dcmms",
            ])
            .output()
            .context("running createdb")?;
        check(&out, "createdb")
    }

    fn stop(&self) -> anyhow::Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .context("running pg_ctl stop")?;
        check(&out, "pg_ctl stop")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            if let Err(e) = self.stop() {
                eprintln!("stopping the test PostgreSQL cluster: {e:#}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Newest `/usr/lib/postgresql/*/bin` that has initdb and pg_ctl.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let entries = std::fs::read_dir(PG_ROOT).with_context(|| {
        format!("PostgreSQL server binaries not found: {PG_ROOT} is missing (install the postgresql package)")
    })?;
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL server binaries not found: no {PG_ROOT}/*/bin with initdb and pg_ctl (install the postgresql package)"
        ),
    }
}

fn is_root() -> anyhow::Result<bool> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .context("running id")?;
        check(&out, &format!("id {flag} {user}"))
            .with_context(|| format!("user {user} is needed to run PostgreSQL as non-root"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("parsing the id of {user}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("picking a free port")?;
    Ok(l.local_addr()?.port())
}
