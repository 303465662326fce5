//! What several commands share: output paths, thread pools, data loading, standard input.

use std::path::Path;

use anyhow::{bail, Context};
use backprop::data::{DataSource, Split};

/// Refuses an output path whose directory does not exist, before any work starts.
pub fn check_output(flag: &str, path: &Path) -> anyhow::Result<()> {
    backprop::model_file::check_output_path(path).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
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
    let source = DataSource::parse(data, test).map_err(|e| anyhow::anyhow!("--data: {e}"))?;
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
