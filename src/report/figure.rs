//! The blocks a preview is made of, drawn onto a [`Canvas`]: five shot
//! gathers (time down, offset across, `seismic` clipped at ±clip), a
//! velocity map (`viridis`, colour bar in m/s), spectrogram panels
//! (frequency up, frame time across), each with its axes in physical units
//! and its colour bar. Every block returns the width it used.

use super::canvas::{Align, Canvas, GREY, INK};
use super::colormap::{scale, ColorMap};
use crate::physics::{DT, DX, NT, NX, SOURCE_X};

/// Label text size.
pub(super) const LABEL: f32 = 12.0;
/// Panel-title text size.
pub(super) const TITLE: f32 = 13.0;
/// Left margin for y tick labels and the turned axis label.
const LEFT: i64 = 62;
/// Space above a panel for its title.
pub(super) const ABOVE: i64 = 20;
/// Space below a panel for tick labels and the axis label.
pub(super) const BELOW: i64 = 42;
/// Gather panel size (70 receivers, 1000 time samples).
pub(super) const GATHER_W: i64 = 98;
/// Gather panel height.
pub(super) const GATHER_H: i64 = 300;
const GAP: i64 = 14;
/// Velocity panel size (70 × 70 cells of 10 m).
pub(super) const VEL: i64 = 210;
/// Spectrogram panel size.
pub(super) const SPEC: i64 = 120;
const BAR_W: i64 = 12;

/// A linear axis: the data values at the two ends of a panel side.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    /// Value at the left (x) or top (y) end.
    pub from: f64,
    /// Value at the right (x) or bottom (y) end.
    pub to: f64,
}

/// Round tick values between `a` and `b`, at most `max` of them (and at
/// most seven).
pub(super) fn ticks(a: f64, b: f64, max: usize) -> Vec<f64> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let max = max.clamp(2, 7) as f64;
    // step = mantissa · 10^e; ticks are k · mantissa scaled by 10^e in one
    // rounding, so 3 · 0.2 prints as 0.6.
    let e = (span / max).log10().floor() as i32;
    let scaled = |m: f64| {
        if e < 0 {
            m / 10f64.powi(-e)
        } else {
            m * 10f64.powi(e)
        }
    };
    let mantissa = [1.0, 2.0, 2.5, 5.0, 10.0, 20.0]
        .into_iter()
        .find(|&m| (span / scaled(m)).floor() + 1.0 <= max)
        .unwrap_or(20.0);
    let step = scaled(mantissa);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| scaled(k as f64 * mantissa))
        .collect()
}

/// A tick label: as few decimals as the step needs.
pub(super) fn tick_label(v: f64, all: &[f64]) -> String {
    let step = if all.len() > 1 {
        (all[1] - all[0]).abs()
    } else {
        1.0
    };
    // The fewest decimals that write the step exactly (0.25 → 2, 200 → 0).
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    let s = format!("{v:.decimals$}");
    // "-0" and "-0.0" read as 0.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        "0".to_string()
    } else {
        s.replace('-', "−")
    }
}

/// Ticks and labels under a panel at (x, y) of width w, height h.
fn x_axis(c: &mut Canvas, x: i64, y: i64, w: i64, h: i64, axis: Axis, label: &str) {
    let t = ticks(axis.from, axis.to, (w / 34) as usize);
    for &v in &t {
        let px = x + ((v - axis.from) / (axis.to - axis.from) * (w - 1) as f64).round() as i64;
        c.fill(px, y + h, 1, 4, INK);
        c.text(px, y + h + 5, &tick_label(v, &t), LABEL, INK, Align::Center);
    }
    c.text(x + w / 2, y + h + 22, label, LABEL, GREY, Align::Center);
}

/// Ticks and labels left of a panel; the turned axis label when `label` is given.
fn y_axis(c: &mut Canvas, x: i64, y: i64, h: i64, axis: Axis, label: Option<&str>) {
    let t = ticks(axis.from, axis.to, (h / 36) as usize);
    let lh = super::font::line_height(LABEL) as i64;
    for &v in &t {
        let py = y + ((v - axis.from) / (axis.to - axis.from) * (h - 1) as f64).round() as i64;
        c.fill(x - 4, py, 4, 1, INK);
        c.text(
            x - 6,
            py - lh / 2,
            &tick_label(v, &t),
            LABEL,
            INK,
            Align::Right,
        );
    }
    if let Some(l) = label {
        c.text_up(x - LEFT + 2, y + h / 2, l, LABEL, GREY);
    }
}

/// Fill a w × h panel at (x, y) with `map` of `value(px, py)` scaled to [lo, hi].
#[allow(clippy::too_many_arguments)] // a panel is its place, size, map and range
fn heat(
    c: &mut Canvas,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    map: ColorMap,
    (lo, hi): (f32, f32),
    value: impl Fn(i64, i64) -> f32,
) {
    for py in 0..h {
        for px in 0..w {
            c.set(x + px, y + py, map.at(scale(value(px, py), lo, hi)));
        }
    }
    c.frame(x, y, w, h, INK);
}

/// A vertical colour bar of height h at (x, y) for [lo, hi], labelled.
fn color_bar(
    c: &mut Canvas,
    x: i64,
    y: i64,
    h: i64,
    map: ColorMap,
    (lo, hi): (f64, f64),
    label: &str,
) -> i64 {
    for py in 0..h {
        let t = 1.0 - py as f32 / (h - 1) as f32;
        let col = map.at(t);
        c.fill(x, y + py, BAR_W, 1, col);
    }
    c.frame(x, y, BAR_W, h, INK);
    let lh = super::font::line_height(LABEL) as i64;
    let t = if hi > lo {
        ticks(lo, hi, (h / 36) as usize)
    } else {
        vec![lo]
    };
    let mut widest = 0;
    for &v in &t {
        let py = if hi > lo {
            y + ((hi - v) / (hi - lo) * (h - 1) as f64).round() as i64
        } else {
            y + h / 2
        };
        c.fill(x + BAR_W, py, 3, 1, INK);
        widest = widest.max(c.text(
            x + BAR_W + 5,
            py - lh / 2,
            &tick_label(v, &t),
            LABEL,
            INK,
            Align::Left,
        ));
    }
    c.text_up(x + BAR_W + 10 + widest, y + h / 2, label, LABEL, GREY);
    BAR_W + 10 + widest + lh + 4
}

/// Five gathers of `values` (5 × 1000 × 70, source-major), clipped at ±clip,
/// with their colour bar, at (x, y); `label` names the colour bar.
pub(super) fn gathers(
    c: &mut Canvas,
    x: i64,
    y: i64,
    values: &[f32],
    clip: f32,
    label: &str,
) -> i64 {
    let (nt, nr) = (NT, NX);
    let py0 = y + ABOVE;
    let mut px0 = x + LEFT;
    for (s, &sx) in SOURCE_X.iter().enumerate() {
        let g = &values[s * nt * nr..(s + 1) * nt * nr];
        let title = format!("source {} · x = {} m", s + 1, sx as f64 * DX);
        c.text(px0 + GATHER_W / 2, y + 2, &title, LABEL, INK, Align::Center);
        heat(
            c,
            px0,
            py0,
            GATHER_W,
            GATHER_H,
            ColorMap::Seismic,
            (-clip, clip),
            |px, py| {
                // Receivers nearest; time rows averaged over the pixel's span.
                let r = (px as usize * nr) / GATHER_W as usize;
                let t0 = (py as usize * nt) / GATHER_H as usize;
                let t1 = (((py + 1) as usize * nt) / GATHER_H as usize).max(t0 + 1);
                let sum: f32 = (t0..t1).map(|t| g[t * nr + r]).sum();
                sum / (t1 - t0) as f32
            },
        );
        let offset = |r: f64| (r - sx as f64) * DX;
        x_axis(
            c,
            px0,
            py0,
            GATHER_W,
            GATHER_H,
            Axis {
                from: offset(0.0),
                to: offset((nr - 1) as f64),
            },
            "offset (m)",
        );
        if s == 0 {
            y_axis(
                c,
                px0,
                py0,
                GATHER_H,
                Axis {
                    from: 0.0,
                    to: (nt - 1) as f64 * DT,
                },
                Some("time (s)"),
            );
        }
        px0 += GATHER_W + GAP;
    }
    let bar = color_bar(
        c,
        px0 + 4,
        py0,
        GATHER_H,
        ColorMap::Seismic,
        (-f64::from(clip), f64::from(clip)),
        label,
    );
    px0 + 4 + bar - x
}

/// A velocity map (70 × 70, depth-major) at (x, y) in `map` over [lo, hi],
/// with its colour bar labelled `unit`.
#[allow(clippy::too_many_arguments)] // place, data, map, range and unit
pub(super) fn velocity(
    c: &mut Canvas,
    x: i64,
    y: i64,
    v: &[f32],
    map: ColorMap,
    (lo, hi): (f32, f32),
    title: &str,
    unit: &str,
) -> i64 {
    let n = NX;
    let (px0, py0) = (x + LEFT, y + ABOVE);
    c.text(px0 + VEL / 2, y + 2, title, LABEL, INK, Align::Center);
    heat(c, px0, py0, VEL, VEL, map, (lo, hi), |px, py| {
        v[(py as usize * n) / VEL as usize * n + (px as usize * n) / VEL as usize]
    });
    let extent = (n - 1) as f64 * DX;
    x_axis(
        c,
        px0,
        py0,
        VEL,
        VEL,
        Axis {
            from: 0.0,
            to: extent,
        },
        "x (m)",
    );
    y_axis(
        c,
        px0,
        py0,
        VEL,
        Axis {
            from: 0.0,
            to: extent,
        },
        Some("depth (m)"),
    );
    let bar = color_bar(
        c,
        px0 + VEL + 10,
        py0,
        VEL,
        map,
        (f64::from(lo), f64::from(hi)),
        unit,
    );
    LEFT + VEL + 10 + bar
}

/// What a spectrogram block shows: the data and the axes from the
/// manifest's `stage_info`.
pub(super) struct Spectrogram<'a> {
    /// (channel, freq, frame, receiver), row-major.
    pub values: &'a [f32],
    /// Its shape.
    pub shape: [usize; 4],
    /// Bin centre frequencies (Hz).
    pub freqs_hz: &'a [f64],
    /// Frame times (s).
    pub frame_times_s: &'a [f64],
    /// The channels shown (at most five) and their titles.
    pub channels: Vec<(usize, String)>,
    /// The receiver shown.
    pub receiver: usize,
    /// Colour-bar label (what the values are).
    pub unit: String,
}

/// Spectrogram panels (frequency up, time across) of one receiver, one per
/// channel, with one colour bar over the range of what is shown.
pub(super) fn spectrograms(c: &mut Canvas, x: i64, y: i64, s: &Spectrogram<'_>) -> i64 {
    let [_, nf, nt, nr] = s.shape;
    let at = |ch: usize, f: usize, t: usize| s.values[((ch * nf + f) * nt + t) * nr + s.receiver];
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &(ch, _) in &s.channels {
        for f in 0..nf {
            for t in 0..nt {
                let v = at(ch, f, t);
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
    }
    if lo > hi {
        (lo, hi) = (0.0, 0.0);
    }
    let py0 = y + ABOVE;
    let mut px0 = x + LEFT;
    // Pixels cover whole bins and frames; the axes run between the centres
    // of the first and last ones, as far inside the panel as half a cell.
    let half_f = 0.5 * SPEC as f64 / nf as f64;
    let half_t = 0.5 * SPEC as f64 / nt as f64;
    let along = |v: &[f64], half: f64| {
        let (a, b) = (v[0], *v.last().unwrap_or(&v[0]));
        let per_px = if v.len() > 1 {
            (b - a) / (SPEC as f64 - 2.0 * half)
        } else {
            1.0
        };
        (a - half * per_px, b + half * per_px)
    };
    let (t_from, t_to) = along(s.frame_times_s, half_t);
    let (f_lo, f_hi) = along(s.freqs_hz, half_f);
    for (k, (ch, title)) in s.channels.iter().enumerate() {
        c.text(px0 + SPEC / 2, y + 2, title, LABEL, INK, Align::Center);
        heat(
            c,
            px0,
            py0,
            SPEC,
            SPEC,
            ColorMap::Viridis,
            (lo, hi),
            |px, py| {
                let t = (px as usize * nt) / SPEC as usize;
                let f = nf - 1 - (py as usize * nf) / SPEC as usize;
                at(*ch, f, t)
            },
        );
        x_axis(
            c,
            px0,
            py0,
            SPEC,
            SPEC,
            Axis {
                from: t_from,
                to: t_to,
            },
            "time (s)",
        );
        y_axis(
            c,
            px0,
            py0,
            SPEC,
            Axis {
                from: f_hi,
                to: f_lo,
            },
            (k == 0).then_some("frequency (Hz)"),
        );
        px0 += SPEC + GAP + 22;
    }
    let bar = color_bar(
        c,
        px0,
        py0,
        SPEC,
        ColorMap::Viridis,
        (f64::from(lo), f64::from(hi)),
        &s.unit,
    );
    px0 + bar - x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(ticks(0.0, 0.999, 7), vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(
            ticks(-340.0, 350.0, 7),
            vec![-300.0, -200.0, -100.0, 0.0, 100.0, 200.0, 300.0]
        );
        assert_eq!(ticks(-340.0, 350.0, 3), vec![-250.0, 0.0, 250.0]);
        assert_eq!(ticks(0.0, 690.0, 2), vec![0.0, 500.0]);
        assert_eq!(
            ticks(1500.0, 4500.0, 7),
            vec![1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0]
        );
        assert_eq!(ticks(3.0, 3.0, 5), vec![3.0]);
        for max in 2..=7 {
            let t = ticks(0.0, 690.0, max);
            assert!(t.len() <= max && t.len() >= 2, "{max}: {t:?}");
        }
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        let t = ticks(0.0, 1.0, 6);
        assert_eq!(tick_label(0.4, &t), "0.4");
        assert_eq!(tick_label(0.0, &t), "0");
        let t = ticks(-1.0, 1.0, 5);
        assert_eq!(tick_label(-0.5, &t), "−0.5");
        let t = [0.0, 0.25];
        assert_eq!(tick_label(0.25, &t), "0.25");
        assert_eq!(tick_label(2000.0, &[1500.0, 2000.0]), "2000");
    }
}
