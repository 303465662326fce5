//! Seeded toy data sets in the plane (2 features, 2 classes), for quick experiments and
//! tests. Each is a pure function of its size and seed (ChaCha8, portable).

use super::Dataset;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::f64::consts::PI;

fn build(points: Vec<(f64, f64, u32)>) -> Dataset {
    let mut inputs = Vec::with_capacity(points.len() * 2);
    let mut labels = Vec::with_capacity(points.len());
    for (x, y, l) in points {
        inputs.push(x as f32);
        inputs.push(y as f32);
        labels.push(l);
    }
    let mut d = Dataset::new(inputs, labels, 2).expect("2 features per point");
    d.classes = 2; // even if a tiny sample happens to hold one class only
    d
}

/// XOR: `n` points uniform in [-1, 1]^2; class 1 where x and y have opposite signs.
/// No straight line separates the classes: the smallest task that needs a hidden layer.
///
/// ```
/// let d = backprop::data::synthetic::xor(100, 1);
/// assert_eq!((d.len(), d.features, d.classes), (100, 2, 2));
/// for i in 0..d.len() {
///     let (x, y) = (d.input(i)[0], d.input(i)[1]);
///     assert_eq!(d.labels[i], (x * y < 0.0) as u32);
/// }
/// ```
pub fn xor(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    build(
        (0..n)
            .map(|_| {
                let x: f64 = rng.gen_range(-1.0..1.0);
                let y: f64 = rng.gen_range(-1.0..1.0);
                (x, y, (x * y < 0.0) as u32)
            })
            .collect(),
    )
}

/// Two interleaved spirals of `n` points in all (class i = point i mod 2), each turning
/// 1.75 times around the origin, radius up to 1, with Gaussian noise of 0.02.
///
/// ```
/// let d = backprop::data::synthetic::spirals(200, 1);
/// assert_eq!(d.class_counts(), vec![100, 100]);
/// ```
pub fn spirals(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.02).expect("positive std");
    build(
        (0..n)
            .map(|i| {
                let class = (i % 2) as u32;
                let t: f64 = rng.gen_range(0.0..1.0);
                let r = 0.05 + 0.95 * t;
                let angle = 1.75 * 2.0 * PI * t + PI * class as f64;
                (
                    r * angle.cos() + noise.sample(&mut rng),
                    r * angle.sin() + noise.sample(&mut rng),
                    class,
                )
            })
            .collect(),
    )
}

/// Two interleaving half circles, as scikit-learn's `make_moons(noise=0.1)`: class 0 on
/// the upper arc (cos t, sin t), class 1 on the lower (1 - cos t, 0.5 - sin t), t uniform
/// in [0, pi]; `n` points alternating between the classes.
///
/// ```
/// let d = backprop::data::synthetic::moons(10, 3);
/// assert_eq!(d.class_counts(), vec![5, 5]);
/// assert_eq!(d, backprop::data::synthetic::moons(10, 3));
/// ```
pub fn moons(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.1).expect("positive std");
    build(
        (0..n)
            .map(|i| {
                let class = (i % 2) as u32;
                let t: f64 = rng.gen_range(0.0..PI);
                let (x, y) = if class == 0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                (
                    x + noise.sample(&mut rng),
                    y + noise.sample(&mut rng),
                    class,
                )
            })
            .collect(),
    )
}

/// Two concentric circles, as scikit-learn's `make_circles(factor=0.5, noise=0.05)`: class 0
/// on the circle of radius 1, class 1 on the circle of radius 0.5, angles uniform, Gaussian
/// noise of 0.05; `n` points alternating between the classes. No straight line separates
/// them; a ring of hidden neurons does.
///
/// ```
/// let d = backprop::data::synthetic::circles(200, 1);
/// assert_eq!(d.class_counts(), vec![100, 100]);
/// for i in 0..d.len() {
///     let r = (d.input(i)[0].powi(2) + d.input(i)[1].powi(2)).sqrt();
///     // 0.25 is five standard deviations of the noise away from each circle.
///     assert!((r - [1.0, 0.5][d.labels[i] as usize]).abs() < 0.25);
/// }
/// ```
pub fn circles(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.05).expect("positive std");
    build(
        (0..n)
            .map(|i| {
                let class = (i % 2) as u32;
                let r = if class == 0 { 1.0 } else { 0.5 };
                let t: f64 = rng.gen_range(0.0..2.0 * PI);
                (
                    r * t.cos() + noise.sample(&mut rng),
                    r * t.sin() + noise.sample(&mut rng),
                    class,
                )
            })
            .collect(),
    )
}

/// Two Gaussian blobs of standard deviation 0.35, class 0 around (-0.5, -0.5) and class 1
/// around (0.5, 0.5); `n` points alternating between the classes. They overlap a little: a
/// straight line separates all but a few percent.
///
/// ```
/// let d = backprop::data::synthetic::blobs(1000, 2);
/// assert_eq!(d.class_counts(), vec![500, 500]);
/// // The line x + y = 0 separates the blobs' centres, 0.71 / 0.35 = 2 standard deviations
/// // each side: about 2% of the points fall on the wrong side.
/// let wrong = (0..d.len()).filter(|&i| {
///     let s = d.input(i)[0] + d.input(i)[1];
///     (s > 0.0) != (d.labels[i] == 1)
/// }).count();
/// assert!(wrong < 50, "{wrong}");
/// ```
pub fn blobs(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.35).expect("positive std");
    build(
        (0..n)
            .map(|i| {
                let class = (i % 2) as u32;
                let c = if class == 0 { -0.5 } else { 0.5 };
                (
                    c + noise.sample(&mut rng),
                    c + noise.sample(&mut rng),
                    class,
                )
            })
            .collect(),
    )
}

/// Adds Gaussian noise of standard deviation `std` to every input of `d`, seeded: a set's
/// points made fuzzier (0 leaves them as they are).
///
/// ```
/// let mut d = backprop::data::synthetic::xor(100, 1);
/// let clean = d.clone();
/// backprop::data::synthetic::add_noise(&mut d, 0.0, 7);
/// assert_eq!(d, clean);
/// backprop::data::synthetic::add_noise(&mut d, 0.1, 7);
/// let moved = d.inputs.iter().zip(&clean.inputs).filter(|(a, b)| a != b).count();
/// assert_eq!(moved, 200);
/// assert_eq!(d.labels, clean.labels);
/// ```
pub fn add_noise(d: &mut Dataset, std: f64, seed: u64) {
    let Ok(noise) = Normal::new(0.0, std) else {
        return;
    };
    if std == 0.0 {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for x in &mut d.inputs {
        *x = (*x as f64 + noise.sample(&mut rng)) as f32;
    }
}
