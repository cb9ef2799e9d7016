//! Property tests of every reader of a file a user can hand seispipe (npy
//! headers, manifests, journals, provenance files, pipeline TOML): whatever
//! the bytes, they are read or refused with a message that names the file —
//! never a panic, never a line skipped in silence (but a torn last journal
//! line, which an unfinished append leaves).

use std::path::Path;

use proptest::prelude::*;
use seispipe::io::manifest::{read_provenance, Journal, Manifest, ShardRecord, STATE_DIR};
use seispipe::io::npy;

use crate::util;

/// Bytes near a valid file: `valid` with some bytes replaced, some cut off
/// and some inserted.
fn near(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len();
    (
        proptest::collection::vec((0..n.max(1), any::<u8>()), 0..6),
        0..=n,
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(move |(flips, cut, insert)| {
            let mut v = valid.clone();
            for (i, b) in flips {
                if i < v.len() {
                    v[i] = b;
                }
            }
            v.truncate(cut.max(1));
            let at = v.len() / 2;
            v.splice(at..at, insert);
            v
        })
}

/// Either arbitrary bytes or bytes near `valid`.
fn bytes_like(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), near(valid),]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A small valid output written by the binary: (its directory, kept alive).
fn output() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = util::tempdir();
    let root = t.path();
    util::write_npy(
        &root.join("in/data/data1.npy"),
        npy::DType::F32,
        &[2, 5, 1000, 70],
        &util::pseudo_random(2 * 350_000, 1, 1.0),
    );
    std::fs::write(
        root.join("p.toml"),
        "seed = 1\ncopies = 1\n[input]\npath = \"in\"\nlabels = \"none\"\n[output]\ndir = \"out\"\nsamples_per_shard = 2\ndtype = \"f16\"\n[[stages]]\ntype = \"flip\"\n",
    )
    .unwrap();
    util::run_ok(root, &["run", "p.toml", "-q"]);
    let out = root.join("out");
    (t, out)
}

#[test]
fn npy_headers_are_read_or_refused_by_name() {
    let t = util::tempdir();
    let p = t.path().join("x.npy");
    let valid = {
        util::write_npy(&p, npy::DType::F32, &[2, 3], &[0.0; 6]);
        std::fs::read(&p).unwrap()
    };
    proptest!(config(), |(bytes in bytes_like(valid))| {
        std::fs::write(&p, &bytes).unwrap();
        if let Err(e) = npy::read_header(&p) {
            prop_assert!(e.to_string().contains("x.npy"), "{}", e);
        }
    });
}

#[test]
fn manifests_are_read_or_refused_by_name() {
    let (_t, out) = output();
    let path = out.join("manifest.json");
    let valid = std::fs::read(&path).unwrap();
    proptest!(config(), |(bytes in bytes_like(valid.clone()))| {
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = Manifest::load(&out) {
            let e = e.to_string();
            prop_assert!(e.contains("manifest.json") || e.contains(&out.display().to_string()), "{}", e);
        }
    });
}

#[test]
fn journals_are_read_or_refused_by_line_and_name() {
    let (_t, out) = output();
    let path = out.join(STATE_DIR).join("journal.jsonl");
    let valid = std::fs::read(&path).unwrap();
    let j = Journal::new(&out);
    proptest!(config(), |(bytes in bytes_like(valid.clone()))| {
        std::fs::write(&path, &bytes).unwrap();
        match j.read() {
            Ok(recs) => {
                // Every line was read but a torn last one (no newline).
                let text = String::from_utf8_lossy(&bytes);
                let lines = text.split_terminator('\n').count();
                if text.ends_with('\n') || text.is_empty() {
                    prop_assert_eq!(recs.len(), lines);
                } else {
                    prop_assert!(recs.len() + 1 >= lines && recs.len() <= lines);
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains("journal.jsonl"), "{}", e);
            }
        }
    });
}

#[test]
fn provenance_files_are_read_or_refused_by_line_and_name() {
    let (_t, out) = output();
    let m = Manifest::load(&out).unwrap();
    let shard: ShardRecord = m.shards[0].clone();
    let path = out.join(&shard.provenance.path);
    let valid = std::fs::read(&path).unwrap();
    proptest!(config(), |(bytes in bytes_like(valid.clone()))| {
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = read_provenance(&out, &shard) {
            let e = e.to_string();
            prop_assert!(e.contains("prov1.jsonl"), "{}", e);
        }
    });
}

#[test]
fn pipeline_files_are_read_or_refused_by_name() {
    let valid = b"seed = 1\ncopies = 2\n[input]\npath = \"in\"\n[output]\ndir = \"out\"\n[[stages]]\ntype = \"gaussian_noise\"\nsnr_db = 20.0\n[[stages]]\ntype = \"spectrogram\"\nn_fft = 128\n".to_vec();
    proptest!(config(), |(bytes in bytes_like(valid.clone()))| {
        let text = String::from_utf8_lossy(&bytes);
        match seispipe::pipeline::spec::parse(&text, "p.toml", &[]) {
            Ok(spec) => {
                // What parses also plans, or is refused by name.
                if let Err(e) = seispipe::pipeline::plan::plan(spec, "p.toml", true) {
                    prop_assert!(e.to_string().contains("p.toml"), "{}", e);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("p.toml"), "{}", e),
        }
    });
}

/// The readers above are the ones the program uses: a damaged file is
/// refused by the binary with the same names.
#[test]
fn the_binary_names_a_damaged_manifest() {
    let (_t, out) = output();
    std::fs::write(out.join("manifest.json"), b"{\"format\": 3").unwrap();
    let o = util::seispipe(Path::new("."), &["verify", out.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        util::text(&o).contains("manifest.json"),
        "{}",
        util::text(&o)
    );
}
