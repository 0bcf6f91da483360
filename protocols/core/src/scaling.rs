//! Linear scaling of raw device values into engineering units.
//!
//! Devices send scaled integers ("voltage in 0.1 V"). A scale of 0.1 applied
//! as `raw * 0.1` gives `2301 * 0.1 = 230.10000000000002`; dividing by 10
//! gives `230.1`, the f64 nearest to the decimal the device meant. Exact
//! decimals compress far better downstream, so scales that are exactly
//! 10^-k divide instead of multiply.

use serde::{Deserialize, Serialize};

/// The f64 literals 1e-1 .. 1e-9, i.e. what a config parser produces for
/// "0.1" .. "0.000000001", paired with the exact divisor.
const DECIMAL_SCALES: [(f64, f64); 9] = [
    (1e-1, 1e1),
    (1e-2, 1e2),
    (1e-3, 1e3),
    (1e-4, 1e4),
    (1e-5, 1e5),
    (1e-6, 1e6),
    (1e-7, 1e7),
    (1e-8, 1e8),
    (1e-9, 1e9),
];

/// `value = raw * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            scale: 1.0,
            offset: 0.0,
        }
    }
}

impl Scaling {
    pub fn new(scale: f64, offset: f64) -> Self {
        Scaling { scale, offset }
    }

    /// `Some(10^k)` when `scale` is exactly the f64 nearest to 10^-k, k in 1..=9.
    pub fn decimal_divisor(&self) -> Option<f64> {
        DECIMAL_SCALES
            .iter()
            .find(|(s, _)| *s == self.scale)
            .map(|(_, d)| *d)
    }

    pub fn is_identity(&self) -> bool {
        self.scale == 1.0 && self.offset == 0.0
    }

    /// Raw device value to engineering value.
    pub fn apply(&self, raw: f64) -> f64 {
        let scaled = match self.decimal_divisor() {
            Some(d) => raw / d,
            None if self.scale == 1.0 => raw,
            None => raw * self.scale,
        };
        if self.offset == 0.0 {
            scaled
        } else {
            scaled + self.offset
        }
    }

    /// Engineering value to raw device value (not rounded), the inverse of
    /// [`apply`](Self::apply); `None` for a zero or non-finite scale.
    pub fn to_raw(&self, value: f64) -> Option<f64> {
        if self.scale == 0.0 || !self.scale.is_finite() {
            return None;
        }
        let v = value - self.offset;
        Some(match self.decimal_divisor() {
            Some(d) => v * d,
            None => v / self.scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_scales_are_detected_exactly() {
        for (k, text) in [
            "0.1",
            "0.01",
            "0.001",
            "0.0001",
            "0.00001",
            "0.000001",
            "0.0000001",
            "0.00000001",
            "0.000000001",
        ]
        .iter()
        .enumerate()
        {
            let s = Scaling::new(text.parse().unwrap(), 0.0);
            assert_eq!(
                s.decimal_divisor(),
                Some(10f64.powi(k as i32 + 1)),
                "{text}"
            );
        }
        // The f64 right after 0.1 is not a decimal scale.
        let next_after_tenth = f64::from_bits(0.1f64.to_bits() + 1);
        for scale in [1.0, 0.5, 0.2, 10.0, 0.11, 1e-10, -0.1, next_after_tenth] {
            assert_eq!(Scaling::new(scale, 0.0).decimal_divisor(), None, "{scale}");
        }
    }

    #[test]
    fn decimal_results_are_the_nearest_f64() {
        let s = Scaling::new(0.1, 0.0);
        assert_eq!(s.apply(2301.0), 230.1);
        assert_ne!(2301.0 * 0.1, 230.1, "multiplying would not be exact");
        assert_eq!(Scaling::new(0.01, 0.0).apply(5003.0), 50.03);
        assert_eq!(Scaling::new(0.001, 0.0).apply(-17.0), -0.017);
        assert_eq!(Scaling::new(0.1, -40.0).apply(650.0), 25.0);
    }

    #[test]
    fn other_scales_multiply() {
        assert_eq!(Scaling::new(0.5, 1.0).apply(3.0), 2.5);
        assert_eq!(Scaling::new(10.0, 0.0).apply(3.0), 30.0);
        assert_eq!(Scaling::default().apply(7.0), 7.0);
        assert!(Scaling::default().is_identity());
        assert_eq!(Scaling::new(0.0, 1.0).to_raw(5.0), None);
    }

    proptest! {
        #[test]
        fn decimal_scaling_matches_decimal_text(raw in -1_000_000_000i64..1_000_000_000, k in 1u32..=9) {
            let scale: f64 = format!("1e-{k}").parse().unwrap();
            let got = Scaling::new(scale, 0.0).apply(raw as f64);
            // The decimal string raw * 10^-k, parsed: the nearest f64.
            let neg = raw < 0;
            let digits = format!("{:0>width$}", raw.unsigned_abs(), width = k as usize + 1);
            let (int, frac) = digits.split_at(digits.len() - k as usize);
            let text = format!("{}{int}.{frac}", if neg { "-" } else { "" });
            let want: f64 = text.parse().unwrap();
            prop_assert_eq!(got, want, "{}", text);
        }

        #[test]
        fn to_raw_inverts_apply(raw in -100_000i32..100_000, k in 0usize..4, offset in -100i32..100) {
            let scale = [1.0, 0.1, 0.01, 0.5][k];
            let s = Scaling::new(scale, f64::from(offset));
            let back = s.to_raw(s.apply(f64::from(raw))).unwrap();
            prop_assert!((back - f64::from(raw)).abs() < 1e-6, "{} -> {}", raw, back);
        }
    }
}
