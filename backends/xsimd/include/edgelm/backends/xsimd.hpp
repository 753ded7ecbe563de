// edgelm/backends/xsimd.hpp - SIMD kernels written with xsimd 8.1 (native only: xsimd 8.1 has no
// WebAssembly architecture). Static dispatch: the architecture is xsimd::default_arch, the one the
// translation unit is compiled for (fma3<avx2> with -mavx2 -mfma, avx512bw with -mavx512f -mavx512bw...).
//
// Overrides: the f32 dot product, RMSNorm, the f32 matmul and the q8_0 / q4_0 x q8_0 matmuls (and the
// quantized dot products, as one-element matmuls). Every other op is the scalar reference (basic_kernels).
//
// Matmul contract (kernels::basic_kernels::matmul): y[t, r] depends only on W.row(r) and x_t. Each output
// element goes through exactly one sequence of operations, whatever tile, thread split or batch it falls
// in: one vector accumulator, updated chunk by chunk (f32) or block by block (quantized) in order, then a
// horizontal sum whose tree is the same for every lane it is computed in. The tiles only decide how many
// elements share each load (several rows per x load for decode, several tokens per weight load for prefill).
//
// int8 products: xsimd 8.1 has no widening int8 ops, so a small intrinsic escape hatch (detail::isa, for
// AVX2 and AVX-512BW) sign-extends int8 to int16 and multiplies adjacent pairs into int32 (vpmaddwd); the
// rest is xsimd batch code. The int32 sums of a block are exact, so only float rounding (the per-lane
// accumulation) differs from the scalar reference. On other xsimd architectures the quantized matmul is
// the scalar reference.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <edgelm/core/half.hpp>
#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/f32.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

// The inner namespace is named after the architecture, so that translation units compiled for different
// targets (e.g. AVX2 and AVX-512) never share a mangled name (as backends/highway.hpp does with
// HWY_NAMESPACE). It is inline: the policy is still spelled edgelm::backends::xsimd::kernels.
#if XSIMD_WITH_AVX512BW
#define EDGELM_XSIMD_NS avx512bw
#define EDGELM_XSIMD_ARCH ::xsimd::avx512bw
#elif XSIMD_WITH_AVX512DQ
#define EDGELM_XSIMD_NS avx512dq
#define EDGELM_XSIMD_ARCH ::xsimd::avx512dq
#elif XSIMD_WITH_AVX512CD
#define EDGELM_XSIMD_NS avx512cd
#define EDGELM_XSIMD_ARCH ::xsimd::avx512cd
#elif XSIMD_WITH_AVX512F
#define EDGELM_XSIMD_NS avx512f
#define EDGELM_XSIMD_ARCH ::xsimd::avx512f
#elif XSIMD_WITH_FMA3_AVX2
#define EDGELM_XSIMD_NS fma3_avx2
#define EDGELM_XSIMD_ARCH ::xsimd::fma3<::xsimd::avx2>
#elif XSIMD_WITH_AVX2
#define EDGELM_XSIMD_NS avx2
#define EDGELM_XSIMD_ARCH ::xsimd::avx2
#elif XSIMD_WITH_FMA3_AVX
#define EDGELM_XSIMD_NS fma3_avx
#define EDGELM_XSIMD_ARCH ::xsimd::fma3<::xsimd::avx>
#elif XSIMD_WITH_AVX
#define EDGELM_XSIMD_NS avx
#define EDGELM_XSIMD_ARCH ::xsimd::avx
#elif XSIMD_WITH_FMA4
#define EDGELM_XSIMD_NS fma4
#define EDGELM_XSIMD_ARCH ::xsimd::fma4
#elif XSIMD_WITH_FMA3_SSE
#define EDGELM_XSIMD_NS fma3_sse4_2
#define EDGELM_XSIMD_ARCH ::xsimd::fma3<::xsimd::sse4_2>
#elif XSIMD_WITH_SSE4_2
#define EDGELM_XSIMD_NS sse4_2
#define EDGELM_XSIMD_ARCH ::xsimd::sse4_2
#elif XSIMD_WITH_SSE4_1
#define EDGELM_XSIMD_NS sse4_1
#define EDGELM_XSIMD_ARCH ::xsimd::sse4_1
#elif XSIMD_WITH_SSSE3
#define EDGELM_XSIMD_NS ssse3
#define EDGELM_XSIMD_ARCH ::xsimd::ssse3
#elif XSIMD_WITH_SSE3
#define EDGELM_XSIMD_NS sse3
#define EDGELM_XSIMD_ARCH ::xsimd::sse3
#elif XSIMD_WITH_SSE2
#define EDGELM_XSIMD_NS sse2
#define EDGELM_XSIMD_ARCH ::xsimd::sse2
#elif XSIMD_WITH_NEON64
#define EDGELM_XSIMD_NS neon64
#define EDGELM_XSIMD_ARCH ::xsimd::neon64
#elif XSIMD_WITH_NEON
#define EDGELM_XSIMD_NS neon
#define EDGELM_XSIMD_ARCH ::xsimd::neon
#else
#error "edgelm/backends/xsimd.hpp: no xsimd architecture for this target (xsimd 8.1 is x86/ARM only; use backends/highway.hpp for WebAssembly)"
#endif

// GCC 12's AVX-512 intrinsics (_mm512_undefined_*, used by extract and convert) trip -Wuninitialized
// once inlined into a caller: a known false positive, silenced for this header only.
#if defined(__GNUC__) && !defined(__clang__) && XSIMD_WITH_AVX512F
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define EDGELM_XSIMD_DIAGNOSTIC_POP 1
#endif

namespace edgelm::backends::xsimd {
inline namespace EDGELM_XSIMD_NS {

namespace detail {

// NB: inside edgelm::backends::xsimd the name `xsimd` is this namespace; the library is ::xsimd.
using arch = ::xsimd::default_arch;
static_assert(std::is_same_v<arch, EDGELM_XSIMD_ARCH>, "EDGELM_XSIMD_NS must name xsimd::default_arch");
using fbatch = ::xsimd::batch<float, arch>;
constexpr std::size_t W = fbatch::size;  // float lanes

// The loops over a tile's rows and tokens must be unrolled completely so that its accumulators live in
// registers (GCC -O2 keeps them in memory otherwise, about 2x slower).
#if defined(__GNUC__)
#define EDGELM_XSIMD_UNROLL _Pragma("GCC unroll 32")
#else
#define EDGELM_XSIMD_UNROLL
#endif

// The int8 escape hatch exists for these two; elsewhere the quantized products stay scalar.
#if XSIMD_WITH_AVX512BW || (XSIMD_WITH_AVX2 && !XSIMD_WITH_AVX512F)
#define EDGELM_XSIMD_INT8 1
#endif

// Tile shapes (rows x tokens per pass). Decode (n = 1) is memory bound: many rows share each x load.
// Prefill: several tokens share each weight load; the row block stays in L1 while all tokens pass.
// AVX2 has 16 vector registers (4 x 3 f32 accumulators; 2 x 3 quantized, whose widened activations take
// two registers per token), AVX-512 32 (6 x 4 f32, 6 x 3 quantized). Chosen by measurement on
// SmolLM2-135M-shaped layers (an AMD EPYC and an Intel Xeon).
constexpr int f32_decode_rows = 8;
constexpr int f32_prefill_rows = W >= 16 ? 6 : 4;
constexpr int f32_prefill_tokens = W >= 16 ? 4 : 3;
constexpr int q_decode_rows = W >= 16 ? 16 : 8;
constexpr int q_prefill_rows = W >= 16 ? 6 : 2;
constexpr int q_prefill_tokens = 3;

// W floats from p[0 .. m) (m < W), zero past m.
inline fbatch load_partial(const float* p, std::size_t m) noexcept {
  alignas(64) float buf[W] = {};
  std::memcpy(buf, p, m * sizeof(float));
  return fbatch::load_aligned(buf);
}

// ---- horizontal sums with one tree for every lane ----
// out[i] = sum of the lanes of acc[i], i < M. The tree is the same whichever slot i an accumulator is in
// (and independent of M): that is what makes a tile's outputs identical to a lone element's.
#if XSIMD_WITH_AVX
// Eight __m256 at once, each summed as ((e0+e1)+(e2+e3)) + ((e4+e5)+(e6+e7)) (xsimd's haddp for avx).
inline __m256 hsum8(const __m256* r) noexcept {
  const __m256 t0 = _mm256_hadd_ps(r[0], r[1]), t1 = _mm256_hadd_ps(r[2], r[3]);
  const __m256 t2 = _mm256_hadd_ps(r[4], r[5]), t3 = _mm256_hadd_ps(r[6], r[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_blend_ps(u0, u1, 0xF0), _mm256_permute2f128_ps(u0, u1, 0x21));
}
#endif

template <int M>
inline void hsum(const fbatch* acc, float* out) noexcept {
#if XSIMD_WITH_AVX512F
  // 16 lanes: lanes k and k + 8 first, then hsum8's tree.
  EDGELM_XSIMD_UNROLL
  for (int g = 0; g < M; g += 8) {
    __m256 r[8];
    EDGELM_XSIMD_UNROLL
    for (int i = 0; i < 8; ++i) {
      if (g + i < M) {
        const __m512 v = acc[g + i];
        r[i] = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      } else {
        r[i] = _mm256_setzero_ps();
      }
    }
    alignas(32) float s[8];
    _mm256_store_ps(s, hsum8(r));
    EDGELM_XSIMD_UNROLL
    for (int i = 0; i < 8; ++i)
      if (g + i < M) out[g + i] = s[i];
  }
#elif XSIMD_WITH_AVX
  EDGELM_XSIMD_UNROLL
  for (int g = 0; g < M; g += 8) {
    __m256 r[8];
    EDGELM_XSIMD_UNROLL
    for (int i = 0; i < 8; ++i) r[i] = g + i < M ? static_cast<__m256>(acc[g + i]) : _mm256_setzero_ps();
    alignas(32) float s[8];
    _mm256_store_ps(s, hsum8(r));
    EDGELM_XSIMD_UNROLL
    for (int i = 0; i < 8; ++i)
      if (g + i < M) out[g + i] = s[i];
  }
#else
  // Any other width: a pairwise tree in scalar code, the same for every accumulator.
  EDGELM_XSIMD_UNROLL
  for (int i = 0; i < M; ++i) {
    alignas(64) float s[W];
    acc[i].store_aligned(s);
    for (std::size_t h = W / 2; h > 0; h /= 2)
      for (std::size_t k = 0; k < h; ++k) s[k] += s[k + h];
    out[i] = s[0];
  }
#endif
}

// ---- f32 ----
// sum(a[i] * b[i]): two accumulators, a zero-padded last chunk.
inline float dot(const float* a, const float* b, std::size_t n) noexcept {
  fbatch s0(0.0f), s1(0.0f);
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = ::xsimd::fma(fbatch::load_unaligned(a + i), fbatch::load_unaligned(b + i), s0);
    s1 = ::xsimd::fma(fbatch::load_unaligned(a + i + W), fbatch::load_unaligned(b + i + W), s1);
  }
  if (i + W <= n) {
    s0 = ::xsimd::fma(fbatch::load_unaligned(a + i), fbatch::load_unaligned(b + i), s0);
    i += W;
  }
  if (i < n) s1 = ::xsimd::fma(load_partial(a + i, n - i), load_partial(b + i, n - i), s1);
  return ::xsimd::hadd(s0 + s1);
}

// Software prefetch of Bytes bytes at p: the quantized tiles call it once per block with the position,
// one tile ahead, of a linear walk over the next tile's rows (contiguous in memory). A tile reads its R
// rows side by side, R streams a few hundred bytes apart in the same pages (a q8_0 row of 576 is 612
// bytes), which the hardware prefetchers do not follow: without this a 2- to 8-row q8_0 decode tile
// streams from DRAM at 4-8 GB/s instead of ~27 GB/s (measured on an AMD EPYC, 160 MB of weights).
// The f32 tiles do without (rows of 2 KB and more stream well; prefetching measured slower).
// Prefetches never fault, so running past the matrix's end is harmless; they do not change any result.
template <std::size_t Bytes>
inline void prefetch_ahead(const void* p) noexcept {
#if defined(__GNUC__)
  const char* c = static_cast<const char*>(p);
  EDGELM_XSIMD_UNROLL
  for (std::size_t o = 0; o < Bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
#else
  (void)p;
#endif
}

// R rows x T tokens of y[t * ldy + r] = w_r . x_t over k columns; w, x, y point at the tile's first row
// and token. Per element: acc = fma(w chunk, x chunk, acc) for each chunk of W columns in order (the last
// one zero-padded), then hsum.
template <int R, int T>
inline void f32_tile(float* y, std::size_t ldy, const float* w, std::size_t ldw, const float* x, std::size_t ldx, std::size_t k) noexcept {
  fbatch acc[R * T];
  EDGELM_XSIMD_UNROLL
  for (int i = 0; i < R * T; ++i) acc[i] = fbatch(0.0f);
  std::size_t j = 0;
  for (; j + W <= k; j += W) {
    fbatch xv[T];
    EDGELM_XSIMD_UNROLL
    for (int t = 0; t < T; ++t) xv[t] = fbatch::load_unaligned(x + t * ldx + j);
    EDGELM_XSIMD_UNROLL
    for (int r = 0; r < R; ++r) {
      const fbatch wv = fbatch::load_unaligned(w + r * ldw + j);
      EDGELM_XSIMD_UNROLL
      for (int t = 0; t < T; ++t) acc[r * T + t] = ::xsimd::fma(wv, xv[t], acc[r * T + t]);
    }
  }
  if (j < k) {
    fbatch xv[T];
    EDGELM_XSIMD_UNROLL
    for (int t = 0; t < T; ++t) xv[t] = load_partial(x + t * ldx + j, k - j);
    EDGELM_XSIMD_UNROLL
    for (int r = 0; r < R; ++r) {
      const fbatch wv = load_partial(w + r * ldw + j, k - j);
      EDGELM_XSIMD_UNROLL
      for (int t = 0; t < T; ++t) acc[r * T + t] = ::xsimd::fma(wv, xv[t], acc[r * T + t]);
    }
  }
  // acc is row-major (r, t); y is token-major.
  float s[R * T];
  hsum<R * T>(acc, s);
  EDGELM_XSIMD_UNROLL
  for (int r = 0; r < R; ++r)
    EDGELM_XSIMD_UNROLL
    for (int t = 0; t < T; ++t) y[t * ldy + r] = s[r * T + t];
}

// Rows [r0, r1) x tokens [0, n) in tiles of RB x TB; the remainders in tiles of 1 row and/or 1 token.
// tile.template operator()<R, T>(r, t) computes the R x T tile at row r, token t.
template <int RB, int TB, class Tile>
inline void for_tiles(std::size_t n, std::uint32_t r0, std::uint32_t r1, Tile&& tile) noexcept {
  std::uint32_t r = r0;
  for (; r + RB <= r1; r += RB) {
    std::size_t t = 0;
    for (; t + TB <= n; t += TB) tile.template operator()<RB, TB>(r, t);
    for (; t < n; ++t) tile.template operator()<RB, 1>(r, t);
  }
  for (; r < r1; ++r) {
    std::size_t t = 0;
    for (; t + TB <= n; t += TB) tile.template operator()<1, TB>(r, t);
    for (; t < n; ++t) tile.template operator()<1, 1>(r, t);
  }
}

inline void matmul_f32(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                       std::uint32_t r1) noexcept {
  const std::size_t k = w.cols;
  auto tile = [&]<int R, int T>(std::uint32_t r, std::size_t t) { f32_tile<R, T>(y + t * ldy + r, ldy, w.row(r), k, x + t * ldx, ldx, k); };
  if (n == 1)
    for_tiles<f32_decode_rows, 1>(n, r0, r1, tile);
  else
    for_tiles<f32_prefill_rows, f32_prefill_tokens>(n, r0, r1, tile);
}

// o[j] = weight[j] * (ss * x[j]), the reference's expression, lane by lane.
inline void scale_mul(float* o, const float* x, const float* weight, float ss, std::size_t n) noexcept {
  const fbatch vs(ss);
  std::size_t j = 0;
  for (; j + W <= n; j += W) (fbatch::load_unaligned(weight + j) * (vs * fbatch::load_unaligned(x + j))).store_unaligned(o + j);
  for (; j < n; ++j) o[j] = weight[j] * (ss * x[j]);
}

// fp16 bits -> float, exact (F16C when compiled in; the portable conversion otherwise).
inline float half_to_float(std::uint16_t h) noexcept {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return fp16_to_f32(h);
#endif
}

#if defined(EDGELM_XSIMD_INT8)
// ---- quantized blocks: int8 -> int16 -> int32 ----
using i16batch = ::xsimd::batch<std::int16_t, arch>;
using i32batch = ::xsimd::batch<std::int32_t, arch>;
static_assert(i32batch::size == W, "one block's int32 lanes must fill one float batch");
constexpr int pieces = 32 / static_cast<int>(i16batch::size);  // int16 batches per block: AVX2 2, AVX-512 1

// One block's 32 elements as int16, in element order across the pieces.
struct block16 {
  i16batch v[pieces];
};

namespace isa {
// The only intrinsics of the backend: int8 / uint8 -> int16 and vpmaddwd.
#if XSIMD_WITH_AVX512BW
inline i16batch widen_i8(const std::int8_t* p) noexcept {  // 32 int8 -> 32 int16
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// 16 bytes of nibbles -> 32 int16: low nibbles (elements 0..15), then high nibbles (16..31).
inline i16batch nibbles(const std::uint8_t* p) noexcept {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i b = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
  return _mm512_cvtepu8_epi16(b);
}
inline i32batch madd(const i16batch& a, const i16batch& b) noexcept { return _mm512_madd_epi16(a, b); }
#else
inline i16batch widen_i8(const std::int8_t* p) noexcept {  // 16 int8 -> 16 int16
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline i16batch widen_u8(const std::uint8_t* p) noexcept {  // 16 uint8 -> 16 int16
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline i32batch madd(const i16batch& a, const i16batch& b) noexcept { return _mm256_madd_epi16(a, b); }
#endif
}  // namespace isa

inline block16 load_block(const block_q8_0& b) noexcept {
  block16 o;
  EDGELM_XSIMD_UNROLL
  for (int p = 0; p < pieces; ++p) o.v[p] = isa::widen_i8(b.qs + p * i16batch::size);
  return o;
}
// q4_0 levels: nibble - 8.
inline block16 load_block(const block_q4_0& b) noexcept {
  block16 o;
  const i16batch eight(std::int16_t{8});
#if XSIMD_WITH_AVX512BW
  o.v[0] = isa::nibbles(b.qs) - eight;
#else
  const i16batch q = isa::widen_u8(b.qs);
  o.v[0] = (q & i16batch(std::int16_t{0x0F})) - eight;  // elements 0..15
  o.v[1] = (q >> 4) - eight;                            // elements 16..31
#endif
  return o;
}
// Exact int32 lanes of a block's dot product (lane l: elements 2l, 2l+1 of each piece).
inline i32batch block_dot(const block16& a, const block16& b) noexcept {
  i32batch s = isa::madd(a.v[0], b.v[0]);
  EDGELM_XSIMD_UNROLL
  for (int p = 1; p < pieces; ++p) s += isa::madd(a.v[p], b.v[p]);
  return s;
}

// R rows x T tokens of quantized products over nb blocks. Per element: for each block in order,
// acc = fma(float(int32 lanes), d_w * d_x, acc); then hsum.
template <int R, int T, class WB>
inline void q_tile(float* y, std::size_t ldy, const WB* w, std::size_t ldw, const block_q8_0* x, std::size_t ldx, std::size_t nb,
                   bool prefetch) noexcept {
  fbatch acc[R * T];
  EDGELM_XSIMD_UNROLL
  for (int i = 0; i < R * T; ++i) acc[i] = fbatch(0.0f);
  for (std::size_t b = 0; b < nb; ++b) {
    if (prefetch) prefetch_ahead<R * sizeof(WB)>(w + R * ldw + R * b);
    block16 xv[T];
    fbatch dx[T];  // scales broadcast once per token and once per row; d_w * d_x is one vector multiply
    EDGELM_XSIMD_UNROLL
    for (int t = 0; t < T; ++t) {
      xv[t] = load_block(x[t * ldx + b]);
      dx[t] = fbatch(half_to_float(x[t * ldx + b].d));
    }
    EDGELM_XSIMD_UNROLL
    for (int r = 0; r < R; ++r) {
      const WB& wb = w[r * ldw + b];
      const block16 wv = load_block(wb);
      const fbatch dw(half_to_float(wb.d));
      EDGELM_XSIMD_UNROLL
      for (int t = 0; t < T; ++t) acc[r * T + t] = ::xsimd::fma(::xsimd::to_float(block_dot(wv, xv[t])), dw * dx[t], acc[r * T + t]);
    }
  }
  float s[R * T];
  hsum<R * T>(acc, s);
  EDGELM_XSIMD_UNROLL
  for (int r = 0; r < R; ++r)
    EDGELM_XSIMD_UNROLL
    for (int t = 0; t < T; ++t) y[t * ldy + r] = s[r * T + t];
}

template <class P>
inline void matmul_q(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
  const std::size_t nb = w.blocks_per_row();
  auto tile = [&]<int R, int T>(std::uint32_t r, std::size_t t) {
    q_tile<R, T>(y + t * ldy + r, ldy, w.row(r), nb, x + t * ldx, ldx, nb, t == 0);
  };
  if (n == 1)
    for_tiles<q_decode_rows, 1>(n, r0, r1, tile);
  else
    for_tiles<q_prefill_rows, q_prefill_tokens>(n, r0, r1, tile);
}
#endif  // EDGELM_XSIMD_INT8

}  // namespace detail

// The xsimd kernel policy: transformer<P, backends::xsimd::kernels>.
struct kernels : edgelm::kernels::basic_kernels<kernels> {
  static constexpr const char* name = "xsimd";
  // The xsimd architecture compiled in (e.g. "fma3+avx2", "avx512bw").
  static const char* target() noexcept { return detail::arch::name(); }

  using basic_kernels<kernels>::matmul;
  // f32: decode 8 rows per x load; prefill register tiles of 4 rows x 3 tokens (AVX-512: 6 x 4).
  static void matmul(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
    detail::matmul_f32(y, ldy, w, x, ldx, n, r0, r1);
  }
  // Quantized weights x q8_0 activations: decode 8 rows per x block (AVX-512: 16), prefill tiles of
  // 2 rows x 3 tokens (AVX-512: 6 x 3).
  template <class P>
    requires(std::is_same_v<P, q8_0> || std::is_same_v<P, q4_0>)
  static void matmul(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
#if defined(EDGELM_XSIMD_INT8)
    detail::matmul_q(y, ldy, w, x, ldx, n, r0, r1);
#else
    basic_kernels<kernels>::matmul(y, ldy, w, x, ldx, n, r0, r1);
#endif
  }

  using basic_kernels<kernels>::dot;
  // f32 dot product (attention scores, RMSNorm).
  static float dot(const float* w, const float* x, std::size_t n) noexcept { return detail::dot(w, x, n); }
#if defined(EDGELM_XSIMD_INT8)
  // Quantized dot products over n elements (a multiple of 32): a one-element matmul, so bit-identical to
  // the matmul's elements.
  static float dot(const block_q8_0* w, const block_q8_0* x, std::size_t n) noexcept {
    float s;
    detail::q_tile<1, 1>(&s, 0, w, 0, x, 0, n / 32, false);
    return s;
  }
  static float dot(const block_q4_0* w, const block_q8_0* x, std::size_t n) noexcept {
    float s;
    detail::q_tile<1, 1>(&s, 0, w, 0, x, 0, n / 32, false);
    return s;
  }
#endif

  // o = weight * x / sqrt(mean(x^2) + eps): the reference's expressions, the sum of squares vectorized.
  static void rmsnorm(float* o, const float* x, const float* weight, std::size_t n, float eps) noexcept {
    float ss = detail::dot(x, x, n);
    ss /= static_cast<float>(n);
    ss += eps;
    ss = 1.0f / std::sqrt(ss);
    detail::scale_mul(o, x, weight, ss, n);
  }
};

}  // namespace EDGELM_XSIMD_NS
}  // namespace edgelm::backends::xsimd

#if defined(EDGELM_XSIMD_DIAGNOSTIC_POP)
#pragma GCC diagnostic pop
#undef EDGELM_XSIMD_DIAGNOSTIC_POP
#endif
