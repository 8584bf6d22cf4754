//! `/Bulk` (RFC 7644 §3.7): operations run in order through the same code as single
//! requests; `bulkId:` references are replaced by the ids of resources created earlier in
//! the request; `failOnErrors` stops processing after that many errors.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::{ScimError, ScimResult};
use super::ops::{self, Kind, Resp};
use super::wire::{Projection, if_match};
use super::{Body, Caller, MAX_BULK_OPS, ScimState, json_body};

const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Replaces `"bulkId:x"` strings anywhere in `v`; unresolved references are reported.
fn substitute(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix("bulkId:") {
                match ids.get(r) {
                    Some(id) => *s = id.clone(),
                    None => return Err(r.to_owned()),
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                substitute(x, ids)?;
            }
        }
        Value::Object(o) => {
            for (_, x) in o.iter_mut() {
                substitute(x, ids)?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub async fn bulk(
    State(s): State<Arc<ScimState>>,
    c: Caller,
    Body(body): Body,
) -> ScimResult<Resp> {
    c.check_write()?;
    let req = json_body(&body)?;
    let ops_v = req
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| {
            ScimError::bad("invalidSyntax", "a BulkRequest needs an Operations array")
        })?;
    if ops_v.len() > MAX_BULK_OPS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("at most {MAX_BULK_OPS} operations per bulk request"),
        ));
    }
    let fail_on_errors = req
        .get("failOnErrors")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::new();
    let mut errors = 0u64;
    for op in ops_v {
        if fail_on_errors.is_some_and(|max| errors >= max) {
            break;
        }
        let (entry, failed) = run_one(&s, &c, op, &mut ids).await;
        if failed {
            errors += 1;
        }
        results.push(entry);
    }
    Ok(Resp {
        status: StatusCode::OK,
        body: Some(ops::RespBody::Json(
            json!({"schemas": [BULK_RESPONSE], "Operations": results}),
        )),
        etag: None,
        location: None,
    })
}

async fn run_one(
    s: &ScimState,
    c: &Caller,
    op: &Value,
    ids: &mut HashMap<String, String>,
) -> (Value, bool) {
    let method = op
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let bulk_id = op.get("bulkId").and_then(Value::as_str).map(str::to_owned);
    let mut entry = Map::new();
    entry.insert("method".into(), json!(method));
    if let Some(b) = &bulk_id {
        entry.insert("bulkId".into(), json!(b));
    }
    match execute(s, c, &method, bulk_id.as_deref(), op, ids).await {
        Ok(r) => {
            if let Some(l) = r.location {
                entry.insert("location".into(), json!(l));
            }
            if let Some(v) = r.etag {
                entry.insert("version".into(), json!(v));
            }
            entry.insert("status".into(), json!(r.status.as_u16().to_string()));
            (Value::Object(entry), false)
        }
        Err(e) => {
            entry.insert("status".into(), json!(e.status.as_u16().to_string()));
            entry.insert("response".into(), e.to_json());
            (Value::Object(entry), true)
        }
    }
}

async fn execute(
    s: &ScimState,
    c: &Caller,
    method: &str,
    bulk_id: Option<&str>,
    op: &Value,
    ids: &mut HashMap<String, String>,
) -> ScimResult<Resp> {
    let mut path = op
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut data = op.get("data").cloned().unwrap_or(Value::Null);
    let unresolved = |r: String| {
        ScimError::bad(
            "invalidValue",
            format!("unresolved bulkId reference \"{r}\""),
        )
    };
    if let Some(r) = path.split('/').find_map(|seg| seg.strip_prefix("bulkId:")) {
        let id = ids
            .get(r)
            .cloned()
            .ok_or_else(|| unresolved(r.to_owned()))?;
        path = path.replace(&format!("bulkId:{r}"), &id);
    }
    substitute(&mut data, ids).map_err(unresolved)?;
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let kind = segs
        .first()
        .and_then(|s| Kind::from_endpoint(s))
        .ok_or_else(|| ScimError::bad("invalidPath", format!("bad bulk path \"{path}\"")))?;
    let id = segs.get(1).copied();
    if id.is_some_and(|i| i.contains('\0')) {
        return Err(ScimError::not_found("no such resource"));
    }
    // The operation's precondition, read as `If-Match` is: a version Roster never issued
    // fails it (412) rather than being dropped.
    let version = match op.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => if_match(v).map_err(|m| ScimError::bad("invalidValue", m))?,
        Some(_) => {
            return Err(ScimError::bad(
                "invalidValue",
                "an operation's version must be a string (an entity tag)",
            ));
        }
    };
    let body = || -> ScimResult<Map<String, Value>> {
        match &data {
            Value::Object(o) => Ok(o.clone()),
            _ => Err(ScimError::bad(
                "invalidSyntax",
                "operation data must be an object",
            )),
        }
    };
    let proj = Projection::default();
    match (method, id) {
        ("POST", None) => {
            let b = bulk_id
                .ok_or_else(|| ScimError::bad("invalidValue", "POST operations need a bulkId"))?;
            let r = ops::create(s, &c.scope, kind, &body()?, &proj).await?;
            if let Some(new_id) = r
                .body
                .as_ref()
                .and_then(ops::RespBody::json)
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
            {
                ids.insert(b.to_owned(), new_id.to_owned());
            }
            Ok(r)
        }
        ("PUT", Some(id)) => ops::replace(s, &c.scope, kind, id, &body()?, version, &proj).await,
        ("PATCH", Some(id)) => {
            let mut r = ops::patch(s, &c.scope, kind, id, &body()?, version, &[]).await?;
            if r.status == StatusCode::NO_CONTENT {
                r.status = StatusCode::OK;
            }
            r.location = Some(format!("{}/{}", s.base_url, path.trim_matches('/')));
            Ok(r)
        }
        ("DELETE", Some(id)) => ops::delete(s, &c.scope, kind, id, version).await,
        _ => Err(ScimError::bad(
            "invalidSyntax",
            format!("unsupported bulk operation {method} {path}"),
        )),
    }
}
