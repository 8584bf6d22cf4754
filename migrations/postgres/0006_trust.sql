-- Domains are claimed, then verified. A claim is `pending` with a challenge (the TXT record
-- `_roster-challenge.<domain>` must read `roster-domain-verification=<challenge>`) until
-- Roster finds it in DNS or an operator forces it; only `verified` domains route logins,
-- allow JIT creation or count for `email_verified`. Several organizations may claim a
-- domain; at most one holds it verified.
CREATE TABLE org_domains_v2 (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    domain TEXT NOT NULL,
    state TEXT NOT NULL,
    challenge TEXT NOT NULL,
    created_at TEXT NOT NULL,
    verified_at TEXT,
    -- dns | operator | legacy (added before verification existed)
    verified_by TEXT,
    checked_at TEXT,
    check_error TEXT,
    PRIMARY KEY (org_id, domain)
);
-- Domains added before verification existed stay verified (verified_by legacy)…
INSERT INTO org_domains_v2 (org_id, domain, state, challenge, created_at, verified_at, verified_by)
    SELECT org_id, domain, 'verified', md5(random()::text || clock_timestamp()::text), created_at, created_at, 'legacy'
    FROM org_domains;
-- …except those an organization-scoped admin key added (first come, first served): those
-- are claims, and wait for DNS like any other.
UPDATE org_domains_v2 SET state = 'pending', verified_at = NULL, verified_by = NULL
    WHERE EXISTS (
        SELECT 1 FROM events e JOIN admin_keys k ON k.id = e.actor_id
        WHERE e.kind = 'domain.added' AND e.actor_kind = 'admin_key'
          AND e.org_id = org_domains_v2.org_id AND e.resource_id = org_domains_v2.domain
          AND k.org_id IS NOT NULL
    );
DROP TABLE org_domains;
ALTER TABLE org_domains_v2 RENAME TO org_domains;
CREATE UNIQUE INDEX org_domains_verified ON org_domains(domain) WHERE state = 'verified';
CREATE INDEX org_domains_domain ON org_domains(domain);

-- The normalized email the IdP vouched for at the identity's latest login, when the
-- connection serves its domain (what `email_verified` may rest on).
ALTER TABLE user_identities ADD COLUMN verified_email TEXT;
