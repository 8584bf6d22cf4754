//! Wire representations: core records rendered as SCIM resources, and the
//! `attributes`/`excludedAttributes` projection with the schema's `returned` rules.

use std::io::Write;

use serde_json::{Map, Value, json};

use super::resolve::AttrSel;
use crate::core::model::{Expect, Group, GroupRef, ListedUser, Member, Meta, User};
use crate::core::schema::{ResourceTypeDef, Returned};

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The versions an `If-Match`/`If-None-Match` value names, in order: each entity tag of the
/// list (RFC 7232 §3) that is one Roster issues (`W/"<version>"`; also accepted strong or
/// unquoted). Anything else in the list, malformed text included, names no version. One
/// pass, no allocation: a header holds as many tags as its size allows.
struct TaggedVersions<'a> {
    rest: &'a str,
}

impl Iterator for TaggedVersions<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        loop {
            let rest = self.rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            let tag = rest.strip_prefix("W/").unwrap_or(rest);
            let opaque = match tag.strip_prefix('"') {
                Some(q) => match q.find('"') {
                    Some(end) => {
                        self.rest = &q[end + 1..];
                        Some(&q[..end])
                    }
                    // An unterminated tag names nothing (and ends the list).
                    None => {
                        self.rest = "";
                        None
                    }
                },
                None => {
                    let end = tag.find(',').unwrap_or(tag.len());
                    self.rest = &tag[end..];
                    Some(tag[..end].trim())
                }
            };
            if let Some(n) = opaque.and_then(|o| o.parse::<i64>().ok())
                && n >= 1
            {
                return Some(n);
            }
        }
    }
}

fn tagged_versions(v: &str) -> TaggedVersions<'_> {
    TaggedVersions { rest: v }
}

/// An `If-Match` value (or a `/Bulk` operation's `version`) as a write's precondition:
/// `None` for `*` (any current version), `Unissued` when it names no version Roster
/// issued. Several versions cannot all be current; the write needs the one it read.
pub fn if_match(v: &str) -> Result<Option<Expect>, String> {
    if v.trim() == "*" {
        return Ok(None);
    }
    let mut versions = tagged_versions(v);
    let Some(first) = versions.next() else {
        return Ok(Some(Expect::Unissued));
    };
    if versions.any(|n| n != first) {
        return Err(
            "the entity tags name several versions; name the one the change is based on".into(),
        );
    }
    Ok(Some(Expect::Version(first)))
}

/// An `If-None-Match` value on a read: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoneMatch(String);

impl NoneMatch {
    pub fn new(v: String) -> NoneMatch {
        NoneMatch(v)
    }

    /// Whether an existing resource at version `current` matches (the answer is then 304).
    pub fn matches(&self, current: i64) -> bool {
        self.0.trim() == "*" || tagged_versions(&self.0).any(|n| n == current)
    }
}

fn meta_json(rt: &ResourceTypeDef, meta: &Meta, location: String) -> Value {
    json!({
        "resourceType": rt.name,
        "created": meta.created,
        "lastModified": meta.last_modified,
        "version": etag(meta.version),
        "location": location,
    })
}

/// `schemas`: the core schema and each extension the resource holds (`has`).
fn schemas_json(rt: &ResourceTypeDef, has: impl Fn(&str) -> bool) -> Value {
    let mut schemas = vec![Value::String(rt.schema.id.to_owned())];
    for ext in rt.extensions {
        if has(ext.id) {
            schemas.push(Value::String(ext.id.to_owned()));
        }
    }
    Value::Array(schemas)
}

/// The stored attributes plus `schemas` and `id` (takes the map: no copy of the values).
fn with_schemas(
    rt: &ResourceTypeDef,
    id: &str,
    mut attrs: Map<String, Value>,
) -> Map<String, Value> {
    let schemas = schemas_json(rt, |ext| attrs.contains_key(ext));
    attrs.insert("schemas".into(), schemas);
    attrs.insert("id".into(), Value::String(id.to_owned()));
    attrs
}

/// A user's `groups`: its direct memberships.
fn groups_json(base: &str, groups: &[GroupRef]) -> Value {
    groups
        .iter()
        .map(|g| {
            json!({
                "value": g.id,
                "$ref": format!("{base}/Groups/{}", g.id),
                "display": g.display,
                "type": "direct",
            })
        })
        .collect()
}

/// A user's `roles`: the directory's own values (`stored`), joined by the roles granted by
/// group-to-role mappings, marked `type: "mapped"` (each role once).
fn merged_roles(stored: Option<Value>, mapped: &[String]) -> Value {
    let mut list = match stored {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    for r in mapped {
        let present = list
            .iter()
            .any(|v| v.get("value").and_then(Value::as_str) == Some(r.as_str()));
        if !present {
            list.push(json!({"value": r, "display": r, "type": "mapped"}));
        }
    }
    Value::Array(list)
}

pub fn user_json(rt: &ResourceTypeDef, base: &str, u: User) -> Map<String, Value> {
    let mut out = with_schemas(rt, &u.id, u.attrs);
    if !u.groups.is_empty() {
        out.insert("groups".into(), groups_json(base, &u.groups));
    }
    if !u.roles.is_empty() {
        let stored = out.remove("roles");
        out.insert("roles".into(), merged_roles(stored, &u.roles));
    }
    out.insert(
        "meta".into(),
        meta_json(rt, &u.meta, format!("{base}/Users/{}", u.id)),
    );
    out
}

/// Writes `u` to `out` as `user_json` renders it (same members, same order, same bytes),
/// its stored attributes copied as they are: only `schemas`, `id`, `groups`, `meta` and,
/// when roles are mapped, `roles` are made here, written directly rather than built as
/// values first (pages of 100 users spent most of their rendering time building and
/// dropping those values). For reads without projection.
pub fn write_listed_user(
    out: &mut Vec<u8>,
    rt: &ResourceTypeDef,
    base: &str,
    u: &ListedUser,
) -> serde_json::Result<()> {
    let roles = match u.roles.is_empty() {
        true => None,
        false => {
            let stored = u
                .attrs
                .get("roles")
                .map(|r| serde_json::from_str::<Value>(r.get()))
                .transpose()?;
            Some(merged_roles(stored, &u.roles))
        }
    };
    /// The members made here, in key order; they replace stored ones of the same name.
    enum Made<'a> {
        Groups,
        Id,
        Meta,
        Roles(&'a Value),
        Schemas,
    }
    let made: [(&str, Option<Made>); 5] = [
        ("groups", (!u.groups.is_empty()).then_some(Made::Groups)),
        ("id", Some(Made::Id)),
        ("meta", Some(Made::Meta)),
        ("roles", roles.as_ref().map(Made::Roles)),
        ("schemas", Some(Made::Schemas)),
    ];
    let mut made = made
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .peekable();
    let mut stored = u
        .attrs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "groups" | "id" | "meta" | "schemas"))
        .filter(|(k, _)| roles.is_none() || k.as_str() != "roles")
        .peekable();
    out.push(b'{');
    let mut first = true;
    loop {
        // Merge the two sorted sequences, as a `Map` (a BTreeMap) would order them.
        let take_made = match (stored.peek(), made.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((s, _)), Some((m, _))) => *m < s.as_str(),
        };
        if !first {
            out.push(b',');
        }
        first = false;
        if take_made {
            let Some((k, v)) = made.next() else { break };
            write_str(out, &[k]);
            out.push(b':');
            match v {
                Made::Groups => write_groups(out, base, &u.groups),
                Made::Id => write_str(out, &[&u.id]),
                Made::Meta => write_meta(out, rt, &u.meta, &[base, "/Users/", &u.id]),
                Made::Roles(v) => serde_json::to_writer(&mut *out, v)?,
                Made::Schemas => {
                    out.push(b'[');
                    write_str(out, &[rt.schema.id]);
                    for ext in rt.extensions.iter().filter(|e| u.attrs.contains_key(e.id)) {
                        out.push(b',');
                        write_str(out, &[ext.id]);
                    }
                    out.push(b']');
                }
            }
        } else if let Some((k, v)) = stored.next() {
            write_str(out, &[k]);
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
    }
    out.push(b'}');
    Ok(())
}

/// Writes the concatenation of `parts` as one JSON string, escaped as serde_json escapes.
fn write_str(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for part in parts {
        // serde_json escapes exactly the control characters, '"' and '\\'.
        if part.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            let quoted = Value::String((*part).to_owned()).to_string();
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.push(b'"');
}

/// `groups_json`, written.
fn write_groups(out: &mut Vec<u8>, base: &str, groups: &[GroupRef]) {
    out.push(b'[');
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"$ref\":");
        write_str(out, &[base, "/Groups/", &g.id]);
        out.extend_from_slice(b",\"display\":");
        write_str(out, &[&g.display]);
        out.extend_from_slice(b",\"type\":\"direct\",\"value\":");
        write_str(out, &[&g.id]);
        out.push(b'}');
    }
    out.push(b']');
}

/// `meta_json`, written.
fn write_meta(out: &mut Vec<u8>, rt: &ResourceTypeDef, meta: &Meta, location: &[&str]) {
    out.extend_from_slice(b"{\"created\":");
    write_str(out, &[&meta.created]);
    out.extend_from_slice(b",\"lastModified\":");
    write_str(out, &[&meta.last_modified]);
    out.extend_from_slice(b",\"location\":");
    write_str(out, location);
    out.extend_from_slice(b",\"resourceType\":");
    write_str(out, &[rt.name]);
    // etag(version) as a JSON string: W/"n" with its quotes escaped. (Writing to a Vec
    // cannot fail.)
    let _ = write!(out, ",\"version\":\"W/\\\"{}\\\"\"}}", meta.version);
}

/// `display` of members is `returned: request`: pass `with_display` when it was asked for.
pub fn group_json(
    rt: &ResourceTypeDef,
    base: &str,
    g: &Group,
    members: Option<&[Member]>,
    with_display: bool,
) -> Map<String, Value> {
    let mut out = with_schemas(rt, &g.id, g.attrs.clone());
    if let Some(ms) = members
        && !ms.is_empty()
    {
        let list: Vec<Value> = ms
            .iter()
            .map(|m| {
                let kind = m.kind.as_str();
                let mut v = json!({
                    "value": m.id,
                    "$ref": format!("{base}/{kind}s/{}", m.id),
                    "type": kind,
                });
                if let Some(d) = m.display.as_ref().filter(|_| with_display) {
                    v["display"] = json!(d);
                }
                v
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    out.insert(
        "meta".into(),
        meta_json(rt, &g.meta, format!("{base}/Groups/{}", g.id)),
    );
    out
}

/// What a response should contain.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub include: Option<Vec<AttrSel>>,
    pub exclude: Vec<AttrSel>,
}

impl Projection {
    /// Whether top-level attribute `name` (core schema) will be returned at all; lets
    /// callers skip loading relations (`members`, `groups`) nobody asked for.
    pub fn wants(&self, name: &str) -> bool {
        match &self.include {
            Some(inc) => inc.iter().any(|s| s.ext.is_none() && s.name == name),
            None => !self
                .exclude
                .iter()
                .any(|s| s.ext.is_none() && s.name == name && s.sub.is_none()),
        }
    }

    /// Whether `name.sub` was asked for by name (for `returned: request` sub-attributes).
    pub fn requests_sub(&self, name: &str, sub: &str) -> bool {
        self.include.as_ref().is_some_and(|inc| {
            inc.iter()
                .any(|s| s.ext.is_none() && s.name == name && s.sub == Some(sub))
        })
    }

    /// Whether the projection leaves resources of `rt` as they are: nothing asked for or
    /// excluded, no `returned: request` attribute (and stored documents never hold
    /// `returned: never` ones).
    pub fn keeps_all(&self, rt: &ResourceTypeDef) -> bool {
        self.include.is_none() && self.exclude.is_empty() && !has_request_only(rt)
    }

    pub fn apply(&self, rt: &ResourceTypeDef, mut res: Map<String, Value>) -> Map<String, Value> {
        if self.keeps_all(rt) {
            return res;
        }
        let keys: Vec<String> = res.keys().cloned().collect();
        for k in keys {
            if k == "schemas" || k == "id" {
                continue;
            }
            if let Some(ext) = rt.extension(&k) {
                if let Some(Value::Object(o)) = res.get_mut(&k) {
                    let inner: Vec<String> = o.keys().cloned().collect();
                    for a in inner {
                        let returned = ext.attr(&a).map_or(Returned::Default, |d| d.returned);
                        self.project_attr(o, Some(ext.id), &a, returned);
                    }
                    if o.is_empty() {
                        res.remove(&k);
                    }
                }
                continue;
            }
            let returned = rt.schema.attr(&k).map_or(Returned::Default, |d| d.returned);
            self.project_attr(&mut res, None, &k, returned);
        }
        // Keep `schemas` truthful about which extensions remain.
        if let Some(Value::Array(s)) = res.get("schemas").cloned() {
            let kept: Vec<Value> = s
                .into_iter()
                .filter(|u| {
                    u.as_str()
                        .is_none_or(|u| rt.extension(u).is_none() || res.contains_key(u))
                })
                .collect();
            res.insert("schemas".into(), Value::Array(kept));
        }
        res
    }

    fn project_attr(
        &self,
        obj: &mut Map<String, Value>,
        ext: Option<&str>,
        name: &str,
        returned: Returned,
    ) {
        let matches = |s: &AttrSel| s.ext == ext && s.name == name;
        match returned {
            Returned::Always => return,
            Returned::Never => {
                obj.remove(name);
                return;
            }
            _ => {}
        }
        if let Some(inc) = &self.include {
            let sel: Vec<&AttrSel> = inc.iter().filter(|s| matches(s)).collect();
            if sel.is_empty() {
                obj.remove(name);
                return;
            }
            if sel.iter().all(|s| s.sub.is_some()) {
                let subs: Vec<&str> = sel.iter().filter_map(|s| s.sub).collect();
                if let Some(v) = obj.get_mut(name) {
                    keep_subs(v, &subs);
                }
            }
        } else if returned == Returned::Request {
            obj.remove(name);
            return;
        }
        for s in self.exclude.iter().filter(|s| matches(s)) {
            match s.sub {
                None => {
                    obj.remove(name);
                    return;
                }
                Some(sub) => {
                    if let Some(v) = obj.get_mut(name) {
                        drop_sub(v, sub);
                    }
                }
            }
        }
    }
}

/// Whether any top-level attribute of `rt` is `returned: request`.
fn has_request_only(rt: &ResourceTypeDef) -> bool {
    rt.schema_defs().any(|d| d.returned == Returned::Request)
}

fn keep_subs(v: &mut Value, subs: &[&str]) {
    match v {
        Value::Object(o) => o.retain(|k, _| subs.iter().any(|s| s.eq_ignore_ascii_case(k))),
        Value::Array(a) => a.iter_mut().for_each(|e| keep_subs(e, subs)),
        _ => {}
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
        }
        Value::Array(a) => a.iter_mut().for_each(|e| drop_sub(e, sub)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Provenance;
    use crate::core::schema::USER_TYPE;

    #[test]
    fn entity_tags_name_only_versions_roster_issued() {
        assert_eq!(if_match("*"), Ok(None));
        assert_eq!(if_match("W/\"3\""), Ok(Some(Expect::Version(3))));
        assert_eq!(if_match(" \"3\" "), Ok(Some(Expect::Version(3))));
        assert_eq!(if_match("3"), Ok(Some(Expect::Version(3))));
        assert_eq!(if_match("W/\"a,b\", W/\"3\""), Ok(Some(Expect::Version(3))));
        assert_eq!(if_match("W/\"3\", \"3\""), Ok(Some(Expect::Version(3))));
        for unissued in [
            "W/\"stale-version\"",
            "garbage",
            "W/\"0\"",
            "W/\"-2\"",
            "W/\"3",
            "W/",
            "",
            ",,",
            "W/\"99999999999999999999\"",
        ] {
            assert_eq!(if_match(unissued), Ok(Some(Expect::Unissued)), "{unissued}");
        }
        assert!(if_match("W/\"3\", W/\"4\"").is_err());
        let none_match = |v: &str| NoneMatch::new(v.to_owned());
        assert!(none_match("*").matches(7));
        assert!(none_match("W/\"x\", W/\"7\"").matches(7));
        assert!(none_match("W/\"8\", 7").matches(7));
        assert!(!none_match("W/\"8\"").matches(7));
        assert!(!none_match("garbage").matches(7));
        assert!(!none_match("W/\"7").matches(7));
    }

    fn user(attrs: Value, groups: &[(&str, &str)], roles: &[&str]) -> User {
        let Value::Object(attrs) = attrs else {
            panic!("attributes must be an object")
        };
        User {
            id: "0193-\"odd\"-id".into(),
            attrs,
            meta: Meta {
                version: 42,
                created: "2026-12-01T10:00:00Z".into(),
                last_modified: "2026-12-01T10:00:01\u{1}Z".into(),
            },
            provenance: Provenance::Scim,
            last_directory_sync_at: None,
            last_login_at: None,
            groups: groups
                .iter()
                .map(|(id, display)| GroupRef {
                    id: (*id).into(),
                    display: (*display).into(),
                })
                .collect(),
            roles: roles.iter().map(|r| (*r).to_string()).collect(),
        }
    }

    fn listed(u: &User) -> ListedUser {
        ListedUser {
            id: u.id.clone(),
            attrs: u
                .attrs
                .iter()
                .map(|(k, v)| {
                    let raw = serde_json::value::to_raw_value(v).expect("a value serializes");
                    (k.clone(), raw)
                })
                .collect(),
            meta: u.meta.clone(),
            groups: u.groups.clone(),
            roles: u.roles.clone(),
        }
    }

    /// The written form is byte for byte what serializing `user_json` gives, whatever
    /// the user holds and whatever its strings need escaped.
    #[test]
    fn listed_user_is_written_as_user_json_renders_it() {
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let cases = [
            user(
                json!({"userName": "plain@x.test", "active": true}),
                &[],
                &[],
            ),
            user(
                json!({
                    "userName": "q\"uote\\d@x.test",
                    "name": {"givenName": "Zoë", "familyName": "Ω\n"},
                    "emails": [{"value": "a@x.test", "type": "work", "primary": true}],
                    "roles": [{"value": "viewer", "type": "directory"}],
                    "groups": [{"value": "stale"}],
                    "meta": {"version": "stale"},
                    "id": "stale",
                    "schemas": ["stale"],
                    "aaa": 1,
                    "zzz": null,
                    enterprise: {"employeeNumber": "7"},
                }),
                &[("g-1", "Eng \"core\""), ("g\t2", "Ops")],
                &["viewer", "admin"],
            ),
        ];
        for base in ["https://roster.test/scim/v2", "http://h/\"base\""] {
            for u in &cases {
                let mut written = Vec::new();
                write_listed_user(&mut written, &USER_TYPE, base, &listed(u))
                    .expect("a user is written");
                let expected = serde_json::to_vec(&user_json(&USER_TYPE, base, u.clone()))
                    .expect("a user serializes");
                assert_eq!(
                    String::from_utf8_lossy(&written),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }
}
