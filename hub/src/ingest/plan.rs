//! Sans-IO decisions of the ingest path: what an inbound MQTT message is,
//! whether a catalog or block can be stored given what the hub holds, and
//! which acks to send. Pure functions of bytes and state; the database and
//! the broker are driven by [`super::apply`] and [`super::worker`].

use crate::metrics::RejectReason;
use dcmms_shared::wire::to_ranges;
use dcmms_shared::{
    decode_samples, validate_name, Ack, GatewayStatus, Message, PointCatalog, Sample,
    TelemetryBlock, Topic, TopicError, TopicKind,
};
use std::collections::BTreeMap;

/// A message the hub will act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub topic: Topic,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Catalog(PointCatalog),
    Block(TelemetryBlock),
    Status(GatewayStatus),
}

/// What to do with one MQTT message.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    Accept(Inbound),
    /// Not for the hub to store: its own acks echoed back by the broker,
    /// other downlink kinds, a retained status being cleared.
    Ignore,
    /// Refused and counted; the detail is for the log only.
    Refuse {
        reason: RejectReason,
        kind: Option<TopicKind>,
        detail: String,
    },
}

/// Parses and checks an MQTT message received on [`Topic::hub_filter`].
pub fn classify(topic: &str, payload: &[u8]) -> Classified {
    let refuse = |reason, kind, detail: String| Classified::Refuse {
        reason,
        kind,
        detail,
    };
    let parsed = match Topic::parse(topic) {
        Ok(t) => t,
        Err(e @ TopicError::TenantMismatch { .. }) => {
            return refuse(RejectReason::TenantMismatch, None, e.to_string())
        }
        Err(e) => return refuse(RejectReason::BadTopic, None, e.to_string()),
    };
    let kind = parsed.kind;
    match kind {
        TopicKind::Ack | TopicKind::WoDown | TopicKind::Cmd => return Classified::Ignore,
        TopicKind::Alarms | TopicKind::WoUp | TopicKind::CmdResult => {
            return refuse(
                RejectReason::UnsupportedKind,
                Some(kind),
                format!("no handler for {}", kind.as_str()),
            )
        }
        TopicKind::Telemetry | TopicKind::Catalog | TopicKind::Status => {}
    }
    if payload.is_empty() && kind == TopicKind::Status {
        return Classified::Ignore;
    }
    let message = match Message::decode(payload) {
        Ok(m) => m,
        Err(e) => return refuse(RejectReason::BadPayload, Some(kind), e.to_string()),
    };
    let body = match (kind, message) {
        (TopicKind::Telemetry, Message::Telemetry(b)) => Body::Block(b),
        (TopicKind::Catalog, Message::Catalog(c)) => Body::Catalog(c),
        (TopicKind::Status, Message::Status(s)) => Body::Status(s),
        (_, other) => {
            return refuse(
                RejectReason::KindMismatch,
                Some(kind),
                format!(
                    "{} message on a {} topic",
                    message_name(&other),
                    kind.as_str()
                ),
            )
        }
    };
    Classified::Accept(Inbound {
        topic: parsed,
        body,
    })
}

fn message_name(m: &Message) -> &'static str {
    match m {
        Message::Telemetry(_) => "telemetry",
        Message::Catalog(_) => "catalog",
        Message::Ack(_) => "ack",
        Message::Status(_) => "status",
    }
}

/// Decision for a telemetry block.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockPlan {
    /// The block references catalog entries the hub lacks: do not commit;
    /// the ack's `catalog_len` makes the gateway resend its catalog.
    AwaitCatalog,
    /// Never storable; acked as rejected so the gateway drops it.
    Reject(String),
    Commit(Vec<Sample>),
}

/// Highest sequence number the database can hold (BIGINT).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Decides what to do with `block` when the hub holds `hub_catalog_len`
/// catalog entries for its gateway.
pub fn plan_block(block: &TelemetryBlock, hub_catalog_len: u32) -> BlockPlan {
    if block.seq == 0 || block.seq > MAX_SEQ {
        return BlockPlan::Reject(format!("sequence {} is out of range", block.seq));
    }
    if block.catalog_len > hub_catalog_len {
        return BlockPlan::AwaitCatalog;
    }
    let samples = match decode_samples(&block.samples) {
        Ok(s) => s,
        Err(e) => return BlockPlan::Reject(format!("samples do not decode: {e}")),
    };
    if samples.len() != block.sample_count as usize {
        return BlockPlan::Reject(format!(
            "header says {} samples, payload holds {}",
            block.sample_count,
            samples.len()
        ));
    }
    if let Some(s) = samples.iter().find(|s| s.point.0 >= block.catalog_len) {
        return BlockPlan::Reject(format!(
            "point id {} is beyond the block's catalog length {}",
            s.point.0, block.catalog_len
        ));
    }
    BlockPlan::Commit(samples)
}

/// Decision for a point catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogPlan {
    /// Starts beyond the entries the hub holds; the gateway must resend
    /// from the hub's length.
    Gap,
    Invalid(String),
    /// Upsert `(point_id, "site/device/point")` and hold `new_len` entries.
    Upsert {
        entries: Vec<(i32, String)>,
        new_len: u32,
    },
}

/// Decides what to do with a catalog for a gateway of `site` when the hub
/// holds `hub_len` entries.
pub fn plan_catalog(site: &str, catalog: &PointCatalog, hub_len: u32) -> CatalogPlan {
    let n = catalog.names.len() as u64;
    let end = catalog.first_id as u64 + n;
    if end > i32::MAX as u64 {
        return CatalogPlan::Invalid(format!("point ids up to {end} exceed the supported range"));
    }
    let mut entries = Vec::with_capacity(catalog.names.len());
    for (i, name) in catalog.names.iter().enumerate() {
        let Some((device, point)) = name.split_once('/') else {
            return CatalogPlan::Invalid(format!("entry {i} is not device/point"));
        };
        if let Err(e) = validate_name(device).and_then(|_| validate_name(point)) {
            return CatalogPlan::Invalid(format!("entry {i}: {e}"));
        }
        entries.push((
            (catalog.first_id as u64 + i as u64) as i32,
            format!("{site}/{name}"),
        ));
    }
    if catalog.first_id > hub_len {
        return CatalogPlan::Gap;
    }
    CatalogPlan::Upsert {
        entries,
        new_len: hub_len.max(end as u32),
    }
}

/// Collects, per gateway, what one batch settled; becomes one [`Ack`] per
/// gateway after commit.
#[derive(Debug, Default)]
pub struct AckBook {
    gateways: BTreeMap<(String, String), Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    committed: Vec<u64>,
    rejected: Vec<u64>,
    catalog_len: u32,
}

impl AckBook {
    fn entry(&mut self, topic: &Topic) -> &mut Pending {
        self.gateways
            .entry((topic.site.clone(), topic.gateway.clone()))
            .or_default()
    }

    /// The gateway must hear back (its catalog or block was handled) even
    /// if nothing was committed.
    pub fn touch(&mut self, topic: &Topic) {
        self.entry(topic);
    }

    pub fn committed(&mut self, topic: &Topic, seq: u64) {
        self.entry(topic).committed.push(seq);
    }

    pub fn rejected(&mut self, topic: &Topic, seq: u64) {
        self.entry(topic).rejected.push(seq);
    }

    /// Sets the catalog length every ack for this gateway will carry.
    pub fn catalog_len(&mut self, site: &str, gateway: &str, len: u32) {
        if let Some(p) = self
            .gateways
            .get_mut(&(site.to_owned(), gateway.to_owned()))
        {
            p.catalog_len = len;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }

    /// One ack per gateway, addressed to its ack topic.
    pub fn into_acks(self) -> Vec<(Topic, Ack)> {
        self.gateways
            .into_iter()
            .map(|((site, gateway), p)| {
                (
                    Topic {
                        site,
                        gateway,
                        kind: TopicKind::Ack,
                    },
                    Ack {
                        committed: to_ranges(p.committed),
                        rejected: to_ranges(p.rejected),
                        catalog_len: p.catalog_len,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmms_shared::{encode_samples, BlockClass, PointId};

    pub(crate) fn block(seq: u64, catalog_len: u32, samples: &[Sample]) -> TelemetryBlock {
        TelemetryBlock {
            seq,
            class: BlockClass::Telemetry,
            sample_count: samples.len() as u32,
            first_ts_ms: samples.first().map_or(0, |s| s.ts_ms),
            last_ts_ms: samples.last().map_or(0, |s| s.ts_ms),
            catalog_len,
            samples: encode_samples(samples).unwrap(),
        }
    }

    fn topic(kind: TopicKind) -> String {
        Topic::new("site", "gw", kind).unwrap().wire()
    }

    #[test]
    fn classify_accepts_matching_kinds() {
        let cat = PointCatalog {
            first_id: 0,
            names: vec!["inv1/p".into()],
        };
        let got = classify(
            &topic(TopicKind::Catalog),
            &Message::Catalog(cat.clone()).encode(),
        );
        assert_eq!(
            got,
            Classified::Accept(Inbound {
                topic: Topic::new("site", "gw", TopicKind::Catalog).unwrap(),
                body: Body::Catalog(cat)
            })
        );
    }

    #[test]
    fn classify_refuses_with_reasons() {
        let reason = |t: &str, p: &[u8]| match classify(t, p) {
            Classified::Refuse { reason, .. } => Some(reason),
            _ => None,
        };
        let status = Message::Status(GatewayStatus::default()).encode();
        assert_eq!(reason("junk", &status), Some(RejectReason::BadTopic));
        let forged = format!(
            "/tenants/{}/dcmms/v1/site/other/telemetry",
            dcmms_shared::topic::tenant_id("site", "gw")
        );
        assert_eq!(reason(&forged, &status), Some(RejectReason::TenantMismatch));
        assert_eq!(
            reason(&topic(TopicKind::Telemetry), b"garbage!"),
            Some(RejectReason::BadPayload)
        );
        let mut truncated =
            Message::Telemetry(block(1, 1, &[Sample::good(PointId(0), 5, 1.0)])).encode();
        truncated.truncate(truncated.len() - 3);
        assert_eq!(
            reason(&topic(TopicKind::Telemetry), &truncated),
            Some(RejectReason::BadPayload)
        );
        assert_eq!(
            reason(&topic(TopicKind::Telemetry), &status),
            Some(RejectReason::KindMismatch)
        );
        assert_eq!(
            reason(&topic(TopicKind::Alarms), &status),
            Some(RejectReason::UnsupportedKind)
        );
    }

    #[test]
    fn classify_ignores_downlink_and_retained_clears() {
        let ack = Message::Ack(Ack::default()).encode();
        assert_eq!(classify(&topic(TopicKind::Ack), &ack), Classified::Ignore);
        assert_eq!(classify(&topic(TopicKind::Cmd), b"x"), Classified::Ignore);
        assert_eq!(classify(&topic(TopicKind::Status), b""), Classified::Ignore);
    }

    #[test]
    fn blocks_wait_for_their_catalog() {
        let s = [Sample::good(PointId(4), 10, 1.5)];
        assert_eq!(plan_block(&block(1, 5, &s), 4), BlockPlan::AwaitCatalog);
        assert_eq!(
            plan_block(&block(1, 5, &s), 5),
            BlockPlan::Commit(s.to_vec())
        );
        assert_eq!(
            plan_block(&block(1, 5, &s), 9),
            BlockPlan::Commit(s.to_vec())
        );
    }

    #[test]
    fn inconsistent_blocks_are_rejected() {
        let s = [Sample::good(PointId(7), 10, 1.5)];
        // Point id beyond the block's own catalog length.
        assert!(matches!(
            plan_block(&block(1, 5, &s), 9),
            BlockPlan::Reject(_)
        ));
        let mut b = block(2, 8, &s);
        b.sample_count = 3;
        assert!(matches!(plan_block(&b, 9), BlockPlan::Reject(_)));
        let mut b = block(3, 8, &s);
        b.samples = vec![0xde, 0xad, 0xbe, 0xef];
        assert!(matches!(plan_block(&b, 9), BlockPlan::Reject(_)));
        assert!(matches!(
            plan_block(&block(0, 8, &s), 9),
            BlockPlan::Reject(_)
        ));
        assert!(matches!(
            plan_block(&block(u64::MAX, 8, &s), 9),
            BlockPlan::Reject(_)
        ));
    }

    #[test]
    fn catalogs_extend_contiguously() {
        let cat = |first_id, names: &[&str]| PointCatalog {
            first_id,
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            plan_catalog("s", &cat(0, &["d/a", "d/b"]), 0),
            CatalogPlan::Upsert {
                entries: vec![(0, "s/d/a".into()), (1, "s/d/b".into())],
                new_len: 2
            }
        );
        // Overlapping resend: accepted, length grows only past the end.
        assert_eq!(
            plan_catalog("s", &cat(1, &["d/b", "d/c"]), 2),
            CatalogPlan::Upsert {
                entries: vec![(1, "s/d/b".into()), (2, "s/d/c".into())],
                new_len: 3
            }
        );
        assert!(matches!(
            plan_catalog("s", &cat(0, &["d/a"]), 5),
            CatalogPlan::Upsert { new_len: 5, .. }
        ));
        assert_eq!(plan_catalog("s", &cat(3, &["d/x"]), 2), CatalogPlan::Gap);
        for bad in ["nodevice", "d/p/x", "d/", "d/p q"] {
            assert!(
                matches!(
                    plan_catalog("s", &cat(0, &[bad]), 0),
                    CatalogPlan::Invalid(_)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            plan_catalog("s", &cat(u32::MAX, &["d/a"]), 0),
            CatalogPlan::Invalid(_)
        ));
    }

    #[test]
    fn ack_book_groups_per_gateway() {
        let a = Topic::new("s", "a", TopicKind::Telemetry).unwrap();
        let b = Topic::new("s", "b", TopicKind::Catalog).unwrap();
        let mut book = AckBook::default();
        for seq in [3, 1, 2, 7] {
            book.committed(&a, seq);
        }
        book.rejected(&a, 5);
        book.touch(&b);
        book.catalog_len("s", "a", 9);
        book.catalog_len("s", "b", 4);
        let acks = book.into_acks();
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0].0.kind, TopicKind::Ack);
        assert_eq!(acks[0].0.gateway, "a");
        assert_eq!(
            acks[0].1,
            Ack {
                committed: vec![(1, 3), (7, 7)],
                rejected: vec![(5, 5)],
                catalog_len: 9
            }
        );
        assert_eq!(
            acks[1].1,
            Ack {
                committed: vec![],
                rejected: vec![],
                catalog_len: 4
            }
        );
    }
}
