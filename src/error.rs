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
    /// A scalar-graph error.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// A `diff` program error.
    #[error(transparent)]
    Program(#[from] crate::program::ProgramError),
    /// A network of inconsistent shape, or a batch that does not fit it.
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// A data set could not be loaded, split or scaled.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An optimizer was misconfigured or given mismatched state.
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    /// A model or tensor file could not be read or written.
    #[error(transparent)]
    ModelFile(#[from] crate::model_file::ModelFileError),
    /// A benchmark could not be set up or timed.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
