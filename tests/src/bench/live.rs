//! The live side shared by `drain` and `latency`: one simulated solar
//! inverter served in-process (`dcmms_hil::serve`, real-time clock), the
//! gateway status poll that notes when the uplink first came up, and the
//! split of probe observations into measurement windows.

use super::interrupt;
use super::probe::{now_ms, Observation};
use super::setup::{inverter_points_csv, DeviceSpec, SITE};
use anyhow::{bail, Context};
use dcmms_e2e::procs::GatewayProc;
use dcmms_hil::{Fleet, InverterParams, SimClock, SolarInverter};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Device name of the live inverter on the gateway.
pub const LIVE_DEVICE: &str = "live";
/// The point the probe watches. Every point of a poll cycle carries the
/// cycle's start time, so one point measures the whole device.
pub const LIVE_POINT: &str = "ac_power";

/// Hub API name of the watched point.
pub fn live_point_name() -> String {
    format!("{SITE}/{LIVE_DEVICE}/{LIVE_POINT}")
}

/// Starts the simulated inverter on the bench runtime and returns the
/// gateway device polling it every `poll_interval_ms`.
pub fn start_inverter(rt: &Runtime, poll_interval_ms: u64) -> anyhow::Result<DeviceSpec> {
    let mut fleet = Fleet::new(SimClock::real_time());
    fleet.add(1, SolarInverter::new(InverterParams::default()));
    let (addr, _task) = rt
        .block_on(dcmms_hil::serve(([127, 0, 0, 1], 0).into(), fleet))
        .context("starting the simulated inverter")?;
    Ok(DeviceSpec {
        name: LIVE_DEVICE.to_owned(),
        address: addr,
        unit_id: 1,
        poll_interval_ms,
        points_csv: inverter_points_csv(),
    })
}

/// Follows a gateway's `/api/v1/status`, remembering when its uplink was
/// first seen connected.
#[derive(Debug, Default)]
pub struct StatusWatch {
    pub connected_ms: Option<i64>,
    pub last: Option<Value>,
}

impl StatusWatch {
    /// Reads the status once; a failed read keeps the previous one.
    pub fn poll(&mut self, gw: &GatewayProc) -> Option<&Value> {
        if let Ok(s) = gw.status() {
            if self.connected_ms.is_none() && s["uplink"]["connected"].as_bool() == Some(true) {
                self.connected_ms = Some(now_ms());
            }
            self.last = Some(s);
        }
        self.last.as_ref()
    }
}

/// Waits until the gateway's uplink is connected; returns when that was
/// first seen (ms since the epoch).
pub fn wait_connected(gw: &GatewayProc, timeout: Duration) -> anyhow::Result<i64> {
    let started = Instant::now();
    let mut watch = StatusWatch::default();
    loop {
        watch.poll(gw);
        if let Some(t) = watch.connected_ms {
            return Ok(t);
        }
        if started.elapsed() > timeout {
            let error = watch
                .last
                .as_ref()
                .map(|s| s["uplink"]["last_error"].to_string())
                .unwrap_or_default();
            bail!(
                "the gateway's uplink did not connect within {timeout:?} (last error {error}); see the hub and gateway logs"
            );
        }
        interrupt::pause(Duration::from_millis(100))?;
    }
}

/// Latencies (ms) of the samples stamped in `from_ms..to_ms`.
pub fn window(observations: &[Observation], from_ms: i64, to_ms: i64) -> Vec<f64> {
    observations
        .iter()
        .filter(|o| o.ts_ms >= from_ms && o.ts_ms < to_ms)
        .map(Observation::latency_ms)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_select_by_sample_time_not_by_when_seen() {
        let obs = [
            Observation {
                ts_ms: 900,
                seen_ms: 2500,
            },
            Observation {
                ts_ms: 1000,
                seen_ms: 1400,
            },
            Observation {
                ts_ms: 1999,
                seen_ms: 3000,
            },
            Observation {
                ts_ms: 2000,
                seen_ms: 2100,
            },
        ];
        assert_eq!(window(&obs, 1000, 2000), vec![400.0, 1001.0]);
        assert_eq!(window(&obs, 2000, i64::MAX), vec![100.0]);
        assert!(window(&obs, 5000, 6000).is_empty());
    }
}
