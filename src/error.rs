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
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
