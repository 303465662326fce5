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
    /// Training stopped (a diverged run, data that does not fit) or was misconfigured.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    /// Training settings outside their ranges.
    #[error(transparent)]
    Config(#[from] crate::train::ConfigError),
    /// A classifier was given rows that do not fit it.
    #[error(transparent)]
    Classifier(#[from] crate::classifier::ClassifierError),
    /// A text or vocabulary could not be read.
    #[error(transparent)]
    Text(#[from] crate::data::text::TextError),
    /// An `arch` string that does not parse, or a layer that does not fit its input.
    #[error(transparent)]
    Arch(#[from] crate::nn::ArchError),
    /// A tensor op given shapes or values it cannot take.
    #[error(transparent)]
    Tensor(#[from] crate::tensor::TensorError),
    /// A kernel given buffers of the wrong size.
    #[error(transparent)]
    Kernel(#[from] crate::tensor::kernels::KernelError),
    /// An output path that must not be written.
    #[error(transparent)]
    Output(#[from] crate::io::OutputError),
    /// A name that is not one of the accepted ones.
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A name that is not one of the accepted ones (an activation, a cost, an initialiser, a
/// scaling): what it was meant to name, the text given, and every accepted name.
///
/// ```
/// use backprop::network::Activation;
/// let e = "swish".parse::<Activation>().unwrap_err();
/// assert_eq!(e.what, "activation");
/// assert!(e.expected.contains(&"relu"));
/// assert!(e.to_string().starts_with("unknown activation 'swish' (expected one of: identity, sigmoid"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{given}' (expected one of: {})", expected.join(", "))]
pub struct UnknownName {
    /// What the name was meant to name.
    pub what: &'static str,
    /// The text given.
    pub given: String,
    /// The accepted names.
    pub expected: Vec<&'static str>,
}
