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
    #[error("broker.listen {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("broker link: {0}")]
    Link(String),
    #[error("cannot start the broker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("another process listens on {addr}, the port picked for the broker")]
    PortTaken { addr: SocketAddr },
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

/// Attempts at finding a port for the broker when another process takes
/// the one picked between the probe and the broker's own bind.
const PORT_ATTEMPTS: usize = 5;

/// Starts the broker, subscribes the hub's link to every gateway topic,
/// and waits until the listener is bound.
///
/// rumqttd cannot bind port 0 and report the port, so a free port is picked
/// first; another process may take it before rumqttd binds it. The listener
/// is therefore checked to be this process's own socket, and with port 0 a
/// port lost that way is retried with a fresh one.
pub async fn start(
    cfg: &BrokerConfig,
    listen: SocketAddr,
    tls: &ServerFiles,
) -> Result<RunningBroker, BrokerError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match start_once(cfg, listen, tls).await {
            Err(BrokerError::PortTaken { addr })
                if listen.port() == 0 && attempt < PORT_ATTEMPTS =>
            {
                tracing::warn!(%addr, attempt, "another process took the broker's port; trying another");
            }
            other => return other,
        }
    }
}

async fn start_once(
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
        match listener_owner(listen.port()) {
            Owner::Us => break,
            // Give our own bind a moment: until it happens, a foreign
            // listener may only be the probe's port being reused.
            Owner::Other
                if Instant::now() + READY_TIMEOUT > deadline + Duration::from_millis(500) =>
            {
                return Err(BrokerError::PortTaken { addr: listen });
            }
            Owner::Other | Owner::Nobody => {}
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Us,
    Other,
    Nobody,
}

/// Who listens on TCP `port`, from /proc/net/tcp{,6} and this process's
/// open sockets. Reading the kernel's tables avoids connecting to the
/// broker, which would log a failed TLS handshake.
fn listener_owner(port: u16) -> Owner {
    let mut any_table = false;
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        any_table = true;
        inodes.extend(listening_inodes(&text, port));
    }
    if !any_table {
        // No procfs: fall back to a connection attempt.
        let up = std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(100),
        )
        .is_ok();
        return if up { Owner::Us } else { Owner::Nobody };
    }
    if inodes.is_empty() {
        return Owner::Nobody;
    }
    let ours = own_socket_inodes();
    if inodes.iter().any(|i| ours.contains(i)) {
        Owner::Us
    } else {
        Owner::Other
    }
}

/// Inodes of the sockets listening on `port` in a /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let p = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())?;
            (*state == LISTEN && p == port)
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

/// Inodes of this process's open sockets.
fn own_socket_inodes() -> std::collections::HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Default::default();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
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
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n\
                     1: 0100007F:2000 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
        assert_eq!(listening_inodes(table, 0x1F90), vec![4242]);
        assert!(
            listening_inodes(table, 0x2000).is_empty(),
            "established, not listening"
        );
        assert!(listening_inodes(table, 1234).is_empty());
    }

    #[test]
    fn own_and_foreign_listeners_are_told_apart() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_owner(port), Owner::Us);
        drop(l);
        // Another process may take the freed port at once; it is not ours.
        assert_ne!(listener_owner(port), Owner::Us);
        // A listener in another process.
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let foreign: u16 = line.trim().parse().unwrap();
        assert_eq!(listener_owner(foreign), Owner::Other);
        let _ = child.kill();
        let _ = child.wait();
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
