//! MQTT topics of the gateway <-> hub protocol.
//!
//! Logical topics are `dcmms/v1/{site}/{gateway}/{kind}`. On the hub's
//! broker every gateway lives in its own tenant namespace, so the topic on
//! the wire is `/tenants/{tenant}/dcmms/v1/{site}/{gateway}/{kind}`, where
//! `tenant` is derived from site and gateway ([`tenant_id`]) and is the
//! organisation (O) of the gateway's client certificate. The broker refuses
//! any publish or subscription outside the certificate's tenant; the hub
//! refuses any topic whose site/gateway does not hash to its tenant. Together
//! a gateway can act only under its own prefix.

use crate::sample::{validate_name, NameError};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    Telemetry,
    Catalog,
    Ack,
    Status,
    Alarms,
    WoUp,
    WoDown,
    Cmd,
    CmdResult,
}

impl TopicKind {
    pub const ALL: [TopicKind; 9] = [
        TopicKind::Telemetry,
        TopicKind::Catalog,
        TopicKind::Ack,
        TopicKind::Status,
        TopicKind::Alarms,
        TopicKind::WoUp,
        TopicKind::WoDown,
        TopicKind::Cmd,
        TopicKind::CmdResult,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Telemetry => "telemetry",
            TopicKind::Catalog => "catalog",
            TopicKind::Ack => "ack",
            TopicKind::Status => "status",
            TopicKind::Alarms => "alarms",
            TopicKind::WoUp => "wo/up",
            TopicKind::WoDown => "wo/down",
            TopicKind::Cmd => "cmd",
            TopicKind::CmdResult => "cmd/result",
        }
    }

    /// Whether the gateway publishes (true) or the hub does (false).
    pub fn is_uplink(self) -> bool {
        !matches!(self, TopicKind::Ack | TopicKind::WoDown | TopicKind::Cmd)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("topic {0:?} is not under /tenants/{{tenant}}/dcmms/v1/")]
    NotOurs(String),
    #[error("bad {what} name in topic: {err}")]
    BadName { what: &'static str, err: NameError },
    #[error("unknown topic kind {0:?}")]
    UnknownKind(String),
    #[error("tenant {tenant:?} does not own {site}/{gateway}")]
    TenantMismatch {
        tenant: String,
        site: String,
        gateway: String,
    },
}

/// A parsed, validated topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub site: String,
    pub gateway: String,
    pub kind: TopicKind,
}

/// Tenant id of a gateway: `g` + 32 hex digits of SHA-256(`site/gateway`).
/// Alphanumeric, as the broker requires of the certificate's O field.
pub fn tenant_id(site: &str, gateway: &str) -> String {
    let digest = Sha256::digest(format!("{site}/{gateway}").as_bytes());
    format!("g{}", hex::encode(&digest[..16]))
}

impl Topic {
    pub fn new(site: &str, gateway: &str, kind: TopicKind) -> Result<Topic, TopicError> {
        validate_name(site).map_err(|err| TopicError::BadName { what: "site", err })?;
        validate_name(gateway).map_err(|err| TopicError::BadName {
            what: "gateway",
            err,
        })?;
        Ok(Topic {
            site: site.to_owned(),
            gateway: gateway.to_owned(),
            kind,
        })
    }

    /// Topic as published on the hub's broker.
    pub fn wire(&self) -> String {
        format!(
            "/tenants/{}/dcmms/v1/{}/{}/{}",
            tenant_id(&self.site, &self.gateway),
            self.site,
            self.gateway,
            self.kind.as_str()
        )
    }

    /// Parses a wire topic and checks that its tenant owns its site/gateway.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let not_ours = || TopicError::NotOurs(topic.chars().take(200).collect());
        let rest = topic.strip_prefix("/tenants/").ok_or_else(not_ours)?;
        let (tenant, rest) = rest.split_once('/').ok_or_else(not_ours)?;
        let rest = rest.strip_prefix("dcmms/v1/").ok_or_else(not_ours)?;
        let mut parts = rest.splitn(3, '/');
        let (Some(site), Some(gateway), Some(kind)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(not_ours());
        };
        let kind = TopicKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| TopicError::UnknownKind(kind.chars().take(64).collect()))?;
        let t = Topic::new(site, gateway, kind)?;
        if tenant != tenant_id(site, gateway) {
            return Err(TopicError::TenantMismatch {
                tenant: tenant.chars().take(64).collect(),
                site: t.site,
                gateway: t.gateway,
            });
        }
        Ok(t)
    }

    /// Filter matching every gateway's uplink topics (used by the hub).
    pub fn hub_filter() -> &'static str {
        "/tenants/+/dcmms/v1/#"
    }

    /// Filter for one gateway's downlink of `kind`.
    pub fn gateway_filter(
        site: &str,
        gateway: &str,
        kind: TopicKind,
    ) -> Result<String, TopicError> {
        Ok(Topic::new(site, gateway, kind)?.wire())
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dcmms/v1/{}/{}/{}",
            self.site,
            self.gateway,
            self.kind.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        for kind in TopicKind::ALL {
            let t = Topic::new("solar-1", "gw.a", kind).unwrap();
            assert_eq!(Topic::parse(&t.wire()).unwrap(), t);
        }
        let t = Topic::new("s", "g", TopicKind::WoUp).unwrap();
        assert!(t.wire().ends_with("/dcmms/v1/s/g/wo/up"));
        assert_eq!(t.to_string(), "dcmms/v1/s/g/wo/up");
    }

    #[test]
    fn tenant_must_own_the_gateway() {
        let a = tenant_id("site", "gw-a");
        let forged = format!("/tenants/{a}/dcmms/v1/site/gw-b/telemetry");
        assert!(matches!(
            Topic::parse(&forged),
            Err(TopicError::TenantMismatch { .. })
        ));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn junk_topics() {
        for t in [
            "",
            "dcmms/v1/s/g/telemetry",
            "/tenants/x",
            "/tenants/x/dcmms/v1/s",
            "/tenants/x/dcmms/v1/s/g/nope",
            "/tenants/x/dcmms/v1/s+/g/ack",
        ] {
            assert!(Topic::parse(t).is_err(), "{t}");
        }
    }
}
