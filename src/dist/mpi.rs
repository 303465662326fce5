//! [`Collective`] on MPI (Open MPI, MPICH: anything `mpirun` starts), through `rsmpi`.

use super::{Buf, BufMut, Collective, DistError};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether MPI is initialised and not yet finalised: the panic hook may call MPI_Abort
/// only then.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The processes `mpirun -np N` started, as one [`Collective`] (MPI's world communicator).
///
/// Only the thread that made it calls MPI (the rayon threads compute blocks, never
/// communicate), so MPI is initialised for `MPI_THREAD_FUNNELED`.
///
/// Faults: MPI's default error handler aborts the whole job when an operation fails,
/// and `mpirun` kills the job when a rank dies, saying which (`mpirun noticed that process
/// rank 1 ... exited on signal 9`). On top of that, a panic on any rank prints
/// `rank r of N: ...` and aborts the job, and [`MpiWorld::abort`] does the same for an
/// error, so that no rank waits forever on one that has stopped.
pub struct MpiWorld {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl std::fmt::Debug for MpiWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiWorld(rank {} of {})", self.rank(), self.size())
    }
}

impl MpiWorld {
    /// Initialises MPI (once per process) and installs the panic hook that aborts the job.
    /// Started without `mpirun`, a program is rank 0 of 1.
    ///
    /// # Errors
    /// [`DistError::Mpi`] if MPI is already initialised, or refuses the thread level.
    pub fn init() -> Result<Self, DistError> {
        let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| DistError::Mpi("already initialised in this process".into()))?;
        if level < mpi::Threading::Funneled {
            return Err(DistError::Mpi(format!(
                "the library gives thread level {level:?}, backprop needs Funneled"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank(), world.size());
        ACTIVE.store(true, Ordering::SeqCst);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprint!("rank {rank} of {size}: ");
            previous(info);
            if ACTIVE.load(Ordering::SeqCst) {
                // SAFETY: MPI is initialised and not finalised (ACTIVE); MPI_Abort takes
                // the world communicator, a constant handle, and no Rust memory. It does
                // not return.
                unsafe {
                    mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 101);
                }
            }
        }));
        Ok(MpiWorld {
            world,
            _universe: universe,
        })
    }

    /// Prints `rank r of N: error: message` on standard error and aborts the whole job
    /// (exit status 1): for an error on one rank that the others cannot know of.
    pub fn abort(&self, message: &str) -> ! {
        eprintln!("rank {} of {}: error: {message}", self.rank(), self.size());
        self.world.abort(1)
    }

    /// The name of the machine this rank runs on, as MPI gives it.
    pub fn host(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "?".into())
    }
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn send(&self, to: usize, buf: Buf<'_>) -> Result<(), DistError> {
        let p = self.world.process_at_rank(to as i32);
        match buf {
            Buf::F32(s) => p.send(s),
            Buf::F64(s) => p.send(s),
            Buf::U64(s) => p.send(s),
        }
        Ok(())
    }

    fn recv(&self, from: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        let p = self.world.process_at_rank(from as i32);
        // A longer message is an MPI error (truncation), which aborts; a shorter one is
        // caught here.
        let (expected, got) = match buf {
            BufMut::F32(s) => (s.len(), p.receive_into(s).count(f32::equivalent_datatype())),
            BufMut::F64(s) => (s.len(), p.receive_into(s).count(f64::equivalent_datatype())),
            BufMut::U64(s) => (s.len(), p.receive_into(s).count(u64::equivalent_datatype())),
        };
        if usize::try_from(got) != Ok(expected) {
            return Err(DistError::Protocol(format!(
                "rank {} expected {expected} values from rank {from}, got {got}",
                self.rank()
            )));
        }
        Ok(())
    }

    fn broadcast(&self, root: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        let p = self.world.process_at_rank(root as i32);
        match buf {
            BufMut::F32(s) => p.broadcast_into(s),
            BufMut::F64(s) => p.broadcast_into(s),
            BufMut::U64(s) => p.broadcast_into(s),
        }
        Ok(())
    }

    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) -> Result<(), DistError> {
        if Some(all.len()) != mine.len().checked_mul(self.size()) {
            return Err(DistError::Protocol(format!(
                "all-gather of {} values from {} ranks into {}",
                mine.len(),
                self.size(),
                all.len()
            )));
        }
        self.world.all_gather_into(mine, all);
        Ok(())
    }

    fn barrier(&self) -> Result<(), DistError> {
        self.world.barrier();
        Ok(())
    }
}
