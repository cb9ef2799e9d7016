//! Which cells each update of a simulation steps: the periodic bands of
//! rows and columns the wave can have reached (reference kernel), and, for
//! the blocked kernel, bands of rows with the columns of their nonzero
//! values (zeros stay zero) inside the receivers' backward cone. See
//! [`super::Medium`]'s time loops.

use std::ops::Range;

use super::fd::blocked;
use super::{NBC, NPAD, NZ};

/// Rows in a band of [`BANDS`]: four passes of the blocked kernel's 4 rows.
/// Bands of 8, 12 and 16 rows ran within 1 % of each other on real maps,
/// 4 rows slower (a kernel call per 4 rows).
pub(super) const BAND: usize = 16;
/// How many bands [`BANDS`] has.
pub(super) const N_BANDS: usize = NBC.div_ceil(BAND) * 2 + NZ.div_ceil(BAND);
/// The bands of rows (start, end) the blocked kernel's time loop steps: [`BAND`]
/// rows each, split where the sponge rows meet the model rows so that each
/// band's rows share their kind (and so the kernel's row blocks).
pub(super) const BANDS: [(usize, usize); N_BANDS] = {
    let mut b = [(0, 0); N_BANDS];
    let (mut i, mut z) = (0, 0);
    while z < NPAD {
        let edge = if z < NBC {
            NBC
        } else if z < NBC + NZ {
            NBC + NZ
        } else {
            NPAD
        };
        let end = if z + BAND < edge { z + BAND } else { edge };
        b[i] = (z, end);
        i += 1;
        z = end;
    }
    assert!(i == N_BANDS, "every band filled");
    b
};

/// The least periodic distance from row `z` to a row of `rows`.
pub(super) fn ring_distance(z: usize, rows: &Range<usize>) -> usize {
    if rows.contains(&z) {
        return 0;
    }
    let d = |a: usize, b: usize| {
        let d = a.abs_diff(b);
        d.min(NPAD - d)
    };
    d(z, rows.start).min(d(z, rows.end - 1))
}

/// The padded columns within distance `reach` of `cols`, as one range: the
/// whole row when they would wrap past an edge.
pub(super) fn arc(start: usize, end: usize, reach: usize) -> Range<usize> {
    match start.checked_sub(reach) {
        Some(lo) if end + reach <= NPAD => lo..end + reach,
        _ => 0..NPAD,
    }
}

/// The smallest range holding `a` and `b` (either may be empty).
pub(super) fn hull(a: &Range<usize>, b: &Range<usize>) -> Range<usize> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.clone(),
        (_, true) => a.clone(),
        _ => a.start.min(b.start)..a.end.max(b.end),
    }
}

/// The columns within `by` of `cols` (empty stays empty), as one range: the
/// whole row when they would wrap past an edge.
pub(super) fn widen(cols: &Range<usize>, by: usize) -> Range<usize> {
    if cols.is_empty() {
        0..0
    } else {
        arc(cols.start, cols.end, by)
    }
}

/// The columns of `cols` where some row of `rows` of `field` has a value
/// with any bit set, found 16 columns at a time from either side (so up to
/// 15 zero columns more on each side); empty when there are none.
pub(super) fn nonzero_span(
    field: &blocked::Field,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Range<usize> {
    let f = field.as_slice();
    // Whether any value of columns `x` of `rows` has a bit set (16 columns
    // a time compile to a few vector instructions a row).
    let any = |x: Range<usize>| {
        let (first, len) = (blocked::Field::index(rows.start, x.start), x.len());
        let span = &f[first..blocked::Field::index(rows.end - 1, x.start) + len];
        let set = |v: &[f32]| v.iter().fold(0u32, |a, v| a | v.to_bits()) != 0;
        span.chunks(blocked::STRIDE)
            .any(|row| match <&[f32; 16]>::try_from(&row[..len]) {
                Ok(v) => set(v),
                Err(_) => set(&row[..len]),
            })
    };
    let mut lo = cols.start;
    while lo < cols.end && !any(lo..(lo + 16).min(cols.end)) {
        lo = (lo + 16).min(cols.end);
    }
    let mut hi = cols.end;
    while hi > lo && !any(hi.saturating_sub(16).max(lo)..hi) {
        hi = hi.saturating_sub(16).max(lo);
    }
    lo..hi
}

/// The padded rows within periodic distance `reach` of row `centre`, as at
/// most two ranges (the second empty unless the band wraps past an edge).
pub(super) fn reached_rows(centre: usize, reach: usize) -> [Range<usize>; 2] {
    if 2 * reach + 1 >= NPAD {
        return [0..NPAD, 0..0];
    }
    let hi = centre + reach + 1;
    match centre.checked_sub(reach) {
        Some(lo) if hi <= NPAD => [lo..hi, 0..0],
        Some(lo) => [lo..NPAD, 0..hi - NPAD],
        None => [0..hi, NPAD + centre - reach..NPAD],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::RECEIVER_Z;

    #[test]
    fn bands_cover_the_rows_once_and_cones_are_supersets() {
        let mut z = 0;
        for &(lo, hi) in &BANDS {
            assert_eq!(lo, z, "bands are consecutive");
            assert!(hi > lo && hi - lo <= BAND);
            assert!(
                !(lo..hi).contains(&NBC) || lo == NBC,
                "a band starts where the model rows start"
            );
            assert!(!(lo..hi).contains(&(NBC + NZ)) || lo == NBC + NZ);
            z = hi;
        }
        assert_eq!(z, NPAD);
        let periodic = |a: usize, b: usize| {
            let d = a.abs_diff(b);
            d.min(NPAD - d)
        };
        for centre in [0, 1, 121, 200, 309] {
            for &(lo, hi) in &BANDS {
                let least = (lo..hi).map(|r| periodic(centre, r)).min().unwrap();
                assert_eq!(
                    ring_distance(centre, &(lo..hi)),
                    least,
                    "{centre} {lo}..{hi}"
                );
            }
        }
        for (start, end) in [(120, 121), (120, 190), (0, 1), (309, 310)] {
            for reach in 0..=NPAD {
                let cols = arc(start, end, reach);
                for x in 0..NPAD {
                    let d = (start..end).map(|c| periodic(c, x)).min().unwrap();
                    assert!(
                        d > reach || cols.contains(&x),
                        "{start}..{end} reach {reach}: column {x} left out"
                    );
                }
            }
        }
        // The last update steps only the bands next to the receiver row.
        let zr = RECEIVER_Z + NBC;
        let stepped: Vec<_> = BANDS
            .iter()
            .filter(|&&(lo, hi)| ring_distance(zr, &(lo..hi)) <= 2)
            .collect();
        assert!(stepped.len() <= 2, "{stepped:?}");
    }

    #[test]
    fn reached_rows_is_the_periodic_band() {
        for centre in [0, 1, 2, 121, 154, 188, 307, 309] {
            for reach in 0..=NPAD {
                let mut hit = vec![0u8; NPAD];
                for r in reached_rows(centre, reach) {
                    for z in r {
                        hit[z] += 1;
                    }
                }
                for (z, &h) in hit.iter().enumerate() {
                    let d = z.abs_diff(centre);
                    let periodic = d.min(NPAD - d);
                    assert_eq!(
                        h,
                        u8::from(periodic <= reach),
                        "centre {centre} reach {reach} row {z}"
                    );
                }
            }
        }
    }
}
