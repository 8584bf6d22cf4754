//! The payloads real IdP clients send, verbatim in shape: Microsoft Entra ID, Okta, Google.

use serde_json::json;

use crate::backend_tests;
use crate::common::{TestApp, patch_op};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn entra_id(app: &TestApp) {
    // User create as Entra sends it.
    let id = app.post("/Users", &json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })).await.expect(201).id();
    let path = format!("/Users/{id}");
    // Capitalised ops, string booleans, dotted and URN-qualified no-path keys.
    let r = app.patch(&path, &patch_op(json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "value": {"name.givenName": "Entra", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "E-42", "title": "Dev"}},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "moved@contoso.com"},
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}
    ]))).await.expect(200);
    let b = &r.body;
    assert_eq!(b["active"], false);
    assert_eq!(b["name"]["givenName"], "Entra");
    assert_eq!(b["name"]["familyName"], "familyName");
    assert_eq!(b[ENTERPRISE]["employeeNumber"], "E-42");
    assert_eq!(b["title"], "Dev");
    assert_eq!(b["emails"][0]["value"], "moved@contoso.com");
    assert_eq!(
        b["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "value": {"active": "True"}}])),
        )
        .await
        .expect(200);
    assert_eq!(r.body["active"], true);

    // Groups with Entra's extra schema, members with "$ref": null.
    let m1 = app.user("m1@contoso.com").await;
    let m2 = app.user("m2@contoso.com").await;
    let gid = app.post("/Groups", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
        "meta": {"resourceType": "Group"},
        "members": [{"$ref": null, "value": m1}, {"$ref": null, "value": m2}]
    })).await.expect(201).id();
    let gpath = format!("/Groups/{gid}");
    let r = app
        .patch(
            &gpath,
            &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": m1}]}])),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204);
    let g = app.get(&gpath).await.expect(200).body;
    assert_eq!(
        g["members"].as_array().unwrap().len(),
        1,
        "only the listed member is removed"
    );
    assert_eq!(g["members"][0]["value"], m2);
    app.patch(&gpath, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": m1}]}, {"op": "Replace", "path": "displayName", "value": "Renamed"}]))).await.expect(204);
    let g = app
        .get(&format!("{gpath}?excludedAttributes=members"))
        .await
        .expect(200)
        .body;
    assert_eq!(g["displayName"], "Renamed");
    assert!(g.get("members").is_none());
    // Entra's membership check
    let r = app.get(&format!("/Groups?filter=id eq \"{gid}\" and members[value eq \"{m1}\"]&excludedAttributes=members")).await.expect(200).body;
    assert_eq!(r["totalResults"], 1);
    let r = app
        .get("/Users?filter=userName eq \"3b5e0c12-76a9-4c5b-a4b0-2b9f6e1c8d77\"")
        .await
        .expect(200)
        .body;
    assert_eq!(r["totalResults"], 0);
}

/// Entra ID sets a user's manager by id alone: the id bare, or a list of one reference with
/// `"$ref": null`, under `add` or `replace`. Either is the whole manager; `null`, `""` and
/// `[]` name none; anything else is still refused with what was wrong.
async fn entra_manager(app: &TestApp) {
    let id = app.user("report@contoso.com").await;
    let boss = app.user("boss@contoso.com").await;
    let other = app.user("other-boss@contoso.com").await;
    let path = format!("/Users/{id}");
    let manager = format!("{ENTERPRISE}:manager");
    let set = |op: &str, value: serde_json::Value| {
        patch_op(json!([{"op": op, "path": manager, "value": value}]))
    };
    let manager_of = |b: &serde_json::Value| b[ENTERPRISE]["manager"].clone();

    // The exact payloads Entra sends.
    let r = app.patch(&path, &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":boss}]})).await.expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": boss}));
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );
    let got = app.get(&path).await.expect(200).body;
    assert_eq!(
        manager_of(&got),
        json!({"value": boss}),
        "read back as stored"
    );
    let r = app.patch(&path, &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":[{"$ref":null,"value":other}]}]})).await.expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": other}));
    assert_eq!(
        manager_of(&app.get(&path).await.expect(200).body),
        json!({"value": other})
    );

    // `replace` takes the same shapes.
    let r = app
        .patch(&path, &set("Replace", json!(boss)))
        .await
        .expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": boss}));
    let r = app
        .patch(
            &path,
            &set("replace", json!([{"$ref": null, "value": other}])),
        )
        .await
        .expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": other}));

    // A bare id is the whole manager: no `$ref` of the previous one stays behind.
    app.patch(
        &path,
        &set(
            "replace",
            json!({"value": boss, "$ref": format!("{}/Users/{boss}", app.scim)}),
        ),
    )
    .await
    .expect(200);
    let r = app
        .patch(&path, &set("Replace", json!(other)))
        .await
        .expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": other}));
    // The object form still merges its sub-attributes (RFC 7644 §3.5.2.3).
    let r = app
        .patch(
            &path,
            &set(
                "replace",
                json!({"$ref": format!("{}/Users/{other}", app.scim)}),
            ),
        )
        .await
        .expect(200);
    assert_eq!(
        manager_of(&r.body),
        json!({"value": other, "$ref": format!("{}/Users/{other}", app.scim)})
    );

    // Also without a path, and on create.
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "Add", "value": {manager.as_str(): boss}}])),
        )
        .await
        .expect(200);
    assert_eq!(manager_of(&r.body), json!({"value": boss}));
    let created = app
        .post(
            "/Users",
            &json!({"schemas": [USER, ENTERPRISE], "userName": "new@contoso.com",
                    ENTERPRISE: {"department": "Ops", "manager": boss}}),
        )
        .await
        .expect(201);
    assert_eq!(manager_of(&created.body), json!({"value": boss}));

    // Null, an empty id and an empty list name no manager.
    for (op, none) in [
        ("Replace", json!("")),
        ("Add", json!([])),
        ("Replace", json!(null)),
    ] {
        app.patch(&path, &set("Add", json!(boss))).await.expect(200);
        let r = app.patch(&path, &set(op, none.clone())).await.expect(200);
        assert!(
            r.body.get(ENTERPRISE).is_none(),
            "{op} {none}: no manager left; {}",
            r.body
        );
        assert!(
            app.get(&path)
                .await
                .expect(200)
                .body
                .get(ENTERPRISE)
                .is_none()
        );
    }

    // Wrong types are still refused, naming what was wrong, and change nothing.
    app.patch(&path, &set("Add", json!(boss))).await.expect(200);
    for (value, detail) in [
        (json!(42), "manager.value must be a string"),
        (json!(true), "manager.value must be a string"),
        (json!({"value": 42}), "manager.value must be a string"),
        (json!([42]), "manager.value must be a string"),
        (json!([[boss]]), "manager must be an object"),
        (
            json!([{"value": boss}, {"value": other}]),
            "manager is single-valued: a list of 2 values is not accepted",
        ),
    ] {
        let r = app.patch(&path, &set("Replace", value.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{value}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue", "{value}");
        assert_eq!(r.body["detail"], detail, "{value}");
    }
    assert_eq!(
        manager_of(&app.get(&path).await.expect(200).body),
        json!({"value": boss})
    );
    // Other complex attributes keep their checks: a bare string is no name.
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "name", "value": "Pat"}])),
        )
        .await
        .expect(400);
    assert_eq!(r.body["detail"], "name must be an object");
}

async fn okta(app: &TestApp) {
    let body = json!({
        "schemas": [USER],
        "userName": "isaac.brock@example.com",
        "name": {"givenName": "Isaac", "familyName": "Brock"},
        "emails": [{"primary": true, "value": "isaac.brock@example.com", "type": "work"}],
        "displayName": "Isaac Brock",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let r = app
        .get("/Users?filter=userName%20eq%20%22isaac.brock%40example.com%22&startIndex=1&count=100")
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
    let id = app.post("/Users", &body).await.expect(201).id();
    let r = app
        .get("/Users?filter=userName%20eq%20%22isaac.brock%40example.com%22&startIndex=1&count=100")
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], id);
    // PUT for every update, with the id and meta in the body.
    let mut put = body.clone();
    put["id"] = json!(id);
    put["name"]["familyName"] = json!("Brock-Smith");
    put["meta"] = json!({"resourceType": "User"});
    let r = app.put(&format!("/Users/{id}"), &put).await.expect(200);
    assert_eq!(r.body["name"]["familyName"], "Brock-Smith");
    // Deactivation: no-path replace.
    let r = app
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
    assert_eq!(r.body["active"], false);
    // Group push: create, then no-path replace of id + displayName, then members.
    let gid = app.post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []})).await.expect(201).id();
    let r = app.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}]))).await;
    assert!(r.status.is_success(), "{}", r.body);
    app.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id, "display": "isaac.brock@example.com"}]}]))).await.expect(204);
    let g = app.get(&format!("/Groups/{gid}")).await.expect(200).body;
    assert_eq!(g["displayName"], "Test SCIMv2 renamed");
    assert_eq!(g["members"][0]["value"], id);
    app.patch(
        &format!("/Groups/{gid}"),
        &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])),
    )
    .await
    .expect(204);
}

async fn google_workspace(app: &TestApp) {
    let r = app
        .post(
            "/Users",
            &json!({
                "schemas": [USER, "urn:scim:schemas:core:1.0"],
                "userName": "g.user@example.com",
                "name": {"givenName": "G", "familyName": "User"},
                "emails": [{"value": "g.user@example.com", "primary": true}],
                "active": true
            }),
        )
        .await
        .expect(201);
    assert_eq!(r.body["schemas"], json!([USER]));
    assert_eq!(r.body["name"]["familyName"], "User");
}

backend_tests!(entra_id, entra_manager, okta, google_workspace);
