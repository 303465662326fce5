//! The crate's error type: one variant per module, each carrying that module's own error.

/// Any error the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input/output error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A benchmark could not be set up or timed.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
