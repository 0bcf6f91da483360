-- Listing filtered by state, priority or type and sorted by another key:
-- the filter and the sort key in one index, each ending in the id (the
-- keyset tie-breaker), so that a page is an index range instead of a walk
-- of the sort index that skips the rows the filter refuses.
CREATE INDEX work_orders_state_created ON work_orders (state, created_ms, id);
CREATE INDEX work_orders_state_updated ON work_orders (state, updated_ms, id);
CREATE INDEX work_orders_state_priority ON work_orders (state, priority, id);
CREATE INDEX work_orders_priority_created ON work_orders (priority, created_ms, id);
CREATE INDEX work_orders_priority_updated ON work_orders (priority, updated_ms, id);
CREATE INDEX work_orders_priority_due ON work_orders (priority, due_key, id);
CREATE INDEX work_orders_type_created ON work_orders (work_type, created_ms, id);
CREATE INDEX work_orders_type_updated ON work_orders (work_type, updated_ms, id);
CREATE INDEX work_orders_type_priority ON work_orders (work_type, priority, id);
CREATE INDEX work_orders_type_due ON work_orders (work_type, due_key, id);
