//! `y = x · Wᵀ` for a few f32 rows `x` (`m × k`, `m` up to [`MAX_ROWS`])
//! and a row-major weight `W` (`n × k`, the layout of a `Linear`'s
//! weight): decoding's product (one row per step), and short prompts'.
//!
//! Why a kernel of our own: with few rows the product reads every weight
//! once and does `2m` flops per weight, so it runs at the speed memory
//! streams the weights. candle's general product (the `gemm` crate) packs
//! and tiles for matrix-matrix work and streams 9.5–15 GB/s at 1–16 rows
//! of a 2048 × 5632 weight on a 2-core Intel Xeon; PyTorch (MKL) about
//! 25 GB/s at one row; this kernel 28 GB/s (15 on one thread).
//!
//! How: each thread takes one contiguous run of weight rows, so its weights
//! come from one place in memory, and goes through it four weight rows at
//! a time; for each such block it runs every `x` row against it (up to
//! four `x` rows per pass, one accumulator per pair), so the block is read
//! from memory once and from cache for the other passes.
//! The vector width is the widest this CPU has (AVX-512, else AVX2 + FMA),
//! detected when first asked; on a CPU with neither, or with
//! `IPFS_ACCELERATE_CPU_KERNELS=candle`, [`linear_few_rows`] declines and
//! the caller uses candle's product. Any other value of that variable but
//! `ours` is an error, not ignored.
//!
//! Sums are reassociated (per lane, then across lanes), so results differ
//! from a sequential sum in the last bits, as any vectorised product does.

use std::sync::OnceLock;

use crate::setting::{ours_wanted, KernelsSettingError};

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The most rows of `x` the kernel takes. Measured up to here it is ahead
/// of candle's product (at 16 rows 13.0 against 9.6 GB/s of weights), but
/// its lead shrinks with every row, and longer inputs (prompts, encoder
/// sequences) are what candle's blocked matrix-matrix kernel is built for.
pub const MAX_ROWS: usize = 16;

/// Below this many weights per thread, handing work to a second thread
/// costs more than it saves (about 256 KiB of f32: a few microseconds of
/// streaming against a rayon hand-off of a few microseconds).
const MIN_WEIGHTS_PER_THREAD: usize = 64 * 1024;

/// The environment variable that turns our kernels off (`candle`) or
/// leaves them on (`ours`, the default): for comparing against candle's
/// own, and as a way out should a kernel misbehave on some CPU.
pub const KERNELS_ENV: &str = "IPFS_ACCELERATE_CPU_KERNELS";

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
            .get_or_init(|| {
                Ok(ours_wanted(KERNELS_ENV, "candle")?
                    .then(|| Self::supported().into_iter().next())
                    .flatten())
            })
            .clone()
    }

    /// Every kernel this CPU can run, best first (tests run each).
    pub fn supported() -> Vec<Self> {
        [Self::Avx512, Self::Avx2Fma]
            .into_iter()
            .filter(|kernel| kernel.runs_here())
            .collect()
    }

    /// Whether this CPU has the kernel's instructions (the standard
    /// library caches the answer, so this is cheap enough per product).
    fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Self::Avx2Fma => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// How `status` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2Fma => "AVX2+FMA",
        }
    }

    /// `out_t[j·m + r] = Σᵢ w[j·k + i] · x[r·k + i]` on one thread: the
    /// product transposed (weight row major), so that each thread's share
    /// of it is contiguous. The lengths are checked by [`matvec`], the only
    /// caller.
    fn rows(self, x: &[f32], m: usize, w: &[f32], out_t: &mut [f32]) {
        debug_assert_eq!(w.len() * m, out_t.len() * (x.len() / m));
        match self {
            // SAFETY: `Avx512` and `Avx2Fma` are only ever made by
            // `supported`, after the CPU said it has those features (or
            // by a caller that cannot construct them otherwise: the enum
            // is public, so `matvec` checks again before running one).
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Self::Avx512 => unsafe { x86::rows_avx512(x, m, w, out_t) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Self::Avx2Fma => unsafe { x86::rows_avx2(x, m, w, out_t) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no x86 kernel is supported on this architecture"),
        }
    }
}

/// What [`matvec`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum MatVecError {
    #[error("{m} rows of {k} values need {} values, the slice has {got}", m * k)]
    InputLength { m: usize, k: usize, got: usize },
    #[error("a {n} × {k} weight needs {} values, the slice has {got}", n * k)]
    WeightLength { n: usize, k: usize, got: usize },
    #[error("{m} × {n} outputs need {} values, the slice has {got}", m * n)]
    OutputLength { m: usize, n: usize, got: usize },
    #[error("the kernel takes 1 to {MAX_ROWS} rows, not {0}")]
    Rows(usize),
    #[error("the {0} kernel does not run on this CPU")]
    Unsupported(&'static str),
}

/// `out = x · Wᵀ`: `x` row-major `m × k`, `W` row-major `n × k`, `out`
/// row-major `m × n`; on rayon's pool (the one candle's CPU kernels use).
pub fn matvec(
    kernel: MatVecKernel,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    out: &mut [f32],
) -> Result<(), MatVecError> {
    if m == 0 || m > MAX_ROWS {
        return Err(MatVecError::Rows(m));
    }
    if x.len() != m * k {
        return Err(MatVecError::InputLength { m, k, got: x.len() });
    }
    let n = out.len() / m;
    if out.len() != m * n {
        return Err(MatVecError::OutputLength {
            m,
            n,
            got: out.len(),
        });
    }
    if w.len() != n * k {
        return Err(MatVecError::WeightLength { n, k, got: w.len() });
    }
    // The enum is public, so a caller could name a kernel this CPU lacks:
    // running it would be an illegal instruction, not an error.
    if !kernel.runs_here() {
        return Err(MatVecError::Unsupported(kernel.name()));
    }
    if k == 0 {
        out.fill(0.0);
        return Ok(());
    }
    // One row: the transposed product is the product.
    let mut transposed = Vec::new();
    let out_t: &mut [f32] = if m == 1 {
        out
    } else {
        transposed.resize(n * m, 0.0);
        &mut transposed
    };
    let threads = rayon::current_num_threads().max(1);
    // Whole groups of four rows per thread, one contiguous run each.
    let rows_per_thread = n
        .div_ceil(threads)
        .max(MIN_WEIGHTS_PER_THREAD.div_ceil(k))
        .next_multiple_of(4);
    if rows_per_thread >= n {
        kernel.rows(x, m, w, out_t);
    } else {
        out_t
            .par_chunks_mut(rows_per_thread * m)
            .zip(w.par_chunks(rows_per_thread * k))
            .for_each(|(out_t, w)| kernel.rows(x, m, w, out_t));
    }
    if m > 1 {
        for (j, column) in transposed.chunks_exact(m).enumerate() {
            for (r, value) in column.iter().enumerate() {
                out[r * n + j] = *value;
            }
        }
    }
    Ok(())
}

/// `x · weightᵀ` through [`matvec`] when it applies: x on the CPU, f32,
/// contiguous, 1 to [`MAX_ROWS`] rows (however its leading dims split
/// them), weight `n × k` f32 and contiguous, and a kernel this CPU runs.
/// `Ok(None)` when it does not apply, and the caller uses candle's
/// product; an error when [`KERNELS_ENV`] holds a value it does not know.
pub fn linear_few_rows(x: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
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
    if k == 0 || x.dims().last() != Some(&k) || !(1..=MAX_ROWS).contains(&(x.elem_count() / k)) {
        return Ok(None);
    }
    x.apply_op2_no_bwd(weight, &FewRowsProduct { kernel })
        .map(Some)
}

/// [`matvec`] as a candle op, so it reads the tensors' storage in place.
#[derive(Debug)]
struct FewRowsProduct {
    kernel: MatVecKernel,
}

impl CustomOp2 for FewRowsProduct {
    fn name(&self) -> &'static str {
        "few-rows-product"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (x, w) else {
            candle_core::bail!("few-rows-product takes f32 tensors");
        };
        let (Some((x_start, x_end)), Some((w_start, w_end))) =
            (x_layout.contiguous_offsets(), w_layout.contiguous_offsets())
        else {
            candle_core::bail!("few-rows-product takes contiguous tensors");
        };
        let (n, k) = w_layout.shape().dims2()?;
        let m = x_layout.shape().elem_count() / k.max(1);
        let mut out = vec![0f32; m * n];
        matvec(
            self.kernel,
            &x[x_start..x_end],
            m,
            k,
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
    //! `MatVecKernel::rows`), `x.len() == m·k` and `out_t.len() == m·n`
    //! with `w.len() == n·k`; every load below stays inside `x` and `w`
    //! under that (the tail of a row is a masked load, or scalar).
    //!
    //! A block is `Q` rows of `x` against `P` rows of `w`, `Q × P`
    //! accumulators: at most 4 × 4 with AVX-512's 32 registers, 2 × 4 with
    //! AVX2's 16.

    use std::arch::x86_64::*;

    /// Runs every block of `P` weight rows against every block of `x`
    /// rows, `Q` at most `MAX_Q` at a time. Written once for both widths;
    /// `$block` is the width's block function.
    macro_rules! all_blocks {
        ($block:ident, $max_q:literal, $x:ident, $m:ident, $w:ident, $out_t:ident) => {{
            let k = $x.len() / $m;
            let n = $w.len() / k;
            let mut j = 0;
            while j < n {
                let p = (n - j).min(4);
                let mut r = 0;
                while r < $m {
                    let q = ($m - r).min($max_q);
                    match (q, p) {
                        (4, 4) => $block::<4, 4>($x, k, r, $w, j, $out_t, $m),
                        (3, 4) => $block::<3, 4>($x, k, r, $w, j, $out_t, $m),
                        (2, 4) => $block::<2, 4>($x, k, r, $w, j, $out_t, $m),
                        (1, 4) => $block::<1, 4>($x, k, r, $w, j, $out_t, $m),
                        // The last 1–3 weight rows, one at a time.
                        (q, p) => {
                            for jj in j..j + p {
                                match q {
                                    4 => $block::<4, 1>($x, k, r, $w, jj, $out_t, $m),
                                    3 => $block::<3, 1>($x, k, r, $w, jj, $out_t, $m),
                                    2 => $block::<2, 1>($x, k, r, $w, jj, $out_t, $m),
                                    _ => $block::<1, 1>($x, k, r, $w, jj, $out_t, $m),
                                }
                            }
                        }
                    }
                    r += q;
                }
                j += p;
            }
        }};
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_avx512(x: &[f32], m: usize, w: &[f32], out_t: &mut [f32]) {
        all_blocks!(block_avx512, 4, x, m, w, out_t)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_avx2(x: &[f32], m: usize, w: &[f32], out_t: &mut [f32]) {
        all_blocks!(block_avx2, 2, x, m, w, out_t)
    }

    /// Where rows `first..first + N` of a row-major matrix with rows of `k`
    /// values start (both widths' blocks walk rows through these).
    fn row_starts<const N: usize>(data: &[f32], first: usize, k: usize) -> [*const f32; N] {
        std::array::from_fn(|row| data[(first + row) * k..].as_ptr())
    }

    /// `x` rows `r..r+Q` against `w` rows `j..j+P`, 16 lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block_avx512<const Q: usize, const P: usize>(
        x: &[f32],
        k: usize,
        r: usize,
        w: &[f32],
        j: usize,
        out_t: &mut [f32],
        m: usize,
    ) {
        let full = k / 16 * 16;
        // Lanes of the last, partial chunk; masked-off lanes neither load
        // nor fault.
        let tail: __mmask16 = ((1u32 << (k - full)) - 1) as __mmask16;
        let xp = row_starts::<Q>(x, r, k);
        let wp = row_starts::<P>(w, j, k);
        let mut acc = [[_mm512_setzero_ps(); P]; Q];
        let mut wv = [_mm512_setzero_ps(); P];
        let mut i = 0;
        while i < full {
            for p in 0..P {
                wv[p] = _mm512_loadu_ps(wp[p].add(i));
            }
            for q in 0..Q {
                let xv = _mm512_loadu_ps(xp[q].add(i));
                for p in 0..P {
                    acc[q][p] = _mm512_fmadd_ps(wv[p], xv, acc[q][p]);
                }
            }
            i += 16;
        }
        if tail != 0 {
            for p in 0..P {
                wv[p] = _mm512_maskz_loadu_ps(tail, wp[p].add(full));
            }
            for q in 0..Q {
                let xv = _mm512_maskz_loadu_ps(tail, xp[q].add(full));
                for p in 0..P {
                    acc[q][p] = _mm512_fmadd_ps(wv[p], xv, acc[q][p]);
                }
            }
        }
        for q in 0..Q {
            for p in 0..P {
                out_t[(j + p) * m + r + q] = _mm512_reduce_add_ps(acc[q][p]);
            }
        }
    }

    /// `x` rows `r..r+Q` against `w` rows `j..j+P`, 8 lanes; the tail of
    /// each row (under 8 values) in scalar code.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block_avx2<const Q: usize, const P: usize>(
        x: &[f32],
        k: usize,
        r: usize,
        w: &[f32],
        j: usize,
        out_t: &mut [f32],
        m: usize,
    ) {
        let full = k / 8 * 8;
        let xp = row_starts::<Q>(x, r, k);
        let wp = row_starts::<P>(w, j, k);
        let mut acc = [[_mm256_setzero_ps(); P]; Q];
        let mut wv = [_mm256_setzero_ps(); P];
        let mut i = 0;
        while i < full {
            for p in 0..P {
                wv[p] = _mm256_loadu_ps(wp[p].add(i));
            }
            for q in 0..Q {
                let xv = _mm256_loadu_ps(xp[q].add(i));
                for p in 0..P {
                    acc[q][p] = _mm256_fmadd_ps(wv[p], xv, acc[q][p]);
                }
            }
            i += 8;
        }
        for q in 0..Q {
            let x_row = &x[(r + q) * k..(r + q + 1) * k];
            for p in 0..P {
                let w_row = &w[(j + p) * k..(j + p + 1) * k];
                let tail: f32 = w_row[full..]
                    .iter()
                    .zip(&x_row[full..])
                    .map(|(w, x)| w * x)
                    .sum();
                out_t[(j + p) * m + r + q] = sum256(acc[q][p]) + tail;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
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

    /// `x · Wᵀ` in double precision, row-major `m × n`.
    fn reference(x: &[f32], m: usize, w: &[f32], n: usize) -> Vec<f64> {
        let k = x.len() / m;
        let mut out = Vec::with_capacity(m * n);
        for r in 0..m {
            for j in 0..n {
                out.push(
                    (0..k)
                        .map(|i| f64::from(w[j * k + i]) * f64::from(x[r * k + i]))
                        .sum(),
                );
            }
        }
        out
    }

    /// Every kernel this CPU has, on shapes with and without tails (k not
    /// a multiple of the width, n not a multiple of four, rows not a
    /// multiple of a block), one thread and several, 1 to `MAX_ROWS` rows.
    #[test]
    fn every_supported_kernel_matches_a_double_precision_sum() {
        let kernels = MatVecKernel::supported();
        if kernels.is_empty() {
            // Not a skip of real work: on this CPU nothing here would run,
            // and `linear_few_rows` declines (tested below).
            assert!(matches!(MatVecKernel::detect(), Ok(None)));
            return;
        }
        for kernel in kernels {
            for m in [1, 2, 3, 4, 5, 7, 8, MAX_ROWS] {
                for (n, k) in [
                    (1, 1),
                    (3, 7),
                    (4, 16),
                    (5, 17),
                    (13, 100),
                    (768, 768),
                    (2307, 513),
                ] {
                    let x = values(m * k, 1);
                    let w = values(n * k, 2);
                    let mut out = vec![f32::NAN; m * n];
                    matvec(kernel, &x, m, k, &w, &mut out).expect("lengths agree");
                    let want = reference(&x, m, &w, n);
                    for (at, (got, want)) in out.iter().zip(want).enumerate() {
                        let tolerance = 1e-5 * (k as f64).sqrt().max(1.0);
                        assert!(
                            (f64::from(*got) - want).abs() <= tolerance,
                            "{kernel:?} m={m} n={n} k={k} at {at}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_and_row_counts_are_errors() {
        let Some(kernel) = MatVecKernel::supported().into_iter().next() else {
            return;
        };
        let mut out = vec![0.0; 3];
        let err = matvec(kernel, &[1.0; 4], 1, 4, &[1.0; 11], &mut out).expect_err("11 != 12");
        assert!(err.to_string().contains("needs 12 values"), "{err}");
        let err = matvec(kernel, &[1.0; 7], 2, 4, &[1.0; 12], &mut out).expect_err("7 != 8");
        assert!(err.to_string().contains("need 8 values"), "{err}");
        let mut out = vec![0.0; 17 * 3];
        let err = matvec(kernel, &[1.0; 17 * 4], 17, 4, &[1.0; 12], &mut out).expect_err("17 rows");
        assert!(err.to_string().contains("not 17"), "{err}");
    }

    #[test]
    fn linear_few_rows_equals_candles_product_and_declines_other_shapes() {
        let dev = Device::Cpu;
        let (n, k) = (300, 130);
        let w = Tensor::from_vec(values(n * k, 3), (n, k), &dev).expect("shape");
        for rows in [1, 5, MAX_ROWS] {
            let x = Tensor::from_vec(values(rows * k, 4), (1, rows, k), &dev).expect("shape");
            let candle = x
                .broadcast_matmul(&w.t().expect("2-d"))
                .expect("matmul")
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("f32");
            match linear_few_rows(&x, &w).expect("runs") {
                Some(ours) => {
                    assert_eq!(ours.dims(), &[1, rows, n]);
                    let ours = ours
                        .flatten_all()
                        .expect("flat")
                        .to_vec1::<f32>()
                        .expect("f32");
                    for (a, b) in ours.iter().zip(&candle) {
                        assert!((a - b).abs() < 1e-4, "{rows} rows: {a} vs {b}");
                    }
                }
                None => assert!(matches!(MatVecKernel::detect(), Ok(None))),
            }
        }
        // More rows than the kernel takes, a transposed weight, f64:
        // candle's business.
        let many = Tensor::from_vec(values((MAX_ROWS + 1) * k, 5), (MAX_ROWS + 1, k), &dev)
            .expect("shape");
        assert!(linear_few_rows(&many, &w).expect("declines").is_none());
        let x = Tensor::from_vec(values(k, 4), (1, 1, k), &dev).expect("shape");
        let wt = Tensor::from_vec(values(n * k, 6), (k, n), &dev).expect("shape");
        let wt = wt.t().expect("2-d");
        assert!(linear_few_rows(&x, &wt).expect("declines").is_none());
        let x64 = x.to_dtype(DType::F64).expect("f64");
        assert!(linear_few_rows(&x64, &w).expect("declines").is_none());
    }
}
