-- The console and the customer setup page.

-- The most recent SCIM requests per directory: method, path (no query, never a body),
-- status, latency and client. Each node adds the newest of what it served every few
-- seconds; only the newest 200 per directory are kept.
CREATE TABLE scim_requests (
    seq BIGSERIAL PRIMARY KEY,
    directory_id TEXT NOT NULL,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    user_agent TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX scim_requests_directory ON scim_requests(directory_id, seq);

-- A console sign-in: the cookie's hash, and who signed in: with an admin key (revoking the
-- key ends the session), or as a user of the operators' organization through its SSO
-- (deactivating the user, or the user losing the roster-admin and roster-viewer roles,
-- ends it).
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_key_id TEXT REFERENCES admin_keys(id),
    user_id TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- A one-time setup link for a customer's IT admin: its token's hash; at first use it is
-- exchanged for a session (the cookie's hash), after which the link itself is spent. The
-- connection id is reserved when the link is made, so the SAML values to paste into the
-- IdP (entity id, ACS URL) are known before the IdP's metadata is.
CREATE TABLE setup_links (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    opened_at TEXT,
    session_hash TEXT UNIQUE,
    directory_id TEXT REFERENCES directories(id),
    connection_id TEXT NOT NULL
);

-- Whether an endpoint may be delivered to on loopback, private and link-local networks:
-- endpoints made by the CLI or a key for every organization may (an app's receiver is often
-- internal); those made by a key limited to one organization may not (SSRF).
ALTER TABLE webhook_endpoints ADD COLUMN allow_private BIGINT NOT NULL DEFAULT 1;
