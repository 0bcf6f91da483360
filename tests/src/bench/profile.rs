//! The synthetic backlog: a fleet of `inv-NNN` devices with `pt-MM` points
//! each, sampled once per second, with values shaped like a solar plant's
//! scaled registers (power in 0.1 kW, voltages in 0.1 V, currents in
//! 0.01 A, integer energy counters...). Pure functions of (point, second):
//! the ring pre-fill and the database baselines see exactly the same rows.
//!
//! The daylight curve is anchored at 11:00 site time for the first second
//! of the backlog whatever the wall clock says, so a benchmark run at night
//! does not ship a buffer full of zeros (which would compress and store
//! unrealistically well).

use dcmms_shared::{PointId, Sample};

/// Points per device (`pt-00` .. `pt-49`).
pub const POINTS_PER_DEVICE: u32 = 50;

/// Shape of a backlog: `points` points, `samples` samples in total, one per
/// point per second, cut into blocks of `block_samples`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub points: u32,
    pub samples: u64,
    pub block_samples: usize,
    /// Timestamp of the first second (ms since the epoch).
    pub start_ms: i64,
}

impl Backlog {
    /// A backlog that ends `margin_s` seconds before `now_ms`.
    pub fn ending_before(
        now_ms: i64,
        margin_s: i64,
        points: u32,
        samples: u64,
        block_samples: usize,
    ) -> Backlog {
        let seconds = samples.div_ceil(u64::from(points.max(1))) as i64;
        let start_ms = (now_ms / 1000 - seconds - margin_s) * 1000;
        Backlog {
            points: points.max(1),
            samples,
            block_samples: block_samples.max(1),
            start_ms,
        }
    }

    /// Point names in id order: `inv-000/pt-00`, `inv-000/pt-01`, ...
    pub fn names(&self) -> Vec<String> {
        (0..self.points).map(point_name).collect()
    }

    pub fn blocks(&self) -> u64 {
        self.samples.div_ceil(self.block_samples as u64)
    }

    /// Samples of block `b` (0-based): sample `i` of the backlog is point
    /// `i % points` at second `i / points`.
    pub fn block(&self, b: u64) -> Vec<Sample> {
        let first = b * self.block_samples as u64;
        let last = (first + self.block_samples as u64).min(self.samples);
        (first..last).map(|i| self.sample(i)).collect()
    }

    fn sample(&self, i: u64) -> Sample {
        let points = u64::from(self.points);
        let point = (i % points) as u32;
        let second = (i / points) as i64;
        Sample::good(
            PointId(point),
            self.start_ms + second * 1000,
            value(point, second),
        )
    }
}

pub fn point_name(id: u32) -> String {
    format!(
        "inv-{:03}/pt-{:02}",
        id / POINTS_PER_DEVICE,
        id % POINTS_PER_DEVICE
    )
}

/// A deterministic noise value in [0, 1) for (point, second).
fn noise(point: u32, second: i64) -> f64 {
    // splitmix64 finaliser over both inputs.
    let mut z = (u64::from(point) << 32) ^ (second as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Irradiance as a fraction of clear-sky noon, 11:00 site time at second 0,
/// with slow clouds that differ per device.
fn irradiance(device: u32, second: i64) -> f64 {
    let hour = 11.0 + second as f64 / 3600.0;
    let sun = (std::f64::consts::PI * (hour - 6.0) / 12.0).sin().max(0.0);
    // A cloud passes every few minutes, at a phase of its own per device.
    let phase = f64::from(device % 17) * 0.37;
    let cloud = 0.5 + 0.5 * (second as f64 / 240.0 + phase).sin();
    sun * (1.0 - 0.35 * cloud * cloud)
}

/// Value of a point at a second: a scaled integer, i.e. exactly `n / 10^k`
/// as a gateway's register scaling produces it.
pub fn value(point: u32, second: i64) -> f64 {
    let device = point / POINTS_PER_DEVICE;
    let kind = point % POINTS_PER_DEVICE % 10;
    let sun = irradiance(device, second);
    let jitter = noise(point, second) - 0.5;
    let scaled = |raw: f64, divisor: f64| raw.round() / divisor;
    match kind {
        // AC power, 0.1 kW, 50 kW inverter.
        0 => scaled(500.0 * sun * (1.0 + 0.02 * jitter), 10.0),
        // Phase voltage, 0.1 V.
        1 => scaled(2300.0 + 20.0 * jitter + 15.0 * sun, 10.0),
        // Phase current, 0.01 A.
        2 => scaled(7250.0 * sun * (1.0 + 0.03 * jitter), 100.0),
        // Grid frequency, 0.01 Hz.
        3 => scaled(5000.0 + 4.0 * jitter, 100.0),
        // DC voltage, 0.1 V.
        4 => scaled(6200.0 + 300.0 * sun + 30.0 * jitter, 10.0),
        // Heatsink temperature, 0.1 degC.
        5 => scaled(250.0 + 300.0 * sun + 5.0 * jitter, 10.0),
        // Irradiance, W/m2.
        6 => scaled((1000.0 * sun + 8.0 * jitter).max(0.0), 1.0),
        // Power factor, 0.001.
        7 => scaled(998.0 + 2.0 * jitter, 1000.0),
        // Energy total, Wh: a counter advancing with power.
        8 => {
            let base = 10_000_000.0 + f64::from(device) * 1_234_567.0;
            (base + second as f64 * 13.9 * sun).floor()
        }
        // Status word: mostly "running", sometimes "derating".
        _ => {
            if jitter > 0.49 {
                3.0
            } else {
                2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_sample_once_in_point_major_seconds() {
        let b = Backlog::ending_before(1_780_000_000_000, 60, 7, 100, 30);
        assert_eq!(b.blocks(), 4);
        let all: Vec<Sample> = (0..b.blocks()).flat_map(|i| b.block(i)).collect();
        assert_eq!(all.len(), 100);
        assert_eq!(b.block(3).len(), 10);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(s.point, PointId(i as u32 % 7));
            assert_eq!(s.ts_ms, b.start_ms + (i as i64 / 7) * 1000);
        }
        // 100 samples over 7 points = 15 seconds, ending 60 s before now.
        assert_eq!(b.start_ms, (1_780_000_000 - 15 - 60) * 1000);
        assert!(all.last().map(|s| s.ts_ms) < Some(1_780_000_000_000 - 60_000));
    }

    #[test]
    fn names_are_valid_device_point_pairs() {
        let b = Backlog::ending_before(0, 0, 5000, 5000, 5000);
        let names = b.names();
        assert_eq!(names[0], "inv-000/pt-00");
        assert_eq!(names[51], "inv-001/pt-01");
        assert_eq!(names[4999], "inv-099/pt-49");
        for n in &names {
            let (d, p) = n.split_once('/').unwrap();
            dcmms_shared::validate_name(d).unwrap();
            dcmms_shared::validate_name(p).unwrap();
        }
    }

    #[test]
    fn values_are_decimal_scaled_integers_and_follow_the_sun() {
        for point in 0..100 {
            for second in [0, 1, 59, 3600, 7 * 3600] {
                let v = value(point, second);
                assert!(v.is_finite() && v >= 0.0, "{point} {second}: {v}");
                let k = [1.0, 10.0, 100.0, 1000.0]
                    .into_iter()
                    .find(|d| ((v * d).round() / d).to_bits() == v.to_bits());
                assert!(k.is_some(), "{point} {second}: {v} is not n/10^k");
            }
        }
        // Power at 11:00 is well above power at 18:30 (after sunset, 0).
        assert!(value(0, 0) > 20.0, "{} kW of 50", value(0, 0));
        assert_eq!(value(0, 7 * 3600 + 1800), 0.0);
        // Values change from second to second.
        let distinct: std::collections::HashSet<u64> =
            (0..60).map(|s| value(2, s).to_bits()).collect();
        assert!(distinct.len() > 10);
        // The energy counter never goes backwards.
        assert!((0..600).all(|s| value(8, s + 1) >= value(8, s)));
    }
}
