-- SSO: verified domains, IdP connections, identities linking IdP subjects to users, the
-- apps Roster is an OpenID provider for, its signing keys, login transactions, sessions and
-- OAuth tokens. Secrets are stored hashed (tokens) or encrypted with the master key
-- (upstream client secrets, private keys).

-- Deployment-wide settings; holds the master key's check value so nodes with another key
-- refuse to start instead of failing to decrypt.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A domain belongs to at most one organization.
CREATE TABLE org_domains (
    domain TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    created_at TEXT NOT NULL
);
CREATE INDEX org_domains_org ON org_domains(org_id);

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    protocol TEXT NOT NULL,
    name TEXT NOT NULL,
    idp TEXT NOT NULL,
    -- The connection's settings (IdP metadata, issuer, client id, mapping, policy) as JSON.
    config TEXT NOT NULL,
    -- Upstream OIDC client secret or SAML SP private key, encrypted with the master key.
    secret_enc TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    disabled_at TEXT
);
CREATE INDEX connections_org ON connections(org_id);

-- Which IdP subject is which user: the next login links directly.
CREATE TABLE user_identities (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    subject TEXT NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    idp_groups TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, subject)
);
CREATE INDEX user_identities_user ON user_identities(user_id);

-- Normalized (NFKC, trimmed, lower-cased) primary email, for JIT account matching.
ALTER TABLE users ADD COLUMN email_norm TEXT;
CREATE INDEX users_org_email ON users(org_id, email_norm);

CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- ID token signing keys; the newest unretired key signs, every unexpired one is published.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_enc TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);

-- A login in flight: from /oauth/authorize (or an IdP-initiated response) to the callback.
CREATE TABLE login_requests (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    consumed_at TEXT
);

-- SAML assertion ids seen, per connection, until they expire (replay cache across nodes).
CREATE TABLE saml_replay (
    connection_id TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);

ALTER TABLE sessions ADD COLUMN connection_id TEXT;
ALTER TABLE sessions ADD COLUMN app_id TEXT;

-- Authorization codes, access tokens and refresh tokens, by SHA-256 of the token. A token is
-- good only while it, its session and its user are live.
CREATE TABLE oauth_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    consumed_at TEXT,
    revoked_at TEXT
);
CREATE INDEX oauth_tokens_session ON oauth_tokens(session_id);
CREATE INDEX oauth_tokens_user ON oauth_tokens(user_id);
