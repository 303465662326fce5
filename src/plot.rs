//! Pictures of a run: loss and accuracy per epoch, and a confusion matrix (SVG or PNG).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::io::{write_atomically, write_atomically_with};
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

/// A picture's file name that names no format this module draws.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: the file name must end in .svg or .png", .0.display())]
pub struct UnknownFormat(pub std::path::PathBuf);

/// The format of `path` by its extension.
///
/// ```
/// use backprop::plot::{check_extension, Format};
/// assert_eq!(check_extension("a.svg".as_ref()).unwrap(), Format::Svg);
/// assert!(check_extension("a.pdf".as_ref()).is_err());
/// ```
///
/// # Errors
/// [`UnknownFormat`] naming the file if its extension is neither `svg` nor `png`.
pub fn check_extension(path: &Path) -> Result<Format, UnknownFormat> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(UnknownFormat(path.to_path_buf())),
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
            // The bitmap backend encodes to a file only, chosen by its extension.
            return write_atomically_with(path, ".png", |tmp| {
                let root = BitMapBackend::new(tmp, (width, height)).into_drawing_area();
                draw_png(&root).map_err(failed)?;
                root.present().map_err(|e| failed(e.into()))
            });
        }
    };
    write_atomically(path, &bytes)
}

/// Draws the training curves: training, validation and test loss (left), validation and
/// test accuracy (right), per epoch. Epochs are whole numbers on the x axis; each curve
/// has a dot per epoch, so a one-epoch run still shows its values. A private run's
/// epsilon after its last epoch is in the accuracy panel's title.
///
/// ```
/// use backprop::train::EpochReport;
/// let r = |epoch, loss, acc| EpochReport { epoch, lr: 0.1, train_loss: loss,
///     test_loss: loss * 1.1, test_accuracy: acc, validation_loss: None,
///     validation_accuracy: None, seconds: 0.1, epsilon: None };
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

/// A tick label with no trailing `.0` and no binary noise: 5 -> "5", 0.30000000000000004
/// -> "0.3".
fn tick(v: f64) -> String {
    let v = (v * 1e6).round() / 1e6;
    if v == 0.0 {
        "0".into() // not "-0"
    } else {
        v.to_string()
    }
}

/// One curve of the training plot: its name, colour and points (epoch, value).
type Curve = (&'static str, RGBColor, Vec<(u32, f64)>);

fn curves<DB: DrawingBackend>(history: &[EpochReport], root: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let last = history.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as u32;
    // A free epoch either side keeps the first and last points off the axes, and the
    // last tick label inside the picture.
    let epochs = 0..last + 1;
    let epoch_label = |e: &u32| {
        if (1..=last).contains(e) {
            e.to_string()
        } else {
            String::new()
        }
    };
    let green = RGBColor(0, 140, 0);
    let series = |f: &dyn Fn(&EpochReport) -> Option<f64>| -> Vec<(u32, f64)> {
        history
            .iter()
            .filter_map(|r| Some((r.epoch as u32, f(r).filter(|v| v.is_finite())?)))
            .collect()
    };
    let losses: Vec<Curve> = vec![
        ("train", BLUE, series(&|r| Some(r.train_loss))),
        ("validation", green, series(&|r| r.validation_loss)),
        ("test", RED, series(&|r| Some(r.test_loss))),
    ];
    let accuracies: Vec<Curve> = vec![
        (
            "validation",
            green,
            series(&|r| r.validation_accuracy.map(|a| 100.0 * a)),
        ),
        ("test", RED, series(&|r| Some(100.0 * r.test_accuracy))),
    ];
    let max_loss = losses
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(1e-9, f64::max);
    // Losses fall and accuracies rise: their legends go where the curves are not.
    let upper = SeriesLabelPosition::UpperRight;
    let loss_range = 0.0..max_loss * 1.05;
    panel(
        &left,
        ("loss", ""),
        upper,
        epochs.clone(),
        loss_range,
        &epoch_label,
        &losses,
    )?;
    // Accuracy: from a little below the lowest value (never below 0) to 100%.
    let lo = accuracies
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(100.0, f64::min);
    let lo = (lo - 0.05 * (100.0 - lo).max(1.0)).max(0.0);
    let hi = 100.0 + 0.02 * (100.0 - lo);
    let lower = SeriesLabelPosition::LowerRight;
    // A private run's privacy spent so far goes over the accuracy it bought.
    let caption = match history.last().and_then(|r| r.epsilon) {
        Some(e) => format!("accuracy, private: epsilon {e:.3}"),
        None => "accuracy".to_string(),
    };
    panel(
        &right,
        (&caption, "%"),
        lower,
        epochs,
        lo..hi,
        &epoch_label,
        &accuracies,
    )?;
    Ok(())
}

/// One half of the training plot: `curves` against epochs, with a legend of those
/// that have points at `legend`.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (caption, y_desc): (&str, &str),
    legend: SeriesLabelPosition,
    epochs: std::ops::Range<u32>,
    values: std::ops::Range<f64>,
    epoch_label: &dyn Fn(&u32) -> String,
    curves: &[Curve],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let top = values.end;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(epochs, values)?;
    // Labels above 100% (the headroom of the accuracy panel) would be nonsense.
    let value_label = |v: &f64| {
        if y_desc == "%" && *v > 100.0 {
            String::new()
        } else {
            tick(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_label_formatter(epoch_label)
        .y_label_formatter(&value_label)
        .draw()?;
    let mut any = false;
    for (name, colour, points) in curves.iter().filter(|c| !c.2.is_empty()) {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart.draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y.min(top)), 2, colour.filled())),
        )?;
        any = true;
    }
    if any {
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// Draws a confusion matrix (`confusion[true][predicted]`) as a heat map with counts:
/// k x k cells for k classes, shaded by count, each count in black on light cells and in
/// white on dark ones.
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
    // Cells of 60 pixels, smaller for many classes, larger for very few; the picture is
    // the grid and its margins.
    let k = confusion.len().max(1) as i32;
    let cell = (1480 / k).clamp(12, 60).max(240 / k);
    let (left, top, right, bottom) = MARGINS;
    let size = |margins: i32| (margins + k * cell) as u32;
    render(
        path,
        (size(left + right), size(top + bottom)),
        |root| heat_map(confusion, root),
        |root| heat_map(confusion, root),
    )
}

/// The fill of a cell whose count is `shade` (0 to 1) of the largest: white to blue.
fn cell_colour(shade: f64) -> RGBColor {
    RGBColor(
        (255.0 * (1.0 - shade)).round() as u8,
        (255.0 * (1.0 - 0.6 * shade)).round() as u8,
        255,
    )
}

/// Black or white, whichever reads better on `fill`: white once the fill's luma
/// (ITU-R BT.601 weights) is below one half.
fn text_colour(fill: RGBColor) -> RGBColor {
    let luma =
        (0.299 * f64::from(fill.0) + 0.587 * f64::from(fill.1) + 0.114 * f64::from(fill.2)) / 255.0;
    if luma < 0.5 {
        WHITE
    } else {
        BLACK
    }
}

/// Space around the confusion matrix's cells, in pixels: left (labels and "true"), top
/// (caption), right, bottom (labels and "predicted").
const MARGINS: (i32, i32, i32, i32) = (60, 40, 20, 60);

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
    // Drawn in pixels rather than on a chart: a chart's discrete axis has k + 1 slots
    // for k classes, and its labels would not sit at the cells' centres.
    let (width, height) = root.dim_in_pixel();
    let (left, top, right, bottom) = MARGINS;
    let cell = ((width as i32 - left - right).min(height as i32 - top - bottom) / k as i32).max(1);
    let font = (cell as f64 * 0.3).clamp(6.0, 16.0);
    let centre = Pos::new(HPos::Center, VPos::Center);
    let label_style = ("sans-serif", font).into_font().color(&BLACK).pos(centre);
    let grid = cell * k as i32;
    root.draw(&Text::new(
        "confusion matrix",
        (left + grid / 2, top / 2),
        ("sans-serif", 16).into_font().color(&BLACK).pos(centre),
    ))?;
    root.draw(&Text::new(
        "predicted",
        (left + grid / 2, top + grid + 40),
        ("sans-serif", 14).into_font().color(&BLACK).pos(centre),
    ))?;
    root.draw(&Text::new(
        "true",
        (18, top + grid / 2),
        ("sans-serif", 14)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(centre),
    ))?;
    for c in 0..k as i32 {
        let mid = c * cell + cell / 2;
        root.draw(&Text::new(
            c.to_string(),
            (left + mid, top + grid + 14),
            label_style.clone(),
        ))?;
        root.draw(&Text::new(
            c.to_string(),
            (left - 14, top + mid),
            label_style.clone(),
        ))?;
    }
    // Row t (true class) is the t-th from the top, as in the text table.
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            let fill = cell_colour(count as f64 / max);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                fill.filled(),
            ))?;
            root.draw(&Text::new(
                count.to_string(),
                (x + cell / 2, y + cell / 2),
                ("sans-serif", font)
                    .into_font()
                    .color(&text_colour(fill))
                    .pos(centre),
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_no_trailing_zero_or_noise() {
        assert_eq!(tick(5.0), "5");
        assert_eq!(tick(0.1 + 0.2), "0.3");
        assert_eq!(tick(-0.0), "0");
        assert_eq!(tick(97.5), "97.5");
    }

    #[test]
    fn text_is_white_on_dark_cells_and_black_on_light_ones() {
        // The largest count: fill (0, 102, 255), luma (0.587 * 102 + 0.114 * 255) / 255 = 0.35.
        assert_eq!(cell_colour(1.0), RGBColor(0, 102, 255));
        assert_eq!(text_colour(cell_colour(1.0)), WHITE);
        assert_eq!(text_colour(cell_colour(0.0)), BLACK);
        // Half the largest: (128, 179, 255), luma 0.67: black still.
        assert_eq!(text_colour(cell_colour(0.5)), BLACK);
    }
}
