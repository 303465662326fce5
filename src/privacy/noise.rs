//! The Gaussian noise of a private step: N(0, (sigma C)^2) added to every coordinate of
//! the clipped sum.
//!
//! Each step takes a 32-byte key, from a seeded stream ([`Noise::seeded`]: the same seed
//! gives the same noise) or from the operating system ([`Noise::os`], through `getrandom`).
//! The key and a stream number that names the parameter and the block of 2^14 values
//! within it start a generator for that block, so blocks can be drawn on several threads
//! and still give the same numbers as one thread.
//!
//! A step draws one Gaussian number per parameter, whatever the batch size: on the
//! nielsen network (23,860 parameters, batches of 10) that costs more than the step's
//! gradient does. So seeded noise is drawn by xoshiro256++ (a statistical generator, as
//! Opacus's default, PyTorch's generator, is), about four times faster than ChaCha; for
//! f32 values by eight such generators side by side and a vectorised Box-Muller transform
//! (`gauss`), about 0.7 ns a number on one core with AVX2 or AVX-512, rather than 4 ns for
//! rand_distr's `StandardNormal`. Noise from the operating system is drawn by ChaCha20, a
//! cryptographic generator, and `StandardNormal`.

use super::gauss;
use crate::float::as_f32_mut;
use crate::Float;
use rand::{RngCore, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Values per block of noise, the unit handed to a thread.
const BLOCK: usize = 1 << 14;

/// Tensors of fewer values are drawn on the calling thread: handing a few blocks to
/// another worker costs more than it saves when the machine is busy (the nielsen
/// network's 23,520 weights, two blocks, took 2-4 times longer split under load).
const PARALLEL_FROM: usize = 4 * BLOCK;

/// Where a step's noise comes from.
#[derive(Clone, Debug)]
pub struct Noise {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    /// Keys from a ChaCha8 stream seeded once; noise by xoshiro256++.
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
    /// and k). Does nothing for std = 0. A negative std gives the same law, and exactly
    /// the negated draws of -std (a private SGD step adds -eta times its noise to the
    /// weights so).
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
                    if let Some(t) = as_f32_mut(t) {
                        fill_f32(key, std as f32, t, tensor);
                    } else {
                        fill::<T, Xoshiro>(key, std, t, tensor);
                    }
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

/// [`fill`] for f32 values: block b by the eight generators of stream (tensor << 32) | b
/// and [`gauss::add_normal`]'s Box-Muller, in f32.
fn fill_f32(key: [u8; 32], std: f32, values: &mut [f32], tensor: u64) {
    let mut k = [0u64; 4];
    for (k, b) in k.iter_mut().zip(key.chunks_exact(8)) {
        *k = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    let block = |(b, chunk): (usize, &mut [f32])| {
        let mut lanes = gauss::Lanes::new(&k, (tensor << 32) | b as u64);
        gauss::add_normal(&mut lanes, std, chunk);
    };
    if values.len() >= PARALLEL_FROM && rayon::current_num_threads() > 1 {
        values.par_chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        values.chunks_mut(BLOCK).enumerate().for_each(block);
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
    if values.len() >= PARALLEL_FROM && rayon::current_num_threads() > 1 {
        values.par_chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        values.chunks_mut(BLOCK).enumerate().for_each(block);
    }
}

/// A generator started at one of many independent streams of a key.
trait Stream {
    fn set_stream_id(&mut self, id: u64);
}

/// xoshiro256++ (Blackman and Vigna 2019): 256 bits of state, period 2^256 - 1, passes
/// BigCrush; one u64 in about a nanosecond.
struct Xoshiro {
    s: [u64; 4],
    key: [u64; 4],
}

impl SeedableRng for Xoshiro {
    type Seed = [u8; 32];
    fn from_seed(seed: [u8; 32]) -> Self {
        let mut key = [0u64; 4];
        for (k, b) in key.iter_mut().zip(seed.chunks_exact(8)) {
            *k = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        let mut x = Xoshiro { s: [0; 4], key };
        x.set_stream_id(0);
        x
    }
}

impl Stream for Xoshiro {
    fn set_stream_id(&mut self, id: u64) {
        self.s = gauss::lane_state(&self.key, id, 0);
    }
}

impl RngCore for Xoshiro {
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl Stream for ChaCha20Rng {
    fn set_stream_id(&mut self, id: u64) {
        self.set_stream(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_gives_the_reference_sequence() {
        // xoshiro256++ from state {1, 2, 3, 4}: the first outputs of the reference
        // algorithm, as the rand_xoshiro crate's tests list them.
        let mut x = Xoshiro {
            s: [1, 2, 3, 4],
            key: [0; 4],
        };
        let got: Vec<u64> = (0..3).map(|_| x.next_u64()).collect();
        assert_eq!(got, [41_943_041, 58_720_359, 3_588_806_011_781_223]);
    }

    #[test]
    fn streams_of_one_key_differ() {
        let mut a = Xoshiro::from_seed([7; 32]);
        let mut b = Xoshiro::from_seed([7; 32]);
        b.set_stream_id(1);
        assert_ne!(a.next_u64(), b.next_u64());
        let mut c = Xoshiro::from_seed([7; 32]);
        c.set_stream_id(1);
        b.set_stream_id(1);
        assert_eq!(b.next_u64(), c.next_u64());
    }
}
