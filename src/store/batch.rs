//! Several write statements sent as one. On SQLite every statement is a round trip to
//! sqlx-sqlite's worker thread (two context switches), which dominated the cost of a write;
//! a batch goes as one multi-statement command there. PostgreSQL runs the statements one
//! after another on its connection (no thread hop to save).

use sqlx::AnyConnection;

use super::Dialect;
use super::filter_sql::Arg;
use crate::core::events::EventDraft;
use crate::core::model::{Actor, OrgId};
use crate::core::now;

#[derive(Default)]
pub struct Batch {
    stmts: Vec<(String, Vec<Arg>)>,
}

/// Renumbers `$n` placeholders by `offset` (batch statements hold no `$` in literals).
fn shift(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + offset)),
            Err(_) => {
                out.push('$');
                out.push_str(&digits);
            }
        }
    }
    out
}

impl Batch {
    pub fn push(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.stmts.push((sql.into(), args));
    }

    /// Appends the outbox row of an event.
    pub fn event(&mut self, org: Option<&OrgId>, actor: &Actor, ev: &EventDraft) {
        self.push(
            "INSERT INTO events (org_id, kind, resource_type, resource_id, actor_kind, actor_id, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![
                Arg::opt(org.map(|o| o.as_str().to_owned())),
                Arg::Str(ev.kind.to_owned()),
                Arg::Str(ev.resource_type.to_owned()),
                Arg::Str(ev.resource_id.clone()),
                Arg::Str(actor.kind().to_owned()),
                Arg::Str(actor.id()),
                Arg::Str(ev.data.to_string()),
                Arg::Str(now()),
            ],
        );
    }

    /// The statements as one SQLite command, with `before` and `after` statements (fixed
    /// SQL without placeholders) around them.
    pub fn joined(self, before: Option<&str>, after: Option<&str>) -> (String, Vec<Arg>) {
        let mut sql = String::new();
        let mut args = Vec::new();
        if let Some(b) = before {
            sql.push_str(b);
            sql.push_str(";\n");
        }
        for (s, a) in self.stmts {
            sql.push_str(&shift(&s, args.len()));
            sql.push_str(";\n");
            args.extend(a);
        }
        if let Some(a) = after {
            sql.push_str(a);
            sql.push_str(";\n");
        }
        (sql, args)
    }

    pub async fn run(self, d: Dialect, c: &mut AnyConnection) -> Result<(), sqlx::Error> {
        match d {
            Dialect::Sqlite => {
                let (sql, args) = self.joined(None, None);
                if sql.is_empty() {
                    return Ok(());
                }
                super::sql_store::bind_all(sqlx::query(&sql), &args)
                    .execute(&mut *c)
                    .await?;
            }
            Dialect::Postgres => {
                for (s, a) in &self.stmts {
                    super::sql_store::bind_all(sqlx::query(s), a)
                        .execute(&mut *c)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::shift;

    #[test]
    fn placeholders_are_renumbered() {
        assert_eq!(shift("a = $1 AND b = $12", 3), "a = $4 AND b = $15");
        assert_eq!(shift("x = $1", 0), "x = $1");
        assert_eq!(shift("CAST($2 AS JSONB)", 10), "CAST($12 AS JSONB)");
    }
}
