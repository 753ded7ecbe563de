// edgelm/backends/highway/x86.hpp - x86-64 matrix products (and the per-token ops around them: q8_0
// activation quantization, RoPE, SwiGLU, attention; see their section) chosen at run time from the CPU
// (__builtin_cpu_supports / cpuid): AVX-512 VNNI (with or without VBMI), AVX-VNNI and AVX2 + FMA + F16C. Each
// ISA's code is compiled with a target attribute, so no -m flags are needed and one binary runs
// everywhere; never AMX. No global mutable state (the CPU is probed once into a function-local
// static const), no allocation (stack buffers of at most ~36 KB), no exceptions.
//
// Results (the contract of kernels::basic_kernels::matmul: y[t, r] depends only on W.row(r) and x_t).
//  - q8_0 / q4_0 weights x q8_0 activations: every y[t, r] is computed exactly as the scalar reference
//    writes it: the int32 dot of each 32-element block is exact (integer arithmetic, grouped in any
//    order), and the float steps are the reference's, s = s + float(isum_b) * (fp16(d_w) * fp16(d_x)),
//    block after block from s = 0, in IEEE single precision without contraction (each product is pinned
//    by an empty asm so that -ffp-contract=fast cannot fuse it). So the output is the same on every
//    path here (decode, multi-token decode, prefill; AVX-512 or AVX2), for any n, r0, r1 and tile
//    position, and bit-identical to kernels::scalar compiled without FP contraction (and to the wasm
//    backend). Unsigned x signed products: q4_0 nibbles are used as they are (0..15), q8_0 weights as
//    w ^ 0x80 = w + 128; the offset (8 or 128) times sum(x_block) is precomputed per activation block
//    and starts the accumulator, so every block sum is exact for any byte values.
//  - f32: lane l of a 16-lane accumulator sums elements 16i + l with fused multiply-adds (the last,
//    partial step reads zeros), and the 16 lanes are reduced by one fixed tree,
//    s = (u0 + u1) + (u2 + u3), u_j = (x_j + x_(j+8)) + (x_(j+4) + x_(j+12)). AVX2 emulates the 16
//    lanes with two 8-lane halves; the value is the same on every path here and differs from the
//    left-to-right reference only by rounding.
//
// Kernels (AVX-512: 16 rows in the 16 lanes of a zmm; AVX2: 8 rows in a ymm):
//  - decode (n = 1; with VBMI up to 16 tokens for q4_0 / 8 for q8_0, in groups of 4 / 3 that share one
//    stream of the weights): each pass streams 16 rows four blocks at a time. The tokens' activations
//    are rearranged once per call (a stack buffer) so that one vpdpbusd per 64 weight bytes leaves each
//    block's partial sums in one 128-bit lane; a transpose-add tree turns 16 rows x 4 blocks into 4
//    vectors of 16 block sums. With VBMI one 64-byte load per row and quad feeds both the quants
//    (vpermt2b) and the scales (vpermt2w); without, the quants come from 16-byte loads and the scales
//    from a vpermt2w transpose (gathers cost ~25 cycles each on Zen 5). Each quad also prefetches its
//    share of the next pass's rows in address order: hardware prefetch alone streams 16 interleaved
//    rows at ~40-60% of the sequential bandwidth.
//  - packed weights and prefill (AVX-512): one tile kernel (pk_tile) over 16-row groups in the packed
//    layout (lane = row, 4 consecutive weights per dword lane, 16 fp16 scales per block; see "Weight
//    repacking"): per block one vpdpbusd per 4 activations (broadcast) and token, two chains per (block,
//    token) and several blocks per step when there are few tokens; each (token, block) ends in cvt, two
//    multiplies and one add. Weights repacked at load stream straight from memory (decode prefetches 8 KB
//    ahead); weights in the file's rows are packed per chunk into a stack panel first (prefill only; their
//    decode is the scheme above). The reduction dimension is split in chunks; between chunks the running
//    sums live in y itself (a float store and load is exact).
//  - AVX2: the same schemes with vpmaddubsw + vpmaddwd. q4_0 (nibble x int8) cannot saturate; q8_0
//    decode uses |w| x sign(x, w), exact unless an activation byte is -128 (q8_0::quantize_block never
//    makes one; such a token goes through the prefill kernel), q8_0 prefill the nibble split
//    w + 128 = 16 * hi + lo, exact for all bytes. Up to 4 tokens decode one by one.
//  - AVX-VNNI without AVX-512 (Alder Lake and later clients; Zen 5 has it too): the AVX2 decode with
//    vpdpbusd (inline asm, VEX) in place of vpmaddubsw + vpmaddwd (q8_0 as w + 128, exact for all bytes), and a
//    prefill whose 8-row panel holds unsigned bytes as the AVX-512 one (one VEX vpdpbusd per 4
//    activations, two chains per token, 4-token tiles). Kernel harness on Zen 5 (ymm): q4_0 prefill
//    1143 tok/s vs 917 for AVX2, q8_0 1044 vs 497.
//  - f32: decode 16 (AVX2: 4) rows per pass with one transposed 16-way reduction and a per-row
//    prefetch 1 KB ahead; prefill 4 rows x 4 tokens (AVX2: 2 x 3) register tiles over row blocks that
//    stay in L2.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <edgelm/core/half.hpp>
#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/f32.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(EDGELM_NO_X86_KERNELS)
#define EDGELM_X86_ENABLED 1
#include <cpuid.h>
#include <immintrin.h>
#endif

// EDGELM_X86_NO_SANITIZE (the sanitize preset sets it for every target but edgelm_x86_tests): the
// kernels below are compiled without ASan/UBSan instrumentation. Instrumenting their unrolled
// AVX-512 bodies costs clang 14 minutes per translation unit; edgelm_x86_tests (tests/test_x86_paths.cpp)
// is the one binary that checks them instrumented, and everything around them (loaders, model,
// session) stays instrumented everywhere.
#if defined(EDGELM_X86_NO_SANITIZE)
#define EDGELM_X86_NOSAN __attribute__((no_sanitize("address", "undefined")))
#else
#define EDGELM_X86_NOSAN
#endif

namespace edgelm::backends::x86 {

namespace detail {

// The paths: avx512vbmi = the AVX-512 VNNI kernels with the VBMI decode (Ice Lake, Zen 4 and later),
// avx512vnni = the same without VBMI (Cascade Lake), avxvnni = AVX2 + FMA + F16C + AVX-VNNI without
// AVX-512 (Alder Lake and later clients: the AVX2 kernels with a vpdpbusd prefill), avx2 = AVX2 + FMA +
// F16C.
enum class isa_t { none = 0, avx2 = 1, avxvnni = 2, avx512vnni = 3, avx512vbmi = 4 };

inline const char* isa_string(isa_t i) noexcept {
  switch (i) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: return "avx512vnni";
    case isa_t::avxvnni: return "avxvnni";
    case isa_t::avx2: return "avx2";
    default: return nullptr;
  }
}

// AVX-VNNI (cpuid leaf 7, subleaf 1, eax bit 4; its ymm state is covered by avx2's OS check).
inline bool has_avxvnni() noexcept {
#if defined(EDGELM_X86_ENABLED)
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
#else
  return false;
#endif
}

// The best path this CPU (and OS) supports. clang 14's __builtin_cpu_supports knows neither "f16c" nor
// "avxvnni", so f16c comes from cpuid (its register state is covered by avx2's OS check).
inline isa_t detect_isa() noexcept {
#if defined(EDGELM_X86_ENABLED)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return isa_t::none;
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u);
  if (!f16c) return isa_t::none;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni"))
    return __builtin_cpu_supports("avx512vbmi") ? isa_t::avx512vbmi : isa_t::avx512vnni;
  return has_avxvnni() ? isa_t::avxvnni : isa_t::avx2;
#else
  return isa_t::none;
#endif
}

inline isa_t cpu_isa() noexcept {
  static const isa_t v = detect_isa();
  return v;
}

// Blocks of the reduction dimension per chunk, and tokens per prefill chunk (stack buffers: decode
// ~10 KB, prefill ~34 KB).
inline constexpr std::size_t mv_quads = 32;      // decode: 128 blocks (4096 elements) per chunk
inline constexpr std::size_t mv_stride = 320;    // bytes of rearranged activations per quad of blocks
inline constexpr std::size_t gm_kc = 32;         // prefill: blocks per chunk
inline constexpr std::size_t gm_tc = 64;         // prefill: tokens per chunk
inline constexpr std::size_t gm_min_vbmi_q4 = 16;  // AVX-512 with VBMI: up to this many tokens decode in groups of 4
inline constexpr std::size_t gm_min_vbmi_q8 = 8;
inline constexpr std::size_t gm_min = 4;         // without: up to this many tokens decode one by one
inline constexpr std::size_t pk_prep_blocks = 2048;  // packed weights: prepared (token, block) pairs per chunk
inline constexpr std::size_t pk_dist = 8192;     // packed decode: software prefetch distance (bytes; Zen 5: 2 KB 0.8x, 4-32 KB alike)

// Per (token, block) of a prefill chunk: -offset * sum(x) and fp16(d_x) as float.
struct xblock {
  std::int32_t corr;
  float dx;
};

inline std::int32_t load_i32(const void* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace detail

#if defined(EDGELM_X86_ENABLED)

// GCC 12's AVX-512 headers build _mm512_undefined_*() from a self-initialised variable, which
// -Wall reports at every inlined use (GCC PR 105593, fixed in 12.3): silence that here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace detail {

// Decode prefetch: hardware prefetch alone streams the 16 interleaved rows of a pass at only ~60% of
// the sequential bandwidth (Zen 5; on a Sapphire-Rapids-class Xeon at ~40%), so each quad of blocks
// also prefetches its share of the next pass's rows, segment by segment in address order (DRAM-page
// friendly; the segment of a row is its part in the current chunk of the reduction dimension). T0:
// NTA is as fast on Zen 5 but 2.5x slower on the Xeon; 1.5 or 2 passes ahead and prefetching each row
// ahead of itself measured worse. Addresses are integers: a prefetch never faults and no pointer is
// formed past the rows; end = the end of the caller's rows.
struct pf_stream {
  std::uintptr_t a = 0;    // next address
  std::uintptr_t se = 0;   // end of the current row segment (Seg)
  std::uintptr_t end = 0;  // end of the caller's rows
  std::size_t step = 0;    // bytes per quad of blocks
  std::size_t gap = 0;     // row bytes - segment bytes (Seg)
  std::size_t rowb = 0;
};

// Seg = the chunk is not the whole row: walk the next pass's row segments one after the other (the
// plain walk keeps fewer registers live in the hot loop).
template <bool Seg>
inline void pf_next(pf_stream& s) noexcept {
  for (std::size_t l = 0; l < s.step; l += 64) {
    if (s.a < s.end) _mm_prefetch(reinterpret_cast<const char*>(s.a), _MM_HINT_T0);
    s.a += 64;
    if (Seg && s.a >= s.se) {
      s.a += s.gap;
      s.se += s.rowb;
    }
  }
}

// The stream for the pass of rows [r, r + R) of w (nb blocks a row), chunk [kb, kb + kc).
template <class WB, unsigned R>
inline pf_stream pf_pass(const WB* w, std::size_t nb, std::size_t r, std::size_t kb, std::size_t kc, std::uintptr_t end) noexcept {
  pf_stream s;
  s.a = reinterpret_cast<std::uintptr_t>(w) + ((r + R) * nb + kb) * sizeof(WB);
  s.se = s.a + kc * sizeof(WB);
  s.end = end;
  s.rowb = nb * sizeof(WB);
  s.gap = (nb - kc) * sizeof(WB);
  const std::size_t nquads = (kc + 3) / 4;
  s.step = (R * kc * sizeof(WB) + 64 * nquads - 1) / (64 * nquads) * 64;
  return s;
}

// Prefill: the next panel's row segments [w + i * nb, + kc blocks), i < rows (T0: they are packed after
// this panel's tiles).
template <class WB>
inline void pf_panel(const WB* w, std::size_t nb, unsigned rows, std::size_t kc) noexcept {
  for (unsigned i = 0; i < rows; ++i) {
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(w + i * nb), e = a + kc * sizeof(WB);
    for (std::uintptr_t l = a & ~std::uintptr_t{63}; l < e; l += 64) _mm_prefetch(reinterpret_cast<const char*>(l), _MM_HINT_T0);
  }
}


}  // namespace detail

#define EDGELM_X86_T512 EDGELM_X86_NOSAN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define EDGELM_X86_I512 EDGELM_X86_T512 inline __attribute__((always_inline))

namespace detail::k512 {

// Keeps the compiler from contracting a product into a later add (and from reassociating sums).
EDGELM_X86_I512 __m512 pin(__m512 v) noexcept {
  __asm__("" : "+v"(v));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Quantized decode
// ---------------------------------------------------------------------------------------------

// Rearranged activations of one quad of blocks (b .. b+3; blocks past the row are zero), dx[4] at 256:
//   planes (q4_0; q8_0 with several tokens): A = the first 16 bytes of each block (chunk j = block b+j), B = the
//         last 16, C = -offset * the per-lane sums of 4 of A + B, so that dpbusd(dpbusd(C, lo, A), hi, B)
//         leaves in chunk j the partial sums of block b+j;
//   pairs (q8_0, one token): A = [x_b | x_b+1], B = [x_b+2 | x_b+3], C / D = -128 * the per-lane
//         sums of 4 of A / B.
template <bool Planes>
EDGELM_X86_I512 void mv_prep_quad(unsigned char* out, const block_q8_0* x, std::size_t nq, int shift) noexcept {
  alignas(64) unsigned char a[64], b[64];
  float* dx = reinterpret_cast<float*>(out + 256);
  for (std::size_t j = 0; j < 4; ++j) {
    if (j < nq) {
      if (Planes) {
        std::memcpy(a + 16 * j, x[j].qs, 16);
        std::memcpy(b + 16 * j, x[j].qs + 16, 16);
      } else {
        std::memcpy((j < 2 ? a : b) + 32 * (j & 1), x[j].qs, 32);
      }
      dx[j] = fp16_to_f32(x[j].d);
    } else {
      if (Planes) {
        std::memset(a + 16 * j, 0, 16);
        std::memset(b + 16 * j, 0, 16);
      } else {
        std::memset((j < 2 ? a : b) + 32 * (j & 1), 0, 32);
      }
      dx[j] = 0.0f;
    }
  }
  const __m512i va = _mm512_load_si512(a), vb = _mm512_load_si512(b), ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  const __m128i sh = _mm_cvtsi32_si128(shift);
  _mm512_store_si512(out, va);
  _mm512_store_si512(out + 64, vb);
  if (Planes) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ones, va), ones, vb);
    _mm512_store_si512(out + 128, _mm512_sub_epi32(zero, _mm512_sll_epi32(s, sh)));
  } else {
    _mm512_store_si512(out + 128, _mm512_sub_epi32(zero, _mm512_sll_epi32(_mm512_dpbusd_epi32(zero, ones, va), sh)));
    _mm512_store_si512(out + 192, _mm512_sub_epi32(zero, _mm512_sll_epi32(_mm512_dpbusd_epi32(zero, ones, vb), sh)));
  }
}

// Partial sums of one row and four blocks (w = the row's block b; blocks past nq repeat block b, their
// sums are ignored): chunk j of the result = block b+j.
template <int NQ>
EDGELM_X86_I512 __m512i mv_row_quad(const block_q4_0* w, const unsigned char* xq, __m512i m0f) noexcept {
  constexpr int j1 = NQ > 1 ? 1 : 0, j2 = NQ > 2 ? 2 : 0, j3 = NQ > 3 ? 3 : 0;
  __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[0].qs)));
  z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[j1].qs)), 1);
  z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[j2].qs)), 2);
  z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[j3].qs)), 3);
  const __m512i lo = _mm512_and_si512(z, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m0f);
  const __m512i v = _mm512_dpbusd_epi32(_mm512_load_si512(xq + 128), lo, _mm512_load_si512(xq));
  return _mm512_dpbusd_epi32(v, hi, _mm512_load_si512(xq + 64));
}

template <int NQ>
EDGELM_X86_I512 __m512i mv_row_quad(const block_q8_0* w, const unsigned char* xq, __m512i m80) noexcept {
  constexpr int j1 = NQ > 1 ? 1 : 0, j2 = NQ > 2 ? 2 : 0, j3 = NQ > 3 ? 3 : 0;
  __m512i z0 = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[0].qs)));
  z0 = _mm512_inserti64x4(z0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j1].qs)), 1);
  __m512i z1 = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j2].qs)));
  z1 = _mm512_inserti64x4(z1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j3].qs)), 1);
  const __m512i v0 = _mm512_dpbusd_epi32(_mm512_load_si512(xq + 128), _mm512_xor_si512(z0, m80), _mm512_load_si512(xq));
  const __m512i v1 = _mm512_dpbusd_epi32(_mm512_load_si512(xq + 192), _mm512_xor_si512(z1, m80), _mm512_load_si512(xq + 64));
  // chunks of v0: [b lo, b hi, b+1 lo, b+1 hi], v1: [b+2 lo, ...] -> chunk j = block b+j
  return _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, 0x88), _mm512_shuffle_i32x4(v0, v1, 0xDD));
}

// Four rows' quad sums v0..v3 -> per chunk j: [sum of chunk j of v0, of v1, of v2, of v3].
EDGELM_X86_I512 __m512i hsum4x4(__m512i v0, __m512i v1, __m512i v2, __m512i v3) noexcept {
  const __m512i a0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i a1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a0, a1), _mm512_unpackhi_epi64(a0, a1));
}

// The scales of 16 rows x blocks b .. b+nq-1 as floats, lane = row: d[j] for block b+j (no gathers:
// they cost ~25 cycles each on Zen 5). rp[i] = row i at block b.
EDGELM_X86_I512 void mv_scales(const block_q4_0* const* rp, std::size_t nq, __m512 d[4]) noexcept {
  // one 64-byte load per row holds the four scales (words 0, 9, 18, 27); a short quad loads fewer bytes
  const __mmask64 lm = nq >= 4 ? ~__mmask64{0} : (__mmask64{1} << (18 * nq)) - 1;
  const __m512i ip = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 27, 50, 18, 41, 9, 32, 0);
  __m512i p[8];
  for (int k = 0; k < 8; ++k)
    p[k] = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(lm, rp[2 * k]), ip, _mm512_maskz_loadu_epi8(lm, rp[2 * k + 1]));
  // p[k] dword j = block j of rows 2k, 2k+1
  const __m512i iq = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i q0 = _mm512_permutex2var_epi32(p[0], iq, p[1]), q1 = _mm512_permutex2var_epi32(p[2], iq, p[3]);
  const __m512i q2 = _mm512_permutex2var_epi32(p[4], iq, p[5]), q3 = _mm512_permutex2var_epi32(p[6], iq, p[7]);
  // q[m] qword j = block j of rows 4m .. 4m+3
  const __m512i is = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i s0 = _mm512_permutex2var_epi64(q0, is, q1), s1 = _mm512_permutex2var_epi64(q2, is, q3);
  // s0 / s1 128-bit lane j = block j of rows 0..7 / 8..15
  const __m512i t01 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), s1);
  const __m512i t23 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4), s1);
  d[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(t01));
  d[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t01, 1));
  d[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(t23));
  d[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t23, 1));
}

EDGELM_X86_I512 void mv_scales(const block_q8_0* const* rp, std::size_t nq, __m512 d[4]) noexcept {
  // two 64-byte loads per row (bytes 0..63 and 64..127 of the quad): scales at words 0, 17 and 2, 19
  const std::size_t bytes = 34 * nq;
  const __mmask64 la = bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
  const __mmask64 lb = bytes >= 128 ? ~__mmask64{0} : bytes <= 64 ? __mmask64{0} : (__mmask64{1} << (bytes - 64)) - 1;
  const __m512i ir = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34, 17, 0);
  __m512i p[8];
  for (int k = 0; k < 8; ++k) {
    const unsigned char* a = reinterpret_cast<const unsigned char*>(rp[2 * k]);
    const unsigned char* b = reinterpret_cast<const unsigned char*>(rp[2 * k + 1]);
    const __m512i ra = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(la, a), ir, _mm512_maskz_loadu_epi8(lb, a + 64));
    const __m512i rb = _mm512_permutex2var_epi16(_mm512_maskz_loadu_epi8(la, b), ir, _mm512_maskz_loadu_epi8(lb, b + 64));
    p[k] = _mm512_unpacklo_epi16(ra, rb);
  }
  const __m512i iq = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i q0 = _mm512_permutex2var_epi32(p[0], iq, p[1]), q1 = _mm512_permutex2var_epi32(p[2], iq, p[3]);
  const __m512i q2 = _mm512_permutex2var_epi32(p[4], iq, p[5]), q3 = _mm512_permutex2var_epi32(p[6], iq, p[7]);
  const __m512i is = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i s0 = _mm512_permutex2var_epi64(q0, is, q1), s1 = _mm512_permutex2var_epi64(q2, is, q3);
  const __m512i t01 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), s1);
  const __m512i t23 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4), s1);
  d[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(t01));
  d[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t01, 1));
  d[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(t23));
  d[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t23, 1));
}

// 16 rows' quad sums of blocks b .. b+3: o[j] lane r = the int32 sum of row r, block b+j.
template <int NQ, class WB>
EDGELM_X86_I512 void mv_quad_sums(const WB* const* rp, const unsigned char* xq, __m512i mconst, __m512i o[4]) noexcept {
  __m512i s[4];
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m)
    s[m] = hsum4x4(mv_row_quad<NQ>(rp[4 * m], xq, mconst), mv_row_quad<NQ>(rp[4 * m + 1], xq, mconst), mv_row_quad<NQ>(rp[4 * m + 2], xq, mconst),
                   mv_row_quad<NQ>(rp[4 * m + 3], xq, mconst));
  // s[m] chunk j = rows 4m..4m+3 of block b+j
  const __m512i t0 = _mm512_shuffle_i32x4(s[0], s[1], 0x44), t1 = _mm512_shuffle_i32x4(s[0], s[1], 0xEE);
  const __m512i t2 = _mm512_shuffle_i32x4(s[2], s[3], 0x44), t3 = _mm512_shuffle_i32x4(s[2], s[3], 0xEE);
  o[0] = _mm512_shuffle_i32x4(t0, t2, 0x88);
  o[1] = _mm512_shuffle_i32x4(t0, t2, 0xDD);
  o[2] = _mm512_shuffle_i32x4(t1, t3, 0x88);
  o[3] = _mm512_shuffle_i32x4(t1, t3, 0xDD);
}

// One pass: rows w, w + nb, ... (cnt <= 16 of them, the rest repeat the last), blocks [0, kc) of the
// chunk [kb, kb + kc) whose rearranged activations are xp. y = this pass's 16 outputs (running sums
// when kb > 0).
template <class WB, bool Seg>
EDGELM_X86_T512 inline void mv_pass(float* y, const WB* w, std::size_t nb, unsigned cnt, const unsigned char* xp, std::size_t kb, std::size_t kc,
                                    pf_stream pf) noexcept {
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1u);
  const __m512i mconst = _mm512_set1_epi8(std::is_same_v<WB, block_q4_0> ? 0x0F : static_cast<char>(0x80));
  __m512 acc = kb == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y);
  for (std::size_t b = 0; b < kc; b += 4) {
    const unsigned char* xq = xp + (b / 4) * mv_stride;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    pf_next<Seg>(pf);
    const WB* rb[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) rb[i] = rp[i] + b;
    __m512i o[4];
    __m512 d[4];
    switch (nq) {
      case 4: mv_quad_sums<4>(rb, xq, mconst, o); break;
      case 3: mv_quad_sums<3>(rb, xq, mconst, o); break;
      case 2: mv_quad_sums<2>(rb, xq, mconst, o); break;
      default: mv_quad_sums<1>(rb, xq, mconst, o); break;
    }
    mv_scales(rb, nq, d);
    const float* dx = reinterpret_cast<const float*>(xq + 256);
    for (std::size_t j = 0; j < nq; ++j) {
      const __m512 sc = _mm512_mul_ps(d[j], _mm512_set1_ps(dx[j]));
      acc = _mm512_add_ps(acc, pin(_mm512_mul_ps(_mm512_cvtepi32_ps(o[j]), sc)));
    }
  }
  _mm512_mask_storeu_ps(y, mask, acc);
}

// ---- the same decode with AVX512-VBMI (Ice Lake, Zen 4 and later): one 64-byte load per row and
// quad (plus the tail of the quad) feeds both the quants (vpermt2b) and the scales (vpermt2w).
#define EDGELM_X86_T512V EDGELM_X86_NOSAN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")))
#define EDGELM_X86_I512V EDGELM_X86_T512V inline __attribute__((always_inline))

// Row quad (blocks w[0..NQ)) x T tokens: v[t] = token t's partial sums (chunk j = block j), r = a
// vector whose words hold the scales where the pair permute below finds them. The weights are loaded
// and unpacked once for the T tokens (xq[t] = token t's rearranged activations of the quad).
template <int NQ, int T>
EDGELM_X86_I512V void mvv_row(const block_q4_0* w, const unsigned char* const* xq, __m512i iqs, __m512i m0f, __m512i* v, __m512i& r) noexcept {
  __m512i zx;
  if (NQ == 4) {
    r = _mm512_loadu_si512(w);
    zx = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[3].qs)));
  } else {
    r = _mm512_maskz_loadu_epi8((__mmask64{1} << (18 * NQ)) - 1, w);
    zx = _mm512_setzero_si512();
  }
  const __m512i z = _mm512_permutex2var_epi8(r, iqs, zx);
  const __m512i lo = _mm512_and_si512(z, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m0f);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
    v[t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_load_si512(xq[t] + 128), lo, _mm512_load_si512(xq[t])), hi, _mm512_load_si512(xq[t] + 64));
}

template <int NQ, int T>
EDGELM_X86_I512V void mvv_row(const block_q8_0* w, const unsigned char* const* xq, __m512i iqs, __m512i m80, __m512i* v, __m512i& r) noexcept {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(w);
  auto bytes_mask = [](int n) { return n >= 64 ? ~__mmask64{0} : n <= 0 ? __mmask64{0} : (__mmask64{1} << n) - 1; };
  constexpr int bytes = 34 * NQ;
  __m512i z0, z1;
  if (NQ == 4) {
    z0 = _mm512_loadu_si512(p);
    z1 = _mm512_loadu_si512(p + 64);
  } else {
    z0 = _mm512_maskz_loadu_epi8(bytes_mask(bytes), p);
    z1 = _mm512_maskz_loadu_epi8(bytes_mask(bytes - 64), p + 64);
  }
  if (T == 1) {
    // [x_b | x_b+1] = bytes 2..33, 36..67 of (z0, z1); [x_b+2 | x_b+3] = bytes 70..101, 104..135 of (z1, z2)
    const __m512i z2 = NQ == 4 ? _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 128))) : _mm512_setzero_si512();
    const __m512i a = _mm512_xor_si512(_mm512_permutex2var_epi8(z0, iqs, z1), m80);
    const __m512i b = _mm512_xor_si512(_mm512_permutex2var_epi8(z1, _mm512_add_epi8(iqs, _mm512_set1_epi8(4)), z2), m80);
    const __m512i v0 = _mm512_dpbusd_epi32(_mm512_load_si512(xq[0] + 128), a, _mm512_load_si512(xq[0]));
    const __m512i v1 = _mm512_dpbusd_epi32(_mm512_load_si512(xq[0] + 192), b, _mm512_load_si512(xq[0] + 64));
    // chunks of v0: [b lo, b hi, b+1 lo, b+1 hi], v1: [b+2 lo, ...] -> chunk j = block b+j
    v[0] = _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, 0x88), _mm512_shuffle_i32x4(v0, v1, 0xDD));
  } else {
    // planes (no per-token combine): the low halves of the four blocks lie in bytes 2..119 of the quad,
    // the high halves in 18..135 (the 128-byte window at 8)
    __m512i z2, z3;
    if (NQ == 4) {
      z2 = _mm512_loadu_si512(p + 8);
      z3 = _mm512_loadu_si512(p + 72);
    } else {
      z2 = _mm512_maskz_loadu_epi8(bytes_mask(bytes - 8), p + 8);
      z3 = _mm512_maskz_loadu_epi8(bytes_mask(bytes - 72), p + 72);
    }
    const __m512i ipl = _mm512_set_epi8(119, 118, 117, 116, 115, 114, 113, 112, 111, 110, 109, 108, 107, 106, 105, 104,  //
                                        85, 84, 83, 82, 81, 80, 79, 78, 77, 76, 75, 74, 73, 72, 71, 70,                  //
                                        51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36,                  //
                                        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
    const __m512i lo = _mm512_xor_si512(_mm512_permutex2var_epi8(z0, ipl, z1), m80);
    const __m512i hi = _mm512_xor_si512(_mm512_permutex2var_epi8(z2, _mm512_add_epi8(ipl, _mm512_set1_epi8(8)), z3), m80);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
      v[t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_load_si512(xq[t] + 128), lo, _mm512_load_si512(xq[t])), hi, _mm512_load_si512(xq[t] + 64));
  }
  // scales at bytes 0, 34 of z0 and 4, 38 of z1 -> words 0..3
  r = _mm512_permutex2var_epi16(z0, _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34, 17, 0), z1);
}

// Two rows' scale vectors -> 8 words: [r.d0, r'.d0, r.d1, r'.d1, ...]
EDGELM_X86_I512V __m512i mvv_pair(const block_q4_0*, __m512i a, __m512i b) noexcept {
  return _mm512_permutex2var_epi16(a, _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 27, 50, 18, 41, 9, 32, 0), b);
}
EDGELM_X86_I512V __m512i mvv_pair(const block_q8_0*, __m512i a, __m512i b) noexcept { return _mm512_unpacklo_epi16(a, b); }

// s[m] chunk j = rows 4m..4m+3 of block b+j  ->  o[j] = rows 0..15 of block b+j
EDGELM_X86_I512V void mvv_transpose(const __m512i s[4], __m512i o[4]) noexcept {
  const __m512i t0 = _mm512_shuffle_i32x4(s[0], s[1], 0x44), t1 = _mm512_shuffle_i32x4(s[0], s[1], 0xEE);
  const __m512i t2 = _mm512_shuffle_i32x4(s[2], s[3], 0x44), t3 = _mm512_shuffle_i32x4(s[2], s[3], 0xEE);
  o[0] = _mm512_shuffle_i32x4(t0, t2, 0x88);
  o[1] = _mm512_shuffle_i32x4(t0, t2, 0xDD);
  o[2] = _mm512_shuffle_i32x4(t1, t3, 0x88);
  o[3] = _mm512_shuffle_i32x4(t1, t3, 0xDD);
}

// 16 rows x a quad x T tokens: o[t][j] lane r = the int32 sum of row r, block b+j, token t; d[j] the
// rows' scales of block b+j.
template <int NQ, int T, class WB>
EDGELM_X86_I512V void mvv_quad(const WB* const* rb, const unsigned char* const* xq, __m512i iqs, __m512i mconst, __m512i (*o)[4], __m512 d[4]) noexcept {
  __m512i s[T][4], q[4];
  const __m512i iq = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 19, 3, 18, 2, 17, 1, 16, 0);
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    __m512i v0[T], v1[T], v2[T], v3[T], r0, r1, r2, r3;
    mvv_row<NQ, T>(rb[4 * m], xq, iqs, mconst, v0, r0);
    mvv_row<NQ, T>(rb[4 * m + 1], xq, iqs, mconst, v1, r1);
    mvv_row<NQ, T>(rb[4 * m + 2], xq, iqs, mconst, v2, r2);
    mvv_row<NQ, T>(rb[4 * m + 3], xq, iqs, mconst, v3, r3);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) s[t][m] = hsum4x4(v0[t], v1[t], v2[t], v3[t]);
    q[m] = _mm512_permutex2var_epi32(mvv_pair(rb[0], r0, r1), iq, mvv_pair(rb[0], r2, r3));
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) mvv_transpose(s[t], o[t]);
  // q[m] qword j = block j of rows 4m .. 4m+3 -> d[j]
  const __m512i is = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i s0 = _mm512_permutex2var_epi64(q[0], is, q[1]), s1 = _mm512_permutex2var_epi64(q[2], is, q[3]);
  const __m512i t01 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), s1);
  const __m512i t23 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4), s1);
  d[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(t01));
  d[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t01, 1));
  d[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(t23));
  d[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t23, 1));
}

// One pass of 16 rows x T tokens: y[t] = token t's 16 outputs, xp + t * xstride = its rearranged
// activations of the chunk.
template <class WB, int T, bool Seg>
EDGELM_X86_T512V inline void mvv_pass(float* const* y, const WB* w, std::size_t nb, unsigned cnt, const unsigned char* xp, std::size_t xstride,
                                      std::size_t kb, std::size_t kc, pf_stream pf) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1u);
  const __m512i mconst = _mm512_set1_epi8(q4 ? 0x0F : static_cast<char>(0x80));
  // byte permutes of the quants, output byte 16j + i: q4_0 <- 18j + 2 + i (j < 3), 64 + i (j = 3);
  // q8_0 output byte i <- 2 + i (i < 32), 4 + i (i >= 32), then the same + 4 from the window at 64
  alignas(64) std::int8_t ib[64];
  for (int k = 0; k < 64; ++k) ib[k] = static_cast<std::int8_t>(q4 ? (k < 48 ? 18 * (k / 16) + 2 + k % 16 : 64 + k % 16) : (k < 32 ? 2 + k : 4 + k));
  const __m512i iqs = _mm512_load_si512(ib);
  __m512 acc[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) acc[t] = kb == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y[t]);
  for (std::size_t b = 0; b < kc; b += 4) {
    const unsigned char* xq[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xq[t] = xp + t * xstride + (b / 4) * mv_stride;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    pf_next<Seg>(pf);
    const WB* rb[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) rb[i] = rp[i] + b;
    __m512i o[T][4];
    __m512 d[4];
    switch (nq) {
      case 4: mvv_quad<4, T>(rb, xq, iqs, mconst, o, d); break;
      case 3: mvv_quad<3, T>(rb, xq, iqs, mconst, o, d); break;
      case 2: mvv_quad<2, T>(rb, xq, iqs, mconst, o, d); break;
      default: mvv_quad<1, T>(rb, xq, iqs, mconst, o, d); break;
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const float* dx = reinterpret_cast<const float*>(xq[t] + 256);
      for (std::size_t j = 0; j < nq; ++j) {
        const __m512 sc = _mm512_mul_ps(d[j], _mm512_set1_ps(dx[j]));
        acc[t] = _mm512_add_ps(acc[t], pin(_mm512_mul_ps(_mm512_cvtepi32_ps(o[t][j]), sc)));
      }
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y[t], mask, acc[t]);
}

// Decode of T tokens (1 .. 4; more than one only with VBMI) in one stream over the rows.
template <class WB, int T>
EDGELM_X86_T512 inline void matvec_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                     std::uint32_t r0, std::uint32_t r1, bool vbmi) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  constexpr std::size_t kq = mv_quads / T;  // quads per chunk and token
  alignas(64) unsigned char xp[mv_quads * mv_stride];
  const std::uintptr_t pf_end = reinterpret_cast<std::uintptr_t>(wd + std::size_t{r1} * nb);
  for (std::size_t kb = 0; kb < nb; kb += 4 * kq) {
    const std::size_t kc = nb - kb < 4 * kq ? nb - kb : 4 * kq;
    for (int t = 0; t < T; ++t)
      for (std::size_t b = 0; b < kc; b += 4) {
        const std::size_t nq = kc - b < 4 ? kc - b : 4;
        unsigned char* o = xp + t * kq * mv_stride + (b / 4) * mv_stride;
        if (q4 || T > 1)  // q8_0 with several tokens (VBMI only) uses the planes layout too
          mv_prep_quad<true>(o, x + t * ldx + kb + b, nq, q4 ? 3 : 7);
        else
          mv_prep_quad<false>(o, x + t * ldx + kb + b, nq, 7);
      }
    for (std::uint32_t r = r0; r < r1; r += 16) {
      const unsigned cnt = r1 - r < 16 ? r1 - r : 16;
      const WB* w = wd + std::size_t{r} * nb + kb;
      const pf_stream pf = pf_pass<WB, 16>(wd, nb, r, kb, kc, pf_end);
      float* yt[T];
      for (int t = 0; t < T; ++t) yt[t] = y + t * ldy + r;
      const bool seg = kc != nb;
      if (vbmi) {
        if (seg)
          mvv_pass<WB, T, true>(yt, w, nb, cnt, xp, kq * mv_stride, kb, kc, pf);
        else
          mvv_pass<WB, T, false>(yt, w, nb, cnt, xp, kq * mv_stride, kb, kc, pf);
      } else if (seg) {  // T == 1
        mv_pass<WB, true>(yt[0], w, nb, cnt, xp, kb, kc, pf);
      } else {
        mv_pass<WB, false>(yt[0], w, nb, cnt, xp, kb, kc, pf);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantized prefill
// ---------------------------------------------------------------------------------------------

// 4x4 transpose of dwords inside each 128-bit lane: z[k] chunk m = row (k + 4m) -> out[g] lane 4m + k
// = dword g of row 4m + k.
EDGELM_X86_I512 void transpose4(const __m512i z[4], __m512i out[4]) noexcept {
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

EDGELM_X86_I512 __m512i load4x16(const void* p0, const void* p1, const void* p2, const void* p3) noexcept {
  __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(static_cast<const __m128i*>(p0)));
  z = _mm512_inserti32x4(z, _mm_loadu_si128(static_cast<const __m128i*>(p1)), 1);
  z = _mm512_inserti32x4(z, _mm_loadu_si128(static_cast<const __m128i*>(p2)), 2);
  return _mm512_inserti32x4(z, _mm_loadu_si128(static_cast<const __m128i*>(p3)), 3);
}

// Panel of 16 rows (w = row 0 at the chunk's first block; cnt rows, the rest repeat the last) x kc
// blocks in the packed layout (see "Weight repacking"): per block the NG vectors of lane-per-row dwords
// (q4_0: the file's nibble bytes; q8_0: w ^ 0x80) and the 16 fp16 scales, so that the prefill of weights
// in the file's rows runs the same tiles (pk_tile) as repacked weights.
template <class WB>
EDGELM_X86_T512 inline void gm_pack(unsigned char* dst, const WB* w, std::size_t nb, unsigned cnt, std::size_t kc) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  constexpr std::size_t PB = q4 ? 288 : 544, NG = q4 ? 4 : 8;
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __m512i m80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::size_t b = 0; b < kc; ++b) {
    unsigned char* o = dst + b * PB;
    __m512i z[4], t[4];
    for (int k = 0; k < 4; ++k) z[k] = load4x16(rp[k][b].qs, rp[k + 4][b].qs, rp[k + 8][b].qs, rp[k + 12][b].qs);
    transpose4(z, t);
    if (q4) {
      for (int g = 0; g < 4; ++g) _mm512_storeu_si512(o + 64 * g, t[g]);
    } else {
      for (int g = 0; g < 4; ++g) _mm512_storeu_si512(o + 64 * g, _mm512_xor_si512(t[g], m80));
      for (int k = 0; k < 4; ++k) z[k] = load4x16(rp[k][b].qs + 16, rp[k + 4][b].qs + 16, rp[k + 8][b].qs + 16, rp[k + 12][b].qs + 16);
      transpose4(z, t);
      for (int g = 0; g < 4; ++g) _mm512_storeu_si512(o + 64 * (g + 4), _mm512_xor_si512(t[g], m80));
    }
  }
  // the scales, four blocks at a time (a gather costs ~25 cycles on Zen 5), back to fp16 (exact)
  for (std::size_t b = 0; b < kc; b += 4) {
    const WB* rb[16];
    for (int i = 0; i < 16; ++i) rb[i] = rp[i] + b;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    __m512 d[4];
    mv_scales(rb, nq, d);
    for (std::size_t j = 0; j < nq; ++j)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (b + j) * PB + NG * 64), _mm512_cvtps_ph(d[j], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// -offset * sum(x) and the scale of each block of tokens [0, tc) (x = token 0 at the chunk's first
// block, stride ldx), blocks [0, kc): out[t * gm_kc + b].
EDGELM_X86_T512 inline void gm_prep(xblock* out, const block_q8_0* x, std::size_t ldx, std::size_t tc, std::size_t kc, int shift,
                                    std::size_t stride = gm_kc) noexcept {
  const __m256i m80 = _mm256_set1_epi8(static_cast<char>(0x80)), zero = _mm256_setzero_si256();
  for (std::size_t t = 0; t < tc; ++t)
    for (std::size_t b = 0; b < kc; ++b) {
      const block_q8_0& xb = x[t * ldx + b];
      // sum(x + 128) over the 32 bytes with vpsadbw, minus 32 * 128
      const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs)), m80), zero);
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const std::int32_t sum = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2))) - 4096;
      out[t * stride + b].corr = -sum * (1 << shift);
      out[t * stride + b].dx = fp16_to_f32(xb.d);
    }
}

// ---------------------------------------------------------------------------------------------
// Packed weights (repacked once at load by x86::pack; layout in the section "Weight repacking")
// ---------------------------------------------------------------------------------------------

// One step of UB blocks x NT tokens of a packed 16-row group: the int32 block sums as two chains per
// (block, token) (low and high halves of the block: exact integers, so the split cannot change them),
// then the float steps of the reference in block order. pk = the group's first block of the step.
template <int NT, int UB, bool Q4>
EDGELM_X86_I512 void pk_step(const unsigned char* pk, std::size_t b, const block_q8_0* const* xt, const xblock* const* xb, __m512* acc) noexcept {
  constexpr std::size_t PB = Q4 ? 288 : 544, NG = Q4 ? 4 : 8;
  __m512i lo[UB][NT], hi[UB][NT];
#pragma GCC unroll 8
  for (int u = 0; u < UB; ++u)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      lo[u][t] = _mm512_set1_epi32(xb[t][b + u].corr);
      hi[u][t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
  for (int u = 0; u < UB; ++u) {
    const unsigned char* o = pk + u * PB;
    if constexpr (Q4) {
      const __m512i m0f = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m512i w = _mm512_loadu_si512(o + 64 * g);
        const __m512i wl = _mm512_and_si512(w, m0f), wh = _mm512_and_si512(_mm512_srli_epi16(w, 4), m0f);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          lo[u][t] = _mm512_dpbusd_epi32(lo[u][t], wl, _mm512_set1_epi32(load_i32(xt[t][b + u].qs + 4 * g)));
          hi[u][t] = _mm512_dpbusd_epi32(hi[u][t], wh, _mm512_set1_epi32(load_i32(xt[t][b + u].qs + 16 + 4 * g)));
        }
      }
    } else {
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m512i w = _mm512_loadu_si512(o + 64 * g);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          __m512i& c = g < 4 ? lo[u][t] : hi[u][t];
          c = _mm512_dpbusd_epi32(c, w, _mm512_set1_epi32(load_i32(xt[t][b + u].qs + 4 * g)));
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int u = 0; u < UB; ++u) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk + u * PB + NG * 64)));
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(xb[t][b + u].dx));
      acc[t] = _mm512_add_ps(acc[t], pin(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo[u][t], hi[u][t])), sc)));
    }
  }
}

// A packed group x NT tokens over blocks [0, kc) of a chunk (pk = the group's block kb, xt / xb at kb,
// yt[t] = token t's outputs of the group's 16 rows: running sums when !first, mask = live rows).
template <int NT, int UB, bool Q4>
EDGELM_X86_T512 inline void pk_tile(const unsigned char* pk, std::size_t kc, const block_q8_0* const* xt, const xblock* const* xb, float* const* yt,
                                    __mmask16 mask, bool first) noexcept {
  constexpr std::size_t PB = Q4 ? 288 : 544;
  __m512 acc[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, yt[t]);
  std::size_t b = 0;
  // Software prefetch pk_dist bytes ahead in the stream (the hardware prefetcher alone leaves the loads
  // waiting); integer addresses, so nothing is formed past the weights, and a prefetch never faults.
  std::uintptr_t pa = reinterpret_cast<std::uintptr_t>(pk) + pk_dist;
  const std::uintptr_t pe = reinterpret_cast<std::uintptr_t>(pk) + kc * PB + (NT <= 2 ? pk_dist : 0);
  for (; b + UB <= kc; b += UB) {
    if (NT <= 2)
      for (const std::uintptr_t e = pa + UB * PB; pa < e && pa < pe; pa += 64) _mm_prefetch(reinterpret_cast<const char*>(pa), _MM_HINT_T0);
    pk_step<NT, UB, Q4>(pk + b * PB, b, xt, xb, acc);
  }
  for (; b < kc; ++b) pk_step<NT, 1, Q4>(pk + b * PB, b, xt, xb, acc);
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(yt[t], mask, acc[t]);
}

// Tokens [t, t + nt) (nt <= 8) of one group and chunk.
template <bool Q4>
EDGELM_X86_T512 inline void pk_tiles(const unsigned char* pk, std::size_t kc, const block_q8_0* const* xt, const xblock* const* xb, float* const* yt,
                                     std::size_t nt, __mmask16 mask, bool first) noexcept {
  // few tokens: several blocks per step keep enough dpbusd chains in flight. One token: 2 blocks per step;
  // 4 (and its 34-line prefetch burst per step) streamed at ~0.7x the bandwidth of 1-3 on Zen 5 (SmolLM2-shaped
  // Q8_0 decode 1 thread: 236-249 tok/s vs 156-176).
  switch (nt) {
    case 8: pk_tile<8, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 7: pk_tile<7, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 6: pk_tile<6, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 5: pk_tile<5, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 4: pk_tile<4, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 3: pk_tile<3, 1, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    case 2: pk_tile<2, 2, Q4>(pk, kc, xt, xb, yt, mask, first); break;
    default: pk_tile<1, 2, Q4>(pk, kc, xt, xb, yt, mask, first); break;
  }
}

// y[t, r] for r0 <= r < r1 over 16-row groups in the packed layout; panel(g, kb, kc) gives group g's
// blocks [kb, kb + kc) (nb blocks a row). Decode (n <= 8) streams each group once over chunks of up to
// pk_prep_blocks / 8 blocks; prefill chunks the reduction dimension by gm_kc blocks (a group's chunk stays
// in L1 across the token tiles) and the tokens by gm_tc. Between chunks the running sums live in y
// (exact). The same values as the reference for any n, r0, r1.
template <class WB, class Panel>
EDGELM_X86_T512 inline void matmul_panels(float* y, std::size_t ldy, std::size_t nb, const block_q8_0* x, std::size_t ldx, std::size_t n,
                                          std::uint32_t r0, std::uint32_t r1, Panel&& panel) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  xblock xp[pk_prep_blocks];
  const bool decode = n <= 8;
  const std::size_t kcmax = decode ? pk_prep_blocks / 8 : gm_kc, tcmax = decode ? 8 : gm_tc;
  const std::uint32_t g0 = r0 / 16, g1 = (r1 + 15) / 16;
  for (std::size_t kb = 0; kb < nb; kb += kcmax) {
    const std::size_t kc = nb - kb < kcmax ? nb - kb : kcmax;
    for (std::size_t t0 = 0; t0 < n; t0 += tcmax) {
      const std::size_t tc = n - t0 < tcmax ? n - t0 : tcmax;
      gm_prep(xp, x + t0 * ldx + kb, ldx, tc, kc, q4 ? 3 : 7, kcmax);
      for (std::uint32_t g = g0; g < g1; ++g) {
        const std::uint32_t rb = g * 16, lo = r0 > rb ? r0 - rb : 0, hi = r1 - rb < 16 ? r1 - rb : 16;
        const __mmask16 mask = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
        const unsigned char* pk = panel(g, kb, kc);
        for (std::size_t t = 0; t < tc; t += 8) {
          const block_q8_0* xt[8];
          const xblock* xb[8];
          float* yt[8];
          const std::size_t nt = tc - t < 8 ? tc - t : 8;
          for (std::size_t i = 0; i < nt; ++i) {
            xt[i] = x + (t0 + t + i) * ldx + kb;
            xb[i] = xp + (t + i) * kcmax;
            yt[i] = y + (t0 + t + i) * ldy + rb;
          }
          pk_tiles<q4>(pk, kc, xt, xb, yt, nt, mask, kb == 0);
        }
      }
    }
  }
}

// Repacked weights (pw: x86::pack's layout).
template <class WB>
EDGELM_X86_T512 inline void matmul_packed(float* y, std::size_t ldy, const unsigned char* pw, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                          std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr std::size_t PB = std::is_same_v<WB, block_q4_0> ? 288 : 544;
  matmul_panels<WB>(y, ldy, nb, x, ldx, n, r0, r1,
                    [&](std::uint32_t g, std::size_t kb, std::size_t) noexcept { return pw + (std::size_t{g} * nb + kb) * PB; });
}

// Prefill of weights in the file's rows: each group's chunk is packed into a stack panel first (and the
// next group's rows are prefetched meanwhile), then the same tiles run.
template <class WB>
EDGELM_X86_T512 inline void gemm_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                   std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr std::size_t PB = std::is_same_v<WB, block_q4_0> ? 288 : 544;
  alignas(64) unsigned char pk[pk_prep_blocks / 8 * PB];  // the larger of the decode and prefill chunks
  matmul_panels<WB>(y, ldy, nb, x, ldx, n, r0, r1, [&](std::uint32_t g, std::size_t kb, std::size_t kc) noexcept {
    const std::uint32_t rb = g * 16, cnt = r1 - rb < 16 ? r1 - rb : 16;
    if (rb + 16 < r1) pf_panel(wd + std::size_t{rb + 16} * nb + kb, nb, r1 - (rb + 16) < 16 ? r1 - (rb + 16) : 16, kc);
    gm_pack(pk, wd + std::size_t{rb} * nb + kb, nb, cnt, kc);
    return static_cast<const unsigned char*>(pk);
  });
}

// Up to decode_max tokens stream the rows once per group of 4 (VBMI) or once per token; more go
// through the packed prefill kernel. Both compute the same values.
template <class WB>
EDGELM_X86_T512 inline void matmul_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                     std::size_t n, std::uint32_t r0, std::uint32_t r1, bool vbmi) noexcept {
  if (n > (vbmi ? (std::is_same_v<WB, block_q4_0> ? gm_min_vbmi_q4 : gm_min_vbmi_q8) : gm_min)) {
    gemm_q(y, ldy, wd, nb, x, ldx, n, r0, r1);
    return;
  }
  if (!vbmi) {
    for (std::size_t t = 0; t < n; ++t) matvec_q<WB, 1>(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, r0, r1, false);
    return;
  }
  // groups of 4 tokens (q8_0: 3; with 4 its register tile spills)
  constexpr std::size_t g = std::is_same_v<WB, block_q4_0> ? 4 : 3;
  std::size_t t = 0;
  for (; t + g <= n; t += g) matvec_q<WB, g>(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, r0, r1, true);
  switch (n - t) {
    case 3: matvec_q<WB, 3>(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, r0, r1, true); break;
    case 2: matvec_q<WB, 2>(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, r0, r1, true); break;
    case 1: matvec_q<WB, 1>(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, r0, r1, true); break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------------

// 16 accumulators -> one vector whose lane o is the reduction of a[o] by the tree of the header.
EDGELM_X86_I512 __m512 reduce16(const __m512* a) noexcept {
  // inputs are taken transposed (input 4l + c is a[4c + l]) so that the outputs come out in order
  __m512 p[8], q[4], r[2];
  for (int k = 0; k < 8; ++k) {
    const __m512 u = a[((2 * k) % 4) * 4 + (2 * k) / 4], v = a[((2 * k + 1) % 4) * 4 + (2 * k + 1) / 4];
    // t_j = x_j + x_(j+8): chunks [u0+u2, u1+u3, v0+v2, v1+v3]
    p[k] = _mm512_add_ps(_mm512_shuffle_f32x4(u, v, 0x44), _mm512_shuffle_f32x4(u, v, 0xEE));
  }
  // u_j = t_j + t_(j+4): chunk c of q[m] = input 4m + c
  for (int m = 0; m < 4; ++m) q[m] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * m], p[2 * m + 1], 0x88), _mm512_shuffle_f32x4(p[2 * m], p[2 * m + 1], 0xDD));
  // v0 = u0 + u1, v1 = u2 + u3
  for (int n = 0; n < 2; ++n) r[n] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * n], q[2 * n + 1], 0x88), _mm512_shuffle_ps(q[2 * n], q[2 * n + 1], 0xDD));
  // s = v0 + v1
  return _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], 0x88), _mm512_shuffle_ps(r[0], r[1], 0xDD));
}

// R rows (cnt live, the rest repeat the last) x one token; the reduction takes 16 vectors, the unused
// ones are copies (the tree of each lane depends only on its own vector).
template <int R>
EDGELM_X86_T512 inline void f32_rows(float* y, const float* w, std::size_t ldw, unsigned cnt, const float* x, std::size_t k, std::uintptr_t end) noexcept {
  const float* rp[R];
  for (unsigned i = 0; i < R; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * ldw;
  __m512 acc[16];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  std::size_t j = 0;
  // prefetch each row 1 KB ahead, past its end the same lane's row of the next pass (up to end)
  constexpr std::size_t ahead = 256;
  for (; j + 16 <= k; j += 16) {
    const __m512 xv = _mm512_loadu_ps(x + j);
    const std::size_t p = (j + ahead < k ? j + ahead : j + ahead + (R - 1) * ldw) * sizeof(float);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(rp[i]) + p;
      if (a < end) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(rp[i] + j), xv, acc[i]);
  }
  if (j < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - j)) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + j);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, rp[i] + j), xv, acc[i]);
  }
  for (int i = R; i < 16; ++i) acc[i] = acc[0];
  _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << cnt) - 1u), reduce16(acc));
}

// 4 rows x 4 tokens; lanes of the result: 4 * token + row.
EDGELM_X86_T512 inline void f32_tile4x4(float* const* yt, unsigned nt, unsigned cnt, const float* const* wr, const float* const* xt,
                                        std::size_t k) noexcept {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  std::size_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m512 w0 = _mm512_loadu_ps(wr[0] + j), w1 = _mm512_loadu_ps(wr[1] + j), w2 = _mm512_loadu_ps(wr[2] + j), w3 = _mm512_loadu_ps(wr[3] + j);
#pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      const __m512 xv = _mm512_loadu_ps(xt[t] + j);
      acc[4 * t] = _mm512_fmadd_ps(w0, xv, acc[4 * t]);
      acc[4 * t + 1] = _mm512_fmadd_ps(w1, xv, acc[4 * t + 1]);
      acc[4 * t + 2] = _mm512_fmadd_ps(w2, xv, acc[4 * t + 2]);
      acc[4 * t + 3] = _mm512_fmadd_ps(w3, xv, acc[4 * t + 3]);
    }
  }
  if (j < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - j)) - 1u);
    const __m512 w0 = _mm512_maskz_loadu_ps(m, wr[0] + j), w1 = _mm512_maskz_loadu_ps(m, wr[1] + j), w2 = _mm512_maskz_loadu_ps(m, wr[2] + j),
                 w3 = _mm512_maskz_loadu_ps(m, wr[3] + j);
    for (int t = 0; t < 4; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, xt[t] + j);
      acc[4 * t] = _mm512_fmadd_ps(w0, xv, acc[4 * t]);
      acc[4 * t + 1] = _mm512_fmadd_ps(w1, xv, acc[4 * t + 1]);
      acc[4 * t + 2] = _mm512_fmadd_ps(w2, xv, acc[4 * t + 2]);
      acc[4 * t + 3] = _mm512_fmadd_ps(w3, xv, acc[4 * t + 3]);
    }
  }
  const __m512 s = reduce16(acc);
  const __mmask8 rm = static_cast<__mmask8>((1u << cnt) - 1u);
  _mm_mask_storeu_ps(yt[0], rm, _mm512_castps512_ps128(s));
  if (nt > 1) _mm_mask_storeu_ps(yt[1], rm, _mm512_extractf32x4_ps(s, 1));
  if (nt > 2) _mm_mask_storeu_ps(yt[2], rm, _mm512_extractf32x4_ps(s, 2));
  if (nt > 3) _mm_mask_storeu_ps(yt[3], rm, _mm512_extractf32x4_ps(s, 3));
}

EDGELM_X86_T512 inline void matmul_f32(float* y, std::size_t ldy, const float* w, std::size_t k, const float* x, std::size_t ldx,
                                       std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  if (n == 1) {
    const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(w + std::size_t{r1} * k);
    for (std::uint32_t r = r0; r < r1; r += 16) f32_rows<16>(y + r, w + std::size_t{r} * k, k, r1 - r < 16 ? r1 - r : 16, x, k, end);
    return;
  }
  // row blocks of ~256 KB stay in L2 while every token tile passes over them
  std::size_t rb = (std::size_t{256} << 10) / (k * 4 + 1);
  rb = rb < 4 ? 4 : rb / 4 * 4;
  for (std::uint32_t rb0 = r0; rb0 < r1; rb0 = static_cast<std::uint32_t>(rb0 + rb)) {
    const std::uint32_t rb1 = r1 - rb0 < rb ? r1 : static_cast<std::uint32_t>(rb0 + rb);
    for (std::size_t t = 0; t < n; t += 4) {
      const unsigned nt = n - t < 4 ? static_cast<unsigned>(n - t) : 4;
      const float* xt[4];
      for (unsigned i = 0; i < 4; ++i) xt[i] = x + (t + (i < nt ? i : nt - 1)) * ldx;
      for (std::uint32_t r = rb0; r < rb1; r += 4) {
        const unsigned cnt = rb1 - r < 4 ? rb1 - r : 4;
        const float* wr[4];
        float* yt[4];
        for (unsigned i = 0; i < 4; ++i) {
          wr[i] = w + std::size_t{r + (i < cnt ? i : cnt - 1)} * k;
          yt[i] = y + (t + (i < nt ? i : nt - 1)) * ldy + r;
        }
        f32_tile4x4(yt, nt, cnt, wr, xt, k);
      }
    }
  }
}

}  // namespace detail::k512

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA + F16C (8 rows in the 8 lanes of a ymm)
// ---------------------------------------------------------------------------------------------
#define EDGELM_X86_T256 EDGELM_X86_NOSAN __attribute__((target("avx2,fma,f16c")))
#define EDGELM_X86_I256 EDGELM_X86_T256 inline __attribute__((always_inline))

namespace detail::k256 {

EDGELM_X86_I256 __m256 pin(__m256 v) noexcept {
  __asm__("" : "+x"(v));
  return v;
}

// Rearranged activations of a quad (the "planes" layout of the AVX-512 decode: A = the first 16 bytes
// of each block, B = the last 16, C = -offset * per-lane sums of 4 of A + B as 16 int32, dx at 256).
EDGELM_X86_I256 void mv_prep_quad(unsigned char* out, const block_q8_0* x, std::size_t nq, int offset) noexcept {
  float* dx = reinterpret_cast<float*>(out + 256);
  std::int32_t* c = reinterpret_cast<std::int32_t*>(out + 128);
  for (std::size_t j = 0; j < 4; ++j) {
    if (j < nq) {
      std::memcpy(out + 16 * j, x[j].qs, 16);
      std::memcpy(out + 64 + 16 * j, x[j].qs + 16, 16);
      dx[j] = fp16_to_f32(x[j].d);
    } else {
      std::memset(out + 16 * j, 0, 16);
      std::memset(out + 64 + 16 * j, 0, 16);
      dx[j] = 0.0f;
    }
  }
  for (int l = 0; l < 16; ++l) {
    std::int32_t s = 0;
    for (int i = 0; i < 4; ++i) s += static_cast<std::int8_t>(out[4 * l + i]) + static_cast<std::int8_t>(out[64 + 4 * l + i]);
    c[l] = -offset * s;
  }
}

// AVX-VNNI's vpdpbusd on ymm (VEX encoding): acc + the sums of 4 unsigned x signed byte products per
// dword. Inline asm, so the AVX2 functions it is inlined into need no avxvnni target; only the
// avxvnni path (cpuid-checked) reaches it.
EDGELM_X86_I256 __m256i dpbusd_vex(__m256i acc, __m256i u, __m256i s) noexcept {
  __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "x"(s));
  return acc;
}

EDGELM_X86_I256 __m256i load2x16(const void* p0, const void* p1) noexcept {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p0))),
                                 _mm_loadu_si128(static_cast<const __m128i*>(p1)), 1);
}

// One row, blocks w[0], w[j1]: [block 0 partial sums (4 lanes) | block j1's]; xq = the pair's x planes
// (A at xq, B at xq + 64, C at xq + 128, all at the pair's offset). Vnni: vpdpbusd instead of
// vpmaddubsw + vpmaddwd (the same exact integers: a nibble x int8 pair sum cannot saturate).
template <bool Vnni>
EDGELM_X86_I256 __m256i mv_row_pair(const block_q4_0* w0, const block_q4_0* w1, const unsigned char* xa, const unsigned char* xb,
                                    const unsigned char* xc) noexcept {
  const __m256i m0f = _mm256_set1_epi8(0x0F);
  const __m256i z = load2x16(w0->qs, w1->qs);
  const __m256i lo = _mm256_and_si256(z, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(z, 4), m0f);
  if constexpr (Vnni)
    return dpbusd_vex(dpbusd_vex(_mm256_load_si256(reinterpret_cast<const __m256i*>(xc)), lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(xa))), hi,
                      _mm256_load_si256(reinterpret_cast<const __m256i*>(xb)));
  const __m256i m = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(xa))),
                                     _mm256_maddubs_epi16(hi, _mm256_load_si256(reinterpret_cast<const __m256i*>(xb))));
  return _mm256_add_epi32(_mm256_madd_epi16(m, _mm256_set1_epi16(1)), _mm256_load_si256(reinterpret_cast<const __m256i*>(xc)));
}

// q8_0: |w| x sign(x, w) (exact when no activation byte is -128; the caller checks); C is zero.
// Vnni: (w ^ 0x80) = w + 128 unsigned x x, C = -128 x the sums of x: exact for all bytes.
template <bool Vnni>
EDGELM_X86_I256 __m256i mv_row_pair(const block_q8_0* w0, const block_q8_0* w1, const unsigned char* xa, const unsigned char* xb,
                                    const unsigned char* xc) noexcept {
  const __m256i one = _mm256_set1_epi16(1);
  const __m256i zl = load2x16(w0->qs, w1->qs), zh = load2x16(w0->qs + 16, w1->qs + 16);
  if constexpr (Vnni) {
    const __m256i m80 = _mm256_set1_epi8(static_cast<char>(0x80));
    return dpbusd_vex(dpbusd_vex(_mm256_load_si256(reinterpret_cast<const __m256i*>(xc)), _mm256_xor_si256(zl, m80),
                                 _mm256_load_si256(reinterpret_cast<const __m256i*>(xa))),
                      _mm256_xor_si256(zh, m80), _mm256_load_si256(reinterpret_cast<const __m256i*>(xb)));
  }
  (void)xc;
  const __m256i ml = _mm256_maddubs_epi16(_mm256_abs_epi8(zl), _mm256_sign_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(xa)), zl));
  const __m256i mh = _mm256_maddubs_epi16(_mm256_abs_epi8(zh), _mm256_sign_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(xb)), zh));
  return _mm256_add_epi32(_mm256_madd_epi16(ml, one), _mm256_madd_epi16(mh, one));
}

// four rows' pair sums -> per 128-bit lane: [row 0, row 1, row 2, row 3] sums of that lane's block
EDGELM_X86_I256 __m256i hsum4x4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) noexcept {
  const __m256i a0 = _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
  const __m256i a1 = _mm256_add_epi32(_mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(a0, a1), _mm256_unpackhi_epi64(a0, a1));
}

// 8 rows (rb[i] = row i at the pair's first block), blocks 0 and j1 -> o0, o1 lane r = row r's sums.
template <bool Vnni, class WB>
EDGELM_X86_I256 void mv_pair_sums(const WB* const* rb, int j1, const unsigned char* xa, const unsigned char* xb, const unsigned char* xc, __m256i& o0,
                                  __m256i& o1) noexcept {
  const __m256i s0 = hsum4x4(mv_row_pair<Vnni>(rb[0], rb[0] + j1, xa, xb, xc), mv_row_pair<Vnni>(rb[1], rb[1] + j1, xa, xb, xc),
                             mv_row_pair<Vnni>(rb[2], rb[2] + j1, xa, xb, xc), mv_row_pair<Vnni>(rb[3], rb[3] + j1, xa, xb, xc));
  const __m256i s1 = hsum4x4(mv_row_pair<Vnni>(rb[4], rb[4] + j1, xa, xb, xc), mv_row_pair<Vnni>(rb[5], rb[5] + j1, xa, xb, xc),
                             mv_row_pair<Vnni>(rb[6], rb[6] + j1, xa, xb, xc), mv_row_pair<Vnni>(rb[7], rb[7] + j1, xa, xb, xc));
  o0 = _mm256_permute2x128_si256(s0, s1, 0x20);
  o1 = _mm256_permute2x128_si256(s0, s1, 0x31);
}

// The scales of 8 rows at one block (gidx = row offsets in bytes from p).
EDGELM_X86_I256 __m256 mv_scale(const void* p, __m256i gidx) noexcept {
  const __m256i g = _mm256_and_si256(_mm256_i32gather_epi32(static_cast<const int*>(p), gidx, 1), _mm256_set1_epi32(0xFFFF));
  const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(g, g), 0x08);
  return _mm256_cvtph_ps(_mm256_castsi256_si128(pk));
}

template <class WB, bool Seg, bool Vnni>
EDGELM_X86_T256 inline void mv_pass(float* y, const WB* w, std::size_t nb, unsigned cnt, const unsigned char* xp, std::size_t kb, std::size_t kc,
                                    pf_stream pf) noexcept {
  const WB* rp[8];
  for (unsigned i = 0; i < 8; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  const __m256i gidx = _mm256_mullo_epi32(_mm256_min_epu32(lane, _mm256_set1_epi32(static_cast<int>(cnt - 1))),
                                          _mm256_set1_epi32(static_cast<int>(nb * sizeof(WB))));
  const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), lane);
  __m256 acc = kb == 0 ? _mm256_setzero_ps() : _mm256_maskload_ps(y, live);
  for (std::size_t b = 0; b < kc; b += 4) {
    pf_next<Seg>(pf);
    const unsigned char* xq = xp + (b / 4) * mv_stride;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    const float* dx = reinterpret_cast<const float*>(xq + 256);
    const WB* rb[8];
    for (int i = 0; i < 8; ++i) rb[i] = rp[i] + b;
    for (std::size_t j = 0; j < nq; j += 2) {
      const WB* rj[8];
      for (int i = 0; i < 8; ++i) rj[i] = rb[i] + j;
      const int j1 = j + 1 < nq ? 1 : 0;
      __m256i o0, o1;
      mv_pair_sums<Vnni>(rj, j1, xq + 16 * j, xq + 64 + 16 * j, xq + 128 + 16 * j, o0, o1);
      acc = _mm256_add_ps(acc, pin(_mm256_mul_ps(_mm256_cvtepi32_ps(o0), _mm256_mul_ps(mv_scale(&rj[0]->d, gidx), _mm256_set1_ps(dx[j])))));
      if (j1)
        acc = _mm256_add_ps(acc, pin(_mm256_mul_ps(_mm256_cvtepi32_ps(o1), _mm256_mul_ps(mv_scale(&rj[0][1].d, gidx), _mm256_set1_ps(dx[j + 1])))));
    }
  }
  _mm256_maskstore_ps(y, live, acc);
}

EDGELM_X86_T256 inline bool has_m128(const block_q8_0* x, std::size_t nb) noexcept {
  const __m256i m = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i any = _mm256_setzero_si256();
  for (std::size_t b = 0; b < nb; ++b)
    any = _mm256_or_si256(any, _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)), m));
  return !_mm256_testz_si256(any, any);
}

template <class WB, bool Vnni>
EDGELM_X86_T256 inline void matvec_q(float* y, const WB* wd, std::size_t nb, const block_q8_0* x, std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  alignas(64) unsigned char xp[mv_quads * mv_stride];
  const std::uintptr_t pf_end = reinterpret_cast<std::uintptr_t>(wd + std::size_t{r1} * nb);
  for (std::size_t kb = 0; kb < nb; kb += 4 * mv_quads) {
    const std::size_t kc = nb - kb < 4 * mv_quads ? nb - kb : 4 * mv_quads;
    for (std::size_t b = 0; b < kc; b += 4) mv_prep_quad(xp + (b / 4) * mv_stride, x + kb + b, kc - b < 4 ? kc - b : 4, q4 ? 8 : Vnni ? 128 : 0);
    for (std::uint32_t r = r0; r < r1; r += 8) {
      const unsigned cnt = r1 - r < 8 ? r1 - r : 8;
      const pf_stream pf = pf_pass<WB, 8>(wd, nb, r, kb, kc, pf_end);
      if (kc != nb)
        mv_pass<WB, true, Vnni>(y + r, wd + std::size_t{r} * nb + kb, nb, cnt, xp, kb, kc, pf);
      else
        mv_pass<WB, false, Vnni>(y + r, wd + std::size_t{r} * nb + kb, nb, cnt, xp, kb, kc, pf);
    }
  }
}

// ---- prefill: panels of 8 rows ----
// per block: q4_0 8 vectors of nibbles (lane r = weights 4g .. 4g+3 of row r) + 8 scales = 288 bytes;
// q8_0 (w + 128) split into low and high nibbles, 16 vectors + 8 scales = 544 bytes.
inline constexpr std::size_t gm_bytes_q4 = 288, gm_bytes_q8 = 544;

EDGELM_X86_I256 void transpose4(const __m256i z[4], __m256i out[4]) noexcept {
  const __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

template <class WB>
EDGELM_X86_T256 inline void gm_pack(unsigned char* dst, const WB* w, std::size_t nb, unsigned cnt, std::size_t kc) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  constexpr std::size_t bb = q4 ? gm_bytes_q4 : gm_bytes_q8;
  const WB* rp[8];
  for (unsigned i = 0; i < 8; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  const __m256i gidx = _mm256_mullo_epi32(_mm256_min_epu32(lane, _mm256_set1_epi32(static_cast<int>(cnt - 1))),
                                          _mm256_set1_epi32(static_cast<int>(nb * sizeof(WB))));
  const __m256i m0f = _mm256_set1_epi8(0x0F), m80 = _mm256_set1_epi8(static_cast<char>(0x80));
  for (std::size_t b = 0; b < kc; ++b) {
    unsigned char* o = dst + b * bb;
    __m256i z[4], t[4];
    for (int half = 0; half < (q4 ? 1 : 2); ++half) {
      for (int k = 0; k < 4; ++k) z[k] = load2x16(rp[k][b].qs + 16 * half, rp[k + 4][b].qs + 16 * half);
      transpose4(z, t);
      for (int g = 0; g < 4; ++g) {
        if (q4) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * g), _mm256_and_si256(t[g], m0f));
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * (g + 4)), _mm256_and_si256(_mm256_srli_epi16(t[g], 4), m0f));
        } else {
          const __m256i u = _mm256_xor_si256(t[g], m80);
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * (4 * half + g)), _mm256_and_si256(u, m0f));
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 256 + 32 * (4 * half + g)), _mm256_and_si256(_mm256_srli_epi16(u, 4), m0f));
        }
      }
    }
    _mm256_store_ps(reinterpret_cast<float*>(o + bb - 32), mv_scale(&rp[0][b].d, gidx));
  }
}

EDGELM_X86_T256 inline void gm_prep(xblock* out, const block_q8_0* x, std::size_t ldx, std::size_t tc, std::size_t kc, int shift) noexcept {
  const __m256i m80 = _mm256_set1_epi8(static_cast<char>(0x80)), zero = _mm256_setzero_si256();
  for (std::size_t t = 0; t < tc; ++t)
    for (std::size_t b = 0; b < kc; ++b) {
      const block_q8_0& xb = x[t * ldx + b];
      const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs)), m80), zero);
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const std::int32_t sum = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2))) - 4096;
      out[t * gm_kc + b].corr = -sum * (1 << shift);
      out[t * gm_kc + b].dx = fp16_to_f32(xb.d);
    }
}

// exact block sums of a panel block and one token: q4_0 nibble x int8 pairs sum to at most 8 * 3840
// in int16; q8_0 does the same for the low and the high nibbles of w + 128.
EDGELM_X86_I256 __m256i gm_block(const unsigned char* o, const std::int8_t* q, std::int32_t corr, std::true_type) noexcept {
  __m256i a = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g)
    a = _mm256_add_epi16(a, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(o + 32 * g)), _mm256_set1_epi32(load_i32(q + 4 * g))));
  return _mm256_add_epi32(_mm256_madd_epi16(a, _mm256_set1_epi16(1)), _mm256_set1_epi32(corr));
}
EDGELM_X86_I256 __m256i gm_block(const unsigned char* o, const std::int8_t* q, std::int32_t corr, std::false_type) noexcept {
  __m256i a = _mm256_setzero_si256(), h = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    const __m256i xv = _mm256_set1_epi32(load_i32(q + 4 * g));
    a = _mm256_add_epi16(a, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(o + 32 * g)), xv));
    h = _mm256_add_epi16(h, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(o + 256 + 32 * g)), xv));
  }
  return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(a, _mm256_set1_epi16(1)), _mm256_madd_epi16(h, _mm256_set1_epi16(16))),
                          _mm256_set1_epi32(corr));
}

template <int NT, bool Q4>
EDGELM_X86_T256 inline void gm_tile(const unsigned char* pk, std::size_t kc, const block_q8_0* const* xt, const xblock* const* xb, float* const* yt,
                                    __m256i live, bool first) noexcept {
  constexpr std::size_t bb = Q4 ? gm_bytes_q4 : gm_bytes_q8;
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(yt[t], live);
  for (std::size_t b = 0; b < kc; ++b) {
    const unsigned char* o = pk + b * bb;
    const __m256 dw = _mm256_load_ps(reinterpret_cast<const float*>(o + bb - 32));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m256i i = gm_block(o, xt[t][b].qs, xb[t][b].corr, std::integral_constant<bool, Q4>());
      const __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(xb[t][b].dx));
      acc[t] = _mm256_add_ps(acc[t], pin(_mm256_mul_ps(_mm256_cvtepi32_ps(i), sc)));
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(yt[t], live, acc[t]);
}

template <class WB>
EDGELM_X86_T256 inline void gemm_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx, std::size_t n,
                                   std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  alignas(64) unsigned char pk[gm_kc * gm_bytes_q8];
  xblock xp[gm_tc * gm_kc];
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (std::size_t kb = 0; kb < nb; kb += gm_kc) {
    const std::size_t kc = nb - kb < gm_kc ? nb - kb : gm_kc;
    for (std::size_t t0 = 0; t0 < n; t0 += gm_tc) {
      const std::size_t tc = n - t0 < gm_tc ? n - t0 : gm_tc;
      gm_prep(xp, x + t0 * ldx + kb, ldx, tc, kc, q4 ? 3 : 7);
      for (std::uint32_t r = r0; r < r1; r += 8) {
        const unsigned cnt = r1 - r < 8 ? r1 - r : 8;
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), lane);
        if (r + 8 < r1) pf_panel(wd + std::size_t{r + 8} * nb + kb, nb, r1 - (r + 8) < 8 ? r1 - (r + 8) : 8, kc);
        gm_pack(pk, wd + std::size_t{r} * nb + kb, nb, cnt, kc);
        for (std::size_t t = 0; t < tc; t += 4) {
          const block_q8_0* xt[4];
          const xblock* xb[4];
          float* yt[4];
          const std::size_t nt = tc - t < 4 ? tc - t : 4;
          for (std::size_t i = 0; i < nt; ++i) {
            xt[i] = x + (t0 + t + i) * ldx + kb;
            xb[i] = xp + (t + i) * gm_kc;
            yt[i] = y + (t0 + t + i) * ldy + r;
          }
          switch (nt) {
            case 4: gm_tile<4, q4>(pk, kc, xt, xb, yt, live, kb == 0); break;
            case 3: gm_tile<3, q4>(pk, kc, xt, xb, yt, live, kb == 0); break;
            case 2: gm_tile<2, q4>(pk, kc, xt, xb, yt, live, kb == 0); break;
            default: gm_tile<1, q4>(pk, kc, xt, xb, yt, live, kb == 0); break;
          }
        }
      }
    }
  }
}

template <class WB>
EDGELM_X86_T256 inline void matmul_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx, std::size_t n,
                                     std::uint32_t r0, std::uint32_t r1) noexcept {
  // q8_0's decode uses |w| x sign(x, w), exact unless an activation byte is -128 (never produced by
  // q8_0::quantize_block); such a token goes through the prefill kernel, which is exact for all bytes.
  // up to gm_min tokens stream the rows once per token (the same values as the prefill kernel)
  if (n > gm_min) {
    gemm_q(y, ldy, wd, nb, x, ldx, n, r0, r1);
    return;
  }
  for (std::size_t t = 0; t < n; ++t) {
    if (std::is_same_v<WB, block_q4_0> || !has_m128(x + t * ldx, nb))
      matvec_q<WB, false>(y + t * ldy, wd, nb, x + t * ldx, r0, r1);
    else
      gemm_q(y + t * ldy, ldy, wd, nb, x + t * ldx, ldx, 1, r0, r1);
  }
}

// ---- f32: the 16-lane accumulator as two halves ----
// s = ((u0 + u1) + (u2 + u3)), u_j = t_j + t_(j+4), t_j = lo_j + hi_j (lanes j and j + 8)
EDGELM_X86_I256 __m128 reduce_u(__m256 lo, __m256 hi) noexcept {
  const __m256 t = _mm256_add_ps(lo, hi);
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}
EDGELM_X86_I256 __m128 reduce4(__m128 u0, __m128 u1, __m128 u2, __m128 u3) noexcept {
  return _mm_hadd_ps(_mm_hadd_ps(u0, u1), _mm_hadd_ps(u2, u3));
}

EDGELM_X86_I256 void f32_masks(std::size_t rem, __m256i& mlo, __m256i& mhi) noexcept {
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  const int r = static_cast<int>(rem);
  mlo = _mm256_cmpgt_epi32(_mm256_set1_epi32(r), lane);
  mhi = _mm256_cmpgt_epi32(_mm256_set1_epi32(r - 8), lane);
}

// 4 rows x one token
EDGELM_X86_T256 inline void f32_rows4(float* y, const float* w, std::size_t ldw, unsigned cnt, const float* x, std::size_t k) noexcept {
  const float* rp[4];
  for (unsigned i = 0; i < 4; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * ldw;
  __m256 lo[4], hi[4];
  for (int i = 0; i < 4; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m256 xl = _mm256_loadu_ps(x + j), xh = _mm256_loadu_ps(x + j + 8);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      lo[i] = _mm256_fmadd_ps(_mm256_loadu_ps(rp[i] + j), xl, lo[i]);
      hi[i] = _mm256_fmadd_ps(_mm256_loadu_ps(rp[i] + j + 8), xh, hi[i]);
    }
  }
  if (j < k) {
    __m256i ml, mh;
    f32_masks(k - j, ml, mh);
    const __m256 xl = _mm256_maskload_ps(x + j, ml), xh = _mm256_maskload_ps(x + j + 8, mh);
    for (int i = 0; i < 4; ++i) {
      lo[i] = _mm256_fmadd_ps(_mm256_maskload_ps(rp[i] + j, ml), xl, lo[i]);
      hi[i] = _mm256_fmadd_ps(_mm256_maskload_ps(rp[i] + j + 8, mh), xh, hi[i]);
    }
  }
  const __m128 s = reduce4(reduce_u(lo[0], hi[0]), reduce_u(lo[1], hi[1]), reduce_u(lo[2], hi[2]), reduce_u(lo[3], hi[3]));
  _mm_maskstore_ps(y, _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(cnt)), _mm_set_epi32(3, 2, 1, 0)), s);
}

// 2 rows x 3 tokens
EDGELM_X86_T256 inline void f32_tile2x3(float* const* yt, unsigned nt, unsigned cnt, const float* const* wr, const float* const* xt,
                                        std::size_t k) noexcept {
  __m256 lo[6], hi[6];
  for (int i = 0; i < 6; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m256 w0l = _mm256_loadu_ps(wr[0] + j), w0h = _mm256_loadu_ps(wr[0] + j + 8);
    const __m256 w1l = _mm256_loadu_ps(wr[1] + j), w1h = _mm256_loadu_ps(wr[1] + j + 8);
#pragma GCC unroll 3
    for (int t = 0; t < 3; ++t) {
      const __m256 xl = _mm256_loadu_ps(xt[t] + j), xh = _mm256_loadu_ps(xt[t] + j + 8);
      lo[2 * t] = _mm256_fmadd_ps(w0l, xl, lo[2 * t]);
      hi[2 * t] = _mm256_fmadd_ps(w0h, xh, hi[2 * t]);
      lo[2 * t + 1] = _mm256_fmadd_ps(w1l, xl, lo[2 * t + 1]);
      hi[2 * t + 1] = _mm256_fmadd_ps(w1h, xh, hi[2 * t + 1]);
    }
  }
  if (j < k) {
    __m256i ml, mh;
    f32_masks(k - j, ml, mh);
    const __m256 w0l = _mm256_maskload_ps(wr[0] + j, ml), w0h = _mm256_maskload_ps(wr[0] + j + 8, mh);
    const __m256 w1l = _mm256_maskload_ps(wr[1] + j, ml), w1h = _mm256_maskload_ps(wr[1] + j + 8, mh);
    for (int t = 0; t < 3; ++t) {
      const __m256 xl = _mm256_maskload_ps(xt[t] + j, ml), xh = _mm256_maskload_ps(xt[t] + j + 8, mh);
      lo[2 * t] = _mm256_fmadd_ps(w0l, xl, lo[2 * t]);
      hi[2 * t] = _mm256_fmadd_ps(w0h, xh, hi[2 * t]);
      lo[2 * t + 1] = _mm256_fmadd_ps(w1l, xl, lo[2 * t + 1]);
      hi[2 * t + 1] = _mm256_fmadd_ps(w1h, xh, hi[2 * t + 1]);
    }
  }
  // [t0r0, t0r1, t1r0, t1r1] and [t2r0, t2r1, -, -]
  const __m128 u4 = reduce_u(lo[4], hi[4]), u5 = reduce_u(lo[5], hi[5]);
  const __m128 a = reduce4(reduce_u(lo[0], hi[0]), reduce_u(lo[1], hi[1]), reduce_u(lo[2], hi[2]), reduce_u(lo[3], hi[3]));
  const __m128 b = reduce4(u4, u5, u4, u5);
  alignas(16) float s[8];
  _mm_store_ps(s, a);
  _mm_store_ps(s + 4, b);
  for (unsigned t = 0; t < nt; ++t)
    for (unsigned r = 0; r < cnt; ++r) yt[t][r] = s[2 * t + r];
}

EDGELM_X86_T256 inline void matmul_f32(float* y, std::size_t ldy, const float* w, std::size_t k, const float* x, std::size_t ldx, std::size_t n,
                                       std::uint32_t r0, std::uint32_t r1) noexcept {
  if (n == 1) {
    for (std::uint32_t r = r0; r < r1; r += 4) f32_rows4(y + r, w + std::size_t{r} * k, k, r1 - r < 4 ? r1 - r : 4, x, k);
    return;
  }
  std::size_t rb = (std::size_t{256} << 10) / (k * 4 + 1);
  rb = rb < 2 ? 2 : rb / 2 * 2;
  for (std::uint32_t rb0 = r0; rb0 < r1; rb0 = static_cast<std::uint32_t>(rb0 + rb)) {
    const std::uint32_t rb1 = r1 - rb0 < rb ? r1 : static_cast<std::uint32_t>(rb0 + rb);
    for (std::size_t t = 0; t < n; t += 3) {
      const unsigned nt = n - t < 3 ? static_cast<unsigned>(n - t) : 3;
      const float* xt[3];
      float* yt[3];
      for (unsigned i = 0; i < 3; ++i) xt[i] = x + (t + (i < nt ? i : nt - 1)) * ldx;
      for (std::uint32_t r = rb0; r < rb1; r += 2) {
        const unsigned cnt = rb1 - r < 2 ? rb1 - r : 2;
        const float* wr[2] = {w + std::size_t{r} * k, w + std::size_t{r + (cnt > 1 ? 1 : 0)} * k};
        for (unsigned i = 0; i < 3; ++i) yt[i] = y + (t + (i < nt ? i : nt - 1)) * ldy + r;
        f32_tile2x3(yt, nt, cnt, wr, xt, k);
      }
    }
  }
}

}  // namespace detail::k256

// ---------------------------------------------------------------------------------------------
// AVX-VNNI (VEX vpdpbusd on ymm; Alder Lake and later clients, Zen 5): the AVX2 path with a prefill
// whose panel holds unsigned bytes as the AVX-512 one (q4_0 nibbles, q8_0 w + 128; 8 rows) and one
// vpdpbusd per 4 activations; decode stays on the AVX2 kernels (bound by memory). Same values.
// ---------------------------------------------------------------------------------------------
#define EDGELM_X86_TVNNI EDGELM_X86_NOSAN __attribute__((target("avx2,fma,f16c,avxvnni")))
#define EDGELM_X86_IVNNI EDGELM_X86_TVNNI inline __attribute__((always_inline))

namespace detail::kvnni {

inline constexpr std::size_t gm_bytes = 288;  // per block: 8 vectors of bytes (lane r = weights 4g .. 4g+3 of row r) + 8 scales

template <class WB>
EDGELM_X86_TVNNI inline void gm_pack(unsigned char* dst, const WB* w, std::size_t nb, unsigned cnt, std::size_t kc) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  const WB* rp[8];
  for (unsigned i = 0; i < 8; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  const __m256i gidx = _mm256_mullo_epi32(_mm256_min_epu32(lane, _mm256_set1_epi32(static_cast<int>(cnt - 1))),
                                          _mm256_set1_epi32(static_cast<int>(nb * sizeof(WB))));
  const __m256i m0f = _mm256_set1_epi8(0x0F), m80 = _mm256_set1_epi8(static_cast<char>(0x80));
  for (std::size_t b = 0; b < kc; ++b) {
    unsigned char* o = dst + b * gm_bytes;
    __m256i z[4], t[4];
    for (int half = 0; half < (q4 ? 1 : 2); ++half) {
      for (int k = 0; k < 4; ++k) z[k] = k256::load2x16(rp[k][b].qs + 16 * half, rp[k + 4][b].qs + 16 * half);
      k256::transpose4(z, t);
      for (int g = 0; g < 4; ++g) {
        if (q4) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * g), _mm256_and_si256(t[g], m0f));
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * (g + 4)), _mm256_and_si256(_mm256_srli_epi16(t[g], 4), m0f));
        } else {
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * (4 * half + g)), _mm256_xor_si256(t[g], m80));
        }
      }
    }
    _mm256_store_ps(reinterpret_cast<float*>(o + 256), k256::mv_scale(&rp[0][b].d, gidx));
  }
}

// A panel x NT tokens: per (token, block) two vpdpbusd chains (even / odd groups of 4 activations;
// the int32 sums are exact in any order), then cvt, two multiplies and one add as every other path.
template <int NT>
EDGELM_X86_TVNNI inline void gm_tile(const unsigned char* pk, std::size_t kc, const block_q8_0* const* xt, const xblock* const* xb, float* const* yt,
                                     __m256i live, bool first) noexcept {
  __m256 acc[NT];
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) acc[t] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(yt[t], live);
  for (std::size_t b = 0; b < kc; ++b) {
    const unsigned char* o = pk + b * gm_bytes;
    __m256i ia[NT], ib[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      ia[t] = _mm256_set1_epi32(xb[t][b].corr);
      ib[t] = _mm256_setzero_si256();
    }
#pragma GCC unroll 8
    for (int g = 0; g < 8; g += 2) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(o + 32 * g));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(o + 32 * (g + 1)));
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        ia[t] = _mm256_dpbusd_avx_epi32(ia[t], w0, _mm256_set1_epi32(load_i32(xt[t][b].qs + 4 * g)));
        ib[t] = _mm256_dpbusd_avx_epi32(ib[t], w1, _mm256_set1_epi32(load_i32(xt[t][b].qs + 4 * (g + 1))));
      }
    }
    const __m256 dw = _mm256_load_ps(reinterpret_cast<const float*>(o + 256));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(xb[t][b].dx));
      acc[t] = _mm256_add_ps(acc[t], k256::pin(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(ia[t], ib[t])), sc)));
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(yt[t], live, acc[t]);
}

template <class WB>
EDGELM_X86_TVNNI inline void gemm_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx, std::size_t n,
                                    std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  alignas(64) unsigned char pk[gm_kc * gm_bytes];
  xblock xp[gm_tc * gm_kc];
  const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (std::size_t kb = 0; kb < nb; kb += gm_kc) {
    const std::size_t kc = nb - kb < gm_kc ? nb - kb : gm_kc;
    for (std::size_t t0 = 0; t0 < n; t0 += gm_tc) {
      const std::size_t tc = n - t0 < gm_tc ? n - t0 : gm_tc;
      k256::gm_prep(xp, x + t0 * ldx + kb, ldx, tc, kc, q4 ? 3 : 7);
      for (std::uint32_t r = r0; r < r1; r += 8) {
        const unsigned cnt = r1 - r < 8 ? r1 - r : 8;
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), lane);
        if (r + 8 < r1) pf_panel(wd + std::size_t{r + 8} * nb + kb, nb, r1 - (r + 8) < 8 ? r1 - (r + 8) : 8, kc);
        gm_pack(pk, wd + std::size_t{r} * nb + kb, nb, cnt, kc);
        for (std::size_t t = 0; t < tc; t += 4) {
          const block_q8_0* xt[4];
          const xblock* xb[4];
          float* yt[4];
          const std::size_t nt = tc - t < 4 ? tc - t : 4;
          for (std::size_t i = 0; i < nt; ++i) {
            xt[i] = x + (t0 + t + i) * ldx + kb;
            xb[i] = xp + (t + i) * gm_kc;
            yt[i] = y + (t0 + t + i) * ldy + r;
          }
          switch (nt) {
            case 4: gm_tile<4>(pk, kc, xt, xb, yt, live, kb == 0); break;
            case 3: gm_tile<3>(pk, kc, xt, xb, yt, live, kb == 0); break;
            case 2: gm_tile<2>(pk, kc, xt, xb, yt, live, kb == 0); break;
            default: gm_tile<1>(pk, kc, xt, xb, yt, live, kb == 0); break;
          }
        }
      }
    }
  }
}

// up to gm_min tokens: the AVX2 decode (the same values)
template <class WB>
EDGELM_X86_TVNNI inline void matmul_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx, std::size_t n,
                                      std::uint32_t r0, std::uint32_t r1) noexcept {
  if (n > gm_min) {
    gemm_q(y, ldy, wd, nb, x, ldx, n, r0, r1);
    return;
  }
  // decode: the AVX2 scheme with vpdpbusd (exact for every activation byte, so no -128 check)
  for (std::size_t t = 0; t < n; ++t) k256::matvec_q<WB, true>(y + t * ldy, wd, nb, x + t * ldx, r0, r1);
}

}  // namespace detail::kvnni

// ---------------------------------------------------------------------------------------------
// The per-token ops around the products: q8_0 activation quantization, RoPE, SwiGLU and causal
// attention (kernels::basic_kernels' contracts; highway.hpp calls them through the public functions at
// the end, which return false where this CPU has no path).
//  - quantize_q8_0: byte-identical to q8_0::quantize_row. AVX-512: 16 blocks at a time (one vector
//    division for their scales, one vcvtps2ph), falling back block by block when a block holds a NaN
//    (then the scalar q8_0::quantize_block: ggml's MAX forgets a NaN that a later element follows) or a
//    max|x| outside [2^-100, FLT_MAX] (then the exact clamp and round of detail::round_clamp).
//  - rope: bit-identical to basic_kernels::rope (the same products and one add / subtract each, never
//    fused).
//  - silu_mul (AVX-512 only): a * (1 / (1 + exp(-a))) * b with a vectorised exp, element by element.
//  - attention, AVX-512: the items of a call in groups of up to 8 queries formed KV head by KV head
//    (the GQA heads of a token, then the next tokens), key blocks of 16 outer and queries inner, so that a
//    block of keys and values comes from L2 once per group; per query an online softmax: the 16 scores
//    of a block without a horizontal sum per key (one FMA chain per key, then one transposed tree whose
//    per-lane order is the same in every lane), the running max, Cephes' expf polynomial (~2 ulp) with
//    vscalefps, the exps summed in lanes j mod 16, and the block's sum_j e_j v_j (even and odd keys in
//    two sets of accumulators) added to the rescaled running sum; at the end times 1 / sum. A query does
//    the same operations in any group and any call, so a value never depends on i0, i1, the batch or
//    the worker. AVX2: per item, scores of 8 keys per pass (the same kind of tree) into scratch, a
//    vectorised softmax, then the weighted sum in registers. Both differ from the scalar reference by
//    rounding only (tests/test_conformance.cpp's 1e-5 of sum |p v|).
// ---------------------------------------------------------------------------------------------

namespace detail::k512 {

// One q8_0 block from its 32 floats (v0 = elements 0..15, v1 = 16..31).
EDGELM_X86_I512 __m128i q8_round(__m512 v, __m512 id) noexcept {
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  __m512 s = pin(_mm512_mul_ps(v, id));
  s = _mm512_min_ps(_mm512_max_ps(s, lo), hi);  // max(NaN, lo) = lo (round_clamp's NaN -> lo)
  __m512i i = _mm512_cvttps_epi32(s);
  const __m512 frac = _mm512_sub_ps(s, _mm512_cvtepi32_ps(i));  // exact
  const __m512i one = _mm512_set1_epi32(1);
  i = _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ), i, one);
  i = _mm512_mask_sub_epi32(i, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), i, one);
  return _mm512_cvtepi32_epi8(i);
}

EDGELM_X86_I512 void q8_block(__m512 v0, __m512 v1, block_q8_0& y) noexcept {
  if (_mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q)) {
    alignas(64) float tmp[32];
    _mm512_store_ps(tmp, v0);
    _mm512_store_ps(tmp + 16, v1);
    q8_0::quantize_block(tmp, y);
    return;
  }
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));  // no NaN: any order
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  const __m512 vid = _mm512_set1_ps(id);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y.qs), q8_round(v0, vid));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y.qs + 16), q8_round(v1, vid));
}

// 16 vectors -> lane j = the max of a[j]'s lanes (no NaN: any order gives the same).
EDGELM_X86_I512 __m512 max_reduce16(__m512* a) noexcept {
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
    a[j] = _mm512_max_ps(_mm512_mask_blend_ps(0xFF00, a[j], a[j + 8]), _mm512_shuffle_f32x4(a[j], a[j + 8], 0x4E));
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j)
    a[j] = _mm512_max_ps(_mm512_mask_blend_ps(0xF0F0, a[j], a[j + 4]),
                         _mm512_shuffle_f32x4(_mm512_mask_blend_ps(0xF0F0, a[j + 4], a[j]), _mm512_mask_blend_ps(0xF0F0, a[j + 4], a[j]), 0xB1));
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) a[j] = _mm512_max_ps(_mm512_mask_blend_ps(0xCCCC, a[j], a[j + 2]), _mm512_permute_ps(_mm512_mask_blend_ps(0xCCCC, a[j + 2], a[j]), 0x4E));
  return _mm512_max_ps(_mm512_mask_blend_ps(0xAAAA, a[0], a[1]), _mm512_permute_ps(_mm512_mask_blend_ps(0xAAAA, a[1], a[0]), 0xB1));
}

// 16 whole blocks (512 floats). With no NaN and every max|x| in [2^-100, FLT_MAX] (so that d, 1/d and
// x / d are normal and finite, |x / d| < 127.0001), the 16 scales are one vector division, and
// round-half-away-from-zero of x * id is trunc(x * id + copysign(0.49999997, x * id)) (checked for every
// float below 127.5 in magnitude; the clamp to +-127 never applies). Else block by block (q8_block).
EDGELM_X86_I512 void q8_group16(const float* x, block_q8_0* y) noexcept {
  __m512 m[16];
  __mmask16 nan = 0;
#pragma GCC unroll 16
  for (int b = 0; b < 16; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
    m[b] = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
  }
  const __m512 amax = nan ? _mm512_setzero_ps() : max_reduce16(m);
  const __mmask16 ok = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(0x1p-100f), _CMP_GE_OQ) & _mm512_cmp_ps_mask(amax, _mm512_set1_ps(FLT_MAX), _CMP_LE_OQ);
  if (nan || ok != 0xFFFF) {
    for (int b = 0; b < 16; ++b) q8_block(_mm512_loadu_ps(x + 32 * b), _mm512_loadu_ps(x + 32 * b + 16), y[b]);
    return;
  }
  const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
  alignas(64) float id[16];
  alignas(32) std::uint16_t dh[16];
  _mm512_store_ps(id, _mm512_div_ps(_mm512_set1_ps(1.0f), d));
  _mm256_store_si256(reinterpret_cast<__m256i*>(dh), _mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
  const float* ip = id;
  __asm__("" : "+r"(ip) : : "memory");  // broadcast loads
  const __m512i sgn = _mm512_set1_epi32(INT32_MIN), half = _mm512_castps_si512(_mm512_set1_ps(0.49999997f));
#pragma GCC unroll 4
  for (int b = 0; b < 16; ++b) {
    const __m512 vid = _mm512_set1_ps(ip[b]);
    y[b].d = dh[b];
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512 sv = pin(_mm512_mul_ps(_mm512_loadu_ps(x + 32 * b + 16 * h), vid));
      const __m512 c = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(sv), sgn, half, 0xEA));  // (s & sign) | 0.49999997
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + 16 * h), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_add_ps(sv, c))));
    }
  }
}

EDGELM_X86_T512 inline void quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept {
  const std::size_t full = n / 32;
  std::size_t b = 0;
  for (; b + 16 <= full; b += 16) q8_group16(x + 32 * b, y + b);
  for (; b < full; ++b) q8_block(_mm512_loadu_ps(x + 32 * b), _mm512_loadu_ps(x + 32 * b + 16), y[b]);
  if (const std::size_t rest = n % 32) {
    // the short last block, zero-padded (masked loads read nothing past x + n)
    const __mmask16 m0 = rest >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << rest) - 1u);
    const __mmask16 m1 = rest > 16 ? static_cast<__mmask16>((1u << (rest - 16)) - 1u) : __mmask16(0);
    q8_block(_mm512_maskz_loadu_ps(m0, x + 32 * full), _mm512_maskz_loadu_ps(m1, x + 32 * full + 16), y[full]);
  }
}

// RoPE on one run of heads: v = heads of hd floats (nh of them); c / s = the position's cos / sin.
EDGELM_X86_I512 void rope_heads(float* v, std::size_t nh, std::size_t hd, const float* c, const float* s) noexcept {
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512i neg_even = _mm512_set_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN);
  for (std::size_t j = 0; j < hd; j += 16) {
    const std::size_t m = hd - j < 16 ? hd - j : 16;
    const __mmask16 mv = static_cast<__mmask16>((1u << m) - 1u), mc = static_cast<__mmask16>((1u << (m / 2)) - 1u);
    // [c0, c0, c1, c1, ...] and [-s0, s0, -s1, s1, ...]
    const __m512 vc = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mc, c + j / 2));
    const __m512 vs = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(_mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mc, s + j / 2))), neg_even));
    for (std::size_t h = 0; h < nh; ++h) {
      float* p = v + h * hd + j;
      const __m512 x = _mm512_maskz_loadu_ps(mv, p);
      // even: x0 c + x1 (-s) = x0 c - x1 s; odd: x1 c + x0 s (the reference's x0 s + x1 c)
      const __m512 r = _mm512_add_ps(pin(_mm512_mul_ps(x, vc)), pin(_mm512_mul_ps(_mm512_permute_ps(x, 0xB1), vs)));
      _mm512_mask_storeu_ps(p, mv, r);
    }
  }
}

EDGELM_X86_T512 inline void rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t hd, const float* c, const float* s) noexcept {
  rope_heads(q, n_q / hd, hd, c, s);
  rope_heads(k, n_k / hd, hd, c, s);
}

// exp(x) for x <= 0 (scores minus their max; -inf and anything below -104 give 0): Cephes' expf,
// n = round(x log2 e), r = x - n ln 2 in two parts, p(r) of degree 7, times 2^n by vscalefps.
EDGELM_X86_I512 __m512 exp_neg(__m512 x) noexcept {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// exp(x) over the whole float range (Cephes' expf as exp_neg; above ~88.72 inf, below -104 ~0).
EDGELM_X86_I512 __m512 exp_any(__m512 x) noexcept {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(100.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// SwiGLU a = silu(a) * b = (a * (1 / (1 + exp(-a)))) * b, element by element (the last vector masked:
// a value never depends on n); large negative a gives -0 * b as the reference.
EDGELM_X86_T512 inline void silu_mul(float* a, const float* b, std::size_t n) noexcept {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (std::size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, a + i);
    const __m512 sg = _mm512_div_ps(one, _mm512_add_ps(one, exp_any(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(pin(_mm512_mul_ps(v, sg)), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

EDGELM_X86_I512 __m512 kv_load(const float* p, __mmask16 m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
EDGELM_X86_I512 __m512 kv_load(const std::uint16_t* p, __mmask16 m) noexcept { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

// 16 vectors -> lane j = the sum of a[j]'s lanes (one fixed tree per lane): halves, quarters, pairs,
// lanes; each level pairs vector j with j + w, blends the kept halves and swaps the other (15 shuffles).
EDGELM_X86_I512 __m512 att_reduce16(__m512* a) noexcept {
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
    a[j] = _mm512_add_ps(_mm512_mask_blend_ps(0xFF00, a[j], a[j + 8]), _mm512_shuffle_f32x4(a[j], a[j + 8], 0x4E));
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j)
    a[j] = _mm512_add_ps(_mm512_mask_blend_ps(0xF0F0, a[j], a[j + 4]), _mm512_shuffle_f32x4(_mm512_mask_blend_ps(0xF0F0, a[j + 4], a[j]), _mm512_mask_blend_ps(0xF0F0, a[j + 4], a[j]), 0xB1));
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) a[j] = _mm512_add_ps(_mm512_mask_blend_ps(0xCCCC, a[j], a[j + 2]), _mm512_permute_ps(_mm512_mask_blend_ps(0xCCCC, a[j + 2], a[j]), 0x4E));
  return _mm512_add_ps(_mm512_mask_blend_ps(0xAAAA, a[0], a[1]), _mm512_permute_ps(_mm512_mask_blend_ps(0xAAAA, a[1], a[0]), 0xB1));
}

// Per query, the state of the online softmax over blocks of 16 keys: acc = sum_j exp(s_j - m) v_j and
// l (lanes j mod 16) = sum_j exp(s_j - m), m = the running max of the scores; e / f = the current
// block's exps and the factor that rescales the earlier ones.
template <int NC>
struct att_state {
  __m512 acc[NC];
  __m512 l;
  __m512 f;
  alignas(64) float e[16];
  float m;
};

// One query x one block of nk <= 16 keys k + j * ld (Full: nk = 16), first half: the scores (one FMA
// chain per key over the NC chunks of q, the last masked by mt when Tail, then att_reduce16's fixed
// tree; lanes past nk repeat the last key and are dropped), the running max, the exps and their sum.
template <int NC, bool Tail, bool Full, class KV>
EDGELM_X86_I512 void att_scores(const float* q, const KV* k, std::size_t ld, std::size_t nk, __mmask16 mt, float scale, att_state<NC>& st) noexcept {
  if (Full) nk = 16;
  __m512 qv[NC];
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) qv[c] = _mm512_maskz_loadu_ps(Tail && c == NC - 1 ? mt : __mmask16(0xFFFF), q + 16 * c);
  __m512 sa[16];
  const KV* kj = k;
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {
    sa[j] = _mm512_mul_ps(qv[0], kv_load(kj, Tail && NC == 1 ? mt : __mmask16(0xFFFF)));
#pragma GCC unroll 8
    for (int c = 1; c < NC; ++c) sa[j] = _mm512_fmadd_ps(qv[c], kv_load(kj + 16 * c, Tail && c == NC - 1 ? mt : __mmask16(0xFFFF)), sa[j]);
    if (Full || static_cast<std::size_t>(j + 1) < nk) kj += ld;
    __asm__("" : "+r"(kj));  // one pointer bumped key by key (else 16 precomputed pointers spill)
  }
  const __mmask16 live = Full ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << nk) - 1u);
  const __m512 s = _mm512_mask_mov_ps(_mm512_set1_ps(-HUGE_VALF), live, _mm512_mul_ps(att_reduce16(sa), _mm512_set1_ps(scale)));
  const float mb = _mm512_reduce_max_ps(s);
  const float mn = st.m > mb ? st.m : mb;
  st.f = exp_neg(_mm512_set1_ps(st.m - mn));  // 1 when the max stays; ~0 on the first block (acc = l = 0)
  const __m512 e = _mm512_maskz_mov_ps(live, exp_neg(_mm512_sub_ps(s, _mm512_set1_ps(mn))));
  st.l = _mm512_fmadd_ps(st.l, st.f, e);
  st.m = mn;
  _mm512_store_ps(st.e, e);
}

// Second half: the block's weighted sum of values v + j * ld (even and odd keys in two sets of
// accumulators) folded into acc.
template <int NC, bool Tail, bool Full, class KV>
EDGELM_X86_I512 void att_values(const KV* v, std::size_t ld, std::size_t nk, __mmask16 mt, att_state<NC>& st) noexcept {
  if (Full) nk = 16;
  const float* pp = st.e;
  __asm__("" : "+r"(pp) : : "memory");  // broadcast loads, not register permutes
  __m512 A[NC], B[NC];
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) A[c] = B[c] = _mm512_setzero_ps();
  const KV* vj = v;
  std::size_t j = 0;
#pragma GCC unroll 8
  for (; j + 2 <= nk; j += 2) {
    const __m512 p0 = _mm512_set1_ps(pp[j]), p1 = _mm512_set1_ps(pp[j + 1]);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      const __mmask16 m = Tail && c == NC - 1 ? mt : __mmask16(0xFFFF);
      A[c] = _mm512_fmadd_ps(p0, kv_load(vj + 16 * c, m), A[c]);
      B[c] = _mm512_fmadd_ps(p1, kv_load(vj + ld + 16 * c, m), B[c]);
    }
    vj += 2 * ld;
    __asm__("" : "+r"(vj));
  }
  if (!Full && j < nk) {
    const __m512 p0 = _mm512_set1_ps(pp[j]);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) A[c] = _mm512_fmadd_ps(p0, kv_load(vj + 16 * c, Tail && c == NC - 1 ? mt : __mmask16(0xFFFF)), A[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) st.acc[c] = _mm512_fmadd_ps(st.acc[c], st.f, _mm512_add_ps(A[c], B[c]));
}

// Up to 8 queries, key blocks outer: per block all the queries' scores, then all their weighted sums
// (independent chains for the out-of-order core; queries of one KV head share the block in L1).
template <int NC, class KV>
struct att_group {
  att_state<NC> st[8];
  const float* q[8];
  float* o[8];
  const KV* k[8];
  const KV* v[8];
  std::size_t len[8];
  int cnt;
};

template <int NC, bool Tail, class KV>
EDGELM_X86_T512 inline void att_run(att_group<NC, KV>& gr, std::size_t ld, __mmask16 mt, float scale) noexcept {
  std::size_t mx = 0;
  for (int g = 0; g < gr.cnt; ++g) {
    mx = gr.len[g] > mx ? gr.len[g] : mx;
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) gr.st[g].acc[c] = _mm512_setzero_ps();
    gr.st[g].l = _mm512_setzero_ps();
    gr.st[g].m = -HUGE_VALF;
  }
  for (std::size_t b = 0; b < mx; b += 16) {
    for (int g = 0; g < gr.cnt; ++g) {
      if (gr.len[g] >= b + 16) att_scores<NC, Tail, true>(gr.q[g], gr.k[g] + b * ld, ld, 16, mt, scale, gr.st[g]);
      else if (gr.len[g] > b) att_scores<NC, Tail, false>(gr.q[g], gr.k[g] + b * ld, ld, gr.len[g] - b, mt, scale, gr.st[g]);
    }
    for (int g = 0; g < gr.cnt; ++g) {
      if (gr.len[g] >= b + 16) att_values<NC, Tail, true>(gr.v[g] + b * ld, ld, 16, mt, gr.st[g]);
      else if (gr.len[g] > b) att_values<NC, Tail, false>(gr.v[g] + b * ld, ld, gr.len[g] - b, mt, gr.st[g]);
    }
  }
  for (int g = 0; g < gr.cnt; ++g) {
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(gr.st[g].l));
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c)
      _mm512_mask_storeu_ps(gr.o[g] + 16 * c, Tail && c == NC - 1 ? mt : __mmask16(0xFFFF), _mm512_mul_ps(gr.st[g].acc[c], inv));
  }
  gr.cnt = 0;
}

// Items [i0, i1) in groups of up to 8, formed KV head by KV head (the GQA heads of a token, then the
// next tokens), so that a group's queries mostly share their blocks of keys and values. Every query
// does the same operations in any group, so a value never depends on the grouping.
template <int NC, bool Tail, class KV>
EDGELM_X86_T512 inline void attention_nc(const attention_args<KV>& a, std::size_t i0, std::size_t i1) noexcept {
  const std::size_t hd = a.head_dim, nh = a.n_heads, km = a.kv_mul, ld = a.kv_dim;
  const __mmask16 mt = Tail ? static_cast<__mmask16>((1u << (hd % 16)) - 1u) : __mmask16(0xFFFF);
  const float scale = 1.0f / __builtin_sqrtf(static_cast<float>(hd));
  const std::size_t t0 = i0 / nh, t1 = (i1 - 1) / nh;
  att_group<NC, KV> gr;
  gr.cnt = 0;
  for (std::size_t g = 0; g * km < nh; ++g)
    for (std::size_t t = t0; t <= t1; ++t)
      for (std::size_t h = g * km; h < (g + 1) * km && h < nh; ++h) {
        const std::size_t i = t * nh + h;
        if (i < i0 || i >= i1) continue;
        gr.q[gr.cnt] = a.q + t * a.ld_q + h * hd;
        gr.o[gr.cnt] = a.out + t * a.ld_out + h * hd;
        gr.k[gr.cnt] = a.k + g * hd;
        gr.v[gr.cnt] = a.v + g * hd;
        gr.len[gr.cnt] = a.pos + t + 1;
        if (++gr.cnt == 8) att_run<NC, Tail>(gr, ld, mt, scale);
      }
  if (gr.cnt) att_run<NC, Tail>(gr, ld, mt, scale);
}

// head_dim 1 .. 128 (larger: false, the caller's code runs)
template <class KV>
EDGELM_X86_T512 inline bool attention(const attention_args<KV>& a, std::size_t i0, std::size_t i1) noexcept {
  const bool tail = a.head_dim % 16 != 0;
  switch ((a.head_dim + 15) / 16) {
    case 1: tail ? attention_nc<1, true>(a, i0, i1) : attention_nc<1, false>(a, i0, i1); return true;
    case 2: tail ? attention_nc<2, true>(a, i0, i1) : attention_nc<2, false>(a, i0, i1); return true;
    case 3: tail ? attention_nc<3, true>(a, i0, i1) : attention_nc<3, false>(a, i0, i1); return true;
    case 4: tail ? attention_nc<4, true>(a, i0, i1) : attention_nc<4, false>(a, i0, i1); return true;
    case 5: tail ? attention_nc<5, true>(a, i0, i1) : attention_nc<5, false>(a, i0, i1); return true;
    case 6: tail ? attention_nc<6, true>(a, i0, i1) : attention_nc<6, false>(a, i0, i1); return true;
    case 7: tail ? attention_nc<7, true>(a, i0, i1) : attention_nc<7, false>(a, i0, i1); return true;
    case 8: tail ? attention_nc<8, true>(a, i0, i1) : attention_nc<8, false>(a, i0, i1); return true;
    default: return false;
  }
}

}  // namespace detail::k512

namespace detail::k256 {

EDGELM_X86_I256 __m256i q8_round(__m256 v, __m256 id) noexcept {
  __m256 s = pin(_mm256_mul_ps(v, id));
  s = _mm256_min_ps(_mm256_max_ps(s, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));  // max(NaN, lo) = lo
  const __m256i i = _mm256_cvttps_epi32(s);
  const __m256 frac = _mm256_sub_ps(s, _mm256_cvtepi32_ps(i));  // exact
  const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ));
  const __m256i dn = _mm256_castps_si256(_mm256_cmp_ps(frac, _mm256_set1_ps(-0.5f), _CMP_LE_OQ));
  return _mm256_add_epi32(_mm256_sub_epi32(i, up), dn);  // masks are -1
}

EDGELM_X86_I256 void q8_block(__m256 v0, __m256 v1, __m256 v2, __m256 v3, block_q8_0& y) noexcept {
  if (_mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q), _mm256_cmp_ps(v2, v3, _CMP_UNORD_Q)))) {
    alignas(32) float tmp[32];
    _mm256_store_ps(tmp, v0);
    _mm256_store_ps(tmp + 8, v1);
    _mm256_store_ps(tmp + 16, v2);
    _mm256_store_ps(tmp + 24, v3);
    q8_0::quantize_block(tmp, y);
    return;
  }
  const __m256 sg = _mm256_set1_ps(-0.0f);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sg, v0), _mm256_andnot_ps(sg, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sg, v2), _mm256_andnot_ps(sg, v3)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const float d = _mm_cvtss_f32(m4) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  const __m256 vid = _mm256_set1_ps(id);
  const __m256i p0 = _mm256_packs_epi32(q8_round(v0, vid), q8_round(v1, vid)), p1 = _mm256_packs_epi32(q8_round(v2, vid), q8_round(v3, vid));
  // dwords of packs_epi16(p0, p1): [e0-3, e8-11, e16-19, e24-27 | e4-7, e12-15, e20-23, e28-31]
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p0, p1), _mm256_set_epi32(7, 3, 6, 2, 5, 1, 4, 0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(y.qs), b);
}

EDGELM_X86_I256 __m256i lanes_below(std::size_t n) noexcept {  // lanes i < n all ones
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}

EDGELM_X86_T256 inline void quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept {
  const std::size_t full = n / 32;
  for (std::size_t b = 0; b < full; ++b) {
    const float* p = x + 32 * b;
    q8_block(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24), y[b]);
  }
  if (const std::size_t rest = n % 32) {
    const float* p = x + 32 * full;
    __m256 v[4];
    for (std::size_t i = 0; i < 4; ++i) v[i] = rest > 8 * i ? _mm256_maskload_ps(p + 8 * i, lanes_below(rest - 8 * i)) : _mm256_setzero_ps();
    q8_block(v[0], v[1], v[2], v[3], y[full]);
  }
}

EDGELM_X86_I256 void rope_heads(float* v, std::size_t nh, std::size_t hd, const float* c, const float* s) noexcept {
  const __m256i dup = _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0);
  const __m256 neg_even = _mm256_castsi256_ps(_mm256_set_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));
  for (std::size_t j = 0; j < hd; j += 8) {
    const std::size_t m = hd - j < 8 ? hd - j : 8;
    const __m256i mv = lanes_below(m);
    const __m128i mc = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(m / 2)), _mm_set_epi32(3, 2, 1, 0));
    const __m256 vc = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_maskload_ps(c + j / 2, mc)), dup);
    const __m256 vs = _mm256_xor_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_maskload_ps(s + j / 2, mc)), dup), neg_even);
    for (std::size_t h = 0; h < nh; ++h) {
      float* p = v + h * hd + j;
      const __m256 x = _mm256_maskload_ps(p, mv);
      const __m256 r = _mm256_add_ps(pin(_mm256_mul_ps(x, vc)), pin(_mm256_mul_ps(_mm256_permute_ps(x, 0xB1), vs)));
      _mm256_maskstore_ps(p, mv, r);
    }
  }
}

EDGELM_X86_T256 inline void rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t hd, const float* c, const float* s) noexcept {
  rope_heads(q, n_q / hd, hd, c, s);
  rope_heads(k, n_k / hd, hd, c, s);
}

// exp(x) for x <= 0 (below -87: ~1e-38 instead of 0 or a subnormal; the caller zeroes unused lanes).
EDGELM_X86_I256 __m256 exp_neg(__m256 x) noexcept {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

EDGELM_X86_I256 __m256 kv_load(const float* p, __m256i m, bool full) noexcept { return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
EDGELM_X86_I256 __m256 kv_load(const std::uint16_t* p, __m256i m, bool full) noexcept {
  if (full) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) std::uint16_t tmp[8] = {};
  const int n = _mm256_movemask_ps(_mm256_castsi256_ps(m));
  for (int i = 0; i < 8; ++i)
    if (n & (1 << i)) tmp[i] = p[i];
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// 8 vectors -> [sum of a0, ..., sum of a7] (one fixed tree per lane)
EDGELM_X86_I256 __m256 reduce8(const __m256* a) noexcept {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

EDGELM_X86_I256 float hsum8(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

// scores of up to 8 keys (nk live; the others are zeros); q in NC chunks of 8 from memory, the last
// masked by mt (full when ft).
template <int NC, class KV>
EDGELM_X86_I256 void att_scores8(const float* q, const KV* k, std::size_t ld, std::size_t nk, __m256i mt, bool ft, float scale, float* out) noexcept {
  __m256 acc[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
#pragma GCC unroll 16
  for (int c = 0; c < NC; ++c) {
    const bool full = c < NC - 1 || ft;
    const __m256 qc = full ? _mm256_loadu_ps(q + 8 * c) : _mm256_maskload_ps(q + 8 * c, mt);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
      if (static_cast<std::size_t>(j) < nk) acc[j] = _mm256_fmadd_ps(qc, kv_load(k + j * ld + 8 * c, mt, full), acc[j]);
  }
  const __m256 sc = _mm256_mul_ps(reduce8(acc), _mm256_set1_ps(scale));
  if (nk >= 8) _mm256_storeu_ps(out, sc);
  else _mm256_maskstore_ps(out, lanes_below(nk), sc);
}

// sum_j p_j v_j for chunks [c0, c0 + CB) of the output, SETS interleaved accumulator sets.
template <int CB, int SETS, class KV>
EDGELM_X86_I256 void att_wsum(float* o, const float* p, const KV* v, std::size_t ld, std::size_t len, int nc, __m256i mt, bool ft, float inv) noexcept {
  __m256 a[SETS][CB];
#pragma GCC unroll 8
  for (int c = 0; c < CB; ++c)
    for (int s = 0; s < SETS; ++s) a[s][c] = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + SETS <= len; j += SETS) {
#pragma GCC unroll 2
    for (int s = 0; s < SETS; ++s) {
      const __m256 pj = _mm256_broadcast_ss(p + j + s);
      const KV* vj = v + (j + s) * ld;
#pragma GCC unroll 8
      for (int c = 0; c < CB; ++c)
        if (c < nc) a[s][c] = _mm256_fmadd_ps(pj, kv_load(vj + 8 * c, mt, c < nc - 1 || ft), a[s][c]);
    }
  }
  for (; j < len; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    const KV* vj = v + j * ld;
#pragma GCC unroll 8
    for (int c = 0; c < CB; ++c)
      if (c < nc) a[0][c] = _mm256_fmadd_ps(pj, kv_load(vj + 8 * c, mt, c < nc - 1 || ft), a[0][c]);
  }
  const __m256 vinv = _mm256_set1_ps(inv);
#pragma GCC unroll 8
  for (int c = 0; c < CB; ++c) {
    if (c >= nc) break;
    __m256 r = a[0][c];
    for (int s = 1; s < SETS; ++s) r = _mm256_add_ps(r, a[s][c]);
    r = _mm256_mul_ps(r, vinv);
    if (c < nc - 1 || ft) _mm256_storeu_ps(o + 8 * c, r);
    else _mm256_maskstore_ps(o + 8 * c, mt, r);
  }
}

template <int NC, class KV>
EDGELM_X86_I256 void att_item(float* o, const float* q, const KV* k, const KV* v, std::size_t ld, std::size_t len, __m256i mt, bool ft, float scale,
                              float* sc) noexcept {
  for (std::size_t j = 0; j < len; j += 8) att_scores8<NC>(q, k + j * ld, ld, len - j < 8 ? len - j : 8, mt, ft, scale, sc + j);
  const std::size_t full = len / 8, rest = len % 8;
  const __m256i mr = lanes_below(rest);
  __m256 vm = _mm256_set1_ps(sc[0]);
  for (std::size_t b = 0; b < full; ++b) vm = _mm256_max_ps(vm, _mm256_loadu_ps(sc + 8 * b));
  if (rest) vm = _mm256_max_ps(vm, _mm256_blendv_ps(vm, _mm256_maskload_ps(sc + 8 * full, mr), _mm256_castsi256_ps(mr)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const __m256 mx = _mm256_set1_ps(_mm_cvtss_f32(m4));
  __m256 sum = _mm256_setzero_ps();
  for (std::size_t b = 0; b < full; ++b) {
    const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(sc + 8 * b), mx));
    _mm256_storeu_ps(sc + 8 * b, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (rest) {
    const __m256 e = _mm256_and_ps(exp_neg(_mm256_sub_ps(_mm256_maskload_ps(sc + 8 * full, mr), mx)), _mm256_castsi256_ps(mr));
    _mm256_maskstore_ps(sc + 8 * full, mr, e);
    sum = _mm256_add_ps(sum, e);
  }
  const float inv = 1.0f / hsum8(sum);
  // output columns in blocks of up to 4 vectors, two accumulator sets (even / odd keys)
  for (int c0 = 0; c0 < NC; c0 += 4) {
    const int nc = NC - c0 < 4 ? NC - c0 : 4;
    att_wsum<(NC < 4 ? NC : 4), 2>(o + 8 * c0, sc, v + 8 * c0, ld, len, nc, mt, ft || c0 + nc < NC, inv);
  }
}

template <int NC, class KV>
EDGELM_X86_T256 inline void attention_nc(const attention_args<KV>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
  const std::size_t hd = a.head_dim;
  const float scale = 1.0f / __builtin_sqrtf(static_cast<float>(hd));
  const std::size_t tail = hd - 8 * (NC - 1);
  const __m256i mt = lanes_below(tail);
  const bool ft = tail == 8;
  for (std::size_t i = i0; i < i1; ++i) {
    const std::size_t t = i / a.n_heads, h = i % a.n_heads;
    const std::size_t kv_off = (h / a.kv_mul) * hd;
    att_item<NC>(a.out + t * a.ld_out + h * hd, a.q + t * a.ld_q + h * hd, a.k + kv_off, a.v + kv_off, a.kv_dim, a.pos + t + 1, mt, ft, scale, scratch);
  }
}

// head_dim 1 .. 128 (larger: false)
template <class KV>
EDGELM_X86_T256 inline bool attention(const attention_args<KV>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
  switch ((a.head_dim + 7) / 8) {
    case 1: attention_nc<1>(a, i0, i1, scratch); return true;
    case 2: attention_nc<2>(a, i0, i1, scratch); return true;
    case 3: attention_nc<3>(a, i0, i1, scratch); return true;
    case 4: attention_nc<4>(a, i0, i1, scratch); return true;
    case 5: attention_nc<5>(a, i0, i1, scratch); return true;
    case 6: attention_nc<6>(a, i0, i1, scratch); return true;
    case 7: attention_nc<7>(a, i0, i1, scratch); return true;
    case 8: attention_nc<8>(a, i0, i1, scratch); return true;
    case 9: attention_nc<9>(a, i0, i1, scratch); return true;
    case 10: attention_nc<10>(a, i0, i1, scratch); return true;
    case 11: attention_nc<11>(a, i0, i1, scratch); return true;
    case 12: attention_nc<12>(a, i0, i1, scratch); return true;
    case 13: attention_nc<13>(a, i0, i1, scratch); return true;
    case 14: attention_nc<14>(a, i0, i1, scratch); return true;
    case 15: attention_nc<15>(a, i0, i1, scratch); return true;
    case 16: attention_nc<16>(a, i0, i1, scratch); return true;
    default: return false;
  }
}

}  // namespace detail::k256

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // EDGELM_X86_ENABLED

// ---------------------------------------------------------------------------------------------
// Weight repacking (packing_r16): on the AVX-512 VNNI paths a q8_0 / q4_0 matrix is rearranged once at
// load so that each pass of the products reads one sequential stream and needs no transposes. Rows go
// in groups of 16 (the last group padded with zero rows); group g starts at byte g * nb * PB (nb blocks a
// row) and holds its blocks one after the other, PB bytes each:
//   NG vectors of 64 bytes, lane r (bytes 4r .. 4r+3) of vector G = bytes 4G .. 4G+3 of row r's block
//   (q4_0: NG = 4, the file's packed nibbles as they are; q8_0: NG = 8, each byte w ^ 0x80 = w + 128,
//   the unsigned operand of vpdpbusd), then the 16 rows' fp16 scales (32 bytes).
// PB = 288 (q4_0) or 544 (q8_0): 16 x the file's block size, so the copy is as large as the matrix.
// The products compute exactly what they compute from the rows (see the top of this file).
// ---------------------------------------------------------------------------------------------
inline constexpr std::uint32_t packing_r16 = 0x36315258u;  // "XR16"

namespace detail {

template <class WB>
inline void pack_rows(unsigned char* dst, const WB* w, std::size_t rows, std::size_t nb) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  constexpr std::size_t NG = q4 ? 4 : 8, PB = NG * 64 + 32;
  const std::size_t groups = (rows + 15) / 16;
  for (std::size_t g = 0; g < groups; ++g)
    for (std::size_t b = 0; b < nb; ++b) {
      unsigned char* o = dst + (g * nb + b) * PB;
      std::memset(o, 0, PB);
      for (std::size_t r = 0; r < 16 && g * 16 + r < rows; ++r) {
        const WB& blk = w[(g * 16 + r) * nb + b];
        for (std::size_t G = 0; G < NG; ++G) {
          std::uint32_t v;
          std::memcpy(&v, blk.qs + 4 * G, 4);
          if (!q4) v ^= 0x80808080u;
          std::memcpy(o + 64 * G + 4 * r, &v, 4);
        }
        std::memcpy(o + NG * 64 + 2 * r, &blk.d, 2);
      }
    }
}

}  // namespace detail

// Bytes of w's packed copy on this CPU; 0 when its path reads the rows as they are (AVX2, AVX-VNNI, f32)
// or the size does not fit in size_t.
template <class P>
inline std::size_t packed_bytes(const matrix<P>& w) noexcept {
  if constexpr (std::is_same_v<P, q8_0> || std::is_same_v<P, q4_0>) {
    const detail::isa_t isa = detail::cpu_isa();
    if (isa != detail::isa_t::avx512vbmi && isa != detail::isa_t::avx512vnni) return 0;
    constexpr std::size_t PB = std::is_same_v<P, q4_0> ? 288 : 544;
    const std::size_t groups = (std::size_t{w.rows} + 15) / 16, nb = w.blocks_per_row();
    if (groups == 0 || nb == 0 || groups > SIZE_MAX / PB / nb) return 0;
    return groups * nb * PB;
  } else {
    (void)w;
    return 0;
  }
}

// Write w's packed copy to dst (64-byte aligned, packed_bytes(w) bytes); returns the layout id for
// w.packing (0 when there is none).
template <class P>
inline std::uint32_t pack(const matrix<P>& w, std::byte* dst) noexcept {
  if (packed_bytes(w) == 0) return 0;
  if constexpr (std::is_same_v<P, q8_0> || std::is_same_v<P, q4_0>) {
    detail::pack_rows(reinterpret_cast<unsigned char*>(dst), w.data, w.rows, w.blocks_per_row());
    return packing_r16;
  } else {
    (void)dst;
    return 0;
  }
}

namespace detail {

// The products on a given path (tests call these to compare ISAs on one machine); false when the path
// is not compiled in (the caller must check that the CPU supports it).
inline bool matmul_on(isa_t isa, float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n,
                      std::uint32_t r0, std::uint32_t r1) noexcept {
#if defined(EDGELM_X86_ENABLED)
  if (r0 >= r1 || n == 0) return isa != isa_t::none;
  switch (isa) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: k512::matmul_f32(y, ldy, w.data, w.cols, x, ldx, n, r0, r1); return true;
    case isa_t::avxvnni:
    case isa_t::avx2: k256::matmul_f32(y, ldy, w.data, w.cols, x, ldx, n, r0, r1); return true;
    default: return false;
  }
#else
  (void)isa, (void)y, (void)ldy, (void)w, (void)x, (void)ldx, (void)n, (void)r0, (void)r1;
  return false;
#endif
}

template <class P>
inline bool matmul_on(isa_t isa, float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n,
                      std::uint32_t r0, std::uint32_t r1) noexcept {
#if defined(EDGELM_X86_ENABLED)
  if (r0 >= r1 || n == 0) return isa != isa_t::none;
  if (w.packed && w.packing == packing_r16 && (isa == isa_t::avx512vbmi || isa == isa_t::avx512vnni)) {
    k512::matmul_packed<typename P::block_type>(y, ldy, reinterpret_cast<const unsigned char*>(w.packed), w.blocks_per_row(), x, ldx, n, r0, r1);
    return true;
  }
  switch (isa) {
    case isa_t::avx512vbmi: k512::matmul_q(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1, true); return true;
    case isa_t::avx512vnni: k512::matmul_q(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1, false); return true;
    case isa_t::avxvnni: kvnni::matmul_q(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1); return true;
    case isa_t::avx2: k256::matmul_q(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1); return true;
    default: return false;
  }
#else
  (void)isa, (void)y, (void)ldy, (void)w, (void)x, (void)ldx, (void)n, (void)r0, (void)r1;
  return false;
#endif
}

// The per-token ops on a given path (as matmul_on: false when the path is not compiled in).
inline bool quantize_q8_0_on(isa_t isa, const float* x, block_q8_0* y, std::size_t n) noexcept {
#if defined(EDGELM_X86_ENABLED)
  switch (isa) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: k512::quantize_q8_0(x, y, n); return true;
    case isa_t::avxvnni:
    case isa_t::avx2: k256::quantize_q8_0(x, y, n); return true;
    default: return false;
  }
#else
  (void)isa, (void)x, (void)y, (void)n;
  return false;
#endif
}

// basic_kernels::rope for whole heads: head_dim even, n_q and n_k multiples of it, n_k <= n_q (else false).
inline bool rope_on(isa_t isa, float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t head_dim, const float* fcos, const float* fsin) noexcept {
#if defined(EDGELM_X86_ENABLED)
  if (head_dim == 0 || head_dim % 2 || n_q % head_dim || n_k % head_dim || n_k > n_q) return false;
  switch (isa) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: k512::rope(q, k, n_q, n_k, head_dim, fcos, fsin); return true;
    case isa_t::avxvnni:
    case isa_t::avx2: k256::rope(q, k, n_q, n_k, head_dim, fcos, fsin); return true;
    default: return false;
  }
#else
  (void)isa, (void)q, (void)k, (void)n_q, (void)n_k, (void)head_dim, (void)fcos, (void)fsin;
  return false;
#endif
}

// SwiGLU on the AVX-512 paths (else false: the caller's code runs).
inline bool silu_mul_on(isa_t isa, float* a, const float* b, std::size_t n) noexcept {
#if defined(EDGELM_X86_ENABLED)
  switch (isa) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: k512::silu_mul(a, b, n); return true;
    default: return false;
  }
#else
  (void)isa, (void)a, (void)b, (void)n;
  return false;
#endif
}

// head_dim 1 .. 128 (else false)
template <class KV>
inline bool attention_on(isa_t isa, const attention_args<KV>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
#if defined(EDGELM_X86_ENABLED)
  if (a.head_dim == 0 || a.head_dim > 128) return false;
  if (i0 >= i1) return isa != isa_t::none;
  switch (isa) {
    case isa_t::avx512vbmi:
    case isa_t::avx512vnni: return k512::attention(a, i0, i1);
    case isa_t::avxvnni:
    case isa_t::avx2: return k256::attention(a, i0, i1, scratch);
    default: return false;
  }
#else
  (void)isa, (void)a, (void)i0, (void)i1, (void)scratch;
  return false;
#endif
}

}  // namespace detail

// The ISA the products below use on this CPU, or nullptr when none applies.
inline const char* isa_name() noexcept { return detail::isa_string(detail::cpu_isa()); }

// y[t * ldy + r] = W.row(r) . x_t for t < n, r0 <= r < r1 (kernels::basic_kernels::matmul's contract).
// Returns false when this CPU has no path here (the caller computes it).
inline bool matmul(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
  return detail::matmul_on(detail::cpu_isa(), y, ldy, w, x, ldx, n, r0, r1);
}
inline bool matmul(float* y, std::size_t ldy, const matrix<q8_0>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
  return detail::matmul_on(detail::cpu_isa(), y, ldy, w, x, ldx, n, r0, r1);
}
inline bool matmul(float* y, std::size_t ldy, const matrix<q4_0>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
  return detail::matmul_on(detail::cpu_isa(), y, ldy, w, x, ldx, n, r0, r1);
}

// Activations of a quantized product: n floats -> q8_0::blocks(n) blocks (the last zero-padded),
// byte-identical to q8_0::quantize_row. False when this CPU has no path here.
inline bool quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept { return detail::quantize_q8_0_on(detail::cpu_isa(), x, y, n); }

// basic_kernels::rope, bit-identical (false when this CPU has no path here or the heads are not whole).
inline bool rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t head_dim, const float* fcos, const float* fsin) noexcept {
  return detail::rope_on(detail::cpu_isa(), q, k, n_q, n_k, head_dim, fcos, fsin);
}

// a = silu(a) * b element-wise (elem_tol: within a few ulps of the exact value; independent of n).
// False when this CPU has no path here (AVX-512 only: the AVX2 build's Highway code is as fast).
inline bool silu_mul(float* a, const float* b, std::size_t n) noexcept { return detail::silu_mul_on(detail::cpu_isa(), a, b, n); }

// basic_kernels::attention's contract (items [i0, i1), scratch >= pos + n floats), f32 or fp16 KV cache;
// differs from the reference by rounding. False when this CPU has no path here or head_dim > 128.
inline bool attention(const attention_args<float>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
  return detail::attention_on(detail::cpu_isa(), a, i0, i1, scratch);
}
inline bool attention(const attention_args<std::uint16_t>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
  return detail::attention_on(detail::cpu_isa(), a, i0, i1, scratch);
}

}  // namespace edgelm::backends::x86
