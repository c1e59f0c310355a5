// Our kernels for ggml's AMX module (`ggml-cpu/amx/mmq.cpp`): Q4_1 and Q8_0
// weights times a batch of rows (more than one: continuous batching's
// steps, prompts).
//
// Why: ggml runs one row through an AVX-512 VNNI kernel, and any batch of
// more than one row through AMX tiles. For these types the tile path
// stores and reloads the 16 x 16 int32 tile after each 32-value block (each
// block has its own scale), unpacks 4-bit blocks to bytes in memory first,
// and fills 16-row tiles with 8 rows. At 8 rows a SmolLM2 Q4_1 step took
// 10.1 ms against 3.5 ms for one row, so 8 streams could not reach 3x one
// stream. Here each block of 16 weight columns is loaded (and unpacked)
// once into registers and multiplied with every row of the batch while it
// is there, with the same instructions per row, in the same order, as
// ggml's one-row kernel, so a row's result is bit for bit what it would be
// alone. Measured on one Xeon core, a 1536 x 576 Q4_1 matrix from beyond
// L2, us a call, ggml's tiles / ours: 8 rows 92 / 49, 16 rows 95 / 91,
// 32 rows 345 / 172, 128 rows 1504 / 777; 8 rows of the 49152 x 576 Q8_0
// output matrix 4678 / 2388. So ours takes every Q4_1 batch, and Q8_0
// batches up to 16 rows (over that, ggml's tiles are ahead for Q8_0).
//
// How it gets in: `hook.cmake` (next to this file) compiles this file in
// place of mmq.cpp in each of ggml's CPU modules. This file includes the
// original (its path comes from IPFS_ACCELERATE_GGML_MMQ_SOURCE) with
// `ggml_backend_amx_mul_mat` renamed, and defines that function again: our
// path for the batches it takes, ggml's for everything else. Only the
// modules built with AMX and VNNI (`sapphirerapids`) have either.

#define ggml_backend_amx_mul_mat ggml_backend_amx_mul_mat_ggml
#include IPFS_ACCELERATE_GGML_MMQ_SOURCE
#undef ggml_backend_amx_mul_mat

#if defined(__AMX_INT8__) && defined(__AVX512VNNI__)

#include <climits>
#include <cstdlib>
#include <strings.h>

namespace ipfs_accelerate {
namespace {

// Rows one pass multiplies with a block of weight columns: 8 accumulators
// and 8 weight vectors leave room in the 32 registers.
constexpr int ROWS_PER_PASS = 8;
// How far ahead the weights are fetched. The hardware prefetcher alone
// left the loop waiting on memory (8 rows of a 1536 x 576 Q4_1 matrix from
// beyond L2: 87 us a call, against 45 us from L2); fetching 2.5 KB ahead
// (past a tile's end, into the next) measured 49 us.
constexpr int PREFETCH_BYTES = 2560;

inline void prefetch_block(const char * block, int size) {
    for (int line = 0; line < size; line += 64) {
        _mm_prefetch(block + PREFETCH_BYTES + line, _MM_HINT_T0);
    }
}

// Q4_1 weights, rows quantised to Q8_1.
struct Q4_1 {
    using Rows = block_q8_1;
    static constexpr int BLOCK = QK4_1;
    // Ours is ahead at every batch measured (up to 128 rows), so it takes
    // prompts too.
    static constexpr int MAX_ROWS = INT_MAX;
    // A packed tile block: 16 columns x 32 values as nibbles in VNNI
    // order, then 16 scales, then 16 minimums.
    static constexpr int TILE_SIZE = TILE_N * sizeof(block_q4_1);

    static void quantize_row(const float * x, Rows * y, int K) {
        from_float<block_q8_1>(x, (char *) y, K);
    }

    // One tile block in registers: the weights as bytes, scales, minimums.
    struct Block {
        __m512i vb[8];
        __m512 vd0, vm0;
    };

    static ALWAYS_INLINE Block load(const char * b_ptr) {
        const __m512i low_mask = _mm512_set1_epi8(0xF);
        Block b;
        for (int k = 0; k < 8; k += 2) {
            const __m512i bytes = _mm512_loadu_si512((const __m512i *)(b_ptr + k * 32));
            b.vb[k + 0] = _mm512_and_si512(bytes, low_mask);
            b.vb[k + 1] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low_mask);
        }
        const int offset = TILE_N * TILE_K / 2;
        b.vd0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b_ptr + offset)));
        b.vm0 = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(b_ptr + offset + TILE_N * sizeof(ggml_half))));
        return b;
    }

    // vc + one row block times the tile block: the operations of
    // tinygemm_kernel_vnni<block_q8_1, block_q4_1, ...>, in its order.
    static ALWAYS_INLINE __m512 accumulate(const Block & b, const Rows & a, __m512 vc) {
        const int32_t * a_ptr = reinterpret_cast<const int32_t *>(a.qs);
        __m512i vsum = _mm512_setzero_si512();
        for (int k = 0; k < 8; ++k) {
            vsum = _mm512_dpbusd_epi32(vsum, b.vb[k], _mm512_set1_epi32(a_ptr[k]));
        }
        const __m512 vd1 = _mm512_set1_ps(GGML_CPU_FP16_TO_FP32(a.d));
        const __m512 vs1 = _mm512_set1_ps(GGML_CPU_FP16_TO_FP32(a.s));
        vc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(vsum), _mm512_mul_ps(b.vd0, vd1), vc);
        return _mm512_fmadd_ps(b.vm0, vs1, vc);
    }
};

// Q8_0 weights (SmolLM2's output matrix, a fifth of its weights), rows
// quantised to Q8_0.
struct Q8_0 {
    using Rows = block_q8_0;
    static constexpr int BLOCK = QK8_0;
    // Q8_0 needs no unpacking, so ggml's tiles are slower only while they
    // are mostly empty: on one core, a 576 x 576 matrix, us a call, tiles /
    // ours: 8 rows 29 / 19, 16 rows 34 / 35, 32 rows 59 / 78, 128 rows
    // 229 / 283. Over 16 rows (prompts) the tiles take it.
    static constexpr int MAX_ROWS = 16;
    // A packed tile block: 16 columns x 32 signed bytes in VNNI order, then
    // 16 scales, then 16 sums of the column's bytes times 128.
    static constexpr int TILE_SIZE = TILE_N * sizeof(block_q8_0) + TILE_N * sizeof(int32_t);

    // VNNI multiplies unsigned by signed bytes, so ggml's kernel adds 128
    // to the row's bytes (and takes 128 x the weights' sums off after);
    // here that is done once per row, not once per tile. Adding 128 to a
    // byte is flipping its top bit.
    static void quantize_row(const float * x, Rows * y, int K) {
        from_float<block_q8_0>(x, (char *) y, K);
        for (int i = 0; i < K / QK8_0; ++i) {
            for (auto & q : y[i].qs) {
                q = static_cast<int8_t>(static_cast<uint8_t>(q) ^ 0x80);
            }
        }
    }

    struct Block {
        __m512i vb[8];
        __m512 vd0;
        __m512i vcomp;
    };

    static ALWAYS_INLINE Block load(const char * b_ptr) {
        Block b;
        for (int k = 0; k < 8; ++k) {
            b.vb[k] = _mm512_loadu_si512((const __m512i *)(b_ptr + k * 64));
        }
        const int offset = TILE_N * TILE_K;
        b.vd0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b_ptr + offset)));
        b.vcomp = _mm512_loadu_si512((const __m512i *)(b_ptr + offset + TILE_N * sizeof(ggml_half)));
        return b;
    }

    // The operations of tinygemm_kernel_vnni<block_q8_0, block_q8_0, ...>.
    static ALWAYS_INLINE __m512 accumulate(const Block & b, const Rows & a, __m512 vc) {
        const int32_t * a_ptr = reinterpret_cast<const int32_t *>(a.qs);
        __m512i vsum = _mm512_setzero_si512();
        for (int k = 0; k < 8; ++k) {
            vsum = _mm512_dpbusd_epi32(vsum, _mm512_set1_epi32(a_ptr[k]), b.vb[k]);
        }
        vsum = _mm512_sub_epi32(vsum, b.vcomp);
        const __m512 vd1 = _mm512_set1_ps(GGML_CPU_FP16_TO_FP32(a.d));
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(vsum), _mm512_mul_ps(b.vd0, vd1), vc);
    }
};

// `ROWS` rows of `A` (each `KB` blocks, one row after another) times one
// packed tile of 16 weight columns (`B`: its `KB` blocks one after
// another) into `ROWS` rows of 16 values of `C`: each block is loaded once
// and multiplied with every row while it is in registers.
template <typename Type, int ROWS>
void rows_times_tile(int KB, const typename Type::Rows * RESTRICT A, const char * RESTRICT B,
                     float * RESTRICT C, int ldc) {
    __m512 vc[ROWS];
    for (int r = 0; r < ROWS; ++r) {
        vc[r] = _mm512_setzero_ps();
    }
    for (int i = 0; i < KB; ++i) {
        const char * b_ptr = B + i * Type::TILE_SIZE;
        prefetch_block(b_ptr, Type::TILE_SIZE);
        const typename Type::Block block = Type::load(b_ptr);
        for (int r = 0; r < ROWS; ++r) {
            vc[r] = Type::accumulate(block, A[r * KB + i], vc[r]);
        }
    }
    for (int r = 0; r < ROWS; ++r) {
        _mm512_storeu_ps(C + r * ldc, vc[r]);
    }
}

// `rows` (1 to ROWS_PER_PASS) rows times one tile.
template <typename Type>
void some_rows_times_tile(int rows, int KB, const typename Type::Rows * A, const char * B,
                          float * C, int ldc) {
    switch (rows) {
        case 1: rows_times_tile<Type, 1>(KB, A, B, C, ldc); break;
        case 2: rows_times_tile<Type, 2>(KB, A, B, C, ldc); break;
        case 3: rows_times_tile<Type, 3>(KB, A, B, C, ldc); break;
        case 4: rows_times_tile<Type, 4>(KB, A, B, C, ldc); break;
        case 5: rows_times_tile<Type, 5>(KB, A, B, C, ldc); break;
        case 6: rows_times_tile<Type, 6>(KB, A, B, C, ldc); break;
        case 7: rows_times_tile<Type, 7>(KB, A, B, C, ldc); break;
        case 8: rows_times_tile<Type, 8>(KB, A, B, C, ldc); break;
        default: GGML_ABORT("ipfs-accelerate: %d rows in one pass", rows);
    }
}

// dst = src1 (M x K, f32) times src0 (N x K, packed `Type`) transposed.
template <typename Type>
void rows_times_weights(const ggml_compute_params * params, ggml_tensor * dst) {
    const ggml_tensor * src0 = dst->src[0];
    const ggml_tensor * src1 = dst->src[1];
    const int M = dst->ne[1];
    const int N = dst->ne[0];
    const int K = src0->ne[0];
    const int ldc = dst->nb[1] / dst->nb[0];
    const int KB = K / Type::BLOCK;

    // Quantise the rows as ggml's path does, into the same work space
    // (ggml sized it for M rows of this type), one row per thread in turn.
    using Rows = typename Type::Rows;
    if (params->wsize < M * KB * sizeof(Rows)) {
        GGML_ABORT("insufficient work space size");
    }
    Rows * A = (Rows *) params->wdata;
    const float * A_data = (const float *) src1->data;
    parallel_for_ggml(params, M, [&](int begin, int end) {
        for (int m = begin; m < end; ++m) {
            Type::quantize_row(A_data + m * K, A + m * KB, K);
        }
    });
    ggml_barrier(params->threadpool);

    // Each thread takes a run of 16-column tiles, and multiplies each tile
    // with every row, ROWS_PER_PASS rows at a time.
    float * C = (float *) dst->data;
    parallel_for_ggml(params, N / TILE_N, [&](int begin, int end) {
        for (int n = begin; n < end; ++n) {
            const char * B = (const char *) src0->data + PACKED_INDEX(n, 0, KB, Type::TILE_SIZE);
            for (int m = 0; m < M; m += ROWS_PER_PASS) {
                const int rows = std::min(ROWS_PER_PASS, M - m);
                some_rows_times_tile<Type>(rows, KB, A + m * KB, B, C + m * ldc + n * TILE_N, ldc);
            }
        }
    });
}

// rows_times_weights<Type> if the batch has at most Type::MAX_ROWS rows.
template <typename Type>
bool rows_times_weights_up_to_max(const ggml_compute_params * params, ggml_tensor * dst) {
    if (dst->ne[1] > Type::MAX_ROWS) {
        return false;
    }
    rows_times_weights<Type>(params, dst);
    return true;
}

// Runs `dst` if it is ours to run (Q4_1 or Q8_0 weights, one matrix, more
// than one row and at most the type's MAX_ROWS: one row stays on ggml's
// kernel, which keeps more columns in flight); false leaves it to ggml.
// Every thread of the op calls it and gets the same answer.
bool small_batch_mul_mat(const ggml_compute_params * params, ggml_tensor * dst) {
    // IPFS_ACCELERATE_GGML_KERNELS=ggml leaves every batch to ggml, for
    // comparisons; the Rust side refuses values other than `ours`/`ggml`.
    static const bool ours = [] {
        const char * setting = getenv("IPFS_ACCELERATE_GGML_KERNELS");
        return setting == nullptr || strcasecmp(setting, "ggml") != 0;
    }();
    const int M = dst->ne[1];
    if (!ours || M < 2 || dst->ne[2] * dst->ne[3] != 1 ||
        dst->ne[0] % TILE_N != 0) {
        return false;
    }
    switch (dst->src[0]->type) {
        case GGML_TYPE_Q4_1: return rows_times_weights_up_to_max<Q4_1>(params, dst);
        case GGML_TYPE_Q8_0: return rows_times_weights_up_to_max<Q8_0>(params, dst);
        default: return false;
    }
}

}  // namespace
}  // namespace ipfs_accelerate

// Declared in mmq.h, whose declaration the include above renamed.
void ggml_backend_amx_mul_mat(const ggml_compute_params * params, struct ggml_tensor * dst);

void ggml_backend_amx_mul_mat(const ggml_compute_params * params, struct ggml_tensor * dst) {
    if (!ipfs_accelerate::small_batch_mul_mat(params, dst)) {
        ggml_backend_amx_mul_mat_ggml(params, dst);
    }
}

#endif  // defined(__AMX_INT8__) && defined(__AVX512VNNI__)
