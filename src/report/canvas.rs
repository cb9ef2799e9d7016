//! An RGB raster with the few drawing operations the previews need (filled
//! rectangles, lines, text in the embedded font, rotated labels) and its PNG
//! encoding. Every operation is integer or plain f32 arithmetic in a fixed
//! order, so the same figure gives the same bytes on every run and machine.

use std::io::Cursor;

use super::colormap::Rgb;
use super::font;

/// Where a text's anchor point is, horizontally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    /// The anchor is the left end.
    Left,
    /// The anchor is the centre.
    Center,
    /// The anchor is the right end.
    Right,
}

/// Black for text and axes.
pub(super) const INK: Rgb = [20, 20, 20];
/// Grey for secondary text.
pub(super) const GREY: Rgb = [90, 90, 90];
/// The background.
pub(super) const WHITE: Rgb = [255, 255, 255];

/// An RGB image, row-major, 3 bytes a pixel.
#[derive(PartialEq, Eq)]
pub(super) struct Canvas {
    pub width: usize,
    pub height: usize,
    px: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(width: usize, height: usize, bg: Rgb) -> Canvas {
        let mut px = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            px.extend_from_slice(&bg);
        }
        Canvas { width, height, px }
    }

    /// The colour at (x, y).
    #[cfg(test)]
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.px[i], self.px[i + 1], self.px[i + 2]]
    }

    /// Set one pixel (outside the canvas: nothing).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Blend `c` over one pixel with opacity `a` in [0, 1].
    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f32) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            for (under, &over) in self.px[i..i + 3].iter_mut().zip(&c) {
                let u = f32::from(*under);
                *under = (u + (f32::from(over) - u) * a).round() as u8;
            }
        }
    }

    /// Fill the rectangle with top-left (x, y).
    pub fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A one-pixel rectangle outline around the `w` × `h` area at (x, y).
    pub fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.fill(x - 1, y - 1, w + 2, 1, c);
        self.fill(x - 1, y + h, w + 2, 1, c);
        self.fill(x - 1, y, 1, h, c);
        self.fill(x + w, y, 1, h, c);
    }

    /// Text whose line box has its top at `y`, anchored at `x` by `align`;
    /// returns its width.
    pub fn text(&mut self, x: i64, y: i64, s: &str, size: f32, c: Rgb, align: Align) -> i64 {
        let w = font::width(s, size).round() as i64;
        let x0 = match align {
            Align::Left => x,
            Align::Center => x - w / 2,
            Align::Right => x - w,
        };
        for (gx, gy, a) in font::rasterise(s, size) {
            self.blend(x0 + i64::from(gx), y + i64::from(gy), c, a);
        }
        w
    }

    /// Text turned a quarter left (reading upwards), centred vertically on
    /// `cy`, its line box's top at `x`.
    pub fn text_up(&mut self, x: i64, cy: i64, s: &str, size: f32, c: Rgb) {
        let w = font::width(s, size).round() as i64;
        for (gx, gy, a) in font::rasterise(s, size) {
            // (gx, gy) in the unturned line → (gy, w - gx) turned.
            self.blend(x + i64::from(gy), cy + w / 2 - i64::from(gx), c, a);
        }
    }

    /// The left `width` columns (all of them when it is wider).
    pub fn crop(&self, width: usize) -> Canvas {
        let width = width.min(self.width);
        let mut px = Vec::with_capacity(width * self.height * 3);
        for row in self.px.chunks_exact(self.width * 3) {
            px.extend_from_slice(&row[..width * 3]);
        }
        Canvas {
            width,
            height: self.height,
            px,
        }
    }

    /// The PNG bytes (8-bit RGB, zlib at the `png` crate's `Balanced` level with
    /// its default adaptive filter: deterministic for the same pixels).
    pub fn png(&self) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Balanced);
            let mut w = enc.write_header().expect("PNG header into memory");
            w.write_image_data(&self.px).expect("PNG data into memory");
        }
        out.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_and_png_round_trip() {
        let mut c = Canvas::new(120, 40, WHITE);
        c.fill(2, 2, 10, 10, [200, 0, 0]);
        c.frame(20, 5, 10, 10, INK);
        let w = c.text(40, 5, "t (s)", 14.0, INK, Align::Left);
        c.text_up(100, 20, "m/s", 12.0, INK);
        assert!(w > 20);
        assert_eq!(c.get(5, 5), [200, 0, 0]);
        assert_eq!(c.get(19, 4), INK);
        assert_eq!(c.get(25, 10), WHITE);
        let bytes = c.png();
        assert_eq!(bytes, c.png(), "the same pixels give the same bytes");
        let dec = png::Decoder::new(Cursor::new(bytes.as_slice()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (120, 40));
        assert_eq!(&buf[..info.buffer_size()], c.px.as_slice());
        // Text left ink in its box, and the turned label in its column.
        let ink = |x0: usize, x1: usize, y0: usize, y1: usize| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| c.get(x, y) != WHITE)
                .count()
        };
        assert!(ink(40, 40 + w as usize, 5, 25) > 20);
        assert!(ink(100, 116, 0, 40) > 10);
    }
}
