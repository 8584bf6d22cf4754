//! Events: the outbox rows every change appends in its own transaction.

use serde_json::Value;

/// An event the core wants recorded with a change. The store adds org, actor, cursor and time.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub kind: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub data: Value,
}

impl EventDraft {
    pub fn new(kind: &'static str, resource_type: &'static str, id: &str, data: Value) -> Self {
        EventDraft {
            kind,
            resource_type,
            resource_id: id.to_owned(),
            data,
        }
    }
}
