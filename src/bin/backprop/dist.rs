//! `mpirun -np N backprop train`: the ranks share each mini-batch (blocks of `--block`
//! examples, summed in block order, see `backprop::dist`), every rank takes the same step,
//! and rank 0 alone prints and writes files. Without `mpirun`, `--block` gives one process
//! the same sums, hence the same bytes.

use std::collections::BTreeMap;
#[cfg(feature = "mpi")]
use std::rc::Rc;

use anyhow::bail;
use backprop::data::Dataset;
use backprop::dist::{BlockGrad, Blocked, Collective, CommStats, Single};
#[cfg(feature = "mpi")]
use backprop::dist::{Fingerprint, MpiWorld};
use backprop::nn::{ArchModel, Layer};
use backprop::train::{Trainable, Trainer};
use backprop::Float;

/// The checkpoint's record of `--block`: a resumed run sums in the same blocks.
const BLOCK_KEY: &str = "run.block";

/// The flags of data-parallel training.
#[derive(clap::Args, Clone, Default)]
pub struct Flags {
    /// Sum each mini-batch's gradient in blocks of this many examples, added in a fixed
    /// order: the model then has the same bytes for any number of MPI processes (mpirun -np
    /// N backprop train, which needs it) and for one process given the same --block.
    /// Without it, one process backpropagates the whole batch at once (faster; other
    /// rounding).
    #[arg(long)]
    pub block: Option<usize>,
    /// At the end, each process's bytes sent per step and its time communicating (or
    /// waiting) against computing.
    #[arg(long)]
    pub verbose: bool,
    /// The processes of this run (set at start, not a flag).
    #[arg(skip)]
    pub group: Group,
}

/// The processes `mpirun` started, or this one alone.
#[derive(Clone, Default)]
pub struct Group {
    #[cfg(feature = "mpi")]
    world: Option<Rc<MpiWorld>>,
}

impl Group {
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.rank();
        }
        0
    }

    pub fn size(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.size();
        }
        1
    }

    /// Prints `rank r of N: error: ...` and ends every rank: a rank that returned instead
    /// would leave the others waiting for it.
    fn abort(&self, message: &str) -> ! {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            w.abort(message)
        }
        unreachable!("one process has no other ranks to stop: {message}")
    }
}

/// The number of processes `mpirun` (Open MPI, or a PMI launcher such as MPICH's or
/// Slurm's) says this job has, if it started this one.
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// MPI, when `mpirun` started this process and the binary has it.
fn launch() -> anyhow::Result<Group> {
    let Some(size) = launched_size() else {
        return Ok(Group::default());
    };
    #[cfg(feature = "mpi")]
    {
        let _ = size;
        let world = MpiWorld::init().map_err(|e| anyhow::anyhow!("mpirun: {e}"))?;
        Ok(Group {
            world: Some(Rc::new(world)),
        })
    }
    #[cfg(not(feature = "mpi"))]
    {
        if size > 1 {
            bail!("mpirun: this backprop was built without MPI, so its {size} processes would each train alone: build it with cargo build --release --features mpi");
        }
        Ok(Group::default())
    }
}

/// `backprop train`, on every rank: rank 0 prints, the others stay silent but for errors,
/// which end the whole job.
pub fn train(mut args: crate::train::Args, given: &[String]) -> anyhow::Result<()> {
    let group = launch()?;
    if group.rank() > 0 {
        crate::stdout::mute();
    }
    args.dist.group = group.clone();
    let result = crate::train::run(args, given);
    match result {
        Err(e) if group.size() > 1 => group.abort(&crate::message(&e)),
        other => other,
    }
}

/// Refuses what data-parallel training does not do yet: private training (its Poisson
/// batches are drawn whole, not in blocks).
pub fn check_private(flags: &Flags) -> anyhow::Result<()> {
    if let Some(b) = flags.block {
        bail!("--block {b}: private training (--dp-*) draws whole Poisson batches, not blocks, for now");
    }
    if flags.group.size() > 1 {
        bail!("mpirun: private training (--dp-*) runs in one process for now");
    }
    Ok(())
}

/// Refuses what data-parallel training does not do yet: a model of layers with dropout,
/// whose masks would depend on which process computed a block.
pub fn check_arch(flags: &Flags, model: &ArchModel<impl Float>) -> anyhow::Result<()> {
    let dropout = (model.net.arch().layers().iter()).any(|l| matches!(l, Layer::Dropout { .. }));
    if !dropout {
        return Ok(());
    }
    if let Some(b) = flags.block {
        bail!("--block {b}: a model with Dropout trains on whole batches for now (its masks would depend on which process computes a block)");
    }
    if flags.group.size() > 1 {
        bail!("mpirun: a model with Dropout trains in one process for now (its masks would depend on which process computes a block)");
    }
    Ok(())
}

/// Before the first epoch: the block size (the flag, or the resumed checkpoint's), the
/// ranks' agreement on the command line and the data, and the block sums as the
/// trainer's gradient. Returns what a checkpoint records of it.
pub fn prepare<T: Float, M: BlockGrad<T> + Trainable<T> + 'static>(
    flags: &Flags,
    json: bool,
    trainer: &mut Trainer<T, M>,
    data: [Option<&Dataset>; 3],
    resumed: Option<&BTreeMap<String, String>>,
) -> anyhow::Result<Vec<(String, String)>> {
    let stored = resumed.and_then(|m| m.get(BLOCK_KEY)).map(String::as_str);
    let block = match (flags.block, stored) {
        (Some(0), _) => bail!("--block 0: a block needs at least 1 example"),
        (Some(b), Some(s)) if b.to_string() != s => {
            bail!("--block {b}: the checkpoint was trained with --block {s}; a resumed run keeps its settings (leave --block out)")
        }
        (Some(b), _) => b,
        (None, Some(s)) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("--resume: metadata {BLOCK_KEY} = {s:?}: not a block size"))?,
        (None, None) if flags.group.size() > 1 => bail!(
            "mpirun: give --block (examples per block, e.g. --block 16); one process given the same --block trains to the same bytes"
        ),
        (None, None) => return Ok(Vec::new()),
    };
    let size = flags.group.size();
    if size > 1 && !json {
        let batch = trainer.config().batch;
        crate::errln!(
            "data-parallel on {size} processes: batches of {batch} in {} of {block} examples",
            crate::common::plural(backprop::dist::blocks(batch, block), "block")
        );
    }
    let source: Box<dyn backprop::train::GradientSource<T, M>> = {
        #[cfg(feature = "mpi")]
        match &flags.group.world {
            Some(world) => {
                agree(world, data)?;
                Box::new(Blocked::new(world.clone(), trainer.network(), block))
            }
            None => Box::new(Blocked::new(Single, trainer.network(), block)),
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = data;
            Box::new(Blocked::new(Single, trainer.network(), block))
        }
    };
    trainer.set_gradient_source(source);
    Ok(vec![(BLOCK_KEY.to_string(), block.to_string())])
}

/// Stops the job, naming the first rank that differs from rank 0, unless every rank was
/// given the same command line and loaded the same data on the same kind of CPU.
#[cfg(feature = "mpi")]
fn agree(comm: &impl Collective, data: [Option<&Dataset>; 3]) -> anyhow::Result<()> {
    let mut f = Fingerprint::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    f.value("the command line", &argv.join("\u{0}"));
    for (name, set) in ["training", "validation", "test"].iter().zip(data) {
        if let Some(set) = set {
            f.dataset(&format!("{name} part"), set);
        }
    }
    f.cpu();
    Ok(f.agree(comm)?)
}

/// With `--verbose`, at the end: every rank's communication against computation, printed
/// by rank 0 (every rank must call it: the figures are gathered).
pub fn report(flags: &Flags, stats: Option<CommStats>) -> anyhow::Result<()> {
    if !flags.verbose {
        return Ok(());
    }
    let Some(stats) = stats else {
        crate::errln!("communication: none (one process, whole batches; --block sums in blocks)");
        return Ok(());
    };
    let mine = [
        stats.steps,
        stats.bytes_sent,
        stats.compute.as_nanos() as u64,
        stats.communication.as_nanos() as u64,
    ];
    let mut all = vec![0; 4 * flags.group.size()];
    #[cfg(feature = "mpi")]
    match &flags.group.world {
        Some(world) => world.all_gather_u64(&mine, &mut all)?,
        None => Single.all_gather_u64(&mine, &mut all)?,
    }
    #[cfg(not(feature = "mpi"))]
    Single.all_gather_u64(&mine, &mut all)?;
    for (rank, s) in all.chunks_exact(4).enumerate() {
        let stats = CommStats {
            steps: s[0],
            bytes_sent: s[1],
            compute: std::time::Duration::from_nanos(s[2]),
            communication: std::time::Duration::from_nanos(s[3]),
        };
        crate::errln!("{}", stats.report(rank));
    }
    Ok(())
}
