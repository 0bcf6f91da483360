//! Password hashing: argon2id PHC strings, computed on the blocking pool.
//!
//! Hashing is slow by design (about 19 MiB and two passes per attempt), so
//! it never runs on the async workers, and at most a few run at once: a
//! burst of logins waits for a permit instead of exhausting memory. A login
//! for an unknown user still verifies against a dummy hash, so the answer
//! takes as long as for a known one. Passwords are never logged or stored.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters (Unicode scalar values, not bytes) a password may have;
/// at most 4 bytes each, so this also bounds the work of one attempt.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Hashes computed at once.
const CONCURRENT_HASHES: usize = 4;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the password hashing task failed")]
    Task,
}

/// Why a new password is refused: it must have [`MIN_PASSWORD_CHARS`] to
/// [`MAX_PASSWORD_CHARS`] characters, counted as Unicode scalar values
/// (what the OpenAPI document's `minLength`/`maxLength` count). The text is
/// meant for the user.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"))
    } else if chars > MAX_PASSWORD_CHARS {
        Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"))
    } else {
        Ok(())
    }
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .finish()
    }
}

impl Default for Hasher {
    /// argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1), the
    /// OWASP recommendation.
    fn default() -> Self {
        Hasher::with_params(Params::default())
    }
}

impl Hasher {
    pub fn with_params(params: Params) -> Self {
        Hasher {
            params,
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// The cheapest parameters argon2 allows, for tests only: hashes made
    /// with them verify as fast (verification reads the cost from the hash).
    pub fn for_tests() -> Self {
        match Params::new(Params::MIN_M_COST, 1, 1, None) {
            Ok(p) => Hasher::with_params(p),
            Err(_) => Hasher::default(),
        }
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    fn hash_now(params: Params, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        Self::argon2(params)
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(PasswordError::Hash)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| PasswordError::Task)
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.params.clone();
        self.blocking(move || Self::hash_now(params, &password))
            .await?
    }

    /// Whether `password` matches `phc`. With no hash (unknown user) it
    /// verifies against a dummy hash and answers false, taking as long.
    /// A stored hash that does not parse counts as a mismatch (and is logged).
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let (phc, known) = match phc {
            Some(p) => (p, true),
            None => (self.dummy_hash().await?, false),
        };
        let ok = self
            .blocking(move || match PasswordHash::new(&phc) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(e) => {
                    tracing::error!(error = %e, "a stored password hash does not parse");
                    false
                }
            })
            .await?;
        Ok(ok && known)
    }

    async fn dummy_hash(&self) -> Result<String, PasswordError> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let h = self.hash("not a password of anyone".to_owned()).await?;
        Ok(self.dummy.get_or_init(|| h).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let h = Hasher::for_tests();
        let a = h.hash("correct horse battery".into()).await.unwrap();
        let b = h.hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(!a.contains("horse"));
        assert!(h
            .verify("correct horse battery".into(), Some(a.clone()))
            .await
            .unwrap());
        assert!(!h
            .verify("correct horse batterY".into(), Some(a))
            .await
            .unwrap());
        assert!(!h.verify("anything at all".into(), None).await.unwrap());
        assert!(!h
            .verify("x".into(), Some("not a hash".into()))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn default_cost_is_owasp_argon2id() {
        let h = Hasher::default();
        let phc = h.hash("a long enough secret".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // A cheap verifier checks it with the cost written in the hash.
        assert!(Hasher::for_tests()
            .verify("a long enough secret".into(), Some(phc))
            .await
            .unwrap());
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        let (short, long) = (
            "must be at least 12 characters",
            "must be at most 256 characters",
        );
        assert_eq!(check_policy("short").unwrap_err(), short);
        assert_eq!(check_policy("elevenchars").unwrap_err(), short);
        assert_eq!(check_policy("twelve chars"), Ok(()));
        // 12 characters of 2 bytes, and of 4 bytes (24 and 48 bytes).
        assert_eq!(check_policy(&"ä".repeat(12)), Ok(()));
        assert_eq!(check_policy(&"😀".repeat(12)), Ok(()));
        // 11 characters are too few however many bytes they take.
        assert_eq!(check_policy(&"😀".repeat(11)).unwrap_err(), short);
        // The upper bound is 256 characters: 1,024 bytes of emoji pass,
        // 257 one-byte characters do not.
        assert_eq!(check_policy(&"x".repeat(MAX_PASSWORD_CHARS)), Ok(()));
        assert_eq!(check_policy(&"😀".repeat(MAX_PASSWORD_CHARS)), Ok(()));
        assert_eq!(
            check_policy(&"x".repeat(MAX_PASSWORD_CHARS + 1)).unwrap_err(),
            long
        );
        assert_eq!(
            check_policy(&"ü".repeat(MAX_PASSWORD_CHARS + 1)).unwrap_err(),
            long
        );
        assert_eq!(MAX_PASSWORD_CHARS, 256);
    }
}
