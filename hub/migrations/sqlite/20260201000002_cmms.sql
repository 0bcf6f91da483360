-- Maintenance (CMMS) records: sites, assets, PM plans, work orders, parts stock.
-- Kept column-for-column equal to ../postgres/20260201000002_cmms.sql.
--
-- Instants are milliseconds since the Unix epoch (UTC, columns `*_ms`);
-- calendar dates are 'YYYY-MM-DD' text, which sorts chronologically.
-- Work orders and PM plans are stored as the serialized domain struct
-- (`doc`, `plan`, `state`); their other columns are an index of it, rewritten
-- on every save. User ids are the domain's ids and deliberately carry no
-- foreign key: work done offline may name users the hub learns of later.

CREATE TABLE sites (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    -- IANA time-zone label for display ("Europe/Madrid"); instants stay UTC.
    timezone   TEXT    NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE assets (
    id           TEXT    PRIMARY KEY,
    site         TEXT    NOT NULL REFERENCES sites (id),
    parent       TEXT    REFERENCES assets (id),
    name         TEXT    NOT NULL,
    -- AssetKind in snake_case; `other` keeps its free text in kind_other.
    kind         TEXT    NOT NULL,
    kind_other   TEXT,
    manufacturer TEXT,
    model        TEXT,
    serial       TEXT,
    installed_on TEXT,
    criticality  TEXT    NOT NULL,
    location     TEXT,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

CREATE INDEX assets_site_parent ON assets (site, parent);
CREATE INDEX assets_parent ON assets (parent);

-- Telemetry points measured on an asset (`site/device/point`), in order.
CREATE TABLE asset_points (
    asset    TEXT    NOT NULL REFERENCES assets (id),
    position INTEGER NOT NULL,
    point    TEXT    NOT NULL,
    PRIMARY KEY (asset, position)
) WITHOUT ROWID;

CREATE INDEX asset_points_point ON asset_points (point);

-- Named counters that mint human-friendly ids (`WO-000123`).
CREATE TABLE cmms_counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE pm_plans (
    id         TEXT    PRIMARY KEY,
    site       TEXT    NOT NULL REFERENCES sites (id),
    asset      TEXT    NOT NULL REFERENCES assets (id),
    -- 'calendar' or 'meter'.
    kind       TEXT    NOT NULL,
    -- Meter plans: the telemetry point read.
    point      TEXT,
    -- Calendar plans: first UTC date on which a run generates an occurrence;
    -- NULL when none is pending (meter plans, or a floating plan waiting for
    -- its outstanding work order).
    next_due   TEXT,
    title      TEXT    NOT NULL,
    plan       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE INDEX pm_plans_due ON pm_plans (kind, next_due);
CREATE INDEX pm_plans_site_asset ON pm_plans (site, asset);
CREATE INDEX pm_plans_point ON pm_plans (point);

CREATE TABLE work_orders (
    id              TEXT    PRIMARY KEY,
    site            TEXT    NOT NULL REFERENCES sites (id),
    asset           TEXT    NOT NULL REFERENCES assets (id),
    work_type       TEXT    NOT NULL,
    -- 'p1'..'p4': text order is urgency order.
    priority        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    due             TEXT,
    -- `due`, or '9999-12-31' without one: a NOT NULL sort key that orders
    -- the same on both databases (no due date sorts last ascending).
    due_key         TEXT    NOT NULL,
    scheduled_for   TEXT,
    sla_deadline_ms INTEGER NOT NULL,
    completed_ms    INTEGER,
    pm_plan         TEXT    REFERENCES pm_plans (id),
    pm_index        INTEGER,
    -- Earliest and latest labour/parts date, to pick work orders for cost
    -- roll-ups over a date range; NULL without costs.
    cost_from       TEXT,
    cost_to         TEXT,
    -- Optimistic concurrency: +1 on every save.
    version         INTEGER NOT NULL,
    -- The serialized WorkOrder: the truth.
    doc             TEXT    NOT NULL,
    -- Never two work orders for one PM occurrence.
    UNIQUE (pm_plan, pm_index)
);

-- Listing: one index per sort key, fleet-wide and per site, each ending in
-- the id (the keyset tie-breaker).
CREATE INDEX work_orders_created ON work_orders (created_ms, id);
CREATE INDEX work_orders_updated ON work_orders (updated_ms, id);
CREATE INDEX work_orders_due ON work_orders (due_key, id);
CREATE INDEX work_orders_priority ON work_orders (priority, id);
CREATE INDEX work_orders_site_created ON work_orders (site, created_ms, id);
CREATE INDEX work_orders_site_updated ON work_orders (site, updated_ms, id);
CREATE INDEX work_orders_site_due ON work_orders (site, due_key, id);
CREATE INDEX work_orders_site_priority ON work_orders (site, priority, id);
-- Filters that select few rows.
CREATE INDEX work_orders_asset ON work_orders (asset, created_ms);
CREATE INDEX work_orders_state_due ON work_orders (state, due_key, id);
CREATE INDEX work_orders_cost_to ON work_orders (cost_to);

-- Who a work order is assigned to, with copies of the work order's site,
-- state and sort keys (rewritten with it on every save), so that "work
-- assigned to me" is filtered, sorted and paged from these indexes alone.
CREATE TABLE work_order_assignees (
    work_order TEXT    NOT NULL REFERENCES work_orders (id),
    user_id    TEXT    NOT NULL,
    site       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    due_key    TEXT    NOT NULL,
    priority   TEXT    NOT NULL,
    PRIMARY KEY (work_order, user_id)
) WITHOUT ROWID;

CREATE INDEX work_order_assignees_created ON work_order_assignees (user_id, created_ms, work_order);
CREATE INDEX work_order_assignees_updated ON work_order_assignees (user_id, updated_ms, work_order);
CREATE INDEX work_order_assignees_due ON work_order_assignees (user_id, due_key, work_order);
CREATE INDEX work_order_assignees_priority ON work_order_assignees (user_id, priority, work_order);

CREATE TABLE parts (
    site            TEXT    NOT NULL REFERENCES sites (id),
    part            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    -- Stock unit ("pcs", "ml").
    unit            TEXT    NOT NULL,
    unit_cost_cents INTEGER NOT NULL,
    reorder_level   INTEGER,
    on_hand         INTEGER NOT NULL CHECK (on_hand >= 0),
    -- Sum of part_reservations.qty for this part, kept with them.
    reserved        INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (site, part)
);

CREATE TABLE part_reservations (
    site       TEXT    NOT NULL,
    part       TEXT    NOT NULL,
    work_order TEXT    NOT NULL REFERENCES work_orders (id),
    qty        INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (site, part, work_order),
    FOREIGN KEY (site, part) REFERENCES parts (site, part)
) WITHOUT ROWID;

CREATE INDEX part_reservations_work_order ON part_reservations (work_order);

-- Quantity of a part taken off the shelf for a work order so far, so that
-- completing a reopened work order again consumes only what is new.
CREATE TABLE part_consumptions (
    site       TEXT    NOT NULL,
    part       TEXT    NOT NULL,
    work_order TEXT    NOT NULL REFERENCES work_orders (id),
    qty        INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (site, part, work_order),
    FOREIGN KEY (site, part) REFERENCES parts (site, part)
) WITHOUT ROWID;

CREATE INDEX part_consumptions_work_order ON part_consumptions (work_order);
