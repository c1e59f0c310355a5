//! `y = x · Wᵀ` for one f32 row `x` (`k` values) and a row-major weight
//! `W` (`n × k`, the layout of a `Linear`'s weight): decoding's product.
//!
//! Why a kernel of our own: at one row the product reads every weight once
//! and does two flops per weight, so it runs at the speed memory streams
//! the weights. candle's general product (the `gemm` crate) packs and
//! tiles for matrix-matrix work and streams about 12 GB/s on one row of a
//! 2048 × 5632 weight on a 2-core Intel Xeon; PyTorch (MKL) about 25 GB/s;
//! this kernel 28 GB/s (15 on one thread).
//!
//! How: each thread takes one contiguous run of output rows, so its weights
//! come from one place in memory, and goes through it four weight rows at
//! a time: four accumulators, the `x` chunk loaded once for all four.
//! The vector width is the widest this CPU has (AVX-512, else AVX2 + FMA),
//! detected when first asked; on a CPU with neither, or with
//! `IPFS_ACCELERATE_CPU_KERNELS=candle`, [`linear_one_row`] declines and the
//! caller uses candle's product. Any other value of that variable but
//! `ours` is an error, not ignored.
//!
//! Sums are reassociated (per lane, then across lanes), so results differ
//! from a sequential sum in the last bits, as any vectorised product does.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Below this many weights per thread, handing work to a second thread
/// costs more than it saves (about 256 KiB of f32: a few microseconds of
/// streaming against a rayon hand-off of a few microseconds).
const MIN_WEIGHTS_PER_THREAD: usize = 64 * 1024;

/// The environment variable that turns our kernels off (`candle`) or
/// leaves them on (`ours`, the default): for comparing against candle's
/// own, and as a way out should a kernel misbehave on some CPU.
pub const KERNELS_ENV: &str = "IPFS_ACCELERATE_CPU_KERNELS";

/// [`KERNELS_ENV`] holds something other than `ours` or `candle`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{KERNELS_ENV}={value:?} is neither \"ours\" nor \"candle\"")]
pub struct KernelsSettingError {
    pub value: String,
}

/// Which vector instructions the matrix-vector product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatVecKernel {
    /// 16 f32 lanes (`avx512f`).
    Avx512,
    /// 8 f32 lanes (`avx2` and `fma`).
    Avx2Fma,
}

impl MatVecKernel {
    /// The best kernel this CPU runs, detected once; `None` on a CPU with
    /// neither instruction set (or another architecture), or when
    /// [`KERNELS_ENV`] is `candle`; an error when it holds anything else
    /// but `ours`.
    pub fn detect() -> Result<Option<Self>, KernelsSettingError> {
        static DETECTED: OnceLock<Result<Option<MatVecKernel>, KernelsSettingError>> =
            OnceLock::new();
        DETECTED
            .get_or_init(|| match std::env::var(KERNELS_ENV) {
                Ok(v) if v.eq_ignore_ascii_case("candle") => Ok(None),
                Ok(v) if !v.eq_ignore_ascii_case("ours") => Err(KernelsSettingError { value: v }),
                _ => Ok(Self::supported().into_iter().next()),
            })
            .clone()
    }

    /// Every kernel this CPU can run, best first (tests run each).
    pub fn supported() -> Vec<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut kernels = Vec::new();
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(Self::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(Self::Avx2Fma);
            }
            kernels
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Vec::new()
        }
    }

    /// How `status` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2Fma => "AVX2+FMA",
        }
    }

    /// `out[j] = Σᵢ w[j·k + i] · x[i]` on one thread, `k = x.len()`.
    /// The lengths are checked by [`matvec`], the only caller.
    fn rows(self, x: &[f32], w: &[f32], out: &mut [f32]) {
        debug_assert_eq!(w.len(), out.len() * x.len());
        match self {
            // SAFETY: `Avx512` and `Avx2Fma` are only ever made by
            // `supported`, after the CPU said it has those features (or
            // by a caller that cannot construct them otherwise: the enum
            // is public, so `matvec` checks again before running one).
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Self::Avx512 => unsafe { x86::rows_avx512(x, w, out) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Self::Avx2Fma => unsafe { x86::rows_avx2(x, w, out) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no x86 kernel is supported on this architecture"),
        }
    }
}

/// What [`matvec`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum MatVecError {
    #[error("a {n} × {k} weight needs {} values, the slice has {got}", n * k)]
    WeightLength { n: usize, k: usize, got: usize },
    #[error("the {0} kernel does not run on this CPU")]
    Unsupported(&'static str),
}

/// `out = x · Wᵀ` with `W` row-major `out.len() × x.len()`, on rayon's
/// pool (the one candle's CPU kernels use).
pub fn matvec(
    kernel: MatVecKernel,
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
) -> Result<(), MatVecError> {
    let (n, k) = (out.len(), x.len());
    if w.len() != n * k {
        return Err(MatVecError::WeightLength { n, k, got: w.len() });
    }
    // The enum is public, so a caller could name a kernel this CPU lacks:
    // running it would be an illegal instruction, not an error.
    if !MatVecKernel::supported().contains(&kernel) {
        return Err(MatVecError::Unsupported(kernel.name()));
    }
    if k == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let threads = rayon::current_num_threads().max(1);
    // Whole groups of four rows per thread, one contiguous run each.
    let rows_per_thread = n
        .div_ceil(threads)
        .max(MIN_WEIGHTS_PER_THREAD.div_ceil(k))
        .next_multiple_of(4);
    if rows_per_thread >= n {
        kernel.rows(x, w, out);
    } else {
        out.par_chunks_mut(rows_per_thread)
            .zip(w.par_chunks(rows_per_thread * k))
            .for_each(|(out, w)| kernel.rows(x, w, out));
    }
    Ok(())
}

/// `x · weightᵀ` through [`matvec`] when it applies: x on the CPU, f32,
/// contiguous, one row (any leading dims of size 1), weight `n × k` f32 and
/// contiguous, and a kernel this CPU runs. `Ok(None)` when it does not
/// apply, and the caller uses candle's product; an error when
/// [`KERNELS_ENV`] holds a value it does not know.
pub fn linear_one_row(x: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let Some(kernel) = MatVecKernel::detect().map_err(candle_core::Error::wrap)? else {
        return Ok(None);
    };
    let applies = matches!(x.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && weight.rank() == 2
        && x.is_contiguous()
        && weight.is_contiguous();
    if !applies {
        return Ok(None);
    }
    let (_, k) = weight.dims2()?;
    if x.dims().last() != Some(&k) || x.elem_count() != k {
        return Ok(None);
    }
    x.apply_op2_no_bwd(weight, &OneRowMatVec { kernel })
        .map(Some)
}

/// [`matvec`] as a candle op, so it reads the tensors' storage in place.
#[derive(Debug)]
struct OneRowMatVec {
    kernel: MatVecKernel,
}

impl CustomOp2 for OneRowMatVec {
    fn name(&self) -> &'static str {
        "one-row-matvec"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (x, w) else {
            candle_core::bail!("one-row-matvec takes f32 tensors");
        };
        let (Some((x_start, x_end)), Some((w_start, w_end))) =
            (x_layout.contiguous_offsets(), w_layout.contiguous_offsets())
        else {
            candle_core::bail!("one-row-matvec takes contiguous tensors");
        };
        let (n, _) = w_layout.shape().dims2()?;
        let mut out = vec![0f32; n];
        matvec(
            self.kernel,
            &x[x_start..x_end],
            &w[w_start..w_end],
            &mut out,
        )
        .map_err(candle_core::Error::wrap)?;
        let mut dims = x_layout.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! The kernels. Callers guarantee the CPU features (see
    //! `MatVecKernel::rows`) and `w.len() == out.len() * x.len()`; every
    //! load below stays inside `x` and `w` under that (the tail of a row
    //! is a masked load, or scalar).

    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_avx512(x: &[f32], w: &[f32], out: &mut [f32]) {
        let k = x.len();
        let full = k / 16 * 16;
        // Lanes of the last, partial chunk; masked-off lanes neither load
        // nor fault.
        let tail: __mmask16 = ((1u32 << (k - full)) - 1) as __mmask16;
        let xp = x.as_ptr();
        let n = out.len();
        let mut r = 0;
        while r + 4 <= n {
            let w0 = w.as_ptr().add(r * k);
            let (w1, w2, w3) = (w0.add(k), w0.add(2 * k), w0.add(3 * k));
            let (mut a0, mut a1, mut a2, mut a3) = (
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
            );
            let mut i = 0;
            while i < full {
                let xv = _mm512_loadu_ps(xp.add(i));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0.add(i)), xv, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1.add(i)), xv, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2.add(i)), xv, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3.add(i)), xv, a3);
                i += 16;
            }
            if tail != 0 {
                let xv = _mm512_maskz_loadu_ps(tail, xp.add(full));
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0.add(full)), xv, a0);
                a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w1.add(full)), xv, a1);
                a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w2.add(full)), xv, a2);
                a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w3.add(full)), xv, a3);
            }
            out[r] = _mm512_reduce_add_ps(a0);
            out[r + 1] = _mm512_reduce_add_ps(a1);
            out[r + 2] = _mm512_reduce_add_ps(a2);
            out[r + 3] = _mm512_reduce_add_ps(a3);
            r += 4;
        }
        while r < n {
            let w0 = w.as_ptr().add(r * k);
            let mut a0 = _mm512_setzero_ps();
            let mut i = 0;
            while i < full {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0.add(i)), _mm512_loadu_ps(xp.add(i)), a0);
                i += 16;
            }
            if tail != 0 {
                let xv = _mm512_maskz_loadu_ps(tail, xp.add(full));
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0.add(full)), xv, a0);
            }
            out[r] = _mm512_reduce_add_ps(a0);
            r += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_avx2(x: &[f32], w: &[f32], out: &mut [f32]) {
        let k = x.len();
        let full = k / 8 * 8;
        let xp = x.as_ptr();
        let n = out.len();
        let tail_dot = |row: &[f32]| -> f32 {
            row[full..]
                .iter()
                .zip(&x[full..])
                .map(|(w, x)| w * x)
                .sum::<f32>()
        };
        let mut r = 0;
        while r + 4 <= n {
            let w0 = w.as_ptr().add(r * k);
            let (w1, w2, w3) = (w0.add(k), w0.add(2 * k), w0.add(3 * k));
            let (mut a0, mut a1, mut a2, mut a3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            let mut i = 0;
            while i < full {
                let xv = _mm256_loadu_ps(xp.add(i));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0.add(i)), xv, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1.add(i)), xv, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2.add(i)), xv, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3.add(i)), xv, a3);
                i += 8;
            }
            for (j, acc) in [a0, a1, a2, a3].into_iter().enumerate() {
                let row = &w[(r + j) * k..(r + j + 1) * k];
                out[r + j] = sum256(acc) + tail_dot(row);
            }
            r += 4;
        }
        while r < n {
            let w0 = w.as_ptr().add(r * k);
            let mut a0 = _mm256_setzero_ps();
            let mut i = 0;
            while i < full {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0.add(i)), _mm256_loadu_ps(xp.add(i)), a0);
                i += 8;
            }
            out[r] = sum256(a0) + tail_dot(&w[r * k..(r + 1) * k]);
            r += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) without a random-number crate.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn reference(x: &[f32], w: &[f32], n: usize) -> Vec<f64> {
        let k = x.len();
        (0..n)
            .map(|j| {
                (0..k)
                    .map(|i| f64::from(w[j * k + i]) * f64::from(x[i]))
                    .sum()
            })
            .collect()
    }

    /// Every kernel this CPU has, on shapes with and without tails (k not
    /// a multiple of the width, n not a multiple of four), one thread and
    /// several.
    #[test]
    fn every_supported_kernel_matches_a_double_precision_sum() {
        let kernels = MatVecKernel::supported();
        if kernels.is_empty() {
            // Not a skip of real work: on this CPU nothing here would run,
            // and `linear_one_row` declines (tested below).
            assert!(matches!(MatVecKernel::detect(), Ok(None)));
            return;
        }
        for kernel in kernels {
            for (n, k) in [
                (1, 1),
                (3, 7),
                (4, 16),
                (5, 17),
                (13, 100),
                (768, 768),
                (2307, 513),
            ] {
                let x = values(k, 1);
                let w = values(n * k, 2);
                let mut out = vec![f32::NAN; n];
                matvec(kernel, &x, &w, &mut out).expect("lengths agree");
                for (j, (got, want)) in out.iter().zip(reference(&x, &w, n)).enumerate() {
                    let tolerance = 1e-5 * (k as f64).sqrt().max(1.0);
                    assert!(
                        (f64::from(*got) - want).abs() <= tolerance,
                        "{kernel:?} n={n} k={k} row {j}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_weight_of_the_wrong_length_is_an_error() {
        let Some(kernel) = MatVecKernel::supported().into_iter().next() else {
            return;
        };
        let mut out = vec![0.0; 3];
        let err = matvec(kernel, &[1.0; 4], &[1.0; 11], &mut out).expect_err("11 != 12");
        assert!(err.to_string().contains("needs 12 values"), "{err}");
    }

    #[test]
    fn linear_one_row_equals_candles_product_and_declines_other_shapes() {
        let dev = Device::Cpu;
        let (n, k) = (300, 130);
        let w = Tensor::from_vec(values(n * k, 3), (n, k), &dev).expect("shape");
        let x = Tensor::from_vec(values(k, 4), (1, 1, k), &dev).expect("shape");
        let candle = x
            .broadcast_matmul(&w.t().expect("2-d"))
            .expect("matmul")
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("f32");
        match linear_one_row(&x, &w).expect("runs") {
            Some(ours) => {
                assert_eq!(ours.dims(), &[1, 1, n]);
                let ours = ours
                    .flatten_all()
                    .expect("flat")
                    .to_vec1::<f32>()
                    .expect("f32");
                for (a, b) in ours.iter().zip(&candle) {
                    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
                }
            }
            None => assert!(matches!(MatVecKernel::detect(), Ok(None))),
        }
        // Two rows, a transposed weight, f64: candle's business.
        let two = Tensor::from_vec(values(2 * k, 5), (2, k), &dev).expect("shape");
        assert!(linear_one_row(&two, &w).expect("declines").is_none());
        let wt = Tensor::from_vec(values(n * k, 6), (k, n), &dev).expect("shape");
        let wt = wt.t().expect("2-d");
        assert!(linear_one_row(&x, &wt).expect("declines").is_none());
        let x64 = x.to_dtype(DType::F64).expect("f64");
        assert!(linear_one_row(&x64, &w).expect("declines").is_none());
    }
}
