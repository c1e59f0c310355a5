//! The chart of `cargo xtask bench models`: each family's speed against
//! PyTorch eager (PyTorch's latency over ours) on every backend measured,
//! as grouped bars with the 1.0 line, in SVG (plotters, no font library:
//! the text is left to the viewer).

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;
use std::path::Path;

/// One colour per backend, in the bench's order.
const BACKENDS: [(&str, RGBColor); 3] = [
    ("cpu", RGBColor(0x4c, 0x72, 0xb0)),
    ("ort", RGBColor(0xdd, 0x84, 0x52)),
    ("openvino", RGBColor(0x55, 0xa8, 0x68)),
];

/// Writes the chart of `report` (the bench's JSON) to `path`.
pub fn speed_chart(report: &Value, path: &Path) -> anyhow::Result<()> {
    let families: Vec<&Value> = report["families"]
        .as_array()
        .map(|f| f.iter().collect())
        .unwrap_or_default();
    let names: Vec<String> = families
        .iter()
        .map(|f| f["family"].as_str().unwrap_or_default().to_owned())
        .collect();
    // (family index, backend index, speed)
    let mut bars = Vec::new();
    for (i, family) in families.iter().enumerate() {
        for row in family["rows"].as_array().into_iter().flatten() {
            let backend = row["backend"].as_str().unwrap_or_default();
            let Some(b) = BACKENDS.iter().position(|(name, _)| *name == backend) else {
                continue;
            };
            if let Some(speed) = row["speed_vs_pytorch"].as_f64() {
                bars.push((i, b, speed));
            }
        }
    }
    let fastest = bars.iter().map(|&(_, _, s)| s).fold(1.0f64, f64::max);
    let top = (fastest * 1.15).ceil();
    let width = (120 * names.len().max(1) + 120) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(draw)?;
    let slots = names.len() * (BACKENDS.len() + 1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "speed vs PyTorch eager (PyTorch latency / ours; > 1 is faster), 2 threads",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..slots as f64, 0.0..top)
        .map_err(draw)?;
    let group = (BACKENDS.len() + 1) as f64;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("speed vs PyTorch")
        .draw()
        .map_err(draw)?;
    // Each family's name under its group of bars (the mesh's own labels
    // fall on round numbers, not on groups).
    let label =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, name) in names.iter().enumerate() {
        let centre = i as f64 * group + group / 2.0;
        let (x, y) = chart.backend_coord(&(centre, 0.0));
        root.draw(&Text::new(name.clone(), (x, y + 8), label.clone()))
            .map_err(draw)?;
    }
    for (b, (backend, colour)) in BACKENDS.iter().enumerate() {
        let series = bars
            .iter()
            .filter(|&&(_, bb, _)| bb == b)
            .map(|&(i, _, speed)| {
                let x = i as f64 * group + 0.5 + b as f64;
                Rectangle::new([(x, 0.0), (x + 0.9, speed)], colour.filled())
            });
        chart
            .draw_series(series)
            .map_err(draw)?
            .label(*backend)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, 1.0), (slots as f64, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(draw)?
        .label("PyTorch = 1.0");
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
