//! The report's charts as inline SVG (text set by the browser, so nothing to
//! embed): histograms, category bars, per-shard value ranges, and
//! throughput over time. Each returns one `<svg>` element.

use std::fmt::Write as _;

use super::colormap::{css, ColorMap};
use super::figure::{tick_label, ticks};
use super::stats::{Finished, Quantiles};

const FONT: &str = "font-family=\"sans-serif\" font-size=\"11\"";
const BLUE: &str = "#3b6fb6";

/// Escape text for HTML and SVG.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plotting area inside an SVG of `w` × `h`: data ranges mapped to pixels.
struct Plot {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: (f64, f64),
    y: (f64, f64),
    /// Only whole numbers on the x axis (shard numbers).
    integer_x: bool,
}

impl Plot {
    fn new(w: f64, h: f64, x: (f64, f64), y: (f64, f64)) -> Plot {
        let widen = |(a, b): (f64, f64)| if b > a { (a, b) } else { (a - 0.5, a + 0.5) };
        Plot {
            w,
            h,
            left: 58.0,
            right: 12.0,
            top: 10.0,
            bottom: 36.0,
            x: widen(x),
            y: widen(y),
            integer_x: false,
        }
    }
    fn px(&self, v: f64) -> f64 {
        self.left + (v - self.x.0) / (self.x.1 - self.x.0) * (self.w - self.left - self.right)
    }
    fn py(&self, v: f64) -> f64 {
        self.h
            - self.bottom
            - (v - self.y.0) / (self.y.1 - self.y.0) * (self.h - self.top - self.bottom)
    }
    /// The opening tag, the axes with ticks and labels.
    fn open(&self, x_label: &str, y_label: &str) -> String {
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>",
            w = self.w,
            h = self.h
        );
        let (x0, x1, y0, y1) = (
            self.left,
            self.w - self.right,
            self.top,
            self.h - self.bottom,
        );
        let _ = write!(
            s,
            "<path d=\"M{x0} {y0}V{y1}H{x1}\" fill=\"none\" stroke=\"#333\"/>"
        );
        let mut xt = ticks(self.x.0, self.x.1, ((x1 - x0) / 60.0) as usize);
        if self.integer_x {
            xt.retain(|v| v.fract() == 0.0);
        }
        for &v in &xt {
            let p = self.px(v);
            let _ = write!(
                s,
                "<path d=\"M{p:.1} {y1}v4\" stroke=\"#333\"/><text x=\"{p:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y1 + 15.0,
                tick_label(v, &xt)
            );
        }
        let yt = ticks(self.y.0, self.y.1, ((y1 - y0) / 28.0) as usize);
        for &v in &yt {
            let p = self.py(v);
            let _ = write!(
                s,
                "<path d=\"M{x0} {p:.1}h-4\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 - 6.0,
                p + 4.0,
                tick_label(v, &yt)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            f64::midpoint(x0, x1),
            self.h - 4.0,
            esc(x_label)
        );
        let _ = write!(
            s,
            "<text transform=\"translate(12 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            f64::midpoint(y0, y1),
            esc(y_label)
        );
        s
    }
}

/// A histogram of `values` with `x_label` under it.
pub(super) fn histogram(values: &[f64], x_label: &str) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if values.is_empty() || !lo.is_finite() {
        return String::new();
    }
    let bins = if hi > lo {
        ((values.len() as f64).sqrt().ceil() as usize).clamp(1, 40)
    } else {
        1
    };
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1) as f64;
    let (x0, x1) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let p = Plot::new(440.0, 170.0, (x0, x1), (0.0, top));
    let mut s = p.open(x_label, "count");
    for (b, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
        let (a, e) = if hi > lo {
            (lo + b as f64 * width, lo + (b + 1) as f64 * width)
        } else {
            (x0, x1)
        };
        let (xa, xe, yc) = (p.px(a), p.px(e), p.py(c as f64));
        let _ = write!(
            s,
            "<rect x=\"{xa:.1}\" y=\"{yc:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{BLUE}\"><title>{} to {}: {c}</title></rect>",
            (xe - xa - 1.0).max(1.0),
            p.py(0.0) - yc,
            fmt(a),
            fmt(e)
        );
    }
    s.push_str("</svg>");
    s
}

/// A number for a tooltip or a table: 4 significant digits.
pub(super) fn fmt(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1e6 || v.abs() < 1e-3 {
        return format!("{v:.3e}");
    }
    let d = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.d$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Horizontal bars, one per category, with their counts.
pub(super) fn categories(counts: &[(String, usize)]) -> String {
    let top = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let label_w = 16.0
        + 6.5
            * counts
                .iter()
                .map(|c| c.0.chars().count())
                .max()
                .unwrap_or(1)
                .min(60) as f64;
    let (w, bar) = (label_w + 300.0, 18.0);
    let h = bar * counts.len() as f64 + 4.0;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>");
    for (i, (name, c)) in counts.iter().enumerate() {
        let y = 2.0 + i as f64 * bar;
        let len = 220.0 * *c as f64 / top;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{label_w:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{BLUE}\"/><text x=\"{:.1}\" y=\"{:.1}\">{c}</text>",
            label_w - 6.0,
            y + 13.0,
            esc(name),
            y + 2.0,
            bar - 4.0,
            label_w + len + 5.0,
            y + 13.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Per-shard value ranges: a line from the 1st to the 99th percentile, a box
/// from the 25th to the 75th, the median; shards in `flagged` in red.
pub(super) fn shard_ranges(
    shards: &[(usize, Quantiles)],
    flagged: &[usize],
    y_label: &str,
) -> String {
    if shards.is_empty() {
        return String::new();
    }
    let first = shards.first().map_or(1, |s| s.0) as f64;
    let last = shards.last().map_or(1, |s| s.0) as f64;
    let lo = shards.iter().map(|s| s.1.p1).fold(f64::INFINITY, f64::min);
    let hi = shards
        .iter()
        .map(|s| s.1.p99)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut p = Plot::new(900.0, 220.0, (first - 0.5, last + 0.5), (lo, hi));
    p.integer_x = true;
    let mut s = p.open("shard", y_label);
    let step = (p.px(first + 1.0) - p.px(first)).max(1.0);
    let box_w = (step * 0.6).clamp(1.0, 14.0);
    for (i, q) in shards {
        let x = p.px(*i as f64);
        let color = if flagged.contains(i) { "#c0392b" } else { BLUE };
        let _ = write!(
            s,
            "<g><title>shard {i}: p1 {} · p25 {} · median {} · p75 {} · p99 {} · rms {}</title><path d=\"M{x:.1} {:.1}V{:.1}\" stroke=\"{color}\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{box_w:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"0.35\" stroke=\"{color}\"/><path d=\"M{:.1} {:.1}h{box_w:.1}\" stroke=\"#111\"/>{}</g>",
            fmt(q.p1),
            fmt(q.p25),
            fmt(q.p50),
            fmt(q.p75),
            fmt(q.p99),
            fmt(q.rms),
            p.py(q.p1),
            p.py(q.p99),
            x - box_w / 2.0,
            p.py(q.p75),
            (p.py(q.p25) - p.py(q.p75)).max(1.0),
            x - box_w / 2.0,
            p.py(q.p50),
            // The RMS as a dot, where it falls inside the plotted range.
            if q.rms <= hi {
                format!("<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#e67e22\"/>", p.py(q.rms))
            } else {
                String::new()
            }
        );
    }
    s.push_str("</svg>");
    s
}

/// Throughput over time: samples per second of each shard (dots, coloured
/// by run) and the dashed start of every run after the first.
pub(super) fn throughput(shards: &[Finished], runs: &[f64]) -> String {
    let span = shards.iter().map(|f| f.at).fold(0.0, f64::max);
    let (unit, div) = if span < 180.0 {
        ("s", 1.0)
    } else if span < 3.0 * 3600.0 {
        ("min", 60.0)
    } else {
        ("h", 3600.0)
    };
    let rate = |f: &Finished| f.samples as f64 / f.took.max(1e-3);
    let top = shards.iter().map(rate).fold(0.0, f64::max);
    let p = Plot::new(
        900.0,
        220.0,
        (0.0, (span / div).max(1e-9)),
        (0.0, top * 1.05),
    );
    let mut s = p.open(
        &format!("time since the first run started ({unit})"),
        "samples / s",
    );
    for &r in runs.iter().skip(1) {
        let x = p.px((r - runs[0]) / div);
        let _ = write!(
            s,
            "<path d=\"M{x:.1} {:.1}V{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
            p.py(0.0),
            p.py(top * 1.05)
        );
    }
    for f in shards {
        let c = css(ColorMap::Viridis.at(if runs.len() > 1 {
            f.run as f32 / (runs.len() - 1) as f32 * 0.8
        } else {
            0.3
        }));
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{c}\"><title>shard {}: {} samples in {} s (run {})</title></circle>",
            p.px(f.at / div),
            p.py(rate(f)),
            f.shard,
            f.samples,
            fmt(f.took),
            f.run + 1
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_one_mark_per_value() {
        let h = histogram(&[1.0, 2.0, 2.5, 3.0], "std");
        assert!(h.starts_with("<svg") && h.ends_with("</svg>"));
        assert_eq!(h.matches("<rect").count(), 2, "{h}");
        assert_eq!(histogram(&[5.0; 9], "x").matches("<rect").count(), 1);
        let c = categories(&[("yes".into(), 3), ("no <b>".into(), 1)]);
        assert!(c.contains("no &lt;b&gt;") && c.contains(">3<"));
        assert_eq!(fmt(0.160_982), "0.161");
        assert_eq!(fmt(4500.0), "4500");
        assert_eq!(fmt(1.5e-5), "1.500e-5");
    }
}
