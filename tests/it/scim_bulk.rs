//! `/Bulk` with bulkId references and failOnErrors.

use serde_json::json;

use crate::backend_tests;
use crate::common::TestApp;

async fn bulk_with_references(app: &TestApp) {
    let r = app.post("/Bulk", &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk1@example.com"}},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "Bulk", "members": [{"type": "User", "value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:u1", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "T"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"userName": "BULK1@example.com"}},
            {"method": "DELETE", "path": "/Groups/bulkId:g1"}
        ]
    })).await.expect(200);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 5);
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[0]["bulkId"], "u1");
    let loc = ops[0]["location"].as_str().unwrap();
    assert_eq!(ops[1]["status"], "201");
    assert_eq!(ops[2]["status"], "200");
    assert_eq!(ops[3]["status"], "409");
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[4]["status"], "204");
    let u = app.get(loc).await.expect(200).body;
    assert_eq!(u["title"], "T");
    assert!(u.get("groups").is_none(), "group was deleted");
}

async fn bulk_fail_on_errors(app: &TestApp) {
    let r = app.post("/Bulk", &json!({
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"name": {"givenName": "no userName"}}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "never@example.com"}}
        ]
    })).await.expect(200);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "processing stops after failOnErrors errors");
    assert_eq!(ops[0]["status"], "400");
    assert_eq!(app.get("/Users?count=0").await.body["totalResults"], 0);
    let r = app.post("/Bulk", &json!({"Operations": [{"method": "PATCH", "path": "/Users/bulkId:missing", "data": {}}]})).await.expect(200);
    assert_eq!(r.body["Operations"][0]["status"], "400");
    let ops: Vec<_> = (0..1001).map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": {"userName": format!("x{i}")}})).collect();
    app.post("/Bulk", &json!({"Operations": ops}))
        .await
        .expect(413);
}

backend_tests!(bulk_with_references, bulk_fail_on_errors);
