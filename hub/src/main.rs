//! `dcmms-hub`: runs the hub, checks its configuration, prints the default
//! configuration, and enrols gateways.

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
