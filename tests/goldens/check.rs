// Shared by tests/integration/versions.rs and the pseudo_label unit tests
// (`include!`d, so it names no crate): the committed per-stage goldens in
// tests/goldens/stages.json, each the SHA-256 of a stage's output bytes over a
// fixed tiny input, stored with the algorithm versions it belongs to.
//
// A golden whose versions equal this build's must match its bytes: changed
// bytes need a deliberate version bump (the stage's ALGORITHM, or
// physics::ALGORITHM, or io::manifest::OUTPUT_FORMAT_VERSION). With
// SEISPIPE_BLESS_GOLDENS=1 a case whose versions changed (or that is new) is
// re-recorded; a case whose bytes changed under the same versions never is.

/// Check (or, blessing, record) golden `case`.
///
/// # Errors
/// What differs and what to do about it.
fn check_golden(case: &str, versions: &serde_json::Value, sha256: &str) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/stages.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "{}".into());
    let mut all: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let bless = std::env::var_os("SEISPIPE_BLESS_GOLDENS").is_some_and(|v| v == "1");
    match all.get(case) {
        Some(g) if g["versions"] == *versions => {
            if g["sha256"] == sha256 {
                return Ok(());
            }
            return Err(format!(
                "golden {case}: the output bytes changed (sha256 {sha256}, golden {}) but the algorithm versions did not ({versions}); bump the version of the code that changed them, then re-record with SEISPIPE_BLESS_GOLDENS=1",
                g["sha256"]
            ));
        }
        Some(g) if !bless => {
            return Err(format!(
                "golden {case}: recorded for versions {}, this build has {versions}; re-record with SEISPIPE_BLESS_GOLDENS=1 after checking the new bytes",
                g["versions"]
            ));
        }
        None if !bless => {
            return Err(format!(
                "golden {case}: none recorded in {}; record it with SEISPIPE_BLESS_GOLDENS=1",
                path.display()
            ));
        }
        _ => {}
    }
    all.insert(
        case.to_string(),
        serde_json::json!({ "versions": versions, "sha256": sha256 }),
    );
    let text = serde_json::to_string_pretty(&all).expect("json") + "\n";
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    eprintln!("golden {case}: recorded {sha256} for versions {versions}");
    Ok(())
}
