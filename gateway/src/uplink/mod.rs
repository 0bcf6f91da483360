//! The uplink: ships ring-buffer blocks to the hub over MQTT with mutual TLS
//! and deletes a block only when the hub's ack for it arrives.
//!
//! On every (re)connect it subscribes to its ack topic, publishes its point
//! catalog and status, and restarts the send window: live blocks flow at
//! once, the backlog drains beside them, oldest first. Acks come back as
//! application messages (the hub acks what it committed to its database),
//! so delivery is at-least-once on the wire and exactly-once in the hub.

pub mod tls;
pub mod window;

use crate::metrics as m;
use crate::pipeline::now_ms;
use crate::ring::RingBuffer;
use dcmms_protocols_core::Backoff;
use dcmms_shared::wire::{GatewayStatus, Message, PointCatalog};
use dcmms_shared::{Topic, TopicKind};
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use window::{Lane, SendWindow};

/// Names per catalog message.
const CATALOG_CHUNK: usize = 2000;
/// The catalog is not republished more often than this on repeated nacks.
const CATALOG_REPUBLISH_MS: i64 = 2000;

#[derive(Debug, Clone)]
pub struct UplinkSettings {
    pub site: String,
    pub gateway: String,
    pub host: String,
    pub port: u16,
    pub bundle_dir: PathBuf,
    pub max_in_flight: usize,
    pub resend_after: Duration,
    pub keep_alive: Duration,
    pub status_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Uplink state visible to the status endpoint.
#[derive(Debug, Default)]
pub struct UplinkHealth {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub blocks_sent: AtomicU64,
    pub blocks_acked: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl UplinkHealth {
    fn set_error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

pub type StatusFn = Arc<dyn Fn() -> GatewayStatus + Send + Sync>;

struct Uplink {
    s: UplinkSettings,
    ring: Arc<RingBuffer>,
    client: AsyncClient,
    window: SendWindow,
    health: Arc<UplinkHealth>,
    status: StatusFn,
    connected: bool,
    /// Connection attempts have failed since the last success.
    failing: bool,
    catalog_sent_at: i64,
    telemetry_topic: String,
    catalog_topic: String,
    status_topic: String,
    ack_topic: String,
}

/// Runs the uplink until `cancel` fires.
pub async fn run(
    s: UplinkSettings,
    ring: Arc<RingBuffer>,
    mut committed: watch::Receiver<u64>,
    status: StatusFn,
    health: Arc<UplinkHealth>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tls = tls::client_config(&s.bundle_dir)?;
    let topic = |k| Topic::new(&s.site, &s.gateway, k).map(|t| t.wire());
    let telemetry_topic = topic(TopicKind::Telemetry)?;
    let catalog_topic = topic(TopicKind::Catalog)?;
    let status_topic = topic(TopicKind::Status)?;
    let ack_topic = topic(TopicKind::Ack)?;

    let mut opts = MqttOptions::new(client_id(&s), &s.host, s.port);
    opts.set_keep_alive(s.keep_alive)
        .set_clean_session(true)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )))
        .set_max_packet_size(
            dcmms_shared::wire::MAX_PAYLOAD,
            dcmms_shared::wire::MAX_PAYLOAD,
        )
        .set_inflight(u16::try_from(s.max_in_flight + 16).unwrap_or(u16::MAX))
        .set_last_will(LastWill::new(
            &status_topic,
            Message::Status(GatewayStatus {
                online: false,
                ..status()
            })
            .encode(),
            QoS::AtLeastOnce,
            true,
        ));
    let (client, mut eventloop) = AsyncClient::new(opts, s.max_in_flight * 2 + 64);
    let mut backoff = Backoff::new(s.backoff_min, s.backoff_max);
    let mut up = Uplink {
        window: SendWindow::new(s.max_in_flight, s.resend_after.as_millis() as u64),
        s,
        ring,
        client,
        health,
        status,
        connected: false,
        failing: false,
        catalog_sent_at: i64::MIN / 2,
        telemetry_topic,
        catalog_topic,
        status_topic,
        ack_topic,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut status_tick = tokio::time::interval(up.s.status_interval);
    loop {
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    // A fresh session: requests queued for the old one are
                    // replaced by the window's own resend from the buffer.
                    eventloop.pending.clear();
                    up.on_connected();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic == up.ack_topic {
                        up.on_ack_payload(&p.payload).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    up.on_disconnected(e.to_string());
                    // A fresh client id per connection: the broker may still
                    // hold the dead connection's session (a killed process, a
                    // half-open link), and taking it over must not be needed.
                    eventloop.mqtt_options.set_client_id(client_id(&up.s));
                    let delay = backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
            },
            changed = committed.changed() => {
                if changed.is_err() {
                    // The pipeline stopped; keep serving acks until cancelled.
                    committed = watch::channel(0).1;
                }
                up.pump();
            }
            _ = tick.tick() => up.pump(),
            _ = status_tick.tick() => up.publish_status(),
            _ = cancel.cancelled() => break,
        }
    }
    up.shutdown(&mut eventloop).await;
    Ok(())
}

/// MQTT client id: the gateway's names plus a random suffix (sessions are
/// clean; nothing depends on the id staying the same).
fn client_id(s: &UplinkSettings) -> String {
    format!(
        "dcmms-{}-{}-{:08x}",
        s.site,
        s.gateway,
        rand::random::<u32>()
    )
}

impl Uplink {
    fn on_connected(&mut self) {
        self.connected = true;
        self.failing = false;
        self.health.connected.store(true, Ordering::Relaxed);
        self.health.connects.fetch_add(1, Ordering::Relaxed);
        m::uplink_connected(true);
        tracing::info!(host = %self.s.host, port = self.s.port, "uplink connected");
        if let Err(e) = self
            .client
            .try_subscribe(self.ack_topic.clone(), QoS::AtLeastOnce)
        {
            tracing::warn!(error = %e, "cannot subscribe to the ack topic");
        }
        self.publish_catalog(0);
        self.publish_status();
        let next_seq = self.ring.stats().next_seq;
        self.window.on_connected(next_seq);
        self.pump();
    }

    fn on_disconnected(&mut self, error: String) {
        if self.connected {
            tracing::warn!(%error, "uplink lost; samples stay buffered until it returns");
        } else if !self.failing {
            tracing::warn!(%error, "uplink cannot connect; retrying with backoff (further failures at debug level)");
        } else {
            tracing::debug!(%error, "uplink connection attempt failed");
        }
        self.failing = true;
        self.connected = false;
        self.health.connected.store(false, Ordering::Relaxed);
        self.health.set_error(error);
        m::uplink_connected(false);
        m::uplink_error();
    }

    fn publish_catalog(&mut self, from: u32) {
        let catalog = match self.ring.catalog() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the point catalog");
                return;
            }
        };
        let from = (from as usize).min(catalog.len());
        for (i, chunk) in catalog[from..].chunks(CATALOG_CHUNK).enumerate() {
            let msg = Message::Catalog(PointCatalog {
                first_id: (from + i * CATALOG_CHUNK) as u32,
                names: chunk.to_vec(),
            });
            if let Err(e) =
                self.client
                    .try_publish(&self.catalog_topic, QoS::AtLeastOnce, false, msg.encode())
            {
                tracing::warn!(error = %e, "cannot queue the point catalog");
            }
        }
        self.catalog_sent_at = now_ms();
    }

    fn publish_status(&mut self) {
        if !self.connected {
            return;
        }
        let msg = Message::Status((self.status)());
        if let Err(e) =
            self.client
                .try_publish(&self.status_topic, QoS::AtLeastOnce, true, msg.encode())
        {
            tracing::debug!(error = %e, "status not queued");
        }
    }

    async fn on_ack_payload(&mut self, payload: &[u8]) {
        let ack = match Message::decode(payload) {
            Ok(Message::Ack(a)) => a,
            Ok(other) => {
                m::bad_downlink();
                tracing::warn!(?other, "unexpected message on the ack topic");
                return;
            }
            Err(e) => {
                m::bad_downlink();
                tracing::warn!(error = %e, "undecodable ack");
                return;
            }
        };
        let mut ranges = ack.committed.clone();
        ranges.extend_from_slice(&ack.rejected);
        self.window.on_ack(&ranges);
        let count = |r: &[(u64, u64)]| r.iter().map(|(a, b)| b.saturating_sub(*a) + 1).sum::<u64>();
        let (committed, rejected) = (count(&ack.committed), count(&ack.rejected));
        if rejected > 0 {
            tracing::error!(?ack.rejected, "the hub refused blocks for good; they are dropped");
        }
        m::blocks_acked(committed, rejected);
        self.health
            .blocks_acked
            .fetch_add(committed, Ordering::Relaxed);
        if !ranges.is_empty() {
            let ring = self.ring.clone();
            match tokio::task::spawn_blocking(move || ring.ack(&ranges)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot delete acknowledged blocks"),
                Err(e) => tracing::error!(error = %e, "ack task failed"),
            }
        }
        let ours = self.ring.catalog().map(|c| c.len() as u32).unwrap_or(0);
        if ack.catalog_len < ours && now_ms() - self.catalog_sent_at >= CATALOG_REPUBLISH_MS {
            tracing::info!(
                hub = ack.catalog_len,
                ours,
                "hub lacks part of the point catalog; resending"
            );
            self.publish_catalog(ack.catalog_len);
            self.window.resend_all_now();
        }
        self.pump();
    }

    /// Fills the send window: overdue resends, then live blocks, then backlog.
    fn pump(&mut self) {
        if !self.connected {
            return;
        }
        let now = now_ms();
        let plan = self.window.plan(now);
        for seq in plan.resend {
            match self.ring.get(seq) {
                Ok(Some(payload)) => {
                    if !self.send(seq, payload) {
                        return;
                    }
                    self.window.mark_resent(seq, now);
                    m::block_sent(true);
                }
                Ok(None) => self.window.forget(seq),
                Err(e) => {
                    tracing::error!(error = %e, seq, "cannot read a block for resend");
                    return;
                }
            }
        }
        let mut free = self.window.plan(now).free;
        for lane in [Lane::Live, Lane::Backlog] {
            if free == 0 || (lane == Lane::Backlog && !self.window.backlog_pending()) {
                continue;
            }
            let blocks = match self.ring.read_after(self.window.cursor(lane), free) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read blocks to send");
                    return;
                }
            };
            let mut sent_any = false;
            for (seq, payload) in blocks {
                if lane == Lane::Backlog && !self.window.in_backlog(seq) {
                    break;
                }
                if !self.send(seq, payload) {
                    return;
                }
                self.window.mark_sent(seq, lane, now);
                m::block_sent(false);
                free -= 1;
                sent_any = true;
            }
            if lane == Lane::Backlog && !sent_any {
                self.window.backlog_finished();
                tracing::info!("backlog drained");
            }
        }
    }

    fn send(&mut self, seq: u64, payload: Vec<u8>) -> bool {
        match self
            .client
            .try_publish(&self.telemetry_topic, QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => {
                self.health.blocks_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, seq, "publish queue full; retrying shortly");
                false
            }
        }
    }

    async fn shutdown(&mut self, eventloop: &mut rumqttc::EventLoop) {
        if !self.connected {
            return;
        }
        let msg = Message::Status(GatewayStatus {
            online: false,
            ..(self.status)()
        });
        let _ = self
            .client
            .try_publish(&self.status_topic, QoS::AtLeastOnce, true, msg.encode());
        let _ = self.client.try_disconnect();
        // Let the event loop flush the offline status and the disconnect.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        m::uplink_connected(false);
        tracing::info!("uplink closed");
    }
}
