//! `dcmms-sim`: serves simulated solar inverters over Modbus TCP.
//!
//! The first line on stdout is `LISTEN <addr>` once the socket is bound, so
//! scripts and tests can start it on port 0 and read the address back.

use std::net::SocketAddr;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use clap::Parser;
use dcmms_hil::{points_csv, serve, Fleet, InverterParams, SimClock, SolarInverter};
use dcmms_protocols_core::unix_time_ms;

/// Simulated solar inverters on Modbus TCP, one per unit id (1..=N). The
/// register map is `hil/points/solar-inverter.csv` (`--print-points`).
#[derive(Debug, Parser)]
#[command(name = "dcmms-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:5020", env = "DCMMS_SIM_LISTEN")]
    listen: SocketAddr,
    /// Number of inverters (unit ids 1..=N).
    #[arg(long, default_value_t = 1)]
    inverters: u8,
    /// AC rating of each inverter, kW.
    #[arg(long, default_value_t = 50.0)]
    rated_kw: f64,
    /// 0 = clear sky .. 1 = heavy, fast clouds.
    #[arg(long, default_value_t = 0.3)]
    cloudiness: f64,
    /// Seed of the first inverter (the others use seed+1, seed+2, ...).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Local time = UTC + this many hours (moves the daylight curve).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    utc_offset_hours: f64,
    /// Start the simulated clock at this local hour of today (e.g. 11.5),
    /// instead of the current time.
    #[arg(long)]
    start_hour: Option<f64>,
    /// Simulated seconds per real second (e.g. 60 to show a day in 24 min).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Print the point map as CSV and exit.
    #[arg(long)]
    print_points: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.print_points {
        print!("{}", points_csv());
        return Ok(());
    }
    if args.inverters == 0 {
        bail!("--inverters must be at least 1");
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be a positive number");
    }
    if !(args.rated_kw.is_finite() && args.rated_kw > 0.0) {
        bail!("--rated-kw must be a positive number");
    }

    let now = unix_time_ms(SystemTime::now());
    let clock = match args.start_hour {
        Some(h) if (0.0..24.0).contains(&h) => {
            let offset_ms = (args.utc_offset_hours * 3_600_000.0) as i64;
            let local_midnight = (now + offset_ms).div_euclid(86_400_000) * 86_400_000 - offset_ms;
            SimClock::starting_at(local_midnight + (h * 3_600_000.0) as i64, args.speed)
        }
        Some(h) => bail!("--start-hour {h} is not in 0..24"),
        None => SimClock::starting_at(now, args.speed),
    };
    let mut fleet = Fleet::new(clock);
    for i in 0..args.inverters {
        let rated_w = args.rated_kw * 1000.0;
        fleet.add(
            i + 1,
            SolarInverter::new(InverterParams {
                rated_ac_w: rated_w,
                array_wp: rated_w * 1.1,
                cloudiness: args.cloudiness.clamp(0.0, 1.0),
                utc_offset_h: args.utc_offset_hours,
                initial_energy_wh: 10_000_000.0 + f64::from(i) * 1_234_567.0,
                seed: args.seed.wrapping_add(u64::from(i)),
                ..InverterParams::default()
            }),
        );
    }

    let (addr, task) = serve(args.listen, fleet)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("LISTEN {addr}");
    tracing::info!(%addr, inverters = args.inverters, speed = args.speed, "serving simulated inverters (unit ids 1..={})", args.inverters);

    tokio::select! {
        res = task => {
            res.context("server task failed")?.context("server stopped")?;
        }
        res = tokio::signal::ctrl_c() => {
            res.context("waiting for ctrl-c")?;
            tracing::info!("stopping");
        }
    }
    Ok(())
}
