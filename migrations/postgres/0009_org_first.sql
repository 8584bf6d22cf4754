-- Tenant data keyed organization first (docs/design/distributed-sql.md): every primary key
-- and every index a request uses starts with `org_id`, so one organization's rows sit
-- together (one range or tablet on a distributed engine, one stretch of each B-tree here)
-- and no request of one organization needs an index ordered across all of them.
-- What stays global, on purpose: the seal's indexes of unsealed rows (`*_unsealed`, read by
-- the sealer across organizations in commit order), the deployment-wide event cursor
-- (`events_pos`; the events' key, since the deployment's own events have no organization),
-- expiry sweeps (`*_expires`), and keys looked up before the organization is
-- known (token hashes, `(connection_id, subject)`, verified domains).

-- Users: the key is (org_id, id). `seq` stays as a plain column: it orders rows not yet
-- sealed after every sealed one (`Dialect::list_pos`), nothing else.
ALTER TABLE users DROP CONSTRAINT users_pkey;
ALTER TABLE users DROP CONSTRAINT users_id_key;
ALTER TABLE users ADD PRIMARY KEY (org_id, id);

-- Groups: (org_id, id), carrying the display name (a user's groups are read with every user).
ALTER TABLE org_groups DROP CONSTRAINT org_groups_pkey;
ALTER TABLE org_groups DROP CONSTRAINT org_groups_id_key;
DROP INDEX groups_id_display_name;
ALTER TABLE org_groups ADD PRIMARY KEY (org_id, id) INCLUDE (display_name);

-- Memberships: a group's members and a member's groups, both organization first.
ALTER TABLE group_members DROP CONSTRAINT group_members_pkey;
DROP INDEX group_members_member;
ALTER TABLE group_members ADD PRIMARY KEY (org_id, group_id, member_id);
CREATE INDEX group_members_member ON group_members(org_id, member_id, group_id);

-- Role grants.
ALTER TABLE role_grants DROP CONSTRAINT role_grants_pkey;
DROP INDEX role_grants_source;
ALTER TABLE role_grants ADD PRIMARY KEY (org_id, user_id, role, source);
CREATE INDEX role_grants_source ON role_grants(org_id, source, user_id);

-- Sessions.
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
DROP INDEX sessions_user;
ALTER TABLE sessions ADD PRIMARY KEY (org_id, id);
CREATE INDEX sessions_user ON sessions(org_id, user_id);

-- Tokens are found by their hash before the organization is known (the key stays); the
-- session and user indexes used to revoke them go organization first.
DROP INDEX oauth_tokens_session;
DROP INDEX oauth_tokens_user;
CREATE INDEX oauth_tokens_session ON oauth_tokens(org_id, session_id);
CREATE INDEX oauth_tokens_user ON oauth_tokens(org_id, user_id);

-- Events: a resource's history is read within its organization. The key stays `id`: events
-- of the deployment itself have no organization, and the sealer finds rows by it.
DROP INDEX events_resource_pos;
CREATE INDEX events_resource_pos ON events(org_id, resource_id, pos);

-- Identities: found by (connection_id, subject) at login (the key stays); by user within
-- the organization otherwise.
DROP INDEX user_identities_user;
CREATE INDEX user_identities_user ON user_identities(org_id, user_id);

-- Role mappings: changed and removed within their organization.
ALTER TABLE role_mappings DROP CONSTRAINT role_mappings_pkey;
ALTER TABLE role_mappings ADD PRIMARY KEY (org_id, id);
