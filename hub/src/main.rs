//! `dcmms-hub`: runs the hub, checks its configuration, prints the default
//! configuration, enrols gateways, and seeds synthetic maintenance data for
//! benchmarks and demos.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcmms_hub::Config;
use dcmms_shared::service::ServiceNotifier;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "dcmms-hub",
    version,
    about = "dCMMS fleet hub: MQTT ingress, telemetry storage, REST API"
)]
struct Cli {
    /// Configuration file (see `dcmms-hub generate-config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (0 when valid).
    #[arg(long)]
    check_config: bool,
    /// Once every listener is bound, write {"api": .., "mqtt": .., "ca": ..}
    /// to this file (atomically).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the annotated default configuration.
    GenerateConfig,
    /// Issue a client certificate for a gateway (creates the hub CA on
    /// first use) and write ca.pem, cert.pem and key.pem to --out.
    Enroll {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gateway: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace an existing key.pem in --out.
        #[arg(long)]
        force: bool,
    },
    /// Fill an empty maintenance (CMMS) schema with synthetic sites, an
    /// asset hierarchy and work orders in every state (ids `seed-NNN`,
    /// `seed-aNNNNNN`, `WO-NNNNNN`), in the configured database, for
    /// benchmarks and demos. Refuses a database that already holds sites,
    /// assets, work orders, PM plans or parts.
    Seed {
        /// Configuration file; its `[database]` is seeded (and migrated).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Work orders to write, in batches of 10,000 (progress is logged
        /// after each).
        #[arg(long, value_name = "N")]
        work_orders: usize,
        /// Assets: areas with inverters under them, spread over the sites.
        #[arg(long, value_name = "M")]
        assets: usize,
        /// Sites the assets and work orders are spread over (at most
        /// --assets).
        #[arg(long, value_name = "S", default_value_t = 10)]
        sites: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dcmms-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::GenerateConfig) => {
            print!("{}", dcmms_hub::DEFAULT_CONFIG_TOML);
            Ok(())
        }
        Some(Command::Enroll {
            config,
            site,
            gateway,
            out,
            force,
        }) => {
            let config = Config::load(&config)?;
            let files = dcmms_hub::enroll(&config.state_dir, &site, &gateway, &out, force)
                .with_context(|| format!("enrolling {site}/{gateway}"))?;
            println!(
                "enrolled {site}/{gateway} (tenant {}): {}, {}, {}",
                files.tenant,
                files.ca.display(),
                files.cert.display(),
                files.key.display()
            );
            Ok(())
        }
        Some(Command::Seed {
            config,
            work_orders,
            assets,
            sites,
        }) => {
            let config = Config::load(&config)?;
            init_tracing();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("hub-seed")
                .build()
                .context("starting the async runtime")?;
            let report = runtime.block_on(seed_database(
                &config,
                SeedCounts {
                    sites,
                    assets,
                    work_orders,
                },
            ))?;
            let secs = report.elapsed.as_secs_f64();
            println!(
                "seeded {} sites, {} assets and {} work orders in {secs:.1} s ({:.0} work orders/s)",
                report.sites,
                report.assets,
                report.work_orders,
                report.work_orders as f64 / secs.max(1e-9),
            );
            Ok(())
        }
        None => {
            let path = cli.config.context(
                "--config FILE is required (print a default one with `dcmms-hub generate-config`)",
            )?;
            let config = Config::load(&path)?;
            if cli.check_config {
                println!("{}: ok", path.display());
                return Ok(());
            }
            init_tracing();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("hub")
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(config, cli.ready_file))
        }
    }
}

/// Shows the generated first-administrator password once, on stderr and
/// not through the log, in a block an operator cannot miss.
fn print_admin_password(password: &str) {
    let user = dcmms_hub::auth::ADMIN_USERNAME;
    let env = dcmms_hub::auth::ADMIN_PASSWORD_ENV;
    eprintln!(
        "\n==================== dCMMS hub: first administrator ====================\n\
         username: {user}\n\
         password: {password}\n\
         Shown this once and never again. Log in and change it:\n\
         POST /api/v1/auth/login, then POST /api/v1/users/me/password.\n\
         (Set {env} before the first start to choose it instead.)\n\
         ========================================================================\n"
    );
}

async fn serve(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let service = std::sync::Arc::new(ServiceNotifier::from_env());
    service.status("starting: opening the database");
    let admin_password = match std::env::var(dcmms_hub::auth::ADMIN_PASSWORD_ENV) {
        Ok(p) => Some(p),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{} is not valid UTF-8", dcmms_hub::auth::ADMIN_PASSWORD_ENV)
        }
    };
    let options = dcmms_hub::StartOptions {
        admin_password,
        ..Default::default()
    };
    let hub = dcmms_hub::start_with(config, options).await?;
    if let Some(password) = hub.take_generated_admin_password() {
        print_admin_password(&password);
    }
    if let Some(path) = &ready_file {
        hub.write_ready_file(path)?;
    }
    // Pings from the runtime that serves everything: a runtime that stops
    // scheduling stops the pings and the service manager restarts the hub.
    if let Some(every) = service.watchdog_interval() {
        let (service, token) = (service.clone(), hub.shutdown_token());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => service.watchdog(),
                }
            }
        });
    }
    service.ready(&format!("api {}, mqtt {}", hub.api_addr(), hub.mqtt_addr()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = hub.stopping() => {}
    }
    service.stopping("stopping: finishing ingest and closing the database");
    // Bounded: an HTTP client that never finishes must not hold the exit.
    match tokio::time::timeout(std::time::Duration::from_secs(30), hub.shutdown()).await {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("shutdown did not finish within 30 s"),
    }
    Ok(())
}

/// What `dcmms-hub seed` writes.
#[derive(Debug, Clone, Copy)]
struct SeedCounts {
    sites: usize,
    assets: usize,
    work_orders: usize,
}

/// Rows already in the maintenance tables, by table.
async fn cmms_rows(store: &dcmms_hub::Store) -> anyhow::Result<Vec<(&'static str, i64)>> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM sites), (SELECT COUNT(*) FROM assets), \
                       (SELECT COUNT(*) FROM work_orders), (SELECT COUNT(*) FROM pm_plans), \
                       (SELECT COUNT(*) FROM parts)";
    type Row = (i64, i64, i64, i64, i64);
    let row: Row = match store {
        dcmms_hub::Store::Sqlite(p, _) => sqlx::query_as(SQL).fetch_one(p).await,
        dcmms_hub::Store::Postgres(p) => sqlx::query_as(SQL).fetch_one(p).await,
    }
    .context("counting the maintenance records")?;
    Ok(vec![
        ("sites", row.0),
        ("assets", row.1),
        ("work orders", row.2),
        ("PM plans", row.3),
        ("parts", row.4),
    ])
}

/// Opens (and migrates) the configured database, refuses one that already
/// holds maintenance records, and seeds it, logging progress after every
/// committed batch.
async fn seed_database(
    config: &Config,
    counts: SeedCounts,
) -> anyhow::Result<dcmms_hub::store::cmms::seed::SeedReport> {
    if counts.sites == 0 || counts.sites > counts.assets {
        anyhow::bail!(
            "--sites must be between 1 and --assets ({}), not {}",
            counts.assets,
            counts.sites
        );
    }
    let location = config
        .database_location()
        .map_err(|m| anyhow::anyhow!("database.url: {m}"))?;
    let store = dcmms_hub::Store::open(&location, config.database.max_connections)
        .await
        .context("opening the database")?;
    let result = seed_store(&store, counts).await;
    store.close().await;
    result
}

async fn seed_store(
    store: &dcmms_hub::Store,
    counts: SeedCounts,
) -> anyhow::Result<dcmms_hub::store::cmms::seed::SeedReport> {
    let present: Vec<String> = cmms_rows(store)
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} {table}"))
        .collect();
    if !present.is_empty() {
        anyhow::bail!(
            "the {} database already holds maintenance records ({}); seed only an empty one",
            store.kind(),
            present.join(", ")
        );
    }
    let SeedCounts {
        sites,
        assets,
        work_orders,
    } = counts;
    tracing::info!(
        database = store.kind(),
        sites,
        assets,
        work_orders,
        "seeding"
    );
    let started = std::time::Instant::now();
    let last = std::cell::Cell::new((started, 0usize));
    let report = dcmms_hub::store::cmms::seed::seed(store, sites, assets, work_orders, |done| {
        let now = std::time::Instant::now();
        let (at, before) = last.replace((now, done));
        let batch = (done - before) as f64 / now.duration_since(at).as_secs_f64().max(1e-9);
        let overall = done as f64 / now.duration_since(started).as_secs_f64().max(1e-9);
        tracing::info!(
            "work orders: {done}/{work_orders} ({:.0}%), {batch:.0}/s in this batch, {overall:.0}/s overall",
            100.0 * done as f64 / work_orders.max(1) as f64
        );
    })
    .await
    .with_context(|| format!("seeding the {} database", store.kind()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeds_an_empty_database_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral(dir.path());
        let counts = SeedCounts {
            sites: 2,
            assets: 30,
            work_orders: 250,
        };
        let too_many_sites = SeedCounts {
            sites: 31,
            ..counts
        };
        let err = seed_database(&config, too_many_sites).await.unwrap_err();
        assert!(format!("{err:#}").contains("--sites"), "{err:#}");

        let report = seed_database(&config, counts).await.unwrap();
        assert_eq!(
            (report.sites, report.assets, report.work_orders),
            (2, 30, 250)
        );

        let err = seed_database(&config, counts).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("2 sites, 30 assets, 250 work orders"),
            "{text}"
        );

        let store = dcmms_hub::Store::open(&config.database_location().unwrap(), 1)
            .await
            .unwrap();
        let rows = cmms_rows(&store).await.unwrap();
        store.close().await;
        assert_eq!(
            rows,
            [
                ("sites", 2),
                ("assets", 30),
                ("work orders", 250),
                ("PM plans", 0),
                ("parts", 0)
            ]
        );
    }
}
