//! Step two of SCIM filtering: the syntax tree (`scim::filter`) becomes a domain query
//! (`core::query`), with attribute names resolved against the schema tables and values
//! typed. Also resolves PATCH paths, `sortBy`, and `attributes` lists.

use serde_json::{Map, Value};

use super::filter::{self as ast, AttrPath, CompValue, CompareOp, Filter};
use crate::core::error::{CoreError, CoreResult};
use crate::core::parse_time;
use crate::core::patch::{PatchKind, PatchOp, PatchTarget};
use crate::core::query::{Cond, ElemCond, Field, Op, Relation, SortKey, Val};
use crate::core::schema::{
    AttrDef, AttrType, Column, CommonAttr, Located, Resolved, ResourceTypeDef, Stored,
};

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidFilter(msg.into())
}

fn op(o: CompareOp) -> Op {
    match o {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Co,
        CompareOp::Sw => Op::Sw,
        CompareOp::Ew => Op::Ew,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    }
}

/// The relation an attribute's values are rows of (`Stored::Relation`), if any.
fn relation(def: &AttrDef) -> Option<Relation> {
    match def.stored {
        Stored::Relation(r) => Some(r),
        _ => None,
    }
}

fn resolve_path(rt: &ResourceTypeDef, p: &AttrPath) -> CoreResult<Resolved> {
    rt.resolve(p.urn.as_deref(), &p.attr, p.sub_attr.as_deref())
        .ok_or_else(|| bad(format!("unknown attribute \"{p}\" for {}", rt.name)))
}

/// Types a comparison value for an attribute of type `ty`, folding case when asked.
fn typed(ty: AttrType, o: Op, v: &CompValue, fold: bool, name: &str) -> CoreResult<Val> {
    if let CompValue::String(s) = v
        && s.contains('\0')
    {
        return Err(bad(format!("{name}: NUL characters cannot be compared")));
    }
    let string_ops = matches!(o, Op::Co | Op::Sw | Op::Ew);
    let order_ops = matches!(o, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    if let CompValue::Null = v {
        return match o {
            Op::Eq | Op::Ne => Ok(Val::Null),
            _ => Err(bad(format!(
                "{name}: null can only be compared with eq or ne"
            ))),
        };
    }
    match ty {
        AttrType::Boolean => {
            if string_ops || order_ops {
                return Err(bad(format!("{name} is boolean: only eq and ne apply")));
            }
            match v {
                CompValue::Bool(b) => Ok(Val::Bool(*b)),
                CompValue::String(s) if s.eq_ignore_ascii_case("true") => Ok(Val::Bool(true)),
                CompValue::String(s) if s.eq_ignore_ascii_case("false") => Ok(Val::Bool(false)),
                _ => Err(bad(format!(
                    "{name} is boolean: compare it with true or false"
                ))),
            }
        }
        AttrType::DateTime => match v {
            CompValue::String(s) if string_ops => Ok(Val::Str(s.clone())),
            CompValue::String(s) => parse_time(s)
                .map(Val::Str)
                .ok_or_else(|| bad(format!("{name}: \"{s}\" is not an RFC 3339 date-time"))),
            _ => Err(bad(format!(
                "{name} is a dateTime: compare it with a string"
            ))),
        },
        AttrType::Integer | AttrType::Decimal => match v {
            CompValue::Number(n) if !string_ops => n
                .as_f64()
                .map(Val::Num)
                .ok_or_else(|| bad(format!("{name}: bad number"))),
            _ => Err(bad(format!("{name} is numeric: compare it with a number"))),
        },
        AttrType::Binary if order_ops => {
            Err(bad(format!("{name} is binary: gt/ge/lt/le do not apply")))
        }
        AttrType::Complex => Err(bad(format!("{name} is complex: name a sub-attribute"))),
        _ => match v {
            CompValue::String(s) => Ok(Val::Str(if fold { s.to_lowercase() } else { s.clone() })),
            // Tolerated: `employeeNumber eq 42`.
            CompValue::Number(n) if !string_ops => Ok(Val::Str(n.to_string())),
            CompValue::Bool(b) => Ok(Val::Str(b.to_string())),
            _ => Err(bad(format!("{name} is a string: compare it with a string"))),
        },
    }
}

/// Converts a filter over resource type `rt`.
pub fn filter(rt: &ResourceTypeDef, f: &Filter) -> CoreResult<Cond> {
    match f {
        Filter::And(a, b) => Ok(Cond::And(
            Box::new(filter(rt, a)?),
            Box::new(filter(rt, b)?),
        )),
        Filter::Or(a, b) => Ok(Cond::Or(Box::new(filter(rt, a)?), Box::new(filter(rt, b)?))),
        Filter::Not(a) => Ok(Cond::Not(Box::new(filter(rt, a)?))),
        Filter::Present(p) => present(rt, p),
        Filter::Compare(p, o, v) => compare(rt, p, op(*o), v),
        Filter::ValuePath {
            attr,
            filter: inner,
        } => {
            let Resolved::Attr(loc) = resolve_path(rt, attr)? else {
                return Err(bad(format!("\"{attr}\" is not multi-valued")));
            };
            if !loc.def.is_multi_complex() || attr.sub_attr.is_some() {
                return Err(bad(format!(
                    "\"{attr}\" is not a multi-valued complex attribute"
                )));
            }
            let cond = elem_filter(loc.def, inner)?;
            Ok(match relation(loc.def) {
                Some(rel) => Cond::AnyRelated { rel, cond },
                None => Cond::AnyElem {
                    path: doc_path(&loc, None),
                    cond,
                },
            })
        }
    }
}

fn doc_path(loc: &Located, sub: Option<&'static AttrDef>) -> Vec<&'static str> {
    let mut p = Vec::with_capacity(3);
    if let Some(e) = loc.extension {
        p.push(e);
    }
    p.push(loc.def.name);
    if let Some(s) = sub {
        p.push(s.name);
    }
    p
}

fn sub_of(def: &'static AttrDef, p: &AttrPath) -> CoreResult<Option<&'static AttrDef>> {
    match &p.sub_attr {
        None => Ok(None),
        Some(s) => def
            .sub_attr(s)
            .map(Some)
            .ok_or_else(|| bad(format!("unknown attribute \"{p}\""))),
    }
}

fn common_field(c: CommonAttr) -> Option<Field> {
    match c {
        CommonAttr::Id => Some(Field::Id),
        CommonAttr::ExternalId => Some(Field::ExternalId),
        CommonAttr::MetaCreated => Some(Field::Created),
        CommonAttr::MetaLastModified => Some(Field::LastModified),
        _ => None,
    }
}

/// The field a single-valued attribute is compared in: its column where it has one
/// (`Stored::Column`), else its place in the document.
fn simple_field(loc: &Located, sub: Option<&'static AttrDef>) -> Field {
    match (loc.extension, loc.def.stored, sub) {
        (None, Stored::Column(Column::UserName), None) => Field::UserName,
        (None, Stored::Column(Column::Active), None) => Field::Active,
        (None, Stored::Column(Column::DisplayName), None) => Field::DisplayName,
        _ => Field::Doc {
            path: doc_path(loc, sub),
            def: sub.unwrap_or(loc.def),
        },
    }
}

fn present(rt: &ResourceTypeDef, p: &AttrPath) -> CoreResult<Cond> {
    match resolve_path(rt, p)? {
        Resolved::Common(c) => Ok(match common_field(c) {
            Some(f) => Cond::Present(f),
            None => Cond::Const(true),
        }),
        Resolved::Attr(loc) => {
            let sub = sub_of(loc.def, p)?;
            if let Some(rel) = relation(loc.def) {
                return Ok(Cond::AnyRelated {
                    rel,
                    cond: ElemCond::Present(sub),
                });
            }
            if loc.def.is_multi_complex()
                && let Some(s) = sub
            {
                return Ok(Cond::AnyElem {
                    path: doc_path(&loc, None),
                    cond: ElemCond::Present(Some(s)),
                });
            }
            Ok(Cond::Present(simple_field(&loc, sub)))
        }
    }
}

fn compare(rt: &ResourceTypeDef, p: &AttrPath, o: Op, v: &CompValue) -> CoreResult<Cond> {
    let name = p.to_string();
    match resolve_path(rt, p)? {
        Resolved::Common(CommonAttr::Schemas) => {
            let CompValue::String(s) = v else {
                return Err(bad("schemas is compared with a string"));
            };
            let has = rt.schema_ids().any(|id| id.eq_ignore_ascii_case(s));
            Ok(match (o, rt.extension(s)) {
                (Op::Eq, Some(ext)) => Cond::Present(Field::Doc {
                    path: vec![ext.id],
                    def: &ext.attrs[0],
                }),
                (Op::Eq, None) => Cond::Const(has),
                (Op::Ne, Some(ext)) => Cond::Not(Box::new(Cond::Present(Field::Doc {
                    path: vec![ext.id],
                    def: &ext.attrs[0],
                }))),
                (Op::Ne, None) => Cond::Const(!has),
                _ => return Err(bad("schemas supports eq and ne only")),
            })
        }
        Resolved::Common(c) => {
            let Some(field) = common_field(c) else {
                return Err(bad(format!("{name} cannot be filtered on")));
            };
            let ty = match c {
                CommonAttr::MetaCreated | CommonAttr::MetaLastModified => AttrType::DateTime,
                _ => AttrType::String,
            };
            Ok(Cond::Cmp(field, o, typed(ty, o, v, false, &name)?))
        }
        Resolved::Attr(loc) => {
            let sub = sub_of(loc.def, p)?;
            if loc.def.is_multi_complex() {
                let target = match sub {
                    Some(s) => s,
                    None => loc
                        .def
                        .sub_attr("value")
                        .ok_or_else(|| bad(format!("{name}: name a sub-attribute")))?,
                };
                let cond = ElemCond::Cmp {
                    sub: Some(target),
                    op: o,
                    val: typed(target.ty, o, v, target.folds_case(), &name)?,
                    case_insensitive: target.folds_case(),
                };
                return Ok(match relation(loc.def) {
                    Some(rel) => Cond::AnyRelated { rel, cond },
                    None => Cond::AnyElem {
                        path: doc_path(&loc, None),
                        cond,
                    },
                });
            }
            let def = sub.unwrap_or(loc.def);
            let field = simple_field(&loc, sub);
            let fold = field.case_insensitive();
            Ok(Cond::Cmp(field, o, typed(def.ty, o, v, fold, &name)?))
        }
    }
}

/// A filter inside `attr[...]`: its names are sub-attributes of `def`.
fn elem_filter(def: &'static AttrDef, f: &Filter) -> CoreResult<ElemCond> {
    let sub = |p: &AttrPath| -> CoreResult<&'static AttrDef> {
        if p.urn.is_some() || p.sub_attr.is_some() {
            return Err(bad(format!(
                "\"{p}\" is not a sub-attribute of {}",
                def.name
            )));
        }
        def.sub_attr(&p.attr).ok_or_else(|| {
            bad(format!(
                "unknown sub-attribute \"{}\" of {}",
                p.attr, def.name
            ))
        })
    };
    match f {
        Filter::And(a, b) => Ok(ElemCond::And(
            Box::new(elem_filter(def, a)?),
            Box::new(elem_filter(def, b)?),
        )),
        Filter::Or(a, b) => Ok(ElemCond::Or(
            Box::new(elem_filter(def, a)?),
            Box::new(elem_filter(def, b)?),
        )),
        Filter::Not(a) => Ok(ElemCond::Not(Box::new(elem_filter(def, a)?))),
        Filter::Present(p) => Ok(ElemCond::Present(Some(sub(p)?))),
        Filter::Compare(p, o, v) => {
            let s = sub(p)?;
            let o = op(*o);
            Ok(ElemCond::Cmp {
                sub: Some(s),
                op: o,
                val: typed(
                    s.ty,
                    o,
                    v,
                    s.folds_case(),
                    &format!("{}.{}", def.name, s.name),
                )?,
                case_insensitive: s.folds_case(),
            })
        }
        Filter::ValuePath { .. } => Err(bad("value paths cannot be nested")),
    }
}

/// Parses and resolves a `filter` query parameter.
pub fn parse_filter(rt: &ResourceTypeDef, text: &str) -> CoreResult<Cond> {
    let f = ast::parse_filter(text).map_err(|e| bad(format!("invalid filter: {e}")))?;
    filter(rt, &f)
}

/// Resolves `sortBy`.
pub fn sort_key(rt: &ResourceTypeDef, text: &str) -> CoreResult<SortKey> {
    let p = ast::parse_path(text.trim())
        .map_err(|e| CoreError::InvalidValue(format!("invalid sortBy: {e}")))?;
    let unknown = || CoreError::InvalidValue(format!("cannot sort by \"{text}\""));
    if p.filter.is_some() {
        return Err(unknown());
    }
    match rt.resolve(
        p.attr.urn.as_deref(),
        &p.attr.attr,
        p.attr.sub_attr.as_deref(),
    ) {
        Some(Resolved::Common(c)) => common_field(c).map(SortKey::Field).ok_or_else(unknown),
        Some(Resolved::Attr(loc)) => {
            let sub = match &p.attr.sub_attr {
                Some(s) => Some(loc.def.sub_attr(s).ok_or_else(unknown)?),
                None => None,
            };
            if loc.def.multi {
                if relation(loc.def).is_some() {
                    return Err(unknown());
                }
                return Ok(SortKey::FirstElem(doc_path(&loc, None)));
            }
            if loc.def.ty == AttrType::Complex && sub.is_none() {
                return Err(unknown());
            }
            Ok(SortKey::Field(simple_field(&loc, sub)))
        }
        None => Err(unknown()),
    }
}

fn path_err(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidPath(msg.into())
}

/// Resolves a PATCH `path`.
pub fn patch_target(rt: &ResourceTypeDef, text: &str) -> CoreResult<PatchTarget> {
    let p = ast::parse_path(text).map_err(|e| path_err(format!("invalid path \"{text}\": {e}")))?;
    if p.attr.urn.is_some() && p.filter.is_none() {
        // A bare schema URN is not an attribute path; `resolve_patch_op` handles it.
        let whole = format!(
            "{}:{}",
            p.attr.urn.as_deref().unwrap_or_default(),
            p.attr.attr
        );
        if rt.extension(&whole).is_some() || whole.eq_ignore_ascii_case(rt.schema.id) {
            return Err(path_err(format!(
                "\"{text}\" names a schema, not an attribute"
            )));
        }
    }
    let resolved = rt
        .resolve(
            p.attr.urn.as_deref(),
            &p.attr.attr,
            p.attr.sub_attr.as_deref(),
        )
        .ok_or_else(|| path_err(format!("unknown attribute \"{}\"", p.attr)))?;
    match resolved {
        Resolved::Common(CommonAttr::Id) => Ok(PatchTarget::Id),
        Resolved::Common(CommonAttr::ExternalId) => Ok(PatchTarget::ExternalId),
        Resolved::Common(_) => Ok(PatchTarget::Ignored),
        Resolved::Attr(loc) => {
            let mut sub = match &p.attr.sub_attr {
                Some(s) => Some(
                    loc.def
                        .sub_attr(s)
                        .ok_or_else(|| path_err(format!("unknown attribute \"{}\"", p.attr)))?,
                ),
                None => None,
            };
            let filter = match &p.filter {
                Some(f) => {
                    if !loc.def.is_multi_complex() {
                        return Err(path_err(format!("{} is not multi-valued", loc.def.name)));
                    }
                    Some(elem_filter(loc.def, f).map_err(|e| match e {
                        CoreError::InvalidFilter(m) => path_err(m),
                        other => other,
                    })?)
                }
                None => None,
            };
            if let Some(s) = &p.sub_attr {
                if sub.is_some() {
                    return Err(path_err(format!("invalid path \"{text}\"")));
                }
                sub = Some(
                    loc.def
                        .sub_attr(s)
                        .ok_or_else(|| path_err(format!("unknown sub-attribute \"{s}\"")))?,
                );
            }
            Ok(PatchTarget::Attr {
                ext: loc.extension,
                def: loc.def,
                filter,
                sub,
            })
        }
    }
}

/// Turns one wire PATCH operation into core operations. A no-path add/replace carries
/// attributes in its value; each becomes an operation of its own (dotted names such as
/// `name.givenName` and URN-qualified names, as Entra ID sends, are paths).
pub fn patch_ops(
    rt: &ResourceTypeDef,
    kind: PatchKind,
    path: Option<&str>,
    value: Option<&Value>,
) -> CoreResult<Vec<PatchOp>> {
    let path = path.map(str::trim).filter(|p| !p.is_empty());
    match path {
        Some(p) => {
            // A path naming a whole extension: its value holds that extension's attributes.
            if let Some(ext) = rt.extension(p) {
                return match (kind, value) {
                    (PatchKind::Remove, _) => Ok(ext
                        .attrs
                        .iter()
                        .map(|d| PatchOp {
                            kind,
                            target: Some(PatchTarget::Attr {
                                ext: Some(ext.id),
                                def: d,
                                filter: None,
                                sub: None,
                            }),
                            value: None,
                        })
                        .collect()),
                    (_, Some(Value::Object(o))) => {
                        Ok(schema_attrs_ops(kind, Some(ext.id), ext.attrs, o))
                    }
                    _ => Err(CoreError::InvalidValue(format!(
                        "{} needs an object value",
                        ext.id
                    ))),
                };
            }
            Ok(vec![PatchOp {
                kind,
                target: Some(patch_target(rt, p)?),
                value: value.cloned(),
            }])
        }
        None if kind == PatchKind::Remove => Ok(vec![PatchOp {
            kind,
            target: None,
            value: None,
        }]),
        None => {
            let Some(Value::Object(o)) = value else {
                return Err(CoreError::InvalidValue(
                    "an operation without a path needs an object value".into(),
                ));
            };
            let mut ops = Vec::new();
            for (k, v) in o {
                if let Some(ext) = rt.extension(k) {
                    match v {
                        Value::Object(eo) => {
                            ops.extend(schema_attrs_ops(kind, Some(ext.id), ext.attrs, eo))
                        }
                        _ => {
                            return Err(CoreError::InvalidValue(format!(
                                "{} must be an object",
                                ext.id
                            )));
                        }
                    }
                    continue;
                }
                if k.eq_ignore_ascii_case(rt.schema.id) {
                    if let Value::Object(co) = v {
                        ops.extend(schema_attrs_ops(kind, None, rt.schema.attrs, co));
                    }
                    continue;
                }
                match patch_target(rt, k) {
                    Ok(target) => ops.push(PatchOp {
                        kind,
                        target: Some(target),
                        value: Some(v.clone()),
                    }),
                    // Unknown attributes in a no-path value are ignored, as on POST/PUT.
                    Err(CoreError::InvalidPath(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(ops)
        }
    }
}

fn schema_attrs_ops(
    kind: PatchKind,
    ext: Option<&'static str>,
    defs: &'static [AttrDef],
    o: &Map<String, Value>,
) -> Vec<PatchOp> {
    o.iter()
        .filter_map(|(k, v)| {
            let def = defs.iter().find(|d| d.name.eq_ignore_ascii_case(k))?;
            Some(PatchOp {
                kind,
                target: Some(PatchTarget::Attr {
                    ext,
                    def,
                    filter: None,
                    sub: None,
                }),
                value: Some(v.clone()),
            })
        })
        .collect()
}

/// One entry of `attributes` / `excludedAttributes`, resolved to canonical names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSel {
    pub ext: Option<&'static str>,
    pub name: &'static str,
    pub sub: Option<&'static str>,
}

/// Resolves a comma-separated attribute list; unknown names are ignored.
pub fn attr_list(rt: &ResourceTypeDef, text: &str) -> Vec<AttrSel> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(ext) = rt.extension(part) {
            out.extend(ext.attrs.iter().map(|d| AttrSel {
                ext: Some(ext.id),
                name: d.name,
                sub: None,
            }));
            continue;
        }
        let Ok(p) = ast::parse_path(part) else {
            continue;
        };
        if p.filter.is_some() {
            continue;
        }
        let sub_name = p.attr.sub_attr.as_deref();
        match rt.resolve(p.attr.urn.as_deref(), &p.attr.attr, sub_name) {
            Some(Resolved::Common(c)) => {
                let (name, sub) = match c {
                    CommonAttr::Id => ("id", None),
                    CommonAttr::ExternalId => ("externalId", None),
                    CommonAttr::Schemas => ("schemas", None),
                    CommonAttr::MetaCreated => ("meta", Some("created")),
                    CommonAttr::MetaLastModified => ("meta", Some("lastModified")),
                    CommonAttr::MetaResourceType => ("meta", Some("resourceType")),
                    CommonAttr::MetaVersion => ("meta", Some("version")),
                    CommonAttr::MetaLocation => ("meta", Some("location")),
                };
                out.push(AttrSel {
                    ext: None,
                    name,
                    sub,
                });
            }
            Some(Resolved::Attr(loc)) => {
                let sub = match sub_name {
                    Some(s) => match loc.def.sub_attr(s) {
                        Some(d) => Some(d.name),
                        None => continue,
                    },
                    None => None,
                };
                out.push(AttrSel {
                    ext: loc.extension,
                    name: loc.def.name,
                    sub,
                });
            }
            None if p.attr.attr.eq_ignore_ascii_case("meta") => {
                out.push(AttrSel {
                    ext: None,
                    name: "meta",
                    sub: None,
                });
            }
            None => {}
        }
    }
    out
}
