//! `seispipe preview`: one PNG per chosen sample. The sample's gathers (or
//! spectrogram panels) and velocity map; for an augmented copy, the input it
//! was made from beside it and their difference; a caption with where it is,
//! the stages applied with their drawn parameters, and how it is clipped.
//! The same inputs and options give the same bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use serde_json::Value;

use super::canvas::{Align, Canvas, GREY, INK, WHITE};
use super::colormap::ColorMap;
use super::figure::{self, Spectrogram, ABOVE, BELOW, GATHER_H, SPEC, TITLE, VEL};
use super::font;
use super::source::{Before, SampleView, Source};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::manifest::{Manifest, Provenance};
use crate::sample::SEISMIC_SHAPE;

/// Which samples to preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These, by position in the path (0-based).
    Indices(Vec<usize>),
    /// `n` distinct samples drawn with ChaCha8 from `seed`, in order.
    Random {
        /// How many.
        n: usize,
        /// The seed.
        seed: u64,
    },
}

/// What `seispipe preview` was asked for.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// Which samples.
    pub selection: Selection,
    /// The folder the PNGs go to.
    pub out: PathBuf,
    /// Gathers are clipped at ± this percentile of |amplitude|.
    pub clip_percentile: f64,
    /// Where inputs are looked for first (else the manifest's `input_root`).
    pub input_root: Option<PathBuf>,
}

/// A sample and the one it is compared with, as a preview pairs them.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The sample.
    pub after: SampleView,
    /// What it was made from (the original kept in the same output, or the
    /// input sample), when it is an augmented copy and that was found.
    pub before: Option<SampleView>,
    /// Why there is no `before` although it is a copy.
    pub missing: Option<String>,
}

/// Sample `index` of `path` and what it was made from, found through its
/// provenance (see [`preview`] for the paths and `input_root`).
///
/// # Errors
/// As [`preview`].
pub fn pair(path: &Path, index: usize, input_root: Option<PathBuf>) -> Result<Pair> {
    let source = Source::open(path, input_root)?;
    let after = source.sample(index)?;
    let (before, missing) = match source.before(index, &after) {
        Before::Found(b) => (Some(*b), None),
        Before::Missing(why) => (None, Some(why)),
        Before::NotACopy => (None, None),
    };
    Ok(Pair {
        after,
        before,
        missing,
    })
}

/// The default clipping percentile.
pub const DEFAULT_CLIP_PERCENTILE: f64 = 99.0;

/// Write one PNG per selected sample of `path` into `opts.out`; returns the
/// files written.
///
/// # Errors
/// An unreadable path, an index out of range, a corrupt shard (named with
/// the index in it), or a PNG that cannot be written.
pub fn preview(path: &Path, opts: &PreviewOptions) -> Result<Vec<PathBuf>> {
    if !(opts.clip_percentile > 0.0 && opts.clip_percentile <= 100.0) {
        return Err(Error::config(
            "--clip-percentile",
            format!(
                "{} is out of range; expected 0 < p ≤ 100",
                opts.clip_percentile
            ),
        ));
    }
    let source = Source::open(path, opts.input_root.clone())?;
    let indices = select(&source, &opts.selection)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, "create directory", e))?;
    let stem = path.file_stem().map_or_else(
        || "sample".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut written = Vec::new();
    for i in indices {
        let png = render(&source, i, opts.clip_percentile, None)?;
        let file = opts.out.join(format!("{stem}-{i}.png"));
        atomic::write_atomic(&file, &png)?;
        written.push(file);
    }
    Ok(written)
}

/// The sample positions a selection names, checked against the path.
fn select(source: &Source, sel: &Selection) -> Result<Vec<usize>> {
    match sel {
        Selection::Indices(v) => {
            for &i in v {
                source.check_index(i)?;
            }
            Ok(v.clone())
        }
        Selection::Random { n, seed } => {
            let len = source.len();
            if *n > len {
                return Err(Error::config(
                    "--random",
                    format!(
                        "{n} samples asked for, but {} holds {len}",
                        source.path.display()
                    ),
                ));
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            let mut v = rand::seq::index::sample(&mut rng, len, *n).into_vec();
            v.sort_unstable();
            Ok(v)
        }
    }
}

/// The value at percentile `p` (0–100) of |v| over the finite values, with
/// numpy's default linear interpolation; 0 when there are none.
#[must_use]
pub fn abs_percentile(values: &[f32], p: f64) -> f32 {
    let mut a: Vec<f32> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if a.is_empty() {
        return 0.0;
    }
    let pos = p / 100.0 * (a.len() - 1) as f64;
    let k = pos.floor() as usize;
    let frac = (pos - k as f64) as f32;
    let (_, &mut lo, upper) = a.select_nth_unstable_by(k, f32::total_cmp);
    let hi = upper.iter().copied().fold(f32::INFINITY, f32::min);
    if frac > 0.0 && hi.is_finite() {
        lo + (hi - lo) * frac
    } else {
        lo
    }
}

/// The (min, max) of the finite values of several maps.
fn range(maps: &[&[f32]]) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in maps.iter().flat_map(|m| m.iter()).filter(|v| v.is_finite()) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// A number in a caption: integers as they are, others to 4 significant digits.
fn num(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
                format!("{x:.3e}")
            } else {
                let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
                let s = format!("{x:.digits$}");
                if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            }
        }
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k} {}", num(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "[i] type (spec params): applied, k = v, …" for each stage of a record.
fn stage_lines(rec: &Provenance, m: Option<&Manifest>) -> Vec<String> {
    let stages = &rec.stages;
    if stages.is_empty() {
        return vec!["stages: none (the original)".into()];
    }
    stages
        .iter()
        .map(|st| {
            let i = st.stage;
            let kind = st.kind.as_str();
            let spec = m
                .and_then(|m| m.pipeline["stages"].get(i))
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "type")
                        .map(|(k, v)| format!("{k} {}", num(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let mut s = format!("[{i}] {kind}");
            if !spec.is_empty() {
                let _ = write!(s, " ({spec})");
            }
            s.push_str(match st.applied() {
                Some(true) => ": applied",
                Some(false) => ": not applied",
                None => "",
            });
            for (k, v) in &st.fields {
                if k != "applied" {
                    let _ = write!(s, ", {k} = {}", num(v));
                }
            }
            s
        })
        .collect()
}

/// Break `text` into lines no wider than `width` pixels at `size`.
fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if font::width(&candidate, size) > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line = format!("    {word}");
        } else {
            line = candidate;
        }
    }
    lines.push(line);
    lines
}

/// One row of the figure: its heading and what it draws.
struct Row {
    heading: String,
    sample: SampleView,
    /// Seismic clip (gathers) or `None` for spectrogram panels.
    clip: Option<f32>,
    /// Velocity colour map, range, colour-bar label and title.
    velocity: Option<(ColorMap, (f32, f32), &'static str, &'static str)>,
}

/// The spectrogram layout of a sample shape, from the manifest's `stage_info`.
fn spectrogram_info<'a>(m: Option<&'a Manifest>, shape: &[usize]) -> Option<&'a Value> {
    m?.stage_info.values().find(|info| {
        info["shape"].as_array().is_some_and(|s| {
            s.len() == shape.len()
                && s.iter()
                    .zip(shape)
                    .all(|(a, b)| a.as_u64() == Some(*b as u64))
        }) && info["freqs_hz"].is_array()
    })
}

/// The caption's first lines: where the sample is, and its stages.
fn caption_head(source: &Source, i: usize, after: &SampleView) -> Vec<String> {
    let mut caption = vec![format!(
        "{} · sample {i} of {} · {}",
        source.path.display(),
        source.len(),
        after.place
    )];
    if let Some(rec) = &after.record {
        let _ = write!(
            caption[0],
            " · id {} · copy {}",
            rec.sample.id, rec.sample.copy
        );
        caption.extend(stage_lines(rec, source.manifest()));
    }
    caption
}

/// The PNG of sample `i` of `source`: the one a draft drew of the same
/// pixels, if `drafts` has it (see [`super::Drafts`]), else encoded here.
///
/// # Errors
/// An index out of range, an unreadable sample, or a shape that has no picture.
pub(super) fn render(
    source: &Source,
    i: usize,
    clip_percentile: f64,
    drafts: Option<&super::Drafts>,
) -> Result<Vec<u8>> {
    let canvas = picture(source, i, clip_percentile)?;
    Ok(drafts
        .and_then(|d| d.png_of(&canvas))
        .unwrap_or_else(|| canvas.png()))
}

/// The picture of sample `i` of `source`, before PNG encoding.
///
/// # Errors
/// As [`render`].
pub(super) fn picture(source: &Source, i: usize, clip_percentile: f64) -> Result<Canvas> {
    let after = source.sample(i)?;
    let m = source.manifest();
    let spec_info = spectrogram_info(m, &after.shape);
    let drawable = after.shape.is_empty() || after.shape == SEISMIC_SHAPE || spec_info.is_some();
    if !drawable {
        return Err(Error::Sample {
            path: source.path.clone(),
            index: i,
            reason: format!(
                "has shape {:?}, which preview cannot draw (expected (5, 1000, 70) seismic or a spectrogram recorded in the manifest's stage_info)",
                after.shape
            ),
        });
    }
    let mut caption = caption_head(source, i, &after);
    let before = source.before(i, &after);
    match &before {
        Before::Found(b) => caption.push(format!("before: {}", b.place)),
        Before::Missing(why) => caption.push(format!("before: not shown: {why}")),
        Before::NotACopy if source.manifest().is_none() => {
            caption.push("no manifest: no provenance, no before/after".into());
        }
        Before::NotACopy => {}
    }
    let clip = (!after.values.is_empty() && spec_info.is_none())
        .then(|| abs_percentile(&after.values, clip_percentile));
    let mut rows = Vec::new();
    let before = match before {
        Before::Found(b) => Some(*b),
        _ => None,
    };
    let maps: Vec<&[f32]> = [
        after.velocity.as_deref(),
        before.as_ref().and_then(|b| b.velocity.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let vrange = range(&maps);
    let vel = |s: &SampleView| {
        s.velocity
            .as_ref()
            .map(|_| (ColorMap::Viridis, vrange, "velocity (m/s)", "velocity map"))
    };
    let p = clip_percentile;
    match (clip, spec_info) {
        (Some(c), _) => caption.push(format!(
            "gathers clipped at ±{} (the {p}th percentile of |amplitude| of this sample){}",
            num(&Value::from(f64::from(c))),
            if before.is_some() {
                ", before and after alike"
            } else {
                ""
            }
        )),
        (None, Some(info)) => caption.push(format!(
            "spectrograms: {} of receiver {} of each source",
            info["formula"].as_str().unwrap_or("values"),
            after.shape[3] / 2
        )),
        (None, None) => {}
    }
    let after_velocity = vel(&after);
    rows.push(Row {
        heading: if before.is_some() {
            "after (this sample)".into()
        } else {
            "this sample".into()
        },
        sample: after.clone(),
        clip,
        velocity: after_velocity,
    });
    if let Some(b) = before {
        let b_clip = if b.shape == SEISMIC_SHAPE {
            Some(clip.unwrap_or_else(|| abs_percentile(&b.values, p)))
        } else {
            None
        };
        let same_shape = b.shape == after.shape;
        let v = vel(&b);
        rows.push(Row {
            heading: format!("before ({})", b.place),
            sample: b.clone(),
            clip: b_clip,
            velocity: v,
        });
        if same_shape && after.shape == SEISMIC_SHAPE {
            rows.push(difference(&after, &b, p, &mut caption));
        } else if !same_shape {
            caption.push("no difference row: the stages changed the sample's shape".into());
        }
    }
    Ok(draw(&caption, &rows, spec_info))
}

/// The row of after − before (seismic and velocity), and its caption line.
fn difference(after: &SampleView, b: &SampleView, p: f64, caption: &mut Vec<String>) -> Row {
    let values: Vec<f32> = after
        .values
        .iter()
        .zip(&b.values)
        .map(|(a, b)| a - b)
        .collect();
    let dclip = abs_percentile(&values, p);
    let velocity = match (&after.velocity, &b.velocity) {
        (Some(a), Some(bv)) => Some(a.iter().zip(bv).map(|(a, b)| a - b).collect::<Vec<f32>>()),
        _ => None,
    };
    let dv = velocity
        .as_deref()
        .map_or(0.0, |d| abs_percentile(d, 100.0));
    caption.push(format!(
        "difference clipped at ±{} (the {p}th percentile of |after − before|); velocity difference ±{} m/s",
        num(&Value::from(f64::from(dclip))),
        num(&Value::from(f64::from(dv)))
    ));
    Row {
        heading: "difference (after − before)".into(),
        sample: SampleView {
            place: String::new(),
            values,
            shape: after.shape.clone(),
            velocity,
            record: None,
        },
        clip: Some(dclip),
        velocity: Some((
            ColorMap::Seismic,
            (-dv, dv),
            "Δ velocity (m/s)",
            "velocity difference",
        )),
    }
}

/// Lay the caption and the rows out on a canvas.
fn draw(caption: &[String], rows: &[Row], spec_info: Option<&Value>) -> Canvas {
    const MARGIN: i64 = 16;
    // The caption wraps at this width; the picture is as wide as its widest
    // row (drawn on a wider canvas, then cut).
    const WIDTH: i64 = 1180;
    const ROOM: i64 = 2000;
    let lh = font::line_height(TITLE).ceil() as i64 + 2;
    let lines: Vec<String> = caption
        .iter()
        .flat_map(|l| wrap(l, TITLE, (WIDTH - 2 * MARGIN) as f32))
        .collect();
    let spectrogram = |row: &Row| row.clip.is_none() && row.sample.shape.len() == 4;
    let row_h = |row: &Row| {
        let blocks = [
            row.clip.map(|_| GATHER_H),
            spectrogram(row).then_some(SPEC),
            row.sample.velocity.as_ref().map(|_| VEL),
        ];
        lh + 6 + ABOVE + blocks.into_iter().flatten().max().unwrap_or(0) + BELOW + 10
    };
    let height =
        MARGIN + lines.len() as i64 * lh + 8 + rows.iter().map(row_h).sum::<i64>() + MARGIN;
    let mut c = Canvas::new(ROOM as usize, height as usize, WHITE);
    let mut y = MARGIN;
    for l in &lines {
        c.text(MARGIN, y, l, TITLE, INK, Align::Left);
        y += lh;
    }
    y += 8;
    let mut used = WIDTH - MARGIN;
    let mut headings = Vec::new();
    for row in rows {
        headings.push(y);
        let top = y + lh + 6;
        let mut x = MARGIN;
        let s = &row.sample;
        if let Some(clip) = row.clip {
            let label = if row.heading.starts_with("difference") {
                "after − before"
            } else {
                "amplitude"
            };
            x += figure::gathers(
                &mut c,
                x,
                top,
                &s.values,
                clip.max(f32::MIN_POSITIVE),
                label,
            ) + 24;
        } else if let (Some(info), true) = (spec_info, spectrogram(row)) {
            x += spectrogram_block(&mut c, x, top, s, info) + 24;
        }
        if let (Some(v), Some((map, r, unit, title))) = (&s.velocity, row.velocity) {
            x += figure::velocity(&mut c, x, top, v, map, r, title, unit);
        }
        used = used.max(x);
        y += row_h(row);
    }
    let width = used + MARGIN;
    for (row, &hy) in rows.iter().zip(&headings) {
        c.fill(MARGIN, hy + lh / 2, width - 2 * MARGIN, 1, [210, 210, 210]);
        c.fill(
            MARGIN,
            hy,
            font::width(&row.heading, TITLE) as i64 + 12,
            lh,
            WHITE,
        );
        c.text(MARGIN + 4, hy, &row.heading, TITLE, GREY, Align::Left);
    }
    c.crop(width as usize)
}

/// The spectrogram panels of `s` (channels are sources, or Re/Im pairs).
fn spectrogram_block(c: &mut Canvas, x: i64, y: i64, s: &SampleView, info: &Value) -> i64 {
    let floats = |k: &str| -> Vec<f64> {
        info[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (freqs, times) = (floats("freqs_hz"), floats("frame_times_s"));
    let shape = [s.shape[0], s.shape[1], s.shape[2], s.shape[3]];
    if freqs.len() != shape[1] || times.len() != shape[2] {
        return 0;
    }
    let pairs = info["axes"][0].as_str() == Some("channel");
    let channels = if pairs {
        (0..shape[0] / 2)
            .take(5)
            .map(|k| (2 * k, format!("source {} · Re", k + 1)))
            .collect()
    } else {
        (0..shape[0])
            .take(5)
            .map(|k| (k, format!("source {}", k + 1)))
            .collect()
    };
    figure::spectrograms(
        c,
        x,
        y,
        &Spectrogram {
            values: &s.values,
            shape,
            freqs_hz: &freqs,
            frame_times_s: &times,
            channels,
            receiver: shape[3] / 2,
            unit: info["formula"].as_str().unwrap_or("value").to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile(abs([-4, 1, 3, 2, nan]), p) for the finite values.
        let v = [-4.0, 1.0, 3.0, 2.0, f32::NAN];
        assert_eq!(abs_percentile(&v, 100.0), 4.0);
        assert_eq!(abs_percentile(&v, 0.0), 1.0);
        assert_eq!(abs_percentile(&v, 50.0), 2.5);
        assert!((abs_percentile(&v, 90.0) - 3.7).abs() < 1e-6);
        assert_eq!(abs_percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn captions_read_well() {
        assert_eq!(num(&Value::from(0.160_982_280_969_619_75)), "0.161");
        assert_eq!(num(&Value::from(2.0)), "2");
        assert_eq!(num(&Value::from(20)), "20");
        assert_eq!(num(&Value::from(1234.5678)), "1235");
        let rec: Provenance = serde_json::from_value(serde_json::json!({
        "output_index": 0, "id": "a#0", "input": "a", "input_index": 0, "copy": 1,
        "stages": [
            {"stage": 0, "type": "flip", "applied": false},
            {"stage": 1, "type": "gaussian_noise", "applied": true, "std": 0.25},
        ]}))
        .unwrap();
        assert_eq!(
            stage_lines(&rec, None),
            vec![
                "[0] flip: not applied",
                "[1] gaussian_noise: applied, std = 0.25"
            ]
        );
        let lines = wrap("a b c d e f g h", TITLE, 30.0);
        assert!(lines.len() > 2, "{lines:?}");
    }
}
