//! Database baselines for the drain benchmark, measured in the same run on
//! a scratch database of the same engine (a separate SQLite file, or a
//! separate database in the same PostgreSQL cluster):
//!
//! - **store insert**: the hub's own store layer (`IngestTx::insert_samples`)
//!   writing the backlog's rows, in the order a decoded block yields them
//!   (grouped per point). This is the database's raw ingest rate with the
//!   hub's schema and statements: no decoding, no network, no bookkeeping.
//! - **hub ingest**: the hub's ingest path without the network
//!   (`ingest::apply_batch`): decoding the columnar block, the catalog
//!   gate, the block row and the progress mark.
//!
//! Both commit `batch_blocks` blocks per transaction. The hub batches what
//! is queued, and one gateway has at most `uplink.max_in_flight` blocks
//! (default 16) un-acknowledged, so that is what a draining hub can batch
//! at best. Rows are generated and encoded before the clock starts.

use super::profile::Backlog;
use super::setup::SITE;
use anyhow::{bail, Context};
use dcmms_hub::config::DatabaseLocation;
use dcmms_hub::ingest::{apply_batch, Body, Inbound};
use dcmms_hub::Store;
use dcmms_shared::{
    decode_samples, encode_samples, BlockClass, PointCatalog, Sample, TelemetryBlock, Topic,
    TopicKind,
};
use std::time::{Duration, Instant};

/// Writes every sample of `backlog` through the store layer; returns the
/// time spent in the database.
pub async fn store_insert(
    location: &DatabaseLocation,
    backlog: &Backlog,
    batch_blocks: usize,
) -> anyhow::Result<Duration> {
    let store = Store::open(location, 2)
        .await
        .context("opening the baseline database")?;
    let mut tx = store.begin().await?;
    let gw = tx
        .touch_gateway(SITE, "baseline-rows", super::probe::now_ms())
        .await?;
    let entries: Vec<(i32, String)> = backlog
        .names()
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i as i32, format!("{SITE}/{n}")))
        .collect();
    tx.upsert_points(gw.id, &entries).await?;
    tx.commit().await?;

    // The rows in the order the hub inserts them: as a block decodes,
    // grouped per point (index inserts are far more local that way).
    let blocks = (0..backlog.blocks())
        .map(|b| Ok(decode_samples(&encode_samples(&backlog.block(b))?)?))
        .collect::<anyhow::Result<Vec<Vec<Sample>>>>()?;
    let started = Instant::now();
    let mut written = 0;
    for batch in blocks.chunks(batch_blocks.max(1)) {
        let mut tx = store.begin().await?;
        for block in batch {
            written += tx.insert_samples(gw.id, block).await?;
        }
        tx.commit().await?;
    }
    let took = started.elapsed();
    store.close().await;
    if written != backlog.samples {
        bail!(
            "store insert wrote {written} rows, {} expected",
            backlog.samples
        );
    }
    Ok(took)
}

/// Feeds the backlog as wire blocks through the hub's ingest path; returns
/// the time spent.
pub async fn hub_ingest(
    location: &DatabaseLocation,
    backlog: &Backlog,
    batch_blocks: usize,
) -> anyhow::Result<Duration> {
    const GW: &str = "baseline-ingest";
    let store = Store::open(location, 2)
        .await
        .context("opening the baseline database")?;
    let topic = |kind| Topic::new(SITE, GW, kind).context("topic");
    let catalog = Inbound {
        topic: topic(TopicKind::Catalog)?,
        body: Body::Catalog(PointCatalog {
            first_id: 0,
            names: backlog.names(),
        }),
    };
    apply_batch(&store, &[catalog], super::probe::now_ms()).await?;

    let telemetry = topic(TopicKind::Telemetry)?;
    let mut inbound = Vec::with_capacity(backlog.blocks() as usize);
    for b in 0..backlog.blocks() {
        let samples = backlog.block(b);
        let (first_ts_ms, last_ts_ms) = samples.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
            (lo.min(s.ts_ms), hi.max(s.ts_ms))
        });
        inbound.push(Inbound {
            topic: telemetry.clone(),
            body: Body::Block(TelemetryBlock {
                seq: b + 1,
                class: BlockClass::Telemetry,
                sample_count: samples.len() as u32,
                first_ts_ms,
                last_ts_ms,
                catalog_len: backlog.points,
                samples: encode_samples(&samples)?,
            }),
        });
    }
    let started = Instant::now();
    let mut inserted = 0;
    for batch in inbound.chunks(batch_blocks.max(1)) {
        let out = apply_batch(&store, batch, super::probe::now_ms()).await?;
        inserted += out.samples_inserted;
    }
    let took = started.elapsed();
    store.close().await;
    if inserted != backlog.samples {
        bail!(
            "hub ingest inserted {inserted} samples, {} expected",
            backlog.samples
        );
    }
    Ok(took)
}
