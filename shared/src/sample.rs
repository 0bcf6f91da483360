//! Samples and point identities.

use serde::{Deserialize, Serialize};

/// Compact id of a point, interned by the gateway. Ids are dense, start at 0,
/// and are never reused for another name on the same gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PointId(pub u32);

/// Quality of a sample, after OPC/IEC conventions reduced to three levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[repr(u8)]
pub enum Quality {
    #[default]
    Good = 0,
    /// Value present but not trustworthy (stale, substituted, out of range).
    Uncertain = 1,
    /// No valid value: device exception, timeout, decode failure.
    Bad = 2,
}

impl Quality {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Quality::Good),
            1 => Some(Quality::Uncertain),
            2 => Some(Quality::Bad),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
        }
    }
}

/// One observation of a point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub point: PointId,
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub value: f64,
    pub quality: Quality,
}

impl Sample {
    pub fn good(point: PointId, ts_ms: i64, value: f64) -> Self {
        Sample {
            point,
            ts_ms,
            value,
            quality: Quality::Good,
        }
    }

    pub fn bad(point: PointId, ts_ms: i64) -> Self {
        Sample {
            point,
            ts_ms,
            value: f64::NAN,
            quality: Quality::Bad,
        }
    }
}

/// Why a site, gateway, device or point name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than 64 characters")]
    TooLong,
    #[error("name contains {0:?}; use letters, digits, '-', '_' or '.'")]
    BadChar(char),
}

/// Names of sites, gateways, devices and points: 1-64 characters from
/// `[A-Za-z0-9_.-]`, so that they can appear as MQTT topic levels and in
/// `site/device/point` paths without escaping.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 64 {
        return Err(NameError::TooLong);
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("inv-01").is_ok());
        assert!(validate_name("ac_power.L1").is_ok());
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(validate_name("a+"), Err(NameError::BadChar('+')));
        assert_eq!(validate_name(&"x".repeat(65)), Err(NameError::TooLong));
    }

    #[test]
    fn quality_round_trip() {
        for q in [Quality::Good, Quality::Uncertain, Quality::Bad] {
            assert_eq!(Quality::from_u8(q.as_u8()), Some(q));
        }
        assert_eq!(Quality::from_u8(3), None);
    }
}
