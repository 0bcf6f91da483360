//! The hub's certificate authority: gateway enrolment and the broker's
//! server certificate.
//!
//! Layout under the state folder:
//! - `ca/ca.pem`, `ca/ca.key.pem`: the CA (ECDSA P-256), created on first use;
//! - `broker/server.pem`, `broker/server.key.pem`: the TLS certificate
//!   gateways see, re-issued when its names change or it nears expiry;
//! - `broker-internal/`: the same for the loopback listener of the embedded
//!   broker behind the hub's TLS front (see `front`).
//!
//! A gateway's client certificate carries O = [`tenant_id`]`(site, gateway)`
//! (the broker confines the client to `/tenants/{O}/`) and CN =
//! `site/gateway`. Private keys are written with mode 0600. Each folder is
//! built aside and renamed into place, so a crash or a concurrent first use
//! never leaves a key without its certificate.

use dcmms_shared::topic::tenant_id;
use dcmms_shared::validate_name;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

const CA_DIR: &str = "ca";
const BROKER_DIR: &str = "broker";
const INTERNAL_DIR: &str = "broker-internal";
const CERT_FILE: &str = "ca.pem";
const KEY_FILE: &str = "ca.key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key.pem";
const CA_DAYS: i64 = 20 * 365;
const GATEWAY_DAYS: i64 = 5 * 365;
const SERVER_DAYS: i64 = 2 * 365;
/// Front identities live in memory and are re-issued at every start.
const FRONT_DAYS: i64 = 365;
/// A server certificate closer than this to expiry is re-issued at start.
const SERVER_RENEW_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} name {name:?}: {err}")]
    BadName {
        what: &'static str,
        name: String,
        err: dcmms_shared::NameError,
    },
    #[error("{path}: unusable certificate or key: {message}")]
    BadMaterial { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// PEM texts of a newly issued client certificate.
#[derive(Debug, Clone)]
pub struct GatewayCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate's organisation, i.e. the gateway's broker tenant.
    pub tenant: String,
}

/// Files written by [`enroll`].
#[derive(Debug, Clone)]
pub struct EnrolledFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub tenant: String,
}

/// Paths of the broker's TLS material.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The hub's certificate authority, loaded from (or created in) a state folder.
pub struct Authority {
    state_dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from `state_dir/ca`, creating the folders and the CA
    /// first if needed.
    pub fn open_or_create(state_dir: &Path) -> Result<Authority, PkiError> {
        make_private_dir(state_dir)?;
        let ca_dir = state_dir.join(CA_DIR);
        if !ca_dir.join(CERT_FILE).exists() {
            create_ca(state_dir)?;
        }
        let cert_path = ca_dir.join(CERT_FILE);
        let key_path = ca_dir.join(KEY_FILE);
        let ca_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadMaterial {
            path: key_path.clone(),
            message: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| PkiError::BadMaterial {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
        Ok(Authority {
            state_dir: state_dir.to_owned(),
            ca_pem,
            issuer,
        })
    }

    /// Path of the CA certificate (the trust root gateways are given).
    pub fn ca_path(&self) -> PathBuf {
        self.state_dir.join(CA_DIR).join(CERT_FILE)
    }

    /// The CA certificate in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a client certificate for `site/gateway`.
    pub fn issue_gateway(&self, site: &str, gateway: &str) -> Result<GatewayCredentials, PkiError> {
        validate(site, "site")?;
        validate(gateway, "gateway")?;
        let tenant = tenant_id(site, gateway);
        let (cert_pem, key_pem) =
            self.issue_client(&tenant, &format!("{site}/{gateway}"), GATEWAY_DAYS)?;
        Ok(GatewayCredentials {
            ca_pem: self.ca_pem.clone(),
            cert_pem,
            key_pem,
            tenant,
        })
    }

    /// Issues the short-lived identity the hub's TLS front presents to the
    /// internal broker listener on behalf of a gateway of `tenant` (kept in
    /// memory only). Returns (certificate PEM, key PEM).
    pub fn issue_front_identity(&self, tenant: &str) -> Result<(String, String), PkiError> {
        self.issue_client(tenant, "dcmms-hub-front", FRONT_DAYS)
    }

    fn issue_client(
        &self,
        organization: &str,
        common_name: &str,
        days: i64,
    ) -> Result<(String, String), PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, organization);
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, days);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Makes sure `state_dir/broker` holds a server certificate from this CA
    /// for exactly `hostnames` that is not about to expire; issues one
    /// otherwise. Gateways see this certificate.
    pub fn ensure_server_cert(&self, hostnames: &[String]) -> Result<ServerFiles, PkiError> {
        self.ensure_cert_in(BROKER_DIR, hostnames)
    }

    /// Same for `state_dir/broker-internal`: the certificate of the
    /// loopback listener behind the hub's TLS front.
    pub fn ensure_internal_cert(&self) -> Result<ServerFiles, PkiError> {
        self.ensure_cert_in(INTERNAL_DIR, &["127.0.0.1".to_owned()])
    }

    fn ensure_cert_in(
        &self,
        dir_name: &str,
        hostnames: &[String],
    ) -> Result<ServerFiles, PkiError> {
        let dir = self.state_dir.join(dir_name);
        let files = ServerFiles {
            ca: self.ca_path(),
            cert: dir.join(SERVER_CERT),
            key: dir.join(SERVER_KEY),
        };
        if files.cert.exists()
            && files.key.exists()
            && self.server_cert_is_current(&files.cert, hostnames)
        {
            return Ok(files);
        }
        let mut params = CertificateParams::new(hostnames.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "dCMMS hub broker");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, SERVER_DAYS);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        replace_dir(
            &self.state_dir,
            dir_name,
            &[
                (SERVER_CERT, cert.pem(), false),
                (SERVER_KEY, key.serialize_pem(), true),
            ],
        )?;
        tracing::info!(path = %files.cert.display(), ?hostnames, "issued a broker server certificate");
        Ok(files)
    }

    fn server_cert_is_current(&self, cert_path: &Path, hostnames: &[String]) -> bool {
        let Ok(pem) = fs::read(cert_path) else {
            return false;
        };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
            return false;
        };
        let Ok(cert) = pem.parse_x509() else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::pem::parse_x509_pem(self.ca_pem.as_bytes()) else {
            return false;
        };
        let Ok(ca) = ca.parse_x509() else {
            return false;
        };
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return false;
        }
        let renew_at = OffsetDateTime::now_utc() + Duration::days(SERVER_RENEW_DAYS);
        if cert.validity().not_after.to_datetime() < renew_at {
            return false;
        }
        let mut have: Vec<String> = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => ip_from_bytes(ip),
                    _ => None,
                })
                .collect(),
            _ => return false,
        };
        let mut want: Vec<String> = hostnames
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => h.clone(),
            })
            .collect();
        have.sort();
        want.sort();
        want.dedup();
        have == want
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

/// Issues a client certificate for `site/gateway` from the CA in
/// `state_dir` (creating the CA on first use) and writes `out_dir/ca.pem`,
/// `cert.pem` and `key.pem` (0600). Refuses to overwrite an existing
/// `key.pem` unless `force`.
pub fn enroll(
    state_dir: &Path,
    site: &str,
    gateway: &str,
    out_dir: &Path,
    force: bool,
) -> Result<EnrolledFiles, PkiError> {
    validate(site, "site")?;
    validate(gateway, "gateway")?;
    let files = EnrolledFiles {
        ca: out_dir.join("ca.pem"),
        cert: out_dir.join("cert.pem"),
        key: out_dir.join("key.pem"),
        tenant: tenant_id(site, gateway),
    };
    if files.key.exists() && !force {
        return Err(PkiError::Exists(files.key));
    }
    let ca = Authority::open_or_create(state_dir)?;
    let creds = ca.issue_gateway(site, gateway)?;
    fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    write_atomic(&files.key, creds.key_pem.as_bytes(), true)?;
    write_atomic(&files.cert, creds.cert_pem.as_bytes(), false)?;
    write_atomic(&files.ca, creds.ca_pem.as_bytes(), false)?;
    Ok(files)
}

fn validate(name: &str, what: &'static str) -> Result<(), PkiError> {
    validate_name(name).map_err(|err| PkiError::BadName {
        what,
        name: name.chars().take(80).collect(),
        err,
    })
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // Back-dated an hour to tolerate clock skew between hub and gateways.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

fn create_ca(state_dir: &Path) -> Result<(), PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "dCMMS");
    dn.push(DnType::CommonName, "dCMMS hub CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_DAYS);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    match replace_dir_if_absent(
        state_dir,
        CA_DIR,
        &[
            (CERT_FILE, cert.pem(), false),
            (KEY_FILE, key.serialize_pem(), true),
        ],
    )? {
        true => {
            tracing::info!(dir = %state_dir.join(CA_DIR).display(), "created hub certificate authority")
        }
        false => tracing::debug!("another process created the CA first; using it"),
    }
    Ok(())
}

fn make_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Writes files into a fresh folder beside `parent/name`; returns the path.
fn stage_dir(
    parent: &Path,
    name: &str,
    files: &[(&str, String, bool)],
) -> Result<PathBuf, PkiError> {
    let suffix: u64 = rand::random();
    let tmp = parent.join(format!(".{name}.tmp-{suffix:016x}"));
    make_private_dir(&tmp)?;
    for (file, text, secret) in files {
        write_new(&tmp.join(file), text.as_bytes(), *secret)?;
    }
    Ok(tmp)
}

/// Renames a staged folder to `parent/name` unless that exists; returns
/// whether this call created it.
fn replace_dir_if_absent(
    parent: &Path,
    name: &str,
    files: &[(&str, String, bool)],
) -> Result<bool, PkiError> {
    let tmp = stage_dir(parent, name, files)?;
    let target = parent.join(name);
    // rename(2) of a folder onto an existing non-empty folder fails, so the
    // first of two racing creators wins and the other uses its CA.
    match fs::rename(&tmp, &target) {
        Ok(()) => Ok(true),
        Err(e) if target.join(files[0].0).exists() => {
            let _ = fs::remove_dir_all(&tmp);
            tracing::debug!(error = %e, "CA folder already present");
            Ok(false)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(PkiError::Io {
                path: target,
                source: e,
            })
        }
    }
}

/// Replaces `parent/name` with a folder holding `files`.
fn replace_dir(parent: &Path, name: &str, files: &[(&str, String, bool)]) -> Result<(), PkiError> {
    let tmp = stage_dir(parent, name, files)?;
    let target = parent.join(name);
    if target.exists() {
        let suffix: u64 = rand::random();
        let old = parent.join(format!(".{name}.old-{suffix:016x}"));
        fs::rename(&target, &old).map_err(io_err(&target))?;
        let _ = fs::remove_dir_all(&old);
    }
    fs::rename(&tmp, &target).map_err(io_err(&target))
}

fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Writes `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let suffix: u64 = rand::random();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{suffix:016x}"));
    write_new(&tmp, bytes, secret)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PkiError::Io {
            path: path.to_owned(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn parse(pem: &[u8]) -> (Vec<u8>, String, String) {
        let (_, pem) = parse_x509_pem(pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let o = cert
            .subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        (pem.contents.clone(), o, cn)
    }

    #[test]
    fn enrol_writes_a_client_cert_whose_o_is_the_tenant() {
        let state = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let files = enroll(
            state.path(),
            "solar-1",
            "gw-a",
            &out.path().join("gw"),
            false,
        )
        .unwrap();
        assert_eq!(files.tenant, tenant_id("solar-1", "gw-a"));

        let (_, o, cn) = parse(&fs::read(&files.cert).unwrap());
        assert_eq!(o, tenant_id("solar-1", "gw-a"));
        assert_eq!(cn, "solar-1/gw-a");

        // Signed by the CA in the state folder, which is the ca.pem handed out.
        let ca_pem = fs::read(state.path().join("ca/ca.pem")).unwrap();
        assert_eq!(fs::read(&files.ca).unwrap(), ca_pem);
        let (_, ca) = parse_x509_pem(&ca_pem).unwrap();
        let ca = ca.parse_x509().unwrap();
        assert!(ca.is_ca());
        let (_, leaf) = parse_x509_pem(&fs::read(&files.cert).unwrap()).unwrap();
        let leaf = leaf.parse_x509().unwrap();
        leaf.verify_signature(Some(ca.public_key())).unwrap();

        let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let ca_key_mode = fs::metadata(state.path().join("ca/ca.key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(ca_key_mode, 0o600);
        assert!(KeyPair::from_pem(&fs::read_to_string(&files.key).unwrap()).is_ok());
    }

    #[test]
    fn second_enrolment_reuses_the_ca_and_refuses_to_overwrite_without_force() {
        let state = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let a = enroll(state.path(), "s", "a", &out.path().join("a"), false).unwrap();
        let b = enroll(state.path(), "s", "b", &out.path().join("b"), false).unwrap();
        assert_eq!(fs::read(&a.ca).unwrap(), fs::read(&b.ca).unwrap());
        assert!(matches!(
            enroll(state.path(), "s", "a", &out.path().join("a"), false),
            Err(PkiError::Exists(_))
        ));
        enroll(state.path(), "s", "a", &out.path().join("a"), true).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        let state = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for (site, gw) in [("", "g"), ("s/x", "g"), ("s", "g+"), ("s", "")] {
            assert!(matches!(
                enroll(state.path(), site, gw, out.path(), false),
                Err(PkiError::BadName { .. })
            ));
        }
    }

    #[test]
    fn server_cert_is_reissued_only_when_names_change() {
        let state = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(state.path()).unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let f1 = ca.ensure_server_cert(&names).unwrap();
        let first = fs::read(&f1.cert).unwrap();
        let f2 = ca.ensure_server_cert(&names).unwrap();
        assert_eq!(fs::read(&f2.cert).unwrap(), first);
        let f3 = ca
            .ensure_server_cert(&["hub.example.net".to_owned()])
            .unwrap();
        assert_ne!(fs::read(&f3.cert).unwrap(), first);
        // A new CA makes the old server certificate stale as well.
        let other = tempfile::tempdir().unwrap();
        let ca2 = Authority::open_or_create(other.path()).unwrap();
        assert!(!ca2.server_cert_is_current(&f3.cert, &["hub.example.net".to_owned()]));
        assert!(ca.server_cert_is_current(&f3.cert, &["hub.example.net".to_owned()]));
    }
}
