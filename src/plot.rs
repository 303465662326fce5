//! Pictures of a run: loss and accuracy per epoch, and a confusion matrix (SVG or PNG).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::model_file::write_atomically;
use crate::train::EpochReport;

/// DejaVu Sans Mono, embedded so that PNG text needs no system fonts.
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

/// The picture formats, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.svg`
    Svg,
    /// `.png`
    Png,
}

/// The format of `path` by its extension.
///
/// ```
/// use backprop::plot::{check_extension, Format};
/// assert_eq!(check_extension("a.svg".as_ref()).unwrap(), Format::Svg);
/// assert!(check_extension("a.pdf".as_ref()).is_err());
/// ```
///
/// # Errors
/// A message naming the extension if it is neither `svg` nor `png`.
pub fn check_extension(path: &Path) -> Result<Format, String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(format!(
            "{}: the file name must end in .svg or .png",
            path.display()
        )),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `width` x `height` pixels with `draw` and writes the picture to `path`
/// atomically, in the format its extension names.
fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
    draw_png: impl Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> std::io::Result<()> {
    let failed = |e: Box<dyn std::error::Error>| std::io::Error::other(e.to_string());
    // Both backends measure text with this font; registering it again is harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let bytes = match check_extension(path).map_err(std::io::Error::other)? {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                draw(&root).map_err(failed)?;
                root.present().map_err(|e| failed(e.into()))?;
            }
            svg.into_bytes()
        }
        Format::Png => {
            // The bitmap backend encodes to a file only: draw into a temporary file beside
            // the target, then rename it, so no half-written picture is ever left.
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let tmp = path.with_file_name(format!(".{name}.{}.tmp.png", std::process::id()));
            let result = (|| {
                let root = BitMapBackend::new(&tmp, (width, height)).into_drawing_area();
                draw_png(&root).map_err(failed)?;
                root.present().map_err(|e| failed(e.into()))?;
                drop(root);
                std::fs::rename(&tmp, path)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            return result;
        }
    };
    write_atomically(path, &bytes)
}

/// Draws the training curves: training and test loss (left), test accuracy (right),
/// per epoch.
///
/// ```
/// use backprop::train::EpochReport;
/// let r = |epoch, loss, acc| EpochReport { epoch, lr: 0.1, train_loss: loss,
///     test_loss: loss * 1.1, test_accuracy: acc, validation_loss: None,
///     validation_accuracy: None, seconds: 0.1 };
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("curves.svg");
/// backprop::plot::training_curves(&[r(1, 0.9, 0.5), r(2, 0.5, 0.8)], &path).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
/// ```
///
/// # Errors
/// An I/O error naming what failed.
pub fn training_curves(history: &[EpochReport], path: &Path) -> std::io::Result<()> {
    render(
        path,
        (1000, 400),
        |root| curves(history, root),
        |root| curves(history, root),
    )
}

fn curves<DB: DrawingBackend>(history: &[EpochReport], root: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let epochs = history.len().max(1) as f64;
    let max_loss = history
        .iter()
        .flat_map(|r| [r.train_loss, r.test_loss])
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(1f64..epochs.max(2.0), 0f64..max_loss * 1.05)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    chart
        .draw_series(LineSeries::new(
            history.iter().map(|r| (r.epoch as f64, r.train_loss)),
            &BLUE,
        ))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            history.iter().map(|r| (r.epoch as f64, r.test_loss)),
            &RED,
        ))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let lo = history
        .iter()
        .map(|r| r.test_accuracy)
        .fold(1.0, f64::min)
        .min(0.9);
    let mut chart = ChartBuilder::on(&right)
        .caption("test accuracy", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(1f64..epochs.max(2.0), lo * 100.0..100.0)?;
    chart.configure_mesh().x_desc("epoch").y_desc("%").draw()?;
    chart.draw_series(LineSeries::new(
        history
            .iter()
            .map(|r| (r.epoch as f64, 100.0 * r.test_accuracy)),
        &RED,
    ))?;
    Ok(())
}

/// Draws a confusion matrix (`confusion[true][predicted]`) as a heat map with counts.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("confusion.svg");
/// backprop::plot::confusion_matrix(&[vec![5, 1], vec![0, 4]], &path).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
/// ```
///
/// # Errors
/// An I/O error naming what failed.
pub fn confusion_matrix(confusion: &[Vec<usize>], path: &Path) -> std::io::Result<()> {
    let side = (60 * confusion.len() as u32 + 120).clamp(300, 1600);
    render(
        path,
        (side, side),
        |root| heat_map(confusion, root),
        |root| heat_map(confusion, root),
    )
}

fn heat_map<DB: DrawingBackend>(
    confusion: &[Vec<usize>],
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let k = confusion.len().max(1);
    let max = confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "confusion matrix (rows: true, columns: predicted)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(30)
        .build_cartesian_2d((0..k).into_segmented(), (0..k).into_segmented())?;
    // Row t is drawn at height k - 1 - t, so class 0 is at the top, as in the text table.
    let label = |v: &SegmentValue<usize>, flip: bool| match *v {
        SegmentValue::CenterOf(c) if c < k => (if flip { k - 1 - c } else { c }).to_string(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&|v| label(v, false))
        .y_label_formatter(&|v| label(v, true))
        .draw()?;
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let shade = count as f64 / max;
            let y = k - 1 - t;
            let color = RGBColor(
                (255.0 * (1.0 - shade)) as u8,
                (255.0 * (1.0 - 0.6 * shade)) as u8,
                255,
            );
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                count.to_string(),
                (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                ("sans-serif", 14).into_font(),
            )))?;
        }
    }
    Ok(())
}
