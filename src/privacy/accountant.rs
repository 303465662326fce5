//! Rényi-DP accounting of the subsampled Gaussian mechanism, as Opacus's `RDPAccountant`
//! does it (`opacus/accountants/analysis/rdp.py`, itself TF Privacy's), ported line by line.
//!
//! One DP-SGD step is a Gaussian mechanism of noise multiplier sigma applied to a batch
//! drawn by Poisson sampling with rate q. Its Rényi divergence of order alpha is
//! log(A_alpha) / (alpha - 1) (Mironov, Talwar and Zhang 2019, Section 3.3), where A_alpha
//! is a sum over binomial terms: finite for an integer alpha, a series with erfc factors
//! for a fractional one. RDP composes by addition, so K steps cost K times one step, and
//! different (sigma, q) add up. The (epsilon, delta) guarantee is the best, over the
//! orders, of Balle et al. (2020, Theorem 21):
//!
//! ```text
//! epsilon = rdp(alpha) - (ln delta + ln alpha) / (alpha - 1) + ln((alpha - 1) / alpha)
//! ```

use super::PrivacyError;

/// Opacus's default orders: 1 + x/10 for x = 1..99 (1.1 to 10.9), then 12..63; 151 in all.
///
/// ```
/// let orders = backprop::privacy::default_orders();
/// assert_eq!(orders.len(), 151);
/// assert_eq!((orders[0], orders[98], orders[99], orders[150]), (1.1, 10.9, 12.0, 63.0));
/// ```
pub fn default_orders() -> Vec<f64> {
    // 1.0 + x / 10.0 exactly as Python computes it, so that 2.0, 3.0, ... take the
    // integer path as they do in Opacus.
    (1..100)
        .map(|x| 1.0 + x as f64 / 10.0)
        .chain((12..64).map(|a| a as f64))
        .collect()
}

/// log(exp(x) + exp(y)) without overflow; -inf stands for 0.
fn log_add(x: f64, y: f64) -> f64 {
    let (a, b) = (x.min(y), x.max(y));
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// log(exp(x) - exp(y)) for x >= y; NaN where Opacus raises (x < y).
fn log_sub(x: f64, y: f64) -> f64 {
    if x < y {
        return f64::NAN;
    }
    if y == f64::NEG_INFINITY {
        return x;
    }
    if x == y {
        return f64::NEG_INFINITY;
    }
    let e = (x - y).exp_m1();
    // Python's expm1 raises OverflowError there, and Opacus then returns x.
    if e.is_infinite() {
        x
    } else {
        e.ln() + y
    }
}

/// The binomial coefficient (n choose k) for a real n and a whole k >= 0: the product
/// of (n - j + 1) / j for j = 1..k (for a whole n, exact up to rounding). The series
/// build it a factor at a time ([`next_binom`]).
#[cfg(test)]
fn binom(n: f64, k: u64) -> f64 {
    let mut c = 1.0;
    for j in 1..=k {
        c *= (n - j as f64 + 1.0) / j as f64;
    }
    c
}

/// (n choose k) from (n choose k-1): one more factor (n - k + 1) / k of the product
/// (n choose k) = prod over j = 1..k of (n - j + 1) / j.
fn next_binom(previous: f64, n: f64, k: u64) -> f64 {
    previous * ((n - k as f64 + 1.0) / k as f64)
}

/// ln(erfc(x)), accurate where erfc(x) underflows (x > 26).
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) = exp(-x^2) / (x sqrt(pi)) (1 - 1/(2x^2) + 3/(2x^2)^2 - 15/(2x^2)^3 ...);
    // at x >= 20 the terms fall by 1/800 or faster until k ~ 400, so a few suffice.
    let u = 1.0 / (2.0 * x * x);
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..30 {
        term *= -((2 * k - 1) as f64) * u;
        sum += term;
        if term.abs() < 1e-18 {
            break;
        }
    }
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + sum.ln()
}

/// log(A_alpha) for a whole order alpha: A_alpha = sum over i = 0..alpha of
/// (alpha choose i) q^i (1 - q)^(alpha - i) exp((i^2 - i) / (2 sigma^2)).
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (mut log_a, mut coef) = (f64::NEG_INFINITY, 1.0);
    for i in 0..=alpha {
        if i > 0 {
            coef = next_binom(coef, alpha as f64, i);
        }
        let log_coef = coef.ln() + i as f64 * q.ln() + (alpha - i) as f64 * (1.0 - q).ln();
        let s = log_coef + (i * i - i) as f64 / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// log(A_alpha) for a fractional order: two series, summed until their terms fall below
/// e^-30, with erfc factors for the halves of the Gaussian on either side of z0.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let root2_sigma = std::f64::consts::SQRT_2 * sigma;
    let (mut i, mut coef) = (0u64, 1.0);
    loop {
        if i > 0 {
            coef = next_binom(coef, alpha, i);
        }
        let log_coef = coef.abs().ln();
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_coef + fi * q.ln() + j * (1.0 - q).ln();
        let log_t1 = log_coef + j * q.ln() + fi * (1.0 - q).ln();
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / root2_sigma);
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / root2_sigma);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if coef > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        i += 1;
        // NaN (a subtraction Opacus would refuse) ends the series too: the order is
        // then skipped by the conversion, as a NaN is by numpy's nanargmin.
        let largest = log_s0.max(log_s1);
        if largest < -30.0 || largest.is_nan() || log_a0.is_nan() || log_a1.is_nan() {
            break;
        }
    }
    log_add(log_a0, log_a1)
}

/// The Rényi divergence of order `alpha` of ONE step of the subsampled Gaussian mechanism
/// with sample rate `q` and noise multiplier `sigma` (Opacus's `_compute_rdp`): 0 for
/// q = 0, infinite for sigma = 0, alpha / (2 sigma^2) for q = 1 (no subsampling).
///
/// ```
/// use backprop::privacy::rdp;
/// // Without subsampling, the Gaussian mechanism's RDP is alpha / (2 sigma^2).
/// assert_eq!(rdp(1.0, 2.0, 8.0), 1.0);
/// // Subsampling amplifies privacy: at q = 0.01 the same noise costs far less.
/// assert!(rdp(0.01, 2.0, 8.0) < 1e-3);
/// ```
pub fn rdp(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    if alpha.is_infinite() {
        return f64::INFINITY;
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// The (epsilon, delta) guarantee of RDP values `rdp` at `orders` (Balle et al. 2020,
/// Theorem 21; Opacus's `get_privacy_spent`): the smallest epsilon over the orders, and
/// the order that gives it. Orders whose epsilon is NaN are skipped; if all are,
/// (infinity, NaN).
///
/// ```
/// use backprop::privacy::epsilon_from_rdp;
/// // One order, alpha = 2, RDP 0.5 at delta = e^-2: 0.5 + (2 - ln 2) / 1 + ln(1/2).
/// let (eps, alpha) = epsilon_from_rdp(&[2.0], &[0.5], (-2.0f64).exp());
/// assert!((eps - (2.5 - 2.0 * 2f64.ln())).abs() < 1e-15 && alpha == 2.0);
/// ```
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best: Option<(f64, f64)> = None;
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln();
        if eps.is_nan() {
            continue;
        }
        if best.is_none_or(|(b, _)| eps < b) {
            best = Some((eps, a));
        }
    }
    best.unwrap_or((f64::INFINITY, f64::NAN))
}

/// Privacy spent: epsilon at the target delta, and the order alpha that gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spent {
    /// epsilon of the (epsilon, delta) guarantee.
    pub epsilon: f64,
    /// The Rényi order at which the conversion is tightest.
    pub alpha: f64,
}

/// A record of the mechanisms run so far, as Opacus's `RDPAccountant` keeps it: runs of
/// (noise multiplier, sample rate, steps), consecutive equal steps merged.
///
/// A training loop calls [`Accountant::step`] once per DP-SGD step and
/// [`Accountant::spent`] when it reports (each epoch); steps may change sigma or q.
///
/// ```
/// use backprop::privacy::Accountant;
/// // Opacus's MNIST example: batches of 240 of 60,000 (q = 0.004), sigma 1.1, 60 epochs.
/// let mut acc = Accountant::new();
/// acc.add_steps(1.1, 240.0 / 60000.0, 15_000).unwrap();
/// let spent = acc.spent(1e-5).unwrap();
/// assert!((spent.epsilon - 2.5029).abs() < 1e-4 && spent.alpha == 8.4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Accountant {
    history: Vec<(f64, f64, u64)>,
    orders: Vec<f64>,
}

impl Default for Accountant {
    fn default() -> Self {
        Self::new()
    }
}

impl Accountant {
    /// No steps yet, Opacus's default orders ([`default_orders`]).
    pub fn new() -> Self {
        Self::with_orders(default_orders())
    }

    /// No steps yet, the given orders (each above 1).
    pub fn with_orders(orders: Vec<f64>) -> Self {
        Accountant {
            history: Vec::new(),
            orders,
        }
    }

    /// Records one step of noise multiplier `sigma` on a batch sampled at rate `q`.
    ///
    /// # Errors
    /// [`PrivacyError`] for q outside (0, 1] or sigma negative or not finite.
    pub fn step(&mut self, sigma: f64, q: f64) -> Result<(), PrivacyError> {
        self.add_steps(sigma, q, 1)
    }

    /// Records `steps` steps of noise multiplier `sigma` at sample rate `q`.
    ///
    /// # Errors
    /// As [`Accountant::step`], and [`PrivacyError::ZeroSteps`] for no steps.
    pub fn add_steps(&mut self, sigma: f64, q: f64, steps: u64) -> Result<(), PrivacyError> {
        check_sample_rate(q)?;
        check_noise(sigma)?;
        if steps == 0 {
            return Err(PrivacyError::ZeroSteps);
        }
        match self.history.last_mut() {
            Some((s, r, k)) if *s == sigma && *r == q => *k = k.saturating_add(steps),
            _ => self.history.push((sigma, q, steps)),
        }
        Ok(())
    }

    /// The steps recorded.
    pub fn steps(&self) -> u64 {
        self.history.iter().map(|h| h.2).sum()
    }

    /// The runs recorded: (sigma, q, steps).
    pub fn history(&self) -> &[(f64, f64, u64)] {
        &self.history
    }

    /// The total RDP at each order.
    pub fn rdp(&self) -> Vec<f64> {
        self.orders
            .iter()
            .map(|&a| {
                (self.history.iter())
                    .map(|&(sigma, q, k)| rdp(q, sigma, a) * k as f64)
                    .sum()
            })
            .collect()
    }

    /// The privacy spent so far at `delta`: epsilon and the best order (0 and 0 before
    /// any step, as Opacus).
    ///
    /// # Errors
    /// [`PrivacyError::BadDelta`] for delta outside (0, 1).
    pub fn spent(&self, delta: f64) -> Result<Spent, PrivacyError> {
        check_delta(delta)?;
        if self.history.is_empty() {
            return Ok(Spent {
                epsilon: 0.0,
                alpha: 0.0,
            });
        }
        let (epsilon, alpha) = epsilon_from_rdp(&self.orders, &self.rdp(), delta);
        Ok(Spent { epsilon, alpha })
    }
}

/// The largest noise multiplier [`noise_for_epsilon`] tries, as Opacus's `MAX_SIGMA`.
pub const MAX_SIGMA: f64 = 1e6;

/// How close below the target [`noise_for_epsilon`] gets, as Opacus's default
/// `epsilon_tolerance`.
pub const EPSILON_TOLERANCE: f64 = 0.01;

/// The noise multiplier that spends at most `epsilon` (and within [`EPSILON_TOLERANCE`]
/// of it) in `steps` steps at sample rate `q` and `delta`, found as Opacus's
/// `get_noise_multiplier` finds it: double sigma from 20 until epsilon falls below the
/// target, then bisect between 0 and there until the target minus epsilon is at most the
/// tolerance, and return the upper end.
///
/// ```
/// use backprop::privacy::{noise_for_epsilon, Accountant};
/// let sigma = noise_for_epsilon(2.0, 1e-5, 0.004, 15_000).unwrap();
/// let mut acc = Accountant::new();
/// acc.add_steps(sigma, 0.004, 15_000).unwrap();
/// let eps = acc.spent(1e-5).unwrap().epsilon;
/// assert!(eps <= 2.0 && eps > 2.0 - 0.01);
/// ```
///
/// # Errors
/// [`PrivacyError`] for a bad argument (epsilon must be positive and finite), or
/// [`PrivacyError::BudgetTooLow`] if even sigma = 10^6 spends more than `epsilon`.
pub fn noise_for_epsilon(
    epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
) -> Result<f64, PrivacyError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(PrivacyError::BadEpsilon(epsilon));
    }
    check_delta(delta)?;
    check_sample_rate(q)?;
    if steps == 0 {
        return Err(PrivacyError::ZeroSteps);
    }
    let spent = |sigma: f64| {
        let mut acc = Accountant::new();
        acc.history.push((sigma, q, steps));
        epsilon_from_rdp(&acc.orders, &acc.rdp(), delta).0
    };
    let (mut low, mut high, mut eps_high) = (0.0f64, 10.0f64, f64::INFINITY);
    while eps_high > epsilon {
        high *= 2.0;
        eps_high = spent(high);
        if high > MAX_SIGMA {
            return Err(PrivacyError::BudgetTooLow {
                epsilon,
                delta,
                q,
                steps,
            });
        }
    }
    // Opacus loops until it is close enough; bisection halves the interval each time,
    // so 200 rounds reach the resolution of f64 long before, whatever the curve.
    for _ in 0..200 {
        if epsilon - eps_high <= EPSILON_TOLERANCE {
            return Ok(high);
        }
        let sigma = (low + high) / 2.0;
        let eps = spent(sigma);
        if eps < epsilon {
            (high, eps_high) = (sigma, eps);
        } else {
            low = sigma;
        }
    }
    Ok(high)
}

pub(crate) fn check_sample_rate(q: f64) -> Result<(), PrivacyError> {
    if q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::BadSampleRate(q))
    }
}

pub(crate) fn check_noise(sigma: f64) -> Result<(), PrivacyError> {
    if sigma >= 0.0 && sigma.is_finite() {
        Ok(())
    } else {
        Err(PrivacyError::BadNoise(sigma))
    }
}

pub(crate) fn check_delta(delta: f64) -> Result<(), PrivacyError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::BadDelta(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_erfc_agrees_with_40_digit_arithmetic_on_both_sides_of_20() {
        // ln erfc(x) by mpmath at 40 digits; below 20 from libm's erfc, above from the
        // asymptotic series, where erfc itself underflows past x = 26.5.
        let known = [
            (0.5, -0.735_011_129_837_084_4),
            (5.0, -27.200_889_545_537_434),
            (19.99, -403.168_944_452_249_9),
            (20.0, -403.569_343_334_104_2),
            (27.0, -732.868_886_507_897_4),
            (30.0, -903.974_117_110_643_9),
            (50.0, -2_504.484_587_848_451_4),
            (100.0, -10_005.177_585_122_664),
            (1000.0, -1_000_007.480_120_721_9),
        ];
        for (x, want) in known {
            let got = log_erfc(x);
            assert!(
                (got - want).abs() <= 1e-14 * want.abs(),
                "x = {x}: {got} vs {want}"
            );
        }
        // erfc(0) = 1, erfc(-inf) = 2.
        assert_eq!(log_erfc(0.0), 0.0);
        assert!((log_erfc(-40.0) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn log_add_and_sub_invert_each_other() {
        let (x, y) = (3.0f64.ln(), 2.0f64.ln());
        assert!((log_add(x, y) - 5.0f64.ln()).abs() < 1e-15);
        assert!((log_sub(x, y) - 0.0).abs() < 1e-15);
        assert_eq!(log_add(f64::NEG_INFINITY, x), x);
        assert_eq!(log_sub(x, x), f64::NEG_INFINITY);
        assert!(log_sub(y, x).is_nan());
    }

    #[test]
    fn binomials_whole_and_fractional() {
        assert_eq!(binom(63.0, 0), 1.0);
        assert_eq!(binom(10.0, 3), 120.0);
        // 916,312,070,471,295,267 to within the rounding of 31 multiplications.
        let c = binom(63.0, 31);
        assert!((c - 916_312_070_471_295_267.0).abs() <= 1e-15 * c);
        // (1.5 choose 3) = 1.5 * 0.5 * -0.5 / 6 = -0.0625
        assert_eq!(binom(1.5, 3), -0.0625);
        // The series' running products are the same numbers.
        for n in [63.0, 8.4, 1.1] {
            let mut c = 1.0;
            for k in 1..200 {
                c = next_binom(c, n, k);
                assert_eq!(c, binom(n, k));
            }
        }
    }

    #[test]
    fn a_whole_order_at_q_one_half_sums_by_hand() {
        // alpha = 2: A = (1-q)^2 + 2q(1-q) + q^2 e^(1/sigma^2); q = 1/2, sigma = 1.
        let want = (0.25 + 0.5 + 0.25 * 1f64.exp()).ln();
        assert!((rdp(0.5, 1.0, 2.0) - want).abs() < 1e-15);
    }
}
