//! Fast Gaussian numbers in f32: Box-Muller on eight lanes of xoshiro256++.
//!
//! The seeded noise of an f32 model is one Gaussian number per parameter per step, so the
//! generator's speed is the private step's speed on a small network. rand_distr's
//! `StandardNormal` (a ziggurat in f64, one number at a time) takes about 4 ns a number;
//! this takes well under one by drawing sixteen at a time:
//!
//! - eight xoshiro256++ generators side by side (lane j of a block started from the key,
//!   the block's stream number and j), one u64 from each per round;
//! - each u64 gives a radius from its low 32 bits, u = (floor(k / 2) + 1/2) 2^-31 in
//!   (0, 1] and r = sqrt(-2 ln u), and an angle from its high 32 bits, 2 pi a / 2^32;
//!   r cos and r sin are two independent N(0, 1) numbers (Box and Muller 1958);
//! - ln, sin and cos are Cephes's single-precision polynomials (a few ulp), in fused
//!   multiply-adds (`mul_add`), so the AVX2 and AVX-512 builds of the same code, chosen at
//!   run time, and the portable one give the same bits.
//!
//! The smallest u is 2^-32, so no number is larger in magnitude than sqrt(64 ln 2) =
//! 6.66: the normal distribution puts 2.7e-11 of its mass beyond that, far less than
//! the steps of a training run ever draw.

/// Generators side by side.
pub(crate) const LANES: usize = 8;
/// Numbers per round: two per lane.
pub(crate) const ROUND: usize = 2 * LANES;

/// SplitMix64's output function: spreads a 64-bit word over all 64 bits.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The xoshiro256++ state of generator `lane` of stream `id` of `key`: each word a
/// SplitMix64 hash of a key word, the stream and the word's place, so streams, lanes and
/// keys start far apart (and never all zero). Lane 0 is the scalar generator's stream.
pub(crate) fn lane_state(key: &[u64; 4], id: u64, lane: usize) -> [u64; 4] {
    let mut s = [0u64; 4];
    for (i, (w, &k)) in s.iter_mut().zip(key).enumerate() {
        let place = (4 * lane + i) as u64 + 1;
        *w = mix(k ^ mix(id.wrapping_add(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(place))));
    }
    if s == [0; 4] {
        s[0] = 1;
    }
    s
}

/// The eight generators of one block, word by word (state word w of lane j in s[w][j]), so
/// that a round is a handful of vector instructions.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    /// The generators of stream `id` of `key`.
    pub(crate) fn new(key: &[u64; 4], id: u64) -> Self {
        let mut s = [[0; LANES]; 4];
        for j in 0..LANES {
            for (w, l) in s.iter_mut().zip(lane_state(key, id, j)) {
                w[j] = l;
            }
        }
        Lanes { s }
    }
}

/// Adds std N(0, 1) numbers to `values`, sixteen a round (the last round's extra numbers
/// are dropped): round i puts lane j's r cos at 16 i + j and its r sin at 16 i + 8 + j.
/// Each number is rounded once as (r std) cos before it is added, so adding to a buffer of
/// -0.0 and then adding that buffer gives the same bits as adding here.
pub(crate) fn add_normal(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for (just checked).
            unsafe { add_avx512(lanes, std, values) };
            return;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { add_avx2(lanes, std, values) };
            return;
        }
    }
    add_portable(lanes, std, values);
}

/// [`add_avx2`] with AVX-512VL's one-instruction rotations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn add_avx512(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
    simd::add(lanes, std, values);
}

/// [`add_portable`]'s arithmetic in AVX2 and FMA intrinsics: lanes 0-3 and 4-7 of each
/// state word in two registers, the sixteen numbers of a round in two.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_avx2(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
    simd::add(lanes, std, values);
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Lanes, LANES, ROUND};
    use std::arch::x86_64::*;

    /// Rounds drawn together: their long chains (ln's nine dependent multiply-adds, the
    /// square root) interleaved, so the core always has independent work. One round at a
    /// time left it waiting on them: `cargo bench --bench noise` (one thread, Zen 4) drew
    /// the nielsen network's 23,860 numbers in 20 us a round at a time, 15-19 us eight
    /// together (four: 17.4, sixteen: 16.2; more spill registers).
    const TOGETHER: usize = 8;

    /// The body of the AVX2 and AVX-512 functions, inlined into each (so are the
    /// intrinsics, which need the callers' features).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub(super) unsafe fn add(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
        let load = |w: usize, h: usize| {
            // SAFETY: lanes.s[w] holds 8 u64s; 4 h + 4 <= 8; unaligned load.
            unsafe { _mm256_loadu_si256(lanes.s[w][4 * h..].as_ptr().cast()) }
        };
        let mut a = [load(0, 0), load(1, 0), load(2, 0), load(3, 0)];
        let mut b = [load(0, 1), load(1, 1), load(2, 1), load(3, 1)];
        let std = _mm256_set1_ps(std);
        let mut groups = values.chunks_exact_mut(TOGETHER * ROUND);
        for group in &mut groups {
            let (c, s) = rounds::<TOGETHER>(&mut a, &mut b, std);
            for k in 0..TOGETHER {
                // SAFETY: the group holds TOGETHER rounds of 16 f32s.
                unsafe { add_round(group.as_mut_ptr().add(k * ROUND), c[k], s[k]) };
            }
        }
        // The last rounds one at a time, the very last perhaps in part.
        for rest in groups.into_remainder().chunks_mut(ROUND) {
            let (c, s) = rounds::<1>(&mut a, &mut b, std);
            let mut z = [0f32; ROUND];
            // SAFETY: z holds 16 f32s.
            unsafe {
                _mm256_storeu_ps(z.as_mut_ptr(), c[0]);
                _mm256_storeu_ps(z.as_mut_ptr().add(LANES), s[0]);
            }
            for (v, z) in rest.iter_mut().zip(z) {
                *v += z;
            }
        }
        for w in 0..4 {
            // SAFETY: as for the loads.
            unsafe {
                _mm256_storeu_si256(lanes.s[w].as_mut_ptr().cast(), a[w]);
                _mm256_storeu_si256(lanes.s[w][4..].as_mut_ptr().cast(), b[w]);
            }
        }
    }

    /// Adds a round's cos half to p .. p + 8 and its sin half to p + 8 .. p + 16.
    ///
    /// # Safety
    /// p .. p + 16 are f32s the caller may write.
    #[inline(always)]
    unsafe fn add_round(p: *mut f32, c: __m256, s: __m256) {
        // SAFETY: the caller's promise; unaligned loads and stores.
        unsafe {
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), c));
            _mm256_storeu_ps(
                p.add(LANES),
                _mm256_add_ps(_mm256_loadu_ps(p.add(LANES)), s),
            );
        }
    }

    #[inline(always)]
    unsafe fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi64::<L>(x), _mm256_srli_epi64::<R>(x))
    }

    /// One xoshiro256++ step of four lanes.
    #[inline(always)]
    unsafe fn step(s: &mut [__m256i; 4]) -> __m256i {
        let out = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s[0], s[3])), s[0]);
        let t = _mm256_slli_epi64::<17>(s[1]);
        s[2] = _mm256_xor_si256(s[2], s[0]);
        s[3] = _mm256_xor_si256(s[3], s[1]);
        s[1] = _mm256_xor_si256(s[1], s[2]);
        s[0] = _mm256_xor_si256(s[0], s[3]);
        s[2] = _mm256_xor_si256(s[2], t);
        s[3] = rotl::<45, 19>(s[3]);
        out
    }

    /// R rounds of [`super::round`] (one after another from the generators): each
    /// round's cos and sin halves, lanes 0-7 in order. Every step below is taken for all R
    /// rounds before the next, so the rounds' chains interleave.
    #[inline(always)]
    unsafe fn rounds<const R: usize>(
        a: &mut [__m256i; 4],
        b: &mut [__m256i; 4],
        std: __m256,
    ) -> ([__m256; R], [__m256; R]) {
        let mut u = [_mm256_setzero_ps(); R];
        let mut angle = [_mm256_setzero_si256(); R];
        for k in 0..R {
            let (ra, rb) = (step(a), step(b));
            // 32-bit halves of lanes 0, 4, 1, 5, 2, 6, 3, 7, then put in order.
            let order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            let lo = _mm256_blend_epi32::<0b1010_1010>(ra, _mm256_slli_epi64::<32>(rb));
            let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(ra), rb);
            let radius = _mm256_permutevar8x32_epi32(lo, order);
            angle[k] = _mm256_permutevar8x32_epi32(hi, order);
            u[k] = _mm256_mul_ps(
                _mm256_add_ps(
                    _mm256_cvtepi32_ps(_mm256_srli_epi32::<1>(radius)),
                    _mm256_set1_ps(0.5),
                ),
                _mm256_set1_ps(1.0 / 2_147_483_648.0),
            );
        }
        let ln_u = ln(u);
        let (mut c, mut s) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
        for k in 0..R {
            let r = _mm256_mul_ps(
                _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0), ln_u[k])),
                std,
            );
            let (cos, sin) = cos_sin(angle[k]);
            c[k] = _mm256_mul_ps(r, cos);
            s[k] = _mm256_mul_ps(r, sin);
        }
        (c, s)
    }

    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: f32) -> __m256 {
        _mm256_fmadd_ps(a, b, _mm256_set1_ps(c))
    }

    /// [`super::ln`] of R vectors.
    #[inline(always)]
    unsafe fn ln<const R: usize>(u: [__m256; R]) -> [__m256; R] {
        let half = _mm256_set1_epi32(0x3f35_04f3);
        let (mut e, mut x) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
        for k in 0..R {
            let ix = _mm256_sub_epi32(_mm256_castps_si256(u[k]), half);
            e[k] = _mm256_cvtepi32_ps(_mm256_srai_epi32::<23>(ix));
            let m = _mm256_add_epi32(_mm256_and_si256(ix, _mm256_set1_epi32(0x007f_ffff)), half);
            x[k] = _mm256_sub_ps(_mm256_castsi256_ps(m), _mm256_set1_ps(1.0));
        }
        let mut p = [_mm256_set1_ps(7.037_683_6e-2); R];
        for c in super::LN_POLY {
            for k in 0..R {
                p[k] = fma(p[k], x[k], c);
            }
        }
        for k in 0..R {
            let z = _mm256_mul_ps(x[k], x[k]);
            let mut y = _mm256_mul_ps(_mm256_mul_ps(p[k], x[k]), z);
            y = _mm256_fmadd_ps(_mm256_set1_ps(-2.121_944_4e-4), e[k], y);
            y = _mm256_fmadd_ps(_mm256_set1_ps(-0.5), z, y);
            p[k] = _mm256_fmadd_ps(_mm256_set1_ps(0.693_359_4), e[k], _mm256_add_ps(x[k], y));
        }
        p
    }

    /// [`super::cos_sin`].
    #[inline(always)]
    unsafe fn cos_sin(a: __m256i) -> (__m256, __m256) {
        let k = _mm256_srli_epi32::<30>(_mm256_add_epi32(a, _mm256_set1_epi32(1 << 29)));
        let rest = _mm256_srai_epi32::<8>(_mm256_sub_epi32(a, _mm256_slli_epi32::<30>(k)));
        let x = _mm256_mul_ps(
            _mm256_cvtepi32_ps(rest),
            _mm256_set1_ps(std::f32::consts::FRAC_PI_2 / 4_194_304.0),
        );
        let z = _mm256_mul_ps(x, x);
        let ps = fma(
            fma(_mm256_set1_ps(-1.951_529_6e-4), z, 8.332_161e-3),
            z,
            -1.666_665_5e-1,
        );
        let s = _mm256_fmadd_ps(_mm256_mul_ps(x, z), ps, x);
        let pc = fma(
            fma(_mm256_set1_ps(2.443_315_7e-5), z, -1.388_731_6e-3),
            z,
            4.166_664_6e-2,
        );
        let c = _mm256_fmadd_ps(_mm256_mul_ps(z, z), pc, fma(_mm256_set1_ps(-0.5), z, 1.0));
        let one = _mm256_set1_epi32(1);
        let two = _mm256_set1_epi32(2);
        let odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(k, one), one));
        let (c, s) = (_mm256_blendv_ps(c, s, odd), _mm256_blendv_ps(s, c, odd));
        let flip_c = _mm256_slli_epi32::<30>(_mm256_and_si256(_mm256_add_epi32(k, one), two));
        let flip_s = _mm256_slli_epi32::<30>(_mm256_and_si256(k, two));
        (
            _mm256_xor_ps(c, _mm256_castsi256_ps(flip_c)),
            _mm256_xor_ps(s, _mm256_castsi256_ps(flip_s)),
        )
    }
}

/// The same code for any CPU (`mul_add` is a correctly rounded fma wherever it runs).
pub(crate) fn add_portable(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
    add_rounds(lanes, std, values);
}

#[inline(always)]
fn add_rounds(lanes: &mut Lanes, std: f32, values: &mut [f32]) {
    let mut s = lanes.s;
    let mut chunks = values.chunks_exact_mut(ROUND);
    for chunk in &mut chunks {
        let z = round(&mut s, std);
        for (v, z) in chunk.iter_mut().zip(z) {
            *v += z;
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let z = round(&mut s, std);
        for (v, z) in rest.iter_mut().zip(z) {
            *v += z;
        }
    }
    lanes.s = s;
}

/// One round: a u64 from each lane, sixteen numbers times `std`.
#[inline(always)]
fn round(s: &mut [[u64; LANES]; 4], std: f32) -> [f32; ROUND] {
    let mut bits = [0u64; LANES];
    for (j, out) in bits.iter_mut().enumerate() {
        let (s0, s1, s2, s3) = (s[0][j], s[1][j], s[2][j], s[3][j]);
        *out = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        s[1][j] = s1 ^ s2;
        s[0][j] = s0 ^ s3;
        s[2][j] = s2 ^ t;
        s[3][j] = s3.rotate_left(45);
    }
    let mut z = [0f32; ROUND];
    for j in 0..LANES {
        let (radius, angle) = (bits[j] as u32, (bits[j] >> 32) as u32);
        // u in (0, 1]: 31 bits to f32 (rounded to 24), plus a half so that u > 0.
        let u = ((radius >> 1) as i32 as f32 + 0.5) * (1.0 / 2_147_483_648.0);
        let r = (-2.0 * ln(u)).sqrt() * std;
        let (c, s) = cos_sin(angle);
        z[j] = r * c;
        z[LANES + j] = r * s;
    }
    z
}

/// Cephes logf's coefficients of ln(1 + x) after the first, from x^7 down to x^0 (times
/// x^3, plus -x^2 / 2 + x).
const LN_POLY: [f32; 8] = [
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// ln u for a normal u > 0 (Cephes's logf): u = m 2^e with m in [sqrt(1/2), sqrt(2)),
/// ln u = e ln 2 + ln m, ln(1 + x) by a polynomial.
#[inline(always)]
fn ln(u: f32) -> f32 {
    const SQRT_HALF: u32 = 0x3f35_04f3;
    let ix = u.to_bits().wrapping_sub(SQRT_HALF);
    let e = ((ix as i32) >> 23) as f32;
    let x = f32::from_bits((ix & 0x007f_ffff) + SQRT_HALF) - 1.0;
    let z = x * x;
    let mut p = 7.037_683_6e-2_f32;
    for c in LN_POLY {
        p = p.mul_add(x, c);
    }
    let mut y = p * x * z;
    y = (-2.121_944_4e-4_f32).mul_add(e, y);
    y = (-0.5f32).mul_add(z, y);
    0.693_359_4_f32.mul_add(e, x + y)
}

/// cos and sin of 2 pi a / 2^32: the nearest quarter turn k, the rest (24 bits) within
/// pi/4 of it by Cephes's polynomials, then turned by k quarters.
#[inline(always)]
fn cos_sin(a: u32) -> (f32, f32) {
    let k = a.wrapping_add(1 << 29) >> 30;
    let rest = (a.wrapping_sub(k << 30) as i32) >> 8;
    // rest / 2^22 quarter turns, |x| <= pi/4.
    let x = rest as f32 * (std::f32::consts::FRAC_PI_2 / 4_194_304.0);
    let z = x * x;
    let ps = (-1.951_529_6e-4_f32)
        .mul_add(z, 8.332_161e-3)
        .mul_add(z, -1.666_665_5e-1);
    let s = (x * z).mul_add(ps, x);
    let pc = 2.443_315_7e-5_f32
        .mul_add(z, -1.388_731_6e-3)
        .mul_add(z, 4.166_664_6e-2);
    let c = (z * z).mul_add(pc, (-0.5f32).mul_add(z, 1.0));
    // Turned by k quarters: (c, s), (-s, c), (-c, -s), (s, -c).
    let (c, s) = if k & 1 == 1 { (s, c) } else { (c, s) };
    let c = f32::from_bits(c.to_bits() ^ (((k + 1) & 2) << 30));
    let s = f32::from_bits(s.to_bits() ^ ((k & 2) << 30));
    (c, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard normal CDF, from libm's erfc.
    fn phi(z: f64) -> f64 {
        0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
    }

    fn draw(key: u64, id: u64, n: usize) -> Vec<f32> {
        let mut v = vec![0.0f32; n];
        add_normal(&mut Lanes::new(&[key, 2, 3, 4], id), 1.0, &mut v);
        v
    }

    #[test]
    fn every_build_gives_the_same_bits() {
        // 10,007 values: whole rounds and a partial one; std 0.3 on values already there.
        let start: Vec<f32> = (0..10_007).map(|i| (i as f32 * 0.1).sin()).collect();
        let mut lanes = Lanes::new(&[9, 8, 7, 6], 42);
        let mut reference = start.clone();
        add_portable(&mut lanes.clone(), 0.3, &mut reference);
        let mut fast = start.clone();
        add_normal(&mut lanes, 0.3, &mut fast);
        let same = reference
            .iter()
            .zip(&fast)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "the detected build differs from the portable one");
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let mut avx2 = start.clone();
            // SAFETY: the features were just detected.
            unsafe { add_avx2(&mut Lanes::new(&[9, 8, 7, 6], 42), 0.3, &mut avx2) };
            assert!(reference
                .iter()
                .zip(&avx2)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn adding_to_minus_zero_then_adding_gives_the_same_bits() {
        let start: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.7).cos() - 0.5).collect();
        let mut direct = start.clone();
        add_normal(&mut Lanes::new(&[1, 1, 1, 1], 5), 0.7, &mut direct);
        let mut buf = vec![-0.0f32; 1000];
        add_normal(&mut Lanes::new(&[1, 1, 1, 1], 5), 0.7, &mut buf);
        let two: Vec<f32> = start.iter().zip(&buf).map(|(a, b)| a + b).collect();
        assert!(direct
            .iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn the_polynomials_are_close_to_libm() {
        for i in 1..100_000u32 {
            let u = i as f32 / 100_000.0;
            let (got, want) = (ln(u) as f64, (u as f64).ln());
            assert!((got - want).abs() <= 2e-7 * want.abs().max(1.0), "ln {u}");
        }
        for i in 0..100_000u64 {
            let a = (i * 42_949) as u32;
            let (c, s) = cos_sin(a);
            // The angle keeps a's top 24 bits.
            let t = std::f64::consts::TAU * (a >> 8) as f64 / 16_777_216.0;
            assert!((c as f64 - t.cos()).abs() < 3e-7, "cos of {a}");
            assert!((s as f64 - t.sin()).abs() < 3e-7, "sin of {a}");
        }
    }

    #[test]
    fn a_million_numbers_are_standard_normal() {
        let n = 1 << 20;
        let mut v = draw(11, 3, n);
        let mean = v.iter().map(|&z| z as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&z| (z as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors 1e-3 and 1.4e-3.
        assert!(mean.abs() < 5e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 7e-3, "variance {var}");
        // Kolmogorov-Smirnov: D sqrt(n) above 1.95 has probability 0.001.
        v.sort_by(f32::total_cmp);
        let d = v
            .iter()
            .enumerate()
            .map(|(i, &z)| {
                let f = phi(z as f64);
                (f - i as f64 / n as f64).max((i + 1) as f64 / n as f64 - f)
            })
            .fold(0.0, f64::max);
        assert!(d * (n as f64).sqrt() < 1.95, "KS statistic {d}");
        // The tails: P(|z| > 3) = 0.0027, P(|z| > 4) = 6.3e-5; nothing beyond 6.66.
        let beyond = |t: f32| v.iter().filter(|z| z.abs() > t).count() as f64;
        let (p3, p4) = (2.0 * phi(-3.0) * n as f64, 2.0 * phi(-4.0) * n as f64);
        assert!(
            (beyond(3.0) - p3).abs() < 4.0 * p3.sqrt(),
            "{} beyond 3",
            beyond(3.0)
        );
        assert!(
            (beyond(4.0) - p4).abs() < 4.0 * p4.sqrt() + 1.0,
            "{} beyond 4",
            beyond(4.0)
        );
        assert!(v.iter().all(|z| z.abs() <= 6.661));
    }

    #[test]
    fn the_extremes_of_the_bits_stay_finite() {
        // k = 0 gives the smallest u, 2^-32: r = sqrt(64 ln 2) = 6.66 (times cos 0 = 1).
        let u = 0.5f32 * (1.0 / 2_147_483_648.0);
        let r = (-2.0 * ln(u)).sqrt();
        assert!((r as f64 - (64.0 * std::f64::consts::LN_2).sqrt()).abs() < 1e-5);
        // k = 2^32 - 1 gives u = 1 and r = 0.
        let u = ((u32::MAX >> 1) as i32 as f32 + 0.5) * (1.0 / 2_147_483_648.0);
        assert_eq!((u, ln(u)), (1.0, 0.0));
    }

    #[test]
    fn lanes_and_streams_differ() {
        let a = draw(1, 0, 64);
        assert_ne!(a, draw(1, 1, 64));
        assert_ne!(a, draw(2, 0, 64));
        assert_eq!(a, draw(1, 0, 64));
        // The eight lanes of a round are not copies of one another.
        assert!((1..LANES).all(|j| a[j] != a[0]));
    }
}
