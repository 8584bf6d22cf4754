//! The PostgreSQL schema is keyed organization first (docs/design/distributed-sql.md): in
//! every table that holds an `org_id`, the primary key and every index start with it, but
//! for the few that are global on purpose, each named here with its reason. A new table or
//! index that is not organization first fails this test until it is, or until it is
//! listed with a reason.

use sqlx::{Connection, Row};

use crate::common::{Backend, TestStore};

/// Indexes that are global by design, and why.
const GLOBAL: &[(&str, &str)] = &[
    // Looked up before the organization is known.
    ("orgs_pkey", "the organization itself"),
    ("orgs_slug_key", "organizations are found by slug"),
    ("directories_pkey", "a SCIM token names its directory"),
    ("connections_pkey", "a login URL names its connection"),
    ("apps_pkey", "an OAuth client_id names its app"),
    ("oauth_tokens_pkey", "a token is found by its hash"),
    (
        "user_identities_pkey",
        "an IdP's (connection, subject) at login",
    ),
    ("login_requests_pkey", "a login's state names it"),
    (
        "directory_tokens_token_hash_key",
        "a SCIM token is found by its hash",
    ),
    ("directory_tokens_pkey", "a directory's few tokens, by id"),
    ("directory_tokens_dir", "a directory's few tokens"),
    ("admin_keys_pkey", "admin keys are deployment-wide"),
    (
        "admin_keys_key_hash_key",
        "an admin key is found by its hash",
    ),
    (
        "webhook_endpoints_pkey",
        "an endpoint may serve every organization",
    ),
    ("webhook_deliveries_pkey", "a delivery is found by id"),
    (
        "webhook_deliveries_endpoint_id_event_id_key",
        "per endpoint, which may serve every organization",
    ),
    (
        "webhook_deliveries_status",
        "per endpoint, which may serve every organization",
    ),
    ("webhook_deliveries_event", "retention sweeps by event"),
    (
        "org_domains_verified",
        "one owner per domain, across organizations",
    ),
    (
        "org_domains_domain",
        "a login's e-mail domain names the organization",
    ),
    ("setup_links_pkey", "a setup link names itself"),
    (
        "setup_links_token_hash_key",
        "a setup link is found by its hash",
    ),
    (
        "setup_links_session_hash_key",
        "a setup session is found by its hash",
    ),
    ("scim_requests_pkey", "the request log's own sequence"),
    // The seal's global commit order (docs/design/event-order.md).
    (
        "users_unsealed",
        "the sealer reads unsealed rows in commit order",
    ),
    (
        "groups_unsealed",
        "the sealer reads unsealed rows in commit order",
    ),
    (
        "events_unsealed",
        "the sealer reads unsealed rows in commit order",
    ),
    ("events_pos", "the deployment-wide event cursor"),
    (
        "events_pkey",
        "events of the deployment have no organization; the sealer finds rows by id",
    ),
    (
        "deleted_positions_uncounted",
        "the sealer counts deletions in commit order",
    ),
    // Background sweeps, not requests.
    ("sessions_expires", "the expiry sweep"),
    ("oauth_tokens_expires", "the expiry sweep"),
    ("setup_links_expires", "the expiry sweep"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tables_are_keyed_organization_first() {
    let db = TestStore::new(Backend::Postgres).await;
    let schema = db.schema.clone().expect("a PostgreSQL schema");
    let mut c = sqlx::PgConnection::connect(&crate::common::pg_url())
        .await
        .expect("connect");
    // Every index of a table with an `org_id` column, with its first key column.
    let rows = sqlx::query(
        "SELECT t.relname AS tbl, i.relname AS idx, a.attname AS first \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] \
         WHERE n.nspname = $1 \
           AND EXISTS (SELECT 1 FROM pg_attribute o WHERE o.attrelid = t.oid \
                       AND o.attname = 'org_id' AND NOT o.attisdropped) \
         ORDER BY 1, 2",
    )
    .bind(&schema)
    .fetch_all(&mut c)
    .await
    .expect("catalog");
    assert!(
        rows.iter()
            .any(|r| r.get::<String, _>("idx") == "group_members_pkey"),
        "the catalog query sees the schema's indexes"
    );
    let mut wrong = Vec::new();
    for r in &rows {
        let (tbl, idx, first): (String, String, String) =
            (r.get("tbl"), r.get("idx"), r.get("first"));
        if first != "org_id" && !GLOBAL.iter().any(|(g, _)| *g == idx) {
            wrong.push(format!("{tbl}.{idx} starts with {first}"));
        }
    }
    // Every exception names an index that exists (a renamed one must be listed anew).
    let all: Vec<String> = sqlx::query(
        "SELECT i.relname AS idx FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = $1",
    )
    .bind(&schema)
    .fetch_all(&mut c)
    .await
    .expect("catalog")
    .iter()
    .map(|r| r.get("idx"))
    .collect();
    let stale: Vec<&str> = GLOBAL
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| !all.iter().any(|a| a == g))
        .collect();
    c.close().await.ok();
    db.cleanup().await;
    assert!(
        wrong.is_empty(),
        "indexes not organization first: {wrong:#?}"
    );
    assert!(stale.is_empty(), "exceptions naming no index: {stale:?}");
}
