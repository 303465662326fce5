//! The few operations data-parallel training needs from a group of processes, and two
//! groups that need no MPI: one process alone ([`Single`]), and threads standing in for
//! processes ([`LocalGroup`], for tests and for trying a protocol without `mpirun`).

use super::DistError;
use crate::Float;
use std::any::TypeId;
use std::sync::mpsc::{channel, Receiver, Sender};

/// A buffer to send: the element types the combination and the agreement check use.
#[derive(Clone, Copy, Debug)]
pub enum Buf<'a> {
    /// Gradients and losses of an `f32` model.
    F32(&'a [f32]),
    /// Gradients and losses of an `f64` model.
    F64(&'a [f64]),
    /// Fingerprints and counts.
    U64(&'a [u64]),
}

/// A buffer to receive into.
#[derive(Debug)]
pub enum BufMut<'a> {
    /// `f32` values.
    F32(&'a mut [f32]),
    /// `f64` values.
    F64(&'a mut [f64]),
    /// `u64` values.
    U64(&'a mut [u64]),
}

impl Buf<'_> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buf::F32(s) => s.len(),
            Buf::F64(s) => s.len(),
            Buf::U64(s) => s.len(),
        }
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Buf::F32(s) => std::mem::size_of_val(*s),
            Buf::F64(s) => std::mem::size_of_val(*s),
            Buf::U64(s) => std::mem::size_of_val(*s),
        }
    }
}

impl BufMut<'_> {
    /// The same buffer, read-only.
    pub fn as_buf(&self) -> Buf<'_> {
        match self {
            BufMut::F32(s) => Buf::F32(s),
            BufMut::F64(s) => Buf::F64(s),
            BufMut::U64(s) => Buf::U64(s),
        }
    }
}

/// `s` as the [`Buf`] of its element type: `f32` or `f64`, the two [`Float`] types.
///
/// # Panics
/// For a [`Float`] type other than `f32` and `f64` (there is none in this crate).
pub fn float_buf<T: Float>(s: &[T]) -> Buf<'_> {
    let (ptr, len) = (s.as_ptr(), s.len());
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same TypeId), so the slice is a [f32] of the same length,
        // alignment and lifetime; this only names its type.
        Buf::F32(unsafe { std::slice::from_raw_parts(ptr.cast::<f32>(), len) })
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: as above, with T = f64.
        Buf::F64(unsafe { std::slice::from_raw_parts(ptr.cast::<f64>(), len) })
    } else {
        panic!("float_buf: {} is neither f32 nor f64", T::DTYPE)
    }
}

/// `s` as the [`BufMut`] of its element type (see [`float_buf`]).
///
/// # Panics
/// For a [`Float`] type other than `f32` and `f64`.
pub fn float_buf_mut<T: Float>(s: &mut [T]) -> BufMut<'_> {
    let (ptr, len) = (s.as_mut_ptr(), s.len());
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same TypeId); the unique borrow of `s` moves into the result.
        BufMut::F32(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<f32>(), len) })
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: as above, with T = f64.
        BufMut::F64(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<f64>(), len) })
    } else {
        panic!("float_buf_mut: {} is neither f32 nor f64", T::DTYPE)
    }
}

/// A group of processes (ranks 0..size) that train one model together.
///
/// Every rank calls the collective operations ([`Collective::broadcast`],
/// [`Collective::all_gather_u64`], [`Collective::barrier`]) in the same order with buffers
/// of the same length; [`Collective::send`] and [`Collective::recv`] pair up between two
/// ranks. An operation that cannot complete because a rank is gone returns
/// [`DistError::Lost`] (in [`LocalGroup`]); under MPI the job is aborted by MPI itself,
/// which is its default for a dead process.
pub trait Collective {
    /// This process's rank, 0..size.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sends `buf` to rank `to`; returns when the buffer may be reused.
    ///
    /// # Errors
    /// [`DistError::Lost`] if rank `to` is gone.
    fn send(&self, to: usize, buf: Buf<'_>) -> Result<(), DistError>;
    /// Receives exactly `buf.len()` elements of `buf`'s type from rank `from`.
    ///
    /// # Errors
    /// [`DistError::Lost`] if rank `from` is gone; [`DistError::Protocol`] for a message
    /// of another type or length.
    fn recv(&self, from: usize, buf: BufMut<'_>) -> Result<(), DistError>;
    /// Copies `buf` of rank `root` into `buf` of every other rank.
    ///
    /// # Errors
    /// As [`Collective::send`] and [`Collective::recv`].
    fn broadcast(&self, root: usize, buf: BufMut<'_>) -> Result<(), DistError>;
    /// Every rank's `mine` (all of one length k), one after the other in rank order, into
    /// `all` (size * k long) on every rank.
    ///
    /// # Errors
    /// As [`Collective::send`] and [`Collective::recv`].
    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) -> Result<(), DistError>;
    /// Returns once every rank has called it.
    ///
    /// # Errors
    /// As [`Collective::send`] and [`Collective::recv`].
    fn barrier(&self) -> Result<(), DistError> {
        let mut all = vec![0; self.size()];
        self.all_gather_u64(&[0], &mut all)
    }
}

/// A group shared by its users (the training loop and the program's own checks).
impl<C: Collective + ?Sized> Collective for std::rc::Rc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn size(&self) -> usize {
        (**self).size()
    }
    fn send(&self, to: usize, buf: Buf<'_>) -> Result<(), DistError> {
        (**self).send(to, buf)
    }
    fn recv(&self, from: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        (**self).recv(from, buf)
    }
    fn broadcast(&self, root: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        (**self).broadcast(root, buf)
    }
    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) -> Result<(), DistError> {
        (**self).all_gather_u64(mine, all)
    }
    fn barrier(&self) -> Result<(), DistError> {
        (**self).barrier()
    }
}

/// One process alone: rank 0 of 1. Collective operations have nothing to do; a send or a
/// receive is a protocol error, since there is no other rank.
///
/// ```
/// use backprop::dist::{Collective, Single};
/// let one = Single;
/// assert_eq!((one.rank(), one.size()), (0, 1));
/// let mut all = [0; 2];
/// one.all_gather_u64(&[7, 9], &mut all).unwrap();
/// assert_eq!(all, [7, 9]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn send(&self, to: usize, _: Buf<'_>) -> Result<(), DistError> {
        Err(DistError::Protocol(format!(
            "send to rank {to} of a group of 1"
        )))
    }
    fn recv(&self, from: usize, _: BufMut<'_>) -> Result<(), DistError> {
        Err(DistError::Protocol(format!(
            "receive from rank {from} of a group of 1"
        )))
    }
    fn broadcast(&self, _: usize, _: BufMut<'_>) -> Result<(), DistError> {
        Ok(())
    }
    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) -> Result<(), DistError> {
        if all.len() != mine.len() {
            return Err(DistError::Protocol(format!(
                "all-gather of {} values into {}",
                mine.len(),
                all.len()
            )));
        }
        all.copy_from_slice(mine);
        Ok(())
    }
}

/// A message between two threads of a [`LocalGroup`].
#[derive(Debug)]
enum Message {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U64(Vec<u64>),
}

/// Threads standing in for the ranks of an MPI job: [`LocalGroup::new`] gives one
/// endpoint per rank, each to be moved into its own thread. Messages go through channels,
/// one per ordered pair of ranks, so they arrive in the order sent, as MPI's do between
/// two ranks. When a thread ends (or panics), the others' operations with it fail with
/// [`DistError::Lost`] naming it, rather than hanging.
///
/// ```
/// use backprop::dist::{Buf, BufMut, Collective, LocalGroup};
/// let ends = LocalGroup::new(3);
/// std::thread::scope(|s| {
///     for end in ends {
///         s.spawn(move || {
///             let mut v = [end.rank() as f64; 2];
///             end.broadcast(2, BufMut::F64(&mut v)).unwrap();
///             assert_eq!(v, [2.0, 2.0]);
///         });
///     }
/// });
/// ```
#[derive(Debug)]
pub struct LocalGroup {
    rank: usize,
    /// `to[r]` sends to rank r (`None` for this rank itself).
    to: Vec<Option<Sender<Message>>>,
    /// `from[r]` receives what rank r sent to this one.
    from: Vec<Option<Receiver<Message>>>,
}

impl LocalGroup {
    /// The endpoints of a group of `size` ranks, in rank order.
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let mut ends: Vec<LocalGroup> = (0..size)
            .map(|rank| LocalGroup {
                rank,
                to: (0..size).map(|_| None).collect(),
                from: (0..size).map(|_| None).collect(),
            })
            .collect();
        for a in 0..size {
            for b in 0..size {
                if a != b {
                    let (tx, rx) = channel();
                    ends[a].to[b] = Some(tx);
                    ends[b].from[a] = Some(rx);
                }
            }
        }
        ends
    }

    fn peer<'a, X>(&self, list: &'a [Option<X>], rank: usize) -> Result<&'a X, DistError> {
        list.get(rank).and_then(Option::as_ref).ok_or_else(|| {
            DistError::Protocol(format!(
                "rank {} has no peer {rank} in a group of {}",
                self.rank,
                list.len()
            ))
        })
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.to.len()
    }

    fn send(&self, to: usize, buf: Buf<'_>) -> Result<(), DistError> {
        let message = match buf {
            Buf::F32(s) => Message::F32(s.to_vec()),
            Buf::F64(s) => Message::F64(s.to_vec()),
            Buf::U64(s) => Message::U64(s.to_vec()),
        };
        let lost = DistError::Lost {
            rank: to,
            by: self.rank,
        };
        self.peer(&self.to, to)?.send(message).map_err(|_| lost)
    }

    fn recv(&self, from: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        let message = self
            .peer(&self.from, from)?
            .recv()
            .map_err(|_| DistError::Lost {
                rank: from,
                by: self.rank,
            })?;
        let expected = buf.as_buf().len();
        let wrong = |got: &str, len: usize| {
            DistError::Protocol(format!(
                "rank {} expected {expected} values from rank {from}, got {len} {got}",
                self.rank
            ))
        };
        match (message, buf) {
            (Message::F32(m), BufMut::F32(b)) if m.len() == b.len() => b.copy_from_slice(&m),
            (Message::F64(m), BufMut::F64(b)) if m.len() == b.len() => b.copy_from_slice(&m),
            (Message::U64(m), BufMut::U64(b)) if m.len() == b.len() => b.copy_from_slice(&m),
            (Message::F32(m), _) => return Err(wrong("f32", m.len())),
            (Message::F64(m), _) => return Err(wrong("f64", m.len())),
            (Message::U64(m), _) => return Err(wrong("u64", m.len())),
        }
        Ok(())
    }

    fn broadcast(&self, root: usize, buf: BufMut<'_>) -> Result<(), DistError> {
        if self.rank == root {
            for r in (0..self.size()).filter(|&r| r != root) {
                self.send(r, buf.as_buf())?;
            }
            Ok(())
        } else {
            self.recv(root, buf)
        }
    }

    fn all_gather_u64(&self, mine: &[u64], all: &mut [u64]) -> Result<(), DistError> {
        let k = mine.len();
        if Some(all.len()) != k.checked_mul(self.size()) {
            return Err(DistError::Protocol(format!(
                "all-gather of {k} values from {} ranks into {}",
                self.size(),
                all.len()
            )));
        }
        for r in (0..self.size()).filter(|&r| r != self.rank) {
            self.send(r, Buf::U64(mine))?;
        }
        for (r, slot) in all.chunks_exact_mut(k.max(1)).enumerate().take(self.size()) {
            if r == self.rank {
                slot.copy_from_slice(mine);
            } else {
                self.recv(r, BufMut::U64(&mut slot[..k]))?;
            }
        }
        if k == 0 {
            // Nothing to copy, but every rank's message must still be taken.
            for r in (0..self.size()).filter(|&r| r != self.rank) {
                self.recv(r, BufMut::U64(&mut []))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_buf_names_the_type_without_changing_the_values() {
        let v = [1.5f32, -0.0, f32::MIN_POSITIVE];
        match float_buf(&v) {
            Buf::F32(s) => assert_eq!(s.as_ptr(), v.as_ptr()),
            other => panic!("{other:?}"),
        }
        let mut w = [2.5f64; 3];
        match float_buf_mut(&mut w[1..]) {
            BufMut::F64(s) => {
                assert_eq!(s.len(), 2);
                s[0] = 7.0;
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w, [2.5, 7.0, 2.5]);
        assert_eq!(float_buf(&v).bytes(), 12);
    }

    #[test]
    fn a_rank_that_is_gone_is_named_instead_of_waited_for() {
        let mut ends = LocalGroup::new(3);
        let (b, a) = (ends.pop().unwrap(), ends.remove(0));
        drop(ends); // rank 1 ends before anything is sent
        let err = a.recv(1, BufMut::U64(&mut [0])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rank 1 is gone (seen by rank 0): it stopped or lost contact; the job stops"
        );
        assert!(matches!(
            a.send(1, Buf::U64(&[1])),
            Err(DistError::Lost { rank: 1, by: 0 })
        ));
        // The two left still talk; a message of the wrong length is refused.
        a.send(2, Buf::F64(&[1.0, 2.0])).unwrap();
        let err = b.recv(0, BufMut::F64(&mut [0.0; 3])).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected 3 values from rank 0, got 2 f64"),
            "{err}"
        );
    }

    #[test]
    fn all_gather_and_barrier_across_threads() {
        let ends = LocalGroup::new(4);
        std::thread::scope(|s| {
            for end in ends {
                s.spawn(move || {
                    let r = end.rank() as u64;
                    let mut all = [0; 8];
                    end.all_gather_u64(&[r, 10 * r], &mut all).unwrap();
                    assert_eq!(all, [0, 0, 1, 10, 2, 20, 3, 30]);
                    end.barrier().unwrap();
                });
            }
        });
    }
}
