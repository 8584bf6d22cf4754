//! Request bodies and paths of the standard SCIM 2.0 requests the benchmark
//! sends (RFC 7643 / RFC 7644).

use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::encode::percent_encode;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Display name of the group every loaded user joins.
pub const GROUP_NAME: &str = "bench-all";

/// Indexes from here on (the spread measurement's users) get scattered names.
pub const SCATTERED_FROM: u64 = 1_000_000_000;

/// The `userName` of the user with this index. Below `SCATTERED_FROM` in index order (the
/// population the phases read); from it on scattered over the key space, as an IdP's
/// names are, so that no run of creates lands its keys side by side in one organization's
/// indexes while the same creates spread over several organizations do not.
pub fn user_name(index: u64) -> String {
    if index >= SCATTERED_FROM {
        return format!("u{:016x}@bench.example", scatter(index));
    }
    format!("user{index}@bench.example")
}

/// The `externalId` of the user with this index (scattered as `user_name` is).
fn external_id(index: u64) -> String {
    if index >= SCATTERED_FROM {
        return format!("bench-{:016x}", scatter(index));
    }
    format!("bench-{index}")
}

/// A bijection of u64 (splitmix64's finalizer): neighbouring indexes, far-apart names.
fn scatter(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Body of `POST /Users` for the user with this index.
pub fn user(index: u64) -> Bytes {
    let name = user_name(index);
    to_bytes(&json!({
        "schemas": [USER_SCHEMA],
        "userName": name,
        "externalId": external_id(index),
        "name": {
            "givenName": format!("Given{index}"),
            "familyName": format!("Family{index}"),
        },
        "displayName": format!("Given{index} Family{index}"),
        "emails": [{ "value": name, "type": "work", "primary": true }],
        "active": true,
    }))
}

/// Body of `POST /Groups` for the benchmark group.
pub fn group() -> Bytes {
    to_bytes(&json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": GROUP_NAME,
    }))
}

/// PATCH body adding these users to a group's members in one operation.
pub fn add_members<'a>(ids: impl IntoIterator<Item = &'a str>) -> Bytes {
    let members: Vec<Value> = ids.into_iter().map(|id| json!({ "value": id })).collect();
    patch(json!({ "op": "add", "path": "members", "value": members }))
}

/// PATCH body removing one user from a group's members.
pub fn remove_member(id: &str) -> Bytes {
    // The id is a JSON string inside a SCIM filter string: escape it for both.
    let quoted = Value::String(id.to_owned()).to_string();
    patch(json!({ "op": "remove", "path": format!("members[value eq {quoted}]") }))
}

/// PATCH body deactivating a user (`active` replaced by `false`).
pub fn deactivate() -> Bytes {
    patch(json!({ "op": "replace", "value": { "active": false } }))
}

fn patch(operation: Value) -> Bytes {
    to_bytes(&json!({ "schemas": [PATCH_SCHEMA], "Operations": [operation] }))
}

fn to_bytes(value: &Value) -> Bytes {
    // Serializing a `Value` cannot fail: its map keys are strings.
    Bytes::from(value.to_string())
}

/// Path of one user.
pub fn user_path(id: &str) -> String {
    format!("/Users/{}", percent_encode(id))
}

/// Path of one group.
pub fn group_path(id: &str) -> String {
    format!("/Groups/{}", percent_encode(id))
}

/// Path and query of the search for one `userName`.
pub fn user_name_filter_path(index: u64) -> String {
    let filter = format!("userName eq \"{}\"", user_name(index));
    format!("/Users?filter={}", percent_encode(&filter))
}

/// Path and query of one page of the user list (`start_index` is 1-based).
pub fn list_page_path(start_index: u64, count: u64) -> String {
    format!("/Users?startIndex={start_index}&count={count}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).expect("payloads are valid JSON")
    }

    #[test]
    fn user_body_has_the_standard_attributes() {
        let body = parse(&user(42));
        assert_eq!(body["userName"], "user42@bench.example");
        assert_eq!(body["emails"][0]["primary"], true);
        assert_eq!(body["name"]["familyName"], "Family42");
    }

    #[test]
    fn remove_member_uses_a_value_filter() {
        let body = parse(&remove_member("ab\"c"));
        assert_eq!(
            body["Operations"][0]["path"],
            r#"members[value eq "ab\"c"]"#
        );
    }

    #[test]
    fn deactivate_replaces_active() {
        let body = parse(&deactivate());
        assert_eq!(body["schemas"][0], PATCH_SCHEMA);
        assert_eq!(body["Operations"][0]["value"]["active"], false);
    }

    #[test]
    fn add_members_lists_every_id() {
        let body = parse(&add_members(["a", "b"]));
        assert_eq!(body["Operations"][0]["value"][1]["value"], "b");
    }
}
