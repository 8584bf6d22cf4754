//! ARCHITECTURE.md must name every module of the crate: a map that drifts is worse than none.

#[test]
fn architecture_map_names_every_module() {
    let root = env!("CARGO_MANIFEST_DIR");
    let map = std::fs::read_to_string(format!("{root}/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/src")).expect("src/") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "main.rs" || name == "lib.rs" {
            continue;
        }
        if entry.path().is_dir() {
            let dir = format!("src/{name}/");
            if !map.contains(&dir) {
                missing.push(dir.clone());
            }
            for file in std::fs::read_dir(entry.path()).expect("module dir") {
                let f = file
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if f != "mod.rs" && !map.contains(&format!("`{f}`")) {
                    missing.push(format!("{dir}{f}"));
                }
            }
        } else if !map.contains(&format!("src/{name}")) {
            missing.push(format!("src/{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention: {missing:?}"
    );
}
