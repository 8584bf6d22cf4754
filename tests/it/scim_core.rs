//! SCIM resources over HTTP: CRUD, versions and ETags, uniqueness, isolation, errors,
//! discovery, paging, sorting and projection.

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{TestApp, patch_op};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn full_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": "ext-1",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "password": "t1meMa$heen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "USA", "primary": true}],
        "roles": [{"value": "admin", "display": "Administrator"}],
        "entitlements": [{"value": "license-a"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "ignored"}
        }
    })
}

async fn user_round_trip(app: &TestApp) {
    let created = app
        .post("/Users", &full_user("bjensen@example.com"))
        .await
        .expect(201);
    let id = created.id();
    assert_eq!(
        created.header("location").as_deref(),
        Some(format!("{}/Users/{id}", app.scim).as_str())
    );
    assert_eq!(created.header("etag").as_deref(), Some("W/\"1\""));
    assert_eq!(
        created.header("content-type").as_deref(),
        Some("application/scim+json")
    );
    let b = &created.body;
    assert_eq!(b["meta"]["version"], "W/\"1\"");
    assert_eq!(b["meta"]["resourceType"], "User");
    assert!(b.get("password").is_none(), "password is never returned");
    let got = app.get(&format!("/Users/{id}")).await.expect(200).body;
    for key in [
        "userName",
        "name",
        "emails",
        "phoneNumbers",
        "addresses",
        "roles",
        "entitlements",
        "x509Certificates",
        "externalId",
        "title",
    ] {
        assert_eq!(
            got[key],
            full_user("bjensen@example.com")[key],
            "{key} stored faithfully"
        );
    }
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(
        got[ENTERPRISE]["manager"]["value"],
        "26118915-6090-4610-87e4-49d8ca9f808d"
    );
    assert!(
        got[ENTERPRISE]["manager"].get("displayName").is_none(),
        "readOnly sub-attribute is not taken from clients"
    );
    assert!(
        got["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );

    // PUT replaces: attributes left out are gone.
    let put = app
        .put(
            &format!("/Users/{id}"),
            &json!({"schemas": [USER], "userName": "bjensen@example.com", "displayName": "B"}),
        )
        .await
        .expect(200);
    assert_eq!(put.header("etag").as_deref(), Some("W/\"2\""));
    assert!(put.body.get("emails").is_none());
    assert!(put.body.get(ENTERPRISE).is_none());
    assert!(
        !put.body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );

    app.delete(&format!("/Users/{id}")).await.expect(204);
    app.get(&format!("/Users/{id}")).await.expect(404);
    app.delete(&format!("/Users/{id}")).await.expect(404);
}

async fn etags_and_preconditions(app: &TestApp) {
    let id = app.user("etag@example.com").await;
    let path = format!("/Users/{id}");
    let r = app
        .call_with(
            &app.token,
            Method::GET,
            &path,
            None,
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 304);
    let body = json!({"schemas": [USER], "userName": "etag@example.com", "title": "x"});
    let r = app
        .call_with(
            &app.token,
            Method::PUT,
            &path,
            Some(&body),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 412, "{}", r.body);
    let r = app
        .call_with(
            &app.token,
            Method::PUT,
            &path,
            Some(&body),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let p = patch_op(json!([{"op": "replace", "path": "title", "value": "y"}]));
    let r = app
        .call_with(
            &app.token,
            Method::PATCH,
            &path,
            Some(&p),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 412);
    let r = app
        .call_with(
            &app.token,
            Method::GET,
            &path,
            None,
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "a changed resource is returned");
    assert_eq!(
        r.body["title"], "x",
        "a failed precondition changed nothing"
    );
    let r = app
        .call_with(
            &app.token,
            Method::DELETE,
            &path,
            None,
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 412);
    let r = app
        .call_with(
            &app.token,
            Method::DELETE,
            &path,
            None,
            &[("if-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
}

/// Entity tags Roster never issued (a stale or foreign tag, or no tag at all) fail an
/// `If-Match` precondition with 412 on every write of users and groups, changing nothing;
/// `If-None-Match` answers 304 for `*` and for the current tag, and the body otherwise.
async fn unissued_entity_tags(app: &TestApp) {
    let uid = app.user("tags@example.com").await;
    let gid = app
        .post("/Groups", &json!({"displayName": "Tags"}))
        .await
        .expect(201)
        .id();
    let unissued = [
        "W/\"stale-version\"",
        "\"stale-version\"",
        "garbage",
        "W/\"0\"",
        "W/\"-1\"",
        "W/\"1",
        "W/",
        ",",
    ];
    for (path, put, patch) in [
        (
            format!("/Users/{uid}"),
            json!({"schemas": [USER], "userName": "tags@example.com", "title": "x"}),
            patch_op(json!([{"op": "replace", "path": "title", "value": "y"}])),
        ),
        (
            format!("/Groups/{gid}"),
            json!({"displayName": "Tags renamed"}),
            patch_op(json!([{"op": "replace", "path": "displayName", "value": "Other"}])),
        ),
    ] {
        for tag in unissued {
            for (method, body) in [
                (Method::PUT, Some(&put)),
                (Method::PATCH, Some(&patch)),
                (Method::DELETE, None),
            ] {
                let r = app
                    .call_with(
                        &app.token,
                        method.clone(),
                        &path,
                        body,
                        &[("if-match", tag)],
                    )
                    .await;
                assert_eq!(
                    r.status.as_u16(),
                    412,
                    "{method} {path} If-Match {tag}: {}",
                    r.body
                );
                assert_eq!(
                    r.body["schemas"],
                    json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
                );
                assert_eq!(r.body["status"], "412");
                assert!(r.body.get("scimType").is_none(), "{}", r.body);
                assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
            }
        }
        let r = app.get(&path).await.expect(200);
        assert_eq!(
            r.header("etag").as_deref(),
            Some("W/\"1\""),
            "nothing changed"
        );

        // If-None-Match on a read.
        for (tag, status) in [
            ("*", 304),
            ("W/\"1\"", 304),
            ("\"1\"", 304),
            ("W/\"stale-version\", W/\"1\"", 304),
            ("W/\"2\"", 200),
            ("W/\"stale-version\"", 200),
            ("garbage", 200),
        ] {
            let r = app
                .call_with(
                    &app.token,
                    Method::GET,
                    &path,
                    None,
                    &[("if-none-match", tag)],
                )
                .await;
            assert_eq!(r.status.as_u16(), status, "GET {path} If-None-Match {tag}");
            assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""), "{tag}");
            if status == 200 {
                assert_eq!(r.body["meta"]["version"], "W/\"1\"");
            } else {
                assert_eq!(r.body, Value::Null, "304 has no body");
            }
        }

        // A list naming the current version among unissued tags holds; `*` holds.
        let r = app
            .call_with(
                &app.token,
                Method::PATCH,
                &path,
                Some(&patch),
                &[("if-match", "W/\"stale-version\", W/\"1\"")],
            )
            .await;
        assert_eq!(r.status.as_u16() / 100, 2, "{}", r.body);
        assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
        let r = app
            .call_with(
                &app.token,
                Method::PUT,
                &path,
                Some(&put),
                &[("if-match", "*")],
            )
            .await
            .expect(200);
        assert_eq!(r.header("etag").as_deref(), Some("W/\"3\""));
    }

    // A /Bulk operation's version is read the same way.
    let r = app
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "DELETE", "path": format!("/Users/{uid}"), "version": "W/\"stale-version\""},
                    {"method": "PATCH", "path": format!("/Groups/{gid}"), "version": "garbage",
                     "data": patch_op(json!([{"op": "replace", "path": "displayName", "value": "B"}]))}
                ]
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.body["Operations"][0]["status"], "412", "{}", r.body);
    assert_eq!(r.body["Operations"][1]["status"], "412", "{}", r.body);
    app.get(&format!("/Users/{uid}")).await.expect(200);

    // A resource that is not there is still 404, whatever the tag.
    let missing = format!("/Users/{}", uuid::Uuid::new_v4());
    for method in [Method::DELETE, Method::PATCH] {
        let body = (method == Method::PATCH)
            .then(|| patch_op(json!([{"op": "replace", "path": "title", "value": "y"}])));
        let r = app
            .call_with(
                &app.token,
                method,
                &missing,
                body.as_ref(),
                &[("if-match", "garbage")],
            )
            .await;
        assert_eq!(r.status.as_u16(), 404, "{}", r.body);
    }
    let r = app
        .call_with(
            &app.token,
            Method::GET,
            &missing,
            None,
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 404);

    // Still claimed.
    let spc = app.get("/ServiceProviderConfig").await.expect(200).body;
    assert_eq!(spc["etag"]["supported"], true);
}

/// Many reads by id and by `userName` at once, from two organizations holding the same
/// userNames (SQLite reads them in shared batches): each answer is the caller's own user,
/// never the other organization's, and unknown or foreign ids are 404.
async fn concurrent_point_reads(app: &TestApp) {
    let globex = app.directory_token("globex", false).await;
    let tokens = [app.token.clone(), globex];
    let mut ids: [Vec<String>; 2] = Default::default();
    for (org, token) in tokens.iter().enumerate() {
        for i in 0..12 {
            let r = app
                .call_with(
                    token,
                    Method::POST,
                    "/Users",
                    Some(&json!({"schemas": [USER], "userName": format!("p{i}@example.com")})),
                    &[],
                )
                .await
                .expect(201);
            ids[org].push(r.id());
        }
    }
    // (token, path, the id expected or None for 404 / an empty list)
    let mut cases: Vec<(usize, String, Option<String>)> = Vec::new();
    for round in 0..6 {
        for (i, pair) in ids[0].iter().zip(&ids[1]).enumerate() {
            let pair = [pair.0, pair.1];
            for org in 0..2 {
                let (own, other) = (pair[org], pair[1 - org]);
                cases.push((org, format!("/Users/{own}"), Some(own.clone())));
                cases.push((org, format!("/Users/{other}"), None));
                cases.push((
                    org,
                    format!("/Users?filter=userName%20eq%20%22P{i}@example.com%22"),
                    Some(own.clone()),
                ));
                if round == 0 {
                    cases.push((org, format!("/Users/{}", uuid::Uuid::new_v4()), None));
                    cases.push((
                        org,
                        format!("/Users?filter=userName%20eq%20%22nobody{i}%22"),
                        None,
                    ));
                }
            }
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (n, (org, path, want)) in cases.into_iter().enumerate() {
        let client = app.client.clone();
        let url = format!("{}{path}", app.scim);
        let token = tokens[org].clone();
        set.spawn(async move {
            let r = client.get(&url).bearer_auth(token).send().await;
            let r = r.map_err(|e| format!("{n} {url}: {e}"))?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.map_err(|e| format!("{n} {url}: {e}"))?;
            let got = if url.contains("filter=") {
                if status != 200 {
                    return Err(format!("{url}: status {status}"));
                }
                match body["totalResults"].as_u64() {
                    Some(0) => None,
                    Some(1) => body["Resources"][0]["id"].as_str().map(str::to_owned),
                    _ => return Err(format!("{url}: {body}")),
                }
            } else {
                match status {
                    200 => body["id"].as_str().map(str::to_owned),
                    404 => None,
                    _ => return Err(format!("{url}: status {status}")),
                }
            };
            if got == want {
                Ok(())
            } else {
                Err(format!("{url} (org {org}): got {got:?}, want {want:?}"))
            }
        });
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        done.expect("request task")
            .unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert_eq!(n, 6 * 12 * 2 * 3 + 12 * 2 * 2);
}

async fn uniqueness_and_isolation(app: &TestApp) {
    let id = app.user("Alice@Example.com").await;
    let dup = app
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "alice@example.COM"}),
        )
        .await
        .expect(409);
    assert_eq!(dup.body["scimType"], "uniqueness");
    assert_eq!(
        dup.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(dup.body["status"], "409");
    // Renaming into a taken name is a conflict too.
    let other = app.user("bob@example.com").await;
    let r = app
        .patch(
            &format!("/Users/{other}"),
            &patch_op(json!([{"op": "replace", "path": "userName", "value": "ALICE@example.com"}])),
        )
        .await
        .expect(409);
    assert_eq!(r.body["scimType"], "uniqueness");

    // Another organization: same userName is fine, and nothing crosses over.
    let token2 = app.directory_token("globex", false).await;
    let r = app
        .call_with(
            &token2,
            Method::POST,
            "/Users",
            Some(&json!({"schemas": [USER], "userName": "alice@example.com"})),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 201);
    let theirs = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call_with(&token2, Method::GET, &format!("/Users/{id}"), None, &[])
        .await;
    assert_eq!(r.status.as_u16(), 404, "other org's user is invisible");
    let r = app
        .call_with(&token2, Method::DELETE, &format!("/Users/{id}"), None, &[])
        .await;
    assert_eq!(r.status.as_u16(), 404, "other org's user cannot be deleted");
    let p = patch_op(json!([{"op": "replace", "path": "title", "value": "pwned"}]));
    let r = app
        .call_with(
            &token2,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&p),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 404);
    let list = app
        .call_with(&token2, Method::GET, "/Users", None, &[])
        .await;
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(list.body["Resources"][0]["id"], theirs);
    // Nor can a group in one org take members from another.
    let g = app
        .call_with(
            &token2,
            Method::POST,
            "/Groups",
            Some(&json!({"displayName": "g", "members": [{"value": id}]})),
            &[],
        )
        .await;
    assert_eq!(g.status.as_u16(), 400, "{}", g.body);
    let list = app
        .get("/Users?filter=userName%20eq%20%22alice@example.com%22")
        .await
        .expect(200);
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(list.body["Resources"][0]["id"], id);
}

async fn auth_and_read_only(app: &TestApp) {
    let r = app
        .call_with("nope", Method::GET, "/Users", None, &[])
        .await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(r.body["status"], "401");
    let r = app
        .client
        .get(format!("{}/Users", app.scim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let ro = app.directory_token("acme", true).await;
    let id = app.user("ro@example.com").await;
    let r = app
        .call_with(&ro, Method::GET, &format!("/Users/{id}"), None, &[])
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let r = app
        .call_with(
            &ro,
            Method::POST,
            "/Users/.search",
            Some(&json!({"filter": "userName eq \"ro@example.com\""})),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body["totalResults"], 1);
    for (m, p, b) in [
        (
            Method::POST,
            "/Users".to_owned(),
            Some(json!({"userName": "x"})),
        ),
        (
            Method::PUT,
            format!("/Users/{id}"),
            Some(json!({"userName": "x"})),
        ),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(patch_op(
                json!([{"op": "replace", "path": "title", "value": "t"}]),
            )),
        ),
        (Method::DELETE, format!("/Users/{id}"), None),
        (
            Method::POST,
            "/Bulk".to_owned(),
            Some(json!({"Operations": []})),
        ),
    ] {
        let r = app.call_with(&ro, m.clone(), &p, b.as_ref(), &[]).await;
        assert_eq!(r.status.as_u16(), 403, "{m} {p}");
    }
}

async fn bad_input(app: &TestApp) {
    let r = app
        .client
        .post(format!("{}/Users", app.scim))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["scimType"], "invalidSyntax");
    let big = "x".repeat(1_100_000);
    let r = app
        .client
        .post(format!("{}/Users", app.scim))
        .bearer_auth(&app.token)
        .header("content-type", "application/scim+json")
        .body(format!("{{\"userName\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = app
        .post("/Users", &json!({"schemas": [USER]}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let r = app
        .post("/Users", &json!({"userName": "x", "active": "maybe"}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let r = app
        .post("/Users", &json!({"userName": "x", "name": "not an object"}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    app.get("/Nope").await.expect(404);
    // NUL is not text to PostgreSQL: refused cleanly everywhere, never a 500.
    let r = app
        .post("/Users", &json!({"userName": "nul\u{0}byte"}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let r = app
        .post("/Users", &json!({"userName": "ok", "externalId": "e\u{0}"}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    app.get("/Users/abc%00def").await.expect(404);
    app.delete("/Groups/abc%00def").await.expect(404);
    let r = app
        .post(
            "/Users/.search",
            &json!({"filter": "userName eq \"a\u{0}\""}),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidFilter");
    let r = app.get("/Users?count=abc").await.expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let r = app.get("/Users?sortBy=nope").await.expect(400);
    assert_eq!(r.status.as_u16(), 400);
    // Nothing was created by any of it.
    assert_eq!(
        app.get("/Users?count=0").await.expect(200).body["totalResults"],
        0
    );
}

async fn discovery(app: &TestApp) {
    let spc = app.get("/ServiceProviderConfig").await.expect(200).body;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["changePassword"]["supported"], false);
    let rts = app.get("/ResourceTypes").await.expect(200).body;
    assert_eq!(rts["totalResults"], 2);
    let user_rt = app.get("/ResourceTypes/User").await.expect(200).body;
    assert_eq!(user_rt["schemaExtensions"][0]["schema"], ENTERPRISE);
    let schemas = app.get("/Schemas").await.expect(200).body;
    assert_eq!(schemas["totalResults"], 3);
    let user = app.get(&format!("/Schemas/{USER}")).await.expect(200).body;
    let attrs = user["attributes"].as_array().unwrap();
    let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["required"], true);
    let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!(password["returned"], "never");
    assert_eq!(password["mutability"], "writeOnly");
    let groups = attrs.iter().find(|a| a["name"] == "groups").unwrap();
    assert_eq!(groups["mutability"], "readOnly");
    let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
    assert_eq!(emails["multiValued"], true);
    assert_eq!(emails["subAttributes"].as_array().unwrap().len(), 4);
    app.get("/Schemas/urn:nope").await.expect(404);
}

async fn paging_sorting_projection(app: &TestApp) {
    for i in 0..25 {
        app.post("/Users", &json!({"userName": format!("u{i:02}@example.com"), "name": {"familyName": format!("F{}", 24 - i)}, "emails": [{"value": format!("u{i}@example.com"), "type": "work"}]})).await.expect(201);
    }
    let r = app.get("/Users?count=0").await.expect(200).body;
    assert_eq!(r["totalResults"], 25);
    assert!(
        r.get("Resources")
            .is_none_or(|v| v.as_array().unwrap().is_empty())
    );
    // Stable order across pages, no overlaps, no gaps.
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let r = app
            .get(&format!("/Users?startIndex={start}&count=10"))
            .await
            .expect(200)
            .body;
        assert_eq!(r["startIndex"], start);
        for u in r["Resources"].as_array().unwrap() {
            seen.push(u["userName"].as_str().unwrap().to_owned());
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 25);
    assert_eq!(sorted.len(), 25);
    let r = app.get("/Users?startIndex=100").await.expect(200).body;
    assert_eq!(r["totalResults"], 25);
    assert_eq!(r["itemsPerPage"], 0);
    // sortBy
    let r = app
        .get("/Users?sortBy=name.familyName&sortOrder=descending&count=3")
        .await
        .expect(200)
        .body;
    let names: Vec<&str> = r["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"]["familyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["F9", "F8", "F7"]);
    let r = app
        .get("/Users?sortBy=userName&count=2")
        .await
        .expect(200)
        .body;
    assert_eq!(r["Resources"][0]["userName"], "u00@example.com");
    // attributes / excludedAttributes
    let r = app
        .get("/Users?attributes=userName,emails.value&count=1")
        .await
        .expect(200)
        .body;
    let u = &r["Resources"][0];
    assert!(u.get("id").is_some(), "id is always returned");
    assert!(u.get("userName").is_some());
    assert!(u.get("name").is_none());
    assert!(u.get("meta").is_none());
    assert!(u["emails"][0].get("type").is_none());
    assert!(u["emails"][0].get("value").is_some());
    let r = app
        .get("/Users?excludedAttributes=emails,name.familyName&count=1")
        .await
        .expect(200)
        .body;
    let u = &r["Resources"][0];
    assert!(u.get("emails").is_none());
    assert!(u.get("userName").is_some());
    assert!(u.get("meta").is_some());
    let id = u["id"].as_str().unwrap();
    let one = app
        .get(&format!("/Users/{id}?attributes=name.familyName"))
        .await
        .expect(200)
        .body;
    assert!(one.get("userName").is_none());
    assert!(one["name"].get("familyName").is_some());
    let r = app.post("/Users/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": ["userName"], "filter": "userName sw \"u1\"", "startIndex": 1, "count": 5})).await.expect(200).body;
    assert_eq!(r["totalResults"], 10);
    assert_eq!(r["itemsPerPage"], 5);
    assert!(r["Resources"][0].get("emails").is_none());
    let r = app.get("/Users?count=5000").await.expect(200).body;
    assert_eq!(r["itemsPerPage"], 25);
}

async fn groups_and_membership(app: &TestApp) {
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let g = app.post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng", "externalId": "eng", "members": [{"value": a}]})).await.expect(201);
    let gid = g.id();
    assert_eq!(g.body["members"][0]["value"], a);
    assert_eq!(g.body["members"][0]["type"], "User");
    let sub = app
        .post(
            "/Groups",
            &json!({"displayName": "Sub", "members": [{"value": b}]}),
        )
        .await
        .expect(201)
        .id();
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            &patch_op(
                json!([{"op": "add", "path": "members", "value": [{"value": b}, {"value": sub}]}]),
            ),
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        204,
        "group PATCH without attributes answers 204"
    );
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    let got = app.get(&format!("/Groups/{gid}")).await.expect(200).body;
    assert_eq!(got["members"].as_array().unwrap().len(), 3);
    assert!(
        got["members"][0].get("display").is_none(),
        "members.display is returned on request only"
    );
    let shown = app
        .get(&format!(
            "/Groups/{gid}?attributes=members.value,members.display"
        ))
        .await
        .expect(200)
        .body;
    let displays: Vec<&str> = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["display"].as_str())
        .collect();
    assert!(
        displays.contains(&"a@example.com") && displays.contains(&"Sub"),
        "{shown}"
    );
    let types: Vec<&str> = got["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"Group"));
    let user = app.get(&format!("/Users/{b}")).await.expect(200).body;
    let gs: Vec<&str> = user["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(gs.len(), 2);
    assert!(gs.contains(&gid.as_str()));
    // Unknown member: rejected, and nothing of the request applied.
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            &patch_op(json!([
                {"op": "replace", "path": "displayName", "value": "Renamed"},
                {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}
            ])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    assert_eq!(
        app.get(&format!("/Groups/{gid}")).await.body["displayName"],
        "Eng"
    );
    // With attributes, PATCH answers the resource.
    let r = app
        .patch(
            &format!("/Groups/{gid}?attributes=displayName"),
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Engineering"}])),
        )
        .await
        .expect(200);
    assert_eq!(r.body["displayName"], "Engineering");
    assert!(r.body.get("members").is_none());
    // Filters on groups
    let r = app
        .get(&format!(
            "/Groups?filter=members[value eq \"{a}\"]&excludedAttributes=members"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 1);
    assert!(r["Resources"][0].get("members").is_none());
    let r = app
        .get("/Groups?filter=displayName eq \"engineering\"")
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 1, "displayName is case-insensitive");
    let r = app
        .get(&format!("/Users?filter=groups.value eq \"{sub}\""))
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 1);
    // DELETE of a user removes it from every group.
    app.delete(&format!("/Users/{b}")).await.expect(204);
    let got = app.get(&format!("/Groups/{gid}")).await.expect(200).body;
    assert!(
        !got["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["value"] == b.as_str())
    );
    let got = app.get(&format!("/Groups/{sub}")).await.expect(200).body;
    assert!(got.get("members").is_none());
    // PUT replaces members.
    let r = app
        .put(
            &format!("/Groups/{gid}"),
            &json!({"displayName": "Eng", "members": []}),
        )
        .await
        .expect(200);
    assert!(r.body.get("members").is_none());
    app.delete(&format!("/Groups/{gid}")).await.expect(204);
    app.get(&format!("/Groups/{gid}")).await.expect(404);
}

async fn deactivated_users_stay_readable(app: &TestApp) {
    let id = app.user("leaver@example.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
    assert_eq!(r.body["active"], false);
    let got = app.get(&format!("/Users/{id}")).await.expect(200).body;
    assert_eq!(got["active"], false);
    let r = app
        .get("/Users?filter=active eq false")
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 1);
    let scope = crate::common::scope_of(&app.db.store, "acme").await;
    let u = roster::core::store::UserStore::get_user(&app.db.store, &scope, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.provenance, roster::core::model::Provenance::Scim);
    assert!(u.last_directory_sync_at.is_some());
}

async fn root_search(app: &TestApp) {
    app.user("root1@example.com").await;
    app.post("/Groups", &json!({"displayName": "root group"}))
        .await
        .expect(201);
    let r = app.post("/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 10})).await.expect(200).body;
    assert_eq!(r["totalResults"], 2);
    let r = app
        .post(
            "/.search",
            &json!({"filter": "userName eq \"root1@example.com\""}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 1);
}

/// Lists and reads without projection write users from the stored text (not rebuilt):
/// each must be exactly what the rebuilding renderer returns, for users with extensions,
/// the directory's own roles beside mapped ones, groups, and text that needs escaping.
async fn list_pages_render_like_reads(app: &TestApp) {
    let key = crate::common::admin_key(&app.db.store, None, false).await;
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let plain = app.user("plain@example.com").await;
    let rich = app
        .post(
            "/Users",
            &json!({
                "userName": "Zoë \"Q\" \\ O'Neil\u{1}@example.com",
                "name": {"givenName": "Zoë", "familyName": "O\"Neil"},
                "displayName": "línea\nnueva\t</script>",
                "emails": [{"value": "z@example.com", "type": "work", "primary": true}],
                "roles": [{"value": "auditor", "display": "Auditor"}, {"value": "developer"}],
                ent: {"employeeNumber": "42", "manager": {"value": plain}}
            }),
        )
        .await
        .expect(201)
        .id();
    let gid = app
        .post(
            "/Groups",
            &json!({"displayName": "Ünïcode \"team\"", "members": [{"value": rich}, {"value": plain}]}),
        )
        .await
        .expect(201)
        .id();
    app.call_with(
        &key,
        Method::POST,
        &format!("{}/api/v1/orgs/acme/role-mappings", app.base()),
        Some(&json!({"group": "Ünïcode \"team\"", "role": "developer", "match_on": "displayName"})),
        &[],
    )
    .await
    .expect(201);
    app.call_with(
        &key,
        Method::POST,
        &format!("{}/api/v1/orgs/acme/role-mappings", app.base()),
        Some(&json!({"group": "Ünïcode \"team\"", "role": "viewer", "match_on": "displayName"})),
        &[],
    )
    .await
    .expect(201);
    let page = app.get("/Users?startIndex=1&count=10").await.expect(200);
    let listed = page.body["Resources"].as_array().unwrap();
    assert_eq!(page.body["totalResults"], 2);
    assert_eq!(listed.len(), 2);
    for u in listed {
        let id = u["id"].as_str().unwrap();
        // Copied from the stored text (no projection) ...
        let read = app.get(&format!("/Users/{id}")).await.expect(200).body;
        assert_eq!(u, &read, "listed and read representations of {id}");
        // ... and rebuilt (a projection that drops only what is never stored).
        let rebuilt = app
            .get(&format!("/Users/{id}?excludedAttributes=password"))
            .await
            .expect(200)
            .body;
        assert_eq!(u, &rebuilt, "copied and rebuilt representations of {id}");
    }
    let r = listed.iter().find(|u| u["id"] == rich.as_str()).unwrap();
    assert_eq!(
        r["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ent])
    );
    assert_eq!(r["groups"][0]["value"], gid.as_str());
    let roles: Vec<(&str, Option<&str>)> = r["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].as_str().unwrap(), v["type"].as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            ("auditor", None),
            ("developer", None),
            ("viewer", Some("mapped"))
        ]
    );
    // Filtered lists and an empty page past the end take the same path.
    let f = app
        .get("/Users?filter=userName%20eq%20%22plain@example.com%22")
        .await
        .expect(200);
    assert_eq!(f.body["Resources"][0]["id"], plain.as_str());
    let past = app.get("/Users?startIndex=50&count=10").await.expect(200);
    assert_eq!(past.body["totalResults"], 2);
    assert_eq!(past.body["itemsPerPage"], 0);
    assert_eq!(past.body["Resources"], json!([]));
    let none = app
        .get("/Users?filter=userName%20eq%20%22nobody%22")
        .await
        .expect(200);
    assert_eq!(
        none.body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "itemsPerPage": 0, "startIndex": 1})
    );
}

backend_tests!(
    list_pages_render_like_reads,
    user_round_trip,
    etags_and_preconditions,
    unissued_entity_tags,
    uniqueness_and_isolation,
    concurrent_point_reads,
    auth_and_read_only,
    bad_input,
    discovery,
    paging_sorting_projection,
    groups_and_membership,
    deactivated_users_stay_readable,
    root_search,
);
