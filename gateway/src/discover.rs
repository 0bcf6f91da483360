//! Discovery subcommands of `dcmms-gateway`: what a device exposes becomes
//! a point-map file (and for Modbus a starter config) that a person edits
//! and then names in `gateway.toml`.
//!
//! - `discover modbus`: unit-id scan on a TCP address or a serial line;
//! - `discover iec61850`: the data model of a live IED;
//! - `import-scl`: the data model of an IED from its SCL file (.icd/.cid/.scd);
//! - `discover opcua`: a browse of an OPC UA server's address space;
//! - `opcua-cert`: the client certificate of an `[[opcua]]` device;
//! - `discover dnp3` (gateways built with `dnp3`): one integrity poll.
//!
//! Files are never overwritten; without `--out` a point map goes to stdout.
//! Progress and summaries go to stderr.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use dcmms_modbus::{
    scan_units, starter_map, FoundUnit, Parity, ScanOptions, ScanTarget, SerialSettings,
};
use std::io::Write as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Units tried per step of a Modbus scan (progress is shown after each).
const SCAN_STEP: u8 = 16;

#[derive(Debug, Subcommand)]
pub enum Discover {
    /// Scan unit ids 1-247 (or --units) on a Modbus TCP address or a
    /// serial line; writes a starter config and a CSV point map per unit
    /// that answered.
    Modbus(ModbusArgs),
    /// Read the data model of a live IEC 61850 IED into a point map.
    Iec61850(Iec61850Args),
    /// Browse an OPC UA server from its Objects folder and write its
    /// numeric and boolean variables as a point map.
    Opcua(OpcUaArgs),
    /// Make one integrity poll of a DNP3 outstation and write what it
    /// reported as a point map.
    #[cfg(feature = "dnp3")]
    Dnp3(Dnp3Args),
}

#[derive(Debug, Args)]
pub struct ModbusArgs {
    /// Modbus TCP server or TCP-to-RTU gateway, `host:port`.
    #[arg(long, required_unless_present = "serial", conflicts_with = "serial")]
    address: Option<String>,
    /// Serial port of an RS-485 line (Modbus RTU), e.g. /dev/ttyUSB0.
    #[arg(long)]
    serial: Option<String>,
    /// Line speed (serial).
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Parity (serial).
    #[arg(long, value_enum, default_value_t = ParityArg::None)]
    parity: ParityArg,
    /// Stop bits (serial): 1 or 2.
    #[arg(long, default_value_t = 1)]
    stop_bits: u8,
    /// Unit ids to try: `N` or `FIRST-LAST`.
    #[arg(long, default_value = "1-247")]
    units: String,
    /// How long to wait for each unit, in ms.
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
    /// Holding registers the probe reads from address 0 (each becomes a
    /// point of the starter map), 1-125.
    #[arg(long, default_value_t = 1)]
    count: u16,
    /// Line name (serial) or device-name prefix (TCP): devices are named
    /// `<name>-unit-<id>`.
    #[arg(long, default_value = "modbus")]
    name: String,
    /// Folder for `modbus-found.toml` and `points/<device>.csv`.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ParityArg {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Toml,
    Csv,
}

#[derive(Debug, Args)]
pub struct Iec61850Args {
    /// The IED's MMS address, `host` or `host:port` (port 102 by default).
    #[arg(long)]
    address: String,
    /// The IED name (MMS domains are the IED name plus the LD instance).
    #[arg(long)]
    ied_name: String,
    /// Per-request timeout in ms.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Point-map file to write (format from its extension, .toml or .csv);
    /// stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PolicyArg {
    None,
    Basic256sha256,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Sign,
    SignAndEncrypt,
}

#[derive(Debug, Args)]
pub struct OpcUaArgs {
    /// The server endpoint, `opc.tcp://host:port/path`.
    #[arg(long)]
    endpoint: String,
    /// Security policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::None)]
    security_policy: PolicyArg,
    /// Security mode with basic256sha256 (default sign-and-encrypt).
    #[arg(long, value_enum)]
    security_mode: Option<ModeArg>,
    /// Certificate store of the gateway (own/, private/, trusted/,
    /// rejected/); a certificate is created there when missing.
    #[arg(long, default_value = "pki/opcua")]
    pki_dir: PathBuf,
    /// Trust the server's certificate without it being in trusted/.
    #[arg(long)]
    trust_server_cert: bool,
    /// User name; the password is read from the environment variable
    /// named by --password-env (never from the command line).
    #[arg(long, requires = "password_env")]
    user: Option<String>,
    /// Environment variable holding the password.
    #[arg(long, requires = "user")]
    password_env: Option<String>,
    /// Node to start from (default: the Objects folder).
    #[arg(long, default_value = "i=85")]
    root: String,
    /// References to follow below the start node.
    #[arg(long, default_value_t = 10)]
    max_depth: usize,
    /// Stop after this many nodes.
    #[arg(long, default_value_t = 100_000)]
    max_nodes: usize,
    /// Also walk namespace 0 (the server's own diagnostics).
    #[arg(long)]
    include_ns0: bool,
    /// Point-map file to write (format from its extension, .toml or .csv);
    /// stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct OpcUaCertArgs {
    /// The `[[opcua]]` device (of the file given by --config) whose
    /// certificate to create.
    #[arg(long)]
    device: String,
    /// Replace an existing certificate and key.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, Args)]
pub struct ImportSclArgs {
    /// The SCL file (.icd, .cid, .scd, ...).
    file: PathBuf,
    /// The IED to import, needed when the file describes several.
    #[arg(long)]
    ied: Option<String>,
    /// Point-map file to write (format from its extension, .toml or .csv);
    /// stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

#[cfg(feature = "dnp3")]
#[derive(Debug, Args)]
pub struct Dnp3Args {
    /// The outstation, `host:port`.
    #[arg(long)]
    address: String,
    /// The outstation's link address.
    #[arg(long, default_value_t = 1024)]
    outstation: u16,
    /// Our (the master's) link address.
    #[arg(long, default_value_t = 1)]
    master: u16,
    /// Device name written into the point map.
    #[arg(long, default_value = "dnp3-01")]
    name: String,
    /// Seconds for connecting and the integrity poll together.
    #[arg(long, default_value_t = 10)]
    timeout_s: u64,
    /// Point-map file to write (.toml or .csv); stdout without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

/// Parses `N` or `FIRST-LAST` (unit ids 1-247).
fn parse_units(text: &str) -> anyhow::Result<RangeInclusive<u8>> {
    let parse = |s: &str| -> anyhow::Result<u8> {
        match s.trim().parse::<u8>() {
            Ok(n) if (1..=247).contains(&n) => Ok(n),
            _ => bail!("--units: {s:?} is not a unit id 1-247"),
        }
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(text)?, parse(text)?),
    };
    if first > last {
        bail!("--units: {first} is above {last}");
    }
    Ok(first..=last)
}

pub fn run(cmd: Discover) -> anyhow::Result<()> {
    match cmd {
        Discover::Modbus(a) => modbus(a),
        Discover::Iec61850(a) => iec61850(a),
        Discover::Opcua(a) => opcua(a),
        #[cfg(feature = "dnp3")]
        Discover::Dnp3(a) => dnp3(a),
    }
}

fn modbus(a: ModbusArgs) -> anyhow::Result<()> {
    let units = parse_units(&a.units)?;
    if !(1..=125).contains(&a.count) {
        bail!("--count must be 1 to 125");
    }
    dcmms_shared::validate_name(&a.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let target = match (&a.address, &a.serial) {
        (Some(address), _) => ScanTarget::Tcp {
            address: address.clone(),
        },
        (None, Some(port)) => {
            if a.stop_bits != 1 && a.stop_bits != 2 {
                bail!("--stop-bits must be 1 or 2");
            }
            let parity = match a.parity {
                ParityArg::None => Parity::None,
                ParityArg::Even => Parity::Even,
                ParityArg::Odd => Parity::Odd,
            };
            ScanTarget::Rtu(SerialSettings::new(port, a.baud).with_framing(parity, a.stop_bits))
        }
        (None, None) => bail!("give --address HOST:PORT or --serial PORT"),
    };
    let config_file = "modbus-found.toml";
    if a.out.join(config_file).exists() {
        bail!(
            "{} exists: choose another --out folder",
            a.out.join(config_file).display()
        );
    }
    let opts = ScanOptions {
        units: units.clone(),
        count: a.count,
        timeout: Duration::from_millis(a.timeout_ms.max(1)),
        ..ScanOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let total = usize::from(*units.end() - *units.start()) + 1;
    eprintln!(
        "scanning {total} unit ids on {} (up to {} ms each)",
        describe(&target),
        a.timeout_ms
    );
    let started = Instant::now();
    let mut found: Vec<FoundUnit> = Vec::new();
    let mut first = *units.start();
    loop {
        let last = first.saturating_add(SCAN_STEP - 1).min(*units.end());
        let step = ScanOptions {
            units: first..=last,
            ..opts.clone()
        };
        let mut part = rt.block_on(scan_units(&target, &step))?;
        for u in &part {
            eprintln!("  unit {:3} answered in {:?}", u.unit_id, u.rtt);
        }
        found.append(&mut part);
        let done = usize::from(last - *units.start()) + 1;
        eprintln!(
            "  {done}/{total} unit ids tried, {} found, {:.1} s",
            found.len(),
            started.elapsed().as_secs_f64()
        );
        if last == *units.end() {
            break;
        }
        first = last + 1;
    }
    if found.is_empty() {
        bail!("no unit answered on {}", describe(&target));
    }
    let map = starter_map(&a.name, &target, &found, &opts);
    let written = map
        .write_to(&a.out, config_file)
        .with_context(|| format!("cannot write into {}", a.out.display()))?;
    for p in &written {
        eprintln!("wrote {}", p.display());
    }
    eprintln!(
        "{} units found; copy the tables of {} into gateway.toml and edit the point maps",
        found.len(),
        a.out.join(config_file).display()
    );
    Ok(())
}

fn describe(target: &ScanTarget) -> String {
    match target {
        ScanTarget::Tcp { address } => address.clone(),
        ScanTarget::Rtu(s) => format!("{} at {} bit/s", s.port, s.baud_rate),
    }
}

fn iec61850(a: Iec61850Args) -> anyhow::Result<()> {
    let mut cfg = dcmms_iec61850::Iec61850Config::new("discovered", &a.address);
    cfg.ied_name = a.ied_name.clone();
    cfg.timeout_ms = a.timeout_ms.max(1);
    eprintln!("reading the data model of {} at {}", a.ied_name, a.address);
    let started = Instant::now();
    let model = dcmms_iec61850::discover(&cfg)
        .with_context(|| format!("data model of {} at {}", a.ied_name, a.address))?;
    eprintln!(
        "{} points and {} report control blocks in {:.1} s",
        model.points.len(),
        model.reports.len(),
        started.elapsed().as_secs_f64()
    );
    emit_model(&model, a.out.as_deref(), a.format)
}

fn opcua(a: OpcUaArgs) -> anyhow::Result<()> {
    use dcmms_opcua::{SecurityModeName, SecurityPolicyName};
    let mut cfg = dcmms_opcua::OpcUaConfig::new("discovered", &a.endpoint);
    cfg.security_policy = match a.security_policy {
        PolicyArg::None => SecurityPolicyName::None,
        PolicyArg::Basic256sha256 => SecurityPolicyName::Basic256sha256,
    };
    cfg.security_mode = a.security_mode.map(|m| match m {
        ModeArg::Sign => SecurityModeName::Sign,
        ModeArg::SignAndEncrypt => SecurityModeName::SignAndEncrypt,
    });
    cfg.pki_dir = a.pki_dir.clone();
    cfg.trust_server_cert = a.trust_server_cert;
    cfg.user = a.user.clone();
    cfg.password_env = a.password_env.clone();
    let plan = cfg.connect_plan(Path::new("."))?;
    let root =
        dcmms_opcua::config::parse_node_id(&a.root).map_err(|m| anyhow::anyhow!("--root: {m}"))?;
    let options = dcmms_opcua::BrowseOptions {
        root,
        max_depth: a.max_depth.max(1),
        max_nodes: a.max_nodes.max(1),
        include_ns0: a.include_ns0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    eprintln!("browsing {} from {}", a.endpoint, a.root);
    let started = Instant::now();
    let found = rt.block_on(async {
        let conn = dcmms_opcua::connect(&plan)
            .await
            .with_context(|| format!("session with {}", a.endpoint))?;
        let mut last = Instant::now();
        let result = dcmms_opcua::browse(&conn.session, &options, |nodes, vars| {
            if last.elapsed() >= Duration::from_secs(1) {
                eprintln!("  {nodes} nodes, {vars} variables so far");
                last = Instant::now();
            }
        })
        .await;
        conn.close().await;
        result.with_context(|| format!("browse of {}", a.endpoint))
    })?;
    let map = found.point_map();
    let writable = found.usable().filter(|v| v.writable).count();
    eprintln!(
        "{} nodes, {} variables, {} usable as points ({} writable on the server; writes stay off until you set writable = true) in {:.1} s",
        found.nodes,
        found.variables.len(),
        map.len(),
        writable,
        started.elapsed().as_secs_f64()
    );
    if found.truncated {
        eprintln!("note: stopped at --max-nodes {}", a.max_nodes);
    }
    let csv = match (&a.out, a.format) {
        (Some(p), _) => p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        (None, f) => matches!(f, Format::Csv),
    };
    let text = if csv {
        dcmms_opcua::write_points_csv(&map)
    } else {
        dcmms_opcua::write_points_toml(&map)
    };
    emit(&text, a.out.as_deref())
}

/// `opcua-cert`: creates the client certificate of an `[[opcua]]` device
/// where the daemon will look for it.
pub fn opcua_cert(config: &Path, a: OpcUaCertArgs) -> anyhow::Result<()> {
    let cfg = crate::config::LoadedConfig::load(config)?;
    let device = cfg
        .config
        .opcua
        .iter()
        .find(|d| d.name == a.device)
        .with_context(|| {
            format!(
                "{}: no [[opcua]] device named {:?}",
                config.display(),
                a.device
            )
        })?;
    let plan = device.connect_plan(&cfg.dir)?;
    let (cert, key) = dcmms_opcua::create_client_certificate(&plan, a.overwrite)
        .map_err(|m| anyhow::anyhow!("{m}"))?;
    eprintln!(
        "created {} and {} for {}; give the certificate to the server to trust",
        cert.display(),
        key.display(),
        plan.application_uri
    );
    println!("{}", cert.display());
    Ok(())
}

pub fn import_scl(a: ImportSclArgs) -> anyhow::Result<()> {
    let model = dcmms_iec61850::import_scl_file(&a.file, a.ied.as_deref())
        .with_context(|| format!("SCL import of {}", a.file.display()))?;
    eprintln!(
        "{}: IED {:?}, {} points and {} report control blocks",
        a.file.display(),
        model.ied_name,
        model.points.len(),
        model.reports.len()
    );
    emit_model(&model, a.out.as_deref(), a.format)
}

fn emit_model(
    model: &dcmms_iec61850::DiscoveredModel,
    out: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    for note in &model.notes {
        eprintln!("note: {note}");
    }
    match out {
        Some(path) => {
            refuse_existing(path)?;
            model
                .write(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let text = match format {
                Format::Toml => model.to_toml(),
                Format::Csv => model.to_csv(),
            };
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

/// Writes a point map to `out` (never over an existing file), or to stdout.
fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            refuse_existing(path)?;
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} exists: choose another --out", path.display());
    }
    Ok(())
}

#[cfg(feature = "dnp3")]
fn dnp3(a: Dnp3Args) -> anyhow::Result<()> {
    use dcmms_dnp3::MapFormat;
    let mut cfg = dcmms_dnp3::Dnp3Config::new(&a.name, &a.address);
    cfg.outstation_address = a.outstation;
    cfg.master_address = a.master;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    eprintln!(
        "integrity poll of outstation {} at {}",
        a.outstation, a.address
    );
    let found = rt.block_on(dcmms_dnp3::discover(
        &cfg,
        Duration::from_secs(a.timeout_s.max(1)),
    ))?;
    eprintln!("{} points reported", found.len());
    let format = match (&a.out, a.format) {
        (Some(p), _) if p.extension().is_some_and(|e| e == "csv") => MapFormat::Csv,
        (Some(_), _) | (None, Format::Toml) => MapFormat::Toml,
        (None, Format::Csv) => MapFormat::Csv,
    };
    let text = dcmms_dnp3::render_point_map(&a.name, &found, format);
    emit(&text, a.out.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_ranges() {
        assert_eq!(parse_units("1-247").unwrap(), 1..=247);
        assert_eq!(parse_units("7").unwrap(), 7..=7);
        assert_eq!(parse_units(" 3 - 9 ").unwrap(), 3..=9);
        for bad in ["0", "248", "9-3", "a-b", "", "1-"] {
            assert!(parse_units(bad).is_err(), "{bad:?}");
        }
    }
}
