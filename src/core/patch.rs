//! PATCH (RFC 7644 §3.5.2) applied to an attribute document. All operations of a request
//! are applied to one copy, which is normalized and validated as a whole: the request
//! succeeds or changes nothing. Group membership operations are not applied to the document
//! but turned into [`MemberOp`]s, which the store runs as set operations.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::attrs::{
    Given, check_count, compare_key, distinct, given, normalize, normalize_single, normalize_sub,
    normalize_value,
};
use super::error::{CoreError, CoreResult};
use super::model::MemberType;
use super::query::Relation;
use super::query::{ElemCond, Val};
use super::schema::{AttrDef, AttrType, Mutability, ResourceTypeDef, Stored};

/// Where a group's `members` are kept: their operations are the store's, not the document's.
const MEMBERS: Stored = Stored::Relation(Relation::Members);
use super::store::{MemberOp, MemberRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Replace,
    Remove,
}

/// Where an operation applies, resolved against the schema.
#[derive(Debug, Clone)]
pub enum PatchTarget {
    ExternalId,
    /// `id`: only a no-op rewrite of the current id is accepted (Okta sends one).
    Id,
    /// `schemas`, `meta`: ignored.
    Ignored,
    Attr {
        /// The extension URN holding the attribute, if any.
        ext: Option<&'static str>,
        def: &'static AttrDef,
        filter: Option<ElemCond>,
        sub: Option<&'static AttrDef>,
    },
}

#[derive(Debug, Clone)]
pub struct PatchOp {
    pub kind: PatchKind,
    pub target: Option<PatchTarget>,
    pub value: Option<Value>,
}

/// The result of applying a PATCH request.
#[derive(Debug)]
pub struct Patched {
    pub attrs: Map<String, Value>,
    pub member_ops: Vec<MemberOp>,
}

/// Applies `ops` to `doc` (the resource with id `id`), in order, all or nothing.
pub fn apply(
    rt: &ResourceTypeDef,
    id: &str,
    doc: &Map<String, Value>,
    ops: &[PatchOp],
) -> CoreResult<Patched> {
    let mut work = doc.clone();
    let mut member_ops = Vec::new();
    for op in ops {
        let Some(target) = &op.target else {
            return Err(CoreError::NoTarget(
                "a remove operation needs a path".into(),
            ));
        };
        match target {
            PatchTarget::Ignored => {}
            PatchTarget::Id => match (&op.kind, &op.value) {
                (PatchKind::Add | PatchKind::Replace, Some(Value::String(s))) if s == id => {}
                _ => return Err(CoreError::Mutability("id is read-only".into())),
            },
            PatchTarget::ExternalId => match op.kind {
                PatchKind::Remove => {
                    work.remove("externalId");
                }
                _ => match &op.value {
                    Some(Value::String(s)) if !s.is_empty() => {
                        work.insert("externalId".into(), Value::String(s.clone()));
                    }
                    Some(Value::Null) | None => {
                        work.remove("externalId");
                    }
                    Some(Value::String(_)) => {
                        work.remove("externalId");
                    }
                    Some(_) => {
                        return Err(CoreError::InvalidValue(
                            "externalId must be a string".into(),
                        ));
                    }
                },
            },
            PatchTarget::Attr {
                ext,
                def,
                filter,
                sub,
            } => {
                if def.stored == MEMBERS {
                    member_ops.extend(members_op(
                        op.kind,
                        filter.as_ref(),
                        *sub,
                        op.value.as_ref(),
                    )?);
                    continue;
                }
                match def.mutability {
                    Mutability::ReadOnly => {
                        return Err(CoreError::Mutability(format!("{} is read-only", def.name)));
                    }
                    // Write-only attributes (password) are accepted and never stored.
                    Mutability::WriteOnly => continue,
                    _ => {}
                }
                if let Some(s) = sub
                    && s.mutability == Mutability::ReadOnly
                {
                    return Err(CoreError::Mutability(format!(
                        "{}.{} is read-only",
                        def.name, s.name
                    )));
                }
                let container = match ext {
                    None => &mut work,
                    Some(urn) => {
                        let e = work
                            .entry((*urn).to_owned())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if !e.is_object() {
                            *e = Value::Object(Map::new());
                        }
                        match e.as_object_mut() {
                            Some(m) => m,
                            None => {
                                return Err(CoreError::InvalidValue(format!(
                                    "{urn} must be an object"
                                )));
                            }
                        }
                    }
                };
                apply_attr(
                    container,
                    def,
                    filter.as_ref(),
                    *sub,
                    op.kind,
                    op.value.as_ref(),
                )?;
                if let Some(urn) = ext
                    && work
                        .get(*urn)
                        .and_then(Value::as_object)
                        .is_some_and(Map::is_empty)
                {
                    work.remove(*urn);
                }
            }
        }
    }
    let attrs = normalize(rt, &work)?;
    Ok(Patched {
        attrs,
        member_ops: coalesce(member_ops),
    })
}

/// The membership operations of a group PATCH that touches nothing but `members`
/// (operations on `schemas` or `meta` are ignored anyway): what `apply` would return as
/// `member_ops`, with the same errors, for a document it leaves as it is. `None` if the
/// PATCH touches anything else.
pub fn member_ops_only(rt: &ResourceTypeDef, ops: &[PatchOp]) -> CoreResult<Option<Vec<MemberOp>>> {
    let members_only = rt.schema.attrs.iter().any(|d| d.stored == MEMBERS)
        && ops.iter().all(|op| match &op.target {
            Some(PatchTarget::Ignored) => true,
            Some(PatchTarget::Attr { def, .. }) => def.stored == MEMBERS,
            _ => false,
        });
    if !members_only {
        return Ok(None);
    }
    let mut member_ops = Vec::new();
    for op in ops {
        if let Some(PatchTarget::Attr { filter, sub, .. }) = &op.target {
            member_ops.extend(members_op(
                op.kind,
                filter.as_ref(),
                *sub,
                op.value.as_ref(),
            )?);
        }
    }
    Ok(Some(coalesce(member_ops)))
}

/// About how much work applying `ops` is, besides the document it applies to (see
/// `attrs::weight`): one per operation and per value it carries.
pub fn weight(ops: &[PatchOp]) -> usize {
    ops.iter()
        .map(|op| match &op.value {
            Some(Value::Array(a)) => 1 + a.len(),
            Some(Value::Object(o)) => 1 + o.len(),
            _ => 1,
        })
        .sum()
}

fn need_value(v: Option<&Value>) -> CoreResult<&Value> {
    v.ok_or_else(|| CoreError::InvalidValue("this operation needs a value".into()))
}

/// One operation on one attribute inside `container` (the document or an extension object).
fn apply_attr(
    container: &mut Map<String, Value>,
    def: &'static AttrDef,
    filter: Option<&ElemCond>,
    sub: Option<&'static AttrDef>,
    kind: PatchKind,
    value: Option<&Value>,
) -> CoreResult<()> {
    let key = def.name;
    match (def.multi, filter) {
        // Value-filtered path on a multi-valued attribute: `emails[type eq "work"].value`.
        (true, Some(f)) => {
            let mut items: Vec<Value> = match container.remove(key) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            // Whether each element matches, in order: one pass, whatever the operation.
            let hits: Vec<bool> = items.iter().map(|e| f.matches(e)).collect();
            match kind {
                PatchKind::Remove => match sub {
                    Some(s) => {
                        for (e, _) in items.iter_mut().zip(&hits).filter(|(_, h)| **h) {
                            if let Some(o) = e.as_object_mut() {
                                o.remove(s.name);
                            }
                        }
                    }
                    None => {
                        let mut hit = hits.iter();
                        items.retain(|_| !hit.next().copied().unwrap_or(false));
                    }
                },
                PatchKind::Add | PatchKind::Replace => {
                    let v = need_value(value)?;
                    if !hits.contains(&true) {
                        // Create the element the filter describes (Entra ID:
                        // `emails[type eq "work"].value` on a user without a work email).
                        let eqs = f.equalities().ok_or_else(|| {
                            CoreError::NoTarget(format!("no {key} value matched the filter"))
                        })?;
                        let mut elem = Map::new();
                        for (s, val) in eqs {
                            elem.insert(s.name.to_owned(), val_json(&val));
                        }
                        match sub {
                            Some(s) => {
                                elem.insert(s.name.to_owned(), v.clone());
                            }
                            None => match v {
                                Value::Object(o) => elem.extend(o.clone()),
                                _ => {
                                    return Err(CoreError::InvalidValue(format!(
                                        "{key} value must be an object"
                                    )));
                                }
                            },
                        }
                        if let Some(ne) = normalize_single(def, &Value::Object(elem))? {
                            items.push(ne);
                        }
                    } else {
                        // The new sub-attribute value, normalized once for every element.
                        let new_sub = match sub {
                            Some(s) => normalize_sub(def, s, v)?,
                            None => None,
                        };
                        for (e, _) in items.iter_mut().zip(&hits).filter(|(_, h)| **h) {
                            let Some(o) = e.as_object_mut() else {
                                continue;
                            };
                            match sub {
                                Some(s) => {
                                    match &new_sub {
                                        Some(nv) => o.insert(s.name.to_owned(), nv.clone()),
                                        None => o.remove(s.name),
                                    };
                                }
                                None => {
                                    let Value::Object(nv) = v else {
                                        return Err(CoreError::InvalidValue(format!(
                                            "{key} value must be an object"
                                        )));
                                    };
                                    if kind == PatchKind::Replace {
                                        o.clear();
                                    }
                                    for (k, x) in nv {
                                        o.insert(k.clone(), x.clone());
                                    }
                                }
                            }
                        }
                    }
                }
            }
            set_multi(container, def, items)?;
        }
        (false, Some(_)) => {
            return Err(CoreError::InvalidPath(format!(
                "{key} is single-valued: a value filter does not apply"
            )));
        }
        // `emails.value` (every element) or `emails`.
        (true, None) => {
            let mut items: Vec<Value> = match container.remove(key) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            match (kind, sub) {
                (PatchKind::Remove, None) => match value {
                    // Entra ID: remove only the listed values (compared as the `value`
                    // sub-attribute compares, so by key: one pass over each list).
                    Some(Value::Array(vals)) if !vals.is_empty() => {
                        let vdef = def.sub_attr("value").unwrap_or(def);
                        let key = |v: &Value| compare_key(vdef, v.get("value").unwrap_or(v));
                        let drop: HashSet<String> = vals.iter().map(key).collect();
                        items.retain(|e| !drop.contains(&key(e)));
                    }
                    _ => items.clear(),
                },
                (PatchKind::Remove, Some(s)) => {
                    for e in &mut items {
                        if let Some(o) = e.as_object_mut() {
                            o.remove(s.name);
                        }
                    }
                }
                (PatchKind::Add, None) => {
                    if let Some(Value::Array(new)) = normalize_value(def, need_value(value)?)? {
                        // A new primary value demotes the old one.
                        if new.iter().any(is_primary) {
                            for e in &mut items {
                                if let Some(o) = e.as_object_mut() {
                                    o.remove("primary");
                                }
                            }
                        }
                        items = distinct(def, items, new);
                    }
                }
                (PatchKind::Replace, None) => {
                    items = match normalize_value(def, need_value(value)?)? {
                        Some(Value::Array(a)) => a,
                        _ => Vec::new(),
                    };
                }
                (PatchKind::Add | PatchKind::Replace, Some(s)) => {
                    if let Some(nv) = normalize_sub(def, s, need_value(value)?)? {
                        for e in &mut items {
                            if let Some(o) = e.as_object_mut() {
                                o.insert(s.name.to_owned(), nv.clone());
                            }
                        }
                    }
                }
            }
            set_multi(container, def, items)?;
        }
        (false, None) => match (kind, sub) {
            (PatchKind::Remove, None) => {
                container.remove(key);
            }
            (PatchKind::Remove, Some(s)) => {
                if let Some(Value::Object(o)) = container.get_mut(key) {
                    o.remove(s.name);
                    if o.is_empty() {
                        container.remove(key);
                    }
                }
            }
            (_, Some(s)) => {
                let v = need_value(value)?;
                let entry = container
                    .entry(key.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Some(o) = entry.as_object_mut() {
                    match normalize_sub(def, s, v)? {
                        Some(nv) => o.insert(s.name.to_owned(), nv),
                        None => o.remove(s.name),
                    };
                }
                if container
                    .get(key)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
                {
                    container.remove(key);
                }
            }
            (_, None) => {
                let v = need_value(value)?;
                if def.ty == AttrType::Complex {
                    let v = match given(def, v)? {
                        Given::Unassigned => {
                            container.remove(key);
                            return Ok(());
                        }
                        // Entra ID's bare `manager` id: the whole value, replacing the old.
                        Given::Whole(w) => {
                            match normalize_value(def, &w)? {
                                Some(nv) => container.insert(key.to_owned(), nv),
                                None => container.remove(key),
                            };
                            return Ok(());
                        }
                        Given::AsGiven(g) => g,
                    };
                    // RFC 7644 §3.5.2.1/3: sub-attributes given replace theirs, others stay.
                    let Some(Value::Object(nv)) = normalize_value(def, v)? else {
                        return Ok(());
                    };
                    let entry = container
                        .entry(key.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    if let Some(o) = entry.as_object_mut() {
                        for (k, x) in nv {
                            o.insert(k, x);
                        }
                    }
                } else {
                    match normalize_value(def, v)? {
                        Some(nv) => container.insert(key.to_owned(), nv),
                        None => container.remove(key),
                    };
                }
            }
        },
    }
    Ok(())
}

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

/// Puts a multi-valued attribute back after an operation: without emptied elements, and no
/// more than `MAX_VALUES` of them (checked after every operation, so no later operation of
/// the request works on more).
fn set_multi(
    container: &mut Map<String, Value>,
    def: &AttrDef,
    mut items: Vec<Value>,
) -> CoreResult<()> {
    items.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
    check_count(def, items.len())?;
    if !items.is_empty() {
        container.insert(def.name.to_owned(), Value::Array(items));
    }
    Ok(())
}

fn val_json(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Str(s) => Value::String(s.clone()),
        Val::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
    }
}

/// Parses group members from a PATCH or POST value: `[{"value": id, "type"?: ...}]`, each
/// id once (its first mention), so that whatever a list repeats costs one hash lookup here
/// and nothing downstream. Groups may have 100,000 members and more: no bound applies.
pub fn member_refs(v: &Value) -> CoreResult<Vec<MemberRef>> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        let r = member_ref(m)?;
        if seen.insert(r.0) {
            out.push(MemberRef {
                id: r.0.to_owned(),
                kind: r.1,
            });
        }
    }
    Ok(out)
}

/// One member of a list: its id and the type the client named, if any.
fn member_ref(m: &Value) -> CoreResult<(&str, Option<MemberType>)> {
    let obj = m
        .as_object()
        .ok_or_else(|| CoreError::InvalidValue("members must be objects with a value".into()))?;
    let id = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("value"))
        .and_then(|(_, v)| v.as_str())
        .ok_or_else(|| CoreError::InvalidValue("each member needs a string value".into()))?;
    let kind = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("type"))
        .and_then(|(_, v)| v.as_str())
        .and_then(|t| {
            if t.eq_ignore_ascii_case("user") {
                Some(MemberType::User)
            } else if t.eq_ignore_ascii_case("group") {
                Some(MemberType::Group)
            } else {
                None
            }
        });
    Ok((id, kind))
}

/// Membership operations merged where that changes only how many statements run, not the
/// outcome or its events: consecutive adds are one add, consecutive removals of ids one
/// removal (each id once), and a replace or remove-all right after another is the later one.
/// A PATCH of 20,000 one-member operations is then one set operation, not 20,000.
fn coalesce(ops: Vec<MemberOp>) -> Vec<MemberOp> {
    let mut out: Vec<MemberOp> = Vec::with_capacity(ops.len().min(16));
    for op in ops {
        match (out.last_mut(), op) {
            (Some(MemberOp::Add(prev)), MemberOp::Add(refs)) => prev.extend(refs),
            (Some(MemberOp::Remove(prev)), MemberOp::Remove(ids)) => prev.extend(ids),
            (
                Some(last @ (MemberOp::Replace(_) | MemberOp::RemoveAll)),
                op @ (MemberOp::Replace(_) | MemberOp::RemoveAll),
            ) => *last = op,
            (_, op) => out.push(op),
        }
    }
    for op in &mut out {
        match op {
            MemberOp::Add(refs) => {
                let mut seen = HashSet::with_capacity(refs.len());
                refs.retain(|r| seen.insert(r.id.clone()));
            }
            MemberOp::Remove(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                ids.retain(|id| seen.insert(id.clone()));
            }
            _ => {}
        }
    }
    out
}

fn members_op(
    kind: PatchKind,
    filter: Option<&ElemCond>,
    sub: Option<&'static AttrDef>,
    value: Option<&Value>,
) -> CoreResult<Vec<MemberOp>> {
    if sub.is_some() {
        return Err(CoreError::InvalidPath(
            "members sub-attributes are immutable; add or remove whole members".into(),
        ));
    }
    match (kind, filter) {
        (PatchKind::Remove, Some(f)) => Ok(vec![MemberOp::RemoveWhere(f.clone())]),
        (PatchKind::Remove, None) => match value {
            // Entra ID: `{"op":"Remove","path":"members","value":[{"value":"…"}]}` removes those.
            Some(v) if !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()) => {
                Ok(vec![MemberOp::Remove(
                    member_refs(v)?.into_iter().map(|m| m.id).collect(),
                )])
            }
            _ => Ok(vec![MemberOp::RemoveAll]),
        },
        (PatchKind::Add, None) => Ok(vec![MemberOp::Add(member_refs(need_value(value)?)?)]),
        (PatchKind::Replace, None) => Ok(vec![MemberOp::Replace(member_refs(need_value(value)?)?)]),
        (_, Some(_)) => Err(CoreError::InvalidPath(
            "members can be added or replaced only as whole values".into(),
        )),
    }
}
