//! The hub's broker and ingest through real TLS: an in-process hub on port
//! 0, gateways enrolled into temporary folders, rumqttc clients with
//! rustls (ring) presenting their certificates.

use dcmms_hub::metrics::TlsFailure;
use dcmms_hub::{Config, EnrolledFiles, RejectReason, RunningHub};
use dcmms_shared::topic::tenant_id;
use dcmms_shared::{
    encode_samples, Ack, BlockClass, Message, PointCatalog, PointId, Sample, TelemetryBlock, Topic,
    TopicKind,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

struct TestHub {
    hub: RunningHub,
    state: tempfile::TempDir,
    certs: tempfile::TempDir,
}

async fn start_hub(adjust: impl FnOnce(&mut Config)) -> TestHub {
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::ephemeral(state.path());
    adjust(&mut config);
    let hub = dcmms_hub::start(config).await.unwrap();
    TestHub {
        hub,
        state,
        certs: tempfile::tempdir().unwrap(),
    }
}

impl TestHub {
    fn enroll(&self, site: &str, gw: &str) -> EnrolledFiles {
        dcmms_hub::enroll(
            self.state.path(),
            site,
            gw,
            &self.certs.path().join(gw),
            false,
        )
        .unwrap()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(files: &EnrolledFiles) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&files.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn tls_with_cert(files: &EnrolledFiles) -> Arc<rustls::ClientConfig> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(files))
            .with_client_auth_cert(certs, key)
            .unwrap(),
    )
}

fn tls_without_cert(files: &EnrolledFiles) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(files))
            .with_no_client_auth(),
    )
}

/// An MQTT client whose event loop runs in a task; it stops at the first
/// connection error (no reconnect) and reports it.
struct Client {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Packet, String>>,
}

fn connect(hub: &RunningHub, id: &str, tls: Arc<rustls::ClientConfig>) -> Client {
    let addr = hub.mqtt_addr();
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(p)) => {
                    if tx.send(Ok(p)).is_err() {
                        break;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    break;
                }
            }
        }
    });
    Client { client, events }
}

impl Client {
    async fn next(&mut self) -> Option<Result<Packet, String>> {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    async fn expect_connack(&mut self) {
        match self.next().await {
            Some(Ok(Packet::ConnAck(_))) => {}
            other => panic!("expected ConnAck, got {other:?}"),
        }
    }

    /// Subscribes and waits for the SubAck.
    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match self.next().await {
                Some(Ok(Packet::SubAck(_))) => return,
                Some(Ok(_)) => continue,
                other => panic!("expected SubAck for {filter}, got {other:?}"),
            }
        }
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Next publish received (skipping acks of our own publishes).
    async fn next_publish(&mut self) -> rumqttc::Publish {
        loop {
            match self.next().await {
                Some(Ok(Packet::Publish(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("expected a publish, got {other:?}"),
            }
        }
    }

    /// Waits for the broker to drop the connection; panics if it does not.
    async fn expect_disconnect(&mut self) -> String {
        loop {
            match self.next().await {
                Some(Err(e)) => return e,
                Some(Ok(_)) => continue,
                None => panic!("the broker kept the connection open"),
            }
        }
    }

    /// Next ack on the ack topic this client subscribed to.
    async fn next_ack(&mut self) -> Ack {
        let p = self.next_publish().await;
        assert!(
            p.topic.ends_with("/ack"),
            "unexpected publish on {}",
            p.topic
        );
        match Message::decode(&p.payload).unwrap() {
            Message::Ack(a) => a,
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}

fn wire(site: &str, gw: &str, kind: TopicKind) -> String {
    Topic::new(site, gw, kind).unwrap().wire()
}

fn catalog(names: &[&str]) -> Vec<u8> {
    Message::Catalog(PointCatalog {
        first_id: 0,
        names: names.iter().map(|s| s.to_string()).collect(),
    })
    .encode()
}

fn block(seq: u64, values: &[f64]) -> Vec<u8> {
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Sample::good(
                PointId(0),
                1_767_225_600_000 + seq as i64 * 60_000 + i as i64,
                *v,
            )
        })
        .collect();
    Message::Telemetry(TelemetryBlock {
        seq,
        class: BlockClass::Telemetry,
        sample_count: samples.len() as u32,
        first_ts_ms: samples[0].ts_ms,
        last_ts_ms: samples[samples.len() - 1].ts_ms,
        catalog_len: 1,
        samples: encode_samples(&samples).unwrap(),
    })
    .encode()
}

/// Values stored for a point, in time order.
async fn stored(hub: &RunningHub, point: &str) -> Vec<f64> {
    let Some(p) = hub.store().find_point(point).await.unwrap() else {
        return Vec::new();
    };
    let page = hub
        .store()
        .raw_samples(&p, i64::MIN, i64::MAX, 0, 10_000)
        .await
        .unwrap();
    page.samples.iter().filter_map(|s| s.value).collect()
}

/// Polls a metric until it reaches `want` (bounded); returns the last value.
async fn metric_reaches(hub: &RunningHub, reason: RejectReason, want: f64) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = hub.metrics().rejected_total(reason);
        if v >= want || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway that is connected and subscribed to its ack topic.
async fn gateway(t: &TestHub, site: &str, gw: &str) -> Client {
    let files = t.enroll(site, gw);
    let mut c = connect(&t.hub, &format!("{site}.{gw}"), tls_with_cert(&files));
    c.expect_connack().await;
    c.subscribe(&wire(site, gw, TopicKind::Ack)).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_gateway_is_stored_and_acked() {
    let t = start_hub(|_| {}).await;
    let mut gw = gateway(&t, "solar-1", "gw-a").await;

    // A block before its catalog is not committed; the ack says the hub
    // holds no catalog entries.
    gw.publish(
        &wire("solar-1", "gw-a", TopicKind::Telemetry),
        block(1, &[1.5, 2.5]),
    )
    .await;
    let ack = gw.next_ack().await;
    assert!(ack.committed.is_empty(), "{ack:?}");
    assert_eq!(ack.catalog_len, 0);

    gw.publish(
        &wire("solar-1", "gw-a", TopicKind::Catalog),
        catalog(&["inv1/p_ac"]),
    )
    .await;
    assert_eq!(gw.next_ack().await.catalog_len, 1);
    gw.publish(
        &wire("solar-1", "gw-a", TopicKind::Telemetry),
        block(1, &[1.5, 2.5]),
    )
    .await;
    let ack = gw.next_ack().await;
    assert_eq!(ack.committed, vec![(1, 1)]);
    assert_eq!(stored(&t.hub, "solar-1/inv1/p_ac").await, vec![1.5, 2.5]);

    // A resend is acked again and stored once.
    gw.publish(
        &wire("solar-1", "gw-a", TopicKind::Telemetry),
        block(1, &[1.5, 2.5]),
    )
    .await;
    assert_eq!(gw.next_ack().await.committed, vec![(1, 1)]);
    assert_eq!(stored(&t.hub, "solar-1/inv1/p_ac").await, vec![1.5, 2.5]);
    let text = t.hub.metrics().render();
    assert!(
        text.contains("dcmms_hub_duplicate_blocks_total 1"),
        "{text}"
    );
    assert!(
        text.contains("dcmms_hub_blocks_committed_total 1"),
        "{text}"
    );

    // The API sees it too.
    let gws = t.hub.store().gateways().await.unwrap();
    assert_eq!(gws.len(), 1);
    assert_eq!((gws[0].acked_seq, gws[0].catalog_len), (1, 1));
    t.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    let t = start_hub(|_| {}).await;
    // Only for its ca.pem: the client trusts the hub but presents nothing.
    let files = t.enroll("s", "other");
    let mut anon = connect(&t.hub, "anon", tls_without_cert(&files));
    let err = anon.expect_disconnect().await;
    assert!(!err.is_empty());
    assert_eq!(
        t.hub.metrics().tls_failures_total(TlsFailure::Handshake),
        1.0
    );

    // The broker still serves enrolled gateways afterwards.
    let mut gw = gateway(&t, "s", "g").await;
    gw.publish(&wire("s", "g", TopicKind::Catalog), catalog(&["d/p"]))
        .await;
    assert_eq!(gw.next_ack().await.catalog_len, 1);
    t.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_cannot_act_as_another() {
    let t = start_hub(|_| {}).await;
    let mut b = gateway(&t, "site", "gw-b").await;
    b.publish(&wire("site", "gw-b", TopicKind::Catalog), catalog(&["d/p"]))
        .await;
    b.next_ack().await;
    b.publish(
        &wire("site", "gw-b", TopicKind::Telemetry),
        block(1, &[1.0]),
    )
    .await;
    assert_eq!(b.next_ack().await.committed, vec![(1, 1)]);

    let a_files = t.enroll("site", "gw-a");
    let tenant_a = tenant_id("site", "gw-a");
    let mut a = connect(&t.hub, "site.gw-a", tls_with_cert(&a_files));
    a.expect_connack().await;
    // Everything A may see: its whole tenant prefix.
    a.subscribe(&format!("/tenants/{tenant_a}/#")).await;

    // 1. B's site/gateway under A's own tenant prefix: the broker lets it
    //    through, the hub refuses it because A's tenant does not own gw-b.
    let forged =
        |kind: TopicKind| format!("/tenants/{tenant_a}/dcmms/v1/site/gw-b/{}", kind.as_str());
    a.publish(&forged(TopicKind::Catalog), catalog(&["d/evil"]))
        .await;
    a.publish(&forged(TopicKind::Telemetry), block(2, &[666.0]))
        .await;
    assert_eq!(
        metric_reaches(&t.hub, RejectReason::TenantMismatch, 2.0).await,
        2.0
    );

    // B keeps committing; its ack reaches B and nothing of it reaches A.
    b.publish(
        &wire("site", "gw-b", TopicKind::Telemetry),
        block(2, &[2.0]),
    )
    .await;
    assert_eq!(b.next_ack().await.committed, vec![(2, 2)]);
    a.publish(&format!("/tenants/{tenant_a}/marker"), b"m".to_vec())
        .await;
    loop {
        let p = a.next_publish().await;
        assert!(!p.topic.ends_with("/ack"), "A received an ack: {}", p.topic);
        if p.topic.ends_with("/marker") {
            break;
        }
    }

    // 2. B's real topic (B's tenant prefix): the broker refuses it and drops A.
    a.publish(
        &wire("site", "gw-b", TopicKind::Telemetry),
        block(3, &[666.0]),
    )
    .await;
    a.expect_disconnect().await;
    assert!(metric_reaches(&t.hub, RejectReason::BrokerRefused, 1.0).await >= 1.0);

    // 3. Subscribing to B's ack topic: refused, connection dropped.
    let mut a2 = connect(&t.hub, "site.gw-a", tls_with_cert(&a_files));
    a2.expect_connack().await;
    a2.client
        .subscribe(wire("site", "gw-b", TopicKind::Ack), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        match a2.next().await {
            Some(Ok(Packet::SubAck(s))) => {
                panic!("subscription to another tenant was granted: {s:?}")
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) => break,
            None => panic!("the broker neither refused nor answered the subscription"),
        }
    }

    // Nothing of A's is stored for B; B's own data is intact.
    assert_eq!(stored(&t.hub, "site/d/p").await, vec![1.0, 2.0]);
    assert!(t
        .hub
        .store()
        .find_point("site/d/evil")
        .await
        .unwrap()
        .is_none());
    let gws = t.hub.store().gateways().await.unwrap();
    assert_eq!(gws.len(), 1, "no gateway row for A's forgeries: {gws:?}");
    assert_eq!(gws[0].max_seq, 2);
    t.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_counted_and_the_hub_keeps_working() {
    let t = start_hub(|_| {}).await;
    let mut gw = gateway(&t, "s", "g").await;
    let telemetry = wire("s", "g", TopicKind::Telemetry);
    gw.publish(&wire("s", "g", TopicKind::Catalog), catalog(&["d/p"]))
        .await;
    gw.next_ack().await;

    gw.publish(&telemetry, b"not a dcmms payload at all".to_vec())
        .await;
    let mut truncated = block(1, &[1.0, 2.0, 3.0]);
    truncated.truncate(truncated.len() / 2);
    gw.publish(&telemetry, truncated).await;
    gw.publish(&telemetry, Message::Ack(Ack::default()).encode())
        .await;
    // An envelope that decodes but whose samples do not: acked as rejected.
    let bad_samples = Message::Telemetry(TelemetryBlock {
        seq: 2,
        class: BlockClass::Telemetry,
        sample_count: 1,
        first_ts_ms: 0,
        last_ts_ms: 0,
        catalog_len: 1,
        samples: vec![0xde, 0xad, 0xbe, 0xef],
    })
    .encode();
    gw.publish(&telemetry, bad_samples).await;
    let first = gw.next_ack().await;
    assert_eq!(first.rejected, vec![(2, 2)]);

    gw.publish(&telemetry, block(3, &[7.0])).await;
    assert_eq!(gw.next_ack().await.committed, vec![(3, 3)]);
    assert_eq!(stored(&t.hub, "s/d/p").await, vec![7.0]);
    let m = t.hub.metrics();
    assert_eq!(m.rejected_total(RejectReason::BadPayload), 2.0);
    assert_eq!(m.rejected_total(RejectReason::KindMismatch), 1.0);
    assert_eq!(m.rejected_total(RejectReason::BadBlock), 1.0);
    t.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_is_refused() {
    let t = start_hub(|c| c.broker.max_payload_size = 64 * 1024).await;
    let mut gw = gateway(&t, "s", "g").await;
    gw.publish(&wire("s", "g", TopicKind::Catalog), catalog(&["d/p"]))
        .await;
    gw.next_ack().await;
    let mut big = block(1, &[1.0]);
    big.resize(100 * 1024, 0);
    gw.publish(&wire("s", "g", TopicKind::Telemetry), big).await;
    gw.expect_disconnect().await;

    let mut again = gateway(&t, "s", "g2").await;
    again
        .publish(&wire("s", "g2", TopicKind::Catalog), catalog(&["d/q"]))
        .await;
    again.next_ack().await;
    again
        .publish(&wire("s", "g2", TopicKind::Telemetry), block(1, &[4.0]))
        .await;
    assert_eq!(again.next_ack().await.committed, vec![(1, 1)]);
    assert!(stored(&t.hub, "s/d/p").await.is_empty());
    assert_eq!(stored(&t.hub, "s/d/q").await, vec![4.0]);
    t.hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_do_not_block_gateways() {
    let t = start_hub(|c| c.broker.connection_timeout_ms = 500).await;
    // Connections that never complete a TLS handshake: one silent, one
    // sending half a record.
    let silent = tokio::net::TcpStream::connect(t.hub.mqtt_addr())
        .await
        .unwrap();
    let mut partial = tokio::net::TcpStream::connect(t.hub.mqtt_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut partial, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    let mut gw = gateway(&t, "s", "g").await;
    gw.publish(&wire("s", "g", TopicKind::Catalog), catalog(&["d/p"]))
        .await;
    assert_eq!(gw.next_ack().await.catalog_len, 1);

    // Both are dropped at the deadline and counted.
    let deadline = Instant::now() + WAIT;
    while t.hub.metrics().tls_failures_total(TlsFailure::Timeout) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "stalled handshakes were not timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((silent, partial));
    t.hub.shutdown().await.unwrap();
}
