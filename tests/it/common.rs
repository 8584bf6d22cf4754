//! Test harness: a real server per test, on a fresh SQLite directory or a fresh
//! PostgreSQL schema (dropped afterwards).

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use roster::core::model::Actor;
use roster::core::orgs::{self, OrgSlug};
use roster::core::secrets::MasterKey;
use roster::http::Server;
use roster::store::{self, SqlStore, StoreLocation};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL the suite uses; it must be reachable (an unreachable database fails the
/// PostgreSQL half of the suite rather than skipping it).
pub fn pg_url() -> String {
    std::env::var("ROSTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub struct TestStore {
    pub store: SqlStore,
    backend: Backend,
    dir: Option<PathBuf>,
    pub schema: Option<String>,
    /// The PostgreSQL URL (`pg_url()` unless the test runs its own cluster).
    url: String,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("roster-test-{id}"));
                let store = store::open(&StoreLocation::SqliteDir(dir.clone()))
                    .await
                    .expect("open sqlite");
                TestStore {
                    store,
                    backend,
                    dir: Some(dir),
                    schema: None,
                    url: pg_url(),
                }
            }
            Backend::Postgres => Self::postgres_at(&pg_url()).await,
        }
    }

    /// A store in a fresh schema of the PostgreSQL at `url`.
    pub async fn postgres_at(url: &str) -> TestStore {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("t_{id}");
        let store = store::open(&StoreLocation::Postgres {
            url: url.to_owned(),
            schema: Some(schema.clone()),
        })
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} must be reachable: {e}"));
        TestStore {
            store,
            backend: Backend::Postgres,
            dir: None,
            schema: Some(schema),
            url: url.to_owned(),
        }
    }

    /// A second handle on the same database (another node): same location and master key.
    /// Only the original is cleaned up.
    pub fn from_store(store: SqlStore, other: &TestStore) -> TestStore {
        TestStore {
            store,
            backend: other.backend,
            dir: other.dir.clone(),
            schema: other.schema.clone(),
            url: other.url.clone(),
        }
    }

    /// The master key a server on this store uses: on SQLite the data directory's key file
    /// (the one the `roster` binary would generate and use); on PostgreSQL a key per test.
    pub fn master_key(&self) -> MasterKey {
        let dir = self.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "roster-test-key-{}",
                self.schema.clone().unwrap_or_default()
            ))
        });
        MasterKey::load_or_create(None, &dir).expect("master key").0
    }

    pub fn location(&self) -> StoreLocation {
        match self.backend {
            Backend::Sqlite => StoreLocation::SqliteDir(self.dir.clone().unwrap_or_default()),
            Backend::Postgres => StoreLocation::Postgres {
                url: self.url.clone(),
                schema: self.schema.clone(),
            },
        }
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(s) = &self.schema {
            let _ =
                std::fs::remove_dir_all(std::env::temp_dir().join(format!("roster-test-key-{s}")));
            use sqlx::Executor;
            sqlx::any::install_default_drivers();
            if let Ok(pool) = sqlx::AnyPool::connect(&self.url).await {
                let _ = pool
                    .execute(format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE").as_str())
                    .await;
                pool.close().await;
            }
        }
    }
}

pub struct TestApp {
    pub db: TestStore,
    pub scim: String,
    pub token: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("id in body").to_owned()
    }
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |s| s).await
    }

    /// A server `configure` sets up further (e.g. its DNS resolver).
    pub async fn start_with(backend: Backend, configure: impl FnOnce(Server) -> Server) -> TestApp {
        Self::start_on(TestStore::new(backend).await, configure).await
    }

    /// A server on `db`.
    pub async fn start_on(db: TestStore, configure: impl FnOnce(Server) -> Server) -> TestApp {
        let server = Server::bind("127.0.0.1:0", db.store.clone(), None, db.master_key())
            .await
            .expect("bind");
        let server = configure(server);
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        let base = format!("http://{addr}");
        let mut app = TestApp {
            db,
            scim: format!("{base}/scim/v2"),
            token: String::new(),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            handle: Some(handle),
        };
        app.token = app.directory_token("acme", false).await;
        app
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn base(&self) -> String {
        self.scim.trim_end_matches("/scim/v2").to_owned()
    }

    /// Creates (if needed) an organization and a directory in it; returns a bearer token.
    pub async fn directory_token(&self, slug: &str, read_only: bool) -> String {
        let s = &self.db.store;
        let org = match roster::core::store::OrgStore::org_by_slug(s, slug)
            .await
            .expect("org lookup")
        {
            Some(o) => o,
            None => orgs::create_org(s, &OrgSlug::parse(slug).expect("slug"), None, &Actor::Cli)
                .await
                .expect("create org"),
        };
        let (_, _, token) = orgs::create_directory(s, &org, None, read_only, &Actor::Cli)
            .await
            .expect("create directory");
        token
    }

    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.scim)
        };
        let mut rb = self.client.request(method, url).bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        self.call_with(&self.token, method, path, body, &[]).await
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a user with this userName and returns its id.
    pub async fn user(&self, user_name: &str) -> String {
        self.post(
            "/Users",
            &serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
            }),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.db.cleanup().await;
    }
}

/// Another server on a test app's database: another node. With `own_pool` it has a
/// connection pool (and with it caches, seal loop, combiner) of its own, as another process
/// would; behind `public_url` when given (as behind one load balancer); configured by
/// `configure`.
pub struct Node {
    pub base: String,
    own: Option<SqlStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Node {
    pub async fn start(
        app: &TestApp,
        own_pool: bool,
        public_url: Option<&str>,
        configure: impl FnOnce(Server) -> Server,
    ) -> Node {
        let own = if own_pool {
            Some(store::open(&app.db.location()).await.expect("open"))
        } else {
            None
        };
        let db = own.clone().unwrap_or_else(|| app.db.store.clone());
        let server = Server::bind("127.0.0.1:0", db, public_url, app.db.master_key())
            .await
            .expect("bind");
        let server = configure(server);
        let base = format!("http://{}", server.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        Node {
            base,
            own,
            stop: Some(tx),
            handle,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.handle.await;
        if let Some(s) = self.own.take() {
            s.close().await;
        }
    }
}

pub fn patch_op(ops: Value) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops,
    })
}

/// Declares each test once per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::common::TestApp::start($crate::common::Backend::Sqlite).await;
                    super::$name(&app).await;
                    app.stop().await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = $crate::common::TestApp::start($crate::common::Backend::Postgres).await;
                    super::$name(&app).await;
                    app.stop().await;
                }
            }
        )*
    };
}

/// Runs `.ci/<script>` once per test run (the installers of the test peers are idempotent but
/// not free); panics with `needs` when it fails.
pub fn install_once(script: &str, needs: &str) {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if done.iter().any(|s| s == script) {
        return;
    }
    let path = format!("{}/.ci/{script}", env!("CARGO_MANIFEST_DIR"));
    let ok = std::process::Command::new("bash")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"))
        .success();
    assert!(ok, "{path} failed (it needs {needs})");
    done.push(script.to_owned());
}

/// An admin key, stored as `roster admin-key create` stores it (hashed); for every
/// organization, or the one named.
pub async fn admin_key(store: &SqlStore, org: Option<&str>, read_only: bool) -> String {
    use roster::core::model::Actor;
    use roster::core::store::AdminKeyInfo;
    use roster::core::store::prelude::*;
    let org_id = match org {
        Some(slug) => Some(
            store
                .org_by_slug(slug)
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let key = roster::api::new_key().unwrap();
    let info = AdminKeyInfo {
        id: roster::core::new_id(),
        org_id,
        name: "test".into(),
        read_only,
        created_at: roster::core::now(),
        revoked_at: None,
    };
    store
        .insert_admin_key(
            &info,
            &roster::core::secrets::hash_secret(&key),
            &Actor::Cli,
        )
        .await
        .unwrap();
    key
}

/// Claims `domain` for `org` and verifies it as an operator does (`roster domain verify
/// --force`): the domain then routes logins and counts for `email_verified`.
pub async fn verified_domain(store: &SqlStore, org: &roster::core::model::Org, domain: &str) {
    use roster::core::domains;
    domains::claim(store, org, domain, &Actor::Cli)
        .await
        .expect("claim the domain");
    domains::verify(
        store,
        &roster::dns::Resolver::default(),
        org,
        domain,
        true,
        &Actor::Cli,
    )
    .await
    .expect("verify the domain");
}

/// The CLI's scope in the organization `slug`.
pub async fn scope_of(store: &SqlStore, slug: &str) -> roster::core::model::Scope {
    use roster::core::store::prelude::*;
    let org = store.org_by_slug(slug).await.unwrap().expect("org exists");
    roster::core::model::Scope {
        org: org.id,
        actor: Actor::Cli,
    }
}
