//! A small PNG line chart of the training curves (no system fonts needed).

use std::path::Path;

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

/// One named line.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Colour.
    pub color: [u8; 3],
    /// `(x, y)` points; non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One chart panel.
pub struct Panel<'a> {
    /// Title.
    pub title: &'a str,
    /// Lines.
    pub series: Vec<Series<'a>>,
}

const W: u32 = 520;
const H: u32 = 340;
const LEFT: i64 = 70;
const RIGHT: i64 = 20;
const TOP: i64 = 36;
const BOTTOM: i64 = 40;

/// Renders the panels side by side into one image.
pub fn render(panels: &[Panel<'_>]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W * panels.len().max(1) as u32, H, Rgb([255, 255, 255]));
    for (i, p) in panels.iter().enumerate() {
        draw_panel(&mut img, (i as u32 * W) as i64, p);
    }
    img
}

/// Renders and writes atomically.
pub fn save(panels: &[Panel<'_>], path: &Path) -> Result<(), vmunet_data::DataError> {
    let img = render(panels);
    vmunet_data::save_png_atomic(&image::DynamicImage::ImageRgb8(img), path)
}

fn draw_panel(img: &mut RgbImage, x0: i64, p: &Panel<'_>) {
    let pts = p
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
    }
    if xmax - xmin < 1e-12 {
        xmax = xmin + 1.0;
    }
    if ymax - ymin < 1e-12 {
        ymax = ymin + 1.0;
    }
    let pad = (ymax - ymin) * 0.05;
    let (ymin, ymax) = (ymin - pad, ymax + pad);
    let (pw, ph) = (W as i64 - LEFT - RIGHT, H as i64 - TOP - BOTTOM);
    let to_px = |x: f64, y: f64| {
        (
            x0 + LEFT + ((x - xmin) / (xmax - xmin) * pw as f64).round() as i64,
            TOP + ph - ((y - ymin) / (ymax - ymin) * ph as f64).round() as i64,
        )
    };
    let black = Rgb([0, 0, 0]);
    let grey = Rgb([220, 220, 220]);
    for k in 0..=4 {
        let y = TOP + ph * k / 4;
        line(img, (x0 + LEFT, y), (x0 + LEFT + pw, y), grey);
        let v = ymax - (ymax - ymin) * k as f64 / 4.0;
        text(img, x0 + 4, y - 4, &format_tick(v), black);
    }
    line(img, (x0 + LEFT, TOP), (x0 + LEFT, TOP + ph), black);
    line(
        img,
        (x0 + LEFT, TOP + ph),
        (x0 + LEFT + pw, TOP + ph),
        black,
    );
    text(img, x0 + LEFT, TOP + ph + 8, &format_tick(xmin), black);
    let xm = format_tick(xmax);
    text(
        img,
        x0 + LEFT + pw - 8 * xm.len() as i64,
        TOP + ph + 8,
        &xm,
        black,
    );
    text(img, x0 + LEFT + pw / 2 - 20, TOP + ph + 24, "epoch", black);
    text(img, x0 + LEFT, 8, p.title, black);
    let mut lx = x0 + LEFT + 8 * p.title.len() as i64 + 24;
    for s in &p.series {
        let c = Rgb(s.color);
        for d in 0..3 {
            line(img, (lx, 11 + d), (lx + 14, 11 + d), c);
        }
        text(img, lx + 18, 8, s.name, black);
        lx += 18 + 8 * s.name.len() as i64 + 14;
        let pts: Vec<_> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| to_px(x, y))
            .collect();
        for w in pts.windows(2) {
            line(img, w[0], w[1], c);
            line(img, (w[0].0, w[0].1 + 1), (w[1].0, w[1].1 + 1), c);
        }
        for &(x, y) in &pts {
            for dx in -2..=2 {
                for dy in -2..=2 {
                    put(img, x + dx, y + dy, c);
                }
            }
        }
    }
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
    for i in 0..=steps {
        put(
            img,
            x0 + (x1 - x0) * i / steps,
            y0 + (y1 - y0) * i / steps,
            c,
        );
    }
}

fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, c: Rgb<u8>) {
    for (i, ch) in s.chars().enumerate() {
        if let Some(glyph) = font8x8::BASIC_FONTS.get(ch) {
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        put(img, x + i as i64 * 8 + col, y + row as i64, c);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lines_in_their_colours() {
        let img = render(&[Panel {
            title: "loss",
            series: vec![Series {
                name: "train",
                color: [200, 0, 0],
                points: vec![(1.0, 1.0), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.25)],
            }],
        }]);
        assert_eq!((img.width(), img.height()), (W, H));
        let red = img.pixels().filter(|p| p.0 == [200, 0, 0]).count();
        assert!(red > 200, "{red} red pixels");
    }
}
