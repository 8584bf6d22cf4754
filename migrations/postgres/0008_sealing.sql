-- Writes no longer take a lock to append in order: what a transaction appends records the
-- transaction (`tx`), and is put in order after it commits (store/engine/seal.rs,
-- docs/design/event-order.md).

-- Events: `pos` is the cursor, given once the event's transaction has ended and every
-- transaction before it too. Existing events keep their id as their cursor.
ALTER TABLE events ADD COLUMN pos BIGINT;
ALTER TABLE events ADD COLUMN tx xid8;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
UPDATE events SET pos = id;
CREATE UNIQUE INDEX events_pos ON events(pos);
CREATE INDEX events_org_pos ON events(org_id, pos);
CREATE INDEX events_resource_pos ON events(resource_id, pos);
CREATE INDEX events_unsealed ON events(tx, id) WHERE pos IS NULL;
DROP INDEX events_org_cursor;
DROP INDEX events_resource;

-- Audit entries wait here, with their body but for their place in the chain, until they
-- are linked into `audit_log` (which stays append-only).
CREATE TABLE audit_pending (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain TEXT NOT NULL,
    at TEXT NOT NULL,
    tail TEXT NOT NULL,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX audit_pending_tx ON audit_pending(tx, id);

-- Users and groups get their list position (and count as live) once sealed; a deletion
-- leaves the counts once sealed. Writers never update the per-organization counter row.
ALTER TABLE users ALTER COLUMN pos DROP NOT NULL;
ALTER TABLE users ADD COLUMN tx xid8;
ALTER TABLE users ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX users_unsealed ON users(tx, id) WHERE pos IS NULL;
ALTER TABLE org_groups ALTER COLUMN pos DROP NOT NULL;
ALTER TABLE org_groups ADD COLUMN tx xid8;
ALTER TABLE org_groups ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX groups_unsealed ON org_groups(tx, id) WHERE pos IS NULL;
ALTER TABLE deleted_positions ADD COLUMN tx xid8;
ALTER TABLE deleted_positions ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
ALTER TABLE deleted_positions ADD COLUMN counted BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE deleted_positions ALTER COLUMN counted SET DEFAULT FALSE;
CREATE INDEX deleted_positions_uncounted ON deleted_positions(tx) WHERE NOT counted;
