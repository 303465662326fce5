//! The tensor engine: n-dimensional values on a tape, and the hand-written kernels its ops call.

pub mod kernels;
