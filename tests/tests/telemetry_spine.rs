//! End-to-end: a third-party Modbus peer (pymodbus) polled by the real
//! gateway binary, shipped over MQTT/TLS to the real hub binary, stored, and
//! read back through the hub's API; through hub outages, gateway kill -9 and
//! a full buffer.

use anyhow::Context;
use dcmms_e2e::procs::{
    dump_log, get_json_auth, get_text, wait_for, GatewayProc, HubProc, ModbusPeer,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SITE: &str = "e2e-site";
const GW: &str = "gw-1";

/// Points of the gateway config, with how to read each from a served log
/// entry: (name, table, address, type).
const POINTS: &[(&str, &str, u16, &str)] = &[
    ("counter", "holding", 0, "u16"),
    ("triple", "holding", 1, "u16"),
    ("half", "holding", 2, "f32"),
    ("big", "holding", 4, "u32"),
    ("neg", "holding", 6, "i16"),
    ("in0", "input", 0, "u16"),
    ("in5", "input", 5, "u16"),
    ("coil0", "coil", 0, "bool"),
];

struct Site {
    dir: tempfile::TempDir,
    peer: ModbusPeer,
    hub_config: PathBuf,
    mqtt_port: u16,
}

impl Site {
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the peer and a hub, enrols the gateway; returns the running hub.
    fn new() -> anyhow::Result<(Site, HubProc)> {
        Site::with_database("sqlite://hub.db")
    }

    fn with_database(db_url: &str) -> anyhow::Result<(Site, HubProc)> {
        let dir = tempfile::tempdir()?;
        let peer = ModbusPeer::start(dir.path())?;
        let hub = HubProc::start(&dir.path().join("hub"), db_url, 0)?;
        HubProc::enroll(&hub.config, SITE, GW, &dir.path().join("certs"))?;
        let site = Site {
            hub_config: hub.config.clone(),
            mqtt_port: hub.mqtt.port(),
            dir,
            peer,
        };
        Ok((site, hub))
    }

    fn restart_hub(&self) -> anyhow::Result<HubProc> {
        // Same state dir, database and broker port as before.
        let text = std::fs::read_to_string(&self.hub_config)?.replace(
            "127.0.0.1:0\"\nhostnames",
            &format!("127.0.0.1:{}\"\nhostnames", self.mqtt_port),
        );
        std::fs::write(&self.hub_config, text)?;
        HubProc::start_with(&self.dir().join("hub"), &self.hub_config)
    }

    /// Gateway config polling the peer every `poll_ms`; after a device
    /// failure the driver waits at least `backoff_ms` before reconnecting.
    fn write_gateway_config(
        &self,
        extra_buffer: &str,
        poll_ms: u64,
        backoff_ms: u64,
    ) -> anyhow::Result<PathBuf> {
        let mut points = String::new();
        for (name, table, address, ty) in POINTS {
            points.push_str(&format!(
                "[[modbus.points]]\nname = \"{name}\"\ntable = \"{table}\"\naddress = {address}\ndata_type = \"{ty}\"\n"
            ));
        }
        let cfg = format!(
            r#"site = "{SITE}"
gateway = "{GW}"
state_dir = "gw-state"
[buffer]
commit_interval_ms = 200
{extra_buffer}
[uplink]
host = "127.0.0.1"
port = {port}
bundle_dir = "certs"
resend_after_ms = 5000
status_interval_s = 1
backoff_min_ms = 100
backoff_max_ms = 1000
[http]
listen = "127.0.0.1:0"
[[modbus]]
name = "peer"
address = "{peer}"
poll_interval_ms = {poll_ms}
timeout_ms = 1000
backoff_min_ms = {backoff_ms}
backoff_max_ms = {backoff_max}
{points}"#,
            port = self.mqtt_port,
            peer = self.peer.addr,
            backoff_max = backoff_ms * 10,
        );
        let path = self.dir().join("gateway.toml");
        std::fs::write(&path, cfg)?;
        Ok(path)
    }

    fn start_gateway(&self, config: &Path) -> anyhow::Result<GatewayProc> {
        GatewayProc::start(self.dir(), config)
    }

    /// What the peer served, per point, in order.
    fn served(&self) -> anyhow::Result<BTreeMap<&'static str, Vec<f64>>> {
        let mut out: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for entry in self.peer.served()? {
            let table = entry["table"].as_str().unwrap_or_default();
            let address = entry["address"].as_u64().unwrap_or(u64::MAX);
            let values: Vec<u64> = entry["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| {
                            v.as_u64()
                                .unwrap_or_else(|| u64::from(v.as_bool().unwrap_or(false)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (name, t, a, ty) in POINTS {
                if *t != table || u64::from(*a) < address {
                    continue;
                }
                let off = (u64::from(*a) - address) as usize;
                let w = |i: usize| values.get(off + i).copied();
                let v = match *ty {
                    "u16" => w(0).map(|x| x as f64),
                    "i16" => w(0).map(|x| f64::from(x as u16 as i16)),
                    "bool" => w(0).map(|x| if x != 0 { 1.0 } else { 0.0 }),
                    "u32" => w(0).zip(w(1)).map(|(h, l)| ((h << 16) | l) as f64),
                    "f32" => w(0)
                        .zip(w(1))
                        .map(|(h, l)| f64::from(f32::from_bits(((h << 16) | l) as u32))),
                    _ => None,
                };
                if let Some(v) = v {
                    out.entry(*name).or_default().push(v);
                }
            }
        }
        Ok(out)
    }
}

/// Samples the hub holds for a point: (ts, value, quality), following the
/// API's pagination.
fn hub_samples(hub: &HubProc, point: &str) -> anyhow::Result<Vec<(String, Option<f64>, String)>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = hub.url(&format!(
            "/api/v1/telemetry?point={SITE}/peer/{point}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=10000"
        ));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v = get_json_auth(&url, &hub.token)?;
        let samples = v["samples"]
            .as_array()
            .with_context(|| format!("no samples array in {v}"))?;
        out.extend(samples.iter().map(|s| {
            (
                s["ts"].as_str().unwrap_or_default().to_owned(),
                s["value"].as_f64(),
                s["quality"].as_str().unwrap_or_default().to_owned(),
            )
        }));
        match v["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

/// This test's gateway in the hub's `GET /api/v1/gateways`.
fn hub_gateway(hub: &HubProc) -> anyhow::Result<Value> {
    let gws = hub.get_json("/api/v1/gateways")?;
    gws["gateways"]
        .as_array()
        .and_then(|a| a.iter().find(|g| g["gateway"] == GW && g["site"] == SITE))
        .cloned()
        .with_context(|| format!("gateway missing in {gws}"))
}

fn good_values(samples: &[(String, Option<f64>, String)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.2 == "good")
        .filter_map(|s| s.1)
        .collect()
}

fn assert_no_duplicates(point: &str, samples: &[(String, Option<f64>, String)]) {
    for w in samples.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "{point}: samples out of order or duplicated: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// Stops the peer's polling data, then waits until the hub acknowledged
/// every block the gateway committed.
fn drain(gw: &GatewayProc, timeout: Duration) -> anyhow::Result<Value> {
    // Let a couple of commit intervals pass so the last reads are committed.
    std::thread::sleep(Duration::from_millis(600));
    wait_for(
        "the hub to acknowledge every committed block",
        timeout,
        || {
            let s = gw.status().ok()?;
            let next = s["buffer"]["next_seq"].as_u64()?;
            let acked = s["buffer"]["acked_through"].as_u64()?;
            (acked + 1 >= next && s["buffer"]["blocks"].as_u64()? == 0).then_some(s)
        },
    )
    .inspect_err(|_| dump_log(&gw.log))
}

/// The hub holds exactly what was served, in order: equal to the served
/// sequence, except that the very last read may have been cut off when the
/// peer stopped.
fn assert_exactly_served(site: &Site, hub: &HubProc) -> anyhow::Result<usize> {
    let served = site.served()?;
    let mut total = 0;
    for (name, ..) in POINTS {
        let samples = hub_samples(hub, name)?;
        assert_no_duplicates(name, &samples);
        let got = good_values(&samples);
        let want = served.get(name).cloned().unwrap_or_default();
        assert!(got.len() >= 10, "{name}: only {} samples stored", got.len());
        assert!(
            got.len() == want.len() || got.len() + 1 == want.len(),
            "{name}: hub holds {} good samples, the peer served {}",
            got.len(),
            want.len()
        );
        assert_eq!(
            got[..],
            want[..got.len()],
            "{name}: stored values differ from served values"
        );
        total += got.len();
    }
    Ok(total)
}

#[test]
fn pymodbus_values_arrive_at_the_hub_exactly_as_served() -> anyhow::Result<()> {
    let (site, hub) = Site::new()?;
    served_values_arrive(site, hub)
}

#[test]
fn pymodbus_values_arrive_exactly_as_served_on_postgresql() -> anyhow::Result<()> {
    let pg = dcmms_e2e::pg::PgCluster::start()?;
    let (site, hub) = Site::with_database(pg.url())?;
    served_values_arrive(site, hub)
}

fn served_values_arrive(mut site: Site, hub: HubProc) -> anyhow::Result<()> {
    let cfg = site.write_gateway_config("", 100, 50)?;
    let gw = site.start_gateway(&cfg)?;
    std::thread::sleep(Duration::from_secs(3));
    site.peer.stop();
    drain(&gw, Duration::from_secs(30))?;
    let n = assert_exactly_served(&site, &hub).inspect_err(|_| dump_log(&hub.log))?;
    eprintln!("{n} samples stored exactly as served");

    // The hub's gateway list reports what the gateway said about itself.
    let entry = hub_gateway(&hub)?;
    assert!(entry["last_seen"].is_string(), "{entry}");
    let metrics = get_text(&gw.url("/metrics"))?;
    assert!(
        metrics.contains("dcmms_gateway_samples_committed_total"),
        "{metrics}"
    );
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

#[test]
fn hub_outage_loses_nothing_and_live_data_resumes() -> anyhow::Result<()> {
    let (mut site, hub) = Site::new()?;
    let cfg = site.write_gateway_config("", 100, 50)?;
    let gw = site.start_gateway(&cfg)?;
    std::thread::sleep(Duration::from_secs(2));
    hub.stop()?;
    // Polling goes on into the buffer while the hub is away.
    std::thread::sleep(Duration::from_secs(5));
    let buffered = gw.status()?["buffer"]["blocks"].as_u64().unwrap_or(0);
    assert!(
        buffered >= 10,
        "expected a backlog while the hub is down, have {buffered} blocks"
    );
    let restarted = Instant::now();
    let hub = site.restart_hub()?;
    // Live data: a sample polled after the restart shows up within seconds.
    let since = time_now_rfc3339();
    let live = wait_for("live data after the hub restart", Duration::from_secs(20), || {
        let url = hub.url(&format!("/api/v1/telemetry?point={SITE}/peer/counter&from={since}&to=2100-01-01T00:00:00Z&limit=10"));
        let v = get_json_auth(&url, &hub.token).ok()?;
        (!v["samples"].as_array()?.is_empty()).then(|| restarted.elapsed())
    })
    .inspect_err(|_| dump_log(&gw.log))?;
    eprintln!("live data resumed {live:?} after the hub restart (backlog {buffered} blocks)");
    site.peer.stop();
    drain(&gw, Duration::from_secs(60))?;
    assert_exactly_served(&site, &hub).inspect_err(|_| dump_log(&hub.log))?;
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

#[test]
fn gateway_kill9_loses_nothing_committed_and_duplicates_nothing() -> anyhow::Result<()> {
    let (mut site, hub) = Site::new()?;
    let cfg = site.write_gateway_config("", 100, 50)?;
    let mut gw = site.start_gateway(&cfg)?;
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        gw.kill9();
        gw = site.start_gateway(&cfg)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    site.peer.stop();
    let status = drain(&gw, Duration::from_secs(60)).inspect_err(|_| dump_log(&hub.log))?;
    let last_seq = status["buffer"]["next_seq"].as_u64().unwrap_or(0) - 1;
    assert_eq!(
        entry_max_seq(&hub)?,
        last_seq,
        "the hub saw a sequence the gateway never committed"
    );

    // Every committed block reached the hub: its contiguous acked sequence
    // is the gateway's last sequence (seqs are never reused).
    let entry = hub_gateway(&hub)?;
    assert_eq!(entry["acked_seq"].as_u64(), Some(last_seq), "{entry}");

    // No duplicates, and the stored counter never goes backwards.
    let served = site.served()?;
    for (name, ..) in POINTS {
        let samples = hub_samples(&hub, name)?;
        assert_no_duplicates(name, &samples);
        let got = good_values(&samples);
        let want = &served[name];
        assert!(got.len() <= want.len(), "{name}: more stored than served");
        assert!(got.len() >= 20, "{name}: only {} samples stored", got.len());
        assert!(
            is_subsequence(&got, want),
            "{name}: stored values are not a subsequence of served values"
        );
    }
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

fn entry_max_seq(hub: &HubProc) -> anyhow::Result<u64> {
    hub_gateway(hub)?["max_seq"].as_u64().context("max_seq")
}

fn is_subsequence(a: &[f64], b: &[f64]) -> bool {
    let mut it = b.iter();
    a.iter().all(|x| it.any(|y| y.to_bits() == x.to_bits()))
}

#[test]
fn full_buffer_drops_oldest_and_the_count_is_exact_at_the_hub() -> anyhow::Result<()> {
    let (mut site, hub) = Site::new()?;
    hub.stop()?;
    // Once the peer is stopped the gateway records one failed poll, then
    // stays quiet for the backoff, so the counts below are taken at rest.
    let cfg = site.write_gateway_config("max_bytes = 16384", 50, 60_000)?;
    let gw = site.start_gateway(&cfg)?;
    let dropped = wait_for("the buffer to drop blocks", Duration::from_secs(60), || {
        let d = gw.status().ok()?["buffer"]["dropped_samples"].as_u64()?;
        (d > 0).then_some(d)
    })
    .inspect_err(|_| dump_log(&gw.log))?;
    eprintln!("buffer full: {dropped} samples dropped so far");
    std::thread::sleep(Duration::from_secs(1));
    let hub = site.restart_hub()?;
    site.peer.stop();
    let status = drain(&gw, Duration::from_secs(60))?;
    let dropped = status["buffer"]["dropped_samples"].as_u64().unwrap_or(0);

    // Everything the gateway committed is either at the hub or counted as dropped.
    let metrics = get_text(&gw.url("/metrics"))?;
    let committed =
        metric(&metrics, "dcmms_gateway_samples_committed_total").context("committed metric")?;
    let mut stored = 0u64;
    for (name, ..) in POINTS {
        stored += hub_samples(&hub, name)?.len() as u64;
    }
    assert_eq!(
        stored + dropped,
        committed,
        "stored {stored} + dropped {dropped} != committed {committed}"
    );

    // The hub learns the exact drop count from the gateway's status.
    wait_for(
        "the hub to report the gateway's drops",
        Duration::from_secs(20),
        || {
            let g = hub_gateway(&hub).ok()?;
            (g["dropped"]["samples"].as_u64() == Some(dropped)).then_some(())
        },
    )?;
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

fn time_now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
