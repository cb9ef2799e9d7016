//! The report's sections after the previews: drawn stage parameters,
//! values per shard, throughput over time, disk use (see [`super::html`]).

use std::fmt::Write as _;
use std::path::Path;

use super::stats::{self, Field, Quantiles, ShardSample, Timeline};
use super::svg::{self, esc, fmt};
use super::ReportOptions;
use crate::io::manifest::Manifest;
use crate::progress::human_bytes;

/// A shard whose sampled RMS amplitude is this many times above or below the
/// median shard's is flagged as possibly mis-scaled.
const MISSCALED_FACTOR: f64 = 3.0;

pub(super) fn params_section(h: &mut String, params: &[stats::StageParams]) {
    h.push_str("<section id=\"parameters\"><h2>Drawn stage parameters</h2>\n<p class=\"note\">From the provenance record of every output sample.</p>\n");
    if params.is_empty() {
        h.push_str("<p>no stages</p>\n");
    }
    for p in params {
        let _ = writeln!(
            h,
            "<div class=\"stage\" data-stage=\"{}\" data-applied=\"{}\" data-not-applied=\"{}\"><h3>[{}] {}</h3>",
            p.index,
            p.applied,
            p.not_applied,
            p.index,
            esc(&p.kind)
        );
        let total = p.applied + p.not_applied;
        if total > 0 {
            let _ = writeln!(
                h,
                "<div class=\"param\">applied: {} of {total} ({:.1} %)<br>{}</div>",
                p.applied,
                100.0 * p.applied as f64 / total as f64,
                svg::categories(&[("yes".into(), p.applied), ("no".into(), p.not_applied)])
            );
        }
        for (key, field) in &p.fields {
            match field {
                Field::Numbers(v) if !v.is_empty() => {
                    let (lo, hi) = v
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let _ = writeln!(
                        h,
                        "<div class=\"param\" data-stage=\"{}\" data-key=\"{}\" data-n=\"{}\" data-min=\"{lo}\" data-mean=\"{mean}\" data-max=\"{hi}\"><b>{}</b>: {} values, min {}, mean {}, max {}<br>{}</div>",
                        p.index,
                        esc(key),
                        v.len(),
                        esc(key),
                        v.len(),
                        fmt(lo),
                        fmt(mean),
                        fmt(hi),
                        svg::histogram(v, key)
                    );
                }
                Field::Numbers(_) => {}
                Field::Categories { counts, more } => {
                    let mut bars: Vec<(String, usize)> =
                        counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
                    if *more > 0 {
                        bars.push((
                            format!("(other values, {MAX} shown)", MAX = counts.len()),
                            *more,
                        ));
                    }
                    let n: usize = bars.iter().map(|b| b.1).sum();
                    let _ = writeln!(
                        h,
                        "<div class=\"param\" data-stage=\"{}\" data-key=\"{}\" data-n=\"{n}\"><b>{}</b>: {n} values<br>{}</div>",
                        p.index,
                        esc(key),
                        esc(key),
                        svg::categories(&bars)
                    );
                }
            }
        }
        h.push_str("</div>\n");
    }
    h.push_str("</section>\n");
}

/// Shards whose value is more than `factor` times off the median shard's.
fn outliers(values: &[(usize, f64)], factor: f64) -> Vec<usize> {
    let mut v: Vec<f64> = values
        .iter()
        .map(|x| x.1)
        .filter(|x| x.is_finite())
        .collect();
    if v.len() < 3 {
        return Vec::new();
    }
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    values
        .iter()
        .filter(|(_, x)| median > 0.0 && (*x > median * factor || *x < median / factor))
        .map(|x| x.0)
        .collect()
}

pub(super) fn distributions_section(
    h: &mut String,
    m: &Manifest,
    sampled: &[ShardSample],
    opts: &ReportOptions,
) {
    let _ = writeln!(
        h,
        "<section id=\"distributions\"><h2>Values per shard</h2>\n<p class=\"note\">Sampled: {} samples of each shard, spread over it; of each, one channel (source) of the data, and its velocity map. Boxes span the 25th to 75th percentile, lines the 1st to 99th, the dark tick is the median, the orange dot the RMS; shards whose RMS is over {MISSCALED_FACTOR}× off the median shard's are red.</p>",
        opts.samples_per_shard
    );
    let data: Vec<(usize, Quantiles)> = sampled
        .iter()
        .filter_map(|s| s.data.map(|q| (s.index, q)))
        .collect();
    let vel: Vec<(usize, Quantiles)> = sampled
        .iter()
        .filter_map(|s| s.velocity.map(|q| (s.index, q)))
        .collect();
    let flagged = outliers(
        &data.iter().map(|(i, q)| (*i, q.rms)).collect::<Vec<_>>(),
        MISSCALED_FACTOR,
    );
    let vflagged = outliers(
        &vel.iter().map(|(i, q)| (*i, q.p50)).collect::<Vec<_>>(),
        1.5,
    );
    let what = if m.stage_info.values().any(|i| i["freqs_hz"].is_array()) {
        "spectrogram value"
    } else {
        "amplitude"
    };
    let _ = writeln!(
        h,
        "<h3>Data ({what})</h3>{}",
        svg::shard_ranges(&data, &flagged, what)
    );
    if !vel.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Velocity (m/s)</h3>{}",
            svg::shard_ranges(&vel, &vflagged, "velocity (m/s)")
        );
    }
    if flagged.is_empty() && vflagged.is_empty() {
        h.push_str("<p id=\"misscaled\">No shard stands out.</p>\n");
    } else {
        let list: Vec<String> = flagged
            .iter()
            .map(|i| format!("shard {i} (data)"))
            .chain(vflagged.iter().map(|i| format!("shard {i} (velocity)")))
            .collect();
        let _ = writeln!(
            h,
            "<p id=\"misscaled\" class=\"flag\">Possibly mis-scaled: {}</p>",
            list.join(", ")
        );
    }
    h.push_str("<details><summary>the numbers</summary><table id=\"shard-values\"><tr><th>shard</th><th>samples read</th><th>data p1</th><th>median</th><th>p99</th><th>RMS</th><th>non-finite</th><th>velocity min</th><th>median</th><th>max</th></tr>\n");
    for s in sampled {
        if let Some(e) = &s.error {
            let _ = writeln!(
                h,
                "<tr data-shard=\"{}\"><td>{}</td><td colspan=\"9\" class=\"flag\">{}</td></tr>",
                s.index,
                s.index,
                esc(e)
            );
            continue;
        }
        let q =
            |q: Option<Quantiles>, f: fn(&Quantiles) -> f64| q.map_or("—".into(), |q| fmt(f(&q)));
        let _ = writeln!(
            h,
            "<tr data-shard=\"{}\" data-rms=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            s.index,
            s.data.map_or(f64::NAN, |d| d.rms),
            s.index,
            s.samples_read,
            q(s.data, |q| q.p1),
            q(s.data, |q| q.p50),
            q(s.data, |q| q.p99),
            q(s.data, |q| q.rms),
            s.data.map_or(0, |d| d.nonfinite),
            q(s.velocity, |q| q.min),
            q(s.velocity, |q| q.p50),
            q(s.velocity, |q| q.max)
        );
    }
    h.push_str("</table></details></section>\n");
}

pub(super) fn throughput_section(h: &mut String, t: &Timeline) {
    h.push_str("<section id=\"throughput\"><h2>Throughput over time</h2>\n");
    match t {
        Timeline::NoJournal => h.push_str("<p class=\"note\">No journal here (a Kaggle part carries none; the output it was packaged from has it).</p>\n"),
        Timeline::NoTimes(n) => {
            let _ = writeln!(h, "<p class=\"note\">The journal's {n} lines carry no times (written by a seispipe that did not record them).</p>");
        }
        Timeline::Timed { runs, shards } => {
            let _ = writeln!(h, "<p class=\"note\">From the journal: when each shard was finished, and by which run; a dashed line is a resumed run's start. Samples per second of a shard = its samples over the time since the run's previous shard (or the run's start).</p>{}", svg::throughput(shards, runs));
            h.push_str("<table id=\"runs\"><tr><th>run</th><th>started (UTC)</th><th>shards</th><th>samples</th><th>wall time</th><th>samples/s</th><th>MB/s</th></tr>\n");
            for (k, &start) in runs.iter().enumerate() {
                let mine: Vec<&stats::Finished> = shards.iter().filter(|f| f.run == k).collect();
                let samples: usize = mine.iter().map(|f| f.samples).sum();
                let bytes: u64 = mine.iter().map(|f| f.bytes).sum();
                let wall: f64 = mine.iter().map(|f| f.took).sum();
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{samples}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    k + 1,
                    stats::utc(start),
                    mine.len(),
                    duration(wall),
                    fmt(samples as f64 / wall.max(1e-3)),
                    fmt(bytes as f64 / 1e6 / wall.max(1e-3))
                );
            }
            h.push_str("</table>\n");
        }
    }
    h.push_str("</section>\n");
}

/// Seconds as people read them: "42.0 s", "12.5 min", "3.2 h".
fn duration(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 3.0 * 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub(super) fn disk_section(h: &mut String, dir: &Path, m: &Manifest) {
    let lines = stats::disk(dir, m);
    h.push_str("<section id=\"disk\"><h2>Disk used</h2>\n<table><tr><th>what</th><th>files</th><th>bytes</th><th>allocated on disk</th></tr>\n");
    let mb = |b: u64| format!("{b} <span class=\"note\">({})</span>", human_bytes(b));
    for l in &lines {
        let _ = writeln!(
            h,
            "<tr data-what=\"{}\" data-files=\"{}\" data-bytes=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&l.what),
            l.files,
            l.bytes,
            esc(&l.what),
            l.files,
            mb(l.bytes),
            mb(l.allocated)
        );
    }
    let (files, bytes, alloc) = lines.iter().fold((0, 0, 0), |a, l| {
        (a.0 + l.files, a.1 + l.bytes, a.2 + l.allocated)
    });
    let _ = writeln!(
        h,
        "<tr><th>total (manifest.json and this report left out)</th><td class=\"num\">{files}</td><td class=\"num\" id=\"bytes-total\" data-bytes=\"{bytes}\">{}</td><td class=\"num\">{}</td></tr></table></section>",
        mb(bytes),
        mb(alloc)
    );
}
