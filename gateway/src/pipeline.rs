//! The pipeline: samples from every driver are gathered and committed to the
//! ring buffer as one block per commit interval (or earlier when a block is
//! full). It must never drop a sample it was handed: on shutdown it commits
//! what it holds before returning.

use crate::metrics as m;
use crate::ring::RingBuffer;
use dcmms_protocols_core::PointResolver;
use dcmms_shared::{BlockClass, PointId, Sample};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Assigns point ids: names already in the ring buffer's catalog keep their
/// id; new names get the next ids in order, to be persisted with
/// [`Interner::persist`].
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<String, PointId>,
    next: u32,
    new_names: Vec<String>,
}

impl Interner {
    pub fn from_catalog(catalog: Vec<String>) -> Interner {
        let next = catalog.len() as u32;
        let ids = catalog
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, PointId(i as u32)))
            .collect();
        Interner {
            ids,
            next,
            new_names: Vec::new(),
        }
    }

    /// Writes newly seen names to the ring buffer's catalog and checks that it
    /// assigned the ids handed out.
    pub fn persist(&mut self, ring: &RingBuffer) -> anyhow::Result<()> {
        if self.new_names.is_empty() {
            return Ok(());
        }
        let names = std::mem::take(&mut self.new_names);
        let ids = ring.intern(&names)?;
        for (name, id) in names.iter().zip(ids) {
            if self.ids.get(name) != Some(&id) {
                anyhow::bail!("point catalog changed under the gateway while interning {name}");
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl PointResolver for Interner {
    fn resolve(&mut self, name: &str) -> PointId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = PointId(self.next);
        self.next += 1;
        self.ids.insert(name.to_owned(), id);
        self.new_names.push(name.to_owned());
        id
    }
}

/// Pipeline tuning.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub commit_interval: Duration,
    pub max_block_samples: usize,
    /// Beats after every commit tick; the service watchdog reads it.
    pub heartbeat: Arc<Heartbeat>,
}

/// Proof of life of the commit loop. A loop stuck on a disk that stopped
/// answering stops beating, so the service manager's watchdog restarts the
/// daemon instead of letting it look healthy while it buffers nothing.
#[derive(Debug)]
pub struct Heartbeat {
    base: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            base: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Time since the last beat (since creation before the first one).
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

/// Runs until `rx` is closed, that is until every driver has stopped and
/// dropped its sender; then commits what is pending and returns. Each committed
/// block's sequence is published on `committed`.
pub async fn run(
    ring: Arc<RingBuffer>,
    mut rx: mpsc::Receiver<Vec<Sample>>,
    committed: watch::Sender<u64>,
    cfg: PipelineConfig,
) -> anyhow::Result<()> {
    let mut pending: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval(cfg.commit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expiry = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    m::samples_received(batch.len());
                    pending.extend(batch);
                    if pending.len() >= cfg.max_block_samples {
                        commit(&ring, &mut pending, cfg.max_block_samples, &committed).await?;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                commit(&ring, &mut pending, cfg.max_block_samples, &committed).await?;
                cfg.heartbeat.beat();
            }
            _ = expiry.tick() => {
                let r = ring.clone();
                let now = now_ms();
                let report = tokio::task::spawn_blocking(move || r.trim_expired(now)).await??;
                if report.blocks > 0 {
                    tracing::warn!(blocks = report.blocks, samples = report.samples, "dropped blocks older than the buffer's max age");
                }
            }
        }
    }
    commit(&ring, &mut pending, cfg.max_block_samples, &committed).await?;
    tracing::info!("pipeline flushed and stopped");
    Ok(())
}

async fn commit(
    ring: &Arc<RingBuffer>,
    pending: &mut Vec<Sample>,
    max_block_samples: usize,
    committed: &watch::Sender<u64>,
) -> anyhow::Result<()> {
    while !pending.is_empty() {
        let take = pending.len().min(max_block_samples);
        let block: Vec<Sample> = pending.drain(..take).collect();
        let r = ring.clone();
        let now = now_ms();
        let started = std::time::Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            r.append_block(BlockClass::Telemetry, &block, now)
                .map(|o| (o, block.len()))
        })
        .await??;
        let (outcome, n) = outcome;
        m::block_committed(n, outcome.bytes, started.elapsed());
        if outcome.dropped.blocks > 0 {
            m::blocks_dropped(outcome.dropped.blocks, outcome.dropped.samples);
            tracing::warn!(
                blocks = outcome.dropped.blocks,
                samples = outcome.dropped.samples,
                "buffer full: dropped the oldest blocks"
            );
        }
        committed.send_replace(outcome.seq);
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_keeps_catalog_ids_and_appends_new() {
        let mut i = Interner::from_catalog(vec!["a/x".into(), "a/y".into()]);
        assert_eq!(i.resolve("a/y"), PointId(1));
        assert_eq!(i.resolve("b/z"), PointId(2));
        assert_eq!(i.resolve("b/z"), PointId(2));
        assert_eq!(i.resolve("a/x"), PointId(0));
        assert_eq!(i.new_names, vec!["b/z".to_string()]);
        assert_eq!(i.len(), 3);
    }
}
