//! Writes a batch of accepted messages in ONE database transaction and
//! says which acks to publish once it has committed.
//!
//! Exactly-once in the tables: a block's `(gateway, seq)` row and its
//! samples are inserted together, and a resent block finds its row and
//! inserts nothing. At-least-once on the wire: acks leave only after
//! commit, so a crash before that makes the gateway resend.

use super::plan::{plan_block, plan_catalog, AckBook, BlockPlan, Body, CatalogPlan, Inbound};
use crate::metrics::RejectReason;
use crate::store::{CatalogOutcome, GatewayRow, Store, StoreError};
use dcmms_shared::{Ack, Topic};
use std::collections::HashMap;

/// What a committed batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    /// One ack per gateway touched by a catalog or block.
    pub acks: Vec<(Topic, Ack)>,
    pub blocks_committed: u64,
    pub duplicates: u64,
    pub samples_inserted: u64,
    /// Blocks deferred until their catalog arrives.
    pub catalog_waits: u64,
    pub rejections: Vec<RejectReason>,
}

struct GatewayState {
    row: GatewayRow,
    catalog_len: u32,
    max_seq: i64,
    progress: bool,
}

/// Applies `batch` in order inside one transaction.
pub async fn apply_batch(
    store: &Store,
    batch: &[Inbound],
    now_ms: i64,
) -> Result<BatchOutcome, StoreError> {
    let mut tx = store.begin().await?;
    let mut out = BatchOutcome::default();
    let mut book = AckBook::default();
    let mut gateways: HashMap<(String, String), GatewayState> = HashMap::new();

    for msg in batch {
        let key = (msg.topic.site.clone(), msg.topic.gateway.clone());
        let gw = match gateways.get_mut(&key) {
            Some(g) => g,
            None => {
                let row = tx.touch_gateway(&key.0, &key.1, now_ms).await?;
                gateways.entry(key).or_insert(GatewayState {
                    row,
                    catalog_len: row.catalog_len,
                    max_seq: row.max_seq,
                    progress: false,
                })
            }
        };
        let topic = &msg.topic;
        match &msg.body {
            Body::Catalog(catalog) => {
                book.touch(topic);
                match plan_catalog(&topic.site, catalog, gw.catalog_len) {
                    CatalogPlan::Gap => {
                        tracing::info!(%topic, first_id = catalog.first_id, hub_len = gw.catalog_len, "catalog starts beyond what the hub holds");
                        out.rejections.push(RejectReason::CatalogGap);
                    }
                    CatalogPlan::Invalid(why) => {
                        tracing::warn!(%topic, %why, "catalog refused");
                        out.rejections.push(RejectReason::BadCatalog);
                    }
                    CatalogPlan::Upsert { entries, new_len } => {
                        match tx.upsert_points(gw.row.id, &entries).await? {
                            CatalogOutcome::Stored => {
                                gw.catalog_len = new_len;
                                gw.progress = true;
                            }
                            CatalogOutcome::NameConflict => {
                                tracing::error!(%topic, "catalog names a point another gateway already owns; not stored");
                                out.rejections.push(RejectReason::PointNameConflict);
                            }
                        }
                    }
                }
            }
            Body::Block(block) => {
                book.touch(topic);
                match plan_block(block, gw.catalog_len) {
                    BlockPlan::AwaitCatalog => {
                        tracing::debug!(%topic, seq = block.seq, need = block.catalog_len, have = gw.catalog_len, "block awaits its catalog");
                        out.catalog_waits += 1;
                    }
                    BlockPlan::Reject(why) => {
                        tracing::warn!(%topic, seq = block.seq, %why, "block rejected");
                        out.rejections.push(RejectReason::BadBlock);
                        // Out-of-range sequences cannot be stored; they are
                        // still acked as rejected so the gateway drops them.
                        if let Ok(seq) = i64::try_from(block.seq) {
                            if seq > 0 {
                                tx.insert_block(gw.row.id, seq, 0, now_ms, true).await?;
                                gw.max_seq = gw.max_seq.max(seq);
                                gw.progress = true;
                            }
                        }
                        book.rejected(topic, block.seq);
                    }
                    BlockPlan::Commit(samples) => {
                        // plan_block guarantees 1 <= seq <= i64::MAX.
                        let seq = block.seq as i64;
                        let fresh = tx
                            .insert_block(gw.row.id, seq, samples.len() as i64, now_ms, false)
                            .await?;
                        if fresh {
                            out.samples_inserted += tx.insert_samples(gw.row.id, &samples).await?;
                            out.blocks_committed += 1;
                        } else {
                            out.duplicates += 1;
                        }
                        gw.max_seq = gw.max_seq.max(seq);
                        gw.progress = true;
                        book.committed(topic, block.seq);
                    }
                }
            }
            Body::Status(status) => {
                let json = serde_json::to_string(status)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                tx.store_status(gw.row.id, &json, status.ts_ms).await?;
                // The gateway vouches that every sequence up to
                // `acked_through` is settled (acknowledged, or dropped by its
                // buffer): that carries the mark over gaps left by drops and
                // to the start of a new buffer's sequences.
                if let Ok(through) = i64::try_from(status.acked_through) {
                    if through > gw.row.acked_seq {
                        gw.row.acked_seq = through;
                        gw.progress = true;
                    }
                }
            }
        }
    }

    for ((site, gateway), gw) in &gateways {
        if gw.progress {
            tx.save_progress(gw.row.id, gw.row.acked_seq, gw.max_seq, gw.catalog_len)
                .await?;
        }
        book.catalog_len(site, gateway, gw.catalog_len);
    }
    tx.commit().await?;
    out.acks = book.into_acks();
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The same bodies run on SQLite and on a throwaway PostgreSQL cluster.
    use super::*;
    use crate::ingest::plan::{Body, Inbound};
    use crate::store::testing;
    use dcmms_shared::{
        encode_samples, BlockClass, GatewayStatus, PointCatalog, PointId, Quality, Sample,
        TelemetryBlock, TopicKind,
    };

    fn topic(gw: &str, kind: TopicKind) -> Topic {
        Topic::new("site", gw, kind).unwrap()
    }

    fn catalog(gw: &str, first_id: u32, names: &[&str]) -> Inbound {
        Inbound {
            topic: topic(gw, TopicKind::Catalog),
            body: Body::Catalog(PointCatalog {
                first_id,
                names: names.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    fn block(gw: &str, seq: u64, catalog_len: u32, samples: &[Sample]) -> Inbound {
        Inbound {
            topic: topic(gw, TopicKind::Telemetry),
            body: Body::Block(TelemetryBlock {
                seq,
                class: BlockClass::Telemetry,
                sample_count: samples.len() as u32,
                first_ts_ms: samples[0].ts_ms,
                last_ts_ms: samples[samples.len() - 1].ts_ms,
                catalog_len,
                samples: encode_samples(samples).unwrap(),
            }),
        }
    }

    fn samples(point: u32, from_ts: i64, n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample::good(PointId(point), from_ts + i as i64 * 1000, i as f64 / 10.0))
            .collect()
    }

    async fn count(store: &Store, sql: &'static str) -> i64 {
        crate::store::both!(store, Store, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
    }

    async fn dedupe_and_acks(store: Store) {
        let out = apply_batch(&store, &[catalog("a", 0, &["inv/p", "inv/q"])], 1)
            .await
            .unwrap();
        assert_eq!(out.acks.len(), 1);
        assert_eq!(out.acks[0].1.catalog_len, 2);

        let b1 = block("a", 1, 2, &samples(0, 1_000, 100));
        let b2 = block("a", 2, 2, &samples(1, 1_000, 50));
        let out = apply_batch(&store, &[b1.clone(), b2], 2).await.unwrap();
        assert_eq!(out.blocks_committed, 2);
        assert_eq!(out.samples_inserted, 150);
        assert_eq!(out.acks[0].0.kind, TopicKind::Ack);
        assert_eq!(out.acks[0].1.committed, vec![(1, 2)]);

        // Resent block: acked again, stored once.
        let out = apply_batch(&store, &[b1.clone(), b1], 3).await.unwrap();
        assert_eq!(out.duplicates, 2);
        assert_eq!(out.blocks_committed, 0);
        assert_eq!(out.acks[0].1.committed, vec![(1, 1)]);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM telemetry").await, 150);

        let gws = store.gateways().await.unwrap();
        assert_eq!((gws[0].acked_seq, gws[0].max_seq), (2, 2));

        // Out-of-order arrival: the settled mark waits for the gap.
        apply_batch(&store, &[block("a", 4, 2, &samples(0, 900_000, 1))], 4)
            .await
            .unwrap();
        assert_eq!(store.gateways().await.unwrap()[0].acked_seq, 2);
        apply_batch(&store, &[block("a", 3, 2, &samples(0, 800_000, 1))], 5)
            .await
            .unwrap();
        let g = &store.gateways().await.unwrap()[0];
        assert_eq!((g.acked_seq, g.max_seq), (4, 4));
    }

    async fn catalog_gating(store: Store) {
        // A block referencing 3 entries while the hub holds none.
        let b = block("g", 1, 3, &samples(2, 0, 5));
        let out = apply_batch(&store, std::slice::from_ref(&b), 1)
            .await
            .unwrap();
        assert_eq!(out.catalog_waits, 1);
        assert_eq!(
            out.acks[0].1,
            Ack {
                committed: vec![],
                rejected: vec![],
                catalog_len: 0
            }
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM blocks").await, 0);

        // A catalog with a gap is refused; the ack tells where to resume.
        let out = apply_batch(&store, &[catalog("g", 1, &["d/b"])], 2)
            .await
            .unwrap();
        assert_eq!(out.rejections, vec![RejectReason::CatalogGap]);
        assert_eq!(out.acks[0].1.catalog_len, 0);

        // Catalog then block in the same batch: the block sees the catalog.
        let out = apply_batch(&store, &[catalog("g", 0, &["d/a", "d/b", "d/c"]), b], 3)
            .await
            .unwrap();
        assert_eq!(out.blocks_committed, 1);
        assert_eq!(out.acks[0].1.committed, vec![(1, 1)]);
        assert_eq!(out.acks[0].1.catalog_len, 3);
        let p = store.find_point("site/d/c").await.unwrap().unwrap();
        assert_eq!(p.point_id, 2);
    }

    async fn rejected_blocks_and_conflicts(store: Store) {
        apply_batch(&store, &[catalog("a", 0, &["d/x"])], 1)
            .await
            .unwrap();
        let mut bad = block("a", 1, 1, &samples(0, 0, 3));
        if let Body::Block(b) = &mut bad.body {
            b.samples = vec![1, 2, 3, 4, 5];
        }
        let good = block("a", 2, 1, &samples(0, 0, 3));
        let out = apply_batch(&store, &[bad, good], 2).await.unwrap();
        assert_eq!(out.rejections, vec![RejectReason::BadBlock]);
        assert_eq!(out.acks[0].1.rejected, vec![(1, 1)]);
        assert_eq!(out.acks[0].1.committed, vec![(2, 2)]);
        // Rejected blocks count as settled.
        assert_eq!(store.gateways().await.unwrap()[0].acked_seq, 2);

        // Gateway b claims a point name gateway a owns: refused, and the
        // rest of the batch (a's block) still commits.
        let out = apply_batch(
            &store,
            &[
                catalog("b", 0, &["x/y", "d/x"]),
                block("a", 3, 1, &samples(0, 5, 1)),
            ],
            3,
        )
        .await
        .unwrap();
        assert_eq!(out.rejections, vec![RejectReason::PointNameConflict]);
        let ack_b = out.acks.iter().find(|(t, _)| t.gateway == "b").unwrap();
        assert_eq!(ack_b.1.catalog_len, 0);
        let ack_a = out.acks.iter().find(|(t, _)| t.gateway == "a").unwrap();
        assert_eq!(ack_a.1.committed, vec![(3, 3)]);
        assert_eq!(store.find_point("site/x/y").await.unwrap(), None);
        let a = store.find_point("site/d/x").await.unwrap().unwrap();
        let page = store.raw_samples(&a, 0, i64::MAX, 0, 100).await.unwrap();
        assert_eq!(page.samples.len(), 4);
    }

    async fn status_and_nan(store: Store) {
        let st = |ts_ms, online| Inbound {
            topic: topic("s", TopicKind::Status),
            body: Body::Status(GatewayStatus {
                ts_ms,
                online,
                buffer_blocks: 7,
                ..Default::default()
            }),
        };
        apply_batch(&store, &[st(20, true), st(10, false)], 1)
            .await
            .unwrap();
        let g = &store.gateways().await.unwrap()[0];
        let status = g.status.as_ref().unwrap();
        assert!(status.online, "older retained status must not win");
        assert_eq!(status.buffer_blocks, 7);
        assert_eq!(g.last_seen_ms, 1);

        apply_batch(&store, &[catalog("s", 0, &["d/v"])], 2)
            .await
            .unwrap();
        let s = vec![
            Sample::good(PointId(0), 1, 1.5),
            Sample::bad(PointId(0), 2),
            Sample {
                point: PointId(0),
                ts_ms: 3,
                value: f64::NAN,
                quality: Quality::Uncertain,
            },
        ];
        apply_batch(&store, &[block("s", 1, 1, &s)], 3)
            .await
            .unwrap();
        let p = store.find_point("site/d/v").await.unwrap().unwrap();
        let page = store.raw_samples(&p, 0, 10, 0, 10).await.unwrap();
        let got: Vec<_> = page
            .samples
            .iter()
            .map(|r| (r.ts_ms, r.value, r.quality))
            .collect();
        assert_eq!(got, vec![(1, Some(1.5), 0), (2, None, 2), (3, None, 1)]);
    }

    async fn paging_and_buckets(store: Store) {
        apply_batch(&store, &[catalog("p", 0, &["d/v"])], 1)
            .await
            .unwrap();
        // 10 samples at ts 0..9 s, plus 3 more sharing ts 5 s.
        let mut s = samples(0, 0, 10);
        for v in [7.0, 8.0, 9.0] {
            s.push(Sample::good(PointId(0), 5_000, v));
        }
        apply_batch(&store, &[block("p", 1, 1, &s)], 2)
            .await
            .unwrap();
        let p = store.find_point("site/d/v").await.unwrap().unwrap();
        let mut seen = Vec::new();
        let (mut from, mut skip) = (0, 0);
        loop {
            let page = store.raw_samples(&p, from, 100_000, skip, 4).await.unwrap();
            assert!(page.samples.len() <= 4);
            seen.extend(page.samples.iter().map(|r| (r.ts_ms, r.value)));
            match page.next {
                Some((f, k)) => (from, skip) = (f, k),
                None => break,
            }
        }
        assert_eq!(seen.len(), 13, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut vals: Vec<f64> = seen.iter().filter_map(|(_, v)| *v).collect();
        vals.sort_by(f64::total_cmp);
        vals.dedup();
        assert_eq!(vals.len(), 13, "no sample lost or repeated across pages");

        let b = store.buckets(&p, 0, 10_000, 5_000).await.unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].ts_ms, b[0].count), (0, 5));
        assert_eq!((b[0].min, b[0].max), (Some(0.0), Some(0.4)));
        assert_eq!((b[1].ts_ms, b[1].count), (5_000, 8));
        assert_eq!(b[1].max, Some(9.0));
        let avg = b[0].avg.unwrap();
        assert!((avg - 0.2).abs() < 1e-9, "{avg}");
    }

    async fn status_carries_the_settled_mark(store: Store) {
        // A new gateway buffer starts its sequences high; its status says
        // everything before is settled, so the mark follows its blocks.
        apply_batch(&store, &[catalog("n", 0, &["d/x"])], 1)
            .await
            .unwrap();
        let status = Inbound {
            topic: topic("n", TopicKind::Status),
            body: Body::Status(GatewayStatus {
                ts_ms: 5,
                online: true,
                acked_through: 1_000_000,
                next_seq: 1_000_001,
                ..Default::default()
            }),
        };
        apply_batch(&store, &[status], 2).await.unwrap();
        assert_eq!(store.gateways().await.unwrap()[0].acked_seq, 1_000_000);
        let b = block("n", 1_000_001, 1, &samples(0, 0, 2));
        apply_batch(&store, &[b], 3).await.unwrap();
        let g = &store.gateways().await.unwrap()[0];
        assert_eq!((g.acked_seq, g.max_seq), (1_000_001, 1_000_001));
    }

    macro_rules! on_both {
        ($name:ident) => {
            mod $name {
                use super::*;
                #[tokio::test]
                async fn sqlite() {
                    let (store, _dir) = testing::sqlite().await;
                    super::$name(store).await;
                }
                #[tokio::test]
                async fn postgres() {
                    let (store, _pg) = testing::postgres().await;
                    super::$name(store).await;
                }
            }
        };
    }

    on_both!(dedupe_and_acks);
    on_both!(catalog_gating);
    on_both!(rejected_blocks_and_conflicts);
    on_both!(status_and_nan);
    on_both!(paging_and_buckets);
    on_both!(status_carries_the_settled_mark);
}
