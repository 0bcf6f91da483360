//! The live-latency probe: asks the hub's API every 50 ms for samples of a
//! live point newer than the last one it saw, and records, for each new
//! sample, its timestamp (when the gateway started the poll cycle that
//! read it) and the wall-clock time the API first returned it.
//!
//! `seen - ts` is an upper bound of the poll -> visible latency: the sample
//! became visible at some moment after the previous request and before
//! this response, so the figure is at most one probe interval plus one
//! request too high, never too low. The probe keeps one HTTP connection
//! open so its own cost stays small and steady.

use anyhow::Context;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the probe asks the hub.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// One sample seen at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The sample's timestamp (ms since the epoch).
    pub ts_ms: i64,
    /// When the API first returned it (ms since the epoch).
    pub seen_ms: i64,
}

impl Observation {
    pub fn latency_ms(&self) -> f64 {
        (self.seen_ms - self.ts_ms) as f64
    }
}

/// A running probe.
pub struct Probe {
    seen: Arc<Mutex<Vec<Observation>>>,
    round_trips: Arc<Mutex<Vec<f64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Probe {
    /// Starts probing `site/device/point` on the hub API at `api` with
    /// the bearer `token`, for samples stamped at or after `since_ms`.
    pub fn start(rt: &Runtime, api: SocketAddr, token: &str, point: &str, since_ms: i64) -> Probe {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let round_trips = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = rt.spawn(run(
            HubApi {
                addr: api,
                token: token.to_owned(),
            },
            point.to_owned(),
            since_ms,
            seen.clone(),
            round_trips.clone(),
            errors.clone(),
            cancel.clone(),
        ));
        Probe {
            seen,
            round_trips,
            errors,
            cancel,
            task,
        }
    }

    /// Observations so far, in the order seen.
    pub fn observations(&self) -> Vec<Observation> {
        lock(&self.seen).clone()
    }

    /// Stops the probe.
    pub fn stop(self, rt: &Runtime) -> ProbeResult {
        self.cancel.cancel();
        let _ = rt.block_on(self.task);
        ProbeResult {
            observations: lock(&self.seen).clone(),
            round_trips_ms: lock(&self.round_trips).clone(),
            errors: lock(&self.errors).clone(),
        }
    }
}

/// What a stopped probe measured.
#[derive(Debug, Clone, Default)]
pub struct ProbeResult {
    /// Every new sample seen, in the order seen.
    pub observations: Vec<Observation>,
    /// Duration of each successful API request, ms: the floor under every
    /// latency figure.
    pub round_trips_ms: Vec<f64>,
    /// Distinct errors met (other than "point not known yet").
    pub errors: Vec<String>,
}

/// Where the probe asks, and with which bearer token.
struct HubApi {
    addr: SocketAddr,
    token: String,
}

async fn run(
    api: HubApi,
    point: String,
    since_ms: i64,
    seen: Arc<Mutex<Vec<Observation>>>,
    round_trips: Arc<Mutex<Vec<f64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
) {
    let client = reqwest::Client::new();
    let mut next_from = since_ms;
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let asked = std::time::Instant::now();
        match newer_samples(&client, api.addr, &api.token, &point, next_from).await {
            Ok(Some(ts)) => {
                let seen_ms = now_ms();
                lock(&round_trips).push(asked.elapsed().as_secs_f64() * 1000.0);
                let mut g = lock(&seen);
                for ts_ms in ts {
                    next_from = next_from.max(ts_ms + 1);
                    g.push(Observation { ts_ms, seen_ms });
                }
            }
            Ok(None) => {}
            Err(e) => {
                let e = format!("{e:#}");
                let mut g = lock(&errors);
                if !g.contains(&e) && g.len() < 20 {
                    g.push(e);
                }
            }
        }
    }
}

/// Timestamps of the point's samples at or after `from_ms`; `None` while
/// the hub does not know the point yet (404).
async fn newer_samples(
    client: &reqwest::Client,
    api: SocketAddr,
    token: &str,
    point: &str,
    from_ms: i64,
) -> anyhow::Result<Option<Vec<i64>>> {
    let url = format!(
        "http://{api}/api/v1/telemetry?point={point}&from={}&to={}&limit=1000",
        rfc3339(from_ms),
        rfc3339(now_ms() + 86_400_000)
    );
    let resp = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .context("GET telemetry")?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let status = resp.status();
    let body: Value = resp.json().await.context("telemetry body")?;
    if !status.is_success() {
        anyhow::bail!("GET telemetry: {status}: {body}");
    }
    let samples = body["samples"]
        .as_array()
        .with_context(|| format!("no samples in {body}"))?;
    let ts = samples
        .iter()
        .map(|s| {
            s["ts"]
                .as_str()
                .and_then(parse_rfc3339)
                .with_context(|| format!("bad ts in {s}"))
        })
        .collect::<anyhow::Result<Vec<i64>>>()?;
    Ok(Some(ts))
}

/// Milliseconds since the epoch, wall clock (the same clock the gateway
/// stamps samples with: both run on this machine).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_milliseconds() {
        let ms = 1_767_225_600_123;
        assert_eq!(rfc3339(ms), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.5+01:00"),
            Some(ms - 123 - 3_600_000 + 500)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        let o = Observation {
            ts_ms: 1000,
            seen_ms: 1750,
        };
        assert_eq!(o.latency_ms(), 750.0);
    }
}
