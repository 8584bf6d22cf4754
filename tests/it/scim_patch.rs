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

backend_tests!(add_replace_remove, atomic_and_errors, group_member_ops);
