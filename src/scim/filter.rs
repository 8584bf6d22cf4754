//! SCIM 2.0 filter expressions (RFC 7644 §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
//!
//! The parser is a small tokenizer followed by a recursive-descent parser. It only checks
//! syntax; attribute names are *not* resolved against any schema here (the caller does that),
//! so the output keeps names exactly as the client wrote them.
//!
//! Grammar accepted (RFC 7644 ABNF, plus the leniencies listed below):
//!
//! ```text
//! filter    = orExpr
//! orExpr    = andExpr *("or" andExpr)                  ; left-associative
//! andExpr   = atom *("and" atom)                       ; left-associative, binds tighter
//! atom      = "(" orExpr ")"
//!           / "not" "(" orExpr ")"
//!           / attrPath "[" orExpr "]" ["." ATTRNAME (compareOp compValue / "pr")]
//!           / attrPath "pr"
//!           / attrPath compareOp compValue
//! attrPath  = ["urn:" ... ":"] ATTRNAME ["." ATTRNAME]
//! ATTRNAME  = ALPHA *("-" / "_" / DIGIT / ALPHA)  /  "$ref"
//! compValue = false / null / true / JSON number / JSON string
//! path      = attrPath / attrPath "[" orExpr "]" ["." ATTRNAME]   ; PATCH
//! ```
//!
//! Leniencies, all seen from real clients:
//! * keywords (`and`, `or`, `not`, `pr`, the comparison operators, `true`/`false`/`null`) are
//!   case-insensitive;
//! * any amount of ASCII whitespace may separate tokens, including around `(`, `)`, `[`, `]`,
//!   and `not(` needs no space;
//! * Microsoft Entra ID's `emails[type eq "work"].value eq "x"` (a comparison *after* a value
//!   path) is accepted in filters and rewritten to `emails[type eq "work" and value eq "x"]`.
//!
//! Limits: input longer than [`MAX_FILTER_LEN`] bytes or nested deeper than
//! [`MAX_FILTER_DEPTH`] is rejected with a specific error before any unbounded work or
//! recursion happens, so hostile input cannot exhaust memory or the stack. The parser never
//! panics on any input.

use std::fmt;

use serde_json::Number;

/// Maximum length of a filter or PATCH path, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;

/// Maximum nesting depth. Two things are limited by it:
///
/// * the nesting of `(`…`)` and `[`…`]` groups (including the parentheses of `not (…)`);
///   this bounds the parser's recursion;
/// * the depth of the resulting [`Filter`] tree, where every `And`, `Or`, `Not` and
///   `ValuePath` node is one level and leaves are level 0. This bounds the recursion of
///   whoever walks the tree later. Because `and`/`or` are left-associative, a flat chain of
///   `n` terms (`a and b and c …`) is `n - 1` levels deep, so a single flat chain may have at
///   most `MAX_FILTER_DEPTH + 1` terms.
pub const MAX_FILTER_DEPTH: usize = 128;

/// An attribute reference such as `userName`, `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
///
/// Names are kept as written (attribute names are case-insensitive in SCIM; the caller
/// compares them accordingly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix without the trailing `:`, if the name was qualified.
    pub urn: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

/// A comparison operator (RFC 7644 §3.4.2.2, table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
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

/// The literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: some element of multi-valued `attr` matches `filter`;
    /// inside `filter`, attribute paths name sub-attributes of that element (attr = sub-attribute name, urn None).
    ///
    /// `attr.sub_attr` is always `None`, and `filter` never contains another `ValuePath`.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath / valuePath [subAttr]`.
///
/// * `members` → `attr = members`, no filter, no sub-attribute;
/// * `name.familyName` → `attr = {name, sub_attr: familyName}`;
/// * `emails[type eq "work"].value` → `attr = emails`, `filter = type eq "work"`,
///   `sub_attr = value` (when `filter` is `Some`, `attr.sub_attr` is always `None`).
///
/// A path that is a bare schema URN (e.g.
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`) cannot be told apart
/// syntactically from a URN-qualified attribute, so it comes out as
/// `urn = "urn:…:enterprise:2.0"`, `attr = "User"`; the caller, which knows the schemas,
/// resolves that.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_attr: Option<String>,
}

/// Why a filter or path was rejected. `pos` is a 0-based byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter is empty")]
    Empty,
    #[error("filter is too long: {len} bytes (maximum {max})")]
    TooLong { len: usize, max: usize },
    #[error("filter is nested too deeply at offset {pos} (maximum depth {max})")]
    TooDeep { pos: usize, max: usize },
    #[error("unexpected {found} at offset {pos}; expected {expected}")]
    Unexpected {
        pos: usize,
        found: String,
        expected: &'static str,
    },
    #[error(
        "unknown operator `{found}` at offset {pos}; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr"
    )]
    UnknownOperator { pos: usize, found: String },
    #[error(
        "invalid comparison value `{found}` at offset {pos}; expected a double-quoted string, a number, true, false or null"
    )]
    BadValue { pos: usize, found: String },
    #[error("unterminated string starting at offset {pos}")]
    UnterminatedString { pos: usize },
    #[error("invalid escape sequence in string at offset {pos}: {detail}")]
    BadEscape { pos: usize, detail: &'static str },
    #[error("control character U+{code:04X} in string at offset {pos} must be escaped")]
    ControlChar { pos: usize, code: u32 },
    #[error("invalid number `{text}` at offset {pos}: {detail}")]
    BadNumber {
        pos: usize,
        text: String,
        detail: &'static str,
    },
    #[error("unexpected character `{ch}` at offset {pos}")]
    BadChar { pos: usize, ch: char },
    #[error("invalid attribute path `{text}` at offset {pos}: {detail}")]
    BadAttrPath {
        pos: usize,
        text: String,
        detail: &'static str,
    },
    #[error("value filters cannot be nested: `[` at offset {pos} is inside another `[...]`")]
    NestedValuePath { pos: usize },
}

/// Parses a `filter` query parameter (or `filter` member of a search request).
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut p = Parser::new(input)?;
    let node = p.or_expr()?;
    p.finish("`and`, `or` or end of input")?;
    Ok(node.filter)
}

/// Parses the `path` of a PATCH operation.
///
/// Unlike [`parse_filter`], a sub-attribute after `]` stays separate (`sub_attr`), since here
/// it names what to modify rather than a condition.
pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut p = Parser::new(input)?;
    let (attr, attr_pos) = p.attr_path()?;
    if !p.next_is(&Tok::LBracket) {
        p.finish("`[` or end of path")?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_attr: None,
        });
    }
    check_value_path_target(&attr, attr_pos)?;
    let filter = p.bracketed()?.filter;
    let sub_attr = if p.eat(&Tok::Dot) {
        Some(p.sub_attr_name()?)
    } else {
        None
    };
    p.finish(if sub_attr.is_some() {
        "end of path"
    } else {
        "`.` and a sub-attribute name, or end of path"
    })?;
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_attr,
    })
}

// ---------------------------------------------------------------------------------------------
// Display: canonical text that parses back to the same value.
// ---------------------------------------------------------------------------------------------

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl CompareOp {
    /// Recognises an operator keyword, case-insensitively.
    fn from_keyword(word: &str) -> Option<CompareOp> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        OPS.iter()
            .find(|(kw, _)| word.eq_ignore_ascii_case(kw))
            .map(|&(_, op)| op)
    }

    fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write_json_string(f, s),
        }
    }
}

/// Writes the filter with the fewest parentheses that keep its exact tree shape, so that
/// `parse_filter(&f.to_string()) == Ok(f)` for every filter this module produces.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn operand(f: &mut fmt::Formatter<'_>, x: &Filter, parens: bool) -> fmt::Result {
            if parens {
                write!(f, "({x})")
            } else {
                write!(f, "{x}")
            }
        }
        match self {
            Filter::Present(a) => write!(f, "{a} pr"),
            Filter::Compare(a, op, v) => write!(f, "{a} {op} {v}"),
            Filter::Or(l, r) => {
                operand(f, l, false)?;
                f.write_str(" or ")?;
                operand(f, r, matches!(**r, Filter::Or(..)))
            }
            Filter::And(l, r) => {
                operand(f, l, matches!(**l, Filter::Or(..)))?;
                f.write_str(" and ")?;
                operand(f, r, matches!(**r, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Not(x) => write!(f, "not ({x})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}

/// Writes `s` as a JSON string literal.
fn write_json_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            '\u{8}' => w.write_str("\\b")?,
            '\u{c}' => w.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(w, "\\u{:04x}", u32::from(c))?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// Shortens client-supplied text quoted in error messages, so messages stay readable.
fn snippet(s: &str) -> String {
    const MAX_CHARS: usize = 40;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or(s)),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A `.` that does not belong to a word: only meaningful right after `]`.
    Dot,
    /// An attribute path or a keyword; which one is decided by the parser from context, so
    /// that attributes may be called e.g. `pr` or `not`.
    Word(&'a str),
    Str(String),
    Num(Number),
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset of the token's first character.
    pos: usize,
}

/// Characters that may continue a word. A URN-qualified path is one word (its `:` and the
/// dots in e.g. `2.0` included); the parser splits it afterwards.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$')
}

struct Lexer<'a> {
    /// The input, cut to at most `MAX_FILTER_LEN` bytes (on a char boundary).
    src: &'a str,
    /// Length of the uncut input.
    full_len: usize,
    pos: usize,
    /// Current `(`/`[` nesting.
    nesting: usize,
}

/// Splits the input into tokens.
///
/// Overlong input is not rejected up front: the lexer reads only the first
/// `MAX_FILTER_LEN` bytes and reports [`FilterError::TooLong`] when it runs past them. Work
/// stays bounded either way, and errors come in input order, so e.g. ten thousand `(` are
/// reported as [`FilterError::TooDeep`] (the first problem) rather than as too long.
fn lex(input: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let cut = input.floor_char_boundary(MAX_FILTER_LEN);
    Lexer {
        src: input.get(..cut).unwrap_or(""),
        full_len: input.len(),
        pos: 0,
        nesting: 0,
    }
    .run()
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn truncated(&self) -> bool {
        self.src.len() < self.full_len
    }

    fn too_long(&self) -> FilterError {
        FilterError::TooLong {
            len: self.full_len,
            max: MAX_FILTER_LEN,
        }
    }

    /// The error for running out of input: if the input was cut, its length is the problem.
    fn end_error(&self, otherwise: FilterError) -> FilterError {
        if self.truncated() {
            self.too_long()
        } else {
            otherwise
        }
    }

    fn run(mut self) -> Result<Vec<Token<'a>>, FilterError> {
        let mut out = Vec::new();
        loop {
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.pos += 1;
            }
            let pos = self.pos;
            let Some(c) = self.peek() else {
                return if self.truncated() {
                    Err(self.too_long())
                } else {
                    Ok(out)
                };
            };
            let tok = match c {
                '(' | '[' => {
                    self.pos += 1;
                    self.nesting += 1;
                    if self.nesting > MAX_FILTER_DEPTH {
                        return Err(FilterError::TooDeep {
                            pos,
                            max: MAX_FILTER_DEPTH,
                        });
                    }
                    if c == '(' { Tok::LParen } else { Tok::LBracket }
                }
                ')' | ']' => {
                    self.pos += 1;
                    // Unbalanced closers are the parser's to report; just don't underflow.
                    self.nesting = self.nesting.saturating_sub(1);
                    if c == ')' { Tok::RParen } else { Tok::RBracket }
                }
                '.' => {
                    self.pos += 1;
                    Tok::Dot
                }
                '"' => Tok::Str(self.string()?),
                '-' | '0'..='9' => Tok::Num(self.number()?),
                c if c.is_ascii_alphabetic() || c == '$' => Tok::Word(self.word()),
                other => return Err(FilterError::BadChar { pos, ch: other }),
            };
            out.push(Token { tok, pos });
        }
    }

    fn word(&mut self) -> &'a str {
        let src = self.src;
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.pos += 1; // word chars are ASCII
        }
        src.get(start..self.pos).unwrap_or("")
    }

    /// A JSON string literal; the lexer is positioned on the opening quote.
    fn string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.end_error(FilterError::UnterminatedString { pos: start })),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(start, at)?),
                Some(c) if u32::from(c) < 0x20 => {
                    return Err(FilterError::ControlChar {
                        pos: at,
                        code: u32::from(c),
                    });
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// The rest of an escape sequence whose `\` was at `at`, in the string starting at `start`.
    fn escape(&mut self, start: usize, at: usize) -> Result<char, FilterError> {
        let bad = |detail| FilterError::BadEscape { pos: at, detail };
        let Some(c) = self.bump() else {
            return Err(self.end_error(FilterError::UnterminatedString { pos: start }));
        };
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = self.hex4(start, at)?;
                match unit {
                    // A UTF-16 high surrogate must be followed by an escaped low surrogate.
                    0xD800..=0xDBFF => {
                        if self
                            .src
                            .get(self.pos..)
                            .is_some_and(|s| s.starts_with("\\u"))
                        {
                            self.pos += 2;
                        } else if self.peek().is_none() {
                            return Err(
                                self.end_error(FilterError::UnterminatedString { pos: start })
                            );
                        } else {
                            return Err(bad("high surrogate not followed by a low surrogate"));
                        }
                        let low = self.hex4(start, at)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(bad("high surrogate not followed by a low surrogate"));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or(bad("invalid surrogate pair"))?
                    }
                    0xDC00..=0xDFFF => return Err(bad("low surrogate without a high surrogate")),
                    _ => char::from_u32(unit).ok_or(bad("invalid code point"))?,
                }
            }
            _ => {
                return Err(bad(
                    "expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                ));
            }
        })
    }

    /// Four hex digits after `\u`.
    fn hex4(&mut self, start: usize, at: usize) -> Result<u32, FilterError> {
        let mut value = 0;
        for _ in 0..4 {
            let Some(c) = self.bump() else {
                return Err(self.end_error(FilterError::UnterminatedString { pos: start }));
            };
            let Some(digit) = c.to_digit(16) else {
                return Err(FilterError::BadEscape {
                    pos: at,
                    detail: "\\u must be followed by four hex digits",
                });
            };
            value = value * 16 + digit;
        }
        Ok(value)
    }

    /// A JSON number. The whole run of number-ish characters is taken as one token, so that
    /// `12abc`, `1.2.3` or `01` are reported as one bad number rather than as two tokens.
    fn number(&mut self) -> Result<Number, FilterError> {
        let start = self.pos;
        let mut well_formed = self.json_number_grammar();
        while self.peek().is_some_and(|c| is_word_char(c) || c == '+') {
            self.pos += 1; // all ASCII
            well_formed = false;
        }
        if self.pos == self.src.len() && self.truncated() {
            // The number may have been cut in half; don't complain about the half.
            return Err(self.too_long());
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        let bad = |detail| FilterError::BadNumber {
            pos: start,
            text: snippet(text),
            detail,
        };
        if !well_formed {
            return Err(bad("not a JSON number"));
        }
        // Integers stay exact where they fit; everything else becomes the nearest f64. (Rust's
        // float parsing is correctly rounded, unlike serde_json's default fast path, so the
        // canonical `Display` form parses back to the identical number.)
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Number::from(n));
        }
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Number::from(n));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| bad("out of range for a JSON number"))
    }

    /// Consumes `-? (0 / [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` as far as it goes;
    /// returns whether it matched completely.
    fn json_number_grammar(&mut self) -> bool {
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        match self.peek() {
            Some('0') => self.pos += 1,
            Some('1'..='9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.peek() == Some('.') {
            self.pos += 1;
            if !self.digits() {
                return false;
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            if !self.digits() {
                return false;
            }
        }
        true
    }

    /// Consumes ASCII digits; returns whether there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos > start
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute paths
// ---------------------------------------------------------------------------------------------

const NAME_RULE: &str = "attribute names start with a letter and contain only letters, digits, \
                         `-` and `_` (or are `$ref`)";

/// ATTRNAME = ALPHA *(nameChar), plus `$ref` (used by `members[$ref eq "…"]` in practice).
fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `urn:<nid>:<nss…>`: at least three non-empty `:`-separated parts.
fn is_urn(s: &str) -> bool {
    s.split(':').count() >= 3
        && s.split(':').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Turns a word token into an attribute path.
///
/// A word starting with `urn:` (any case) is schema-qualified: it is split at its *last* `:`
/// (the URN itself contains dots, as in `2.0`), and only the part after it may hold `.sub`.
/// Inside `[...]` only a plain sub-attribute name is allowed.
fn attr_from_word(word: &str, pos: usize, in_value_path: bool) -> Result<AttrPath, FilterError> {
    let bad = |detail| FilterError::BadAttrPath {
        pos,
        text: snippet(word),
        detail,
    };
    if in_value_path {
        if is_attr_name(word) {
            return Ok(AttrPath {
                urn: None,
                attr: word.to_owned(),
                sub_attr: None,
            });
        }
        return Err(bad(if word.contains(['.', ':']) {
            "inside `[...]` only a plain sub-attribute name is allowed"
        } else {
            NAME_RULE
        }));
    }
    let has_urn_prefix = word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (urn, rest) = match word.rsplit_once(':') {
        Some((urn, rest)) if has_urn_prefix => {
            if !is_urn(urn) {
                return Err(bad(
                    "a schema URN needs the form `urn:<namespace>:<name>` followed by `:attribute`",
                ));
            }
            if rest.is_empty() {
                return Err(bad("missing attribute name after the schema URN"));
            }
            (Some(urn.to_owned()), rest)
        }
        Some(_) => {
            return Err(bad(
                "`:` may only appear in a schema URN prefix starting with `urn:`",
            ));
        }
        None => (None, word),
    };
    let (attr, sub_attr) = match rest.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(attr) {
        return Err(bad(NAME_RULE));
    }
    if let Some(sub) = sub_attr {
        if sub.contains('.') {
            return Err(bad(
                "only one level of sub-attribute (`attr.sub`) is allowed",
            ));
        }
        if !is_attr_name(sub) {
            return Err(bad(NAME_RULE));
        }
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_owned(),
        sub_attr: sub_attr.map(str::to_owned),
    })
}

/// `x[...]` must name a multi-valued attribute, which cannot itself be a sub-attribute.
/// (The ABNF would allow `a.b[...]`, but it can never mean anything in SCIM, and rejecting it
/// lets callers rely on `ValuePath.attr.sub_attr` being `None`.)
fn check_value_path_target(attr: &AttrPath, pos: usize) -> Result<(), FilterError> {
    if attr.sub_attr.is_some() {
        return Err(FilterError::BadAttrPath {
            pos,
            text: snippet(&attr.to_string()),
            detail: "a value filter `[...]` must follow an attribute, not a sub-attribute",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A parsed subtree and its depth (see [`MAX_FILTER_DEPTH`]), kept alongside so the limit
/// is checked in constant time per node.
struct Node {
    filter: Filter,
    depth: usize,
}

impl Node {
    fn leaf(filter: Filter) -> Node {
        Node { filter, depth: 0 }
    }
}

/// The depth of a new node over a child of depth `child`, or `TooDeep`.
fn deeper(pos: usize, child: usize) -> Result<usize, FilterError> {
    let depth = child + 1;
    if depth > MAX_FILTER_DEPTH {
        return Err(FilterError::TooDeep {
            pos,
            max: MAX_FILTER_DEPTH,
        });
    }
    Ok(depth)
}

fn binary(
    make: fn(Box<Filter>, Box<Filter>) -> Filter,
    left: Node,
    right: Node,
    pos: usize,
) -> Result<Node, FilterError> {
    Ok(Node {
        depth: deeper(pos, left.depth.max(right.depth))?,
        filter: make(Box::new(left.filter), Box::new(right.filter)),
    })
}

fn describe(tok: Option<&Token<'_>>) -> String {
    match tok.map(|t| &t.tok) {
        None => "end of input".to_owned(),
        Some(Tok::LParen) => "`(`".to_owned(),
        Some(Tok::RParen) => "`)`".to_owned(),
        Some(Tok::LBracket) => "`[`".to_owned(),
        Some(Tok::RBracket) => "`]`".to_owned(),
        Some(Tok::Dot) => "`.`".to_owned(),
        Some(Tok::Word(w)) => format!("`{}`", snippet(w)),
        Some(Tok::Str(s)) => {
            let mut quoted = String::new();
            // Writing into a String cannot fail.
            let _ = write_json_string(&mut quoted, s);
            format!("string {}", snippet(&quoted))
        }
        Some(Tok::Num(n)) => format!("number {n}"),
    }
}

const EXPECTED_OPERATOR: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)";
const EXPECTED_VALUE: &str =
    "a comparison value (double-quoted string, number, true, false or null)";

struct Parser<'a> {
    /// Tokens not yet consumed, in reverse order: the next token is `last()`.
    rest: Vec<Token<'a>>,
    /// Offset reported for "end of input".
    end: usize,
    /// Current `(`/`[` nesting. The lexer already bounds this; checking again here keeps the
    /// parser's recursion bounded on its own.
    nesting: usize,
    /// Inside `[...]`: attribute names are bare sub-attribute names and `[` is not allowed.
    in_value_path: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Parser<'a>, FilterError> {
        let mut rest = lex(input)?;
        if rest.is_empty() {
            return Err(FilterError::Empty);
        }
        rest.reverse();
        Ok(Parser {
            rest,
            end: input.len(),
            nesting: 0,
            in_value_path: false,
        })
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.rest.last()
    }

    fn peek2(&self) -> Option<&Token<'a>> {
        self.rest
            .len()
            .checked_sub(2)
            .and_then(|i| self.rest.get(i))
    }

    fn next(&mut self) -> Option<Token<'a>> {
        self.rest.pop()
    }

    fn next_pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn next_is(&self, tok: &Tok<'_>) -> bool {
        self.peek().is_some_and(|t| t.tok == *tok)
    }

    fn next_is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    /// Consumes the next token if it is `tok`.
    fn eat(&mut self, tok: &Tok<'_>) -> bool {
        let found = self.next_is(tok);
        if found {
            self.next();
        }
        found
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        FilterError::Unexpected {
            pos: self.next_pos(),
            found: describe(self.peek()),
            expected,
        }
    }

    fn finish(&self, expected: &'static str) -> Result<(), FilterError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected(expected)),
        }
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_FILTER_DEPTH {
            return Err(FilterError::TooDeep {
                pos,
                max: MAX_FILTER_DEPTH,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// orExpr = andExpr *("or" andExpr). Looping (rather than recursing) per operand keeps
    /// long chains off the stack; the tree depth is still checked in `binary`.
    fn or_expr(&mut self) -> Result<Node, FilterError> {
        let mut left = self.and_expr()?;
        while self.next_is_keyword("or") {
            let pos = self.next_pos();
            self.next();
            let right = self.and_expr()?;
            left = binary(Filter::Or, left, right, pos)?;
        }
        Ok(left)
    }

    /// andExpr = atom *("and" atom)
    fn and_expr(&mut self) -> Result<Node, FilterError> {
        let mut left = self.atom()?;
        while self.next_is_keyword("and") {
            let pos = self.next_pos();
            self.next();
            let right = self.atom()?;
            left = binary(Filter::And, left, right, pos)?;
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Node, FilterError> {
        let pos = self.next_pos();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::LParen) => {
                self.next();
                self.group(pos)
            }
            Some(Tok::Word(w))
                if (w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or"))
                    && !self.keyword_is_attribute() =>
            {
                Err(self.unexpected("an attribute name, `(` or `not`"))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") && !self.keyword_is_attribute() => {
                self.next();
                if !self.next_is(&Tok::LParen) {
                    return Err(self.unexpected("`(` after `not`"));
                }
                let open = self.next_pos();
                self.next();
                let inner = self.group(open)?;
                Ok(Node {
                    depth: deeper(pos, inner.depth)?,
                    filter: Filter::Not(Box::new(inner.filter)),
                })
            }
            Some(Tok::Word(_)) => self.attr_expr(),
            _ => Err(self.unexpected("an attribute name, `(` or `not`")),
        }
    }

    /// With the next token being `not`, `and` or `or` where a filter term should start: is it
    /// an attribute of that name (`not pr`, `and eq 1`, `or[...]`) rather than a misplaced
    /// logical keyword? Deciding this way gives `a pr or or b pr` a sensible error message.
    fn keyword_is_attribute(&self) -> bool {
        match self.peek2().map(|t| &t.tok) {
            Some(Tok::LBracket) => true,
            Some(Tok::Word(w)) => {
                w.eq_ignore_ascii_case("pr") || CompareOp::from_keyword(w).is_some()
            }
            _ => false,
        }
    }

    /// The rest of `( orExpr )` after the `(` at `open`. Parentheses add no tree level.
    fn group(&mut self, open: usize) -> Result<Node, FilterError> {
        self.enter(open)?;
        let inner = self.or_expr()?;
        if !self.eat(&Tok::RParen) {
            return Err(self.unexpected("`)`, `and` or `or`"));
        }
        self.leave();
        Ok(inner)
    }

    /// `[ orExpr ]`, the next token being `[`.
    fn bracketed(&mut self) -> Result<Node, FilterError> {
        let open = self.next_pos();
        if self.in_value_path {
            return Err(FilterError::NestedValuePath { pos: open });
        }
        self.next();
        self.enter(open)?;
        self.in_value_path = true;
        let inner = self.or_expr()?;
        if !self.eat(&Tok::RBracket) {
            return Err(self.unexpected("`]`, `and` or `or`"));
        }
        self.in_value_path = false;
        self.leave();
        Ok(inner)
    }

    /// Consumes a word and reads it as an attribute path.
    fn attr_path(&mut self) -> Result<(AttrPath, usize), FilterError> {
        let Some(&Token {
            tok: Tok::Word(word),
            pos,
        }) = self.peek()
        else {
            return Err(self.unexpected("an attribute name"));
        };
        let attr = attr_from_word(word, pos, self.in_value_path)?;
        self.next();
        Ok((attr, pos))
    }

    /// The name after `].`: a plain sub-attribute name.
    fn sub_attr_name(&mut self) -> Result<String, FilterError> {
        let Some(&Token {
            tok: Tok::Word(word),
            pos,
        }) = self.peek()
        else {
            return Err(self.unexpected("a sub-attribute name after `.`"));
        };
        if !is_attr_name(word) {
            return Err(FilterError::BadAttrPath {
                pos,
                text: snippet(word),
                detail: NAME_RULE,
            });
        }
        self.next();
        Ok(word.to_owned())
    }

    /// attrPath followed by `pr`, a comparison, or `[...]` (optionally with Entra ID's
    /// trailing `.sub op value`).
    fn attr_expr(&mut self) -> Result<Node, FilterError> {
        let (attr, pos) = self.attr_path()?;
        if !self.next_is(&Tok::LBracket) {
            return Ok(Node::leaf(self.condition(attr)?));
        }
        check_value_path_target(&attr, pos)?;
        let mut inner = self.bracketed()?;
        // Entra ID: `emails[type eq "work"].value eq "x"` means
        // `emails[type eq "work" and value eq "x"]`.
        let dot = self.next_pos();
        if self.eat(&Tok::Dot) {
            let sub = self.sub_attr_name()?;
            let cond = self.condition(AttrPath {
                urn: None,
                attr: sub,
                sub_attr: None,
            })?;
            inner = binary(Filter::And, inner, Node::leaf(cond), dot)?;
        }
        Ok(Node {
            depth: deeper(pos, inner.depth)?,
            filter: Filter::ValuePath {
                attr,
                filter: Box::new(inner.filter),
            },
        })
    }

    /// `pr` or `compareOp compValue` after an attribute path.
    fn condition(&mut self, attr: AttrPath) -> Result<Filter, FilterError> {
        let Some(&Token {
            tok: Tok::Word(word),
            pos,
        }) = self.peek()
        else {
            return Err(self.unexpected(EXPECTED_OPERATOR));
        };
        if word.eq_ignore_ascii_case("pr") {
            self.next();
            return Ok(Filter::Present(attr));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return Err(FilterError::UnknownOperator {
                pos,
                found: snippet(word),
            });
        };
        self.next();
        let value = self.value()?;
        Ok(Filter::Compare(attr, op, value))
    }

    fn value(&mut self) -> Result<CompValue, FilterError> {
        let pos = self.next_pos();
        match self.next() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => Ok(CompValue::String(s)),
            Some(Token {
                tok: Tok::Num(n), ..
            }) => Ok(CompValue::Number(n)),
            Some(Token {
                tok: Tok::Word(w), ..
            }) => {
                if w.eq_ignore_ascii_case("true") {
                    Ok(CompValue::Bool(true))
                } else if w.eq_ignore_ascii_case("false") {
                    Ok(CompValue::Bool(false))
                } else if w.eq_ignore_ascii_case("null") {
                    Ok(CompValue::Null)
                } else {
                    Err(FilterError::BadValue {
                        pos,
                        found: snippet(w),
                    })
                }
            }
            other => Err(FilterError::Unexpected {
                pos,
                found: describe(other.as_ref()),
                expected: EXPECTED_VALUE,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- helpers -------------------------------------------------------------------------

    fn ap(attr: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.to_owned(),
            sub_attr: None,
        }
    }

    fn ap_sub(attr: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.to_owned(),
            sub_attr: Some(sub.to_owned()),
        }
    }

    fn ap_urn(urn: &str, attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.to_owned()),
            attr: attr.to_owned(),
            sub_attr: sub.map(str::to_owned),
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::String(v.to_owned())
    }

    fn cmp(a: AttrPath, op: CompareOp, v: CompValue) -> Filter {
        Filter::Compare(a, op, v)
    }

    fn pr(name: &str) -> Filter {
        Filter::Present(ap(name))
    }

    fn and(l: Filter, r: Filter) -> Filter {
        Filter::And(Box::new(l), Box::new(r))
    }

    fn or(l: Filter, r: Filter) -> Filter {
        Filter::Or(Box::new(l), Box::new(r))
    }

    fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }

    fn vp(attr: &str, f: Filter) -> Filter {
        Filter::ValuePath {
            attr: ap(attr),
            filter: Box::new(f),
        }
    }

    /// Parses, and checks that the canonical text parses back to the same tree.
    #[track_caller]
    fn parse(input: &str) -> Filter {
        let f = match parse_filter(input) {
            Ok(f) => f,
            Err(e) => panic!("{input:?} failed: {e}"),
        };
        let text = f.to_string();
        assert_eq!(
            parse_filter(&text),
            Ok(f.clone()),
            "round trip via {text:?}"
        );
        f
    }

    #[track_caller]
    fn err(input: &str) -> FilterError {
        match parse_filter(input) {
            Ok(f) => panic!("{input:?} unexpectedly parsed as {f:?}"),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn path(input: &str) -> PatchPath {
        match parse_path(input) {
            Ok(p) => p,
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn path_err(input: &str) -> FilterError {
        match parse_path(input) {
            Ok(p) => panic!("{input:?} unexpectedly parsed as {p:?}"),
            Err(e) => e,
        }
    }

    fn int(n: i64) -> CompValue {
        CompValue::Number(Number::from(n))
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    // --- RFC 7644 §3.4.2.2 examples ----------------------------------------------------------

    #[test]
    fn rfc_examples() {
        use CompareOp::*;
        assert_eq!(
            parse(r#"userName eq "bjensen""#),
            cmp(ap("userName"), Eq, s("bjensen"))
        );
        assert_eq!(
            parse(r#"name.familyName co "O'Malley""#),
            cmp(ap_sub("name", "familyName"), Co, s("O'Malley"))
        );
        assert_eq!(parse(r#"userName sw "J""#), cmp(ap("userName"), Sw, s("J")));
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#),
            cmp(ap_urn(CORE_USER, "userName", None), Sw, s("J"))
        );
        assert_eq!(parse("title pr"), pr("title"));
        assert_eq!(
            parse(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
            cmp(
                ap_sub("meta", "lastModified"),
                Gt,
                s("2011-05-13T04:42:34Z")
            )
        );
        assert_eq!(
            parse(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#),
            cmp(
                ap_sub("meta", "lastModified"),
                Ge,
                s("2011-05-13T04:42:34Z")
            )
        );
        assert_eq!(
            parse(r#"meta.lastModified lt "2011-05-13T04:42:34Z""#),
            cmp(
                ap_sub("meta", "lastModified"),
                Lt,
                s("2011-05-13T04:42:34Z")
            )
        );
        assert_eq!(
            parse(r#"meta.lastModified le "2011-05-13T04:42:34Z""#),
            cmp(
                ap_sub("meta", "lastModified"),
                Le,
                s("2011-05-13T04:42:34Z")
            )
        );
        assert_eq!(
            parse(r#"title pr and userType eq "Employee""#),
            and(pr("title"), cmp(ap("userType"), Eq, s("Employee")))
        );
        assert_eq!(
            parse(r#"title pr or userType eq "Intern""#),
            or(pr("title"), cmp(ap("userType"), Eq, s("Intern")))
        );
        assert_eq!(
            parse(r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#),
            cmp(ap("schemas"), Eq, s(ENTERPRISE))
        );
        let emails_or = or(
            cmp(ap("emails"), Co, s("example.com")),
            cmp(ap_sub("emails", "value"), Co, s("example.org")),
        );
        assert_eq!(
            parse(
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#
            ),
            and(cmp(ap("userType"), Eq, s("Employee")), emails_or.clone())
        );
        assert_eq!(
            parse(
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
            ),
            and(cmp(ap("userType"), Ne, s("Employee")), not(emails_or))
        );
        assert_eq!(
            parse(r#"userType eq "Employee" and (emails.type eq "work")"#),
            and(
                cmp(ap("userType"), Eq, s("Employee")),
                cmp(ap_sub("emails", "type"), Eq, s("work"))
            )
        );
        assert_eq!(
            parse(
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#
            ),
            and(
                cmp(ap("userType"), Eq, s("Employee")),
                vp(
                    "emails",
                    and(
                        cmp(ap("type"), Eq, s("work")),
                        cmp(ap("value"), Co, s("@example.com"))
                    )
                )
            )
        );
        assert_eq!(
            parse(
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#
            ),
            or(
                vp(
                    "emails",
                    and(
                        cmp(ap("type"), Eq, s("work")),
                        cmp(ap("value"), Co, s("@example.com"))
                    )
                ),
                vp(
                    "ims",
                    and(
                        cmp(ap("type"), Eq, s("xmpp")),
                        cmp(ap("value"), Co, s("@foo.com"))
                    )
                )
            )
        );
    }

    #[test]
    fn all_operators() {
        for (kw, op) in [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(parse(&format!("a {kw} 1")), cmp(ap("a"), op, int(1)));
            let upper = kw.to_ascii_uppercase();
            assert_eq!(parse(&format!("a {upper} 1")), cmp(ap("a"), op, int(1)));
            assert_eq!(op.to_string(), kw);
        }
    }

    // --- precedence and keywords ----------------------------------------------------------------

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a pr or b pr and c pr"),
            or(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(
            parse("a pr and b pr or c pr"),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and b pr or c pr and d pr"),
            or(and(pr("a"), pr("b")), and(pr("c"), pr("d")))
        );
    }

    #[test]
    fn left_associative() {
        assert_eq!(
            parse("a pr and b pr and c pr"),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr or b pr or c pr"),
            or(or(pr("a"), pr("b")), pr("c"))
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(
            parse("(a pr or b pr) and c pr"),
            and(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and (b pr and c pr)"),
            and(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(parse("((a pr))"), pr("a"));
    }

    #[test]
    fn not_binds_tightest() {
        assert_eq!(parse("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
        assert_eq!(
            parse("b pr or not (a pr or c pr)"),
            or(pr("b"), not(or(pr("a"), pr("c"))))
        );
        assert_eq!(parse("not(a pr)"), not(pr("a")));
        assert_eq!(parse("not (not (a pr))"), not(not(pr("a"))));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            parse(r#"userName EQ "x" AND title PR Or NOT (a Pr)"#),
            or(
                and(cmp(ap("userName"), CompareOp::Eq, s("x")), pr("title")),
                not(pr("a"))
            )
        );
        assert_eq!(
            parse("a eq TRUE and b eq False and c eq NULL"),
            and(
                and(
                    cmp(ap("a"), CompareOp::Eq, CompValue::Bool(true)),
                    cmp(ap("b"), CompareOp::Eq, CompValue::Bool(false))
                ),
                cmp(ap("c"), CompareOp::Eq, CompValue::Null)
            )
        );
    }

    #[test]
    fn keywords_can_be_attribute_names() {
        assert_eq!(parse("not pr"), pr("not"));
        assert_eq!(
            parse(r#"not eq "x""#),
            cmp(ap("not"), CompareOp::Eq, s("x"))
        );
        assert_eq!(parse("pr pr"), pr("pr"));
        assert_eq!(parse("and pr and or pr"), and(pr("and"), pr("or")));
        assert_eq!(parse("not[value pr]"), vp("not", pr("value")));
    }

    #[test]
    fn whitespace_is_tolerated() {
        let expected = and(
            cmp(ap("userName"), CompareOp::Eq, s("x")),
            vp("emails", cmp(ap("type"), CompareOp::Eq, s("work"))),
        );
        for input in [
            r#"userName eq "x" and emails[type eq "work"]"#,
            "  userName \t eq\t\"x\"   and   emails [ type  eq \"work\" ]  ",
            "( userName eq \"x\" ) and ( emails[ type eq \"work\" ] )",
            "userName eq \"x\"\r\n and emails[type eq \"work\"]",
        ] {
            assert_eq!(parse(input), expected, "{input:?}");
        }
        assert_eq!(parse("not  (  a pr  )"), not(pr("a")));
        assert_eq!(parse("not\t(a pr)"), not(pr("a")));
    }

    // --- attribute paths --------------------------------------------------------------------

    #[test]
    fn urn_qualified_attributes() {
        assert_eq!(
            parse(&format!("{ENTERPRISE}:employeeNumber eq \"701984\"")),
            cmp(
                ap_urn(ENTERPRISE, "employeeNumber", None),
                CompareOp::Eq,
                s("701984")
            )
        );
        assert_eq!(
            parse(&format!("{ENTERPRISE}:manager.value eq \"26118915\"")),
            cmp(
                ap_urn(ENTERPRISE, "manager", Some("value")),
                CompareOp::Eq,
                s("26118915")
            )
        );
        assert_eq!(
            parse(&format!("{CORE_USER}:name.givenName pr")),
            Filter::Present(ap_urn(CORE_USER, "name", Some("givenName")))
        );
        // The `urn:` prefix is case-insensitive; the URN is kept as written.
        assert_eq!(
            parse("URN:Foo:bar:x pr"),
            Filter::Present(ap_urn("URN:Foo:bar", "x", None))
        );
    }

    #[test]
    fn bad_attribute_paths() {
        for input in [
            "foo:bar pr",      // ':' without urn:
            "urn:x pr",        // URN too short
            "urn:a:b: pr",     // no attribute after the URN
            "urn::b:c pr",     // empty URN part
            "urn:a$:b:c pr",   // bad URN character
            "name. pr",        // empty sub-attribute
            "name.given.x pr", // two levels
            "na$me pr",        // bad character
            "$foo pr",         // only $ref may start with $
        ] {
            let e = err(input);
            assert!(
                matches!(e, FilterError::BadAttrPath { pos: 0, .. }),
                "{input:?}: {e:?}"
            );
        }
        assert_eq!(parse("a_.b- pr"), Filter::Present(ap_sub("a_", "b-")));
        assert_eq!(parse("x-1_y pr"), pr("x-1_y"));
        assert!(matches!(err("1abc pr"), FilterError::BadNumber { .. }));
        assert!(matches!(
            err("_a pr"),
            FilterError::BadChar { pos: 0, ch: '_' }
        ));
    }

    #[test]
    fn dollar_ref() {
        assert_eq!(
            parse(r#"members[$ref eq "https://example.com/v2/Users/1"]"#),
            vp(
                "members",
                cmp(
                    ap("$ref"),
                    CompareOp::Eq,
                    s("https://example.com/v2/Users/1")
                )
            )
        );
        assert_eq!(parse("$ref pr"), pr("$ref"));
        assert_eq!(
            parse("members.$ref pr"),
            Filter::Present(ap_sub("members", "$ref"))
        );
    }

    #[test]
    fn attr_path_display() {
        assert_eq!(ap("userName").to_string(), "userName");
        assert_eq!(ap_sub("name", "givenName").to_string(), "name.givenName");
        assert_eq!(
            ap_urn(ENTERPRISE, "manager", Some("value")).to_string(),
            format!("{ENTERPRISE}:manager.value")
        );
    }

    // --- values ---------------------------------------------------------------------------

    #[test]
    fn numbers() {
        let float = |x: f64| CompValue::Number(Number::from_f64(x).expect("finite"));
        for (text, expected) in [
            ("0", int(0)),
            ("-0", int(0)),
            ("42", int(42)),
            ("-7", int(-7)),
            (
                "18446744073709551615",
                CompValue::Number(Number::from(u64::MAX)),
            ),
            ("2.75", float(2.75)),
            ("-0.5", float(-0.5)),
            ("1e3", float(1000.0)),
            ("1E+3", float(1000.0)),
            ("-2.5E-3", float(-0.0025)),
            ("1.0", float(1.0)),
            (
                "123456789012345678901234",
                float(123456789012345678901234.0),
            ),
            ("1.2345678901234567e+23", float(1.2345678901234567e23)),
        ] {
            let f = parse(&format!("a gt {text}"));
            assert_eq!(f, cmp(ap("a"), CompareOp::Gt, expected), "{text}");
        }
        // Numbers end at delimiters.
        assert_eq!(parse("(a eq 1)"), cmp(ap("a"), CompareOp::Eq, int(1)));
        assert_eq!(
            parse("x[a eq 1]"),
            vp("x", cmp(ap("a"), CompareOp::Eq, int(1)))
        );
    }

    #[test]
    fn bad_numbers() {
        for text in [
            "01", "1.", ".5", "1e", "1e+", "-", "--1", "12abc", "1.2.3", "+1", "1e400", "-x",
        ] {
            let e = err(&format!("a eq {text}"));
            assert!(
                matches!(
                    e,
                    FilterError::BadNumber { .. }
                        | FilterError::Unexpected { .. }
                        | FilterError::BadChar { .. }
                ),
                "{text}: {e:?}"
            );
        }
        assert_eq!(
            err("a eq 12abc"),
            FilterError::BadNumber {
                pos: 5,
                text: "12abc".into(),
                detail: "not a JSON number"
            }
        );
        assert!(matches!(
            err("a eq 1e400"),
            FilterError::BadNumber {
                detail: "out of range for a JSON number",
                ..
            }
        ));
    }

    #[test]
    fn literals_and_unquoted_words() {
        assert_eq!(
            parse("active eq true"),
            cmp(ap("active"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            parse("active ne false"),
            cmp(ap("active"), CompareOp::Ne, CompValue::Bool(false))
        );
        assert_eq!(
            parse("title eq null"),
            cmp(ap("title"), CompareOp::Eq, CompValue::Null)
        );
        assert_eq!(
            err("userName eq bjensen"),
            FilterError::BadValue {
                pos: 12,
                found: "bjensen".into()
            }
        );
        assert!(matches!(err("a eq truex"), FilterError::BadValue { .. }));
    }

    #[test]
    fn string_escapes() {
        let cases = [
            (r#""plain""#, "plain"),
            (r#""""#, ""),
            (r#""a\"b""#, "a\"b"),
            (r#""a\\b""#, "a\\b"),
            (r#""a\/b""#, "a/b"),
            (r#""\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#""\u00e9\u00C9""#, "éÉ"),
            (r#""\u0000""#, "\u{0}"),
            (r#""\uD83D\uDE00""#, "😀"),
            (r#""\ud83d\ude00!""#, "😀!"),
            ("\"é日本😀\"", "é日本😀"),
            (r#""it's (not) [a] filter""#, "it's (not) [a] filter"),
        ];
        for (lit, expected) in cases {
            assert_eq!(
                parse(&format!("a eq {lit}")),
                cmp(ap("a"), CompareOp::Eq, s(expected)),
                "{lit}"
            );
        }
    }

    #[test]
    fn bad_strings() {
        assert_eq!(
            err(r#"a eq "abc"#),
            FilterError::UnterminatedString { pos: 5 }
        );
        assert_eq!(
            err(r#"a eq "abc\"#),
            FilterError::UnterminatedString { pos: 5 }
        );
        assert_eq!(
            err(r#"a eq "\u12"#),
            FilterError::UnterminatedString { pos: 5 }
        );
        assert_eq!(
            err(r#"a eq "\ud800"#),
            FilterError::UnterminatedString { pos: 5 }
        );
        for lit in [
            r#""\x""#,
            r#""\u12""#,
            r#""\uZZZZ""#,
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            r#""\ud800\n""#,
            r#""\'""#,
        ] {
            let e = err(&format!("a eq {lit}"));
            assert!(
                matches!(e, FilterError::BadEscape { pos: 6, .. }),
                "{lit}: {e:?}"
            );
        }
        assert_eq!(
            err("a eq \"x\ty\""),
            FilterError::ControlChar { pos: 7, code: 9 }
        );
        assert_eq!(err("a eq 'x'"), FilterError::BadChar { pos: 5, ch: '\'' });
    }

    // --- Entra ID form and value paths ------------------------------------------------------------

    #[test]
    fn entra_sub_attribute_after_value_path() {
        let work = cmp(ap("type"), CompareOp::Eq, s("work"));
        assert_eq!(
            parse(r#"emails[type eq "work"].value eq "a@b.c""#),
            vp(
                "emails",
                and(work.clone(), cmp(ap("value"), CompareOp::Eq, s("a@b.c")))
            )
        );
        assert_eq!(
            parse(r#"emails[type eq "work"].value pr"#),
            vp("emails", and(work.clone(), pr("value")))
        );
        // The bracketed filter stays grouped.
        assert_eq!(
            parse(r#"emails[type eq "work" or type eq "home"].value co "@x" and active eq true"#),
            and(
                vp(
                    "emails",
                    and(
                        or(work.clone(), cmp(ap("type"), CompareOp::Eq, s("home"))),
                        cmp(ap("value"), CompareOp::Co, s("@x"))
                    )
                ),
                cmp(ap("active"), CompareOp::Eq, CompValue::Bool(true))
            )
        );
        assert_eq!(
            parse(r#"(emails[type eq "work"] . value eq "x")"#),
            vp("emails", and(work, cmp(ap("value"), CompareOp::Eq, s("x"))))
        );
        // A sub-attribute alone is not a filter.
        assert!(matches!(
            err(r#"emails[type eq "work"].value"#),
            FilterError::Unexpected { .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "work"]."#),
            FilterError::Unexpected { .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "work"].value.x pr"#),
            FilterError::BadAttrPath { .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "work"].value xx "a""#),
            FilterError::UnknownOperator { .. }
        ));
    }

    #[test]
    fn value_path_forms() {
        assert_eq!(
            parse(r#"emails[not (type eq "work")]"#),
            vp("emails", not(cmp(ap("type"), CompareOp::Eq, s("work"))))
        );
        assert_eq!(
            parse(r#"emails[(type eq "a" or type eq "b") and primary eq true]"#),
            vp(
                "emails",
                and(
                    or(
                        cmp(ap("type"), CompareOp::Eq, s("a")),
                        cmp(ap("type"), CompareOp::Eq, s("b"))
                    ),
                    cmp(ap("primary"), CompareOp::Eq, CompValue::Bool(true))
                )
            )
        );
        assert_eq!(
            parse(&format!("{ENTERPRISE}:emails[value pr]")),
            Filter::ValuePath {
                attr: ap_urn(ENTERPRISE, "emails", None),
                filter: Box::new(pr("value"))
            }
        );
        assert_eq!(
            parse("not (emails[value pr])"),
            not(vp("emails", pr("value")))
        );
    }

    #[test]
    fn bad_value_paths() {
        assert_eq!(
            err(r#"emails[type[value pr] pr]"#),
            FilterError::NestedValuePath { pos: 11 }
        );
        assert!(matches!(
            err(r#"emails[(x[value pr])]"#),
            FilterError::NestedValuePath { .. }
        ));
        for inner in ["emails.type eq \"w\"", &format!("{ENTERPRISE}:x pr")] {
            assert!(
                matches!(
                    err(&format!("emails[{inner}]")),
                    FilterError::BadAttrPath { pos: 7, .. }
                ),
                "{inner}"
            );
        }
        assert!(matches!(
            err("name.givenName[value pr]"),
            FilterError::BadAttrPath { pos: 0, .. }
        ));
        assert!(matches!(
            err("emails[]"),
            FilterError::Unexpected { pos: 7, .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "x""#),
            FilterError::Unexpected { pos: 18, .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "x")"#),
            FilterError::Unexpected { pos: 18, .. }
        ));
        assert!(matches!(
            err(r#"emails[type eq "x"] eq "y""#),
            FilterError::Unexpected { pos: 20, .. }
        ));
    }

    // --- errors ----------------------------------------------------------------------------

    #[test]
    fn empty_input() {
        assert_eq!(err(""), FilterError::Empty);
        assert_eq!(err(" \t\r\n "), FilterError::Empty);
        assert_eq!(path_err(""), FilterError::Empty);
        assert_eq!(path_err("   "), FilterError::Empty);
    }

    #[test]
    fn unknown_operator() {
        assert_eq!(
            err(r#"userName xx "a""#),
            FilterError::UnknownOperator {
                pos: 9,
                found: "xx".into()
            }
        );
        assert_eq!(
            err(r#"userName equals "a""#),
            FilterError::UnknownOperator {
                pos: 9,
                found: "equals".into()
            }
        );
        assert!(matches!(
            err(r#"userName = "a""#),
            FilterError::BadChar { pos: 9, ch: '=' }
        ));
    }

    #[test]
    fn missing_parts() {
        assert_eq!(
            err("userName eq"),
            FilterError::Unexpected {
                pos: 11,
                found: "end of input".into(),
                expected: EXPECTED_VALUE
            }
        );
        assert_eq!(
            err("userName eq )"),
            FilterError::Unexpected {
                pos: 12,
                found: "`)`".into(),
                expected: EXPECTED_VALUE
            }
        );
        assert_eq!(
            err("userName"),
            FilterError::Unexpected {
                pos: 8,
                found: "end of input".into(),
                expected: EXPECTED_OPERATOR
            }
        );
        assert!(matches!(
            err(r#"userName "x""#),
            FilterError::Unexpected { pos: 9, .. }
        ));
        assert!(matches!(
            err("a pr and"),
            FilterError::Unexpected { pos: 8, .. }
        ));
        assert_eq!(
            err("a pr or or b pr"),
            FilterError::Unexpected {
                pos: 8,
                found: "`or`".into(),
                expected: "an attribute name, `(` or `not`"
            }
        );
        assert!(matches!(err("and"), FilterError::Unexpected { pos: 0, .. }));
        assert!(matches!(
            err("a pr and and"),
            FilterError::Unexpected { pos: 9, .. }
        ));
        assert!(matches!(err(r#"eq "x""#), FilterError::Unexpected { .. }));
        assert!(matches!(
            err(r#""x" eq a"#),
            FilterError::Unexpected { pos: 0, .. }
        ));
    }

    #[test]
    fn not_requires_parentheses() {
        assert_eq!(
            err("not title pr"),
            FilterError::Unexpected {
                pos: 4,
                found: "`title`".into(),
                expected: "`(` after `not`"
            }
        );
        assert!(matches!(
            err("a pr and not"),
            FilterError::Unexpected { pos: 12, .. }
        ));
        assert!(matches!(
            err("not (a pr"),
            FilterError::Unexpected { pos: 9, .. }
        ));
    }

    #[test]
    fn unbalanced_parentheses() {
        assert_eq!(
            err("(a pr"),
            FilterError::Unexpected {
                pos: 5,
                found: "end of input".into(),
                expected: "`)`, `and` or `or`"
            }
        );
        assert_eq!(
            err("a pr)"),
            FilterError::Unexpected {
                pos: 4,
                found: "`)`".into(),
                expected: "`and`, `or` or end of input"
            }
        );
        assert!(matches!(err("((a pr)"), FilterError::Unexpected { .. }));
        assert!(matches!(
            err("(a pr))"),
            FilterError::Unexpected { pos: 6, .. }
        ));
        assert!(matches!(
            err(")(a pr"),
            FilterError::Unexpected { pos: 0, .. }
        ));
        assert!(matches!(err("()"), FilterError::Unexpected { pos: 1, .. }));
        assert!(matches!(
            err("(a pr]"),
            FilterError::Unexpected { pos: 5, .. }
        ));
    }

    #[test]
    fn trailing_tokens() {
        assert!(matches!(
            err("a pr b pr"),
            FilterError::Unexpected { pos: 5, .. }
        ));
        assert!(matches!(
            err(r#"a eq "x" "y""#),
            FilterError::Unexpected { pos: 9, .. }
        ));
        assert!(matches!(
            err("a pr ."),
            FilterError::Unexpected { pos: 5, .. }
        ));
        assert!(matches!(
            err("a pr [x pr]"),
            FilterError::Unexpected { pos: 5, .. }
        ));
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            err("userName eq bjensen").to_string(),
            "invalid comparison value `bjensen` at offset 12; expected a double-quoted string, \
             a number, true, false or null"
        );
        assert_eq!(
            err("(a pr").to_string(),
            "unexpected end of input at offset 5; expected `)`, `and` or `or`"
        );
        assert_eq!(
            err(r#"a eq "x"#).to_string(),
            "unterminated string starting at offset 5"
        );
        let long_word = "x".repeat(100);
        let msg = err(&format!("a pr {long_word}")).to_string();
        assert!(msg.len() < 150, "{msg}");
        let long_string = format!("a pr \"{}\"", "y".repeat(100));
        let msg = err(&long_string).to_string();
        assert!(msg.contains('…') && msg.len() < 150, "{msg}");
    }

    // --- limits ------------------------------------------------------------------------------

    #[test]
    fn length_limit() {
        // Exactly at the limit is fine.
        let prefix = "a eq \"";
        let at_limit = format!(
            "{prefix}{}\"",
            "x".repeat(MAX_FILTER_LEN - prefix.len() - 1)
        );
        assert_eq!(at_limit.len(), MAX_FILTER_LEN);
        assert!(parse_filter(&at_limit).is_ok());
        let over = format!("{prefix}{}\"", "x".repeat(MAX_FILTER_LEN - prefix.len()));
        let too_long = FilterError::TooLong {
            len: MAX_FILTER_LEN + 1,
            max: MAX_FILTER_LEN,
        };
        assert_eq!(err(&over), too_long);
        // Whatever is cut off (a string, a number, a word, whitespace), it's "too long".
        let filler = "a pr and ".repeat(MAX_FILTER_LEN / 9);
        for tail in [
            "\"abcdef\"",
            "12345678",
            "abcdefgh",
            "        ",
            "a pr",
            "\"\\u00e9\"",
        ] {
            let input = format!("{filler}{tail}{tail}");
            assert!(input.len() > MAX_FILTER_LEN);
            assert!(
                matches!(err(&input), FilterError::TooLong { .. }),
                "{tail}: {:?}",
                err(&input)
            );
        }
        // Cutting inside a multi-byte character must not panic.
        for pad in 0..4 {
            let input = format!("{}{}", " ".repeat(MAX_FILTER_LEN - 8 + pad), "\"éééééééé\"");
            assert!(matches!(err(&input), FilterError::TooLong { .. }));
        }
        assert!(matches!(
            path_err(&"a".repeat(MAX_FILTER_LEN + 1)),
            FilterError::TooLong { .. }
        ));
        assert!(matches!(
            err(&" ".repeat(100_000)),
            FilterError::TooLong { .. }
        ));
    }

    fn nested_parens(n: usize) -> String {
        format!("{}a pr{}", "(".repeat(n), ")".repeat(n))
    }

    #[test]
    fn depth_limit_parentheses() {
        assert_eq!(parse(&nested_parens(MAX_FILTER_DEPTH)), pr("a"));
        assert_eq!(
            err(&nested_parens(MAX_FILTER_DEPTH + 1)),
            FilterError::TooDeep {
                pos: MAX_FILTER_DEPTH,
                max: MAX_FILTER_DEPTH
            }
        );
        // Far beyond both limits: the depth problem comes first, and nothing overflows.
        for n in [10_000, 1_000_000] {
            assert!(matches!(
                err(&nested_parens(n)),
                FilterError::TooDeep { .. }
            ));
            assert!(matches!(err(&"(".repeat(n)), FilterError::TooDeep { .. }));
            assert!(matches!(err(&"[".repeat(n)), FilterError::TooDeep { .. }));
            assert!(matches!(
                err(&"not (".repeat(n)),
                FilterError::TooDeep { .. }
            ));
            assert!(matches!(
                path_err(&"a[".repeat(n)),
                FilterError::TooDeep { .. }
            ));
        }
    }

    #[test]
    fn depth_limit_not() {
        let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
        let mut expected = pr("a");
        for _ in 0..MAX_FILTER_DEPTH {
            expected = not(expected);
        }
        assert_eq!(parse(&nots(MAX_FILTER_DEPTH)), expected);
        assert!(matches!(
            err(&nots(MAX_FILTER_DEPTH + 1)),
            FilterError::TooDeep { .. }
        ));
    }

    #[test]
    fn depth_limit_chains() {
        // n terms of a left-associative chain make a tree n - 1 levels deep.
        for kw in ["and", "or"] {
            let chain = |n: usize| vec!["a pr"; n].join(&format!(" {kw} "));
            assert!(parse_filter(&chain(MAX_FILTER_DEPTH + 1)).is_ok());
            assert!(matches!(
                err(&chain(MAX_FILTER_DEPTH + 2)),
                FilterError::TooDeep { .. }
            ));
            // Long chains within the length limit are rejected, not recursed into.
            assert!(matches!(err(&chain(800)), FilterError::TooDeep { .. }));
        }
        // Inside a value path the ValuePath node counts as a level too.
        let inner = vec!["v pr"; MAX_FILTER_DEPTH].join(" and ");
        assert!(parse_filter(&format!("x[{inner}]")).is_ok());
        let inner = vec!["v pr"; MAX_FILTER_DEPTH + 1].join(" and ");
        assert!(matches!(
            err(&format!("x[{inner}]")),
            FilterError::TooDeep { .. }
        ));
        // ... and so does the Entra rewrite's `and`.
        let inner = vec!["v pr"; MAX_FILTER_DEPTH - 1].join(" and ");
        assert!(parse_filter(&format!("x[{inner}].v pr")).is_ok());
        let inner = vec!["v pr"; MAX_FILTER_DEPTH].join(" and ");
        assert!(matches!(
            err(&format!("x[{inner}].v pr")),
            FilterError::TooDeep { .. }
        ));
    }

    // --- PATCH paths ---------------------------------------------------------------------------

    #[test]
    fn patch_paths() {
        let work = cmp(ap("type"), CompareOp::Eq, s("work"));
        assert_eq!(
            path("members"),
            PatchPath {
                attr: ap("members"),
                filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            path("name.familyName"),
            PatchPath {
                attr: ap_sub("name", "familyName"),
                filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            path(r#"emails[type eq "work"]"#),
            PatchPath {
                attr: ap("emails"),
                filter: Some(work.clone()),
                sub_attr: None
            }
        );
        assert_eq!(
            path(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: ap("emails"),
                filter: Some(work.clone()),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            PatchPath {
                attr: ap("members"),
                filter: Some(cmp(
                    ap("value"),
                    CompareOp::Eq,
                    s("2819c223-7f76-453a-919d-413861904646")
                )),
                sub_attr: None
            }
        );
        assert_eq!(
            path(r#"addresses[type eq "work"].streetAddress"#),
            PatchPath {
                attr: ap("addresses"),
                filter: Some(work.clone()),
                sub_attr: Some("streetAddress".into())
            }
        );
        assert_eq!(
            path(&format!("{ENTERPRISE}:employeeNumber")),
            PatchPath {
                attr: ap_urn(ENTERPRISE, "employeeNumber", None),
                filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            path(&format!("{ENTERPRISE}:manager.value")),
            PatchPath {
                attr: ap_urn(ENTERPRISE, "manager", Some("value")),
                filter: None,
                sub_attr: None
            }
        );
        assert_eq!(
            path(&format!("{CORE_USER}:name.givenName")),
            PatchPath {
                attr: ap_urn(CORE_USER, "name", Some("givenName")),
                filter: None,
                sub_attr: None
            }
        );
        // Bare schema URN: the last segment comes out as the attribute (caller resolves).
        assert_eq!(
            path(ENTERPRISE),
            PatchPath {
                attr: ap_urn(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0",
                    "User",
                    None
                ),
                filter: None,
                sub_attr: None
            }
        );
        // Whitespace and complex filters are fine.
        assert_eq!(
            path(r#"  emails [ type eq "work" and primary eq true ] .value "#),
            PatchPath {
                attr: ap("emails"),
                filter: Some(and(
                    work,
                    cmp(ap("primary"), CompareOp::Eq, CompValue::Bool(true))
                )),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            path(r#"members[$ref eq "x"]"#).filter,
            Some(cmp(ap("$ref"), CompareOp::Eq, s("x")))
        );
    }

    #[test]
    fn bad_patch_paths() {
        for input in [
            "members junk",
            "members pr",
            r#"userName eq "x""#,
            r#"emails[type eq "work"]x"#,
            r#"emails[type eq "work"].value.x"#,
            r#"emails[type eq "work"].value extra"#,
            r#"emails[type eq "work"]."#,
            r#"emails[type eq "work"][x pr]"#,
            r#"emails[type eq "work""#,
            r#"emails[type[x pr] pr]"#,
            r#"emails[]"#,
            r#"name.familyName[x pr]"#,
            "name.familyName.x",
            "(members)",
            "members)",
            "\"members\"",
            "urn:x",
            "urn:a:b:",
            "1abc",
            "members .value",
        ] {
            let e = path_err(input);
            assert!(
                !matches!(e, FilterError::Empty | FilterError::TooLong { .. }),
                "{input}"
            );
        }
        assert_eq!(
            path_err("members junk"),
            FilterError::Unexpected {
                pos: 8,
                found: "`junk`".into(),
                expected: "`[` or end of path"
            }
        );
    }

    // --- round trips and robustness ------------------------------------------------------------

    /// A tiny deterministic pseudo-random generator (64-bit LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    fn random_string(rng: &mut Lcg) -> String {
        let chars = [
            'a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u{1}', 'é', '😀', '(', ']', '\'',
        ];
        (0..rng.below(6)).map(|_| *rng.pick(&chars)).collect()
    }

    fn random_value(rng: &mut Lcg) -> CompValue {
        match rng.below(6) {
            0 => CompValue::Null,
            1 => CompValue::Bool(rng.below(2) == 0),
            2 => CompValue::Number(Number::from(rng.next() as i64 - (1 << 30))),
            3 => CompValue::Number(
                Number::from_f64((rng.below(2000) as f64 - 1000.0) / 8.0).expect("finite"),
            ),
            _ => CompValue::String(random_string(rng)),
        }
    }

    fn random_attr(rng: &mut Lcg, in_value_path: bool) -> AttrPath {
        let names = [
            "userName", "name", "emails", "type", "value", "x-1", "$ref", "pr", "not", "and",
        ];
        let attr = rng.pick(&names).to_string();
        if in_value_path {
            return ap(&attr);
        }
        AttrPath {
            urn: (rng.below(4) == 0)
                .then(|| rng.pick(&[ENTERPRISE, CORE_USER, "urn:x:y"]).to_string()),
            attr,
            sub_attr: (rng.below(3) == 0).then(|| rng.pick(&names).to_string()),
        }
    }

    fn random_filter(rng: &mut Lcg, depth: usize, in_value_path: bool) -> Filter {
        let ops = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        let choice = if depth == 0 {
            rng.below(2)
        } else {
            rng.below(6)
        };
        match choice {
            0 => Filter::Present(random_attr(rng, in_value_path)),
            1 => Filter::Compare(
                random_attr(rng, in_value_path),
                *rng.pick(&ops),
                random_value(rng),
            ),
            2 => and(
                random_filter(rng, depth - 1, in_value_path),
                random_filter(rng, depth - 1, in_value_path),
            ),
            3 => or(
                random_filter(rng, depth - 1, in_value_path),
                random_filter(rng, depth - 1, in_value_path),
            ),
            4 => not(random_filter(rng, depth - 1, in_value_path)),
            _ if in_value_path => pr("value"),
            _ => Filter::ValuePath {
                attr: ap(rng.pick::<&str>(&["emails", "members", "not"])),
                filter: Box::new(random_filter(rng, depth - 1, true)),
            },
        }
    }

    #[test]
    fn display_round_trips_random_trees() {
        let mut rng = Lcg(42);
        for _ in 0..3000 {
            let f = random_filter(&mut rng, 6, false);
            let text = f.to_string();
            assert_eq!(parse_filter(&text), Ok(f), "{text}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // Biased towards bytes that mean something to the grammar, plus arbitrary ones.
        let interesting = b"()[]. \t\"\\-+0123456789eEaAnNdDoOrRtTpPuU:$'/=_\n";
        let mut rng = Lcg(7);
        for _ in 0..20_000 {
            let len = rng.below(48);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.next() as u8
                    } else {
                        *rng.pick(interesting)
                    }
                })
                .collect();
            let input = String::from_utf8_lossy(&bytes);
            let _ = parse_filter(&input);
            let _ = parse_path(&input);
        }
    }

    #[test]
    fn random_token_soup_never_panics_and_round_trips() {
        let pieces = [
            "(",
            ")",
            "[",
            "]",
            ".",
            " ",
            "  ",
            "\t",
            "not",
            "NOT",
            "and",
            "or",
            "Or",
            "pr",
            "eq",
            "co",
            "gt",
            "xx",
            "a",
            "emails",
            "type",
            "value",
            "$ref",
            "name.givenName",
            "urn:a:b:c",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "\"x\"",
            "\"a\\\"b\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"",
            "\\",
            "1",
            "-2.5e3",
            "01",
            "true",
            "null",
            "False",
            "'",
            ":",
            "é",
            "a pr",
            "b eq 1",
            "c co \"x\"",
            " and ",
            " or ",
            "not (",
            "emails[",
            "x pr]",
            "d ne null)",
        ];
        let mut rng = Lcg(99);
        let mut parsed = 0;
        for _ in 0..30_000 {
            let n = rng.below(14);
            let mut input = String::new();
            for _ in 0..n {
                input.push_str(rng.pick::<&str>(&pieces));
                if rng.below(2) == 0 {
                    input.push(' ');
                }
            }
            if let Ok(f) = parse_filter(&input) {
                parsed += 1;
                let text = f.to_string();
                assert_eq!(parse_filter(&text), Ok(f), "{input:?} -> {text:?}");
            }
            if let Ok(PatchPath {
                filter: Some(f), ..
            }) = parse_path(&input)
            {
                let text = f.to_string();
                assert_eq!(parse_filter(&text), Ok(f), "{input:?}");
            }
        }
        // Make sure the soup actually exercises the success paths too.
        assert!(parsed > 100, "only {parsed} inputs parsed");
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(
            parse(r#"  userName   EQ "a\u00e9\n"  AnD ( x Pr OR y pr ) "#).to_string(),
            r#"userName eq "aé\n" and (x pr or y pr)"#
        );
        assert_eq!(
            parse(r#"emails[type eq "work"].value eq "a@b.c""#).to_string(),
            r#"emails[type eq "work" and value eq "a@b.c"]"#
        );
        assert_eq!(
            parse("a pr and (b pr and c pr)").to_string(),
            "a pr and (b pr and c pr)"
        );
        assert_eq!(parse("NOT(a pr)").to_string(), "not (a pr)");
        assert_eq!(parse("a eq 1.50").to_string(), "a eq 1.5");
    }
}
