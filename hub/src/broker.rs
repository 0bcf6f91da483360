//! The embedded MQTT broker (rumqttd) that gateways connect to.
//!
//! Owns: building rumqttd's configuration from ours (one MQTT 3.1.1
//! listener on loopback, TLS with client certificates from the hub CA,
//! each client confined to `/tenants/{O of its certificate}/`), running the
//! broker on its own OS thread (its `start()` blocks), the hub's in-process
//! link, and turning the broker's router meters into hub metrics. Gateways
//! reach this listener only through the TLS front (`crate::front`).
//!
//! rumqttd cannot report the port it bound nor be stopped; so port 0 is
//! replaced by a free port picked just before start (a process that grabs
//! it in between makes the start fail with a clear error), and readiness is
//! detected by watching the kernel's listening sockets.

use crate::config::BrokerConfig;
use crate::metrics::{HubMetrics, RejectReason};
use crate::pki::ServerFiles;
use dcmms_shared::Topic;
use rumqttd::alerts::AlertsLink;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::meters::MetersLink;
use rumqttd::{
    Broker, ConnectionSettings, Meter, MetricType, RouterConfig, SegmentConfig, ServerSettings,
    TlsConfig,
};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Client id of the hub's in-process link.
pub const INGEST_CLIENT_ID: &str = "dcmms-hub-ingest";
/// Downlink ack topics get small logs: acks are tiny and one log exists per
/// subscribed gateway.
const ACK_FILTER: &str = "/tenants/+/dcmms/v1/+/+/ack";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("broker.listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("broker link: {0}")]
    Link(String),
    #[error("cannot start the broker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the broker did not listen on {addr} within {READY_TIMEOUT:?}{detail}")]
    NotListening { addr: SocketAddr, detail: String },
    #[error("invalid broker setting: {0}")]
    Setting(String),
}

/// A started broker.
pub struct RunningBroker {
    /// Address the listener is bound to.
    pub addr: SocketAddr,
    pub link_tx: LinkTx,
    pub link_rx: LinkRx,
    pub meters: MetersLink,
    pub alerts: AlertsLink,
    /// Resolves if the broker thread ever returns (it should not).
    pub exited: oneshot::Receiver<String>,
}

/// Builds rumqttd's configuration.
pub fn rumqttd_config(
    cfg: &BrokerConfig,
    listen: SocketAddr,
    tls: &ServerFiles,
) -> Result<rumqttd::Config, BrokerError> {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let connections = ConnectionSettings {
        connection_timeout_ms: cfg.connection_timeout_ms,
        max_payload_size: cfg.max_payload_size,
        max_inflight_count: cfg.max_inflight_count,
        auth: None,
        external_auth: None,
        dynamic_filters: false,
    };
    let server = ServerSettings {
        name: "dcmms-gateways".to_owned(),
        listen,
        tls: Some(TlsConfig::Rustls {
            capath: Some(path(&tls.ca)),
            certpath: path(&tls.cert),
            keypath: path(&tls.key),
        }),
        next_connection_delay_ms: 1,
        connections,
    };
    let mut custom = HashMap::new();
    custom.insert(
        ACK_FILTER.to_owned(),
        SegmentConfig {
            max_segment_size: 64 * 1024,
            max_segment_count: 2,
        },
    );
    let router = RouterConfig {
        // Room for the hub's own links beside every gateway.
        max_connections: cfg.max_connections + 16,
        max_outgoing_packet_count: 200,
        max_segment_size: cfg.max_segment_size,
        max_segment_count: cfg.max_segment_count,
        custom_segment: Some(custom),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    // MetricSettings has private fields; it is only constructible through
    // serde. Meters carry the router's refused-publish count every second.
    let every_second: rumqttd::MetricSettings =
        serde_json::from_value(serde_json::json!({ "push_interval": 1 }))
            .map_err(|e| BrokerError::Setting(e.to_string()))?;
    let mut metrics = HashMap::new();
    metrics.insert(MetricType::Meters, every_second.clone());
    metrics.insert(MetricType::Alerts, every_second);
    let mut v4 = HashMap::new();
    v4.insert("1".to_owned(), server);
    Ok(rumqttd::Config {
        id: 0,
        router,
        v4: Some(v4),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: Some(metrics),
    })
}

/// Checks that `addr` can be bound now; for port 0, picks a free port.
fn resolve_listen(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let probe = TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source })?;
    let bound = probe
        .local_addr()
        .map_err(|source| BrokerError::Bind { addr, source })?;
    drop(probe);
    Ok(bound)
}

/// Starts the broker, subscribes the hub's link to every gateway topic,
/// and waits until the listener is bound.
pub async fn start(
    cfg: &BrokerConfig,
    listen: SocketAddr,
    tls: &ServerFiles,
) -> Result<RunningBroker, BrokerError> {
    let listen = resolve_listen(listen)?;
    let config = rumqttd_config(cfg, listen, tls)?;
    let mut broker = Broker::new(config);
    let (mut link_tx, link_rx) = broker
        .link(INGEST_CLIENT_ID)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    // Queued before any client can connect, so no gateway message predates
    // the hub's subscription. Local links are not tenant-restricted.
    link_tx
        .subscribe(Topic::hub_filter())
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let meters = broker
        .meters()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let alerts = broker
        .alerts()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let (exit_tx, mut exited) = oneshot::channel();
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let why = match broker.start() {
                Ok(()) => "the broker's listener stopped (see the log above)".to_owned(),
                Err(e) => e.to_string(),
            };
            let _ = exit_tx.send(why);
        })
        .map_err(BrokerError::Thread)?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if is_listening(listen.port()) {
            break;
        }
        if let Ok(why) = exited.try_recv() {
            return Err(BrokerError::NotListening {
                addr: listen,
                detail: format!(": {why}"),
            });
        }
        if Instant::now() > deadline {
            return Err(BrokerError::NotListening {
                addr: listen,
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tracing::debug!(%listen, "embedded MQTT broker listening");
    Ok(RunningBroker {
        addr: listen,
        link_tx,
        link_rx,
        meters,
        alerts,
        exited,
    })
}

/// Whether some socket listens on TCP `port`, from /proc/net/tcp{,6}.
/// Reading the kernel's table avoids connecting to the broker, which would
/// log a failed TLS handshake.
fn is_listening(port: u16) -> bool {
    let mut any_table = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        any_table = true;
        if listening_in(&text, port) {
            return true;
        }
    }
    if !any_table {
        // No procfs: fall back to a connection attempt.
        return std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(100),
        )
        .is_ok();
    }
    false
}

fn listening_in(table: &str, port: u16) -> bool {
    const LISTEN: &str = "0A";
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        state == LISTEN
            && local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

/// Forwards the broker's router meters and alerts into hub metrics until
/// cancelled.
pub async fn watch(
    meters: MetersLink,
    alerts: AlertsLink,
    metrics: HubMetrics,
    token: CancellationToken,
) {
    let mut alerts_open = true;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            m = meters.next() => match m {
                Ok(list) => {
                    for meter in list {
                        if let Meter::Router(_, r) = meter {
                            if r.failed_publishes > 0 {
                                metrics.rejected_n(RejectReason::BrokerRefused, r.failed_publishes as u64);
                                tracing::warn!(count = r.failed_publishes, "broker refused publishes (outside the client's tenant or malformed); the clients were disconnected");
                            }
                        }
                    }
                }
                Err(_) => break,
            },
            a = alerts.next(), if alerts_open => match a {
                Ok(list) => {
                    for alert in list {
                        if alert.kind.name() == "cursor_jump" {
                            metrics.cursor_jump();
                            tracing::warn!(client = %alert.client_id, detail = %alert.kind.description(), "broker dropped messages before a reader caught up");
                        }
                    }
                }
                Err(_) => alerts_open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_table_parsing() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
                     0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
                     1: 0100007F:2000 0100007F:9C40 01 00000000:00000000\n";
        assert!(listening_in(table, 0x1F90));
        assert!(!listening_in(table, 0x2000), "established, not listening");
        assert!(!listening_in(table, 1234));
    }

    #[test]
    fn real_listener_is_seen() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(is_listening(port));
        drop(l);
        assert!(!is_listening(port));
    }

    #[test]
    fn config_maps_limits() {
        let cfg = BrokerConfig {
            max_segment_size: 2048,
            max_segment_count: 3,
            max_payload_size: 5000,
            ..Default::default()
        };
        let files = ServerFiles {
            ca: "/s/ca.pem".into(),
            cert: "/s/c.pem".into(),
            key: "/s/k.pem".into(),
        };
        let c = rumqttd_config(&cfg, "127.0.0.1:1".parse().unwrap(), &files).unwrap();
        assert_eq!(c.router.max_segment_size, 2048);
        assert_eq!(c.router.max_segment_count, 3);
        let v4 = c.v4.unwrap();
        let s = v4.values().next().unwrap();
        assert_eq!(s.connections.max_payload_size, 5000);
        assert!(
            matches!(&s.tls, Some(TlsConfig::Rustls { capath: Some(ca), .. }) if ca == "/s/ca.pem")
        );
        assert!(c.metrics.is_some());
    }
}
