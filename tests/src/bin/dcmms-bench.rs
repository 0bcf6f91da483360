//! `dcmms-bench`: end-to-end benchmarks of the real gateway and hub
//! binaries on loopback. Figures are printed with their units, next to a
//! baseline measured in the same run; nothing is asserted on timing.
//!
//! ```text
//! cargo run --release -p dcmms-e2e --bin dcmms-bench -- drain --db sqlite --samples 3000000
//! cargo run --release -p dcmms-e2e --bin dcmms-bench -- drain --db postgres
//! cargo run --release -p dcmms-e2e --bin dcmms-bench -- latency --seconds 60
//! cargo run --release -p dcmms-e2e --bin dcmms-bench -- rss --points 10000 --seconds 60
//! ```
//!
//! - `drain`: backlog drain rate (samples/s) of a pre-filled gateway buffer
//!   against the database's own insert rate, and live latency during and
//!   after the drain.
//! - `latency`: live poll -> visible-at-the-hub latency with no backlog.
//! - `rss`: gateway memory while polling many points, against an idle
//!   gateway.
//!
//! The bench builds the hub and gateway binaries of its own profile first
//! (`--no-build` to skip). Everything runs in a temporary folder, removed
//! at the end unless `--keep` is given (logs are in it).

#[path = "../bench/mod.rs"]
mod bench;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dcmms-bench",
    about = "End-to-end benchmarks of the dCMMS gateway and hub"
)]
struct Cli {
    /// Do not build the hub and gateway binaries first.
    #[arg(long, global = true)]
    no_build: bool,
    /// Keep the temporary folder (configs, logs, databases) and print its path.
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backlog drain rate and live latency while a pre-filled buffer drains.
    Drain(bench::drain::DrainArgs),
    /// Live end-to-end latency with no backlog.
    Latency(bench::latency::LatencyArgs),
    /// Gateway memory while polling many points.
    Rss(bench::rss::RssArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    bench::setup::prepare_binaries(!cli.no_build)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the bench runtime")?;
    bench::interrupt::install(&rt)?;
    let tmp = tempfile::Builder::new()
        .prefix("dcmms-bench-")
        .tempdir()
        .context("creating the temporary folder")?;
    let dir = tmp.path().to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = || bench::procstat::load_average().unwrap_or_else(|| "unknown".into());
    println!(
        "machine: {cpus} CPUs, load average {} (other work on the machine skews every figure)",
        load()
    );
    let result = match &cli.command {
        Command::Drain(a) => bench::drain::run(a, &rt, &dir),
        Command::Latency(a) => bench::latency::run(a, &rt, &dir),
        Command::Rss(a) => bench::rss::run(a, &rt, &dir),
    };
    println!("load average at the end: {}", load());
    if cli.keep || result.is_err() {
        let kept = tmp.keep();
        eprintln!("files of this run (configs, logs): {}", kept.display());
    }
    result
}
