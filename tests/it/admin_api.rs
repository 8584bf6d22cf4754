//! The admin REST API at `/api/v1` over real HTTP, each test on SQLite and PostgreSQL: keys
//! and their scope, cursor pagination, user filters and actions, groups, setup objects,
//! webhook deliveries, the audit chain, recent directory requests, malformed input, the
//! OpenAPI document against the router, and the per-key rate limit.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use roster::core::model::{Actor, Provenance, Scope};
use roster::core::store::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{Node, Resp, TestApp, patch_op};

/// What the admin API's fallback answers for a path it does not route.
const FALLBACK: &str = "no such admin API route";
/// An id that names nothing.
const NO_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A client of one server's admin API with one key (or none).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    fn on(app: &TestApp, key: Option<&str>) -> Api {
        Api {
            http: app.client.clone(),
            base: app.base(),
            key: key.map(str::to_owned),
        }
    }

    /// The same key against another node.
    fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// `path` is below `/api/v1`; `body` is (content type, text).
    async fn send(&self, method: Method, path: &str, body: Option<(&str, String)>) -> Resp {
        let mut rb = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k);
        }
        if let Some((content_type, text)) = body {
            rb = rb.header("content-type", content_type).body(text);
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

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            Method::POST,
            path,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    /// Every page of a list, following `next_cursor` from `first` (which holds a query
    /// string) until it is null.
    async fn pages(&self, first: &str) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut path = first.to_owned();
        loop {
            let r = self.get(&path).await.expect(200);
            pages.push(r.body["data"].as_array().expect("data").clone());
            match &r.body["next_cursor"] {
                Value::Null => return pages,
                Value::String(c) => {
                    assert!(!c.is_empty(), "an empty next_cursor: {}", r.body);
                    path = format!("{first}&cursor={c}");
                }
                other => panic!("next_cursor is neither a string nor null: {other}"),
            }
            assert!(pages.len() < 50, "the cursors never end");
        }
    }
}

/// An admin key of the test app's store.
async fn admin_key(app: &TestApp, org: Option<&str>, read_only: bool) -> String {
    crate::common::admin_key(&app.db.store, org, read_only).await
}

async fn global(app: &TestApp) -> Api {
    let key = admin_key(app, None, false).await;
    Api::on(app, Some(&key))
}

/// The error body every failure carries: `{"error": {"code", "message"}}`.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {}",
        r.body
    );
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

fn strs(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|v| v[field].as_str().expect(field).to_owned())
        .collect()
}

/// Polls `probe` until it gives `Some`, for at most `within`; fails naming `what`.
async fn eventually<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id of the directory the test app's SCIM token belongs to (acme's only one).
async fn acme_directory(api: &Api) -> String {
    let dirs = api.get("/orgs/acme/directories").await.expect(200);
    let list = dirs.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", dirs.body);
    list[0]["id"].as_str().unwrap().to_owned()
}

/// A SCIM request with a token other than the test app's.
async fn scim_with(app: &TestApp, token: &str, method: Method, path: &str) -> Resp {
    app.call_with(token, method, path, None, &[]).await
}

// ---- 1. auth and scope ----------------------------------------------------------------

/// No key or an unknown key: 401 with the JSON error. A key for one organization sees
/// nothing of another (404, absent from lists) and none of the global operations (403); a
/// read-only key reads but neither writes nor deletes.
async fn keys_authenticate_and_scope(app: &TestApp) {
    let anon = Api::on(app, None);
    for path in ["/orgs", "/orgs/acme/users", "/apps", "/webhooks", "/events"] {
        assert_error(&anon.get(path).await, 401, "unauthorized");
    }
    assert_error(
        &anon.post("/orgs", &json!({"slug": "nokey"})).await,
        401,
        "unauthorized",
    );
    let wrong = Api::on(app, Some("rak_not-a-key"));
    assert_error(&wrong.get("/orgs").await, 401, "unauthorized");
    let basic = Api::on(app, None);
    let r = basic
        .http
        .get(format!("{}/api/v1/orgs", basic.base))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Org B (globex) with a user of its own, made through the API and SCIM.
    let root = global(app).await;
    root.post("/orgs", &json!({"slug": "globex", "name": "Globex"}))
        .await
        .expect(201);
    let dir = root
        .post("/orgs/globex/directories", &json!({}))
        .await
        .expect(201);
    let globex_token = dir.body["token"]["token"].as_str().unwrap().to_owned();
    let theirs = app
        .call_with(
            &globex_token,
            Method::POST,
            "/Users",
            Some(&json!({"userName": "hank@globex.com"})),
            &[],
        )
        .await
        .expect(201)
        .id();
    let mine = app.user("ann@acme.com").await;
    let hook = root
        .post(
            "/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "org": "globex", "events": ["group.*"]}),
        )
        .await
        .expect(201)
        .id();

    let acme_key = admin_key(app, Some("acme"), false).await;
    let scoped = Api::on(app, Some(&acme_key));
    // Its own organization works (so the 404s below are about scope).
    scoped
        .get(&format!("/orgs/acme/users/{mine}"))
        .await
        .expect(200);
    assert_error(
        &scoped.get(&format!("/orgs/globex/users/{theirs}")).await,
        404,
        "not_found",
    );
    // Nor through its own organization's path.
    assert_error(
        &scoped.get(&format!("/orgs/acme/users/{theirs}")).await,
        404,
        "not_found",
    );
    assert_error(&scoped.get("/orgs/globex").await, 404, "not_found");
    assert_error(&scoped.get("/orgs/globex/users").await, 404, "not_found");
    assert_error(
        &scoped
            .post(
                &format!("/orgs/globex/users/{theirs}/deactivate"),
                &json!({}),
            )
            .await,
        404,
        "not_found",
    );
    // Another organization's user is not reachable by its id under one's own organization
    // either: no roles, an empty timeline.
    assert_error(
        &scoped
            .get(&format!("/orgs/acme/users/{theirs}/roles"))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &scoped
            .get(&format!("/orgs/globex/users/{theirs}/events"))
            .await,
        404,
        "not_found",
    );
    let leak = scoped
        .get(&format!("/orgs/acme/users/{theirs}/events"))
        .await
        .expect(200);
    assert_eq!(leak.body["data"], json!([]), "{}", leak.body);
    let their_group = app
        .call_with(
            &globex_token,
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "Globex Staff", "members": [{"value": theirs}]})),
            &[],
        )
        .await
        .expect(201)
        .id();
    root.get(&format!("/orgs/globex/groups/{their_group}"))
        .await
        .expect(200);
    for path in [
        format!("/orgs/acme/groups/{their_group}"),
        format!("/orgs/acme/groups/{their_group}/members"),
        format!("/orgs/globex/groups/{their_group}"),
        "/orgs/globex/groups".to_owned(),
        "/orgs/globex/directories".to_owned(),
        "/orgs/globex/audit".to_owned(),
        "/orgs/globex/report/drift".to_owned(),
    ] {
        assert_error(&scoped.get(&path).await, 404, "not_found");
    }
    let visible = scoped.get("/orgs").await.expect(200);
    let slugs = strs(visible.body["data"].as_array().unwrap(), "slug");
    assert_eq!(slugs, ["acme"], "{}", visible.body);
    let all = root.get("/orgs").await.expect(200);
    let all_slugs = strs(all.body["data"].as_array().unwrap(), "slug");
    assert!(all_slugs.contains(&"globex".to_owned()), "{all_slugs:?}");
    assert_error(
        &scoped.post("/orgs", &json!({"slug": "initech"})).await,
        403,
        "forbidden",
    );
    assert_error(&scoped.get("/apps").await, 403, "forbidden");
    assert_error(
        &scoped
            .post(
                "/apps",
                &json!({"redirect_uris": ["https://app.example.com/cb"]}),
            )
            .await,
        403,
        "forbidden",
    );
    // Webhooks: another organization's endpoint is invisible; a global one is refused.
    let hooks = scoped.get("/webhooks").await.expect(200);
    assert!(
        !ids(hooks.body["data"].as_array().unwrap()).contains(&hook),
        "{}",
        hooks.body
    );
    assert_error(
        &scoped.get(&format!("/webhooks/{hook}")).await,
        404,
        "not_found",
    );
    assert_error(
        &scoped
            .post("/webhooks", &json!({"url": "http://127.0.0.1:9/hook"}))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &scoped
            .post(
                "/webhooks",
                &json!({"url": "http://127.0.0.1:9/hook", "org": "globex"}),
            )
            .await,
        404,
        "not_found",
    );
    assert_error(
        &scoped.get(&format!("/webhooks/{hook}/deliveries")).await,
        404,
        "not_found",
    );
    assert_error(
        &scoped
            .post(&format!("/webhooks/{hook}/disable"), &json!({}))
            .await,
        404,
        "not_found",
    );
    let still = root.get(&format!("/webhooks/{hook}")).await.expect(200);
    assert_eq!(still.body["disabled_at"], Value::Null);

    // Read-only: GETs answer, writes and deletes are refused and change nothing.
    let ro_key = admin_key(app, None, true).await;
    let ro = Api::on(app, Some(&ro_key));
    ro.get("/orgs").await.expect(200);
    ro.get("/orgs/acme/users").await.expect(200);
    ro.get(&format!("/orgs/acme/users/{mine}"))
        .await
        .expect(200);
    ro.get("/apps").await.expect(200);
    assert_error(
        &ro.post("/orgs", &json!({"slug": "readonly"})).await,
        403,
        "forbidden",
    );
    assert_error(
        &ro.post(&format!("/orgs/acme/users/{mine}/deactivate"), &json!({}))
            .await,
        403,
        "forbidden",
    );
    let dir_id = acme_directory(&root).await;
    let tokens = root
        .get(&format!("/orgs/acme/directories/{dir_id}/tokens"))
        .await
        .expect(200);
    let token_id = tokens.body["data"][0]["id"].as_str().unwrap().to_owned();
    assert_error(
        &ro.delete(&format!(
            "/orgs/acme/directories/{dir_id}/tokens/{token_id}"
        ))
        .await,
        403,
        "forbidden",
    );
    let mapping = root
        .post(
            "/orgs/acme/role-mappings",
            &json!({"group": "Admins", "role": "admin"}),
        )
        .await
        .expect(201)
        .id();
    assert_error(
        &ro.delete(&format!("/orgs/acme/role-mappings/{mapping}"))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &ro.post(
            "/orgs/acme/role-mappings",
            &json!({"group": "x", "role": "y"}),
        )
        .await,
        403,
        "forbidden",
    );
    // Nothing was changed by the refused calls.
    let user = root
        .get(&format!("/orgs/acme/users/{mine}"))
        .await
        .expect(200);
    assert_eq!(user.body["active"], true);
    let tokens = root
        .get(&format!("/orgs/acme/directories/{dir_id}/tokens"))
        .await
        .expect(200);
    assert_eq!(tokens.body["data"][0]["revoked_at"], Value::Null);
    let maps = root.get("/orgs/acme/role-mappings").await.expect(200);
    assert_eq!(maps.body["role_mappings"].as_array().unwrap().len(), 1);
    app.get("/Users").await.expect(200);
}

// ---- 2. cursor pagination -------------------------------------------------------------

/// Seven users in pages of three: 3, 3, 1 in creation order, each once, the last page's
/// cursor null; cursors that are not this list's and limits out of range are 400.
async fn users_page_with_cursors(app: &TestApp) {
    let api = global(app).await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(app.user(&format!("page{i}@x.com")).await);
    }
    let pages = api.pages("/orgs/acme/users?limit=3").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    assert_eq!(seen, created, "every user once, in creation order");
    // The default page holds them all, and no cursor.
    let one = api.get("/orgs/acme/users").await.expect(200);
    assert_eq!(ids(one.body["data"].as_array().unwrap()), created);
    assert_eq!(one.body["next_cursor"], Value::Null);

    // Cursors this list did not give.
    for bad in [
        "garbage",
        "%%%",
        "dXNlcjpub3QtYS1udW1iZXI", // base64 of "user:not-a-number"
        "Z3JvdXA6Mw",              // base64 of "group:3": another list's cursor
    ] {
        assert_error(
            &api.get(&format!("/orgs/acme/users?limit=3&cursor={bad}"))
                .await,
            400,
            "invalid",
        );
    }
    for limit in ["0", "201", "-1", "abc"] {
        assert_error(
            &api.get(&format!("/orgs/acme/users?limit={limit}")).await,
            400,
            "invalid",
        );
    }
    api.get("/orgs/acme/users?limit=200").await.expect(200);
    api.get("/orgs/acme/users?limit=1").await.expect(200);
}

// ---- 3. filters -----------------------------------------------------------------------

/// `state`, `provenance` and `q` (part of the userName, case-insensitive) narrow the list.
async fn users_filter_by_state_provenance_and_text(app: &TestApp) {
    let api = global(app).await;
    let alice = app.user("Alice.Smith@x.com").await;
    let bob = app.user("bob@x.com").await;
    let carol = app
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "carol@x.com",
                    "emails": [{"value": "Carol.Danvers@Marvel.example", "primary": true}]}),
        )
        .await
        .expect(201)
        .id();
    app.patch(
        &format!("/Users/{bob}"),
        &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
    )
    .await
    .expect(200);
    // A user made by a login (JIT), not by the directory.
    let org = app.db.store.org_by_slug("acme").await.unwrap().unwrap();
    let scope = Scope {
        org: org.id.clone(),
        actor: Actor::Connection {
            connection_id: "c1".into(),
        },
    };
    let jit = roster::core::resources::create_user(
        &app.db.store,
        &scope,
        json!({"userName": "jit.smith@x.com"}).as_object().unwrap(),
        Provenance::Jit,
    )
    .await
    .unwrap()
    .id;

    let list = async |query: &str| {
        let r = api
            .get(&format!("/orgs/acme/users?{query}"))
            .await
            .expect(200);
        ids(r.body["data"].as_array().unwrap())
    };
    assert_eq!(list("state=inactive").await, [bob.as_str()]);
    assert_eq!(
        list("state=active").await,
        [alice.clone(), carol.clone(), jit.clone()]
    );
    assert_eq!(
        list("provenance=scim").await,
        [alice.clone(), bob.clone(), carol.clone()]
    );
    assert_eq!(list("provenance=jit").await, [jit.as_str()]);
    assert_eq!(list("q=SMITH").await, [alice.clone(), jit.clone()]);
    assert_eq!(list("q=ice.sm").await, [alice.as_str()]);
    assert_eq!(list("q=CAROL").await, [carol.as_str()]);
    // The primary email counts as text too.
    assert_eq!(list("q=danvers@MARVEL").await, [carol.as_str()]);
    // Filtered lists page with cursors as well.
    let paged: Vec<String> = api
        .pages("/orgs/acme/users?state=active&limit=1")
        .await
        .iter()
        .flat_map(|p| ids(p))
        .collect();
    assert_eq!(paged, [alice.clone(), carol.clone(), jit.clone()]);
    assert_eq!(list("q=SMITH&provenance=scim").await, [alice.as_str()]);
    assert_eq!(list("state=inactive&q=alice").await, Vec::<String>::new());
    assert!(list("q=nobody-has-this").await.is_empty());
    let r = api.get("/orgs/acme/users?state=inactive").await.expect(200);
    assert_eq!(r.body["data"][0]["active"], false);
    assert_eq!(r.body["data"][0]["provenance"], "scim");
    assert_eq!(r.body["data"][0]["user_name"], "bob@x.com");
    let c = api
        .get(&format!("/orgs/acme/users/{carol}"))
        .await
        .expect(200);
    assert_eq!(c.body["email"], "Carol.Danvers@Marvel.example");
    assert_error(
        &api.get("/orgs/acme/users?state=asleep").await,
        400,
        "invalid",
    );
    assert_error(
        &api.get("/orgs/acme/users?provenance=magic").await,
        400,
        "invalid",
    );
}

// ---- 4. users -------------------------------------------------------------------------

/// Deactivating through the API answers the inactive user, shows in SCIM, and tops the
/// user's timeline (newest first); reactivating reverses it.
async fn users_deactivate_and_reactivate(app: &TestApp) {
    let api = global(app).await;
    let u = app.user("dee@x.com").await;
    let r = api
        .post(&format!("/orgs/acme/users/{u}/deactivate"), &json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["active"], false, "{}", r.body);
    assert_eq!(r.body["id"], u.as_str());
    assert_eq!(r.body["user_name"], "dee@x.com");
    let got = api.get(&format!("/orgs/acme/users/{u}")).await.expect(200);
    assert_eq!(got.body["active"], false);
    assert_eq!(app.get(&format!("/Users/{u}")).await.body["active"], false);

    let timeline = api
        .get(&format!("/orgs/acme/users/{u}/events"))
        .await
        .expect(200);
    let events = timeline.body["data"].as_array().unwrap().clone();
    let kinds = strs(&events, "type");
    assert_eq!(kinds.first().map(String::as_str), Some("user.deactivated"));
    assert_eq!(kinds.last().map(String::as_str), Some("user.created"));
    let cursors: Vec<i64> = events
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] > w[1]), "{cursors:?}");
    assert_eq!(events[0]["actor"]["type"], "admin_key", "{}", events[0]);
    assert!(
        events.iter().all(|e| e["resource"]["id"] == u.as_str()),
        "{events:?}"
    );
    // The timeline pages too: one event at a time, newest first.
    let paged: Vec<String> = api
        .pages(&format!("/orgs/acme/users/{u}/events?limit=1"))
        .await
        .iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, kinds);

    // Deactivating an inactive user changes nothing: no second event.
    let r = api
        .post(&format!("/orgs/acme/users/{u}/deactivate"), &json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["active"], false);
    let again = api
        .get(&format!("/orgs/acme/users/{u}/events"))
        .await
        .expect(200);
    assert_eq!(
        strs(again.body["data"].as_array().unwrap(), "type"),
        kinds,
        "a no-op deactivation added events"
    );

    let r = api
        .post(&format!("/orgs/acme/users/{u}/reactivate"), &json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["active"], true, "{}", r.body);
    assert_eq!(app.get(&format!("/Users/{u}")).await.body["active"], true);
    let timeline = api
        .get(&format!("/orgs/acme/users/{u}/events"))
        .await
        .expect(200);
    assert_eq!(timeline.body["data"][0]["type"], "user.reactivated");
    assert_error(
        &api.post(&format!("/orgs/acme/users/{NO_ID}/deactivate"), &json!({}))
            .await,
        404,
        "not_found",
    );
}

// ---- 5. groups ------------------------------------------------------------------------

/// Groups list with their member counts; members page with cursors.
async fn groups_count_and_page_members(app: &TestApp) {
    let api = global(app).await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.user(&format!("member{i}@x.com")).await);
    }
    let members: Vec<Value> = users.iter().map(|id| json!({"value": id})).collect();
    let group = |name: &str, members: Vec<Value>| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
               "displayName": name, "members": members})
    };
    let eng = app
        .post("/Groups", &group("Engineering", members))
        .await
        .expect(201)
        .id();
    let empty = app
        .post("/Groups", &group("Empty", vec![]))
        .await
        .expect(201)
        .id();
    let two = app
        .post(
            "/Groups",
            &group(
                "Pair",
                vec![json!({"value": users[0]}), json!({"value": users[1]})],
            ),
        )
        .await
        .expect(201)
        .id();

    // A group as a member of another.
    let outer = app
        .post(
            "/Groups",
            &group(
                "Outer",
                vec![json!({"value": two}), json!({"value": users[2]})],
            ),
        )
        .await
        .expect(201)
        .id();

    let list = api.get("/orgs/acme/groups").await.expect(200);
    let data = list.body["data"].as_array().unwrap();
    let counts: Vec<(String, i64)> = data
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_owned(),
                g["members"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (eng.clone(), 5),
            (empty.clone(), 0),
            (two.clone(), 2),
            (outer.clone(), 2)
        ]
    );
    assert_eq!(data[0]["display_name"], "Engineering");
    let one = api
        .get(&format!("/orgs/acme/groups/{eng}"))
        .await
        .expect(200);
    assert_eq!(one.body["members"], 5);
    let q = api.get("/orgs/acme/groups?q=ENGIN").await.expect(200);
    assert_eq!(ids(q.body["data"].as_array().unwrap()), [eng.as_str()]);
    let gp = api.pages("/orgs/acme/groups?limit=3").await;
    assert_eq!(gp.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    let paged: Vec<String> = gp.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(
        paged,
        [eng.clone(), empty.clone(), two.clone(), outer.clone()]
    );

    let pages = api
        .pages(&format!("/orgs/acme/groups/{eng}/members?limit=2"))
        .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "duplicates: {seen:?}");
    let mut want = users.clone();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, want);
    for m in pages.iter().flatten() {
        assert_eq!(m["type"], "User", "{m}");
        let i = users.iter().position(|u| m["id"] == u.as_str()).unwrap();
        assert_eq!(m["display"], format!("member{i}@x.com"));
    }
    let nested = api
        .get(&format!("/orgs/acme/groups/{outer}/members"))
        .await
        .expect(200);
    let mut got: Vec<(String, String, String)> = nested.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["type"].as_str().unwrap().to_owned(),
                m["display"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (two.clone(), "Group".to_owned(), "Pair".to_owned()),
        (
            users[2].clone(),
            "User".to_owned(),
            "member2@x.com".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    let none = api
        .get(&format!("/orgs/acme/groups/{empty}/members"))
        .await
        .expect(200);
    assert_eq!(none.body, json!({"data": [], "next_cursor": null}));
    assert_error(
        &api.get(&format!("/orgs/acme/groups/{eng}/members?cursor=garbage"))
            .await,
        400,
        "invalid",
    );
    assert_error(
        &api.get(&format!("/orgs/acme/groups/{NO_ID}/members")).await,
        404,
        "not_found",
    );
}

// ---- 6. setup objects -----------------------------------------------------------------

/// Organizations, domains, directories and tokens (revocation ends SCIM access),
/// connections (https issuers only), apps (secret shown once).
async fn setup_objects(app: &TestApp) {
    let api = global(app).await;
    let org = api
        .post("/orgs", &json!({"slug": "initech", "name": "Initech"}))
        .await
        .expect(201);
    assert_eq!(org.body["slug"], "initech");
    assert_eq!(org.body["name"], "Initech");
    assert!(org.body["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_error(
        &api.post("/orgs", &json!({"slug": "initech"})).await,
        409,
        "conflict",
    );
    assert_error(
        &api.post("/orgs", &json!({"slug": "-Bad Slug-"})).await,
        400,
        "invalid",
    );
    let detail = api.get("/orgs/initech").await.expect(200);
    assert_eq!(detail.body["users"], 0);
    assert_eq!(detail.body["directories"], 0);

    let d = api
        .post(
            "/orgs/initech/domains",
            &json!({"domain": "Initech.Example"}),
        )
        .await
        .expect(201);
    assert_eq!(d.body["domain"], "initech.example");
    assert_eq!(d.body["state"], "pending");
    assert_eq!(d.body["record_name"], "_roster-challenge.initech.example");
    assert!(
        d.body["record_value"]
            .as_str()
            .is_some_and(|v| v.starts_with("roster-domain-verification=")),
        "{}",
        d.body
    );
    let domains = api.get("/orgs/initech/domains").await.expect(200);
    assert_eq!(
        strs(domains.body["data"].as_array().unwrap(), "domain"),
        ["initech.example"]
    );
    // A pending claim holds nothing: another organization may claim it too, until one of
    // them verifies it. An operator vouches for initech's.
    api.post("/orgs/acme/domains", &json!({"domain": "initech.example"}))
        .await
        .expect(201);
    let v = api
        .post(
            "/orgs/initech/domains/initech.example/verify",
            &json!({"force": true}),
        )
        .await
        .expect(200);
    assert_eq!(
        (v.body["state"].as_str(), v.body["verified_by"].as_str()),
        (Some("verified"), Some("operator"))
    );
    assert_error(
        &api.post(
            "/orgs/acme/domains/initech.example/verify",
            &json!({"force": true}),
        )
        .await,
        409,
        "conflict",
    );
    api.post("/orgs", &json!({"slug": "hooli"}))
        .await
        .expect(201);
    assert_error(
        &api.post("/orgs/hooli/domains", &json!({"domain": "initech.example"}))
            .await,
        409,
        "conflict",
    );

    // A directory: its first token speaks SCIM for the new organization only.
    let dir = api
        .post("/orgs/initech/directories", &json!({"name": "Okta"}))
        .await
        .expect(201);
    let dir_id = dir.body["directory"]["id"].as_str().unwrap().to_owned();
    assert_eq!(dir.body["directory"]["org"], "initech");
    assert_eq!(
        dir.body["directory"]["scim_base_url"],
        format!("{}/scim/v2", app.base())
    );
    let first = dir.body["token"]["token"].as_str().unwrap().to_owned();
    scim_with(app, &first, Method::GET, "/Users")
        .await
        .expect(200);
    let made = app
        .call_with(
            &first,
            Method::POST,
            "/Users",
            Some(&json!({"userName": "peter@initech.example"})),
            &[],
        )
        .await
        .expect(201)
        .id();
    let theirs = api.get("/orgs/initech/users").await.expect(200);
    assert_eq!(
        ids(theirs.body["data"].as_array().unwrap()),
        [made.as_str()]
    );
    let ours = api.get("/orgs/acme/users").await.expect(200);
    assert!(!ids(ours.body["data"].as_array().unwrap()).contains(&made));

    // A second token; revoking it ends its SCIM access (within the 1 s token cache).
    let t = api
        .post(
            &format!("/orgs/initech/directories/{dir_id}/tokens"),
            &json!({}),
        )
        .await
        .expect(201);
    let second = t.body["token"].as_str().unwrap().to_owned();
    let second_id = t.body["id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    scim_with(app, &second, Method::GET, "/Users")
        .await
        .expect(200);
    api.delete(&format!(
        "/orgs/initech/directories/{dir_id}/tokens/{second_id}"
    ))
    .await
    .expect(204);
    tokio::time::sleep(roster::scim::auth::TTL + Duration::from_millis(200)).await;
    scim_with(app, &second, Method::GET, "/Users")
        .await
        .expect(401);
    scim_with(app, &first, Method::GET, "/Users")
        .await
        .expect(200);
    assert_error(
        &api.delete(&format!(
            "/orgs/initech/directories/{dir_id}/tokens/{second_id}"
        ))
        .await,
        404,
        "not_found",
    );
    let tokens = api
        .get(&format!("/orgs/initech/directories/{dir_id}/tokens"))
        .await
        .expect(200);
    let list = tokens.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for tk in list {
        assert!(tk.get("token").is_none(), "a secret listed: {tk}");
        assert_eq!(tk["revoked_at"].is_string(), tk["id"] == second_id.as_str());
    }
    // Another organization's directory is not reachable under this one.
    assert_error(
        &api.get(&format!("/orgs/acme/directories/{dir_id}")).await,
        404,
        "not_found",
    );

    // Connections: OIDC with an https issuer; the redirect URI to register comes back.
    let c = api
        .post(
            "/orgs/initech/connections",
            &json!({"protocol": "oidc", "idp": "okta", "issuer": "https://initech.okta.example/",
                    "client_id": "roster", "client_secret": "s3cret"}),
        )
        .await
        .expect(201);
    assert_eq!(c.body["protocol"], "oidc");
    assert_eq!(
        c.body["redirect_uri"],
        format!("{}/sso/oidc/callback", app.base())
    );
    assert_eq!(c.body["issuer"], "https://initech.okta.example");
    assert!(
        !c.body.to_string().contains("s3cret"),
        "secret echoed: {}",
        c.body
    );
    let cid = c.id();
    api.get(&format!("/orgs/initech/connections/{cid}"))
        .await
        .expect(200);
    assert_error(
        &api.post(
            "/orgs/initech/connections",
            &json!({"protocol": "oidc", "issuer": "http://idp.example.com",
                    "client_id": "roster", "client_secret": "s3cret"}),
        )
        .await,
        400,
        "invalid",
    );
    assert_error(
        &api.post(
            "/orgs/initech/connections",
            &json!({"protocol": "ldap", "issuer": "https://idp.example.com"}),
        )
        .await,
        400,
        "invalid",
    );
    let conns = api.get("/orgs/initech/connections").await.expect(200);
    assert_eq!(ids(conns.body["data"].as_array().unwrap()), [cid]);

    // Apps: the client secret is in the creation answer only.
    let a = api
        .post(
            "/apps",
            &json!({"name": "Portal", "redirect_uris": ["https://portal.example.com/cb"]}),
        )
        .await
        .expect(201);
    let secret = a.body["client_secret"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty());
    let client_id = a.body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.body["redirect_uris"],
        json!(["https://portal.example.com/cb"])
    );
    let apps = api.get("/apps").await.expect(200);
    let listed = apps.body["data"].as_array().unwrap();
    assert!(listed.iter().any(|x| x["client_id"] == client_id.as_str()));
    assert!(!apps.body.to_string().contains(&secret));
}

// ---- 7. webhooks ----------------------------------------------------------------------

/// An endpoint that refuses connections: the failed attempt is recorded as a pending
/// delivery with its error and no response status (on PostgreSQL too), and retried.
async fn webhook_connection_refused_is_recorded(app: &TestApp) {
    let api = global(app).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let w = api
        .post(
            "/webhooks",
            &json!({"url": format!("http://127.0.0.1:{closed}/hook"), "org": "acme"}),
        )
        .await
        .expect(201);
    let id = w.id();
    assert!(
        w.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{}",
        w.body
    );
    // A node with a short retry schedule beside the test app's (default) one.
    let node = Node::start(app, false, None, |s| s.webhook_schedule_ms(vec![300; 40])).await;
    app.user("hooked@x.com").await;

    let deliveries = async |query: &str| {
        let r = api
            .get(&format!("/webhooks/{id}/deliveries{query}"))
            .await
            .expect(200);
        r.body["data"].as_array().unwrap().clone()
    };
    let first = eventually(
        Duration::from_secs(10),
        "a recorded delivery attempt",
        async || deliveries("").await.into_iter().next(),
    )
    .await;
    assert_eq!(first["status"], "pending", "{first}");
    assert!(first["attempts"].as_i64().unwrap() >= 1, "{first}");
    assert_eq!(first["response_status"], Value::Null, "{first}");
    assert!(
        first["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{first}"
    );
    assert!(first["next_attempt_at"].is_string(), "{first}");
    // Retries are recorded too, on the same delivery; later events wait behind it.
    let again = eventually(
        Duration::from_secs(15),
        "a second recorded attempt",
        async || {
            deliveries("")
                .await
                .into_iter()
                .next()
                .filter(|d| d["attempts"].as_i64().unwrap_or(0) >= 2)
        },
    )
    .await;
    assert_eq!(again["event_cursor"], first["event_cursor"]);
    assert_eq!(again["status"], "pending", "{again}");
    assert_eq!(again["response_status"], Value::Null, "{again}");
    assert_eq!(deliveries("").await.len(), 1, "later events went ahead");
    assert_eq!(deliveries("?status=pending").await.len(), 1);
    assert!(deliveries("?status=delivered").await.is_empty());
    assert_error(
        &api.get(&format!("/webhooks/{id}/deliveries?status=lost"))
            .await,
        400,
        "invalid",
    );
    let hook = api.get(&format!("/webhooks/{id}")).await.expect(200);
    assert!(
        hook.body["cursor"].as_i64().unwrap() < first["event_cursor"].as_i64().unwrap(),
        "{}",
        hook.body
    );
    node.stop().await;
}

// ---- 8. audit -------------------------------------------------------------------------

/// The audit log pages two at a time; entries are one chain: seq +1, each `prev_hash` the
/// previous `hash`.
async fn audit_pages_form_a_chain(app: &TestApp) {
    let api = global(app).await;
    for i in 0..3 {
        app.user(&format!("audited{i}@x.com")).await;
    }
    api.post("/orgs/acme/domains", &json!({"domain": "acme.example"}))
        .await
        .expect(201);
    let pages = api.pages("/orgs/acme/audit?limit=2").await;
    assert!(pages.iter().all(|p| p.len() <= 2), "{pages:?}");
    assert!(
        pages[..pages.len() - 1].iter().all(|p| p.len() == 2),
        "{pages:?}"
    );
    let entries: Vec<Value> = pages.into_iter().flatten().collect();
    assert!(entries.len() >= 5, "{entries:?}");
    for e in &entries {
        assert!(e["seq"].is_i64(), "{e}");
        assert!(e["hash"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
        assert!(e["prev_hash"].is_string(), "{e}");
        assert!(e["at"].is_string(), "{e}");
    }
    for w in entries.windows(2) {
        assert_eq!(
            w[1]["seq"].as_i64().unwrap(),
            w[0]["seq"].as_i64().unwrap() + 1,
            "{} then {}",
            w[0],
            w[1]
        );
        assert_eq!(w[1]["prev_hash"], w[0]["hash"], "{} then {}", w[0], w[1]);
    }
    let hashes: HashSet<&str> = entries
        .iter()
        .map(|e| e["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), entries.len());
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["entry"]["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "user.created").count(),
        3,
        "{actions:?}"
    );
    // The same entries in one page.
    let whole = api.get("/orgs/acme/audit?limit=200").await.expect(200);
    assert_eq!(whole.body["data"].as_array().unwrap(), &entries);
    assert_eq!(whole.body["next_cursor"], Value::Null);
    let later = api
        .get("/orgs/acme/audit?since=2999-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(later.body["data"], json!([]));
    let earlier = api
        .get("/orgs/acme/audit?since=2000-01-01T00:00:00Z&limit=200")
        .await
        .expect(200);
    assert_eq!(earlier.body["data"].as_array().unwrap(), &entries);
    // A date is the start of that day (UTC).
    let by_date = api
        .get("/orgs/acme/audit?since=2000-01-01&limit=200")
        .await
        .expect(200);
    assert_eq!(by_date.body["data"].as_array().unwrap(), &entries);
    let future_date = api
        .get("/orgs/acme/audit?since=2999-01-01")
        .await
        .expect(200);
    assert_eq!(future_date.body["data"], json!([]));
    assert_error(
        &api.get("/orgs/acme/audit?since=2026-02-30").await,
        400,
        "invalid",
    );
    assert_error(
        &api.get("/orgs/acme/audit?cursor=garbage").await,
        400,
        "invalid",
    );
    assert_error(
        &api.get("/orgs/acme/audit?since=yesterday").await,
        400,
        "invalid",
    );
}

// ---- 9. directory requests ------------------------------------------------------------

/// Recent SCIM requests reach the directory's list within a flush or two: method, path
/// without its query string, status and the client's User-Agent, newest first.
async fn directory_lists_recent_requests(app: &TestApp) {
    let api = global(app).await;
    let dir = acme_directory(&api).await;
    let ua = "AdminApiTest/1.0 (+requests)";
    let h = [("user-agent", ua)];
    app.call_with(
        &app.token,
        Method::GET,
        "/Users?filter=userName%20eq%20%22secret%40x.com%22",
        None,
        &h,
    )
    .await
    .expect(200);
    app.call_with(
        &app.token,
        Method::POST,
        "/Users",
        Some(&json!({"userName": "req@x.com"})),
        &h,
    )
    .await
    .expect(201);
    app.call_with(&app.token, Method::GET, "/Users/nope", None, &h)
        .await
        .expect(404);
    let path = format!("/orgs/acme/directories/{dir}/requests");
    let mine = eventually(
        Duration::from_secs(12),
        "three recent requests listed",
        async || {
            let r = api.get(&path).await.expect(200);
            let mine: Vec<Value> = r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["user_agent"] == ua)
                .cloned()
                .collect();
            (mine.len() >= 3).then_some(mine)
        },
    )
    .await;
    assert_eq!(mine.len(), 3, "{mine:?}");
    let seen: Vec<(String, i64)> = mine
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".to_owned(), 404),
            ("POST".to_owned(), 201),
            ("GET".to_owned(), 200)
        ],
        "newest first"
    );
    for r in &mine {
        let p = r["path"].as_str().unwrap();
        assert!(!p.contains('?') && !p.contains("secret"), "{r}");
        assert!(r["at"].is_string() && r["latency_ms"].is_number(), "{r}");
    }
    assert_eq!(
        strs(&mine, "path"),
        ["/scim/v2/Users/nope", "/scim/v2/Users", "/scim/v2/Users"]
    );
    let one = api.get(&format!("{path}?limit=1")).await.expect(200);
    assert_eq!(one.body["data"].as_array().unwrap().len(), 1);
    assert_error(
        &api.get(&format!("/orgs/acme/directories/{NO_ID}/requests"))
            .await,
        404,
        "not_found",
    );
}

// ---- 10. bad input --------------------------------------------------------------------

/// Malformed requests get JSON errors: arrays for objects, other content types, NUL in the
/// path, query or body, unknown routes.
async fn malformed_requests_get_json_errors(app: &TestApp) {
    let api = global(app).await;
    let json_body = |s: &str| Some(("application/json", s.to_owned()));
    assert_error(
        &api.send(Method::POST, "/orgs", json_body(r#"[{"slug": "arr"}]"#))
            .await,
        400,
        "invalid",
    );
    assert_error(
        &api.send(Method::POST, "/orgs", json_body(r#"{"slug": "#))
            .await,
        400,
        "invalid",
    );
    assert_error(
        &api.send(Method::POST, "/orgs", json_body(r#"{"slug": 5}"#))
            .await,
        400,
        "invalid",
    );
    assert_error(
        &api.send(Method::POST, "/orgs", json_body("\"initech\""))
            .await,
        400,
        "invalid",
    );
    assert_error(
        &api.send(
            Method::POST,
            "/orgs",
            Some(("text/plain", r#"{"slug": "plain"}"#.to_owned())),
        )
        .await,
        415,
        "invalid",
    );
    assert_error(
        &api.send(
            Method::POST,
            "/orgs",
            Some(("application/x-www-form-urlencoded", "slug=form".to_owned())),
        )
        .await,
        415,
        "invalid",
    );
    let r = api
        .http
        .post(format!("{}/api/v1/orgs", api.base))
        .bearer_auth(api.key.as_deref().unwrap())
        .body(r#"{"slug": "untyped"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A body over the limit is 413, not a 400 about its syntax.
    let big = format!(r#"{{"slug": "big", "name": "{}"}}"#, "x".repeat(2 << 20));
    assert_error(
        &api.send(Method::POST, "/orgs", json_body(&big)).await,
        413,
        "invalid",
    );
    // A JSON type with parameters, or +json, is JSON.
    api.send(
        Method::POST,
        "/orgs",
        Some((
            "application/json; charset=utf-8",
            r#"{"slug": "typed"}"#.to_owned(),
        )),
    )
    .await
    .expect(201);
    assert_error(
        &api.send(Method::POST, "/orgs", json_body(r#"{"slug": "nul\u0000"}"#))
            .await,
        400,
        "invalid",
    );
    assert_error(&api.get("/orgs/ac%00me/users").await, 400, "invalid");
    assert_error(&api.get("/orgs/acme%00").await, 400, "invalid");
    assert_error(&api.get("/orgs/acme/users?q=a%00b").await, 400, "invalid");
    // Nothing of the refused bodies was created.
    let orgs = api.get("/orgs").await.expect(200);
    let slugs = strs(orgs.body["data"].as_array().unwrap(), "slug");
    assert_eq!(slugs, ["acme", "typed"], "{}", orgs.body);

    for path in [
        "/nope",
        "/orgs/acme/nope",
        "/orgs/acme/users/x/y/z",
        "/v2/orgs",
    ] {
        let r = api.get(path).await;
        assert_error(&r, 404, "not_found");
        assert_eq!(r.body["error"]["message"], FALLBACK, "{path}");
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
    }
    // Unknown routes are 404 without a key too (no route, nothing to authenticate).
    let anon = Api::on(app, None);
    let r = anon.get("/nope").await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.body);
    assert!(r.body["error"]["code"].is_string(), "{}", r.body);
}

/// A method a route does not have is refused with the API's JSON error body too (the
/// module's convention: every error is `{"error": {"code", "message"}}`).
async fn unrouted_methods_get_json_errors(app: &TestApp) {
    let api = global(app).await;
    for (method, path) in [
        (Method::DELETE, "/orgs"),
        (Method::PUT, "/orgs/acme"),
        (Method::PATCH, "/orgs/acme/users"),
        (Method::DELETE, "/orgs/acme/audit"),
    ] {
        let r = api.send(method.clone(), path, None).await;
        let what = format!("{method} {path}: {} {:?}", r.status, r.body);
        assert!(matches!(r.status.as_u16(), 404 | 405), "{what}");
        assert!(r.body["error"]["code"].is_string(), "{what}");
        assert!(r.body["error"]["message"].is_string(), "{what}");
    }
}

// ---- 11. OpenAPI ----------------------------------------------------------------------

/// The OpenAPI 3.1 document names only routes the server has: each documented operation,
/// with the org filled in, answers something other than the fallback's 404 (and 401
/// without a key).
async fn openapi_document_matches_routes(app: &TestApp) {
    let api = global(app).await;
    let anon = Api::on(app, None);
    let doc = anon.get("/openapi.json").await.expect(200).body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .replace("{org}", "acme")
            .replace("{token_id}", NO_ID)
            .replace("{event}", "1")
            .replace("{domain}", "unclaimed.example")
            .replace("{id}", NO_ID);
        assert!(!path.contains('{'), "an unfilled parameter in {template}");
        for (method, op) in item.as_object().unwrap() {
            let m = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "delete" => Method::DELETE,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                _ => continue,
            };
            operations += 1;
            assert!(
                op["security"].is_array(),
                "{method} {template}: no security"
            );
            let body = (m == Method::POST).then(|| ("application/json", "{}".to_owned()));
            let r = api.send(m.clone(), &path, body.clone()).await;
            let what = format!("{method} {template} ({path})");
            assert_ne!(r.status.as_u16(), 405, "{what}: {}", r.body);
            assert_ne!(r.body["error"]["message"], FALLBACK, "{what} is not routed");
            assert!(r.status.as_u16() < 500, "{what}: {} {}", r.status, r.body);
            let r = anon.send(m, &path, body).await;
            assert_error(&r, 401, "unauthorized");
        }
    }
    assert!(operations >= 38, "{operations} operations documented");
    // And the other way round for a few: undocumented methods are not routed.
    let r = api.delete("/orgs").await;
    assert!(
        matches!(r.status.as_u16(), 404 | 405),
        "DELETE /orgs: {} {}",
        r.status,
        r.body
    );
}

// ---- 12. admin rate limit -------------------------------------------------------------

/// With a rate per key, a key over it gets 429 with `Retry-After` and `rate_limited`; other
/// keys are unaffected. Without one (the test app's node), nothing is limited.
async fn admin_keys_are_rate_limited(app: &TestApp) {
    let api = global(app).await;
    let other = global(app).await;
    // Unlimited by default.
    for _ in 0..12 {
        api.get("/orgs").await.expect(200);
    }
    let node = Node::start(app, false, None, |s| s.admin_rate_limit(2)).await;
    let limited = api.at(&node.base);
    // At 2 per second (a burst of two seconds' worth), 20 requests at once cannot all pass.
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let limited = limited.clone();
            tokio::spawn(async move { limited.get("/orgs").await })
        })
        .collect();
    let mut answers = Vec::new();
    for h in burst {
        answers.push(h.await.unwrap());
    }
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!((1..=10).contains(&served), "{statuses:?}");
    let r = answers
        .into_iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert_error(&r, 429, "rate_limited");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    // Another key on the same node still gets through; an unknown key is still 401.
    other.at(&node.base).get("/orgs").await.expect(200);
    assert_error(
        &Api::on(app, Some("rak_unknown"))
            .at(&node.base)
            .get("/orgs")
            .await,
        401,
        "unauthorized",
    );
    // After the wait, the key is served again.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    limited.get("/orgs").await.expect(200);
    node.stop().await;
}

/// Deliveries page newest first with cursors: every delivery once, in event order.
async fn deliveries_page_with_cursors(app: &TestApp) {
    let api = global(app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let r = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
        let _ = axum::serve(listener, r).await;
    });
    let id = api
        .post(
            "/webhooks",
            &json!({"url": url, "org": "acme", "events": ["user.created"]}),
        )
        .await
        .expect(201)
        .id();
    for i in 0..5 {
        app.user(&format!("paged-{i}@x.com")).await;
    }
    eventually(Duration::from_secs(15), "five deliveries", async || {
        let r = api
            .get(&format!("/webhooks/{id}/deliveries?status=delivered"))
            .await
            .expect(200);
        (r.body["data"].as_array().unwrap().len() == 5).then_some(())
    })
    .await;
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = api
            .get(&format!(
                "/webhooks/{id}/deliveries?limit=2&cursor={cursor}"
            ))
            .await
            .expect(200);
        seen.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["event_cursor"].as_i64().unwrap()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no duplicates");
    assert_eq!(seen.len(), 5, "{seen:?}");
    // A page that ends the list exactly says so: no cursor to an empty page.
    let exact = api
        .get(&format!("/webhooks/{id}/deliveries?limit=5"))
        .await
        .expect(200);
    assert_eq!(exact.body["data"].as_array().unwrap().len(), 5);
    assert!(exact.body["next_cursor"].is_null(), "{}", exact.body);
    let attempts = api
        .get(&format!("/webhooks/{id}/deliveries/{}/attempts", seen[0]))
        .await
        .expect(200);
    let a = attempts.body["data"].as_array().unwrap();
    assert_eq!(a.len(), 1, "{}", attempts.body);
    assert_eq!(a[0]["attempt"], 1);
    assert_eq!(a[0]["response_status"], 200);
    let r = api
        .get(&format!("/webhooks/{id}/deliveries/x/attempts"))
        .await;
    assert_error(&r, 400, "invalid");
    let r = api
        .get(&format!("/webhooks/{id}/deliveries?cursor=bm9wZQ"))
        .await;
    assert_error(&r, 400, "invalid");
}

/// An operator adds a user by hand (provenance admin, visible to SCIM), and deletes one: its
/// sessions end with it and its timeline stays.
async fn users_created_and_deleted_by_hand(app: &TestApp) {
    let api = global(app).await;
    let r = api
        .post(
            "/orgs/acme/users",
            &json!({"user_name": "Hand@X.com", "email": "hand@x.com", "given_name": "Han",
                    "family_name": "Dee", "external_id": "h-1"}),
        )
        .await
        .expect(201);
    let id = r.id();
    assert_eq!(r.body["provenance"], "admin", "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["email"], "hand@x.com");
    assert_eq!(r.body["display_name"], "Han Dee");
    assert_eq!(r.body["external_id"], "h-1");
    let scim = app.get(&format!("/Users/{id}")).await;
    assert_eq!(scim.body["userName"], "Hand@X.com", "{}", scim.body);
    // userName is unique case-insensitively, as over SCIM.
    let dup = api
        .post("/orgs/acme/users", &json!({"user_name": "hand@x.com"}))
        .await;
    assert_error(&dup, 409, "conflict");
    let bad = api
        .post("/orgs/acme/users", &json!({"email": "x@x.com"}))
        .await;
    assert_error(&bad, 400, "invalid");
    let listed = api
        .get("/orgs/acme/users?provenance=admin")
        .await
        .expect(200);
    assert_eq!(
        ids(listed.body["data"].as_array().unwrap()),
        std::slice::from_ref(&id)
    );

    api.delete(&format!("/orgs/acme/users/{id}"))
        .await
        .expect(204);
    api.get(&format!("/orgs/acme/users/{id}")).await.expect(404);
    app.get(&format!("/Users/{id}")).await.expect(404);
    let again = api.delete(&format!("/orgs/acme/users/{id}")).await;
    assert_error(&again, 404, "not_found");
    let timeline = api
        .get(&format!("/orgs/acme/users/{id}/events"))
        .await
        .expect(200);
    let kinds = strs(timeline.body["data"].as_array().unwrap(), "type");
    assert_eq!(kinds, ["user.deleted", "user.created"], "{}", timeline.body);
}

/// Event retention deletes old events, never one an enabled webhook endpoint has yet to
/// settle; once the endpoint is disabled, those go too.
async fn events_are_pruned_behind_the_slowest_webhook(app: &TestApp) {
    use roster::core::store::prelude::*;
    let api = global(app).await;
    let store = &app.db.store;
    for i in 0..4 {
        app.user(&format!("old-{i}@x.com")).await;
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let w = api
        .post(
            "/webhooks",
            &json!({"url": format!("http://127.0.0.1:{closed}/hook"), "org": "acme"}),
        )
        .await
        .expect(201);
    let held = w.body["cursor"].as_i64().unwrap();
    assert!(held > 0, "{}", w.body);
    for i in 0..3 {
        app.user(&format!("new-{i}@x.com")).await;
    }
    let all = store.events_after(0, None, 10_000).await.unwrap();
    let newest = all.last().unwrap().cursor;
    // Everything is "old" for this call; the endpoint holds back what follows its cursor.
    let future = roster::core::now_plus_secs(60);
    let mut deleted = 0;
    loop {
        let n = store.prune_events(&future, 2).await.unwrap();
        deleted += n;
        if n < 2 {
            break;
        }
    }
    let left = store.events_after(0, None, 10_000).await.unwrap();
    assert_eq!(
        deleted as usize,
        all.iter().filter(|e| e.cursor <= held).count(),
        "every settled event went, in batches"
    );
    assert!(left.iter().all(|e| e.cursor > held), "{left:?}");
    assert_eq!(left.last().unwrap().cursor, newest);
    // Nothing older than the cutoff: nothing goes.
    assert_eq!(
        store
            .prune_events(&roster::core::now_plus_secs(-3600), 100)
            .await
            .unwrap(),
        0
    );
    // The first event the endpoint holds back has a delivery on record (failing: nothing
    // listens), with its attempts.
    let deliveries = async || {
        let r = api
            .get(&format!("/webhooks/{}/deliveries", w.id()))
            .await
            .expect(200);
        r.body["data"].as_array().unwrap().clone()
    };
    let attempts = async |event: i64| {
        let r = api
            .get(&format!("/webhooks/{}/deliveries/{event}/attempts", w.id()))
            .await
            .expect(200);
        r.body["data"].as_array().unwrap().len()
    };
    let first = eventually(
        Duration::from_secs(10),
        "a recorded delivery attempt",
        async || deliveries().await.into_iter().next(),
    )
    .await;
    let event = first["event_cursor"].as_i64().unwrap();
    assert!(event > held, "{first}");
    assert!(attempts(event).await >= 1);
    // The endpoint disabled, nothing holds the rest back: the events go, and the
    // deliveries of those events with them.
    api.post(&format!("/webhooks/{}/disable", w.id()), &json!({}))
        .await
        .expect(200);
    store.prune_events(&future, 10_000).await.unwrap();
    let rest = store.events_after(0, None, 10_000).await.unwrap();
    assert!(
        rest.iter().all(|e| e.kind == "webhook.disabled"),
        "only the disabling's own event may remain: {rest:?}"
    );
    assert_eq!(deliveries().await, Vec::<Value>::new());
    assert_eq!(attempts(event).await, 0);
}

/// A key limited to one organization cannot point Roster at internal addresses (SSRF): its
/// endpoints' deliveries to loopback, by IP or by name, are refused before any byte is sent.
/// The same receiver takes deliveries of an endpoint made by a key for every organization.
async fn scoped_keys_cannot_reach_private_networks(app: &TestApp) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = hits.clone();
    tokio::spawn(async move {
        let r = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let c = counter.clone();
                async move {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let _ = axum::serve(listener, r).await;
    });
    let scoped_key = admin_key(app, Some("acme"), false).await;
    let scoped = Api::on(app, Some(&scoped_key));
    let mut refused = Vec::new();
    for host in ["127.0.0.1", "localhost"] {
        let w = scoped
            .post(
                "/webhooks",
                &json!({"url": format!("http://{host}:{port}/hook"), "org": "acme"}),
            )
            .await
            .expect(201);
        assert_eq!(w.body["private_networks"], false, "{}", w.body);
        refused.push(w.id());
    }
    let global = global(app).await;
    let allowed = global
        .post(
            "/webhooks",
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "org": "acme",
                    "events": ["user.created"]}),
        )
        .await
        .expect(201);
    assert_eq!(allowed.body["private_networks"], true);
    app.user("ssrf@x.com").await;
    for id in &refused {
        let d = eventually(Duration::from_secs(10), "a refused attempt", async || {
            let r = scoped
                .get(&format!("/webhooks/{id}/deliveries"))
                .await
                .expect(200);
            r.body["data"].as_array().unwrap().first().cloned()
        })
        .await;
        assert_eq!(d["status"], "pending", "{d}");
        assert_eq!(d["response_status"], Value::Null, "{d}");
        let err = d["last_error"].as_str().unwrap();
        assert!(err.contains("private networks"), "{err}");
    }
    eventually(
        Duration::from_secs(10),
        "the allowed delivery",
        async || {
            let r = global
                .get(&format!(
                    "/webhooks/{}/deliveries?status=delivered",
                    allowed.id()
                ))
                .await
                .expect(200);
            (!r.body["data"].as_array().unwrap().is_empty()).then_some(())
        },
    )
    .await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the allowed endpoint's one event reached the receiver"
    );
}

backend_tests!(
    scoped_keys_cannot_reach_private_networks,
    events_are_pruned_behind_the_slowest_webhook,
    users_created_and_deleted_by_hand,
    deliveries_page_with_cursors,
    keys_authenticate_and_scope,
    users_page_with_cursors,
    users_filter_by_state_provenance_and_text,
    users_deactivate_and_reactivate,
    groups_count_and_page_members,
    setup_objects,
    webhook_connection_refused_is_recorded,
    audit_pages_form_a_chain,
    directory_lists_recent_requests,
    malformed_requests_get_json_errors,
    unrouted_methods_get_json_errors,
    openapi_document_matches_routes,
    admin_keys_are_rate_limited,
);
