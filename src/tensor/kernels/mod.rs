//! Hand-written kernels for the ops where speed needs more than a composition of primitives:
//! convolution by unfold + GEMM, pooling with a saved argmax, and the LSTM and tanh-RNN steps.
//!
//! Each kernel is a pure function on slices (no tape): the forward writes its output and
//! whatever its backward needs into buffers the caller owns (or a reusable workspace), and
//! the backward turns the output's gradient into the inputs' and parameters' gradients.
//! Once the buffers have grown to a step's size, a training step allocates nothing here
//! (the `gemm` crate still packs its operands into buffers of its own).
//!
//! Layouts and semantics are PyTorch's (NCHW, `(C_out, C_in, kH, kW)` weights, `nn.LSTM`'s
//! gate order i, f, g, o), checked against PyTorch autograd in `tests/tensor_kernels_torch.rs`.
//!
//! Shapes are checked once, with checked arithmetic, when a shape struct is built
//! ([`Conv2dShape::new`], [`Pool2dShape::new`], [`RecurrentShape::new`]); a kernel given
//! slices of the wrong length panics, as that is a programming error, never bad user input.

mod conv;
mod pool;
mod recurrent;
mod thin;

pub use conv::{
    col2im, conv2d_backward, conv2d_forward, conv2d_weight_grad_per_example, im2col, Conv2dShape,
    Conv2dWorkspace,
};
pub use pool::{
    avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
    relu_max_pool2d_backward, relu_max_pool2d_forward, Pool2dShape,
};
pub use recurrent::{
    lstm_sequence_backward, lstm_sequence_forward, lstm_step_backward, lstm_step_forward,
    recurrent_param_grads_per_example, rnn_sequence_backward, rnn_sequence_forward,
    rnn_step_backward, rnn_step_forward, InputGrad, LstmSaved, ParamGrads, Params, RecurrentShape,
    RnnSaved, SequenceInput, SequenceWorkspace, StepGrads,
};

/// Whether this CPU runs the AVX2 + FMA kernels (cached by std after the first call).
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A kernel's shape that cannot work: a zero or overflowing size, a window larger than its
/// padded input, or parameters of the wrong size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {reason}")]
pub struct KernelError {
    /// The kernel, e.g. `"conv2d"`.
    pub op: &'static str,
    /// What is wrong, naming the sizes.
    pub reason: String,
}

impl KernelError {
    fn new(op: &'static str, reason: impl Into<String>) -> Self {
        KernelError {
            op,
            reason: reason.into(),
        }
    }
}

/// The product of `dims`, or an error naming `op` on overflow.
fn checked_product(op: &'static str, dims: &[usize]) -> Result<usize, KernelError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::new(op, format!("sizes {dims:?} overflow")))
}

/// The output length of a sliding window along one axis: floor((len + 2 pad - k) / stride) + 1.
fn window_count(
    op: &'static str,
    axis: &str,
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<usize, KernelError> {
    if k == 0 || stride == 0 {
        return Err(KernelError::new(
            op,
            format!("{axis}: kernel {k} and stride {stride} must be positive"),
        ));
    }
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(len))
        .ok_or_else(|| KernelError::new(op, format!("{axis}: padding {pad} overflows")))?;
    if padded < k {
        return Err(KernelError::new(
            op,
            format!("{axis}: kernel {k} larger than the padded input {padded}"),
        ));
    }
    Ok((padded - k) / stride + 1)
}
