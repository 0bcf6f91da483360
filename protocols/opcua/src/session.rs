//! Opening an OPC UA session (secure channel, certificates, identity) and
//! watching it: used by the driver and by discovery.
//!
//! The library's own reconnect is switched off (retry limit 0): when the
//! connection is lost the session is dropped and the driver reconnects with
//! its own backoff and builds its subscription again, so every reconnect
//! is counted and visible.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use opcua::client::{ClientBuilder, IdentityToken, Session, SessionPollResult};
use opcua::crypto::{CertificateStore, X509Data};
use opcua::types::{
    ApplicationDescription, ApplicationType, EndpointDescription, LocalizedText,
    MessageSecurityMode, StatusCode, UserTokenPolicy,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{ConnectPlan, Identity, SecurityModeName, SecurityPolicyName};
use crate::convert::hint;

/// Most elements of one array in a message (notifications of one publish
/// response, results of one read).
pub const MAX_ARRAY_LENGTH: usize = 100_000;
/// Most chunks of one message: 256 × 64 KiB = 16 MiB.
const MAX_CHUNKS: usize = 256;

/// Why a session could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}{}", hint(*status).map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct ConnectError {
    pub status: StatusCode,
    pub message: String,
}

impl ConnectError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ConnectError {
            status,
            message: message.into(),
        }
    }
}

/// A live session and the task that drives it.
pub struct Connection {
    pub session: Arc<Session>,
    /// Becomes `Some(status)` when the connection is gone.
    pub lost: watch::Receiver<Option<StatusCode>>,
    task: JoinHandle<()>,
}

impl Connection {
    /// Closes the session politely (bounded in time) and stops its task.
    pub async fn close(self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.session.disconnect())
            .await;
        self.task.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The application description the gateway presents.
fn application(plan: &ConnectPlan) -> ApplicationDescription {
    ApplicationDescription {
        application_uri: plan.application_uri.as_str().into(),
        product_uri: "urn:dcmms:edge".into(),
        application_name: LocalizedText::new("", "dCMMS Edge gateway"),
        application_type: ApplicationType::Client,
        ..Default::default()
    }
}

/// The client certificate and key of `plan`, relative to its `pki_dir`
/// (absolute when configured so).
fn relative_certificate_paths(plan: &ConnectPlan) -> (PathBuf, PathBuf) {
    (
        plan.certificate
            .clone()
            .unwrap_or_else(|| PathBuf::from("own/cert.der")),
        plan.private_key
            .clone()
            .unwrap_or_else(|| PathBuf::from("private/private.pem")),
    )
}

/// Where the client certificate and key of `plan` live.
pub fn certificate_paths(plan: &ConnectPlan) -> (PathBuf, PathBuf) {
    let (cert, key) = relative_certificate_paths(plan);
    (plan.pki_dir.join(cert), plan.pki_dir.join(key))
}

/// Creates a self-signed application instance certificate (DER, valid ten
/// years, the application URI and this host's names in its subject
/// alternative names) and its private key (PEM), plus the `trusted/` and
/// `rejected/` folders of the store. Refuses to overwrite existing files
/// unless `overwrite`. Returns the certificate and key paths.
pub fn create_client_certificate(
    plan: &ConnectPlan,
    overwrite: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = certificate_paths(plan);
    if !overwrite && (cert.exists() || key.exists()) {
        return Err(format!(
            "{} or {} exists already (pass overwrite to replace them)",
            cert.display(),
            key.display()
        ));
    }
    let store = CertificateStore::new(&plan.pki_dir);
    store.ensure_pki_path()?;
    for p in [&cert, &key] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let mut data = X509Data::from(application(plan));
    data.certificate_duration_days = 3650;
    CertificateStore::create_certificate_and_key(&data, overwrite, &cert, &key)?;
    Ok((cert, key))
}

fn policy_str(p: SecurityPolicyName) -> &'static str {
    match p {
        SecurityPolicyName::None => "None",
        SecurityPolicyName::Basic256sha256 => "Basic256Sha256",
    }
}

fn mode_of(m: SecurityModeName) -> MessageSecurityMode {
    match m {
        SecurityModeName::None => MessageSecurityMode::None,
        SecurityModeName::Sign => MessageSecurityMode::Sign,
        SecurityModeName::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

/// Makes sure the client has a certificate: creates one when allowed
/// (also for security None, where servers still ask for the application's
/// identity), else says where it is missing when the channel is secured.
fn ensure_certificate(plan: &ConnectPlan) -> Result<(), ConnectError> {
    let (cert, key) = certificate_paths(plan);
    if cert.exists() && key.exists() {
        return Ok(());
    }
    if !plan.create_certificate {
        if plan.policy == SecurityPolicyName::None {
            return Ok(());
        }
        return Err(ConnectError::new(
            StatusCode::BadCertificateInvalid,
            format!(
                "client certificate {} or key {} is missing (create one with `dcmms-gateway opcua-cert`, or set create_certificate = true)",
                cert.display(),
                key.display()
            ),
        ));
    }
    let (cert, _) = create_client_certificate(plan, false)
        .map_err(|m| ConnectError::new(StatusCode::BadCertificateInvalid, m))?;
    tracing::info!(certificate = %cert.display(), "created a self-signed OPC UA client certificate; the server must trust it");
    Ok(())
}

/// Opens a session on `plan`'s endpoint and waits until it is activated
/// (bounded by the connect timeout).
pub async fn connect(plan: &ConnectPlan) -> Result<Connection, ConnectError> {
    ensure_certificate(plan)?;
    // The library looks for both relative to pki_dir.
    let (cert, key) = relative_certificate_paths(plan);
    let mut client = ClientBuilder::new()
        .application_name("dCMMS Edge gateway")
        .application_uri(plan.application_uri.as_str())
        .product_uri("urn:dcmms:edge")
        .pki_dir(plan.pki_dir.clone())
        .certificate_path(cert)
        .private_key_path(key)
        .create_sample_keypair(false)
        .trust_server_certs(plan.trust_server_cert)
        .session_retry_limit(0)
        .session_timeout(u32::try_from(plan.session_timeout.as_millis()).unwrap_or(u32::MAX))
        .request_timeout(plan.request_timeout)
        .keep_alive_interval(plan.request_timeout.min(std::time::Duration::from_secs(10)))
        .max_failed_keep_alive_count(2)
        // Publish responses of large subscriptions carry thousands of
        // notifications; the library's defaults (1,000 array elements,
        // 320 KiB messages) would drop the connection on the first burst.
        .max_array_length(MAX_ARRAY_LENGTH)
        .max_chunk_count(MAX_CHUNKS)
        .max_message_size(MAX_CHUNKS * 65535)
        .session_name("dcmms-gateway")
        .client()
        .map_err(|errs| ConnectError::new(StatusCode::BadConfigurationError, errs.join("; ")))?;
    let identity = match &plan.identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName { user, password } => {
            IdentityToken::new_user_name(user.clone(), password.clone())
        }
    };
    let endpoint: EndpointDescription = (
        plan.endpoint.as_str(),
        policy_str(plan.policy),
        mode_of(plan.mode),
        UserTokenPolicy::anonymous(),
    )
        .into();
    let opened = async {
        let (session, event_loop) = client
            .connect_to_matching_endpoint(endpoint, identity)
            .await
            .map_err(|e| ConnectError::new(e.status(), format!("{}: {e}", plan.endpoint)))?;
        let (lost_tx, lost) = watch::channel(None);
        let (ready_tx, ready) = oneshot::channel();
        let task = tokio::spawn(async move {
            let stream = event_loop.enter();
            futures_util::pin_mut!(stream);
            let mut ready_tx = Some(ready_tx);
            let end = loop {
                match stream.next().await {
                    Some(Ok(SessionPollResult::Reconnected(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Some(Ok(SessionPollResult::ConnectionLost(code)))
                    | Some(Ok(SessionPollResult::ReconnectFailed(code)))
                    | Some(Err(code)) => break code,
                    Some(Ok(_)) => {}
                    None => break StatusCode::BadConnectionClosed,
                }
            };
            match ready_tx.take() {
                Some(r) => {
                    let _ = r.send(Err(end));
                }
                None => {
                    let _ = lost_tx.send(Some(end));
                }
            }
        });
        match ready.await {
            Ok(Ok(())) => Ok(Connection {
                session,
                lost,
                task,
            }),
            Ok(Err(code)) => Err(ConnectError::new(
                code,
                format!("{}: session not opened: {code}", plan.endpoint),
            )),
            Err(_) => Err(ConnectError::new(
                StatusCode::BadUnexpectedError,
                format!("{}: session task ended", plan.endpoint),
            )),
        }
    };
    match tokio::time::timeout(plan.connect_timeout, opened).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::new(
            StatusCode::BadTimeout,
            format!(
                "{}: no session within {} ms",
                plan.endpoint,
                plan.connect_timeout.as_millis()
            ),
        )),
    }
}
