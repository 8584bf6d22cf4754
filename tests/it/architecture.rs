//! The maps in the docs must match the code — ARCHITECTURE.md names every module of the
//! crate, docs/events.md every event type and no other: a map that drifts is worse than none.

use std::collections::BTreeSet;

use roster::core::events::EventKind;

/// Every directory under `src/` is named by its path (`src/store/engine/`), every file in
/// one by its name in backticks (`batch.rs`), every top-level file by its path.
fn unmentioned(map: &str, dir: &std::path::Path, rel: &str, missing: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("module dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{rel}{name}");
        if entry.path().is_dir() {
            let sub = format!("{path}/");
            if !map.contains(&sub) {
                missing.push(sub.clone());
            }
            unmentioned(map, &entry.path(), &sub, missing);
        } else if rel == "src/" {
            if name != "main.rs" && name != "lib.rs" && !map.contains(&path) {
                missing.push(path);
            }
        } else if name != "mod.rs" && !map.contains(&format!("`{name}`")) {
            missing.push(path);
        }
    }
}

#[test]
fn architecture_map_names_every_module() {
    let root = env!("CARGO_MANIFEST_DIR");
    let map = std::fs::read_to_string(format!("{root}/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    unmentioned(
        &map,
        std::path::Path::new(&format!("{root}/src")),
        "src/",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention: {missing:?}"
    );
}

#[test]
fn events_doc_lists_exactly_the_event_kinds() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/events.md")).expect("docs/events.md");
    // The types in the first column of the table headed `| type | when | data |`.
    let mut documented = BTreeSet::new();
    let rows = doc
        .lines()
        .skip_while(|l| !l.starts_with("| type |"))
        .skip(1)
        .take_while(|l| l.starts_with('|'));
    for row in rows {
        let first = row.split('|').nth(1).unwrap_or_default();
        documented.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    assert!(
        !documented.is_empty(),
        "docs/events.md has no table of event types"
    );
    let kinds: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    let missing: Vec<_> = kinds.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&kinds).collect();
    assert!(
        missing.is_empty(),
        "docs/events.md does not document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/events.md documents types that are no EventKind: {unknown:?}"
    );
}
