//! Pictures: `seispipe preview` (deterministic PNG bytes; an augmented copy
//! paired with what it was made from through its provenance, in outputs,
//! Kaggle parts, spectrogram outputs and shard files; bad input named) and
//! `report.html` (every section, numbers equal to the manifest's, listed in
//! the manifest, a mis-scaled shard flagged, resumed runs on the throughput
//! chart, rendered by headless Chromium).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use scraper::{Html, Selector};
use seispipe::pipeline::spec::DType;
use seispipe::report;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{self, read_npy, run_ok, seispipe, text, write_npy, write_train_pair};

/// Write `dir/NAME.toml` reading `in` and writing `out/NAME` (paths relative
/// to `dir`, as a user writes them).
fn pipe(dir: &Path, name: &str, top: &str, stages: &str, output_extra: &str) -> String {
    let body = format!(
        "seed = 9\n{top}\n[input]\npath = \"in\"\n\n[output]\ndir = \"out/{name}\"\n{output_extra}\n{stages}\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), body).unwrap();
    format!("{name}.toml")
}

const FLIP_ALWAYS: &str = "[[stages]]\ntype = \"flip\"\np = 1.0\n";
const FLIP_NOISE: &str =
    "[[stages]]\ntype = \"flip\"\np = 0.5\n\n[[stages]]\ntype = \"gaussian_noise\"\np = 0.7\nsnr_db = 15.0\n";

/// Two labelled input files of 3 samples under `dir/in`.
fn inputs(dir: &Path) {
    write_train_pair(&dir.join("in"), "FlatVel_A", 1, 3, DType::F32, 21);
    write_train_pair(&dir.join("in"), "FlatVel_A", 2, 3, DType::F32, 22);
}

/// numpy's `x[::-1, :, ::-1]` of one (5, 1000, 70) sample: the mirror flip.
fn mirror(v: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for s in 0..5 {
        for t in 0..1000 {
            for r in 0..70 {
                out[(s * 1000 + t) * 70 + r] = v[((4 - s) * 1000 + t) * 70 + (69 - r)];
            }
        }
    }
    out
}

/// Sample `i` of a `(n, …)` array of `per` values.
fn item(path: &Path, i: usize, per: usize) -> Vec<f32> {
    read_npy(path).1[i * per..(i + 1) * per].to_vec()
}

/// The manifest of `dir` with each shard's provenance read from its file
/// and put inline (`shards[i].provenance` as a list of records).
fn manifest(dir: &Path) -> Value {
    util::manifest_inline(dir)
}

fn sha(p: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

/// (width, height, RGB bytes) of a PNG.
fn decode_png(p: &Path) -> (usize, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::Cursor::new(std::fs::read(p).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// Pixels that are strong red, strong blue (the seismic map) and
/// viridis-yellow.
fn colour_counts(rgb: &[u8]) -> (usize, usize, usize) {
    let px: Vec<&[u8]> = rgb.chunks_exact(3).collect();
    let red = px
        .iter()
        .filter(|c| c[0] > 180 && c[1] < 60 && c[2] < 60)
        .count();
    let blue = px
        .iter()
        .filter(|c| c[2] > 180 && c[0] < 60 && c[1] < 60)
        .count();
    let yellow = px
        .iter()
        .filter(|c| c[0] > 180 && c[1] > 180 && c[2] < 90)
        .count();
    (red, blue, yellow)
}

#[test]
fn preview_bytes_are_the_same_for_the_same_inputs_and_options() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let p = pipe(
        dir,
        "aug",
        "copies = 2\nkeep_original = true",
        FLIP_NOISE,
        "samples_per_shard = 4",
    );
    run_ok(dir, &["run", "-q", &p]);
    let shot = |out: &str| {
        run_ok(
            dir,
            &["preview", "out/aug", "--samples", "1,5,17", "--out", out],
        );
        ["aug-1.png", "aug-5.png", "aug-17.png"].map(|f| sha(&dir.join(out).join(f)))
    };
    let first = shot("p1");
    assert_eq!(first, shot("p2"), "the same preview twice");
    // The whole run again, from nothing: the same pictures.
    std::fs::remove_dir_all(dir.join("out/aug")).unwrap();
    run_ok(dir, &["run", "-q", &p]);
    assert_eq!(first, shot("p3"), "a re-run's previews");
    // A picture with seismic colours in it, and the three rows of a copy.
    let (w, h, rgb) = decode_png(&dir.join("p1/aug-1.png"));
    assert!(w > 1000 && h > 1000, "{w}×{h}");
    let (red, blue, yellow) = colour_counts(&rgb);
    assert!(
        red > 2000 && blue > 2000 && yellow > 500,
        "{red} {blue} {yellow}"
    );
    // --random: the same draw for the same seed.
    let o1 = run_ok(
        dir,
        &[
            "preview", "out/aug", "--random", "3", "--seed", "7", "--out", "r1",
        ],
    );
    let o2 = run_ok(
        dir,
        &[
            "preview", "out/aug", "--random", "3", "--seed", "7", "--out", "r2",
        ],
    );
    let names = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .replace("r1/", "")
            .replace("r2/", "")
    };
    assert_eq!(names(&o1), names(&o2));
    assert_eq!(names(&o1).lines().count(), 3);
}

/// Sample `i` of input file `f` (seismic, velocity) of [`inputs`].
fn input(dir: &Path, f: usize, i: usize) -> Vec<f32> {
    item(
        &dir.join(format!("in/FlatVel_A/data/data{f}.npy")),
        i,
        350_000,
    )
}

fn input_vel(dir: &Path, f: usize, i: usize) -> Vec<f32> {
    item(
        &dir.join(format!("in/FlatVel_A/model/model{f}.npy")),
        i,
        4900,
    )
}

/// numpy's `v[:, ::-1]` of a 70 × 70 map.
fn mirror_map(v: &[f32]) -> Vec<f32> {
    v.chunks_exact(70)
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// Run the flip-always pipeline NAME (`keep_original` or not) on [`inputs`].
fn flipped(dir: &Path, name: &str, keep_original: bool, per_shard: usize) -> PathBuf {
    let p = pipe(
        dir,
        name,
        &format!("copies = 1\nkeep_original = {keep_original}"),
        FLIP_ALWAYS,
        &format!("samples_per_shard = {per_shard}"),
    );
    run_ok(dir, &["run", "-q", &p]);
    dir.join("out").join(name)
}

#[test]
fn copies_are_paired_with_the_originals_kept_beside_them() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    // keep_original: the original copy in the same output is the "before".
    let out = flipped(dir, "kept", true, 4);
    for (pos, (f, i)) in [
        (1usize, (1usize, 0usize)),
        (3, (1, 1)),
        (7, (2, 0)),
        (11, (2, 2)),
    ] {
        let pair = report::pair(&out, pos, None).unwrap();
        let before = pair
            .before
            .unwrap_or_else(|| panic!("{pos}: {:?}", pair.missing));
        assert!(before.place.starts_with("data/data"), "{}", before.place);
        assert_eq!(
            before.values,
            input(dir, f, i),
            "{pos}: the original is input {f}#{i}"
        );
        assert_eq!(pair.after.values, mirror(&before.values), "{pos}: flipped");
        assert_eq!(
            pair.after.velocity.unwrap(),
            mirror_map(&input_vel(dir, f, i))
        );
    }
    // An original has nothing before it.
    let pair = report::pair(&out, 0, None).unwrap();
    assert!(pair.before.is_none() && pair.missing.is_none());
    // Through one shard file: the same pairing.
    let pair = report::pair(&out.join("data/data2.npy"), 3, None).unwrap();
    assert_eq!(pair.before.unwrap().values, input(dir, 2, 0));
}

#[test]
fn copies_are_paired_with_their_inputs_under_the_input_root() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    // No originals kept: the input file under the manifest's input_root.
    let out = flipped(dir, "copies", false, 2);
    assert_eq!(
        manifest(&out)["input_root"],
        "in",
        "relative, as the run saw it"
    );
    for pos in 0..6 {
        let pair = report::pair(&out, pos, None).unwrap();
        let before = pair.before.unwrap();
        let (f, i) = (1 + pos / 3, pos % 3);
        assert!(
            before.place.ends_with(&format!("data{f}.npy #{i}")),
            "{}",
            before.place
        );
        assert_eq!(before.values, input(dir, f, i));
        assert_eq!(pair.after.values, mirror(&before.values));
    }
    // Moved away from its inputs: said so, and --input-root finds them.
    let elsewhere = util::tempdir();
    let moved = elsewhere.path().join("copies");
    std::fs::create_dir_all(moved.join("data")).unwrap();
    std::fs::create_dir_all(moved.join("model")).unwrap();
    std::fs::create_dir_all(moved.join("provenance")).unwrap();
    for f in [
        "manifest.json",
        "data/data1.npy",
        "model/model1.npy",
        "provenance/prov1.jsonl",
    ] {
        std::fs::copy(out.join(f), moved.join(f)).unwrap();
    }
    let pair = report::pair(&moved, 0, None).unwrap();
    assert!(pair.before.is_none());
    let why = pair.missing.unwrap();
    assert!(
        why.contains("FlatVel_A/data/data1.npy") && why.contains("--input-root"),
        "{why}"
    );
    let pair = report::pair(&moved, 1, Some(dir.join("in"))).unwrap();
    assert_eq!(pair.before.unwrap().values, input(dir, 1, 1));

    // A directory of inputs: previews without before/after.
    let pair = report::pair(&dir.join("in"), 4, None).unwrap();
    assert_eq!(pair.after.values, input(dir, 2, 1));
    assert!(pair.before.is_none() && pair.missing.is_none());
    run_ok(dir, &["preview", "in", "--samples", "4", "--out", "pin"]);
    assert!(dir.join("pin/in-4.png").is_file());
    // A file of velocity maps alone.
    let maps = "in/FlatVel_A/model/model2.npy";
    run_ok(dir, &["preview", maps, "--samples", "2", "--out", "pin"]);
    let (_, _, rgb) = decode_png(&dir.join("pin/model2-2.png"));
    assert!(colour_counts(&rgb).2 > 0, "viridis yellow in the map");
}

#[test]
fn copies_in_kaggle_parts_are_paired_too() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    flipped(dir, "copies", false, 2);
    flipped(dir, "kept", true, 4);
    // Kaggle parts: inputs found from the part too, and the original copy
    // in the same part.
    for (name, per_part) in [("copies", 2usize), ("kept", 4)] {
        let o = seispipe(
            dir,
            &[
                "package",
                &format!("out/{name}"),
                "--into",
                &format!("kg-{name}"),
                "--owner",
                "alice",
                "--slug",
                "fwi-test",
                "--title",
                "FWI test data",
                "--max-dataset-bytes",
                &(per_part as u64 * 1_500_000 + 60_000).to_string(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let part = dir.join("kg-copies/fwi-test-part-002");
    let m = manifest(&part);
    let rec = &m["shards"][0]["provenance"][1];
    let pair = report::pair(&part, 1, None).unwrap();
    let (f, i) = (
        1 + usize::from(rec["input"].as_str().unwrap().contains("data2")),
        rec["input_index"].as_u64().unwrap() as usize,
    );
    assert_eq!(pair.before.unwrap().values, input(dir, f, i), "{rec}");
    assert_eq!(pair.after.values, mirror(&input(dir, f, i)));
    let part = dir.join("kg-kept/fwi-test-part-002");
    let pair = report::pair(&part, 1, None).unwrap();
    let before = pair.before.unwrap();
    assert!(before.place.starts_with("data"), "{}", before.place);
    assert_eq!(pair.after.values, mirror(&before.values));
    run_ok(
        dir,
        &[
            "preview",
            part.to_str().unwrap(),
            "--samples",
            "1",
            "--out",
            "pk",
        ],
    );
}

#[test]
fn spectrogram_outputs_are_paired_with_their_input_gathers() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let stages = "[[stages]]\ntype = \"spectrogram\"\nn_fft = 256\nhop_length = 64\noutput = \"log_magnitude\"\nmax_freq_hz = 45.0\n";
    let p = pipe(
        dir,
        "spec",
        "copies = 1\nkeep_original = false",
        stages,
        "samples_per_shard = 3\ndtype = \"f16\"",
    );
    run_ok(dir, &["run", "-q", &p]);
    let out = dir.join("out/spec");
    let m = manifest(&out);
    let shape: Vec<usize> = serde_json::from_value(m["sample_shape"].clone()).unwrap();
    assert_eq!(shape.len(), 4);
    let pair = report::pair(&out, 4, None).unwrap();
    assert_eq!(pair.after.shape, shape);
    let before = pair.before.unwrap();
    assert_eq!(before.shape, vec![5, 1000, 70]);
    assert_eq!(
        before.values,
        item(&dir.join("in/FlatVel_A/data/data2.npy"), 1, 350_000)
    );
    // The picture: gathers (red/blue) and spectrogram panels (viridis), the
    // same bytes twice.
    run_ok(
        dir,
        &["preview", "out/spec", "--samples", "4", "--out", "s1"],
    );
    run_ok(
        dir,
        &["preview", "out/spec", "--samples", "4", "--out", "s2"],
    );
    assert_eq!(
        sha(&dir.join("s1/spec-4.png")),
        sha(&dir.join("s2/spec-4.png"))
    );
    let (_, _, rgb) = decode_png(&dir.join("s1/spec-4.png"));
    let (red, blue, yellow) = colour_counts(&rgb);
    assert!(
        red > 1000 && blue > 1000 && yellow > 100,
        "{red} {blue} {yellow}"
    );
}

#[test]
fn bad_preview_input_is_named() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let p = pipe(
        dir,
        "aug",
        "copies = 1\nkeep_original = true",
        FLIP_ALWAYS,
        "samples_per_shard = 4",
    );
    run_ok(dir, &["run", "-q", &p]);
    let fails = |args: &[&str], needles: &[&str]| {
        let o = seispipe(dir, args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        for n in needles {
            assert!(err.contains(n), "{n:?} not in: {err}");
        }
    };
    fails(
        &["preview", "out/aug", "--samples", "2,12"],
        &[
            "out/aug, sample 12",
            "out of range: it holds 12 samples (0–11)",
        ],
    );
    std::fs::create_dir_all(dir.join("empty/sub")).unwrap();
    std::fs::write(dir.join("empty/notes.txt"), "x").unwrap();
    fails(
        &["preview", "empty"],
        &[
            "empty",
            "no manifest.json here",
            "not a directory of inputs",
        ],
    );
    std::fs::write(dir.join("junk.npy"), b"not numpy").unwrap();
    fails(&["preview", "junk.npy"], &["junk.npy", "not a .npy file"]);
    // A shard cut short: the file and the index in it.
    let shard = dir.join("out/aug/data/data2.npy");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["preview", "out/aug", "--samples", "5"],
        &["out/aug/data/data2.npy, sample 1"],
    );
    let o = seispipe(dir, &["preview", "out/aug", "--random", "20"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("20 samples asked for"),
        "{}",
        text(&o)
    );
}

/// The report of an output, parsed.
fn report_of(out: &Path) -> Html {
    Html::parse_document(&std::fs::read_to_string(out.join("report.html")).unwrap())
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn text_of(doc: &Html, css: &str) -> String {
    let found = select(doc, css);
    assert_eq!(found.len(), 1, "{css}");
    found[0].text().collect::<String>().trim().to_string()
}

fn attr(e: &scraper::ElementRef<'_>, name: &str) -> String {
    e.value()
        .attr(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_string()
}

/// The report's drawn parameters equal those recomputed here from every
/// provenance record of the manifest.
fn check_parameters(doc: &Html, m: &Value) {
    // Drawn parameters, recomputed here from every provenance record.
    let mut applied: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    let mut stds = Vec::new();
    for shard in m["shards"].as_array().unwrap() {
        for rec in shard["provenance"].as_array().unwrap() {
            for st in rec["stages"].as_array().unwrap() {
                let e = applied.entry(st["stage"].as_u64().unwrap()).or_default();
                if st["applied"] == true {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
                if let Some(s) = st["std"].as_f64() {
                    stds.push(s);
                }
            }
        }
    }
    let stages = select(doc, "#parameters .stage");
    assert_eq!(stages.len(), 2);
    for s in &stages {
        let i: u64 = attr(s, "data-stage").parse().unwrap();
        assert_eq!(
            (attr(s, "data-applied"), attr(s, "data-not-applied")),
            (applied[&i].0.to_string(), applied[&i].1.to_string()),
            "stage {i}"
        );
    }
    let std_block = select(doc, "#parameters .param[data-key=\"std\"]");
    assert_eq!(std_block.len(), 1);
    let num = |k: &str| attr(&std_block[0], k).parse::<f64>().unwrap();
    assert_eq!(num("data-n") as usize, stds.len());
    assert!(stds.len() > 3, "{}", stds.len());
    assert_eq!(
        num("data-min"),
        stds.iter().copied().fold(f64::INFINITY, f64::min)
    );
    assert_eq!(
        num("data-max"),
        stds.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
    let mean = stds.iter().sum::<f64>() / stds.len() as f64;
    assert!(
        (num("data-mean") - mean).abs() <= 1e-12 * mean,
        "{} vs {mean}",
        num("data-mean")
    );
    assert!(
        std_block[0]
            .select(&Selector::parse("svg rect").unwrap())
            .count()
            > 1
    );
}

#[test]
fn report_shows_every_section_with_the_manifests_numbers() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let p = pipe(
        dir,
        "aug",
        "copies = 2\nkeep_original = true",
        FLIP_NOISE,
        "samples_per_shard = 4",
    );
    run_ok(dir, &["run", "-q", &p]);
    let out = dir.join("out/aug");
    let m = manifest(&out);
    let doc = report_of(&out);
    for id in [
        "run",
        "inputs",
        "skipped",
        "dropped",
        "previews",
        "parameters",
        "distributions",
        "throughput",
        "disk",
    ] {
        assert_eq!(select(&doc, &format!("#{id}")).len(), 1, "section {id}");
    }
    for (id, key) in [
        ("samples-in", "samples_in"),
        ("samples-out", "samples_out"),
        ("samples-dropped", "samples_dropped"),
        ("seed", "seed"),
    ] {
        assert_eq!(text_of(&doc, &format!("#{id}")), m[key].to_string(), "{id}");
    }
    assert_eq!(
        text_of(&doc, "#fingerprint"),
        m["fingerprint"].as_str().unwrap()
    );
    assert_eq!(
        text_of(&doc, "#shards"),
        m["shards"].as_array().unwrap().len().to_string()
    );
    assert_eq!(text_of(&doc, "#pipeline-file"), "aug.toml");
    assert_eq!(
        select(&doc, "#inputs tr").len(),
        1 + m["inputs"].as_array().unwrap().len()
    );
    check_parameters(&doc, &m);
    // Previews: PNGs inline, and nothing fetched from anywhere.
    let imgs = select(&doc, "#previews img");
    assert_eq!(imgs.len(), 2);
    for img in &imgs {
        let src = attr(img, "src");
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .expect("an inline PNG");
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for remote in ["http://", "https://", "<script", "<link", "url("] {
        let outside_svg_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!outside_svg_ns.contains(remote), "{remote}");
    }
    // Values per shard: every shard sampled.
    let rows = select(&doc, "#shard-values tr[data-shard]");
    assert_eq!(rows.len(), m["shards"].as_array().unwrap().len());
    assert_eq!(text_of(&doc, "#misscaled"), "No shard stands out.");
    // Throughput: one run, every shard.
    assert_eq!(select(&doc, "#runs tr").len(), 2);
    assert_eq!(
        select(&doc, "#throughput circle").len(),
        m["shards"].as_array().unwrap().len()
    );
    // Disk: the data and label bytes the manifest lists.
    let listed = |k: usize| -> u64 {
        m["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["files"][k]["bytes"].as_u64().unwrap())
            .sum()
    };
    let disk = select(&doc, "#disk tr[data-what]");
    assert_eq!(attr(&disk[0], "data-bytes"), listed(0).to_string());
    assert_eq!(attr(&disk[1], "data-bytes"), listed(1).to_string());
}

#[test]
fn report_is_listed_in_the_manifest_and_written_again_the_same() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let p = pipe(
        dir,
        "aug",
        "copies = 2\nkeep_original = true",
        FLIP_NOISE,
        "samples_per_shard = 4",
    );
    run_ok(dir, &["run", "-q", &p]);
    let out = dir.join("out/aug");
    let m = manifest(&out);
    // Named in the manifest (not hashed: it carries run times); verify is
    // clean; `seispipe report` writes the same bytes and leaves the manifest
    // as it was.
    assert_eq!(m["report"], "report.html");
    let before = sha(&out.join("report.html"));
    run_ok(dir, &["verify", "out/aug"]);
    let manifest_bytes = std::fs::read(out.join("manifest.json")).unwrap();
    run_ok(dir, &["report", "out/aug"]);
    assert_eq!(before, sha(&out.join("report.html")));
    assert_eq!(
        manifest_bytes,
        std::fs::read(out.join("manifest.json")).unwrap()
    );
}

/// `run --no-report` leaves the report out (the manifest still names it,
/// verify is clean) and `seispipe report` writes it later.
#[test]
fn run_without_a_report_leaves_it_to_seispipe_report() {
    let t = util::tempdir();
    let dir = t.path();
    inputs(dir);
    let p = pipe(dir, "quiet", "copies = 1", FLIP_ALWAYS, "");
    run_ok(dir, &["run", "-q", "--no-report", &p]);
    let out = dir.join("out/quiet");
    assert!(out.join("manifest.json").is_file());
    assert!(!out.join("report.html").exists());
    assert_eq!(manifest(&out)["report"], "report.html");
    run_ok(dir, &["verify", "out/quiet"]);
    run_ok(dir, &["report", "out/quiet"]);
    let doc = report_of(&out);
    assert_eq!(select(&doc, "#previews img").len(), 1);
    run_ok(dir, &["verify", "out/quiet"]);
}

#[test]
fn report_flags_a_misscaled_shard_and_shows_resumed_runs() {
    let t = util::tempdir();
    let dir = t.path();
    // Four files of 4 samples, one 100 times louder; one shard each.
    for k in 1..=4u64 {
        let scale = if k == 3 { 1000.0 } else { 10.0 };
        let d = dir.join(format!("in/CurveVel_A/data/data{k}.npy"));
        write_npy(
            &d,
            DType::F32,
            &[4, 5, 1000, 70],
            &util::pseudo_random(4 * 350_000, k, scale),
        );
        write_npy(
            &dir.join(format!("in/CurveVel_A/model/model{k}.npy")),
            DType::F32,
            &[4, 1, 70, 70],
            &vec![3000.0; 4 * 4900],
        );
    }
    let p = pipe(
        dir,
        "loud",
        "copies = 1\nkeep_original = false",
        FLIP_ALWAYS,
        "samples_per_shard = 4",
    );
    run_ok(dir, &["run", "-q", &p]);
    let out = dir.join("out/loud");
    let doc = report_of(&out);
    assert_eq!(
        text_of(&doc, "#misscaled"),
        "Possibly mis-scaled: shard 3 (data)"
    );
    let rms: Vec<f64> = select(&doc, "#shard-values tr[data-rms]")
        .iter()
        .map(|r| attr(r, "data-rms").parse().unwrap())
        .collect();
    assert_eq!(rms.len(), 4);
    // Uniform on ±scale: RMS = scale / √3.
    for (k, r) in rms.iter().enumerate() {
        let want = if k == 2 { 1000.0 } else { 10.0 } / 3f64.sqrt();
        assert!(
            (r / want - 1.0).abs() < 0.01,
            "shard {}: {r} vs {want}",
            k + 1
        );
    }

    // Undo the last shard (as if killed before it), run again: two runs.
    let journal = out.join(".seispipe/journal.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&journal, lines[..3].join("\n") + "\n").unwrap();
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    std::fs::remove_file(out.join("data/data4.npy")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    run_ok(dir, &["run", "-q", &p]);
    let doc = report_of(&out);
    assert_eq!(select(&doc, "#runs tr").len(), 3, "a header and two runs");
    assert_eq!(
        select(&doc, "#throughput path[stroke-dasharray]").len(),
        1,
        "the resumed run's start"
    );

    // A journal without times (an older seispipe): said so.
    let plain: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("run_started_at");
            o.remove("finished_at");
            v.to_string()
        })
        .collect();
    std::fs::write(&journal, plain.join("\n") + "\n").unwrap();
    run_ok(dir, &["report", "out/loud"]);
    let doc = report_of(&out);
    assert!(text_of(&doc, "#throughput").contains("carry no times"));
    run_ok(dir, &["verify", "out/loud"]);

    // A report that cannot be written fails the run, saying the output is complete.
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::create_dir_all(out.join("report.html/in-the-way")).unwrap();
    let o = seispipe(dir, &["run", "-q", &p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the run finished") && err.contains("seispipe report"),
        "{err}"
    );
}

/// Chromium for the screenshot test (tests/setup/chromium.sh installs it).
fn chromium(test: &str) -> Option<PathBuf> {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(o) = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
        {
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() && !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    let msg = format!(
        "{test}: SKIPPED — no chromium (tests/setup/chromium.sh installs it; `make test` runs it)"
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (a skip is a failure under CI)"
    );
    let _ = writeln!(std::io::stderr(), "{msg}");
    None
}

#[test]
fn demo_report_renders_in_headless_chromium() {
    let Some(chrome) = chromium("demo_report_renders_in_headless_chromium") else {
        return;
    };
    let t = util::tempdir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = t.path().join("demo");
    let o = util::bin()
        .current_dir(root)
        .args(["run", "-q", "pipelines/demo.toml", "--set"])
        .arg(format!("output.dir={}", out.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let shot = t.path().join("shot.png");
    let (w, h) = (1280usize, 3200usize);
    let o = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            t.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    assert!(shot.is_file(), "no screenshot: {}", text(&o));
    let (sw, sh, rgb) = decode_png(&shot);
    assert_eq!((sw, sh), (w, h));
    // The previews' colours are on the page…
    let (red, blue, yellow) = colour_counts(&rgb);
    assert!(
        red > 5000 && blue > 5000 && yellow > 2000,
        "{red} {blue} {yellow}"
    );
    // …and where they are, the picture varies: 64-pixel tiles holding
    // seismic colours have a large spread of brightness.
    let lum = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        0.299 * f64::from(rgb[i]) + 0.587 * f64::from(rgb[i + 1]) + 0.114 * f64::from(rgb[i + 2])
    };
    let mut image_tiles = 0;
    for ty in 0..h / 64 {
        for tx in 0..w / 64 {
            let px: Vec<(usize, usize)> = (0..64)
                .flat_map(|y| (0..64).map(move |x| (tx * 64 + x, ty * 64 + y)))
                .collect();
            let coloured = px
                .iter()
                .filter(|&&(x, y)| {
                    let i = (y * w + x) * 3;
                    (rgb[i] > 180 && rgb[i + 1] < 60) || (rgb[i + 2] > 180 && rgb[i] < 60)
                })
                .count();
            if coloured < 200 {
                continue;
            }
            let mean = px.iter().map(|&(x, y)| lum(x, y)).sum::<f64>() / px.len() as f64;
            let var = px
                .iter()
                .map(|&(x, y)| (lum(x, y) - mean).powi(2))
                .sum::<f64>()
                / px.len() as f64;
            assert!(
                var.sqrt() > 10.0,
                "tile ({tx}, {ty}) is flat: σ = {}",
                var.sqrt()
            );
            image_tiles += 1;
        }
    }
    assert!(image_tiles >= 20, "{image_tiles} tiles of preview images");
    // The text above them rendered too: the top of the page is not blank.
    let top: Vec<f64> = (0..400)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| lum(x, y))
        .collect();
    assert!(
        top.iter().filter(|&&l| l < 128.0).count() > 2000,
        "no text at the top"
    );
}
