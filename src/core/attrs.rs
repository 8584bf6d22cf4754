//! Normalizing attribute documents against the schema: canonical attribute names, typed
//! values (tolerating IdP quirks such as `"active": "False"`, refusing other wrong JSON
//! types), read-only and write-only attributes dropped, required attributes checked,
//! multi-valued attributes bounded and each value kept once. A normalized document is what
//! the store keeps; normalizing it again changes nothing.
//!
//! Every step is linear in the size of the input: one SCIM request under the body limit
//! must not be able to pin a core (duplicates are found by key, never by scanning).

use std::collections::HashSet;

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

/// The most values a multi-valued attribute of a resource may hold, in a request or stored
/// (a group's `members` are not attribute values: they are rows, changed by set operations,
/// and unbounded). Far above what a person has (emails, phone numbers, addresses) or an IdP
/// assigns (roles, entitlements), and small enough that a PATCH operation, which may visit
/// every value, stays cheap: 1,000 values × the smallest operation (~40 bytes) is well
/// under a millisecond per kilobyte of request.
pub const MAX_VALUES: usize = 1000;

/// Refuses more than [`MAX_VALUES`] values for `def`.
pub fn check_count(def: &AttrDef, n: usize) -> CoreResult<()> {
    if n > MAX_VALUES {
        return Err(CoreError::InvalidValue(format!(
            "{} has {n} values; at most {MAX_VALUES} are accepted",
            def.name
        )));
    }
    Ok(())
}

/// About how much work normalizing `body` is: its attributes and the values of its lists,
/// two levels down (core attributes, extension objects). Counting is cheap (lengths only);
/// it decides whether the work runs inline or off the async workers ([`super::cpu_bound`]).
pub fn weight(body: &Map<String, Value>) -> usize {
    fn of(v: &Value, depth: u8) -> usize {
        match v {
            Value::Array(a) => a.len(),
            Value::Object(o) if depth > 0 => o.values().map(|x| 1 + of(x, depth - 1)).sum(),
            _ => 1,
        }
    }
    body.values().map(|v| of(v, 1)).sum()
}

/// Normalizes a value for `def` (multi-valued or not).
pub fn normalize_value(def: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: &[Value] = match v {
            Value::Array(a) => a,
            other => std::slice::from_ref(other),
        };
        // Counted before any work: an oversized list costs no more than its parsing.
        check_count(def, items.len())?;
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        let mut seen_primary = false;
        for item in items {
            if let Some(mut nv) = single(def, None, item)? {
                if let Some(o) = nv.as_object_mut()
                    && o.get("primary") == Some(&Value::Bool(true))
                {
                    // RFC 7643 §2.4: `primary: true` appears at most once; keep the first.
                    if seen_primary {
                        o.remove("primary");
                    }
                    seen_primary = true;
                }
                out.push(nv);
            }
        }
        let out = distinct(def, Vec::new(), out);
        return Ok(if out.is_empty() {
            None
        } else {
            Some(Value::Array(out))
        });
    }
    single(def, None, v)
}

/// Normalizes a value for sub-attribute `sub` of `def` (errors name `def.sub`).
pub fn normalize_sub(def: &AttrDef, sub: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    single(sub, Some(def), v)
}

/// Normalizes one (non-array) value of `def`.
pub fn normalize_single(def: &AttrDef, v: &Value) -> CoreResult<Option<Value>> {
    single(def, None, v)
}

/// `def`'s name as an error names it: `emails.value` for a sub-attribute.
fn attr_name(def: &AttrDef, parent: Option<&AttrDef>) -> String {
    match parent {
        Some(p) => format!("{}.{}", p.name, def.name),
        None => def.name.to_owned(),
    }
}

/// A value given for an attribute, read for what it stands for ([`given`]).
#[derive(Debug)]
pub enum Given<'a> {
    /// No value (RFC 7643 §2.5: unassigned, `null` and empty are one state).
    Unassigned,
    /// A shorthand for a whole complex value: the object it stands for.
    Whole(Value),
    /// The value as it was given (type-checked by normalizing it).
    AsGiven(&'a Value),
}

/// What `v` stands for as a value of `def`. A single-valued complex attribute with a `value`
/// sub-attribute (the Enterprise User's `manager`) is also accepted the way Microsoft Entra
/// ID sends it: its `value` alone (`"<id>"`), or a list of one such object (`[{"$ref":
/// null, "value": "<id>"}]`); each stands for the whole object, which it replaces. For
/// such an attribute `""` and `[]` name no value, like `null`; a longer list is refused.
/// The types inside are checked as for the object (`"manager": 5` → `manager.value must
/// be a string`). Every other attribute takes its values as given, `null` unassigned.
pub fn given<'a>(def: &AttrDef, v: &'a Value) -> CoreResult<Given<'a>> {
    if v.is_null() {
        return Ok(Given::Unassigned);
    }
    if def.ty != AttrType::Complex || def.multi || def.sub_attr("value").is_none() {
        return Ok(Given::AsGiven(v));
    }
    let one = match v {
        Value::Array(a) => match a.as_slice() {
            [] => return Ok(Given::Unassigned),
            [one] => one,
            many => {
                return Err(CoreError::InvalidValue(format!(
                    "{} is single-valued: a list of {} values is not accepted",
                    def.name,
                    many.len()
                )));
            }
        },
        other => other,
    };
    Ok(match one {
        Value::Null => Given::Unassigned,
        Value::String(s) if s.is_empty() => Given::Unassigned,
        Value::String(_) | Value::Bool(_) | Value::Number(_) => {
            let mut m = Map::new();
            m.insert("value".into(), one.clone());
            Given::Whole(Value::Object(m))
        }
        // An object in a list of one is the whole value; an object alone is as given (a
        // PATCH merges its sub-attributes).
        Value::Object(_) if v.is_array() => Given::Whole(one.clone()),
        Value::Object(_) => Given::AsGiven(one),
        Value::Array(_) => {
            return Err(CoreError::InvalidValue(format!(
                "{} must be an object",
                def.name
            )));
        }
    })
}

fn single(def: &AttrDef, parent: Option<&AttrDef>, v: &Value) -> CoreResult<Option<Value>> {
    if def.ty == AttrType::Complex && !def.multi {
        return match given(def, v)? {
            Given::Unassigned => Ok(None),
            Given::Whole(w) => complex(def, parent, &w),
            Given::AsGiven(g) => complex(def, parent, g),
        };
    }
    if v.is_null() {
        return Ok(None);
    }
    if def.ty == AttrType::Complex {
        return complex(def, parent, v);
    }
    scalar(def, parent, v).map(Some)
}

/// One value of complex attribute `def`: an object of its sub-attributes (a bare value
/// stands for `{"value": …}` in a multi-valued attribute with a `value` sub-attribute).
fn complex(def: &AttrDef, parent: Option<&AttrDef>, v: &Value) -> CoreResult<Option<Value>> {
    let wrapped;
    let obj = match v {
        Value::Object(o) => o,
        // `"emails": ["a@b.c"]`: a bare value for a multi-valued complex attribute (its
        // type is checked as the `value` sub-attribute's).
        Value::String(_) | Value::Bool(_) | Value::Number(_)
            if def.multi && def.sub_attr("value").is_some() =>
        {
            let mut m = Map::new();
            m.insert("value".into(), v.clone());
            wrapped = m;
            &wrapped
        }
        _ => {
            return Err(CoreError::InvalidValue(format!(
                "{} must be an object",
                attr_name(def, parent)
            )));
        }
    };
    let mut out = Map::new();
    for (k, sv) in obj {
        let Some(sub) = def.sub_attr(k) else { continue };
        if sub.mutability == Mutability::ReadOnly && def.name != "members" {
            continue;
        }
        if let Some(nv) = single(sub, Some(def), sv)? {
            out.insert(sub.name.to_owned(), nv);
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    })
}

/// Up to this many new values are compared pairwise (no allocation, the common case of an
/// email or two); beyond, by key in a hash set.
const PAIRWISE: usize = 8;

/// `items` followed by each value of `new` not already present, in order: duplicates as
/// RFC 7643 §2.4 sees them ([`same_value`]). Linear in `items.len() + new.len()`.
pub fn distinct(def: &AttrDef, mut items: Vec<Value>, new: Vec<Value>) -> Vec<Value> {
    if new.len() <= PAIRWISE {
        for n in new {
            if !items.iter().any(|e| same_value(def, e, &n)) {
                items.push(n);
            }
        }
        return items;
    }
    let mut seen: HashSet<String> = items.iter().map(|e| compare_key(def, e)).collect();
    items.reserve(new.len());
    for n in new {
        if seen.insert(compare_key(def, &n)) {
            items.push(n);
        }
    }
    items
}

/// Whether two normalized values of `def` are the same value: every sub-attribute of the
/// schema equal (strings of `caseExact: false` attributes ignoring case), as
/// [`compare_key`] says, without building keys.
pub fn same_value(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if def.ty == AttrType::Complex => {
            def.sub
                .iter()
                .all(|sub| match (x.get(sub.name), y.get(sub.name)) {
                    (None, None) => true,
                    (Some(p), Some(q)) => same_scalar(sub, p, q),
                    _ => false,
                })
        }
        _ => same_scalar(def, a, b),
    }
}

fn same_scalar(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if def.folds_case() => {
            if x.is_ascii() && y.is_ascii() {
                x.eq_ignore_ascii_case(y)
            } else {
                x.chars()
                    .flat_map(char::to_lowercase)
                    .eq(y.chars().flat_map(char::to_lowercase))
            }
        }
        _ => a == b,
    }
}

/// The text two values of `def` share exactly when [`same_value`] holds: each schema
/// sub-attribute present (by position) with its JSON text, folded where it ignores case.
pub fn compare_key(def: &AttrDef, v: &Value) -> String {
    let mut key = String::new();
    match v {
        Value::Object(o) if def.ty == AttrType::Complex => {
            for (i, sub) in def.sub.iter().enumerate() {
                if let Some(x) = o.get(sub.name) {
                    key.push_str(&i.to_string());
                    key.push('=');
                    scalar_key(&mut key, sub, x);
                    key.push(',');
                }
            }
        }
        other => scalar_key(&mut key, def, other),
    }
    key
}

fn scalar_key(key: &mut String, def: &AttrDef, v: &Value) {
    match v {
        Value::String(s) if def.folds_case() => {
            let folded: String = if s.is_ascii() {
                s.to_ascii_lowercase()
            } else {
                s.chars().flat_map(char::to_lowercase).collect()
            };
            key.push_str(&Value::String(folded).to_string());
        }
        other => key.push_str(&other.to_string()),
    }
}

fn scalar(def: &AttrDef, parent: Option<&AttrDef>, v: &Value) -> CoreResult<Value> {
    let bad = || {
        CoreError::InvalidValue(format!(
            "{} must be a {}",
            attr_name(def, parent),
            def.ty.as_str()
        ))
    };
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
                attr_name(def, parent)
            ))),
            Value::String(_) => Ok(v.clone()),
            // Numbers and booleans are not strings: `"emails": [{"value": 5}]` is a client's
            // bug, and storing "5" would hide it until something downstream trips on it.
            _ => Err(bad()),
        },
        AttrType::Complex => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::schema::USER;

    fn emails() -> &'static AttrDef {
        USER.attr("emails").unwrap()
    }

    #[test]
    fn keys_and_pairwise_comparison_agree() {
        let def = emails();
        let values = [
            json!({"value": "A@x.com"}),
            json!({"value": "a@X.com"}),
            json!({"value": "a@x.com", "type": "work"}),
            json!({"value": "a@x.com", "type": "WORK"}),
            json!({"value": "a@x.com", "primary": true}),
            json!({"value": "ΑΣ@x.com"}),
            json!({"value": "ας@x.com"}),
            json!({"type": "work"}),
            json!("a@x.com"),
            json!(5),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(
                    same_value(def, a, b),
                    compare_key(def, a) == compare_key(def, b),
                    "{a} / {b}"
                );
            }
        }
        assert!(same_value(def, &values[0], &values[1]));
        assert!(same_value(def, &values[2], &values[3]));
        assert!(!same_value(def, &values[0], &values[2]));
    }

    #[test]
    fn distinct_keeps_the_first_of_each_value_either_way() {
        let def = emails();
        let many: Vec<Value> = (0..50)
            .map(|i| json!({"value": format!("U{}@x.com", i % 20)}))
            .collect();
        let out = distinct(def, vec![json!({"value": "u3@X.com"})], many.clone());
        assert_eq!(out.len(), 20);
        assert_eq!(out[0], json!({"value": "u3@X.com"}));
        assert_eq!(out[1], json!({"value": "U0@x.com"}));
        // The pairwise path gives the same answer as the keyed one.
        let mut by_pairs = vec![json!({"value": "u3@X.com"})];
        for chunk in many.chunks(PAIRWISE) {
            by_pairs = distinct(def, by_pairs, chunk.to_vec());
        }
        assert_eq!(by_pairs, out);
    }

    #[test]
    fn wrong_types_are_named() {
        let err = |v: Value| match normalize_value(emails(), &v) {
            Err(CoreError::InvalidValue(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(json!([{"value": 5}])), "emails.value must be a string");
        assert_eq!(err(json!([true])), "emails.value must be a string");
        assert_eq!(err(json!([[1]])), "emails must be an object");
        assert_eq!(
            err(json!([{"value": "a@x.com", "primary": "yes"}])),
            "emails.primary must be a boolean"
        );
        let many: Vec<Value> = (0..=MAX_VALUES).map(|i| json!(format!("{i}@x"))).collect();
        assert!(err(json!(many)).starts_with("emails has 1001 values"));
    }

    #[test]
    fn a_manager_may_be_given_by_its_id() {
        use crate::core::schema::ENTERPRISE_USER_ATTRS;
        let Some(manager) = ENTERPRISE_USER_ATTRS.iter().find(|d| d.name == "manager") else {
            panic!("manager is in the schema");
        };
        let norm = |v: Value| normalize_value(manager, &v);
        let whole = Some(json!({"value": "m-1"}));
        assert_eq!(norm(json!("m-1")).unwrap(), whole);
        assert_eq!(
            norm(json!([{"$ref": null, "value": "m-1"}])).unwrap(),
            whole
        );
        assert_eq!(norm(json!({"value": "m-1"})).unwrap(), whole);
        for none in [json!(null), json!(""), json!([]), json!([null])] {
            assert_eq!(norm(none.clone()).unwrap(), None, "{none}");
        }
        let err = |v: Value| match norm(v) {
            Err(CoreError::InvalidValue(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(json!(7)), "manager.value must be a string");
        assert_eq!(err(json!([["m-1"]])), "manager must be an object");
        assert_eq!(
            err(json!([{"value": "a"}, {"value": "b"}])),
            "manager is single-valued: a list of 2 values is not accepted"
        );
        // Other complex attributes take no shorthand.
        let name = USER.attr("name").unwrap();
        assert!(normalize_value(name, &json!("Pat")).is_err());
        assert!(normalize_value(name, &json!([{"givenName": "Pat"}])).is_err());
    }
}
