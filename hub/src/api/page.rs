//! Paging of list endpoints: one pattern for every listing.
//!
//! A list takes `limit` (1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and
//! `cursor`, and answers `{"<items>": [...], "next": "<cursor>" | null}`.
//! Paging is keyset, never OFFSET: the store fetches `limit + 1` rows
//! strictly after the position the cursor names (sort key and id of the
//! last row shown), so pages stay stable while rows are inserted. A cursor
//! is opaque to clients (hex of a JSON array); its first element names the
//! listing and order it belongs to, so a cursor from another listing or
//! another sort is refused with 400.
//!
//! Free-text filters go through [`text_filter`]: PostgreSQL text cannot
//! hold a NUL character, so a filter with one is refused (400) on either
//! database, as the document says ([`NO_NUL_PATTERN`]), rather than failing
//! in the database.

use super::ApiError;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// What a free-text filter may be: anything without a NUL character.
pub const NO_NUL_PATTERN: &str = "^[^\\x00]*$";

/// A free-text query filter named `name`, or 400 if it holds a NUL.
pub fn text_filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.contains('\0') => Err(ApiError::bad_request(format!(
            "`{name}` must not contain a NUL character"
        ))),
        v => Ok(v),
    }
}

/// `limit` checked against the bounds.
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// A position in one listing: `tag` names the listing and its order,
/// `key` the position (e.g. sort key and id of the last row shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub tag: String,
    pub key: Vec<String>,
}

impl Cursor {
    pub fn new(tag: impl Into<String>, key: Vec<String>) -> Self {
        Cursor {
            tag: tag.into(),
            key,
        }
    }

    pub fn encode(&self) -> String {
        let mut parts = vec![self.tag.clone()];
        parts.extend(self.key.iter().cloned());
        hex::encode(serde_json::Value::from(parts).to_string())
    }

    /// Decodes a cursor given back by a client; it must carry `tag` and
    /// `key_len` key parts.
    pub fn decode(text: &str, tag: &str, key_len: usize) -> Result<Cursor, ApiError> {
        let err = || {
            ApiError::bad_request(
                "`cursor` is not a value returned as `next` by this listing and sort",
            )
        };
        let bytes = hex::decode(text).map_err(|_| err())?;
        let mut parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| err())?;
        // Keys handed out come from stored rows, which hold no NUL.
        if parts.len() != key_len + 1 || parts[0] != tag || parts.iter().any(|p| p.contains('\0')) {
            return Err(err());
        }
        let key = parts.split_off(1);
        Ok(Cursor {
            tag: tag.to_owned(),
            key,
        })
    }
}

/// Cuts `rows` (fetched with `limit + 1`) to `limit` and returns the
/// cursor of the next page, if there is one.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| cursor_of(r).encode());
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_listing() {
        let c = Cursor::new("users:username:asc", vec!["ana".into(), "id-1".into()]);
        let text = c.encode();
        assert_eq!(Cursor::decode(&text, "users:username:asc", 2).unwrap(), c);
        assert!(Cursor::decode(&text, "users:created_at:asc", 2).is_err());
        assert!(Cursor::decode(&text, "users:username:asc", 1).is_err());
        assert!(Cursor::decode("zz", "users:username:asc", 2).is_err());
        assert!(Cursor::decode(&hex::encode("{}"), "users:username:asc", 2).is_err());
        let nul = hex::encode(r#"["users:username:asc","a\u0000","id-1"]"#);
        assert!(Cursor::decode(&nul, "users:username:asc", 2).is_err());
    }

    #[test]
    fn pages_and_limits() {
        let cur = |n: &i32| Cursor::new("n", vec![n.to_string()]);
        let (rows, next) = split_page(vec![1, 2, 3], 3, cur);
        assert_eq!((rows, next), (vec![1, 2, 3], None));
        let (rows, next) = split_page(vec![1, 2, 3, 4], 3, cur);
        assert_eq!(rows, vec![1, 2, 3]);
        assert_eq!(Cursor::decode(&next.unwrap(), "n", 1).unwrap().key, ["3"]);
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(1000)).unwrap(), 1000);
        assert!(limit(Some(0)).is_err() && limit(Some(1001)).is_err());
        assert_eq!(text_filter("x", None).unwrap(), None);
        assert_eq!(
            text_filter("x", Some("a b".into())).unwrap().as_deref(),
            Some("a b")
        );
        assert!(text_filter("x", Some("a\0b".into())).is_err());
    }
}
