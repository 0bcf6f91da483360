//! Bearer tokens and random identifiers.
//!
//! A token is 32 random bytes from the operating system, shown once as
//! `dcmms_` and 64 hex digits; the database keeps only its SHA-256, so a
//! copy of the database does not let anyone in.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "dcmms_";

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct RandomError(String);

fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes)
}

/// A token just issued: `secret` goes to the client once, `sha256` to the
/// database.
pub struct IssuedToken {
    pub id: String,
    pub secret: String,
    pub sha256: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("id", &self.id).finish()
    }
}

pub fn issue() -> Result<IssuedToken, RandomError> {
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(random::<32>()?));
    Ok(IssuedToken {
        id: new_id()?,
        sha256: sha256_hex(&secret),
        secret,
    })
}

/// Hex SHA-256 of a presented token, as stored.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header value, if the
/// value has that form and the token looks like one of ours.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let digits = token.strip_prefix(TOKEN_PREFIX)?;
    (digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

/// A random identifier in UUID version 4 form.
pub fn new_id() -> Result<String, RandomError> {
    let mut b = random::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A random password for the first administrator: 24 characters from an
/// alphabet without look-alikes (about 138 bits).
pub fn generate_password() -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        for b in random::<32>()? {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if (b as usize) < limit && out.len() < 24 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_hash() {
        let t = issue().unwrap();
        assert!(t.secret.starts_with("dcmms_") && t.secret.len() == 70);
        assert_eq!(t.sha256, sha256_hex(&t.secret));
        assert_ne!(t.sha256, issue().unwrap().sha256);
        assert_eq!(
            parse_bearer(&format!("Bearer {}", t.secret)),
            Some(t.secret.as_str())
        );
        assert_eq!(
            parse_bearer(&format!("bearer  {}", t.secret)),
            Some(t.secret.as_str())
        );
        assert_eq!(parse_bearer(&format!("Basic {}", t.secret)), None);
        assert_eq!(parse_bearer(&t.secret), None);
        assert_eq!(parse_bearer("Bearer dcmms_zz"), None);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn ids_and_passwords() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let p = generate_password().unwrap();
        assert_eq!(p.chars().count(), 24);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
        assert_ne!(p, generate_password().unwrap());
    }
}
