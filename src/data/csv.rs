//! CSV files: labelled data sets (label first, the common MNIST-as-CSV layout) and plain
//! numeric matrices (for `grad --inputs/--targets`), and the rows `predict --inputs` reads.
//!
//! Cells are separated by commas and trimmed; blank lines are skipped, except in the rows
//! of [`parse_feature_rows`]. Errors give the file, the 1-based line and, for a cell, the
//! 1-based column.

use super::{DataError, Dataset};
use crate::linalg::Matrix;
use crate::Float;
use std::io::Read;
use std::path::Path;

fn read_text(path: &Path) -> Result<String, DataError> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| DataError::io("<standard input>", e))?;
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| DataError::io(path, e))?;
    }
    Ok(text)
}

/// Non-blank lines with their 1-based numbers, each split into trimmed cells.
/// Every row must have as many cells as the first: `width` remembers the first's.
fn same_width(
    width: &mut Option<usize>,
    found: usize,
    path: &Path,
    line: usize,
) -> Result<(), DataError> {
    let expected = *width.get_or_insert(found);
    if found != expected {
        return Err(DataError::Ragged {
            path: path.into(),
            line,
            expected,
            found,
        });
    }
    Ok(())
}

fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    // A byte-order mark (spreadsheet exports) would otherwise hide the first number.
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
}

fn number(cell: &str, path: &Path, line: usize, column: usize) -> Result<f64, DataError> {
    cell.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| DataError::BadCell {
            path: path.into(),
            line,
            column,
            cell: cell.chars().take(40).collect(),
        })
}

/// `x` in precision `T`, refusing a value that is finite as written but not in `T`.
fn narrow<T: Float>(
    x: f64,
    cell: &str,
    path: &Path,
    line: usize,
    column: usize,
) -> Result<T, DataError> {
    let v = T::from_f64(x);
    if v.is_finite() {
        return Ok(v);
    }
    Err(DataError::OutOfRange {
        path: path.into(),
        at: format!("line {line}, column {column}"),
        value: cell.chars().take(40).collect(),
        precision: if T::DTYPE == "F32" { "f32" } else { "f64" },
    })
}

/// Parses a labelled CSV text: each line `label,x_1,...,x_N`. A first line whose first
/// cell is not a number is a header and is skipped. `path` names the source in errors.
///
/// ```
/// use backprop::data::csv::parse_labeled_csv;
/// let d = parse_labeled_csv("label,a,b\n1,0.5,2\n0,1,-3\n", "t.csv".as_ref()).unwrap();
/// assert_eq!((d.len(), d.features, d.classes), (2, 2, 2));
/// assert_eq!((d.labels.clone(), d.inputs.clone()), (vec![1, 0], vec![0.5, 2.0, 1.0, -3.0]));
/// let e = parse_labeled_csv("1,2,3\n0,nan,1\n", "t.csv".as_ref()).unwrap_err();
/// assert_eq!(e.to_string(), "t.csv: line 2, column 2: \"nan\" is not a finite number");
/// // Inputs are stored in f32: 1e39 would become infinite.
/// let e = parse_labeled_csv("1,2,1e39\n", "t.csv".as_ref()).unwrap_err();
/// assert_eq!(e.to_string(), "t.csv: line 1, column 3: 1e39 is not a finite f32 number (|x| <= 3.4e38)");
/// ```
///
/// # Errors
/// [`DataError::Empty`] (no data rows), [`DataError::Ragged`], [`DataError::BadCell`],
/// [`DataError::NoFeatures`], [`DataError::CsvLabel`] (negative, fractional or too large),
/// [`DataError::OutOfRange`] (an input beyond f32's range).
pub fn parse_labeled_csv(text: &str, path: &Path) -> Result<Dataset, DataError> {
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (k, (line, cells)) in rows(text).enumerate() {
        if k == 0 && cells[0].parse::<f64>().is_err() {
            continue; // a header
        }
        same_width(&mut width, cells.len(), path, line)?;
        if cells.len() < 2 {
            return Err(DataError::NoFeatures {
                path: path.into(),
                line,
            });
        }
        let label = number(cells[0], path, line, 1)?;
        if !(label >= 0.0 && label.fract() == 0.0 && label < super::MAX_CLASSES as f64) {
            return Err(DataError::CsvLabel {
                path: path.into(),
                line,
                cell: cells[0].chars().take(40).collect(),
                max: super::MAX_CLASSES,
            });
        }
        labels.push(label as u32);
        for (c, cell) in cells[1..].iter().enumerate() {
            let x = number(cell, path, line, c + 2)?;
            inputs.push(narrow::<f32>(x, cell, path, line, c + 2)?);
        }
    }
    let Some(width) = width else {
        return Err(DataError::Empty { path: path.into() });
    };
    Dataset::new(inputs, labels, width - 1)
}

/// Reads a labelled CSV file (see [`parse_labeled_csv`]); `-` reads standard input.
///
/// # Errors
/// [`DataError::Io`], and those of [`parse_labeled_csv`].
pub fn read_labeled_csv(path: &Path) -> Result<Dataset, DataError> {
    parse_labeled_csv(&read_text(path)?, path)
}

/// Parses a numeric matrix: one row per line, no header, no labels; every cell a finite
/// number, in `T` too. Values are parsed as `f64`, then rounded to `T`.
///
/// ```
/// use backprop::data::csv::parse_matrix_csv;
/// let m = parse_matrix_csv::<f64>("1, 2\n3,4.5\n", "x.csv".as_ref()).unwrap();
/// assert_eq!((m.rows(), m.cols(), m.as_slice()), (2, 2, &[1.0, 2.0, 3.0, 4.5][..]));
/// ```
///
/// # Errors
/// [`DataError::Empty`], [`DataError::Ragged`], [`DataError::BadCell`],
/// [`DataError::OutOfRange`] (beyond `T`'s range: `1e39` for f32).
pub fn parse_matrix_csv<T: Float>(text: &str, path: &Path) -> Result<Matrix<T>, DataError> {
    let mut values = Vec::new();
    let mut width = None;
    let mut n = 0;
    for (line, cells) in rows(text) {
        same_width(&mut width, cells.len(), path, line)?;
        for (c, cell) in cells.iter().enumerate() {
            let x = number(cell, path, line, c + 1)?;
            values.push(narrow::<T>(x, cell, path, line, c + 1)?);
        }
        n += 1;
    }
    let Some(width) = width else {
        return Err(DataError::Empty { path: path.into() });
    };
    Ok(Matrix::from_vec(n, width, values).expect("n rows of width cells"))
}

/// Reads a numeric matrix CSV file (see [`parse_matrix_csv`]); `-` reads standard input.
///
/// # Errors
/// [`DataError::Io`], and those of [`parse_matrix_csv`].
pub fn read_matrix_csv<T: Float>(path: &Path) -> Result<Matrix<T>, DataError> {
    let name = if path == Path::new("-") {
        Path::new("<standard input>")
    } else {
        path
    };
    parse_matrix_csv(&read_text(path)?, name)
}

/// Parses the rows a model is asked about (`predict --inputs`): one example a line, its
/// features only, comma-separated. As in a labelled file, a first line whose first cell
/// is not a number is a header and is skipped. A blank line is refused, not skipped, so
/// that answer i belongs to line i of the rows.
///
/// ```
/// use backprop::data::csv::parse_feature_rows;
/// let m = parse_feature_rows::<f64>("a,b\n1,2\n3,4\n", "x.csv".as_ref()).unwrap();
/// assert_eq!((m.rows(), m.as_slice()), (2, &[1.0, 2.0, 3.0, 4.0][..]));
/// let e = parse_feature_rows::<f64>("1,2\n\n3,4\n", "x.csv".as_ref()).unwrap_err();
/// assert_eq!(e.to_string(), "x.csv: line 2 is blank; every line must be a row of numbers");
/// ```
///
/// # Errors
/// [`DataError::Empty`], [`DataError::BlankLine`], [`DataError::Ragged`],
/// [`DataError::BadCell`].
pub fn parse_feature_rows<T: Float>(text: &str, path: &Path) -> Result<Matrix<T>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (mut values, mut width, mut n) = (Vec::new(), None, 0);
    for (i, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() {
            return Err(DataError::BlankLine {
                path: path.into(),
                line: i + 1,
            });
        }
        if i == 0 && cells[0].parse::<f64>().is_err() {
            continue; // a header, as parse_labeled_csv takes it
        }
        same_width(&mut width, cells.len(), path, i + 1)?;
        for (c, cell) in cells.iter().enumerate() {
            values.push(T::from_f64(number(cell, path, i + 1, c + 1)?));
        }
        n += 1;
    }
    let Some(width) = width else {
        return Err(DataError::Empty { path: path.into() });
    };
    Ok(Matrix::from_vec(n, width, values).expect("n rows of width cells"))
}

/// Reads the rows of [`parse_feature_rows`] from a file; `-` reads standard input.
///
/// # Errors
/// [`DataError::Io`], and those of [`parse_feature_rows`].
pub fn read_feature_rows<T: Float>(path: &Path) -> Result<Matrix<T>, DataError> {
    let name = if path == Path::new("-") {
        Path::new("<standard input>")
    } else {
        path
    };
    parse_feature_rows(&read_text(path)?, name)
}
