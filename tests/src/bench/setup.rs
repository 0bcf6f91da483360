//! What every benchmark needs around the product: up-to-date binaries, a
//! database (SQLite file or throwaway PostgreSQL cluster), a hub with
//! enrolled gateways, and gateway configuration files. Nothing here is
//! timed.

use anyhow::{bail, Context};
use dcmms_e2e::pg::PgCluster;
use dcmms_e2e::procs::{repo_root, HubProc};
use dcmms_hub::config::DatabaseLocation;
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Site name of every benchmark gateway.
pub const SITE: &str = "bench";

/// Which database the hub writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "SQLite",
            DbKind::Postgres => "PostgreSQL",
        }
    }
}

/// Builds the hub and gateway binaries of this bench's profile (unless
/// `build` is false) and checks that they exist where the e2e harness
/// (`procs::bin`) looks: beside the running executable.
pub fn prepare_binaries(build: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("path of the bench executable")?;
    let dir = exe.parent().context("folder of the bench executable")?;
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().context("target/<profile> folder")?
    } else {
        dir
    };
    if build {
        build_binaries(profile_dir)?;
    }
    for name in ["dcmms-hub", "dcmms-gateway"] {
        if !profile_dir.join(name).exists() {
            bail!(
                "{} is missing: run `cargo build --release --bins` first",
                profile_dir.join(name).display()
            );
        }
    }
    Ok(())
}

fn build_binaries(profile_dir: &Path) -> anyhow::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("profile folder name")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root()).args([
        "build",
        "-p",
        "dcmms-hub",
        "-p",
        "dcmms-gateway",
        "--bins",
    ]);
    if profile != "debug" {
        cmd.args(["--profile", profile]);
    }
    eprintln!("building the hub and gateway binaries ({profile} profile)...");
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the binaries failed; run `cargo build --release --bins` and retry with --no-build");
    }
    Ok(())
}

/// The hub's database for one run, plus scratch databases of the same
/// engine for the baselines.
pub struct Database {
    dir: PathBuf,
    pg: Option<PgCluster>,
}

impl Database {
    /// For SQLite nothing starts; for PostgreSQL a throwaway cluster does.
    pub fn start(kind: DbKind, dir: &Path) -> anyhow::Result<Database> {
        let pg = match kind {
            DbKind::Sqlite => None,
            DbKind::Postgres => Some(PgCluster::start().context("starting PostgreSQL")?),
        };
        Ok(Database {
            dir: dir.to_owned(),
            pg,
        })
    }

    /// The `[database] url` of the hub.
    pub fn hub_url(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url().to_owned(),
            None => "sqlite://hub.db".to_owned(),
        }
    }

    /// A fresh, empty database `name` next to the hub's (same engine, same
    /// server), for measurements that must not share tables with the hub.
    pub async fn scratch(&self, name: &str) -> anyhow::Result<DatabaseLocation> {
        match &self.pg {
            None => Ok(DatabaseLocation::Sqlite(
                self.dir.join(format!("{name}.db")),
            )),
            Some(pg) => {
                let mut conn = sqlx::PgConnection::connect(pg.url())
                    .await
                    .context("connecting to PostgreSQL")?;
                if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    bail!("scratch database name {name:?} must be lowercase letters and '_'");
                }
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .with_context(|| format!("creating database {name}"))?;
                conn.close().await?;
                let base = pg.url().rsplit_once('/').map_or(pg.url(), |(b, _)| b);
                Ok(DatabaseLocation::Postgres(format!("{base}/{name}")))
            }
        }
    }
}

/// Starts a hub on `db` under `dir/hub` and enrols `gateways`, each bundle
/// in `dir/certs-<gateway>`.
pub fn start_hub(dir: &Path, db: &Database, gateways: &[&str]) -> anyhow::Result<HubProc> {
    let hub = HubProc::start(&dir.join("hub"), &db.hub_url(), 0)?;
    for gw in gateways {
        HubProc::enroll(&hub.config, SITE, gw, &bundle_dir(dir, gw))
            .with_context(|| format!("enrolling gateway {gw}"))?;
    }
    Ok(hub)
}

pub fn bundle_dir(dir: &Path, gateway: &str) -> PathBuf {
    dir.join(format!("certs-{gateway}"))
}

/// One `[[modbus]]` device of a gateway config.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub name: String,
    pub address: SocketAddr,
    pub unit_id: u8,
    pub poll_interval_ms: u64,
    pub points_csv: PathBuf,
}

/// A gateway config; paths are absolute so the file can live anywhere.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub gateway: String,
    pub state_dir: PathBuf,
    pub bundle_dir: PathBuf,
    pub mqtt: SocketAddr,
    pub commit_interval_ms: u64,
    pub devices: Vec<DeviceSpec>,
}

impl GatewaySpec {
    pub fn toml(&self) -> String {
        let mut s = format!(
            r#"site = "{SITE}"
gateway = "{gw}"
state_dir = "{state}"
[buffer]
commit_interval_ms = {commit}
[uplink]
host = "127.0.0.1"
port = {port}
bundle_dir = "{bundle}"
backoff_min_ms = 100
backoff_max_ms = 1000
[http]
listen = "127.0.0.1:0"
"#,
            gw = self.gateway,
            state = self.state_dir.display(),
            commit = self.commit_interval_ms,
            port = self.mqtt.port(),
            bundle = self.bundle_dir.display(),
        );
        for d in &self.devices {
            s.push_str(&format!(
                r#"[[modbus]]
name = "{}"
address = "{}"
unit_id = {}
poll_interval_ms = {}
timeout_ms = 1000
backoff_min_ms = 100
backoff_max_ms = 1000
points_csv = "{}"
"#,
                d.name,
                d.address,
                d.unit_id,
                d.poll_interval_ms,
                d.points_csv.display()
            ));
        }
        s
    }

    /// Writes the config as `path` and returns it.
    pub fn write(&self, path: &Path) -> anyhow::Result<PathBuf> {
        std::fs::write(path, self.toml()).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_owned())
    }
}

/// The point map of the simulated solar inverter, in the repository.
pub fn inverter_points_csv() -> PathBuf {
    repo_root().join("hil/points/solar-inverter.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_config_is_accepted_by_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let spec = GatewaySpec {
            gateway: "gw-1".into(),
            state_dir: dir.path().join("state"),
            bundle_dir: dir.path().join("certs"),
            mqtt: "127.0.0.1:18883".parse().unwrap(),
            commit_interval_ms: 250,
            devices: vec![DeviceSpec {
                name: "live".into(),
                address: "127.0.0.1:1502".parse().unwrap(),
                unit_id: 3,
                poll_interval_ms: 1000,
                points_csv: inverter_points_csv(),
            }],
        };
        let path = spec.write(&dir.path().join("gateway.toml")).unwrap();
        let loaded = dcmms_gateway::config::LoadedConfig::load(&path).unwrap();
        let c = &loaded.config;
        assert_eq!(c.site, SITE);
        assert_eq!(c.buffer.commit_interval_ms, 250);
        assert_eq!(c.uplink.port, 18883);
        assert_eq!(c.modbus.len(), 1);
        assert_eq!(c.modbus[0].unit_id, 3);
        assert_eq!(loaded.state_dir(), dir.path().join("state"));
        let mut interner = dcmms_gateway::pipeline::Interner::default();
        let drivers = dcmms_gateway::daemon::build_drivers(&loaded, &mut interner).unwrap();
        assert_eq!(drivers.len(), 1);
        assert_eq!(interner.len(), 26, "every point of the inverter map");
    }
}
