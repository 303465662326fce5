//! The Gaussian noise of a private step: N(0, (sigma C)^2) added to every coordinate of
//! the clipped sum.
//!
//! Each step takes a 32-byte key, from a seeded stream ([`Noise::seeded`]: the same seed
//! gives the same noise) or from the operating system ([`Noise::os`], through `getrandom`).
//! The key drives a ChaCha generator whose stream number names the parameter and the block
//! of 2^14 values within it, so blocks can be drawn on several threads and still give the
//! same numbers as one thread.

use crate::Float;
use rand::{RngCore, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Values per block of noise, the unit handed to a thread.
const BLOCK: usize = 1 << 14;

/// Where a step's noise comes from.
#[derive(Clone, Debug)]
pub struct Noise {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    /// Keys from a ChaCha8 stream seeded once; noise by ChaCha8.
    Seeded(Box<ChaCha8Rng>),
    /// Keys from the operating system at every step; noise by ChaCha20.
    Os,
}

impl Noise {
    /// Noise from a seeded stream: the same seed gives the same noise, step after step.
    pub fn seeded(seed: u64) -> Self {
        Noise {
            source: Source::Seeded(Box::new(ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    /// Noise keyed afresh at every step by 32 bytes from the operating system
    /// (`rand::rngs::OsRng`, i.e. `getrandom`) and drawn by ChaCha20, a cryptographic
    /// generator: nothing in the program or its seed predicts it.
    pub fn os() -> Self {
        Noise { source: Source::Os }
    }

    /// Whether the noise comes from the operating system.
    pub fn is_os(&self) -> bool {
        matches!(self.source, Source::Os)
    }

    /// Adds independent N(0, std^2) draws to every value of every tensor that `visit`
    /// hands out (in a fixed order: the k-th tensor's noise depends only on the step's key
    /// and k). Does nothing for std = 0.
    ///
    /// ```
    /// use backprop::privacy::Noise;
    /// let (mut a, mut b) = (vec![0.0f64; 1000], vec![0.0f64; 1000]);
    /// Noise::seeded(7).add(2.0, |f| f(&mut a));
    /// Noise::seeded(7).add(2.0, |f| f(&mut b));
    /// assert_eq!(a, b); // the same seed, the same noise
    /// let var = a.iter().map(|v| v * v).sum::<f64>() / 1000.0;
    /// assert!((var.sqrt() - 2.0).abs() < 0.2);
    /// ```
    pub fn add<T: Float>(&mut self, std: f64, visit: impl FnOnce(&mut dyn FnMut(&mut [T]))) {
        if std == 0.0 {
            return;
        }
        let mut key = [0u8; 32];
        let mut tensor = 0u64;
        match &mut self.source {
            Source::Seeded(rng) => {
                rng.fill_bytes(&mut key);
                visit(&mut |t| {
                    fill::<T, ChaCha8Rng>(key, std, t, tensor);
                    tensor += 1;
                });
            }
            Source::Os => {
                rand::rngs::OsRng.fill_bytes(&mut key);
                visit(&mut |t| {
                    fill::<T, ChaCha20Rng>(key, std, t, tensor);
                    tensor += 1;
                });
            }
        }
    }
}

/// Adds N(0, std^2) to `values`, block b drawn from stream (tensor << 32) | b of `key`.
fn fill<T: Float, R>(key: [u8; 32], std: f64, values: &mut [T], tensor: u64)
where
    R: RngCore + SeedableRng<Seed = [u8; 32]> + Send + Stream,
{
    let block = |(b, chunk): (usize, &mut [T])| {
        let mut rng = R::from_seed(key);
        rng.set_stream_id((tensor << 32) | b as u64);
        for v in chunk {
            let z: f64 = StandardNormal.sample(&mut rng);
            *v += T::from_f64(std * z);
        }
    };
    if values.len() > BLOCK && rayon::current_num_threads() > 1 {
        values.par_chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        values.chunks_mut(BLOCK).enumerate().for_each(block);
    }
}

/// The ChaCha generators' stream numbers, one trait for both.
trait Stream {
    fn set_stream_id(&mut self, id: u64);
}

impl Stream for ChaCha8Rng {
    fn set_stream_id(&mut self, id: u64) {
        self.set_stream(id);
    }
}

impl Stream for ChaCha20Rng {
    fn set_stream_id(&mut self, id: u64) {
        self.set_stream(id);
    }
}
