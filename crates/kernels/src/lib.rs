//! CPU kernels of our own, for the products where candle's general ones
//! leave speed behind, each picked at run time from the features this CPU
//! has (never from the build machine's), with a fallback to candle's kernel
//! on a CPU that has none of them.
//!
//! - [`matvec`]: `x · Wᵀ` for 1 to [`MAX_ROWS`] rows of `x`: the product
//!   that decoding one token at a time spends its time in, and short
//!   prompts'. It is bound by how fast the weights stream from memory;
//!   candle's general product (the `gemm` crate) reaches about half the
//!   bandwidth this does on one row.
//! - [`ggml`]: kernels of ours compiled into llama.cpp's ggml (C++, in
//!   `ggml/` beside this crate's sources): batches of Q4_1 and Q8_0 rows
//!   for continuous batching. This side reads their setting and names them.
//! - [`setting`]: the `ours`-or-the-library's switch both read.

pub mod ggml;
pub mod matvec;
pub mod setting;

pub use matvec::{linear_few_rows, MatVecKernel, MAX_ROWS};
pub use setting::KernelsSettingError;
