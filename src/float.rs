//! The element type of networks and data: `f32` or `f64`, one code path for both.

use std::fmt::{Debug, Display};

/// A real number type that networks, costs and optimizers are generic over.
///
/// Implemented for `f32` and `f64`. Everything numeric in [`crate::network`] and
/// [`crate::optim`] is written once against this trait, never copied per precision.
///
/// ```
/// use backprop::Float;
/// fn half<T: Float>(x: T) -> T { x * T::from_f64(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64), 1.5);
/// ```
pub trait Float:
    num_traits::Float
    + num_traits::FloatConst
    + num_traits::NumAssign
    + std::iter::Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// The name of the type as safetensors spells its dtype: `"F32"` or `"F64"`.
    const DTYPE: &'static str;
    /// Machine epsilon of the type.
    const EPS: Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `f32` exactly.
    fn from_f32(x: f32) -> Self;
}

impl Float for f32 {
    const DTYPE: &'static str = "F32";
    const EPS: Self = f32::EPSILON;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl Float for f64 {
    const DTYPE: &'static str = "F64";
    const EPS: Self = f64::EPSILON;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x as f64
    }
}

/// Whether `T` is `f32`: the kernels with `f32` SIMD paths ask before taking them.
pub(crate) fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// `v` at its own type `f32`, when `T` is `f32`.
pub(crate) fn as_f32<T: Float>(v: &[T]) -> Option<&[f32]> {
    // SAFETY: the TypeIds are equal, so `T` is `f32`: the same slice, at the same type.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) })
}

/// `v` at its own type `f32`, when `T` is `f32`.
pub(crate) fn as_f32_mut<T: Float>(v: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as in `as_f32`; the one `&mut` borrow moves into the result.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_views_only_for_f32() {
        let (mut a, mut b) = (vec![1.5f32, -2.0], vec![1.5f64, -2.0]);
        assert_eq!(as_f32(&a), Some(&[1.5f32, -2.0][..]));
        as_f32_mut(&mut a).unwrap()[1] = 3.0;
        assert_eq!(a, [1.5, 3.0]);
        assert!(as_f32(&b).is_none() && as_f32_mut(&mut b).is_none());
        assert!(is_f32::<f32>() && !is_f32::<f64>());
    }
}
