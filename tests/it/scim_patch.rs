//! PATCH semantics (RFC 7644 §3.5.2), all-or-nothing.

use serde_json::json;

use crate::backend_tests;
use crate::common::{TestApp, patch_op};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn new_user(app: &TestApp) -> String {
    app.post("/Users", &json!({
        "userName": "p@example.com",
        "name": {"givenName": "Pat", "familyName": "Doe"},
        "emails": [{"value": "p@work.example", "type": "work", "primary": true}, {"value": "p@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "1", "type": "work"}]
    })).await.expect(201).id()
}

async fn add_replace_remove(app: &TestApp) {
    let id = new_user(app).await;
    let path = format!("/Users/{id}");
    let r = app.patch(&path, &patch_op(json!([
        {"op": "add", "path": "emails", "value": [{"value": "p@other.example", "type": "other"}]},
        {"op": "replace", "path": "name.givenName", "value": "Patricia"},
        {"op": "add", "path": "title", "value": "CTO"},
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "pat@work.example"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m-1"}
    ]))).await.expect(200);
    let b = &r.body;
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    assert_eq!(b["emails"].as_array().unwrap().len(), 3);
    assert_eq!(b["name"]["givenName"], "Patricia");
    assert_eq!(b["name"]["familyName"], "Doe", "other sub-attributes stay");
    assert_eq!(b["title"], "CTO");
    let work = b["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "work")
        .unwrap();
    assert_eq!(work["value"], "pat@work.example");
    assert_eq!(work["primary"], true);
    assert!(b.get("phoneNumbers").is_none());
    assert_eq!(b[ENTERPRISE]["department"], "R&D");
    assert_eq!(b[ENTERPRISE]["manager"]["value"], "m-1");
    assert!(
        b["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );

    let r = app.patch(&path, &patch_op(json!([
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}
    ]))).await.expect(200);
    let b = &r.body;
    assert_eq!(b["emails"].as_array().unwrap().len(), 2);
    assert!(b["name"].get("givenName").is_none());
    assert!(b.get(ENTERPRISE).is_none(), "empty extension is dropped");
    assert!(
        !b["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );

    // No-path add/replace: attributes in the value.
    let r = app.patch(&path, &patch_op(json!([
        {"op": "add", "value": {"nickName": "PD", "emails": [{"value": "x@y.example", "type": "home"}]}},
        {"op": "replace", "value": {"name": {"givenName": "P"}, ENTERPRISE: {"costCenter": "9"}}}
    ]))).await.expect(200);
    assert_eq!(r.body["nickName"], "PD");
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["name"]["givenName"], "P");
    assert_eq!(r.body["name"]["familyName"], "Doe");
    assert_eq!(r.body[ENTERPRISE]["costCenter"], "9");
    // replace a multi-valued attribute wholesale
    let r = app.patch(&path, &patch_op(json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x.example"}]}]))).await.expect(200);
    assert_eq!(r.body["emails"], json!([{"value": "only@x.example"}]));
    // A new primary demotes the old.
    app.patch(&path, &patch_op(json!([{"op": "replace", "path": "emails", "value": [{"value": "a@x.example", "primary": true}]}]))).await.expect(200);
    let r = app.patch(&path, &patch_op(json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.example", "primary": true}]}]))).await.expect(200);
    let primaries: Vec<_> = r.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .collect();
    assert_eq!(primaries.len(), 1);
    assert_eq!(primaries[0]["value"], "b@x.example");
}

async fn atomic_and_errors(app: &TestApp) {
    let id = new_user(app).await;
    let path = format!("/Users/{id}");
    // The second op fails: the first must not apply.
    let r = app
        .patch(
            &path,
            &patch_op(json!([
                {"op": "replace", "path": "title", "value": "should not stick"},
                {"op": "replace", "path": "nosuchattr", "value": "x"}
            ])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidPath");
    let got = app.get(&path).await.expect(200);
    assert!(got.body.get("title").is_none());
    assert_eq!(got.header("etag").as_deref(), Some("W/\"1\""));
    let r = app
        .patch(&path, &patch_op(json!([{"op": "remove"}])))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "noTarget");
    let r = app.patch(&path, &patch_op(json!([{"op": "replace", "path": "emails[type eq \"fax\" or value sw \"z\"]", "value": {"value": "z"}}]))).await.expect(400);
    assert_eq!(r.body["scimType"], "noTarget");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "groups", "value": []}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "mutability");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "id", "value": "other"}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "mutability");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "jump", "path": "title", "value": "x"}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidSyntax");
    let r = app
        .patch(
            &path,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidSyntax");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidPath");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "userName", "value": null}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    app.patch(
        "/Users/does-not-exist",
        &patch_op(json!([{"op": "replace", "path": "title", "value": "x"}])),
    )
    .await
    .expect(404);
    assert_eq!(
        app.get(&path).await.header("etag").as_deref(),
        Some("W/\"1\""),
        "no failed PATCH changed the user"
    );
}

async fn group_member_ops(app: &TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.user(&format!("m{i}@example.com")).await);
    }
    let gid = app.post("/Groups", &json!({"displayName": "G", "members": [{"value": ids[0]}, {"value": ids[1]}, {"value": ids[2]}]})).await.expect(201).id();
    let path = format!("/Groups/{gid}");
    let members = |b: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = b["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    app.patch(
        &path,
        &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}])),
    )
    .await
    .expect(204);
    assert_eq!(members(&app.get(&path).await.body), want);
    // Adding an existing member is a no-op, not an error.
    app.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[3]}]}]))).await.expect(204);
    assert_eq!(members(&app.get(&path).await.body).len(), 3);
    // replace members wholesale
    app.patch(
        &path,
        &patch_op(json!([{"op": "replace", "path": "members", "value": [{"value": ids[4]}]}])),
    )
    .await
    .expect(204);
    assert_eq!(members(&app.get(&path).await.body), vec![ids[4].clone()]);
    // no-path add with members
    app.patch(
        &path,
        &patch_op(json!([{"op": "add", "value": {"members": [{"value": ids[1]}]}}])),
    )
    .await
    .expect(204);
    assert_eq!(members(&app.get(&path).await.body).len(), 2);
    // remove all
    app.patch(
        &path,
        &patch_op(json!([{"op": "remove", "path": "members"}])),
    )
    .await
    .expect(204);
    assert!(members(&app.get(&path).await.body).is_empty());
}

/// A membership-only PATCH answered with 204 (made without reading the group first where
/// the store can) has the answers and effects of any other PATCH: the new version in its
/// ETag, 404/412/400 for a missing group, a stale version or a member that is no user or
/// group of the organization (and then nothing changed), nested groups as members.
async fn membership_patch_answers(app: &TestApp) {
    let u1 = app.user("a@example.com").await;
    let u2 = app.user("b@example.com").await;
    let created = app
        .post(
            "/Groups",
            &json!({"displayName": "G", "members": [{"value": u1}]}),
        )
        .await
        .expect(201);
    let gid = created.id();
    let path = format!("/Groups/{gid}");
    let version = |r: &crate::common::Resp| r.header("etag").expect("etag");
    let add =
        |id: &str| patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]));
    let v1 = version(&created);
    assert_eq!(v1, "W/\"1\"");

    let r = app.patch(&path, &add(&u2)).await.expect(204);
    assert_eq!(version(&r), "W/\"2\"");
    let got = app.get(&path).await.expect(200);
    assert_eq!(version(&got), "W/\"2\"");
    assert_eq!(got.body["members"].as_array().unwrap().len(), 2);

    // Unknown member, a user sent as a Group, a missing group: errors, nothing changed.
    let r = app.patch(&path, &add("no-such-id")).await.expect(400);
    assert_eq!(r.body["scimType"], "invalidValue");
    let typed = patch_op(
        json!([{"op": "add", "path": "members", "value": [{"value": u1, "type": "Group"}]}]),
    );
    app.patch(&path, &typed).await.expect(400);
    let mixed = patch_op(json!([
        {"op": "remove", "path": format!("members[value eq \"{u1}\"]")},
        {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}
    ]));
    app.patch(&path, &mixed).await.expect(400);
    app.patch("/Groups/no-such-group", &add(&u1))
        .await
        .expect(404);
    let got = app.get(&path).await.expect(200);
    assert_eq!(version(&got), "W/\"2\"");
    assert_eq!(got.body["members"].as_array().unwrap().len(), 2);

    // If-Match: a stale version is refused, the current one accepted.
    let remove = patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}]));
    let r = app
        .call_with(
            &app.token,
            reqwest::Method::PATCH,
            &path,
            Some(&remove),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, 412);
    let r = app
        .call_with(
            &app.token,
            reqwest::Method::PATCH,
            &path,
            Some(&remove),
            &[("if-match", "W/\"2\"")],
        )
        .await
        .expect(204);
    assert_eq!(version(&r), "W/\"3\"");

    // A group as a member (without a type): taken as a Group.
    let inner = app
        .post("/Groups", &json!({"displayName": "Inner"}))
        .await
        .expect(201)
        .id();
    app.patch(&path, &add(&inner)).await.expect(204);
    let got = app.get(&path).await.expect(200);
    let nested: Vec<&serde_json::Value> = got.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["value"] == inner.as_str())
        .collect();
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0]["type"], "Group");
    assert_eq!(version(&got), "W/\"4\"");
}

/// Membership PATCHes arriving together (queued for one writer on SQLite), some of them
/// failing: each gets its own answer, versions are counted once per success, events name
/// exactly the memberships that changed, and the audit chain stays unbroken.
async fn concurrent_membership_patches(app: &TestApp) {
    use roster::core::store::prelude::*;
    let mut users = Vec::new();
    for i in 0..24 {
        users.push(app.user(&format!("c{i}@example.com")).await);
    }
    let gid = app
        .post("/Groups", &json!({"displayName": "Busy"}))
        .await
        .expect(201)
        .id();
    let path = format!("/Groups/{gid}");
    let org = app.db.store.org_by_slug("acme").await.unwrap().unwrap();
    let from = app.db.store.last_event_cursor().await.unwrap();
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        // Every third PATCH names a member that does not exist, after a real one.
        let value = if i % 3 == 2 {
            json!([{"value": u}, {"value": format!("missing-{i}")}])
        } else {
            json!([{"value": u}])
        };
        let body = patch_op(json!([{"op": "add", "path": "members", "value": value}]));
        let client = app.client.clone();
        let url = format!("{}{path}", app.scim);
        let token = app.token.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .patch(url)
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let etag = r
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), etag)
        }));
    }
    let mut etags = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, etag) = t.await.unwrap();
        if i % 3 == 2 {
            assert_eq!(status, 400, "PATCH {i}");
        } else {
            assert_eq!(status, 204, "PATCH {i}");
            etags.push(etag.expect("etag"));
        }
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 16, "each success has its own version");
    let got = app.get(&path).await.expect(200);
    assert_eq!(got.header("etag").unwrap(), "W/\"17\"");
    let mut members: Vec<String> = got.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    let mut want: Vec<String> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(_, u)| u.clone())
        .collect();
    want.sort();
    assert_eq!(members, want);
    let events = app
        .db
        .store
        .events_after(from, Some(&org.id), 1000)
        .await
        .unwrap();
    let mut added: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "group.member_added")
        .map(|e| e.data["member_id"].as_str().unwrap().to_owned())
        .collect();
    added.sort();
    assert_eq!(added, want);
    for (chain, anchor) in app.db.store.audit_chains().await.unwrap() {
        let e = app.db.store.audit_entries(&chain, None).await.unwrap();
        roster::core::audit::verify_chain(&chain, anchor.as_ref(), e).expect("intact chain");
    }
}

backend_tests!(
    add_replace_remove,
    atomic_and_errors,
    group_member_ops,
    membership_patch_answers,
    concurrent_membership_patches
);
