//! Text without system fonts: DejaVu Sans (a subset, embedded in the binary;
//! see `font/README.md`) rasterised with `ab_glyph`, so labels render the
//! same on every machine and the PNG bytes do not depend on what is
//! installed.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};

static FONT_BYTES: &[u8] = include_bytes!("font/DejaVuSans-subset.ttf");

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).expect("the embedded font parses"))
}

/// One glyph's coverage, as (x, y, coverage in [0, 1]) relative to the
/// point the text was laid out from.
pub(super) type Coverage = Vec<(i32, i32, f32)>;

/// The glyphs of `s` at `size` pixels, laid out from the top-left corner of
/// its line box, with kerning; characters the font lacks show as `?`.
fn glyphs(s: &str, size: f32) -> (Vec<(GlyphId, f32)>, f32) {
    let f = font().as_scaled(PxScale::from(size));
    let mut out = Vec::new();
    let mut caret = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    for c in s.chars() {
        let mut id = f.glyph_id(c);
        if id.0 == 0 {
            id = f.glyph_id('?');
        }
        if let Some(p) = prev {
            caret += f.kern(p, id);
        }
        out.push((id, caret));
        caret += f.h_advance(id);
        prev = Some(id);
    }
    (out, caret)
}

/// Width of `s` in pixels at `size`.
#[must_use]
pub(super) fn width(s: &str, size: f32) -> f32 {
    glyphs(s, size).1
}

/// Height of a line of text at `size` (ascent to descent).
#[must_use]
pub(super) fn line_height(size: f32) -> f32 {
    let f = font().as_scaled(PxScale::from(size));
    f.ascent() - f.descent()
}

/// The pixels `s` covers at `size`, relative to the top-left corner of its
/// line box.
#[must_use]
pub(super) fn rasterise(s: &str, size: f32) -> Coverage {
    let scale = PxScale::from(size);
    let ascent = font().as_scaled(scale).ascent();
    let mut out = Vec::new();
    for (id, x) in glyphs(s, size).0 {
        let g = id.with_scale_and_position(scale, point(x, ascent));
        if let Some(o) = font().outline_glyph(g) {
            let b = o.px_bounds();
            let (x0, y0) = (b.min.x as i32, b.min.y as i32);
            o.draw(|gx, gy, c| {
                if c > 0.0 {
                    out.push((x0 + gx as i32, y0 + gy as i32, c.min(1.0)));
                }
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_width_and_ink() {
        assert!(width("offset (m)", 13.0) > 50.0);
        assert!(width("ii", 13.0) < width("MM", 13.0));
        let ink = rasterise("velocity (m/s) α = 0.3 µ", 13.0);
        assert!(ink.len() > 200, "{}", ink.len());
        assert!(line_height(13.0) > 13.0 && line_height(13.0) < 18.0);
        // A character the subset lacks is drawn as '?', not dropped.
        assert_eq!(width("中", 13.0), width("?", 13.0));
    }
}
