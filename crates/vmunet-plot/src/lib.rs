//! PNG charts: line and scatter panels side by side, drawn with plotters and an embedded
//! DejaVu Sans font (the same picture on a workstation, in CI and on a device without fonts).

#![deny(missing_docs)]

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;

/// Chart errors.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing failed.
    #[error("drawing the chart: {0}")]
    Draw(String),
    /// Writing the PNG failed.
    #[error(transparent)]
    Write(#[from] vmunet_data::DataError),
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Joined by lines.
    Line,
    /// Markers only (a scatter), each with its label.
    Points,
}

/// One named series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Colour.
    pub color: [u8; 3],
    /// `(x, y)` points; non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
    /// Line or markers.
    pub style: Style,
    /// Text beside each point (scatter), empty for none.
    pub labels: Vec<String>,
}

impl Series {
    /// A line series.
    pub fn line(name: &str, color: [u8; 3], points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.to_string(),
            color,
            points,
            style: Style::Line,
            labels: Vec::new(),
        }
    }

    /// A scatter series with a label per point.
    pub fn points(
        name: &str,
        color: [u8; 3],
        points: Vec<(f64, f64)>,
        labels: Vec<String>,
    ) -> Self {
        Self {
            name: name.to_string(),
            color,
            points,
            style: Style::Points,
            labels,
        }
    }
}

/// One chart panel.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Series.
    pub series: Vec<Series>,
}

/// Panel size in pixels.
pub const PANEL: (u32, u32) = (560, 380);

const FONT: &str = "sans-serif";

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid by construction; a failure would leave text undrawn.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1e-9) * 0.02);
    (lo - pad, hi + pad)
}

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Renders the panels side by side.
pub fn render(panels: &[Panel]) -> Result<RgbImage, PlotError> {
    font();
    let n = panels.len().max(1) as u32;
    let (w, h) = (PANEL.0 * n, PANEL.1);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let areas = root.split_evenly((1, n as usize));
        for (area, p) in areas.iter().zip(panels) {
            let mut xs = range(p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)));
            if p.series.iter().any(|s| !s.labels.is_empty()) {
                // Room on the right for the point labels.
                xs.1 += (xs.1 - xs.0) * 0.2;
            }
            let ys = range(p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)));
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, (FONT, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc(&p.x_label)
                .y_desc(&p.y_label)
                .label_style((FONT, 13))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(draw_err)?;
            for s in &p.series {
                let color = RGBColor(s.color[0], s.color[1], s.color[2]);
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                let drawn = match s.style {
                    Style::Line => chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                        .map_err(draw_err)?,
                    Style::Points => chart
                        .draw_series(pts.iter().map(|&q| Circle::new(q, 5, color.filled())))
                        .map_err(draw_err)?,
                };
                drawn.label(&s.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
                if !s.labels.is_empty() {
                    chart
                        .draw_series(
                            s.points
                                .iter()
                                .zip(&s.labels)
                                .filter(|(q, _)| q.0.is_finite() && q.1.is_finite())
                                .map(|(&q, t)| {
                                    EmptyElement::at(q)
                                        + Text::new(
                                            t.clone(),
                                            (7, -6),
                                            (FONT, 12).into_font().color(&color),
                                        )
                                }),
                        )
                        .map_err(draw_err)?;
                }
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| PlotError::Draw("buffer size".into()))
}

/// Renders and writes a PNG atomically (temporary file, then rename).
pub fn save(panels: &[Panel], path: &Path) -> Result<(), PlotError> {
    let img = render(panels)?;
    vmunet_data::save_png_atomic(&image::DynamicImage::ImageRgb8(img), path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_series_in_their_colours_and_text() {
        let img = render(&[
            Panel {
                title: "loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                series: vec![Series::line(
                    "train",
                    [200, 0, 0],
                    vec![(1.0, 1.0), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.25)],
                )],
            },
            Panel {
                title: "DSC vs latency".into(),
                x_label: "ms".into(),
                y_label: "DSC".into(),
                series: vec![Series::points(
                    "tract",
                    [0, 0, 210],
                    vec![(10.0, 0.88), (5.0, 0.87)],
                    vec!["fp32".into(), "int8".into()],
                )],
            },
        ])
        .unwrap();
        assert_eq!((img.width(), img.height()), (2 * PANEL.0, PANEL.1));
        let red = img.pixels().filter(|p| p.0 == [200, 0, 0]).count();
        let blue = img.pixels().filter(|p| p.0 == [0, 0, 210]).count();
        assert!(red > 200, "{red} red pixels");
        assert!(blue > 100, "{blue} blue pixels");
        // Text (captions, ticks) leaves dark anti-aliased pixels outside the series colours.
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 90)).count();
        assert!(dark > 300, "{dark} dark pixels: no text drawn?");
    }
}
