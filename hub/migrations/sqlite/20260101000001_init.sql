-- Gateways, their point catalogs, committed telemetry blocks and samples.
-- Kept column-for-column equal to ../postgres/20260101000001_init.sql.

CREATE TABLE gateways (
    id            INTEGER PRIMARY KEY,
    site          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    tenant        TEXT    NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    -- Latest GatewayStatus as JSON, and when it arrived.
    status_json   TEXT,
    status_ms     INTEGER,
    -- Catalog entries held for this gateway (ids 0..catalog_len).
    catalog_len   INTEGER NOT NULL DEFAULT 0,
    -- Highest sequence up to which every block is settled (committed or rejected).
    acked_seq     INTEGER NOT NULL DEFAULT 0,
    max_seq       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (site, name)
);

CREATE TABLE points (
    gateway_id INTEGER NOT NULL REFERENCES gateways (id),
    point_id   INTEGER NOT NULL,
    -- site/device/point
    name       TEXT    NOT NULL UNIQUE,
    PRIMARY KEY (gateway_id, point_id)
);

CREATE TABLE blocks (
    gateway_id   INTEGER NOT NULL REFERENCES gateways (id),
    seq          INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    -- Refused for good (undecodable); acked as rejected.
    rejected     BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (gateway_id, seq)
) WITHOUT ROWID;

CREATE TABLE telemetry (
    gateway_id INTEGER NOT NULL,
    point_id   INTEGER NOT NULL,
    ts_ms      INTEGER NOT NULL,
    -- NULL when the gateway sent NaN (no valid value); quality says why.
    value      REAL,
    quality    SMALLINT NOT NULL
);

CREATE INDEX telemetry_point_ts ON telemetry (gateway_id, point_id, ts_ms);
