//! Layers with PyTorch's names and semantics, and models written as `arch` strings.
//!
//! The post ends: "Backpropagation is the key algorithm to build all kinds of deep learning
//! models ... such as RNN, LSTM and CNN." An [`Arch`] is such a model written the way a
//! PyTorch user writes an `nn.Sequential`: `Conv2d(1, 6, 5, padding=2), ReLU(), ...`. It knows
//! its layers, the shape of an example after each one, and its parameters with the names
//! and layouts PyTorch gives them (`0.weight`, `1.weight_ih_l0`, ...), so a model file is a
//! PyTorch `state_dict`.
//!
//! A [`Sequential`] is the model an arch describes: its parameters, a forward pass that keeps
//! each layer's output, and a backward pass that goes down the layers as the post's four
//! equations go down a fully connected network, each layer's vector-Jacobian product
//! beside its forward (`layers.rs`).

mod arch;
mod file;
mod gradcheck;
mod layers;
mod sequential;

pub use arch::{Arch, ArchError, Layer, ParamInit, ParamSpec, MAX_SIZE};
pub use file::{
    check_cost, is_arch_model, load, load_any, parse_input_shape, preset, AnyArchModel, AnyModel,
    ArchModel, ARCH_KEY, COST_KEY, INPUT_SHAPE_KEY, PRESETS, VOCAB_KEY,
};
pub use gradcheck::{gradcheck, GradCheck};
pub use sequential::{NamedGrads, NnError, PerExample, Sequential, Workspace};
