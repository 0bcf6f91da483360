//! Discovery: connect to an outstation, make one integrity poll (classes 1,
//! 2, 3 and 0), and list every point it reported, by kind and index; then
//! turn that list into a point map (TOML or CSV) the user edits and points
//! `points_file` at.
//!
//! Discovery sends only the integrity poll: no unsolicited enable or
//! disable, no time synchronisation, no command. Points that an outstation
//! leaves out of class 0 (some do for outputs or frozen counters) are not
//! found; add them by hand.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcmms_protocols_core::{Backoff, DeviceStats};
use dcmms_shared::Quality;
use dnp3::app::{MaybeAsync, Timeout};
use dnp3::link::{EndpointAddress, LinkErrorMode};
use dnp3::master::{AssociationConfig, Classes, MasterChannelConfig, ReadRequest};
use tokio::sync::mpsc;

use crate::config::{Dnp3Config, Dnp3ConfigError};
use crate::handlers::{
    JitteredConnect, LinkEvent, MeasurementSink, ReadAdapter, StateListener, SystemClock,
    TaskObserver,
};
use crate::measurement::{quality, Measurement};
use crate::point::{PointConfig, PointKind};
use crate::point_map::{write_points_csv, write_points_toml};

/// One point an outstation reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscoveredPoint {
    pub kind: PointKind,
    pub index: u16,
    /// The raw value of the last object seen for this point.
    pub value: f64,
    pub flags: u8,
    pub quality: Quality,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    #[error(transparent)]
    Config(#[from] Dnp3ConfigError),
    #[error("dnp3 device {device:?}: no connection to {address} within {waited:?}")]
    Connect {
        device: String,
        address: String,
        waited: Duration,
    },
    #[error("dnp3 device {device:?}: integrity poll failed: {message}")]
    Read { device: String, message: String },
    #[error("dnp3 device {device:?}: no answer to the integrity poll within {waited:?}")]
    Timeout { device: String, waited: Duration },
}

/// Point-map file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapFormat {
    Toml,
    Csv,
}

#[derive(Default)]
struct Recorder {
    found: Arc<Mutex<BTreeMap<(PointKind, u16), DiscoveredPoint>>>,
}

impl MeasurementSink for Recorder {
    fn begin(&mut self, _received_ms: i64) {}

    fn push(&mut self, m: Measurement) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.insert(
            (m.kind, m.index),
            DiscoveredPoint {
                kind: m.kind,
                index: m.index,
                value: m.value,
                flags: m.flags,
                quality: quality(m.kind, m.flags, m.value),
            },
        );
    }

    fn end(&mut self) -> MaybeAsync<()> {
        MaybeAsync::ready(())
    }
}

/// Connects to the outstation of `cfg` (its points are ignored), makes one
/// integrity poll and returns what it reported, sorted by kind and index.
/// `timeout` bounds the whole operation.
pub async fn discover(
    cfg: &Dnp3Config,
    timeout: Duration,
) -> Result<Vec<DiscoveredPoint>, DiscoverError> {
    cfg.validate_link()?;
    let address = |v: u16, field: &'static str| {
        EndpointAddress::try_new(v).map_err(|e| Dnp3ConfigError::DeviceField {
            device: cfg.name.clone(),
            field,
            message: e.to_string(),
        })
    };
    let master = address(cfg.master_address, "master_address")?;
    let outstation = address(cfg.outstation_address, "outstation_address")?;
    let deadline = Instant::now() + timeout;
    let stats = Arc::new(DeviceStats::new());
    let answered = Arc::new(AtomicBool::new(false));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let connect = JitteredConnect::new(
        cfg.name.clone(),
        cfg.address.clone(),
        Duration::from_millis(cfg.connect_timeout_ms).min(timeout),
        Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        Arc::clone(&stats),
        Arc::clone(&answered),
    );
    let mut channel = dnp3::tcp::spawn_master_tcp_client_3(
        LinkErrorMode::Close,
        MasterChannelConfig::new(master),
        Box::new(connect),
        Box::new(StateListener::new(
            cfg.name.clone(),
            Arc::clone(&stats),
            events_tx.clone(),
        )),
    );
    let mut assoc_cfg = AssociationConfig::quiet();
    assoc_cfg.response_timeout =
        Timeout::saturating(Duration::from_millis(cfg.response_timeout_ms));
    let recorder = Recorder::default();
    let found = Arc::clone(&recorder.found);
    let read_failed = |message: String| DiscoverError::Read {
        device: cfg.name.clone(),
        message,
    };
    let mut association = channel
        .add_association(
            outstation,
            assoc_cfg,
            Box::new(ReadAdapter::new(recorder)),
            Box::new(SystemClock),
            Box::new(TaskObserver::new(
                cfg.name.clone(),
                stats,
                events_tx,
                answered,
            )),
        )
        .await
        .map_err(|e| read_failed(e.to_string()))?;
    channel
        .enable()
        .await
        .map_err(|e| read_failed(e.to_string()))?;

    // Wait for the TCP connection; failed attempts are retried until the
    // deadline.
    loop {
        match tokio::time::timeout_at(deadline.into(), events.recv()).await {
            Ok(Some(LinkEvent::Connected)) => break,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                return Err(DiscoverError::Connect {
                    device: cfg.name.clone(),
                    address: cfg.address.clone(),
                    waited: timeout,
                })
            }
        }
    }
    let read = association.read(ReadRequest::class_scan(Classes::all()));
    match tokio::time::timeout_at(deadline.into(), read).await {
        Err(_) => {
            return Err(DiscoverError::Timeout {
                device: cfg.name.clone(),
                waited: timeout,
            })
        }
        Ok(Err(e)) => return Err(read_failed(e.to_string())),
        Ok(Ok(())) => {}
    }
    let _ = association.remove().await;
    drop(channel);
    let found = found.lock().unwrap_or_else(|e| e.into_inner());
    Ok(found.values().copied().collect())
}

/// A point config for every discovered point, named `<kind>_<index>`
/// (`bi_0`, `ai_3`, `ctr_1`, ...). For each binary or analog output status
/// it also adds the matching command point (`crob_<i>`, `ao_<i>`), not
/// writable: a user turns commands on point by point.
pub fn points_from_discovery(found: &[DiscoveredPoint]) -> Vec<PointConfig> {
    let mut points = Vec::with_capacity(found.len());
    let mut commands = Vec::new();
    for d in found {
        points.push(PointConfig::new(
            format!("{}_{}", d.kind.short(), d.index),
            d.kind,
            d.index,
        ));
        let command = match d.kind {
            PointKind::BinaryOutputStatus => Some(PointKind::Crob),
            PointKind::AnalogOutputStatus => Some(PointKind::AnalogOutput),
            _ => None,
        };
        if let Some(kind) = command {
            commands.push(PointConfig::new(
                format!("{}_{}", kind.short(), d.index),
                kind,
                d.index,
            ));
        }
    }
    points.extend(commands);
    points
}

/// The point-map file for what `discover` found on `device`.
pub fn render_point_map(device: &str, found: &[DiscoveredPoint], format: MapFormat) -> String {
    let points = points_from_discovery(found);
    match format {
        MapFormat::Csv => write_points_csv(&points),
        MapFormat::Toml => {
            let mut counts: BTreeMap<PointKind, usize> = BTreeMap::new();
            for d in found {
                *counts.entry(d.kind).or_default() += 1;
            }
            let summary = counts
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let header = vec![
                format!("Point map of DNP3 outstation {device:?}, from one integrity poll."),
                format!(
                    "Reported: {}.",
                    if summary.is_empty() {
                        "nothing".into()
                    } else {
                        summary
                    }
                ),
                "Rename points freely; set scale/offset for engineering units.".into(),
                "Command points (crob, analog_output) need writable = true to accept commands."
                    .into(),
            ];
            write_points_toml(&points, &header)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point_map::parse_points_toml;
    use std::path::Path;

    fn d(kind: PointKind, index: u16) -> DiscoveredPoint {
        DiscoveredPoint {
            kind,
            index,
            value: 0.0,
            flags: 1,
            quality: Quality::Good,
        }
    }

    #[test]
    fn map_names_points_and_adds_disabled_commands() {
        let found = [
            d(PointKind::BinaryInput, 0),
            d(PointKind::AnalogInput, 7),
            d(PointKind::BinaryOutputStatus, 2),
            d(PointKind::AnalogOutputStatus, 0),
        ];
        let text = render_point_map("rtu", &found, MapFormat::Toml);
        assert!(
            text.starts_with("# Point map of DNP3 outstation \"rtu\""),
            "{text}"
        );
        assert!(text.contains("1 binary_input, 1 analog_input"), "{text}");
        let points = parse_points_toml(&text, Path::new("m.toml")).unwrap();
        let names: Vec<_> = points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bi_0", "ai_7", "bos_2", "aos_0", "crob_2", "ao_0"]);
        assert!(points.iter().all(|p| !p.writable));
        // The map is a valid device config as written.
        let mut cfg = Dnp3Config::new("rtu", "127.0.0.1:20000");
        cfg.points = points;
        assert_eq!(cfg.validate(Path::new(".")).unwrap().len(), 6);
        let csv = render_point_map("rtu", &found, MapFormat::Csv);
        assert_eq!(csv.lines().count(), 7);
    }

    #[tokio::test]
    async fn unreachable_outstation_fails_within_the_timeout() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = Dnp3Config::new("gone", format!("127.0.0.1:{port}"));
        let started = Instant::now();
        let e = discover(&cfg, Duration::from_millis(600))
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoverError::Connect { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
