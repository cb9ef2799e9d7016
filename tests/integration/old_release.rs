//! An output half-written by an older release (`tests/fixtures/old-release-33e4327`,
//! written by the build of commit 33e4327: no algorithm versions, provenance
//! inside the journal, a flip spec without today's `exact` key), resumed by
//! today's build as a user who upgrades mid-run would.

use std::path::{Path, PathBuf};

use crate::util;

/// A copy of the fixture in a temporary directory: `in/`, `out/`, `p.toml`.
fn fixture() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old-release-33e4327");
    let t = util::tempdir();
    for f in util::files_below(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let to = t.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
    t
}

/// Every file below `dir` with its bytes, relative paths sorted.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    util::files_below(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_old_release_output_is_explained_and_finished_when_accepted() {
    let t = fixture();
    let d = t.path();
    let out = d.join("out");
    let before = contents(&out);
    assert!(before.iter().any(|(p, _)| p.ends_with("data/data2.npy")));
    assert!(!before.iter().any(|(p, _)| p.ends_with("data/data3.npy")));

    // Without the flag: what happened and the three ways forward; nothing written.
    let o = util::seispipe(d, &["run", "p.toml", "-q"]);
    let msg = util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    for want in [
        "written by an older seispipe",
        "recorded no algorithm versions",
        "Finish it with that build",
        "--accept-unversioned",
        "choose a new output.dir",
    ] {
        assert!(msg.contains(want), "expected {want:?} in\n{msg}");
    }
    // A default added since (flip's `exact`) is no difference of pipeline.
    assert!(
        !msg.contains("different pipeline") && !msg.contains("exact"),
        "{msg}"
    );
    assert_eq!(
        contents(&out),
        before,
        "a refused resume changed the output"
    );

    // A really different pipeline is still refused, flag or not, and named.
    let o = util::seispipe(
        d,
        &[
            "run",
            "p.toml",
            "-q",
            "--accept-unversioned",
            "--set",
            "stages.0.p=0.7",
        ],
    );
    let msg = util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("different pipeline") && msg.contains("stages[0].p: was 0.5, now 0.7"),
        "{msg}"
    );
    assert_eq!(contents(&out), before);

    // Accepted: today's build finishes it.
    util::run_ok(d, &["run", "p.toml", "-q", "--accept-unversioned"]);
    let o = util::seispipe(d, &["verify", "out"]);
    let report = util::text(&o);
    assert!(
        report.contains("warning: resumed with --accept-unversioned"),
        "{report}"
    );
    assert_eq!(o.status.code(), Some(0), "{report}");

    // Its shards are exactly those of a fresh run of today's build: the two
    // shards whose records this build cannot check were written again, the
    // other two written for the first time.
    util::run_ok(d, &["run", "p.toml", "-q", "--set", "output.dir=fresh"]);
    for k in 1..=4 {
        for f in [format!("data/data{k}.npy"), format!("model/model{k}.npy")] {
            let a = std::fs::read(out.join(&f)).unwrap();
            let b = std::fs::read(d.join("fresh").join(&f)).unwrap();
            assert!(a == b, "{f} differs from a fresh run");
        }
    }
    // The old release's shards 1 and 2 hold the same bytes as today's: flip's
    // algorithm did not change, so the redone shards equal what was there.
    for (p, bytes) in &before {
        if p.starts_with("data") || p.starts_with("model") {
            assert_eq!(
                &std::fs::read(out.join(p)).unwrap(),
                bytes,
                "{}",
                p.display()
            );
        }
    }
}
