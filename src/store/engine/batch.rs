//! Several write statements sent as one. On SQLite every statement is a round trip to
//! sqlx-sqlite's worker thread (two context switches), which dominated the cost of a write;
//! a batch goes as one multi-statement command there. PostgreSQL runs the statements one
//! after another on its connection (no thread hop to save).

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::Arg;
use crate::core::audit::{self, AuditDraft, GENESIS};
use crate::core::context;
use crate::core::events::{EventDraft, EventKind};
use crate::core::model::{Actor, OrgId};
use crate::core::now;

/// Columns of an event row, in the order `event` and `events_select` fill them.
const EVENT_COLS: &str = "INSERT INTO events (org_id, kind, resource_type, resource_id, actor_kind, actor_id, \
                          actor, request_id, received_at, data, created_at)";

#[derive(Debug, Clone)]
pub struct PendingAudit {
    chain: String,
    actor: Actor,
    draft: AuditDraft,
}

/// One statement of a batch.
#[derive(Clone)]
enum Stmt {
    Sql(String, Vec<Arg>),
    /// One event row: the 11 values of `EVENT_COLS`.
    Event(Vec<Arg>),
    /// Event rows from a query. SQLite runs `insert` (`INSERT … SELECT`) in place. PostgreSQL
    /// runs `select` (`resource_id`, `data` per row) in place over the first `query_args` of
    /// `args`, and inserts the rows at the end, with the write's other events.
    Events {
        insert: String,
        select: String,
        args: Vec<Arg>,
        query_args: usize,
    },
    /// A precondition of the write, run in place: a SELECT of one row whose column `v` is
    /// NULL when the write must not happen, and otherwise a value for the writer (see
    /// `GroupCommit::submit`, the only way such a write runs on SQLite). On PostgreSQL it
    /// may also be a write that returns `v` when the precondition holds, and otherwise no
    /// row (having written nothing): `UPDATE … WHERE <precondition> RETURNING … AS v`.
    Check(String, Vec<Arg>),
    /// A write whose rows each make an event (`Batch::write_with_events`): on PostgreSQL
    /// `pg` over `args`, returning `rid` and `data` per row written, the event constants in
    /// `consts` (as `Events`' last nine arguments); on SQLite the statements `sqlite`.
    WriteEvents {
        pg: String,
        args: Vec<Arg>,
        consts: Vec<Arg>,
        sqlite: Vec<Stmt>,
    },
}

/// A set-based write with an event per row it writes (`Batch::write_with_events`).
pub struct EventfulWrite<'a> {
    pub kind: EventKind,
    /// The event's `resource_id` and `data` expressions over the rows `from` selects.
    pub resource_id: &'a str,
    pub data: &'a str,
    /// `FROM …`: the rows the write will write, over `args` (SQLite reads them first).
    pub from: &'a str,
    /// The write itself, over `args`.
    pub write: &'a str,
    /// `RETURNING <resource_id> AS rid, <data> AS data` in the terms of the written table
    /// (PostgreSQL: the write and its events' rows are one statement).
    pub returning: &'a str,
    pub args: Vec<Arg>,
}

#[derive(Default, Clone)]
pub struct Batch {
    stmts: Vec<Stmt>,
    audits: Vec<PendingAudit>,
    /// The audit entry of an action that gave none explicitly: its first event.
    derived: Option<PendingAudit>,
    events: bool,
    /// No statement reads or touches what another writes (see `independent`).
    independent: bool,
}

/// The last entry of each audit chain a transaction has seen: (seq, hash).
pub type AuditHeads = HashMap<String, (i64, String)>;

/// A condition an `EventfulWrite` puts in its `WHERE`, true as written. On PostgreSQL a batch
/// of one precondition (`Batch::check`) and one such write runs as one statement: the gate
/// becomes "the precondition held" (the check's `UPDATE … RETURNING` gave a row), so a change
/// whose precondition fails writes nothing, as when the check ran alone first.
pub const GATE: &str = "/* gate */ TRUE";

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

fn chain_of(org: Option<&OrgId>) -> String {
    org.map_or_else(
        || audit::DEPLOYMENT_CHAIN.to_owned(),
        |o| o.as_str().to_owned(),
    )
}

/// The actor and request columns of an event row.
fn provenance_args(actor: &Actor) -> Vec<Arg> {
    let origin = context::current();
    vec![
        Arg::Str(actor.kind().to_owned()),
        Arg::Str(actor.id()),
        Arg::Str(actor.to_json().to_string()),
        Arg::opt(origin.request_id),
        Arg::opt(origin.received_at.map(crate::core::format_time)),
    ]
}

impl Batch {
    pub fn push(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.stmts.push(Stmt::Sql(sql.into(), args));
    }

    /// Declares that no statement of the batch reads, or touches a row, that another of its
    /// statements writes, so that they may run as one statement: on PostgreSQL a write
    /// that reads nothing first then takes one round trip (`one_pg`), not a BEGIN, one per
    /// statement and a COMMIT.
    pub fn independent(&mut self) {
        self.independent = true;
    }

    /// PostgreSQL: an independent batch of plain INSERT, UPDATE and DELETE statements and
    /// event rows (with its audit entries) as one statement of data-modifying CTEs, which
    /// commits on its own; it returns the transaction's id as text (column `tx`). Every
    /// part sees the same snapshot, which is why only `independent` batches qualify.
    /// `None` (the batch left as it was): it cannot go as one.
    pub fn one_pg(&mut self) -> Option<(String, Vec<Arg>)> {
        let plain = |sql: &str| {
            let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
            matches!(head.as_str(), "INSERT" | "UPDATE" | "DELETE")
        };
        let one = self.independent
            && self.stmts.iter().all(|st| match st {
                Stmt::Sql(s, _) => plain(s),
                Stmt::Event(_) => true,
                Stmt::Events { .. } | Stmt::Check(..) | Stmt::WriteEvents { .. } => false,
            });
        if !one {
            return None;
        }
        let mut parts = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut events: Vec<Vec<Arg>> = Vec::new();
        for st in std::mem::take(&mut self.stmts) {
            match st {
                Stmt::Sql(sql, a) => {
                    parts.push(shift(&sql, args.len()));
                    args.extend(a);
                }
                Stmt::Event(a) => events.push(a),
                Stmt::Events { .. } | Stmt::Check(..) | Stmt::WriteEvents { .. } => {
                    unreachable!("checked above")
                }
            }
        }
        let audits = audit_pending_args(&self.pending_audits());
        push_appends(&mut parts, &mut args, &events, &audits);
        Some((returning_xid(&parts), args))
    }

    /// Appends a precondition (see `Stmt::Check`): the write is kept only if it holds.
    pub fn check(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.stmts.push(Stmt::Check(sql.into(), args));
    }

    /// Appends another batch's statements (SQLite: writes of one shape sent together; both
    /// already linked).
    pub fn append(&mut self, other: Batch) {
        self.stmts.extend(other.stmts);
        self.audits.extend(other.audits);
        self.events |= other.events;
    }

    /// What the batch's command text depends on: its statements' SQL and number of
    /// arguments, and the audit entries it will link. Batches of one shape make the same
    /// text, and so do runs of as many of them (see `GroupCommit`).
    pub fn shape(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        fn hash_stmts(stmts: &[Stmt], h: &mut impl Hasher) {
            for st in stmts {
                match st {
                    Stmt::Sql(s, a) => (0u8, s, a.len()).hash(h),
                    Stmt::Event(a) => (1u8, a.len()).hash(h),
                    Stmt::Events { insert, args, .. } => (2u8, insert, args.len()).hash(h),
                    Stmt::Check(s, a) => (3u8, s, a.len()).hash(h),
                    Stmt::WriteEvents { sqlite, .. } => {
                        4u8.hash(h);
                        hash_stmts(sqlite, h);
                    }
                }
            }
        }
        hash_stmts(&self.stmts, &mut h);
        let audits = if self.audits.is_empty() {
            usize::from(self.derived.is_some())
        } else {
            self.audits.len()
        };
        audits.hash(&mut h);
        h.finish()
    }

    /// How many preconditions the batch holds.
    pub fn checks(&self) -> usize {
        self.stmts
            .iter()
            .filter(|s| matches!(s, Stmt::Check(..)))
            .count()
    }

    /// Whether the batch appends events (its commit wakes event consumers).
    pub fn has_events(&self) -> bool {
        self.events
    }

    /// Appends the outbox row of an event.
    pub fn event(&mut self, org: Option<&OrgId>, actor: &Actor, ev: &EventDraft) {
        self.events = true;
        if self.derived.is_none() {
            self.derived = Some(PendingAudit {
                chain: chain_of(org),
                actor: actor.clone(),
                draft: AuditDraft::new(
                    ev.kind.as_str(),
                    ev.resource_type(),
                    &ev.resource_id,
                    ev.data.clone(),
                ),
            });
        }
        let mut args = vec![
            Arg::opt(org.map(|o| o.as_str().to_owned())),
            Arg::Str(ev.kind.as_str().to_owned()),
            Arg::Str(ev.resource_type().to_owned()),
            Arg::Str(ev.resource_id.clone()),
        ];
        args.extend(provenance_args(actor));
        args.push(Arg::Str(ev.data.to_string()));
        args.push(Arg::Str(now()));
        self.stmts.push(Stmt::Event(args));
    }

    /// Appends one event per row of `from` (a `FROM … WHERE …` clause over `args`), set-based:
    /// `resource_id` and `data` are SQL expressions over those rows (`data` JSON text).
    #[allow(clippy::too_many_arguments)]
    pub fn events_select(
        &mut self,
        org: &OrgId,
        actor: &Actor,
        kind: EventKind,
        resource_id: &str,
        data: &str,
        from: &str,
        mut args: Vec<Arg>,
    ) {
        self.events = true;
        let n = args.len();
        let p = |i: usize| format!("${}", n + i);
        let select = format!("SELECT {resource_id} AS rid, {data} AS data {from}");
        let insert = format!(
            "{EVENT_COLS} SELECT {}, {}, {}, {resource_id}, {}, {}, {}, {}, {}, {data}, {} {from}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9)
        );
        args.push(Arg::Str(org.as_str().to_owned()));
        args.push(Arg::Str(kind.as_str().to_owned()));
        args.push(Arg::Str(kind.resource_type().to_owned()));
        args.extend(provenance_args(actor));
        args.push(Arg::Str(now()));
        self.stmts.push(Stmt::Events {
            insert,
            select,
            args,
            query_args: n,
        });
    }

    /// A set-based write and an event per row it writes. SQLite: the events from the rows
    /// `w.from` selects, then the write (`events_select`, `push`). PostgreSQL: the write
    /// with `w.returning`, one statement that gives the events' rows; when it ends the batch,
    /// one statement with the batch's event and audit inserts too (`run_pg`).
    pub fn write_with_events(&mut self, org: &OrgId, actor: &Actor, w: EventfulWrite<'_>) {
        let mut sqlite = Batch::default();
        sqlite.events_select(
            org,
            actor,
            w.kind,
            w.resource_id,
            w.data,
            w.from,
            w.args.clone(),
        );
        sqlite.push(w.write, w.args.clone());
        let consts = match sqlite.stmts.first() {
            Some(Stmt::Events {
                args, query_args, ..
            }) => args[*query_args..].to_vec(),
            _ => Vec::new(),
        };
        self.events = true;
        self.stmts.push(Stmt::WriteEvents {
            pg: format!("{} {}", w.write, w.returning),
            args: w.args,
            consts,
            sqlite: sqlite.stmts,
        });
    }

    /// The audit entry of this action (instead of one derived from its first event).
    pub fn audit(&mut self, org: Option<&OrgId>, actor: &Actor, draft: AuditDraft) {
        self.audits.push(PendingAudit {
            chain: chain_of(org),
            actor: actor.clone(),
            draft,
        });
    }

    fn pending_audits(&mut self) -> Vec<PendingAudit> {
        let explicit = std::mem::take(&mut self.audits);
        if explicit.is_empty() {
            self.derived.take().into_iter().collect()
        } else {
            explicit
        }
    }

    /// The audit chains the batch's entries go to (SQLite: whose heads `link_audits` needs).
    pub fn audit_chains(&self) -> Vec<&str> {
        if self.audits.is_empty() {
            self.derived.iter().map(|p| p.chain.as_str()).collect()
        } else {
            self.audits.iter().map(|p| p.chain.as_str()).collect()
        }
    }

    /// Turns the action's audit entries into inserts linked to the chain heads, reading a
    /// head from `c` the first time a chain is seen; `heads` advances with each entry.
    pub async fn link_audits(
        &mut self,
        c: &mut AnyConnection,
        heads: &mut AuditHeads,
    ) -> Result<(), sqlx::Error> {
        let pending = self.pending_audits();
        if pending.is_empty() {
            return Ok(());
        }
        for p in pending {
            let head = match heads.get(&p.chain) {
                Some(h) => h.clone(),
                None => audit_head(c, &p.chain).await?,
            };
            let (sql, args) = audit_insert(&p, head);
            heads.insert(p.chain.clone(), audit_new_head(&args));
            self.push(sql, args);
        }
        Ok(())
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
        let mut stmts = Vec::with_capacity(self.stmts.len());
        for st in self.stmts {
            match st {
                Stmt::WriteEvents { sqlite, .. } => stmts.extend(sqlite),
                other => stmts.push(other),
            }
        }
        for st in stmts {
            let (s, a) = match st {
                Stmt::Sql(s, a) => (s, a),
                // NULL fails the NOT NULL constraint, and with it the write.
                Stmt::Check(s, a) => (
                    format!(
                        "INSERT INTO temp.write_checks (k, v) SELECT 1, c.v FROM ({s}) AS c WHERE 1 = 1 \
                         ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING v"
                    ),
                    a,
                ),
                Stmt::Event(a) => (
                    format!("{EVENT_COLS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
                    a,
                ),
                Stmt::Events { insert, args, .. } => (insert, args),
                Stmt::WriteEvents { .. } => unreachable!("flattened above"),
            };
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

    /// Runs the batch on PostgreSQL. Nothing here waits for another write: event rows go in
    /// with no cursor and audit entries unlinked (`audit_pending`); both are sealed in
    /// commit order after commit (`seal`). Event rows are gathered as the statements run
    /// (set-based ones by reading what they would insert) and inserted together at the end,
    /// with the audit entries, in one statement. A precondition that does not hold ends it
    /// with an error `is_declined` recognises.
    pub async fn run_pg(mut self, c: &mut AnyConnection) -> Result<PgRun, sqlx::Error> {
        use super::bind_all;
        let mut rows: Vec<Vec<Arg>> = Vec::new();
        let mut checked = None;
        let mut stmts = std::mem::take(&mut self.stmts);
        // A write with events that ends the batch goes with the batch's appends.
        let last = match stmts.last() {
            Some(Stmt::WriteEvents { .. }) => stmts.pop(),
            _ => None,
        };
        let pending = self.pending_audits();
        // One precondition and one gated write: one statement (see `GATE`).
        if let (
            [Stmt::Check(check, check_args)],
            Some(Stmt::WriteEvents {
                pg, args, consts, ..
            }),
        ) = (&stmts[..], &last)
            && pg.contains(GATE)
            && pending.len() <= 500
        {
            let audits = audit_pending_args(&pending);
            return gated_write(c, check, check_args, pg, args, consts, &audits).await;
        }
        for st in stmts {
            match st {
                Stmt::Sql(s, a) => {
                    bind_all(sqlx::query(&s), &a).execute(&mut *c).await?;
                }
                Stmt::Check(s, a) => {
                    let row = bind_all(sqlx::query(&s), &a)
                        .fetch_optional(&mut *c)
                        .await?;
                    match row.map(|r| r.try_get::<Option<i64>, _>("v")).transpose()? {
                        Some(Some(v)) => checked = Some(v),
                        _ => return Err(sqlx::Error::Protocol(DECLINED.into())),
                    }
                }
                Stmt::WriteEvents {
                    pg, args, consts, ..
                } => write_rows(c, &pg, &args, &consts, &mut rows).await?,
                Stmt::Event(a) => rows.push(a),
                Stmt::Events {
                    select,
                    args,
                    query_args,
                    ..
                } => {
                    let found = bind_all(sqlx::query(&select), &args[..query_args])
                        .fetch_all(&mut *c)
                        .await?;
                    for r in found {
                        rows.push(event_row(&args[query_args..], &r)?);
                    }
                }
            }
        }
        let audits = audit_pending_args(&pending);
        if let Some(Stmt::WriteEvents {
            pg, args, consts, ..
        }) = last
        {
            if rows.is_empty() && audits.len() <= 500 * 3 {
                // The write, its events and the audit entries: one statement.
                let mut all = args;
                let mut parts = vec![pg];
                parts.push(events_of("w0", &mut all, &consts)?);
                push_appends(&mut parts, &mut all, &[], &audits);
                let row = bind_all(sqlx::query(&returning_xid(&parts)), &all)
                    .fetch_one(&mut *c)
                    .await?;
                return Ok(PgRun {
                    xid: own_xid(row)?,
                    checked,
                });
            }
            write_rows(c, &pg, &args, &consts, &mut rows).await?;
        }
        // The event rows and the audit entries: one statement (in chunks when many).
        let mut xid = None;
        let mut events = rows.chunks(500);
        let mut audit_chunks = audits.chunks(500 * 3);
        loop {
            let (ev, au) = (events.next(), audit_chunks.next());
            if ev.is_none() && au.is_none() {
                break;
            }
            let (mut parts, mut args) = (Vec::new(), Vec::new());
            push_appends(
                &mut parts,
                &mut args,
                ev.unwrap_or_default(),
                au.unwrap_or_default(),
            );
            let sql = returning_xid(&parts);
            xid = own_xid(
                bind_all(sqlx::query(&sql), &args)
                    .fetch_one(&mut *c)
                    .await?,
            )?;
        }
        Ok(PgRun { xid, checked })
    }

    /// Whether every precondition comes before every statement that writes (a write
    /// declined by its precondition then wrote nothing).
    pub fn checks_first(&self) -> bool {
        let first_write = self
            .stmts
            .iter()
            .position(|s| !matches!(s, Stmt::Check(..)))
            .unwrap_or(self.stmts.len());
        !self.stmts[first_write..]
            .iter()
            .any(|s| matches!(s, Stmt::Check(..)))
    }
}

/// What a batch run on PostgreSQL gives back.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgRun {
    /// The transaction's id if the batch appended events or audit entries, for
    /// `Sealer::committed`.
    pub xid: Option<u64>,
    /// The value the last precondition read (`Batch::check`).
    pub checked: Option<i64>,
}

const DECLINED: &str = "a write's precondition does not hold";

/// Whether a batch failed because a precondition did not hold (not because of a statement).
pub fn is_declined(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Protocol(m) if m == DECLINED)
}

/// `($1, …, $w), ($w+1, …)`: `n` rows of `w` placeholders.
pub(super) fn placeholders(n: usize, w: usize) -> String {
    (0..n)
        .map(|i| {
            let ph: Vec<String> = (1..=w).map(|j| format!("${}", i * w + j)).collect();
            format!("({})", ph.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The transaction id a `RETURNING tx` gave back.
/// The `audit_pending` values of `audits` (chain, time, tail: three each), each entry's
/// text made now, with the request's origin.
fn audit_pending_args(audits: &[PendingAudit]) -> Vec<Arg> {
    let origin = context::current();
    let mut args = Vec::with_capacity(audits.len() * 3);
    for p in audits {
        let at = now();
        let tail = audit::entry_tail(&at, &p.actor, &origin, &p.draft);
        args.extend([Arg::Str(p.chain.clone()), Arg::Str(at), Arg::Str(tail)]);
    }
    args
}

/// Adds to a statement of CTEs (`parts` over `args`) the inserts of event rows (the values
/// of `EVENT_COLS` each) and of audit entries (from `audit_pending_args`).
fn push_appends(parts: &mut Vec<String>, args: &mut Vec<Arg>, events: &[Vec<Arg>], audits: &[Arg]) {
    if !events.is_empty() {
        let values = shift(&placeholders(events.len(), 11), args.len());
        parts.push(format!("{EVENT_COLS} VALUES {values}"));
        args.extend(events.iter().flatten().cloned());
    }
    if !audits.is_empty() {
        let values = shift(&placeholders(audits.len() / 3, 3), args.len());
        parts.push(format!(
            "INSERT INTO audit_pending (chain, at, tail) VALUES {values}"
        ));
        args.extend(audits.iter().cloned());
    }
}

/// `parts` as one statement of data-modifying CTEs that returns its transaction's id as text
/// (column `tx`).
fn returning_xid(parts: &[String]) -> String {
    let ctes: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("w{i} AS ({p})"))
        .collect();
    format!(
        "WITH {} SELECT CAST(pg_current_xact_id() AS TEXT) AS tx",
        ctes.join(", ")
    )
}

/// The insert of one event per row that CTE `w` (a write's `RETURNING rid, data`) gave, with
/// the nine constants of `Events`/`WriteEvents` bound after `args`.
fn events_of(w: &str, args: &mut Vec<Arg>, consts: &[Arg]) -> Result<String, sqlx::Error> {
    if consts.len() != 9 {
        return Err(sqlx::Error::Protocol(
            "event constants of a wrong shape".into(),
        ));
    }
    let k: Vec<String> = (1..=consts.len())
        .map(|i| format!("${}", args.len() + i))
        .collect();
    args.extend(consts.iter().cloned());
    Ok(format!(
        "{EVENT_COLS} SELECT {}, {}, {}, {w}.rid, {}, {}, {}, {}, {}, {w}.data, {} FROM {w}",
        k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    ))
}

/// A precondition and the write it gates, with the write's events and the batch's audit
/// entries, as one statement (PostgreSQL): `c` is the check's `UPDATE … RETURNING v`, the
/// write runs only where it gave a row, and so do the inserts after it. No row: declined,
/// and nothing was written.
async fn gated_write(
    c: &mut AnyConnection,
    check: &str,
    check_args: &[Arg],
    write: &str,
    write_args: &[Arg],
    consts: &[Arg],
    audits: &[Arg],
) -> Result<PgRun, sqlx::Error> {
    let held = "EXISTS (SELECT 1 FROM c)";
    let mut all = check_args.to_vec();
    let mut sql = format!(
        "WITH c AS ({check}), w AS ({}), ",
        shift(&write.replacen(GATE, held, 1), all.len())
    );
    all.extend(write_args.iter().cloned());
    sql.push_str(&format!("e AS ({})", events_of("w", &mut all, consts)?));
    if !audits.is_empty() {
        let values = shift(&placeholders(audits.len() / 3, 3), all.len());
        sql.push_str(&format!(
            ", a AS (INSERT INTO audit_pending (chain, at, tail) \
             SELECT v.chain, v.at, v.tail FROM (VALUES {values}) AS v(chain, at, tail) WHERE {held})"
        ));
        all.extend(audits.iter().cloned());
    }
    sql.push_str(" SELECT (SELECT v FROM c) AS v, CAST(pg_current_xact_id() AS TEXT) AS tx");
    let row = super::bind_all(sqlx::query(&sql), &all)
        .fetch_one(&mut *c)
        .await?;
    match row.try_get::<Option<i64>, _>("v")? {
        Some(v) => Ok(PgRun {
            xid: own_xid(row)?,
            checked: Some(v),
        }),
        None => Err(sqlx::Error::Protocol(DECLINED.into())),
    }
}

/// Runs a `WriteEvents` write in place (PostgreSQL) and adds the event rows of what it
/// wrote to `rows`.
async fn write_rows(
    c: &mut AnyConnection,
    pg: &str,
    args: &[Arg],
    consts: &[Arg],
    rows: &mut Vec<Vec<Arg>>,
) -> Result<(), sqlx::Error> {
    let found = super::bind_all(sqlx::query(pg), args)
        .fetch_all(&mut *c)
        .await?;
    for r in found {
        rows.push(event_row(consts, &r)?);
    }
    Ok(())
}

/// An event row of `EVENT_COLS` from the nine constants of `Events`/`WriteEvents` and a
/// row giving `rid` and `data`: org, kind, resource_type, the row's id, provenance, its data,
/// time.
fn event_row(k: &[Arg], r: &sqlx::any::AnyRow) -> Result<Vec<Arg>, sqlx::Error> {
    if k.len() != 9 {
        return Err(sqlx::Error::Protocol(
            "event constants of a wrong shape".into(),
        ));
    }
    let mut row = k[..3].to_vec();
    row.push(Arg::Str(r.try_get::<String, _>("rid")?));
    row.extend(k[3..8].iter().cloned());
    row.push(Arg::Str(r.try_get::<String, _>("data")?));
    row.push(k[8].clone());
    Ok(row)
}

fn own_xid(row: sqlx::any::AnyRow) -> Result<Option<u64>, sqlx::Error> {
    super::seal::parse_xid(&row.try_get::<String, _>("tx")?).map(Some)
}

/// The insert of audit entry `p` after `head` (seq, hash): SQLite, whose single writer
/// links entries as it writes them.
fn audit_insert(p: &PendingAudit, head: (i64, String)) -> (String, Vec<Arg>) {
    let (seq, prev) = head;
    let at = now();
    let seq = seq + 1;
    let body = audit::entry_body(&p.chain, seq, &at, &p.actor, &context::current(), &p.draft);
    let hash = audit::link_hash(&prev, &body);
    let sql = "INSERT INTO audit_log (chain, seq, at, body, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6)";
    let args = vec![
        Arg::Str(p.chain.clone()),
        Arg::I64(seq),
        Arg::Str(at),
        Arg::Str(body),
        Arg::Str(prev),
        Arg::Str(hash),
    ];
    (sql.to_owned(), args)
}

/// The chain head an `audit_insert` makes: its seq and hash.
fn audit_new_head(args: &[Arg]) -> (i64, String) {
    match (&args[1], &args[5]) {
        (Arg::I64(seq), Arg::Str(hash)) => (*seq, hash.clone()),
        _ => (0, GENESIS.to_owned()),
    }
}

/// The last entry of an audit chain, or its anchor if retention emptied it, or genesis.
/// The heads of several chains in one statement (SQLite: each statement is a round trip to
/// the connection's worker thread, and a burst of writes to 16 organizations read 16 heads
/// one by one), into `heads`: what `audit_head` gives for each.
pub async fn read_audit_heads(
    c: &mut AnyConnection,
    chains: &[&str],
    heads: &mut AuditHeads,
) -> Result<(), sqlx::Error> {
    if chains.is_empty() {
        return Ok(());
    }
    let last = |col: &str| {
        format!(
            "COALESCE((SELECT a.{col} FROM audit_log a WHERE a.chain = j.value ORDER BY a.seq DESC LIMIT 1), \
               (SELECT n.{col} FROM audit_anchors n WHERE n.chain = j.value)"
        )
    };
    let sql = format!(
        "SELECT j.value AS chain, {}, 0) AS seq, {}, $2) AS hash FROM json_each($1) j",
        last("seq"),
        last("hash")
    );
    let list = serde_json::to_string(chains)
        .map_err(|e| sqlx::Error::Protocol(format!("audit chains: {e}")))?;
    for r in sqlx::query(&sql)
        .bind(list)
        .bind(GENESIS)
        .fetch_all(&mut *c)
        .await?
    {
        heads.insert(r.try_get("chain")?, (r.try_get("seq")?, r.try_get("hash")?));
    }
    Ok(())
}

pub async fn audit_head(c: &mut AnyConnection, chain: &str) -> Result<(i64, String), sqlx::Error> {
    let row =
        sqlx::query("SELECT seq, hash FROM audit_log WHERE chain = $1 ORDER BY seq DESC LIMIT 1")
            .bind(chain)
            .fetch_optional(&mut *c)
            .await?;
    if let Some(r) = row {
        return Ok((r.try_get("seq")?, r.try_get("hash")?));
    }
    let row = sqlx::query("SELECT seq, hash FROM audit_anchors WHERE chain = $1")
        .bind(chain)
        .fetch_optional(&mut *c)
        .await?;
    match row {
        Some(r) => Ok((r.try_get("seq")?, r.try_get("hash")?)),
        None => Ok((0, GENESIS.to_owned())),
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
