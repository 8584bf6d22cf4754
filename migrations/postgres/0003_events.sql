-- Lifecycle events: the full actor and request on each event, the hash-chained audit log,
-- webhooks with their deliveries, admin API keys, group-to-role mappings and the roles
-- they grant, and per-directory SCIM traffic counters for the drift report.

-- Who acted, in full (JSON: type plus directory/token, connection, app or admin key ids),
-- the request that caused it and when that request arrived (deprovisioning latency).
ALTER TABLE events ADD COLUMN actor TEXT;
ALTER TABLE events ADD COLUMN request_id TEXT;
ALTER TABLE events ADD COLUMN received_at TEXT;
CREATE INDEX events_resource ON events(resource_id, id);

-- Append-only and hash-chained, one chain per organization ('' for deployment-wide
-- actions): hash = SHA-256(prev_hash || "\n" || body). Retention deletes a chain's oldest
-- entries and records the last deleted entry's hash as the chain's anchor.
CREATE TABLE audit_log (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_log_at ON audit_log(chain, at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE audit_anchors (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_at TEXT NOT NULL
);

CREATE TABLE admin_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs(id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    read_only INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A webhook endpoint delivers the events of its organization (or of all, org_id NULL)
-- whose type matches one of its patterns, in cursor order. `cursor` is the last event it
-- has settled (delivered, failed for good, or not its type); the next one is retried at
-- `next_attempt_at`. A node delivers for an endpoint only while it holds its lease.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs(id),
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret_enc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    cursor BIGINT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT
);

-- One row per (endpoint, event) attempted; `failed` once retries ran out.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id BIGINT NOT NULL,
    org_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT NOT NULL,
    next_attempt_at TEXT,
    response_status INTEGER,
    last_error TEXT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(endpoint_id, status);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    response_status INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    node TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- IdP groups (by displayName, compared case-insensitively, or by externalId) map to app
-- roles. `role_grants` holds each role a user has and why: `source` is the id of the
-- mapped group it comes through, or 'idp' for the group claims of the user's logins. A role
-- is assigned while any grant of it remains; grants change in the transaction of every
-- change that moves them (membership, group rename, mapping, login).
CREATE TABLE role_mappings (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    match_on TEXT NOT NULL,
    group_value TEXT NOT NULL,
    group_value_norm TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (org_id, match_on, group_value_norm, role)
);

CREATE TABLE role_grants (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (user_id, role, source)
);
CREATE INDEX role_grants_source ON role_grants(source, user_id);

-- The login's group claims, case-folded, for displayName mappings.
ALTER TABLE user_identities ADD COLUMN idp_groups_norm TEXT;

-- SCIM traffic per directory, client (User-Agent) and minute; each node adds its counts.
CREATE TABLE directory_traffic (
    directory_id TEXT NOT NULL,
    minute TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    last_request_at TEXT NOT NULL,
    PRIMARY KEY (directory_id, minute, user_agent)
);
