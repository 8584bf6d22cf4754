-- Organizations, directories and their tokens, users, groups, memberships, events.
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sorts chronologically); ids are opaque UUIDs.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE directories (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX directories_org ON directories(org_id);

CREATE TABLE directory_tokens (
    id TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories(id),
    org_id TEXT NOT NULL REFERENCES orgs(id),
    token_hash TEXT NOT NULL UNIQUE,
    read_only INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX directory_tokens_dir ON directory_tokens(directory_id);

CREATE TABLE users (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    pos BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    user_name_norm TEXT NOT NULL,
    external_id TEXT,
    active INTEGER NOT NULL,
    attrs TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    provenance TEXT NOT NULL,
    directory_id TEXT,
    last_directory_sync_at TEXT,
    last_login_at TEXT
);
CREATE UNIQUE INDEX users_org_user_name ON users(org_id, user_name_norm);
CREATE UNIQUE INDEX users_org_pos ON users(org_id, pos);
CREATE INDEX users_org_external_id ON users(org_id, external_id);

CREATE TABLE org_groups (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    pos BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    display_name_norm TEXT NOT NULL,
    external_id TEXT,
    attrs TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    directory_id TEXT
);
CREATE UNIQUE INDEX groups_org_pos ON org_groups(org_id, pos);
CREATE INDEX groups_org_display_name ON org_groups(org_id, display_name_norm);
CREATE INDEX groups_id_display_name ON org_groups(id, display_name);

-- Per organization and resource type: how many live resources, and the next position.
-- Positions are dense per organization (1, 2, 3...); deleted ones are listed below, so the
-- K-th resource of a list is found by index, not by skipping K rows (see store::positions).
CREATE TABLE org_counters (
    org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    live BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    next_pos BIGINT NOT NULL,
    PRIMARY KEY (org_id, kind)
);

CREATE TABLE deleted_positions (
    org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    pos BIGINT NOT NULL,
    PRIMARY KEY (org_id, kind, pos)
);

-- One row per membership: membership changes are set operations, never list rewrites.
CREATE TABLE group_members (
    org_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
-- Covering: a user's groups are read with every user (see Dialect::user_groups_json).
CREATE INDEX group_members_member ON group_members(member_id, org_id, group_id);

-- The outbox: one row per change, written in the change's transaction.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT,
    kind TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX events_org_cursor ON events(org_id, id);

-- Sessions and refresh tokens issued to users (filled by the SSO layer); deprovisioning
-- revokes them in the same transaction that deactivates the user.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
