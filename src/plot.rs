//! Figures as PNG, in pure Rust (plotters with an embedded DejaVu Sans, so no
//! system font library is needed): the gate map and prediction map of the
//! seed post, and loss curves. No tensors here: plain slices in, a file out.
//!
//! Layer 2 (see `ARCHITECTURE.md`): it owns the figures and imports only [`error`](crate::error).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{GmuError, Result, temp_path};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font does not parse"));
    });
}

/// A colour map from `[0, 1]` to RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Black (0) to white (1): matplotlib's `binary_r`, the seed's gate map.
    Gray,
    /// Blue (0) through white (0.5) to red (1): matplotlib's `bwr`, the seed's prediction map.
    BlueWhiteRed,
}

impl Colormap {
    /// The colour of `v` (clamped to `[0, 1]`).
    pub fn color(self, v: f32) -> RGBColor {
        let v = v.clamp(0.0, 1.0);
        let byte = |x: f32| (x * 255.0).round() as u8;
        match self {
            Colormap::Gray => RGBColor(byte(v), byte(v), byte(v)),
            Colormap::BlueWhiteRed => {
                if v < 0.5 {
                    let w = v * 2.0;
                    RGBColor(byte(w), byte(w), 255)
                } else {
                    let w = (1.0 - v) * 2.0;
                    RGBColor(255, byte(w), byte(w))
                }
            }
        }
    }
}

/// A value map over a regular 2-D mesh with labelled points on top.
#[derive(Clone, Debug)]
pub struct MeshMap<'a> {
    /// Figure title.
    pub title: &'a str,
    /// Mesh values, row-major from the bottom row up: `values[j * resolution + i]`
    /// is at `x = x_range.0 + i·Δx`, `y = y_range.0 + j·Δy`.
    pub values: &'a [f32],
    /// Mesh points per axis.
    pub resolution: usize,
    /// Horizontal data range.
    pub x_range: (f32, f32),
    /// Vertical data range.
    pub y_range: (f32, f32),
    /// Axis labels.
    pub x_label: &'a str,
    /// Axis labels.
    pub y_label: &'a str,
    /// Points drawn on top: `(x, y, class)`, class 0 blue, class 1 red.
    pub points: &'a [(f32, f32, u8)],
    /// Colour map of the values.
    pub colormap: Colormap,
    /// Colour-bar labels at value 0 and value 1.
    pub bar_labels: [&'a str; 2],
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> GmuError {
    GmuError::Plot { path: path.to_path_buf(), message: e.to_string() }
}

/// Renders into a temporary PNG and renames it over `path` once complete.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let tmp = temp_path(path);
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        if let Err(e) = draw(&root).and_then(|_| root.present().map_err(|e| e.to_string())) {
            let _ = std::fs::remove_file(&tmp);
            return Err(plot_err(path, e));
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| GmuError::io(path, e))
}

/// Draws `map` as a PNG at `path` (900 × 760 px): the mesh blended at half
/// opacity over white (as the seed's `imshow(alpha=0.5)`), the points on top,
/// and a colour bar with the two labels.
pub fn mesh_map(path: &Path, map: &MeshMap) -> Result<()> {
    let r = map.resolution;
    if r < 2 || map.values.len() != r * r {
        return Err(GmuError::invalid("resolution", format!("{} values for a {r}×{r} mesh", map.values.len())));
    }
    // 65 % colour over white: the data points stay readable on top.
    let blend = |c: RGBColor| {
        let mix = |v: u8| (v as f32 * 0.65 + 255.0 * 0.35).round() as u8;
        RGBColor(mix(c.0), mix(c.1), mix(c.2))
    };
    render(path, (900, 760), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let (main, bar) = root.split_horizontally(740);
        let mut chart = ChartBuilder::on(&main)
            .caption(map.title, ("sans-serif", 26))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(64)
            .build_cartesian_2d(map.x_range.0..map.x_range.1, map.y_range.0..map.y_range.1)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(map.x_label)
            .y_desc(map.y_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|x| e(&x))?;
        let area = chart.plotting_area();
        let pixels = area.strip_coord_spec();
        let (w, h) = pixels.dim_in_pixel();
        for py in 0..h {
            let j = ((h - 1 - py) as usize * r / h as usize).min(r - 1);
            for px in 0..w {
                let i = (px as usize * r / w as usize).min(r - 1);
                let c = blend(map.colormap.color(map.values[j * r + i]));
                pixels.draw_pixel((px as i32, py as i32), &c).map_err(|x| e(&x))?;
            }
        }
        let blue = RGBColor(31, 80, 220);
        let red = RGBColor(220, 40, 40);
        chart
            .draw_series(
                map.points.iter().map(|&(x, y, c)| {
                    Circle::new((x, y), 4, ShapeStyle::from(if c == 0 { blue } else { red }).filled())
                }),
            )
            .map_err(|x| e(&x))?;
        for (label, color) in [("C = 0", blue), ("C = 1", red)] {
            // An empty series carries the legend entry without drawing a point.
            chart
                .draw_series(std::iter::empty::<Circle<(f32, f32), i32>>())
                .map_err(|x| e(&x))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|x| e(&x))?;
        // Colour bar: a vertical gradient from 0 (bottom) to 1 (top), labelled at both ends.
        let (top, bottom, left, width) = (60i32, 690i32, 12i32, 28i32);
        for y in top..=bottom {
            let v = (bottom - y) as f32 / (bottom - top) as f32;
            bar.draw(&Rectangle::new([(left, y), (left + width, y + 1)], blend(map.colormap.color(v)).filled()))
                .map_err(|x| e(&x))?;
        }
        bar.draw(&Rectangle::new([(left, top), (left + width, bottom)], BLACK.stroke_width(1))).map_err(|x| e(&x))?;
        let style = TextStyle::from(("sans-serif", 15).into_font()).color(&BLACK);
        for (label, y, value) in [(map.bar_labels[1], top, "1"), (map.bar_labels[0], bottom, "0")] {
            bar.draw(&Text::new(value.to_string(), (left + width + 6, y - 8), style.clone())).map_err(|x| e(&x))?;
            // Wrap a long label in two lines under/over its value so it fits the bar's margin.
            let words: Vec<&str> = label.split(' ').collect();
            let lines = if label.len() <= 10 {
                [label.to_string(), String::new()]
            } else {
                [words[..words.len().div_ceil(2)].join(" "), words[words.len().div_ceil(2)..].join(" ")]
            };
            let n = lines.iter().filter(|l| !l.is_empty()).count() as i32;
            for (k, line) in lines.iter().enumerate() {
                let offset = if y == top { 12 + 18 * k as i32 } else { -8 - 18 * n + 18 * k as i32 };
                bar.draw(&Text::new(line.clone(), (left + width + 6, y + offset), style.clone())).map_err(|x| e(&x))?;
            }
        }
        Ok(())
    })
}

/// Draws loss curves (one per named series) against the step, as a PNG at `path`.
pub fn loss_curves(path: &Path, title: &str, curves: &[(&str, &[f32])]) -> Result<()> {
    let steps = curves.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let top = curves.iter().flat_map(|(_, c)| c.iter()).fold(0.0f32, |a, &b| a.max(b));
    if steps < 2 || !top.is_finite() {
        return Err(GmuError::invalid("loss", "at least two finite loss values are needed to draw a curve"));
    }
    let palette = [RGBColor(31, 80, 220), RGBColor(230, 120, 20), RGBColor(40, 160, 60), RGBColor(150, 60, 170)];
    render(path, (900, 560), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 26))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(64)
            .build_cartesian_2d(0f32..(steps - 1) as f32, 0f32..top * 1.05)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("Adam step")
            .y_desc("training loss")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        for (k, (name, curve)) in curves.iter().enumerate() {
            let color = palette[k % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    curve.iter().enumerate().map(|(i, &l)| (i as f32, l)),
                    color.stroke_width(3),
                ))
                .map_err(|x| e(&x))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .draw()
            .map_err(|x| e(&x))?;
        Ok(())
    })
}

/// The most rows (classes, genres) a stacked-shares chart draws.
pub const MAX_CHART_ROWS: usize = 60;

/// One stacked bar per row (class or label), its segments the share of each
/// series (modality), as a PNG at `path`: the gate-per-class chart (the
/// paper's Fig. 8). `shares[r][k]` is row `r`'s share of series `k`; each row
/// should sum to 1.
pub fn stacked_shares(
    path: &Path,
    title: &str,
    x_desc: &str,
    rows: &[String],
    series: &[String],
    shares: &[Vec<f64>],
) -> Result<()> {
    if rows.is_empty() || shares.len() != rows.len() || shares.iter().any(|s| s.len() != series.len()) {
        return Err(GmuError::invalid(
            "shares",
            format!("{} rows of shares for {} rows and {} series", shares.len(), rows.len(), series.len()),
        ));
    }
    // A chart of 10,000 classes would be a 340,000-pixel-tall bitmap (1.1 GB
    // in memory): it shows the first MAX_CHART_ROWS and says so.
    let cut = rows.len() > MAX_CHART_ROWS;
    let title = if cut {
        format!("{title} (the first {MAX_CHART_ROWS} of {} rows; all in results.json)", rows.len())
    } else {
        title.to_string()
    };
    let (rows, shares) = (&rows[..rows.len().min(MAX_CHART_ROWS)], &shares[..rows.len().min(MAX_CHART_ROWS)]);
    let title = title.as_str();
    let palette = [
        RGBColor(31, 80, 220),
        RGBColor(230, 120, 20),
        RGBColor(40, 160, 60),
        RGBColor(200, 40, 60),
        RGBColor(150, 60, 170),
        RGBColor(120, 90, 60),
    ];
    let n = rows.len();
    let height = (140 + 34 * n).max(360) as u32;
    render(path, (1100, height), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let root = root.titled(title, ("sans-serif", 24)).map_err(|x| e(&x))?;
        // The legend gets its own column right of the chart, so the x axis ends at 100 %.
        let (plot_area, legend_area) = root.split_horizontally(930);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(180)
            .build_cartesian_2d(0f64..1f64, 0f64..n as f64)
            .map_err(|x| e(&x))?;
        let labels = rows.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .x_labels(6)
            .y_labels(n * 2 + 1)
            .y_label_formatter(&move |v| {
                let k = (*v - 0.5).round();
                if (v - 0.5 - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < labels.len() {
                    labels[labels.len() - 1 - k as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        for (k, name) in series.iter().enumerate() {
            let color = palette[k % palette.len()];
            let bars = shares.iter().enumerate().map(move |(r, s)| {
                let left: f64 = s[..k].iter().sum::<f64>().min(1.0);
                let right = (left + s[k]).min(1.0);
                let y = (n - 1 - r) as f64;
                Rectangle::new([(left, y + 0.15), (right, y + 0.85)], color.filled())
            });
            chart.draw_series(bars).map_err(|x| e(&x))?;
            let y = 30 + 26 * k as i32;
            legend_area.draw(&Rectangle::new([(10, y - 7), (28, y + 7)], color.filled())).map_err(|x| e(&x))?;
            legend_area
                .draw(&Text::new(name.clone(), (36, y - 9), ("sans-serif", 16).into_font()))
                .map_err(|x| e(&x))?;
        }
        Ok(())
    })
}

/// One panel of [`line_panels`]: a title, the x values and one line per series.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// X values, shared by every line.
    pub x: Vec<f64>,
    /// `(name, y values)`; NaN values are left out of the line.
    pub lines: Vec<(String, Vec<f64>)>,
}

/// Side-by-side panels of lines with a shared y axis and one legend, as a
/// PNG at `path` (score against missing rate or noise level, one line per method).
/// Line `k` of every panel is the same series, drawn in the same colour; a
/// series that is NaN throughout is left out of the legend.
pub fn line_panels(path: &Path, title: &str, x_desc: &str, y_desc: &str, panels: &[Panel]) -> Result<()> {
    if panels.is_empty() || panels.iter().any(|p| p.x.len() < 2 || p.lines.iter().any(|(_, y)| y.len() != p.x.len())) {
        return Err(GmuError::invalid("panels", "each panel needs at least two x values and one y value per x"));
    }
    let values =
        panels.iter().flat_map(|p| p.lines.iter().flat_map(|(_, y)| y.iter().copied())).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return Err(GmuError::invalid("panels", "no finite value to draw"));
    }
    let pad = ((hi - lo) * 0.05).max(0.01);
    let (y0, y1) = ((lo - pad).max(0.0), (hi + pad).min(1.0).max(lo + pad));
    let palette = [
        RGBColor(31, 80, 220),
        RGBColor(230, 120, 20),
        RGBColor(40, 160, 60),
        RGBColor(200, 40, 60),
        RGBColor(150, 60, 170),
        RGBColor(120, 90, 60),
        RGBColor(230, 90, 180),
        RGBColor(110, 110, 110),
        RGBColor(180, 180, 30),
        RGBColor(20, 170, 190),
    ];
    let names: Vec<String> = panels[0].lines.iter().map(|(n, _)| n.clone()).collect();
    let width = (420 * panels.len() + 200) as u32;
    render(path, (width, 520), |root| {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let root = root.titled(title, ("sans-serif", 24)).map_err(|x| e(&x))?;
        let (plots, legend) = root.split_horizontally(width - 200);
        for (area, panel) in plots.split_evenly((1, panels.len())).iter().zip(panels) {
            let (x0, x1) = (panel.x[0], *panel.x.last().expect("two x values"));
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|x| e(&x))?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&|v| format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string())
                .y_label_formatter(&|v| format!("{v:.2}"))
                .axis_desc_style(("sans-serif", 15))
                .label_style(("sans-serif", 13))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|x| e(&x))?;
            for (k, (_, y)) in panel.lines.iter().enumerate() {
                let color = palette[k % palette.len()];
                let points: Vec<(f64, f64)> =
                    panel.x.iter().copied().zip(y.iter().copied()).filter(|(_, v)| v.is_finite()).collect();
                chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2))).map_err(|x| e(&x))?;
                chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|x| e(&x))?;
            }
        }
        // A series with no finite value anywhere keeps its colour slot (so charts of the
        // same methods match) but gets no legend entry.
        let shown = names
            .iter()
            .enumerate()
            .filter(|(k, _)| panels.iter().any(|p| p.lines[*k].1.iter().any(|v| v.is_finite())));
        for (row, (k, name)) in shown.enumerate() {
            let color = palette[k % palette.len()];
            let y = 40 + 24 * row as i32;
            legend.draw(&PathElement::new(vec![(8, y), (32, y)], color.stroke_width(3))).map_err(|x| e(&x))?;
            legend.draw(&Text::new(name.clone(), (38, y - 8), ("sans-serif", 15).into_font())).map_err(|x| e(&x))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, item 14: 10,000 classes draw the first MAX_CHART_ROWS rows
    /// (a bitmap of a few MB), not a 340,000-pixel-tall one.
    #[test]
    fn a_chart_of_many_classes_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.png");
        let rows: Vec<String> = (0..10_000).map(|i| format!("class {i}")).collect();
        let shares = vec![vec![0.25, 0.75]; rows.len()];
        stacked_shares(&path, "many", "share", &rows, &["a".into(), "b".into()], &shares).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let info = decoder.read_info().unwrap();
        assert_eq!(info.info().height as usize, 140 + 34 * MAX_CHART_ROWS);
    }

    #[test]
    fn colormaps_hit_their_ends_and_middle() {
        assert_eq!(Colormap::Gray.color(0.0), RGBColor(0, 0, 0));
        assert_eq!(Colormap::Gray.color(1.0), RGBColor(255, 255, 255));
        assert_eq!(Colormap::BlueWhiteRed.color(0.0), RGBColor(0, 0, 255));
        assert_eq!(Colormap::BlueWhiteRed.color(0.5), RGBColor(255, 255, 255));
        assert_eq!(Colormap::BlueWhiteRed.color(1.0), RGBColor(255, 0, 0));
    }

    #[test]
    fn a_map_is_written_with_the_mesh_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.png");
        // Left half 0, right half 1.
        let values: Vec<f32> = (0..100).map(|k| if k % 10 < 5 { 0.0 } else { 1.0 }).collect();
        let map = MeshMap {
            title: "test",
            values: &values,
            resolution: 10,
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            x_label: "x",
            y_label: "y",
            points: &[(0.5, 0.5, 1)],
            colormap: Colormap::Gray,
            bar_labels: ["zero", "one"],
        };
        mesh_map(&path, &map).unwrap();
        assert!(!temp_path(&path).exists());
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (900, 760));
        let px = |x: usize, y: usize| &buf[(y * info.width as usize + x) * 3..][..3];
        // Inside the plot: grey (0 blended at 65 %) on the left, white (1) on the right.
        assert_eq!(px(150, 600), &[89, 89, 89]);
        assert_eq!(px(650, 600), &[255, 255, 255]);
    }

    #[test]
    fn stacked_shares_draws_each_series_in_its_colour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shares.png");
        let rows = vec!["six".to_string(), "nine".to_string()];
        let series = vec!["pix".to_string(), "zer".to_string()];
        stacked_shares(&path, "gates", "share", &rows, &series, &[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let w = info.width as usize;
        let row_has = |y: usize, rgb: [u8; 3]| (0..w).any(|x| buf[(y * w + x) * 3..][..3] == rgb);
        // The top bar (six) is all pix (blue), the bottom (nine) all zer (orange).
        let blue = (0..info.height as usize).filter(|&y| row_has(y, [31, 80, 220])).collect::<Vec<_>>();
        let orange = (0..info.height as usize).filter(|&y| row_has(y, [230, 120, 20])).collect::<Vec<_>>();
        assert!(!blue.is_empty() && !orange.is_empty());
        assert!(blue.iter().filter(|&&y| y > 80).max() < orange.iter().filter(|&&y| y > 80).max());
        assert!(stacked_shares(&path, "t", "x", &rows, &series, &[vec![1.0]]).is_err());
    }

    #[test]
    fn a_wrong_mesh_size_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.png");
        let map = MeshMap {
            title: "t",
            values: &[0.0; 5],
            resolution: 10,
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            x_label: "x",
            y_label: "y",
            points: &[],
            colormap: Colormap::Gray,
            bar_labels: ["a", "b"],
        };
        assert!(mesh_map(&path, &map).is_err());
        assert!(!path.exists());
    }
}
