//! Domain queries: a filter whose attribute names are resolved against the schema and whose
//! values are typed. Protocol adapters build these; each store turns them into SQL.

use super::schema::AttrDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A typed comparison value. Strings of case-insensitive attributes are already lower-cased
/// (Unicode), and date-times are normalized to the storage format, so stores compare directly.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Str(String),
    Num(f64),
}

/// Something a top-level condition can compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Id,
    ExternalId,
    Created,
    LastModified,
    Version,
    /// `userName` (case-insensitive; stored normalized).
    UserName,
    /// Group `displayName`.
    DisplayName,
    Active,
    /// A single-valued attribute inside the attribute document, by its JSON path
    /// (e.g. `["name", "givenName"]`, or `[<extension URN>, "employeeNumber"]`).
    Doc {
        path: Vec<&'static str>,
        def: &'static AttrDef,
    },
}

impl Field {
    /// Whether string comparisons on this field ignore case.
    pub fn case_insensitive(&self) -> bool {
        match self {
            Field::UserName | Field::DisplayName => true,
            Field::Doc { def, .. } => def.folds_case(),
            _ => false,
        }
    }
}

/// A condition on one element of a multi-valued attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum ElemCond {
    /// `sub` is `None` for the element's value itself (e.g. `emails co "x"`).
    Present(Option<&'static AttrDef>),
    Cmp {
        sub: Option<&'static AttrDef>,
        op: Op,
        val: Val,
        case_insensitive: bool,
    },
    And(Box<ElemCond>, Box<ElemCond>),
    Or(Box<ElemCond>, Box<ElemCond>),
    Not(Box<ElemCond>),
}

impl Op {
    /// The operator as SCIM filters spell it.
    pub fn scim(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

impl std::fmt::Display for Val {
    /// As a SCIM filter literal (JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Null => f.write_str("null"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Num(n) => write!(f, "{}", serde_json::Value::from(*n)),
            Val::Str(s) => write!(f, "{}", serde_json::Value::from(s.as_str())),
        }
    }
}

impl std::fmt::Display for ElemCond {
    /// In SCIM filter syntax (RFC 7644 §3.4.2.2), for audit entries and messages. Values of
    /// case-insensitive attributes show as compared: folded.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |sub: &Option<&'static AttrDef>| sub.map_or("value", |d| d.name);
        // `and` binds tighter than `or`: an `or` inside an `and` keeps its parentheses.
        let operand = |c: &ElemCond, f: &mut std::fmt::Formatter<'_>| match c {
            ElemCond::Or(..) => write!(f, "({c})"),
            _ => write!(f, "{c}"),
        };
        match self {
            ElemCond::Present(sub) => write!(f, "{} pr", name(sub)),
            ElemCond::Cmp { sub, op, val, .. } => write!(f, "{} {} {val}", name(sub), op.scim()),
            ElemCond::And(a, b) => {
                operand(a, f)?;
                f.write_str(" and ")?;
                operand(b, f)
            }
            ElemCond::Or(a, b) => write!(f, "{a} or {b}"),
            ElemCond::Not(c) => write!(f, "not ({c})"),
        }
    }
}

/// Relations kept in their own table rather than in the attribute document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A group's `members` (sub-attributes `value`, `type`).
    Members,
    /// A user's `groups` (sub-attributes `value`, `type`).
    Groups,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Const(bool),
    Present(Field),
    Cmp(Field, Op, Val),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// Some element of the multi-valued attribute at `path` in the document satisfies `cond`.
    AnyElem {
        path: Vec<&'static str>,
        cond: ElemCond,
    },
    /// Some related row satisfies `cond` (its sub-attributes: value, type).
    AnyRelated {
        rel: Relation,
        cond: ElemCond,
    },
}

/// What to sort on.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Field(Field),
    /// The primary (else first) element's value of a multi-valued attribute.
    FirstElem(Vec<&'static str>),
}

/// A list request, already checked: `start_index` ≥ 1, `count` ≤ the advertised maximum.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Cond>,
    pub sort: Option<(SortKey, bool)>,
    pub start_index: u64,
    pub count: u64,
}

/// A page of results and the total number that matched.
#[derive(Debug)]
pub struct Page<T> {
    pub total: u64,
    pub items: Vec<T>,
}

impl ElemCond {
    /// Evaluates the condition against one element of a multi-valued attribute held in
    /// memory (PATCH value filters); mirrors what the stores do in SQL.
    pub fn matches(&self, elem: &serde_json::Value) -> bool {
        use serde_json::Value;
        let get = |sub: &Option<&'static AttrDef>| -> Option<&Value> {
            match elem {
                Value::Object(o) => {
                    let name = sub.map_or("value", |s| s.name);
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                }
                other => Some(other),
            }
        };
        match self {
            ElemCond::Present(sub) => match get(sub) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            },
            ElemCond::Cmp {
                sub,
                op,
                val,
                case_insensitive,
            } => compare_json(get(sub), *op, val, *case_insensitive),
            ElemCond::And(a, b) => a.matches(elem) && b.matches(elem),
            ElemCond::Or(a, b) => a.matches(elem) || b.matches(elem),
            ElemCond::Not(a) => !a.matches(elem),
        }
    }

    /// The `sub eq value` pairs of a conjunction of equalities (`type eq "work"`), used to
    /// create the element a PATCH names when none matches yet (what Entra ID expects).
    pub fn equalities(&self) -> Option<Vec<(&'static AttrDef, Val)>> {
        match self {
            ElemCond::Cmp {
                sub: Some(sub),
                op: Op::Eq,
                val,
                case_insensitive: false,
            } => Some(vec![(*sub, val.clone())]),
            ElemCond::Cmp {
                sub: Some(sub),
                op: Op::Eq,
                val,
                case_insensitive: true,
            } => Some(vec![(*sub, val.clone())]),
            ElemCond::And(a, b) => {
                let mut v = a.equalities()?;
                v.extend(b.equalities()?);
                Some(v)
            }
            _ => None,
        }
    }
}

fn compare_json(x: Option<&serde_json::Value>, op: Op, val: &Val, ci: bool) -> bool {
    use serde_json::Value;
    let x = match x {
        None | Some(Value::Null) => {
            return matches!(
                (op, val),
                (Op::Eq, Val::Null) | (Op::Ne, Val::Str(_) | Val::Bool(_) | Val::Num(_))
            );
        }
        Some(x) => x,
    };
    match (x, val) {
        (_, Val::Null) => op == Op::Ne,
        (Value::Bool(b), Val::Bool(v)) => match op {
            Op::Eq => b == v,
            Op::Ne => b != v,
            _ => false,
        },
        (Value::Number(n), Val::Num(v)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            match op {
                Op::Eq => n == *v,
                Op::Ne => n != *v,
                Op::Gt => n > *v,
                Op::Ge => n >= *v,
                Op::Lt => n < *v,
                Op::Le => n <= *v,
                _ => false,
            }
        }
        (Value::String(s), Val::Str(v)) => {
            // `v` arrives folded. An ASCII value compares without folding a copy of it: a
            // PATCH filter is matched against every element, once per operation.
            if ci && s.is_ascii() {
                let folded_eq = |x: &str| x.eq_ignore_ascii_case(v);
                let prefix = |x: &str| x.get(..v.len()).is_some_and(folded_eq);
                let suffix = |x: &str| {
                    x.len()
                        .checked_sub(v.len())
                        .and_then(|i| x.get(i..))
                        .is_some_and(folded_eq)
                };
                match op {
                    Op::Eq => return folded_eq(s),
                    Op::Ne => return !folded_eq(s),
                    Op::Sw => return prefix(s),
                    Op::Ew => return suffix(s),
                    _ => {}
                }
            }
            let s = if ci { s.to_lowercase() } else { s.clone() };
            match op {
                Op::Eq => &s == v,
                Op::Ne => &s != v,
                Op::Co => s.contains(v.as_str()),
                Op::Sw => s.starts_with(v.as_str()),
                Op::Ew => s.ends_with(v.as_str()),
                Op::Gt => s.as_str() > v.as_str(),
                Op::Ge => s.as_str() >= v.as_str(),
                Op::Lt => s.as_str() < v.as_str(),
                Op::Le => s.as_str() <= v.as_str(),
            }
        }
        _ => op == Op::Ne,
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn element_conditions_render_as_scim_filters() {
        let eq = |v: Val| ElemCond::Cmp {
            sub: None,
            op: Op::Eq,
            val: v,
            case_insensitive: false,
        };
        let c = ElemCond::And(
            Box::new(ElemCond::Or(
                Box::new(eq(Val::Str("a\"b".into()))),
                Box::new(ElemCond::Present(None)),
            )),
            Box::new(ElemCond::Not(Box::new(eq(Val::Num(1.0))))),
        );
        assert_eq!(
            c.to_string(),
            r#"(value eq "a\"b" or value pr) and not (value eq 1.0)"#
        );
        assert_eq!(eq(Val::Null).to_string(), "value eq null");
        assert_eq!(eq(Val::Bool(true)).to_string(), "value eq true");
    }
}
