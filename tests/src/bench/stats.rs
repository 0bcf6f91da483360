//! Figures and how they are printed: latency percentiles (nearest rank),
//! rates, sizes. Sans-IO.

use std::fmt;
use std::time::Duration;

/// Percentiles of a set of latency observations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` without observations.
    pub fn of(observations_ms: &[f64]) -> Option<Percentiles> {
        let mut v: Vec<f64> = observations_ms
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let r = (p / 100.0 * v.len() as f64).ceil() as usize;
            v[r.clamp(1, v.len()) - 1]
        };
        Some(Percentiles {
            count: v.len(),
            p50_ms: rank(50.0),
            p95_ms: rank(95.0),
            max_ms: v[v.len() - 1],
            min_ms: v[0],
        })
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (min {:.0} ms, {} observations)",
            self.p50_ms, self.p95_ms, self.max_ms, self.min_ms, self.count
        )
    }
}

/// Prints a latency line, or says there was nothing to measure.
pub fn latency_line(label: &str, observations_ms: &[f64]) -> String {
    match Percentiles::of(observations_ms) {
        Some(p) => format!("{label}: {p}"),
        None => format!("{label}: no observations"),
    }
}

/// `count` per second over `elapsed`.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// A rate with thousands separators, e.g. `1 234 567`.
pub fn grouped(x: f64) -> String {
    let n = x.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v).unwrap();
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.max_ms, p.min_ms),
            (50.0, 95.0, 100.0, 1.0)
        );
        assert_eq!(p.count, 100);
        // Order of observations does not matter; NaN is ignored.
        let p = Percentiles::of(&[900.0, f64::NAN, 100.0, 500.0]).unwrap();
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.max_ms, p.count),
            (500.0, 900.0, 900.0, 3)
        );
        let p = Percentiles::of(&[42.0]).unwrap();
        assert_eq!((p.p50_ms, p.p95_ms, p.max_ms), (42.0, 42.0, 42.0));
        assert_eq!(Percentiles::of(&[]), None);
        assert_eq!(latency_line("x", &[]), "x: no observations");
    }

    #[test]
    fn rates_and_formatting() {
        assert_eq!(rate(3000, Duration::from_millis(1500)), 2000.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(grouped(1234567.4), "1 234 567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1000.0), "1 000");
        assert_eq!(mib(3 * 1024 * 1024), 3.0);
    }
}
