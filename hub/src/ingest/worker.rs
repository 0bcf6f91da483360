//! The ingest tasks: a reader that drains the hub's in-process broker link
//! into a bounded queue, and a writer that commits queued messages in
//! batches and then publishes the acks.
//!
//! Back-pressure: when the writer falls behind, the queue fills, the reader
//! stops reading, and the broker keeps the excess in its bounded log. On
//! shutdown the writer finishes the transaction in flight and stops; queued
//! messages were never acked, so gateways resend them.

use super::apply::{apply_batch, BatchOutcome};
use super::plan::{classify, Classified, Inbound};
use crate::metrics::{HubMetrics, LogLimiter};
use crate::store::{Store, StoreError};
use dcmms_shared::Message;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Attempts per transaction when the database reports a transient error.
const ATTEMPTS: u32 = 3;

/// Starts the reader and writer on `tracker`.
pub fn spawn(
    tracker: &TaskTracker,
    token: CancellationToken,
    link_tx: LinkTx,
    link_rx: LinkRx,
    store: Store,
    metrics: HubMetrics,
    config: &crate::config::IngestConfig,
) {
    let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity);
    tracker.spawn(read_link(link_rx, queue_tx, metrics.clone(), token.clone()));
    tracker.spawn(write_batches(
        queue_rx,
        link_tx,
        store,
        metrics,
        config.max_batch_messages,
        token,
    ));
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn read_link(
    mut rx: LinkRx,
    queue: mpsc::Sender<Inbound>,
    metrics: HubMetrics,
    token: CancellationToken,
) {
    let mut limiter = LogLimiter::default();
    loop {
        let notification = tokio::select! {
            _ = token.cancelled() => break,
            n = rx.next() => n,
        };
        match notification {
            Ok(Some(Notification::Forward(forward))) => {
                let publish = forward.publish;
                let topic = String::from_utf8_lossy(&publish.topic);
                match classify(&topic, &publish.payload) {
                    Classified::Accept(inbound) => {
                        metrics.received(inbound.topic.kind);
                        tokio::select! {
                            _ = token.cancelled() => break,
                            sent = queue.send(inbound) => if sent.is_err() { break },
                        }
                    }
                    Classified::Ignore => {}
                    Classified::Refuse {
                        reason,
                        kind,
                        detail,
                    } => {
                        if let Some(kind) = kind {
                            metrics.received(kind);
                        }
                        metrics.rejected(reason);
                        if let Some(suppressed) = limiter.allow() {
                            let topic: String = topic.chars().take(200).collect();
                            tracing::warn!(
                                topic = ?topic,
                                reason = reason.as_str(),
                                %detail,
                                suppressed,
                                "refused an MQTT message"
                            );
                        }
                    }
                }
            }
            // The router parks a link whose buffer is full until it says it
            // is ready again.
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = rx.wake().await {
                    tracing::error!(error = %e, "broker link closed");
                    token.cancel();
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !token.is_cancelled() {
                    tracing::error!(error = %e, "broker link closed; stopping the hub");
                    token.cancel();
                }
                break;
            }
        }
    }
    tracing::debug!("ingest reader stopped");
}

async fn write_batches(
    mut queue: mpsc::Receiver<Inbound>,
    mut link_tx: LinkTx,
    store: Store,
    metrics: HubMetrics,
    max_batch: usize,
    token: CancellationToken,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            m = queue.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        // Not raced against cancellation: the transaction in flight
        // finishes and its acks go out before the hub stops.
        let started = Instant::now();
        let outcomes = commit(&store, &batch, &metrics).await;
        metrics.batch(started.elapsed().as_secs_f64(), batch.len());
        for out in outcomes {
            record(&metrics, &out);
            publish_acks(&mut link_tx, &metrics, out);
        }
        batch.clear();
    }
    let left = queue.len();
    if left > 0 {
        tracing::info!(
            unacked = left,
            "ingest stopped with messages queued; gateways will resend them"
        );
    }
    tracing::debug!("ingest writer stopped");
}

/// Commits `batch`; if it fails for good and holds several messages, each
/// is retried alone so that one poisonous message costs only itself.
async fn commit(store: &Store, batch: &[Inbound], metrics: &HubMetrics) -> Vec<BatchOutcome> {
    match attempt(store, batch, metrics).await {
        Ok(out) => vec![out],
        Err(e) if batch.len() > 1 => {
            tracing::warn!(error = %e, messages = batch.len(), "batch failed; retrying its messages one by one");
            let mut outs = Vec::new();
            for m in batch {
                match attempt(store, std::slice::from_ref(m), metrics).await {
                    Ok(out) => outs.push(out),
                    Err(e) => {
                        tracing::error!(error = %e, topic = %m.topic, "message not stored; the gateway will resend it")
                    }
                }
            }
            outs
        }
        Err(e) => {
            tracing::error!(error = %e, "message not stored; the gateway will resend it");
            Vec::new()
        }
    }
}

async fn attempt(
    store: &Store,
    batch: &[Inbound],
    metrics: &HubMetrics,
) -> Result<BatchOutcome, StoreError> {
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        tries += 1;
        match apply_batch(store, batch, now_ms()).await {
            Ok(out) => return Ok(out),
            Err(e) => {
                metrics.db_error();
                if !e.is_transient() || tries >= ATTEMPTS {
                    return Err(e);
                }
                tracing::warn!(error = %e, retry_in = ?delay, "transient database error");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
}

fn record(metrics: &HubMetrics, out: &BatchOutcome) {
    metrics.blocks_committed(out.blocks_committed);
    metrics.duplicate_blocks(out.duplicates);
    metrics.samples_inserted(out.samples_inserted);
    metrics.catalog_waits(out.catalog_waits);
    for r in &out.rejections {
        metrics.rejected(*r);
    }
}

fn publish_acks(link_tx: &mut LinkTx, metrics: &HubMetrics, out: BatchOutcome) {
    let mut sent = 0;
    for (topic, ack) in out.acks {
        // rumqttd forwards at the subscriber's QoS, so a gateway that
        // subscribed to its ack topic with QoS 1 receives acks at QoS 1.
        match link_tx.publish(topic.wire(), Message::Ack(ack).encode()) {
            Ok(_) => sent += 1,
            Err(e) => tracing::error!(error = %e, %topic, "cannot publish ack"),
        }
    }
    metrics.acks_published(sent);
}
