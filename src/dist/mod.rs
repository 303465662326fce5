//! Data-parallel training: several processes share each mini-batch, and the model comes
//! out **the same, bit for bit, whatever the number of processes**.
//!
//! The post's mini-batch gradient is the mean of the per-example gradients,
//! dJ/dtheta = (1/n) sum_i dC_i/dtheta, so the examples of a batch can be shared out, each
//! process summing the gradients of its share. Floating-point addition is not
//! associative, though: summed in another grouping, the same numbers give other bits, and
//! all-reduce (PyTorch DDP, Horovod) groups them by the number of processes and by what the
//! network delivers first. Here the grouping is fixed by the batch alone:
//!
//! 1. every batch of n examples is cut into blocks of [`BLOCK`] = 16 examples (or another
//!    size, a setting of the run like the batch size; the last block may be shorter):
//!    ceil(n / 16) blocks, whatever the number of processes;
//! 2. the processes (ranks 0..N) own contiguous runs of blocks ([`owned_blocks`]); each
//!    computes, for each of its blocks b, S_b = sum over the block's examples of
//!    (C_i, dC_i/dtheta), on one thread ([`BlockGrad::block_sum`]), so S_b has the same
//!    bits wherever it is computed;
//! 3. the sums are added in block order, S = ((0 + S_0) + S_1) + ..., by passing the
//!    running sum along the ranks: rank r receives S_0 + ... + S_(lo-1) from rank r - 1,
//!    adds its own S_lo .. S_(hi-1) one after the other, and sends the result to rank r + 1
//!    (in chunks, so the ranks work as a pipeline); the last rank broadcasts S;
//! 4. every rank divides by n: J = S_C / n and dJ/dtheta = S_theta / n, and applies the
//!    same update to the same weights.
//!
//! One process goes through the same steps with N = 1 (its own threads computing blocks
//! side by side), so 1, 2, 3 or 4 ranks, and a build without MPI, give the same bytes.
//!
//! ## Why blocks of 16, and a chain rather than an all-gather
//!
//! The block size must not depend on N (else the grouping would); 16 examples make a
//! matrix product still efficient on one thread (a 16-row block runs the small network at
//! nearly the speed of a whole batch of 64), while a batch of 64 still gives 4 ranks a
//! block each. Passing a running sum costs each rank one send and one receive of the
//! gradient (plus the broadcast), however many blocks the batch has: an all-gather of every
//! block's sum would send (blocks - 1) gradients to every rank, 63 of them on 64 machines
//! with a batch of 1024. The price of the chain is latency, N - 1 hops, which the chunking
//! hides for all but the smallest gradients.
//!
//! ## Agreement and faults
//!
//! [`Fingerprint`] compares the data and the flags of every rank at start. A rank that
//! dies makes MPI abort the whole job (its default error handler); `MpiWorld`
//! (feature `mpi`) also turns a panic or an error on one rank into an abort that names the
//! rank, so no rank waits forever. [`LocalGroup`] (threads standing in for ranks) reports a
//! lost rank as [`DistError::Lost`].
//!
//! ```
//! use backprop::dist::{BatchGradient, Single};
//! use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
//! let net = Network::<f64>::new(&[3, 5, 2], &[Activation::Tanh, Activation::Softmax],
//!                               Cost::LogLikelihood, Init::Scaled, 1).unwrap();
//! let n = 40; // three blocks: 16, 16, 8
//! let x: Vec<f64> = (0..n * 3).map(|i| (i as f64 * 0.37).sin()).collect();
//! let y: Vec<f64> = (0..n * 2).map(|i| ((i / 2 + i) % 2) as f64).collect();
//! let mut grads = Gradients::zeros_like(&net);
//! let mut net = net;
//! let mut combine = BatchGradient::new(&net);
//! let j = combine.loss_and_grad(&Single, &mut net, &x, &y, n, &mut grads).unwrap();
//! // The same J and gradient as the plain batch, up to the order of the additions.
//! let (mut ws, mut plain) = (Workspace::new(&net, n), Gradients::zeros_like(&net));
//! assert!((j - net.backprop(&x, &y, n, &mut ws, &mut plain)).abs() < 1e-14);
//! assert!((grads.biases[0][2] - plain.biases[0][2]).abs() < 1e-14);
//! ```

mod agree;
mod collective;
#[cfg(feature = "mpi")]
mod mpi;
mod train;

pub use agree::Fingerprint;
pub use collective::{float_buf, float_buf_mut, Buf, BufMut, Collective, LocalGroup, Single};
#[cfg(feature = "mpi")]
pub use mpi::MpiWorld;
pub use train::{train_network, Blocked, Plan};

use crate::model::Model;
use crate::network::{Gradients, Network, NetworkError, Workspace};
use crate::nn::ArchModel;
use crate::train::Trainable;
use crate::Float;
use rayon::prelude::*;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Examples per block unless told otherwise ([`BatchGradient::with_block`]): the unit
/// whose gradient sum is computed in one piece, on one thread, and added to the others in
/// block order. The block size is a setting of the run, like the batch size: the model's
/// bits depend on it, never on the number of processes.
pub const BLOCK: usize = 16;

/// Elements per message along the chain: 256 KiB of `f32`. Small enough that rank r + 1
/// starts adding while rank r still sends, large enough that a message's fixed cost
/// (a few microseconds) is small against its transfer.
const CHUNK: usize = 1 << 16;

/// What data-parallel training can report.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The ranks were not given the same data or settings.
    #[error("rank {rank} disagrees with rank 0 on {items}: every rank must read the same data with the same flags")]
    Disagreement {
        /// The first rank that differs from rank 0.
        rank: usize,
        /// What differs, named.
        items: String,
    },
    /// A rank stopped (or a thread of a [`LocalGroup`] ended) before its part was done.
    #[error("rank {rank} is gone (seen by rank {by}): it stopped or lost contact; the job stops")]
    Lost {
        /// The rank that is gone.
        rank: usize,
        /// The rank that noticed.
        by: usize,
    },
    /// Ranks that called different operations, or buffers of other lengths.
    #[error("ranks out of step: {0}")]
    Protocol(String),
    /// A batch that does not fit the model.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A batch that a model of layers refuses (a token id out of its vocabulary, say).
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    /// A batch whose inputs or targets are not n rows of equal width.
    #[error("a batch of {n} examples with {what} of {len} values: not {n} rows of equal width")]
    BatchShape {
        /// `inputs` or `targets`.
        what: &'static str,
        /// The number of examples.
        n: usize,
        /// The number of values given.
        len: usize,
    },
    /// Data that does not fit the network.
    #[error("data: {0}")]
    Data(String),
    /// The optimizer refused the model or its gradients.
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    /// A file that could not be read, named.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// MPI could not be started.
    #[error("MPI: {0}")]
    Mpi(String),
}

/// The number of blocks of `block` examples in a batch of `n`: ceil(n / block).
///
/// ```
/// use backprop::dist::blocks;
/// assert_eq!((blocks(10, 16), blocks(16, 16), blocks(64, 16), blocks(65, 16)), (1, 1, 4, 5));
/// assert_eq!(blocks(256, 64), 4);
/// ```
pub fn blocks(n: usize, block: usize) -> usize {
    n.div_ceil(block.max(1))
}

/// The blocks rank `rank` of `size` owns, out of `blocks`: a contiguous run, the runs of
/// ranks 0, 1, ... following each other and differing in length by at most one. A rank
/// owns none when there are fewer blocks than ranks.
///
/// ```
/// use backprop::dist::owned_blocks;
/// let runs: Vec<_> = (0..3).map(|r| owned_blocks(r, 3, 4)).collect();
/// assert_eq!(runs, [0..1, 1..2, 2..4]);
/// assert_eq!(owned_blocks(0, 2, 1), 0..0);
/// ```
pub fn owned_blocks(rank: usize, size: usize, blocks: usize) -> Range<usize> {
    let edge = |r: usize| (r as u128 * blocks as u128 / size.max(1) as u128) as usize;
    edge(rank)..edge(rank + 1)
}

/// A model whose gradient can be computed block by block: what [`BatchGradient`] needs
/// beyond the named parameters of [`Model`].
///
/// The flat layout of a block's sum is the parameters' gradients in the order of
/// [`Model::visit_params`], each row-major, then one more value, the sum of the C_i.
pub trait BlockGrad<T: Float>: Model<T> + Sync {
    /// What one block's computation needs of its own (buffers), one per block computed at
    /// the same time.
    type Scratch: Send;

    /// Buffers for a block (they may grow on first use to the block size).
    fn scratch(&self) -> Self::Scratch;

    /// For the block of `n` examples `x` (n rows) and `y` (n rows): writes into `out` the
    /// sum over the examples of dC_i/dtheta (flat, in parameter order) followed by the sum
    /// of the C_i. Must run on the calling thread alone and depend only on the parameters
    /// and the block, so that any rank computing it gets the same bits.
    ///
    /// # Errors
    /// A batch that does not fit the model.
    fn block_sum(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        scratch: &mut Self::Scratch,
        out: &mut [T],
    ) -> Result<(), DistError>;

    /// Writes the flat gradient (parameter order, without the loss) into `grads`, where
    /// [`Model::visit_params_mut`] will find it for the optimizer; `&mut self` for models
    /// that keep their gradients themselves.
    fn write_grads(&mut self, flat: &[T], grads: &mut Self::Grads);
}

impl<T: Float> BlockGrad<T> for Network<T> {
    type Scratch = (Workspace<T>, Gradients<T>);

    fn scratch(&self) -> Self::Scratch {
        (Workspace::new(self, BLOCK), Gradients::zeros_like(self))
    }

    fn block_sum(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        (ws, sums): &mut Self::Scratch,
        out: &mut [T],
    ) -> Result<(), DistError> {
        let total = self.try_backprop_sum(x, y, n, ws, sums)?;
        let mut rest = &mut out[..];
        for (w, b) in sums.weights.iter().zip(&sums.biases) {
            for part in [w.as_slice(), b] {
                let (here, after) = rest.split_at_mut(part.len());
                here.copy_from_slice(part);
                rest = after;
            }
        }
        rest[0] = total;
        Ok(())
    }

    fn write_grads(&mut self, flat: &[T], grads: &mut Gradients<T>) {
        if !grads.is_shaped_like(self) {
            *grads = Gradients::zeros_like(self);
        }
        let mut rest = flat;
        for (w, b) in grads.weights.iter_mut().zip(&mut grads.biases) {
            for part in [w.as_mut_slice(), b] {
                let (here, after) = rest.split_at(part.len());
                part.copy_from_slice(here);
                rest = after;
            }
        }
    }
}

/// A model of layers, block by block: a copy of the model (made on first use) takes the
/// current parameters and computes the block's mean J and gradients
/// ([`Sequential::loss_and_grad`](crate::nn::Sequential::loss_and_grad)), which times the
/// block's n are its sums. The copy runs in a pool of one thread of its own: the layers'
/// kernels split a batch over the pool's threads and add the parts, so on the caller's pool
/// a block's bits would depend on the thread count. Dropout would draw its masks from the
/// copy's own generator, so which process computed a block would change them: a model with
/// `Dropout` is not deterministic here (the command line refuses it).
impl<T: Float> BlockGrad<T> for ArchModel<T> {
    type Scratch = Option<Box<(ArchModel<T>, rayon::ThreadPool)>>;

    fn scratch(&self) -> Self::Scratch {
        None
    }

    fn block_sum(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        scratch: &mut Self::Scratch,
        out: &mut [T],
    ) -> Result<(), DistError> {
        let b = match scratch.take() {
            Some(b) => scratch.insert(b),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .map_err(|e| DistError::Protocol(format!("a thread for block sums: {e}")))?;
                scratch.insert(Box::new((self.duplicate(), pool)))
            }
        };
        let (copy, pool) = &mut **b;
        for ((_, _, to), (_, _, from)) in copy.net.params_mut().zip(self.net.params()) {
            to.copy_from_slice(from);
        }
        let j = pool.install(|| copy.net.loss_and_grad(x, y, n, self.cost))?;
        let count = T::from_f64(n as f64);
        let mut rest = &mut out[..];
        for (_, _, g) in copy.net.grads() {
            let (here, after) = rest.split_at_mut(g.len());
            for (o, &v) in here.iter_mut().zip(g) {
                *o = v * count;
            }
            rest = after;
        }
        rest[0] = j * count;
        Ok(())
    }

    fn write_grads(&mut self, flat: &[T], _grads: &mut ()) {
        let mut rest = flat;
        for (_, _, g) in self.net.grads_mut() {
            let (here, after) = rest.split_at(g.len());
            g.copy_from_slice(here);
            rest = after;
        }
    }
}

/// Time and bytes of the combination, for a `--verbose` report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// Batches combined.
    pub steps: u64,
    /// Bytes this rank handed to the others: its sends along the chain, and as the
    /// broadcast's root the sum once for each other rank.
    pub bytes_sent: u64,
    /// Time computing its blocks' sums.
    pub compute: Duration,
    /// Time adding, passing and broadcasting, including waiting for slower ranks.
    pub communication: Duration,
}

impl CommStats {
    /// Bytes sent per step, on average.
    pub fn bytes_per_step(&self) -> f64 {
        self.bytes_sent as f64 / self.steps.max(1) as f64
    }

    /// The fraction of the time spent communicating (or waiting), 0..1.
    pub fn communication_fraction(&self) -> f64 {
        let total = (self.compute + self.communication).as_secs_f64();
        if total > 0.0 {
            self.communication.as_secs_f64() / total
        } else {
            0.0
        }
    }

    /// One line for a report, as `rank`'s figures.
    ///
    /// ```
    /// use backprop::dist::CommStats;
    /// use std::time::Duration;
    /// let s = CommStats { steps: 10, bytes_sent: 4_000_000, compute: Duration::from_millis(300),
    ///                     communication: Duration::from_millis(100) };
    /// assert_eq!(s.report(1), "rank 1: 10 steps, 0.400 MB sent per step, communication 0.100 s (25.0%), computation 0.300 s");
    /// ```
    pub fn report(&self, rank: usize) -> String {
        format!(
            "rank {rank}: {} steps, {:.3} MB sent per step, communication {:.3} s ({:.1}%), computation {:.3} s",
            self.steps,
            self.bytes_per_step() / 1e6,
            self.communication.as_secs_f64(),
            100.0 * self.communication_fraction(),
            self.compute.as_secs_f64()
        )
    }
}

/// The per-batch gradient of data-parallel training: call [`BatchGradient::loss_and_grad`]
/// for each mini-batch instead of the model's own backpropagation, on every rank, with the
/// whole batch. See the [module docs](self) for the order of the additions.
///
/// It keeps the buffers between batches: after the first batch of the largest size, a step
/// allocates nothing but what the communication layer does.
pub struct BatchGradient<T: Float, M: BlockGrad<T>> {
    /// The number of parameters, P.
    params: usize,
    /// Examples per block.
    block: usize,
    /// The running sum S (P gradients, then the loss), then dJ/dtheta and J.
    sum: Vec<T>,
    /// S_b of each block this rank owns.
    own: Vec<Vec<T>>,
    /// One scratch per owned block, so that all may be computed at once.
    scratch: Vec<M::Scratch>,
    stats: CommStats,
}

impl<T: Float, M: BlockGrad<T>> BatchGradient<T, M> {
    /// Buffers for `model`'s parameters, blocks of [`BLOCK`] examples.
    pub fn new(model: &M) -> Self {
        Self::with_block(model, BLOCK)
    }

    /// Buffers for `model`'s parameters, blocks of `block` examples (at least 1).
    ///
    /// Larger blocks make fewer, larger matrix products and fewer sums to add; smaller
    /// ones leave more blocks to share among the processes (ceil(batch / block)). Measured
    /// on one thread, the wide network (784-1024-1024-10) with batches of 256 trains at
    /// about 0.4 of the whole batch's speed in blocks of 16, 0.75-0.9 in blocks of 64, and
    /// at its speed in one block of 256.
    pub fn with_block(model: &M, block: usize) -> Self {
        let mut params = 0;
        model.visit_params(&mut |p| params += p.values.len());
        BatchGradient {
            params,
            block: block.max(1),
            sum: vec![T::zero(); params + 1],
            own: Vec::new(),
            scratch: Vec::new(),
            stats: CommStats::default(),
        }
    }

    /// dJ/dtheta of the last batch, flat in parameter order, then J.
    pub fn gradient(&self) -> &[T] {
        &self.sum
    }

    /// The time and bytes so far.
    pub fn stats(&self) -> &CommStats {
        &self.stats
    }

    /// J = (1/n) sum C_i and dJ/dtheta = (1/n) sum dC_i/dtheta for the batch `x` (n rows)
    /// and `y` (n rows): returns J and writes dJ/dtheta into `grads` (through
    /// [`BlockGrad::write_grads`]) for the optimizer; the same bits on every rank of `comm`
    /// and for every size of it. Every rank must call it with the same batch, the same
    /// parameters and in the same order as the others.
    ///
    /// # Errors
    /// [`DistError::BatchShape`] or [`DistError::Network`] for a batch that does not fit
    /// (n = 0 included); [`DistError::Lost`] and [`DistError::Protocol`] from `comm`.
    pub fn loss_and_grad(
        &mut self,
        comm: &impl Collective,
        model: &mut M,
        x: &[T],
        y: &[T],
        n: usize,
        grads: &mut M::Grads,
    ) -> Result<T, DistError>
    where
        M: Sized,
    {
        let started = Instant::now();
        let (x_width, y_width) = (row_width("inputs", x, n)?, row_width("targets", y, n)?);
        let block = self.block;
        let mine = owned_blocks(comm.rank(), comm.size(), blocks(n, block));
        let len = self.params + 1;
        while self.own.len() < mine.len() {
            self.own.push(vec![T::zero(); len]);
            self.scratch.push(model.scratch());
        }
        // Each owned block on a thread of its own: S_b depends only on the block.
        let model_ref = &*model;
        (self.own.par_iter_mut().zip(self.scratch.par_iter_mut()))
            .take(mine.len())
            .enumerate()
            .try_for_each(|(j, (out, scratch))| {
                let b = mine.start + j;
                let rows = b * block..((b + 1) * block).min(n);
                let (xb, yb) = (
                    &x[rows.start * x_width..rows.end * x_width],
                    &y[rows.start * y_width..rows.end * y_width],
                );
                model_ref.block_sum(xb, yb, rows.len(), scratch, out)
            })?;
        let computed = Instant::now();
        self.stats.compute += computed - started;

        // S = ((0 + S_0) + S_1) + ..., passed along the ranks chunk by chunk.
        let (rank, size) = (comm.rank(), comm.size());
        let elem = std::mem::size_of::<T>() as u64;
        for start in (0..len).step_by(CHUNK) {
            let part = &mut self.sum[start..(start + CHUNK).min(len)];
            if rank == 0 {
                part.fill(T::zero());
            } else {
                comm.recv(rank - 1, float_buf_mut(part))?;
            }
            for block in &self.own[..mine.len()] {
                for (s, &b) in part.iter_mut().zip(&block[start..]) {
                    *s += b;
                }
            }
            if rank + 1 < size {
                comm.send(rank + 1, float_buf(part))?;
                self.stats.bytes_sent += part.len() as u64 * elem;
            }
        }
        for start in (0..len).step_by(CHUNK) {
            let part = &mut self.sum[start..(start + CHUNK).min(len)];
            comm.broadcast(size - 1, float_buf_mut(part))?;
            if rank == size - 1 {
                self.stats.bytes_sent += part.len() as u64 * elem * (size as u64 - 1);
            }
        }
        let n_t = T::from_f64(n as f64);
        for s in &mut self.sum {
            *s /= n_t;
        }
        self.stats.communication += computed.elapsed();
        self.stats.steps += 1;
        model.write_grads(&self.sum[..self.params], grads);
        Ok(self.sum[self.params])
    }
}

/// The width of the rows of a batch of `n` examples held in `data`.
fn row_width<T>(what: &'static str, data: &[T], n: usize) -> Result<usize, DistError> {
    if n == 0 {
        return Err(NetworkError::EmptyBatch.into());
    }
    match data.len() % n {
        0 => Ok(data.len() / n),
        _ => Err(DistError::BatchShape {
            what,
            n,
            len: data.len(),
        }),
    }
}
