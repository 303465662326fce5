//! How numbers are printed for people: one function, used by every text report.

/// `x` as a person should read it: the shortest text that reads back as the same `f64`,
/// in exponent form when |x| ≥ 1e16 or |x| < 1e-5 (so no 309-digit `1e308` and no
/// `0.00000000081518514`); `-0` prints as `0`, and the non-finite values as `inf`, `-inf`
/// and `nan` (the spelling `--json` uses for them too).
///
/// ```
/// use backprop::graph::format_number;
/// assert_eq!(format_number(10.5), "10.5");
/// assert_eq!(format_number(123456.0), "123456");
/// assert_eq!(format_number(1e308), "1e308");
/// assert_eq!(format_number(8.1518514e-10), "8.1518514e-10");
/// assert_eq!(format_number(0.00001), "0.00001");
/// assert_eq!(format_number(-0.0), "0");
/// assert_eq!(format_number(f64::NEG_INFINITY), "-inf");
/// assert_eq!(format_number(f64::NAN), "nan");
/// ```
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if x == 0.0 {
        "0".to_string()
    } else if x.abs() >= 1e16 || x.abs() < 1e-5 {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}
