//! Discovery endpoints (RFC 7644 §4), rendered from the schema tables and the limits the
//! server enforces, so they tell the truth. They need no authentication (RFC 7644 §4).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{ScimError, ScimResult};
use super::ops::{LIST_SCHEMA, Resp};
use super::{MAX_BULK_OPS, MAX_PAYLOAD, MAX_RESULTS, ScimState};
use crate::core::attrs::MAX_VALUES;
use crate::core::schema::{
    ALL_SCHEMAS, AttrDef, Mutability, RESOURCE_TYPES, ResourceTypeDef, SchemaDef,
};

fn ok(body: Value) -> Resp {
    Resp {
        status: StatusCode::OK,
        body: Some(super::ops::RespBody::Json(body)),
        etag: None,
        location: None,
    }
}

pub async fn service_provider_config(State(s): State<Arc<ScimState>>) -> ScimResult<Resp> {
    Ok(ok(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/roster/roster#scim",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_BULK_OPS, "maxPayloadSize": MAX_PAYLOAD},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a directory's bearer token (roster directory token).",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", s.base_url),
        }
    })))
}

fn resource_type_json(base: &str, rt: &ResourceTypeDef) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": rt.extensions.iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name)},
    })
}

fn attr_json(a: &AttrDef) -> Value {
    // RFC 7643 has no attribute characteristic for how many values are accepted: the bound
    // is told in the description (and `docs/idp/README.md`). Group members and a user's
    // (read-only) groups are memberships, not bounded values.
    let description = if a.multi && a.name != "members" && a.mutability != Mutability::ReadOnly {
        format!("{} At most {MAX_VALUES} values.", a.description)
    } else {
        a.description.to_owned()
    };
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.as_str(),
        "returned": a.returned.as_str(),
        "uniqueness": a.uniqueness.as_str(),
    });
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.sub.is_empty() {
        v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
    }
    v
}

fn schema_json(base: &str, s: &SchemaDef) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)},
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": items.len(),
        "itemsPerPage": items.len(),
        "startIndex": 1,
        "Resources": items,
    })
}

pub async fn resource_types(State(s): State<Arc<ScimState>>) -> ScimResult<Resp> {
    Ok(ok(list(
        RESOURCE_TYPES
            .iter()
            .map(|rt| resource_type_json(&s.base_url, rt))
            .collect(),
    )))
}

pub async fn resource_type(
    State(s): State<Arc<ScimState>>,
    Path(name): Path<String>,
) -> ScimResult<Resp> {
    RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name == name)
        .map(|rt| ok(resource_type_json(&s.base_url, rt)))
        .ok_or_else(|| ScimError::not_found(format!("resource type {name} not found")))
}

pub async fn schemas(State(s): State<Arc<ScimState>>) -> ScimResult<Resp> {
    Ok(ok(list(
        ALL_SCHEMAS
            .iter()
            .map(|sc| schema_json(&s.base_url, sc))
            .collect(),
    )))
}

pub async fn schema(State(s): State<Arc<ScimState>>, Path(id): Path<String>) -> ScimResult<Resp> {
    ALL_SCHEMAS
        .iter()
        .find(|sc| sc.id == id)
        .map(|sc| ok(schema_json(&s.base_url, sc)))
        .ok_or_else(|| ScimError::not_found(format!("schema {id} not found")))
}
