//! What several commands share: output paths, thread pools, data loading, standard input,
//! flags with a fixed set of values, and how a run that stops early ends.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use backprop::data::{DataSource, Split};

/// Refuses, before any work starts, an output path that cannot be written safely: its
/// directory does not exist, or something other than a regular file is there (a
/// directory, `/dev/null`, a FIFO). A symbolic link is fine: the file it names is written.
pub fn check_output(flag: &str, path: &Path) -> anyhow::Result<()> {
    backprop::io::check_output_path(path).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

/// Refuses, before any work starts, an output that would overwrite one of the run's
/// inputs or another of its outputs (`--data d.csv --out d.csv`). Standard input (`-`)
/// is no file and is skipped.
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> anyhow::Result<()> {
    let files: Vec<(&str, &Path)> = inputs
        .iter()
        .copied()
        .filter(|(_, p)| p.as_os_str() != "-")
        .collect();
    backprop::io::check_distinct(&files, outputs).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The files `--data` (and `--test`) read, to keep outputs off them: a CSV or text file,
/// or the four files (plain or gzipped) of an IDX directory. Built-in sets read no file.
pub fn data_files(data: &str, test: Option<&Path>) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    match DataSource::parse(data, test) {
        Ok(DataSource::Csv { train, .. } | DataSource::Text(Some(train))) => {
            files.push(("--data", train))
        }
        Ok(DataSource::IdxDir(dir)) => {
            for name in [
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ] {
                files.push(("--data", dir.join(name)));
                files.push(("--data", dir.join(format!("{name}.gz"))));
            }
        }
        _ => {}
    }
    if let Some(t) = test {
        files.push(("--test", t.to_path_buf()));
    }
    files
}

/// A value parser that accepts exactly `names` (listed in `--help` and in the error for
/// any other value) and turns the one given into a `T` by its `FromStr`.
pub fn one_of<T>(
    names: impl IntoIterator<Item = &'static str>,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// A run that stops early on purpose (Ctrl-C): `message` is printed as it is, not as an
/// error, and the process exits with `status`.
#[derive(Debug)]
pub struct Stopped {
    /// What happened and how to go on.
    pub message: String,
    /// The exit status (130 = 128 + SIGINT, as shells report an interrupted command).
    pub status: u8,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Stopped {}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `x` to 4 significant digits for a person to read (`6.954e-5`, `0.03477`, `1e-5`):
/// the exact value is in `--json` and the model file.
pub fn short_number(x: f64) -> String {
    let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    if rounded != 0.0 && rounded.abs() < 1e-3 {
        format!("{rounded:e}")
    } else {
        format!("{rounded}")
    }
}

/// Sets the number of threads of the global pool that matrix products use.
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads: must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("--threads: could not start the thread pool")?;
    }
    Ok(())
}

/// Loads `--data` (and `--test`), split into training and test parts.
pub fn load_data(
    data: &str,
    test: Option<&Path>,
    test_split: f64,
    seed: u64,
) -> anyhow::Result<Split> {
    if !(test_split > 0.0 && test_split < 1.0) {
        bail!("--test-split {test_split}: must be between 0 and 1");
    }
    // The error names --data and its text already.
    let source = DataSource::parse(data, test)?;
    let split = source.load(test_split, seed)?;
    Ok(split)
}

/// A comma-separated list of sizes (`2,4,4,3`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes(pub Vec<usize>);

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|s| s.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for Sizes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Sizes(Vec::new()));
        }
        s.split(',')
            .map(|p| {
                let p = p.trim();
                match p.parse::<usize>() {
                    Ok(0) => Err("a layer size must be at least 1".to_string()),
                    Ok(n) => Ok(n),
                    Err(_) => Err(format!("'{p}' is not a layer size")),
                }
            })
            .collect::<Result<_, _>>()
            .map(Sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::short_number;

    #[test]
    fn short_numbers_keep_four_significant_digits() {
        assert_eq!(short_number(1.0 / 14380.0), "6.954e-5");
        assert_eq!(short_number(1e-5), "1e-5");
        assert_eq!(short_number(0.03477051460361613), "0.03477");
        assert_eq!(short_number(0.004), "0.004");
        assert_eq!(short_number(1.0), "1");
        assert_eq!(short_number(0.0), "0");
    }
}
