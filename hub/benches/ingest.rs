//! Ingest throughput of the database path (`apply_batch`), SQLite and
//! PostgreSQL, one message per transaction (baseline) against batches.
//!
//! `cargo bench -p dcmms-hub --bench ingest` prints samples/s and the
//! ratio of each batch size to the one-message baseline of the same run.

use dcmms_hub::config::DatabaseLocation;
use dcmms_hub::ingest::{apply_batch, Body, Inbound};
use dcmms_hub::Store;
use dcmms_shared::{
    encode_samples, BlockClass, PointCatalog, PointId, Sample, TelemetryBlock, Topic, TopicKind,
};
use std::time::Instant;

const POINTS: u32 = 500;
const SAMPLES_PER_BLOCK: usize = 1000;
const BLOCKS: u64 = 400;

fn catalog() -> Inbound {
    Inbound {
        topic: Topic::new("bench", "gw", TopicKind::Catalog).unwrap(),
        body: Body::Catalog(PointCatalog {
            first_id: 0,
            names: (0..POINTS)
                .map(|i| format!("dev{}/p{}", i / 50, i % 50))
                .collect(),
        }),
    }
}

fn block(seq: u64) -> Inbound {
    let t0 = 1_767_225_600_000 + seq as i64 * 5_000;
    let samples: Vec<Sample> = (0..SAMPLES_PER_BLOCK)
        .map(|i| {
            Sample::good(
                PointId(i as u32 % POINTS),
                t0 + (i as i64 / POINTS as i64) * 1000,
                (i % 977) as f64 / 10.0,
            )
        })
        .collect();
    Inbound {
        topic: Topic::new("bench", "gw", TopicKind::Telemetry).unwrap(),
        body: Body::Block(TelemetryBlock {
            seq,
            class: BlockClass::Telemetry,
            sample_count: samples.len() as u32,
            first_ts_ms: t0,
            last_ts_ms: t0 + 1000,
            catalog_len: POINTS,
            samples: encode_samples(&samples).unwrap(),
        }),
    }
}

async fn run(store: &Store, batch: usize) -> f64 {
    apply_batch(store, &[catalog()], 0).await.unwrap();
    let blocks: Vec<Inbound> = (1..=BLOCKS).map(block).collect();
    let started = Instant::now();
    for chunk in blocks.chunks(batch) {
        let out = apply_batch(store, chunk, 1).await.unwrap();
        assert_eq!(out.blocks_committed as usize, chunk.len());
    }
    let secs = started.elapsed().as_secs_f64();
    (BLOCKS as usize * SAMPLES_PER_BLOCK) as f64 / secs
}

async fn bench(name: &str, open: impl AsyncFn() -> (Store, Box<dyn std::any::Any>)) {
    let mut baseline = None;
    for batch in [1usize, 8, 32] {
        let (store, guard) = open().await;
        let rate = run(&store, batch).await;
        store.close().await;
        drop(guard);
        let base = *baseline.get_or_insert(rate);
        println!(
            "{name:8} batch {batch:3} messages: {:>10.0} samples/s ({:.2}x one-message baseline)",
            rate,
            rate / base
        );
    }
}

#[tokio::main]
async fn main() {
    println!("{BLOCKS} blocks x {SAMPLES_PER_BLOCK} samples, {POINTS} points");
    bench("sqlite", async || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseLocation::Sqlite(dir.path().join("b.db")), 4)
            .await
            .unwrap();
        (store, Box::new(dir) as Box<dyn std::any::Any>)
    })
    .await;
    bench("postgres", async || {
        let pg = tokio::task::spawn_blocking(dcmms_e2e::pg::PgCluster::start)
            .await
            .unwrap()
            .unwrap();
        let store = Store::open(&DatabaseLocation::Postgres(pg.url().to_owned()), 4)
            .await
            .unwrap();
        (store, Box::new(pg) as Box<dyn std::any::Any>)
    })
    .await;
}
