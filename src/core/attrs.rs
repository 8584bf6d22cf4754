//! Normalizing attribute documents against the schema: canonical attribute names, typed
//! values (tolerating IdP quirks such as `"active": "False"`), read-only and write-only
//! attributes dropped, required attributes checked. A normalized document is what the
//! store keeps; normalizing it again changes nothing.

use serde_json::{Map, Value};

use super::error::{CoreError, CoreResult};
use super::schema::{AttrDef, AttrType, Mutability, ResourceTypeDef};

/// Normalizes a whole resource body (without `id`, `meta`, `schemas`, which are dropped).
pub fn normalize(
    rt: &ResourceTypeDef,
    input: &Map<String, Value>,
) -> CoreResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in input {
        let lk = k.to_ascii_lowercase();
        match lk.as_str() {
            "schemas" | "id" | "meta" => continue,
            "externalid" => {
                match v {
                    Value::Null => {}
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) if s.contains('\0') => {
                        return Err(CoreError::InvalidValue(
                            "externalId must not contain NUL characters".into(),
                        ));
                    }
                    Value::String(s) => {
                        out.insert("externalId".into(), Value::String(s.clone()));
                    }
                    _ => {
                        return Err(CoreError::InvalidValue(
                            "externalId must be a string".into(),
                        ));
                    }
                }
                continue;
            }
            _ => {}
        }
        if lk.starts_with("urn:") {
            if let Some(ext) = rt.extension(k) {
                match v {
                    Value::Object(o) => {
                        let m = normalize_attrs(ext.attrs, o)?;
                        if !m.is_empty() {
                            out.insert(ext.id.to_owned(), Value::Object(m));
                        }
                    }
                    Value::Null => {}
                    _ => {
                        return Err(CoreError::InvalidValue(format!(
                            "{} must be an object",
                            ext.id
                        )));
                    }
                }
            } else if k.eq_ignore_ascii_case(rt.schema.id) {
                // Some clients wrap core attributes in the core schema's URN.
                if let Value::Object(o) = v {
                    for (ck, cv) in normalize_attrs(rt.schema.attrs, o)? {
                        out.insert(ck, cv);
                    }
                }
            }
            // Other URNs (e.g. SCIM 1.0 `urn:scim:schemas:core:1.0` from Google) are ignored.
            continue;
        }
        if let Some(def) = rt.schema.attr(k)
            && let Some(nv) = normalize_top(def, v)?
        {
            out.insert(def.name.to_owned(), nv);
        }
        // Unknown attributes are ignored (RFC 7644 §3.3 lets the service provider do so).
    }
    for def in rt.schema.attrs.iter().filter(|a| a.required) {
        match out.get(def.name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => {
                return Err(CoreError::InvalidValue(format!(
                    "{} is required and must be a non-empty string",
                    def.name
                )));
            }
        }
    }
    Ok(out)
}

fn normalize_attrs(
    defs: &'static [AttrDef],
    o: &Map<String, Value>,
) -> CoreResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in o {
        if let Some(def) = defs.iter().find(|d| d.name.eq_ignore_ascii_case(k))
            && let Some(nv) = normalize_top(def, v)?
        {
            out.insert(def.name.to_owned(), nv);
        }
    }
    Ok(out)
}

/// Normalizes the value of an attribute as stored; `None` means "unassigned".
/// Read-only attributes are server-computed and write-only ones are never stored.
pub fn normalize_top(def: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    if matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
        return Ok(None);
    }
    normalize_value(def, v)
}

/// Normalizes a value for `def` (multi-valued or not).
pub fn normalize_value(def: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        let mut seen_primary = false;
        for item in items {
            if let Some(mut nv) = normalize_single(def, item)? {
                if let Some(o) = nv.as_object_mut()
                    && o.get("primary") == Some(&Value::Bool(true))
                {
                    // RFC 7643 §2.4: `primary: true` appears at most once; keep the first.
                    if seen_primary {
                        o.remove("primary");
                    }
                    seen_primary = true;
                }
                if !out.contains(&nv) {
                    out.push(nv);
                }
            }
        }
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Array(out))
        });
    }
    normalize_single(def, v)
}

/// Normalizes one (non-array) value of `def`.
pub fn normalize_single(def: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if def.ty == AttrType::Complex {
        let obj = match v {
            Value::Object(o) => o.clone(),
            // `"emails": ["a@b.c"]`: a bare value for a multi-valued complex attribute.
            Value::String(_) | Value::Bool(_) | Value::Number(_)
                if def.multi && def.sub_attr("value").is_some() =>
            {
                let mut m = Map::new();
                m.insert("value".into(), v.clone());
                m
            }
            _ => {
                return Err(CoreError::InvalidValue(format!(
                    "{} must be an object",
                    def.name
                )));
            }
        };
        let mut out = Map::new();
        for (k, sv) in &obj {
            let Some(sub) = def.sub_attr(k) else { continue };
            if sub.mutability == Mutability::ReadOnly && def.name != "members" {
                continue;
            }
            if let Some(nv) = normalize_single(sub, sv)? {
                out.insert(sub.name.to_owned(), nv);
            }
        }
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Object(out))
        });
    }
    scalar(def, v).map(Some)
}

fn scalar(def: &AttrDef, v: &Value) -> CoreResult<Value> {
    let bad = || CoreError::InvalidValue(format!("{} must be a {}", def.name, def.ty.as_str()));
    match def.ty {
        AttrType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            // Entra ID sends "True"/"False".
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        AttrType::Integer => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).map_err(|_| bad()),
            _ => Err(bad()),
        },
        AttrType::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(bad),
            _ => Err(bad()),
        },
        AttrType::DateTime => match v {
            Value::String(s) if super::parse_time(s).is_some() => Ok(v.clone()),
            _ => Err(bad()),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match v {
            // NUL is not text in PostgreSQL, nor in most of the systems downstream.
            Value::String(s) if s.contains('\0') => Err(CoreError::InvalidValue(format!(
                "{} must not contain NUL characters",
                def.name
            ))),
            Value::String(_) => Ok(v.clone()),
            // Tolerated: numbers and booleans sent for string attributes (employeeNumber: 42).
            Value::Number(n) if def.ty == AttrType::String => Ok(Value::String(n.to_string())),
            Value::Bool(b) if def.ty == AttrType::String => Ok(Value::String(b.to_string())),
            _ => Err(bad()),
        },
        AttrType::Complex => Err(bad()),
    }
}
