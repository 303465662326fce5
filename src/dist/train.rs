//! The smallest data-parallel training loop: what the tests and the MPI example program
//! run, and the order of calls a fuller loop makes.

use super::{BatchGradient, BlockGrad, Collective, CommStats, DistError};
use crate::data::Dataset;
use crate::network::Network;
use crate::optim::Optimizer;
use crate::train::{GradientSource, TrainError, Trainable};
use crate::Float;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What [`train_network`] does: `epochs` passes over the data in shuffled mini-batches of
/// `batch` examples (the global batch, shared by all ranks), at learning rate `lr`, the
/// order seeded by `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per mini-batch, over all ranks together.
    pub batch: usize,
    /// The learning rate, eta.
    pub lr: f64,
    /// Seeds the order of the examples in each epoch.
    pub seed: u64,
    /// Examples per block ([`super::BLOCK`] unless told otherwise).
    pub block: usize,
}

/// Trains `net` with `optimizer` on `data` as [`Plan`] says, on every rank of `comm` with
/// the same arguments; returns the mean training loss of each epoch and the time and bytes
/// of the combination. Every rank ends with the same network, bit for bit, for any number
/// of ranks.
///
/// Each rank shuffles the same order (seeded by the seed and the epoch), builds the same
/// batch, and calls [`BatchGradient::loss_and_grad`], which shares the batch's blocks out;
/// then every rank takes the same optimizer step.
///
/// ```
/// use backprop::data::synthetic;
/// use backprop::dist::{train_network, Plan, Single};
/// use backprop::network::{Activation, Cost, Init, Network};
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
/// let data = synthetic::xor(200, 1);
/// let mut net = Network::<f64>::new(&[2, 8, 2], &[Activation::Tanh, Activation::Softmax],
///                                   Cost::LogLikelihood, Init::Xavier, 3).unwrap();
/// let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &net).unwrap();
/// let plan = Plan { epochs: 30, batch: 32, lr: 0.01, seed: 5, block: backprop::dist::BLOCK };
/// let (losses, _) = train_network(&Single, &mut net, &mut opt, &data, &plan).unwrap();
/// assert!(losses[29] < 0.5 * losses[0], "{losses:?}");
/// ```
///
/// # Errors
/// [`DistError::Data`] for data that does not fit the network or a batch of 0;
/// [`DistError::Optim`] from the optimizer; [`DistError::Lost`] and
/// [`DistError::Protocol`] from `comm`.
pub fn train_network<T: Float>(
    comm: &impl Collective,
    net: &mut Network<T>,
    optimizer: &mut Optimizer<T>,
    data: &Dataset,
    plan: &Plan,
) -> Result<(Vec<f64>, CommStats), DistError> {
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    if data.features != inputs || data.classes != outputs || data.is_empty() || plan.batch == 0 {
        return Err(DistError::Data(format!(
            "{} examples of {} features and {} classes, batch {}, for a network {}",
            data.len(),
            data.features,
            data.classes,
            plan.batch,
            sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("-")
        )));
    }
    let batch = plan.batch.min(data.len());
    let (mut x, mut y) = (
        vec![T::zero(); batch * inputs],
        vec![T::zero(); batch * outputs],
    );
    let mut grads = crate::network::Gradients::zeros_like(net);
    let mut combine = BatchGradient::with_block(net, plan.block);
    let mut order: Vec<usize> = Vec::with_capacity(data.len());
    let mut losses = Vec::with_capacity(plan.epochs);
    for epoch in 1..=plan.epochs {
        order.clear();
        order.extend(0..data.len());
        let stream = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(plan.seed ^ stream));
        let mut total = 0.0;
        for idx in order.chunks(batch) {
            let n = idx.len();
            let (x, y) = (&mut x[..n * inputs], &mut y[..n * outputs]);
            let bad = |e: crate::data::DataError| DistError::Data(e.to_string());
            data.inputs_into(idx, x).map_err(bad)?;
            data.one_hot(idx, y).map_err(bad)?;
            let j = combine.loss_and_grad(comm, net, x, y, n, &mut grads)?;
            total += j.to_f64() * n as f64;
            optimizer.step(net, &grads, T::from_f64(plan.lr))?;
        }
        losses.push(total / data.len() as f64);
    }
    Ok((losses, *combine.stats()))
}

/// The [`GradientSource`] of data-parallel training: each mini-batch's J and dJ/dθ by
/// [`BatchGradient`] (blocks of `block` examples, summed in block order, shared among the
/// ranks of `comm`), for [`Trainer::set_gradient_source`](crate::train::Trainer::set_gradient_source).
/// Every rank's trainer then takes the same step; with [`super::Single`] one process sums
/// the same blocks in the same order, so its model has the same bytes as N ranks'.
///
/// ```
/// use backprop::data::synthetic;
/// use backprop::dist::{Blocked, LocalGroup};
/// use backprop::train::{TrainConfig, Trainer};
/// let data = synthetic::xor(100, 3);
/// let config = TrainConfig { hidden: vec![6], lr: 0.5, epochs: 1, batch: 50, ..TrainConfig::default() };
/// let weights: Vec<Vec<f32>> = std::thread::scope(|s| {
///     let runs: Vec<_> = LocalGroup::new(2).into_iter().map(|end| {
///         let (config, data) = (config.clone(), &data);
///         s.spawn(move || {
///             let mut t = Trainer::<f32>::new(config, 2, 2).unwrap();
///             t.set_gradient_source(Box::new(Blocked::new(end, t.network(), 16)));
///             t.run_epoch(data, data, None).unwrap();
///             t.network().layers[0].weights.as_slice().to_vec()
///         })
///     }).collect();
///     runs.into_iter().map(|r| r.join().unwrap()).collect()
/// });
/// assert_eq!(weights[0], weights[1]);
/// ```
pub struct Blocked<T: Float, M: BlockGrad<T>, C: Collective> {
    comm: C,
    combine: BatchGradient<T, M>,
}

impl<T: Float, M: BlockGrad<T>, C: Collective> Blocked<T, M, C> {
    /// Block sums of `block` examples (at least 1) of `model`'s gradient, combined over
    /// `comm`.
    pub fn new(comm: C, model: &M, block: usize) -> Self {
        Blocked {
            comm,
            combine: BatchGradient::with_block(model, block),
        }
    }
}

impl<T: Float, M: BlockGrad<T> + Trainable<T>, C: Collective> GradientSource<T, M>
    for Blocked<T, M, C>
{
    fn loss_and_grad(
        &mut self,
        model: &mut M,
        x: &[T],
        y: &[T],
        n: usize,
        grads: &mut M::Grads,
    ) -> Result<T, TrainError> {
        Ok(self
            .combine
            .loss_and_grad(&self.comm, model, x, y, n, grads)?)
    }

    fn comm_stats(&self) -> Option<CommStats> {
        Some(*self.combine.stats())
    }
}
