//! `dcmms-gateway`: the site gateway daemon.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcmms_gateway::config::LoadedConfig;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

const EXAMPLE_CONFIG: &str = include_str!("../examples/gateway.toml");

#[derive(Parser)]
#[command(name = "dcmms-gateway", version, about = "dCMMS Edge site gateway")]
struct Cli {
    /// Configuration file (TOML). See `dcmms-gateway generate-config`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Validate the configuration (and build every driver) then exit.
    #[arg(long)]
    check_config: bool,
    /// Once listening, write `{"http": "ADDR"}` here (for scripts and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print an annotated example configuration.
    GenerateConfig,
    /// Make a bearer token for an operator allowed to send device commands:
    /// prints the token once (give it to the operator) and the line for
    /// `[commands] operators` (which keeps only its SHA-256).
    OperatorToken {
        /// Operator name recorded in the command log.
        #[arg(long)]
        name: String,
    },
    /// Ask a device what it exposes and write an editable point map.
    Discover {
        #[command(subcommand)]
        what: dcmms_gateway::discover::Discover,
    },
    /// Turn an IEC 61850 SCL file (.icd/.cid/.scd) into a point map.
    ImportScl(dcmms_gateway::discover::ImportSclArgs),
    /// Create the OPC UA client certificate of an `[[opcua]]` device (in
    /// its pki_dir) so the server can be told to trust it ahead of the
    /// first connection. Needs --config before the subcommand.
    OpcuaCert(dcmms_gateway::discover::OpcUaCertArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        // Logs go to stderr: stdout carries what subcommands print (point
        // maps, tokens, paths) and must stay clean for redirection.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenerateConfig) => {
            print!("{EXAMPLE_CONFIG}");
            return Ok(());
        }
        Some(Command::OperatorToken { name }) => {
            dcmms_shared::validate_name(&name).context("--name")?;
            let token = dcmms_gateway::commands::new_token();
            println!("token (shown once): {token}");
            println!(
                "config line:        {{ name = \"{name}\", token_sha256 = \"{}\" }}",
                dcmms_gateway::commands::token_hash(&token)
            );
            return Ok(());
        }
        Some(Command::Discover { what }) => return dcmms_gateway::discover::run(what),
        Some(Command::ImportScl(args)) => return dcmms_gateway::discover::import_scl(args),
        Some(Command::OpcuaCert(args)) => {
            let path = cli
                .config
                .as_deref()
                .context("opcua-cert needs --config FILE (before opcua-cert)")?;
            return dcmms_gateway::discover::opcua_cert(path, args);
        }
        None => {}
    }
    let path = cli.config.context("--config FILE is required")?;
    let cfg = LoadedConfig::load(&path)?;
    if cli.check_config {
        let mut interner = dcmms_gateway::pipeline::Interner::default();
        let built = dcmms_gateway::daemon::build_all(&cfg, &mut interner)?;
        dcmms_gateway::uplink::tls::client_config(&cfg.resolve(&cfg.config.uplink.bundle_dir))
            .context("uplink certificate bundle")?;
        println!(
            "{}: ok ({} devices, {} points)",
            path.display(),
            built.devices.len(),
            interner.len()
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            c.cancel();
        });
        dcmms_gateway::daemon::run(cfg, cli.ready_file.as_deref(), cancel).await
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
