//! Domain filters (`core::query::Cond`) to parameterised SQL. Values are always bound,
//! never spliced; only schema-given JSON paths appear in the SQL text.

use super::engine::{Arg, Dialect};
use crate::core::query::{Cond, ElemCond, Field, Op, Relation, SortKey, Val};

/// Builds SQL text and its arguments; placeholders are numbered `$n` on both dialects.
pub struct SqlBuilder {
    pub d: Dialect,
    pub args: Vec<Arg>,
    /// Table alias of the resource being filtered (`t`).
    alias: &'static str,
    /// `users` or `org_groups` (decides what `Field::DisplayName` etc. mean).
    kind: ResourceKind,
    next_elem: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl SqlBuilder {
    pub fn new(d: Dialect, kind: ResourceKind, args: Vec<Arg>) -> Self {
        SqlBuilder {
            d,
            args,
            alias: "t",
            kind,
            next_elem: 0,
        }
    }

    pub fn push(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    fn push_val(&mut self, v: &Val) -> String {
        match v {
            Val::Str(s) => self.push(Arg::Str(s.clone())),
            Val::Num(n) => self.push(Arg::F64(*n)),
            Val::Bool(b) => self.push(Arg::I64(i64::from(*b))),
            Val::Null => "NULL".to_owned(),
        }
    }

    fn field_sql(&self, f: &Field) -> String {
        let a = self.alias;
        match f {
            Field::Id => format!("{a}.id"),
            Field::ExternalId => format!("{a}.external_id"),
            Field::Created => format!("{a}.created_at"),
            Field::LastModified => format!("{a}.updated_at"),
            Field::Version => format!("{a}.version"),
            Field::UserName => format!("{a}.user_name_norm"),
            Field::DisplayName => format!("{a}.display_name_norm"),
            Field::Active => format!("{a}.active"),
            Field::Doc { path, .. } => self.d.json_text(&format!("{a}.attrs"), path),
        }
    }

    pub fn cond(&mut self, c: &Cond) -> String {
        match c {
            Cond::Const(true) => "1=1".to_owned(),
            Cond::Const(false) => "1=0".to_owned(),
            Cond::Present(f) => {
                let x = self.field_sql(f);
                match f {
                    Field::Doc { .. } => format!("({x} IS NOT NULL AND {x} <> '')"),
                    _ => format!("({x} IS NOT NULL)"),
                }
            }
            Cond::Cmp(f, op, v) => {
                let x = self.field_sql(f);
                let is_bool = matches!(f, Field::Active)
                    || matches!(f, Field::Doc { def, .. } if def.ty == crate::core::schema::AttrType::Boolean);
                let lower =
                    f.case_insensitive() && !matches!(f, Field::UserName | Field::DisplayName);
                self.compare(&x, *op, v, lower, is_bool && matches!(f, Field::Doc { .. }))
            }
            Cond::And(a, b) => format!("({} AND {})", self.cond(a), self.cond(b)),
            Cond::Or(a, b) => format!("({} OR {})", self.cond(a), self.cond(b)),
            Cond::Not(a) => format!("(NOT COALESCE({}, 0=1))", self.cond(a)),
            Cond::AnyElem { path, cond } => {
                self.next_elem += 1;
                let alias = format!("e{}", self.next_elem);
                let (from, elem) =
                    self.d
                        .json_elements(&format!("{}.attrs", self.alias), path, &alias);
                let inner = self.elem(cond, &elem);
                format!("EXISTS (SELECT 1 FROM {from} WHERE {inner})")
            }
            Cond::AnyRelated { rel, cond } => {
                self.next_elem += 1;
                let m = format!("m{}", self.next_elem);
                let inner = self.related(cond, &m);
                let a = self.alias;
                match rel {
                    Relation::Members => format!(
                        "EXISTS (SELECT 1 FROM group_members {m} WHERE {m}.org_id = {a}.org_id \
                         AND {m}.group_id = {a}.id AND {inner})"
                    ),
                    Relation::Groups => format!(
                        "EXISTS (SELECT 1 FROM group_members {m} WHERE {m}.org_id = {a}.org_id \
                         AND {m}.member_id = {a}.id AND {inner})"
                    ),
                }
            }
        }
    }

    /// `x op v`; `lower` folds the column side (values arrive folded); `json_bool` means
    /// `x` is a JSON-extracted boolean.
    fn compare(&mut self, x: &str, op: Op, v: &Val, lower: bool, json_bool: bool) -> String {
        let x = if lower {
            format!("lower({x})")
        } else {
            x.to_owned()
        };
        if let Val::Null = v {
            return match op {
                Op::Eq => format!("({x} IS NULL)"),
                _ => format!("({x} IS NOT NULL)"),
            };
        }
        if json_bool && let Val::Bool(b) = v {
            let lit = self.d.json_bool(*b);
            return match op {
                Op::Ne => format!("({x} IS NULL OR {x} <> {lit})"),
                _ => format!("({x} = {lit})"),
            };
        }
        match op {
            Op::Eq => {
                let p = self.push_val(v);
                format!("({x} = {p})")
            }
            Op::Ne => {
                let p = self.push_val(v);
                format!("({x} IS NULL OR {x} <> {p})")
            }
            Op::Co => {
                let p = self.push_val(v);
                self.d.contains(&x, &p)
            }
            Op::Sw => {
                let p = self.push_val(v);
                self.d.starts_with(&x, &p)
            }
            Op::Ew => {
                let p = self.push_val(v);
                self.d.ends_with(&x, &p)
            }
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let p = self.push_val(v);
                let sym = match op {
                    Op::Gt => ">",
                    Op::Ge => ">=",
                    Op::Lt => "<",
                    _ => "<=",
                };
                if matches!(v, Val::Str(_)) {
                    format!("({} {sym} {})", self.d.collate(&x), p)
                } else {
                    format!("({x} {sym} {p})")
                }
            }
        }
    }

    fn elem(&mut self, c: &ElemCond, elem: &str) -> String {
        match c {
            ElemCond::Present(sub) => {
                let x = self.d.json_text(elem, &[sub.map_or("value", |s| s.name)]);
                format!("({x} IS NOT NULL AND {x} <> '')")
            }
            ElemCond::Cmp {
                sub,
                op,
                val,
                case_insensitive,
            } => {
                let name = sub.map_or("value", |s| s.name);
                let x = self.d.json_text(elem, &[name]);
                let is_bool = sub.is_some_and(|s| s.ty == crate::core::schema::AttrType::Boolean);
                self.compare(&x, *op, val, *case_insensitive, is_bool)
            }
            ElemCond::And(a, b) => format!("({} AND {})", self.elem(a, elem), self.elem(b, elem)),
            ElemCond::Or(a, b) => format!("({} OR {})", self.elem(a, elem), self.elem(b, elem)),
            ElemCond::Not(a) => format!("(NOT COALESCE({}, 0=1))", self.elem(a, elem)),
        }
    }

    /// A condition on a `group_members` row aliased `m`, seen from the resource side:
    /// for `members` the value is the member id, for `groups` the group id.
    pub fn related(&mut self, c: &ElemCond, m: &str) -> String {
        let value_col = match self.kind {
            ResourceKind::Group => format!("{m}.member_id"),
            ResourceKind::User => format!("{m}.group_id"),
        };
        match c {
            ElemCond::Present(_) => "1=1".to_owned(),
            ElemCond::Cmp { sub, op, val, .. } => {
                let col = match sub.map_or("value", |s| s.name) {
                    "type" if self.kind == ResourceKind::Group => format!("{m}.member_type"),
                    // A user's memberships are all direct.
                    "type" => "'direct'".to_owned(),
                    _ => value_col,
                };
                self.compare(&col, *op, val, false, false)
            }
            ElemCond::And(a, b) => format!("({} AND {})", self.related(a, m), self.related(b, m)),
            ElemCond::Or(a, b) => format!("({} OR {})", self.related(a, m), self.related(b, m)),
            ElemCond::Not(a) => format!("(NOT COALESCE({}, 0=1))", self.related(a, m)),
        }
    }

    /// The sort key over alias `t` and its direction; `None` sorts by creation order.
    pub fn sort_key(&self, sort: &Option<(SortKey, bool)>) -> (Option<String>, bool) {
        let a = self.alias;
        match sort {
            None => (None, false),
            Some((key, desc)) => {
                let expr = match key {
                    SortKey::Field(f) => {
                        let x = self.field_sql(f);
                        if f.case_insensitive() && matches!(f, Field::Doc { .. }) {
                            format!("lower({x})")
                        } else {
                            x
                        }
                    }
                    SortKey::FirstElem(path) => {
                        self.d.first_value_text(&format!("{a}.attrs"), path)
                    }
                };
                (Some(expr), *desc)
            }
        }
    }
}
