-- Users, their per-site roles, API bearer tokens, and the append-only audit log.
-- Kept column-for-column equal to ../postgres/20260201000001_auth.sql.

CREATE TABLE users (
    id                TEXT    PRIMARY KEY,
    -- Lower-case [a-z0-9._-], compared as stored.
    username          TEXT    NOT NULL UNIQUE,
    display_name      TEXT    NOT NULL,
    -- argon2id PHC string; never the password.
    password_hash     TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('staff', 'contractor')),
    -- Fleet-wide administrator (staff only).
    is_admin          BOOLEAN NOT NULL DEFAULT FALSE,
    -- Labour cost per hour, in cents of the fleet's currency.
    hourly_rate_cents INTEGER NOT NULL DEFAULT 0 CHECK (hourly_rate_cents >= 0),
    disabled          BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL,
    CHECK (NOT (is_admin AND kind = 'contractor'))
);

CREATE TABLE user_site_roles (
    user_id    TEXT    NOT NULL REFERENCES users (id),
    site       TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'technician', 'supervisor', 'admin')),
    granted_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, site)
);

CREATE INDEX user_site_roles_site ON user_site_roles (site);

CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id),
    -- Hex SHA-256 of the bearer token; the token itself is never stored.
    token_sha256 TEXT    NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    last_used_ms INTEGER,
    revoked      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    -- NULL for the hub itself (first-start administrator).
    actor_id    TEXT,
    actor_name  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    entity_kind TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    site        TEXT,
    -- The entity as JSON before and after the change; never secrets.
    before_json TEXT,
    after_json  TEXT
);

CREATE INDEX audit_log_entity ON audit_log (entity_kind, entity_id);
CREATE INDEX audit_log_site ON audit_log (site);
CREATE INDEX audit_log_actor ON audit_log (actor_id);
CREATE INDEX audit_log_at ON audit_log (at_ms);

-- Append-only, whatever the client: no row is ever changed or removed.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
