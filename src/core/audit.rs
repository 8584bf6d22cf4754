//! The audit log: one entry per provisioning action, written in the action's transaction,
//! append-only and hash-chained per organization. Each entry's hash commits to the previous
//! entry's hash and to the entry's exact stored text, so changing, removing or reordering
//! any entry breaks every later link; `verify` finds the first broken one.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::context::Origin;
use super::model::Actor;
use super::secrets::hex;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain of deployment-wide actions (no organization).
pub const DEPLOYMENT_CHAIN: &str = "";

/// What the core wants audited; the store adds chain position, time, actor and request.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    /// Changed attributes: `{name: {"before": …, "after": …}}`, or other facts of the action.
    pub changes: Value,
}

impl AuditDraft {
    pub fn new(action: &'static str, target_type: &'static str, id: &str, changes: Value) -> Self {
        AuditDraft {
            action,
            target_type,
            target_id: id.to_owned(),
            changes,
        }
    }
}

/// Attribute-level before/after of two documents: only the attributes that differ.
/// Attributes never returned (secrets) are never stored, so never appear here.
pub fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let mut keys: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                json!({"before": before.get(k), "after": after.get(k)}),
            )
        })
        .collect()
}

/// The stored text of an entry. Fields in a fixed order (serde_json keeps map order only
/// with a feature; this text is what gets hashed, so it is built explicitly).
pub fn entry_body(
    chain: &str,
    seq: i64,
    at: &str,
    actor: &Actor,
    origin: &Origin,
    d: &AuditDraft,
) -> String {
    body_with_seq(chain, seq, &entry_tail(at, actor, origin, d))
}

/// The part of an entry's body after its place in the chain (`chain`, `seq`): what a
/// write knows before its entry is linked. PostgreSQL stores it until the entry is sealed
/// into its chain after commit (see `store::engine::seal`).
pub fn entry_tail(at: &str, actor: &Actor, origin: &Origin, d: &AuditDraft) -> String {
    let fields: [(&str, Value); 7] = [
        ("at", json!(at)),
        ("action", json!(d.action)),
        ("target", json!({"type": d.target_type, "id": d.target_id})),
        ("actor", actor.to_json()),
        ("changes", d.changes.clone()),
        ("request_id", json!(origin.request_id)),
        ("source_ip", json!(origin.source_ip)),
    ];
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json!(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// The body of the entry at `seq` of `chain` whose tail (`entry_tail`) is `tail`.
pub fn body_with_seq(chain: &str, seq: i64, tail: &str) -> String {
    format!(
        "{{{}:{},{}:{},{tail}",
        json!("chain"),
        json!(chain),
        json!("seq"),
        json!(seq)
    )
}

/// The hash of an entry with text `body` following an entry whose hash is `prev`.
pub fn link_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex(&h.finalize())
}

/// One stored entry, as read back for export and verification.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub chain: String,
    pub seq: i64,
    pub at: String,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Where a chain starts: genesis, or the last entry retention removed.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

/// Checks one chain's entries (in `seq` order) from its anchor: consecutive sequence
/// numbers, each `prev_hash` equal to the previous hash, each hash recomputed from the
/// stored text, and the text naming its own chain and position.
pub fn verify_chain(
    chain: &str,
    anchor: Option<&Anchor>,
    entries: impl IntoIterator<Item = StoredEntry>,
) -> Result<u64, Broken> {
    let broken = |seq: i64, reason: String| Broken {
        chain: chain.to_owned(),
        seq,
        reason,
    };
    let (mut seq, mut prev) = match anchor {
        Some(a) => (a.seq, a.hash.clone()),
        None => (0, GENESIS.to_owned()),
    };
    let mut n = 0u64;
    for e in entries {
        if e.seq != seq + 1 {
            return Err(broken(
                e.seq,
                format!("entry {} follows entry {seq}: entries are missing", e.seq),
            ));
        }
        if e.prev_hash != prev {
            return Err(broken(
                e.seq,
                "prev_hash does not match the previous entry's hash".into(),
            ));
        }
        if link_hash(&prev, &e.body) != e.hash {
            return Err(broken(
                e.seq,
                "hash does not match the entry's content".into(),
            ));
        }
        let named: Option<(String, i64)> =
            serde_json::from_str::<Value>(&e.body).ok().and_then(|v| {
                Some((
                    v.get("chain")?.as_str()?.to_owned(),
                    v.get("seq")?.as_i64()?,
                ))
            });
        if named != Some((chain.to_owned(), e.seq)) {
            return Err(broken(
                e.seq,
                "entry text names another chain or position".into(),
            ));
        }
        seq = e.seq;
        prev = e.hash;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<StoredEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let d = AuditDraft::new("user.update", "User", "u1", json!({"seq": seq}));
                let body = entry_body("org", seq, "t", &Actor::Cli, &Origin::default(), &d);
                let hash = link_hash(&prev, &body);
                let e = StoredEntry {
                    chain: "org".into(),
                    seq,
                    at: "t".into(),
                    body,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    /// The text that is hashed must not change when entries are linked after commit:
    /// entries stored before must still verify.
    #[test]
    fn an_entry_body_is_the_same_text_however_it_is_built() {
        let d = AuditDraft::new("user.deactivated", "User", "u1", json!({"active": false}));
        let origin = Origin {
            request_id: Some("req-1".into()),
            source_ip: Some("10.0.0.1".into()),
            ..Origin::default()
        };
        let body = entry_body("org_1", 7, "2026-12-03T10:00:00Z", &Actor::Cli, &origin, &d);
        assert_eq!(
            body,
            format!(
                "{{\"chain\":\"org_1\",\"seq\":7,\"at\":\"2026-12-03T10:00:00Z\",\"action\":\"user.deactivated\",\
                 \"target\":{{\"id\":\"u1\",\"type\":\"User\"}},\"actor\":{},\"changes\":{{\"active\":false}},\
                 \"request_id\":\"req-1\",\"source_ip\":\"10.0.0.1\"}}",
                Actor::Cli.to_json()
            )
        );
        let tail = entry_tail("2026-12-03T10:00:00Z", &Actor::Cli, &origin, &d);
        assert_eq!(body_with_seq("org_1", 7, &tail), body);
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain("org", None, chain(5)), Ok(5));
    }

    #[test]
    fn edits_removals_and_reorders_are_found() {
        let mut c = chain(5);
        c[2].body = c[2].body.replace("\"seq\":3}", "\"seq\":4}");
        assert_eq!(verify_chain("org", None, c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify_chain("org", None, c).unwrap_err().seq, 3);

        let mut c = chain(5);
        c.swap(1, 2);
        assert!(verify_chain("org", None, c).is_err());

        // Recomputing one entry's hash after an edit breaks the next link instead.
        let mut c = chain(5);
        c[1].body.push(' ');
        c[1].hash = link_hash(&c[1].prev_hash, &c[1].body);
        assert_eq!(verify_chain("org", None, c).unwrap_err().seq, 3);
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_anchor() {
        let c = chain(5);
        let anchor = Anchor {
            seq: 2,
            hash: c[1].hash.clone(),
        };
        assert_eq!(
            verify_chain("org", Some(&anchor), c.into_iter().skip(2)),
            Ok(3)
        );
    }
}
