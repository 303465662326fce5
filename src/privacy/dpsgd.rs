//! The DP-SGD step: Poisson batches, per-example clipping, noise, any optimizer.

use super::accountant::{check_noise, check_sample_rate};
use super::{Accountant, Noise, PrivacyError, Spent};
use crate::model::Model;
use crate::network::{Gradients, Network, Workspace};
use crate::nn::{ArchModel, PerExample};
use crate::optim::{OptimError, Optimizer};
use crate::Float;
use rand::Rng;

/// The constant of Opacus's clip factor min(1, C / (||g_i|| + 10^-6)), which keeps it
/// finite for a zero gradient.
pub const CLIP_EPS: f64 = 1e-6;

/// The settings of private training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpConfig {
    /// sigma: the noise's standard deviation is sigma C.
    pub noise_multiplier: f64,
    /// C: each example's gradient is clipped to this norm.
    pub max_grad_norm: f64,
    /// B: the expected batch size, which the clipped sum is divided by.
    pub expected_batch_size: usize,
    /// q = B / N: the probability that an example is in a batch.
    pub sample_rate: f64,
}

impl DpConfig {
    /// Noise multiplier `sigma`, clipping norm `c`, batches of `batch` examples expected
    /// out of `examples`: q = batch / examples.
    ///
    /// ```
    /// use backprop::privacy::DpConfig;
    /// let c = DpConfig::new(1.1, 1.0, 240, 60_000).unwrap();
    /// assert_eq!(c.sample_rate, 0.004);
    /// assert!(DpConfig::new(1.1, 0.0, 240, 60_000).is_err()); // C must be > 0
    /// assert!(DpConfig::new(1.1, 1.0, 0, 60_000).is_err());
    /// ```
    ///
    /// # Errors
    /// [`PrivacyError`] for sigma negative or not finite, C not positive and finite, or
    /// a batch of 0 or more than `examples`.
    pub fn new(sigma: f64, c: f64, batch: usize, examples: usize) -> Result<Self, PrivacyError> {
        check_noise(sigma)?;
        if !(c > 0.0 && c.is_finite()) {
            return Err(PrivacyError::BadClip(c));
        }
        if batch == 0 || batch > examples {
            return Err(PrivacyError::BadBatch { batch, examples });
        }
        let sample_rate = batch as f64 / examples as f64;
        check_sample_rate(sample_rate)?;
        Ok(DpConfig {
            noise_multiplier: sigma,
            max_grad_norm: c,
            expected_batch_size: batch,
            sample_rate,
        })
    }
}

/// Draws a Poisson batch: each of the indices 0..`examples` independently with
/// probability `q`, in increasing order, into `batch` (cleared first; it may end empty).
///
/// The gaps between chosen indices are geometric, so this draws one number per chosen
/// example rather than one per example (a batch of 10 out of 60,000 costs 11 draws).
///
/// ```
/// use backprop::privacy::poisson_batch;
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let (mut batch, mut total) = (Vec::new(), 0);
/// for _ in 0..1000 {
///     poisson_batch(1000, 0.05, &mut rng, &mut batch);
///     assert!(batch.windows(2).all(|w| w[0] < w[1]));
///     total += batch.len();
/// }
/// assert!((total as f64 / 1000.0 - 50.0).abs() < 1.0); // N q = 50 on average
/// ```
pub fn poisson_batch(examples: usize, q: f64, rng: &mut impl Rng, batch: &mut Vec<usize>) {
    batch.clear();
    if q >= 1.0 {
        batch.extend(0..examples);
        return;
    }
    if q <= 0.0 || q.is_nan() {
        return;
    }
    // P(gap = k) = (1 - q)^k q, by inversion: k = floor(ln U / ln(1 - q)), U in (0, 1].
    let log_keep = (-q).ln_1p();
    let mut next = 0usize;
    loop {
        let u = 1.0 - rng.gen::<f64>();
        let gap = (u.ln() / log_keep).floor();
        if gap >= (examples - next) as f64 {
            return;
        }
        let i = next + gap as usize;
        batch.push(i);
        next = i + 1;
    }
}

/// What one private step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The examples in the batch (Poisson sampling varies it).
    pub examples: usize,
    /// J = the mean of the C_i over the batch, before the step (0 for an empty batch).
    pub loss: f64,
    /// How many examples' gradients were longer than C and scaled down.
    pub clipped: usize,
    /// The mean of the per-example gradient norms ||g_i|| before clipping (0 if empty).
    pub mean_norm: f64,
}

/// A model that private training can step: it gives per-example gradient norms and a
/// weighted sum of per-example gradients, and lets an optimizer step it from that sum.
pub trait PrivateModel<T: Float>: Model<T> {
    /// Buffers the two passes need (for a [`Network`], its [`Workspace`]).
    type Scratch;
    /// Where the clipped, noised sum is kept (for a [`Network`], [`Gradients`]).
    type Sum;

    /// Fresh buffers for this model.
    fn private_buffers(&self) -> (Self::Scratch, Self::Sum);

    /// J over the batch (`n` >= 1 examples) and each example's gradient norm ||g_i||
    /// over all parameters into `norms`.
    ///
    /// # Errors
    /// [`PrivacyError::Network`] for a batch that does not fit the model.
    fn per_example_norms(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        scratch: &mut Self::Scratch,
        norms: &mut Vec<f64>,
    ) -> Result<f64, PrivacyError>;

    /// `sum` = scale sum_i c_i g_i, from the pass [`PrivateModel::per_example_norms`] just
    /// made on the same batch.
    ///
    /// # Errors
    /// As [`PrivateModel::per_example_norms`].
    fn weighted_sum(
        &mut self,
        x: &[T],
        n: usize,
        c: &[T],
        scale: T,
        scratch: &mut Self::Scratch,
        sum: &mut Self::Sum,
    ) -> Result<(), PrivacyError>;

    /// Calls `f` with each tensor of `sum`, in the order of [`Model::visit_params`].
    fn visit_sum_mut(sum: &mut Self::Sum, f: &mut dyn FnMut(&mut [T]));

    /// A plain SGD step with the sum never stored, if the model can take one: theta <-
    /// theta + step sum_i c_i g_i from the pass [`PrivateModel::per_example_norms`] just
    /// made (nothing for `n` = 0), then N(0, `noise_std`^2) from `noise` added to every
    /// parameter, tensor by tensor in the order of [`PrivateModel::visit_sum_mut`].
    /// `None`, having done nothing, if it cannot (the default).
    ///
    /// # Errors
    /// As [`PrivateModel::weighted_sum`], before any noise is drawn.
    #[allow(clippy::too_many_arguments)]
    fn sgd_step_in_place(
        &mut self,
        _x: &[T],
        _n: usize,
        _c: &[T],
        _step: T,
        _scratch: &mut Self::Scratch,
        _noise: &mut Noise,
        _noise_std: f64,
    ) -> Option<Result<(), PrivacyError>> {
        None
    }

    /// One step of `optimizer` with `sum` as the gradient.
    ///
    /// # Errors
    /// As [`Optimizer::step`].
    fn optimizer_step(
        &mut self,
        optimizer: &mut Optimizer<T>,
        sum: &Self::Sum,
        lr: T,
    ) -> Result<(), OptimError>;
}

/// The post's fully connected network: norms from Equations 1 and 2 without building
/// W_i, then one weighted pass of Equations 1 and 2.
impl<T: Float> PrivateModel<T> for Network<T> {
    type Scratch = Workspace<T>;
    type Sum = Gradients<T>;

    fn private_buffers(&self) -> (Workspace<T>, Gradients<T>) {
        (Workspace::new(self, 1), Gradients::zeros_like(self))
    }

    fn per_example_norms(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        norms: &mut Vec<f64>,
    ) -> Result<f64, PrivacyError> {
        Ok(Network::per_example_norms(self, x, y, n, ws, norms)?.to_f64())
    }

    fn weighted_sum(
        &mut self,
        x: &[T],
        n: usize,
        c: &[T],
        scale: T,
        ws: &mut Workspace<T>,
        sum: &mut Gradients<T>,
    ) -> Result<(), PrivacyError> {
        Ok(self.weighted_gradients(x, n, c, scale, ws, sum)?)
    }

    fn visit_sum_mut(sum: &mut Gradients<T>, f: &mut dyn FnMut(&mut [T])) {
        for (w, b) in sum.weights.iter_mut().zip(&mut sum.biases) {
            f(w.as_mut_slice());
            f(b);
        }
    }

    fn optimizer_step(
        &mut self,
        optimizer: &mut Optimizer<T>,
        sum: &Gradients<T>,
        lr: T,
    ) -> Result<(), OptimError> {
        optimizer.step(self, sum, lr)
    }

    fn sgd_step_in_place(
        &mut self,
        x: &[T],
        n: usize,
        c: &[T],
        step: T,
        ws: &mut Workspace<T>,
        noise: &mut Noise,
        noise_std: f64,
    ) -> Option<Result<(), PrivacyError>> {
        let add_noise = |net: &mut Network<T>| {
            noise.add(noise_std, |f| {
                for layer in &mut net.layers {
                    f(layer.weights.as_mut_slice());
                    f(&mut layer.biases);
                }
            })
        };
        let stepped = self.weighted_step_then(x, n, c, step, ws, add_noise);
        Some(stepped.map_err(PrivacyError::from))
    }
}

/// A model of layers: each example's gradient from one batched pass
/// ([`Sequential::per_example_norms`](crate::nn::Sequential::per_example_norms): a `Linear`
/// layer applied once per example keeps δ_i, as the post's network does; convolutions,
/// embeddings and recurrent layers build their per-example gradients), then the clipped
/// sum as one product over them ([`Sequential::clipped_sum`](crate::nn::Sequential::clipped_sum)).
/// A `Dropout` mask is drawn per value, so per example: each example's gradient is that of
/// its own masked pass, as in Opacus.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::ArchModel;
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
/// use backprop::privacy::{DpConfig, DpSgd, Noise};
/// let arch = "Conv2d(1, 2, 3), ReLU(), Flatten(), Linear(4, 2), Softmax(dim=-1)".parse().unwrap();
/// let mut model = ArchModel::<f64>::new(&arch, &[1, 4, 3], Cost::LogLikelihood, None, 1).unwrap();
/// let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &model).unwrap();
/// // sigma 1, C 0.01: every example is clipped.
/// let mut dp = DpSgd::new(DpConfig::new(1.0, 0.01, 2, 10).unwrap(), &model, Noise::seeded(1));
/// let x: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
/// let stats = dp.step(&mut model, &mut sgd, &x, &[0.0, 1.0], 2, 0.1).unwrap();
/// assert_eq!((stats.examples, stats.clipped), (2, 2));
/// assert_eq!(dp.accountant().steps(), 1);
/// ```
impl<T: Float> PrivateModel<T> for ArchModel<T> {
    type Scratch = PerExample<T>;
    type Sum = Vec<Vec<T>>;

    fn private_buffers(&self) -> (PerExample<T>, Vec<Vec<T>>) {
        let mut sum = Vec::new();
        self.net
            .visit_params(&mut |p| sum.push(vec![T::zero(); p.values.len()]));
        (self.net.per_example_buffers(), sum)
    }

    fn per_example_norms(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        pe: &mut PerExample<T>,
        norms: &mut Vec<f64>,
    ) -> Result<f64, PrivacyError> {
        Ok(self.net.per_example_norms(x, y, n, self.cost, pe, norms)?)
    }

    fn weighted_sum(
        &mut self,
        _x: &[T],
        _n: usize,
        c: &[T],
        scale: T,
        pe: &mut PerExample<T>,
        sum: &mut Vec<Vec<T>>,
    ) -> Result<(), PrivacyError> {
        Ok(self.net.clipped_sum(pe, c, scale, sum)?)
    }

    fn visit_sum_mut(sum: &mut Vec<Vec<T>>, f: &mut dyn FnMut(&mut [T])) {
        sum.iter_mut().for_each(|t| f(t));
    }

    fn optimizer_step(
        &mut self,
        optimizer: &mut Optimizer<T>,
        sum: &Vec<Vec<T>>,
        lr: T,
    ) -> Result<(), OptimError> {
        // The model keeps its gradients itself: the noised sum goes there for the step.
        for ((_, _, g), s) in self.net.grads_mut().zip(sum) {
            g.copy_from_slice(s);
        }
        optimizer.step(self, &(), lr)
    }
}

/// Private training's step, one call per Poisson batch, and its privacy accounting.
///
/// [`DpSgd::step`] clips each example's gradient to norm C, sums, adds N(0, (sigma C)^2)
/// to every coordinate, divides by the expected batch size B, hands the result to the
/// optimizer, and records the step (sigma, q) in its [`Accountant`]. It allocates only
/// when a batch is larger than any before.
///
/// With plain SGD ([`Optimizer::is_plain_sgd`]) on a model that can
/// ([`PrivateModel::sgd_step_in_place`]: the post's network), the sum and the noise go
/// straight into the weights, times -eta, as the ordinary fused step
/// ([`Network::sgd_train_step`]) does: the same step up to rounding, without storing the
/// sum or a second pass of the optimizer over every parameter.
pub struct DpSgd<T: Float, M: PrivateModel<T>> {
    config: DpConfig,
    noise: Noise,
    accountant: Accountant,
    scratch: M::Scratch,
    sum: M::Sum,
    /// Whether `sum` holds the last step's gradient (a step in place stores none).
    sum_kept: bool,
    norms: Vec<f64>,
    factors: Vec<T>,
}

impl<T: Float, M: PrivateModel<T>> DpSgd<T, M> {
    /// Private steps of `model` with these settings and noise.
    pub fn new(config: DpConfig, model: &M, noise: Noise) -> Self {
        let (scratch, sum) = model.private_buffers();
        DpSgd {
            config,
            noise,
            accountant: Accountant::new(),
            scratch,
            sum,
            sum_kept: false,
            norms: Vec::new(),
            factors: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DpConfig {
        &self.config
    }

    /// The steps taken so far, for epsilon.
    pub fn accountant(&self) -> &Accountant {
        &self.accountant
    }

    /// The accountant, to restore one (from a checkpoint) or record steps taken elsewhere.
    pub fn accountant_mut(&mut self) -> &mut Accountant {
        &mut self.accountant
    }

    /// epsilon spent so far at `delta`, and the order that gives it.
    ///
    /// # Errors
    /// [`PrivacyError::BadDelta`] for delta outside (0, 1).
    pub fn spent(&self, delta: f64) -> Result<Spent, PrivacyError> {
        self.accountant.spent(delta)
    }

    /// The last step's clipped, noised, divided gradient: what the optimizer was given.
    /// `None` before the first step, and after a plain SGD step taken in place (see
    /// [`DpSgd`]), which stores no gradient: step with another optimizer to see it.
    pub fn last_gradient(&self) -> Option<&M::Sum> {
        self.sum_kept.then_some(&self.sum)
    }

    /// One private step on a Poisson batch of `n` examples (`x` n x inputs, `y` n x
    /// targets, as the model's own passes take them; `n` may be 0): clip, sum, noise,
    /// divide by B, then `optimizer`'s update with learning rate `lr`; the step is
    /// recorded in the accountant.
    ///
    /// # Errors
    /// [`PrivacyError::Network`] for a batch that does not fit the model,
    /// [`PrivacyError::Optim`] if the optimizer does not fit it; the model is unchanged
    /// and no step is recorded then.
    pub fn step(
        &mut self,
        model: &mut M,
        optimizer: &mut Optimizer<T>,
        x: &[T],
        y: &[T],
        n: usize,
        lr: T,
    ) -> Result<StepStats, PrivacyError> {
        let DpConfig {
            noise_multiplier: sigma,
            max_grad_norm: c,
            expected_batch_size: b,
            sample_rate: q,
        } = self.config;
        let scale = T::one() / T::from_f64(b as f64);
        let mut stats = StepStats {
            examples: n,
            loss: 0.0,
            clipped: 0,
            mean_norm: 0.0,
        };
        self.factors.clear();
        if n > 0 {
            stats.loss = model.per_example_norms(x, y, n, &mut self.scratch, &mut self.norms)?;
            for &g in &self.norms {
                // Opacus's flat clipping: c_i = min(1, C / (||g_i|| + 1e-6)).
                let f = (c / (g + CLIP_EPS)).min(1.0);
                stats.clipped += usize::from(f < 1.0);
                self.factors.push(T::from_f64(f));
            }
            stats.mean_norm = self.norms.iter().sum::<f64>() / n as f64;
        }
        // (sum + N(0, (sigma C)^2)) / B = sum / B + N(0, (sigma C / B)^2).
        let std = sigma * c / b as f64;
        let in_place = if optimizer.is_plain_sgd() {
            optimizer.check_model(model)?;
            // w <- w - eta (sum / B + noise): -eta / B on the sum, -eta on the noise.
            let (scratch, noise) = (&mut self.scratch, &mut self.noise);
            let eta_std = -lr.to_f64() * std;
            model.sgd_step_in_place(x, n, &self.factors, -lr * scale, scratch, noise, eta_std)
        } else {
            None
        };
        let kept = in_place.is_none();
        match in_place {
            Some(done) => {
                done?;
                optimizer.count_fused_step();
            }
            None => {
                if n > 0 {
                    let (scratch, sum) = (&mut self.scratch, &mut self.sum);
                    model.weighted_sum(x, n, &self.factors, scale, scratch, sum)?;
                } else {
                    M::visit_sum_mut(&mut self.sum, &mut |t| t.fill(T::zero()));
                }
                self.noise.add(std, |f| M::visit_sum_mut(&mut self.sum, f));
                model.optimizer_step(optimizer, &self.sum, lr)?;
            }
        }
        self.sum_kept = kept;
        self.accountant.step(sigma, q)?;
        Ok(stats)
    }
}
