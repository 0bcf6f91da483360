//! The public MQTT listener: TLS termination in front of the embedded
//! broker.
//!
//! rumqttd 0.20 performs each TLS handshake inside its accept loop, so one
//! client that opens a TCP connection and never completes the handshake
//! stops every other client from connecting. The front accepts gateways
//! itself, runs handshakes concurrently under a deadline and a connection
//! limit, verifies the client certificate against the hub CA, and only then
//! relays the connection to the broker's loopback listener over a second
//! TLS connection that presents a hub-issued certificate for the same tenant
//! (the O of the gateway's certificate). The broker therefore still confines
//! every client to `/tenants/{O}/`, and its own handshakes are with the
//! front only, which completes them in a millisecond.
//!
//! It never looks inside MQTT: payload limits, topic permissions and
//! sessions remain the broker's.

use crate::metrics::{HubMetrics, LogLimiter, TlsFailure};
use crate::pki::{Authority, PkiError, ServerFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontError {
    #[error("{path}: {message}")]
    Material { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("issuing a front identity: {0}")]
    Pki(#[from] PkiError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn material(path: &std::path::Path) -> impl Fn(rustls::pki_types::pem::Error) -> FrontError + '_ {
    move |e| FrontError::Material {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn ca_roots(ca: &std::path::Path) -> Result<RootCertStore, FrontError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(material(ca))? {
        roots.add(cert.map_err(material(ca))?)?;
    }
    Ok(roots)
}

/// Server side of the front: the public certificate, client certificates
/// required and checked against the hub CA.
pub fn server_config(files: &ServerFiles) -> Result<Arc<ServerConfig>, FrontError> {
    let roots = Arc::new(ca_roots(&files.ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| FrontError::Material {
            path: files.ca.display().to_string(),
            message: e.to_string(),
        })?;
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(material(&files.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(material(&files.cert))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(material(&files.key))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Client identities toward the broker, one per tenant, issued on first
/// use and kept for the life of the process.
struct Identities {
    authority: Arc<Authority>,
    roots: Arc<RootCertStore>,
    cache: Mutex<HashMap<String, Arc<ClientConfig>>>,
}

impl Identities {
    fn for_tenant(&self, tenant: &str) -> Result<Arc<ClientConfig>, FrontError> {
        if let Some(c) = self.cache.lock().ok().and_then(|m| m.get(tenant).cloned()) {
            return Ok(c);
        }
        let (cert_pem, key_pem) = self.authority.issue_front_identity(tenant)?;
        let bad = |e: rustls::pki_types::pem::Error| FrontError::Material {
            path: "(front identity)".into(),
            message: e.to_string(),
        };
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(bad)?;
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(self.roots.clone())
                .with_client_auth_cert(certs, key)?,
        );
        if let Ok(mut m) = self.cache.lock() {
            m.insert(tenant.to_owned(), config.clone());
        }
        Ok(config)
    }
}

/// Everything a connection task needs.
struct Ctx {
    acceptor: TlsAcceptor,
    identities: Identities,
    upstream: SocketAddr,
    handshake_timeout: Duration,
    metrics: HubMetrics,
    log: Mutex<LogLimiter>,
}

/// The front, bound and ready to run.
pub struct Front {
    listener: TcpListener,
    ctx: Arc<Ctx>,
    slots: Arc<Semaphore>,
}

impl Front {
    /// `listener`: the public socket; `upstream`: the broker's loopback
    /// listener; `internal`: its TLS files (for the CA).
    pub fn new(
        listener: TcpListener,
        public: &ServerFiles,
        authority: Arc<Authority>,
        upstream: SocketAddr,
        handshake_timeout: Duration,
        max_connections: usize,
        metrics: HubMetrics,
    ) -> Result<Front, FrontError> {
        let acceptor = TlsAcceptor::from(server_config(public)?);
        let roots = Arc::new(ca_roots(&public.ca)?);
        Ok(Front {
            listener,
            ctx: Arc::new(Ctx {
                acceptor,
                identities: Identities {
                    authority,
                    roots,
                    cache: Mutex::new(HashMap::new()),
                },
                upstream,
                handshake_timeout,
                metrics,
                log: Mutex::new(LogLimiter::default()),
            }),
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
        })
    }

    /// Accepts until cancelled; connection tasks run on `tracker` and end
    /// when the token is cancelled.
    pub async fn run(self, tracker: TaskTracker, token: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                self.ctx.metrics.tls_failure(TlsFailure::Busy);
                continue;
            };
            let (ctx, token) = (self.ctx.clone(), token.clone());
            tracker.spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = serve(tcp, peer, &ctx) => {}
                }
                drop(permit);
            });
        }
    }
}

fn log_failure(ctx: &Ctx, peer: SocketAddr, failure: TlsFailure, detail: &dyn std::fmt::Display) {
    ctx.metrics.tls_failure(failure);
    let allowed = ctx.log.lock().ok().and_then(|mut l| l.allow());
    if let Some(suppressed) = allowed {
        tracing::warn!(%peer, reason = failure.as_str(), %detail, suppressed, "MQTT connection refused");
    }
}

/// Tenant (certificate O) of a verified client certificate; rumqttd's rule
/// is alphanumeric only.
pub fn tenant_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let org = parsed.subject().iter_organization().next()?.as_str().ok()?;
    (!org.is_empty() && org.chars().all(|c| c.is_ascii_alphanumeric())).then(|| org.to_owned())
}

async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let _ = tcp.set_nodelay(true);
    let mut downstream = match tokio::time::timeout(ctx.handshake_timeout, ctx.acceptor.accept(tcp))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return log_failure(ctx, peer, TlsFailure::Handshake, &e),
        Err(_) => return log_failure(ctx, peer, TlsFailure::Timeout, &"no TLS handshake in time"),
    };
    let tenant = downstream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(tenant_of);
    let Some(tenant) = tenant else {
        return log_failure(
            ctx,
            peer,
            TlsFailure::NoTenant,
            &"certificate has no usable organisation (O)",
        );
    };
    let upstream = async {
        let config = ctx
            .identities
            .for_tenant(&tenant)
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(ctx.upstream)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let mut upstream = match tokio::time::timeout(ctx.handshake_timeout, upstream).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return log_failure(ctx, peer, TlsFailure::Upstream, &e),
        Err(_) => {
            return log_failure(
                ctx,
                peer,
                TlsFailure::Upstream,
                &"broker did not answer in time",
            )
        }
    };
    ctx.metrics.connection_accepted();
    tracing::debug!(%peer, %tenant, "gateway connected");
    // Ends when either side closes; the broker closing (refused publish,
    // oversized payload, keep-alive timeout) closes the gateway's side.
    let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
    tracing::debug!(%peer, %tenant, "gateway disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_comes_from_the_organisation() {
        let state = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(state.path()).unwrap();
        let creds = ca.issue_gateway("s", "g").unwrap();
        let der = CertificateDer::from_pem_slice(creds.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            tenant_of(&der),
            Some(dcmms_shared::topic::tenant_id("s", "g"))
        );
        let (front_pem, _) = ca.issue_front_identity("abc123").unwrap();
        let der = CertificateDer::from_pem_slice(front_pem.as_bytes()).unwrap();
        assert_eq!(tenant_of(&der), Some("abc123".to_owned()));
        let (bad_pem, _) = ca.issue_front_identity("not/alnum").unwrap();
        let der = CertificateDer::from_pem_slice(bad_pem.as_bytes()).unwrap();
        assert_eq!(tenant_of(&der), None);
    }
}
