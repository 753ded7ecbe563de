// edgelm/backends/highway/x86.hpp - x86-64 matrix products chosen at run time from the CPU
// (__builtin_cpu_supports / cpuid): AVX-512 VNNI, AVX-VNNI, AVX2. Each ISA's code is compiled with a
// target attribute, so no -m flags are needed and one binary runs everywhere; never AMX.
//
// Results (the contract of kernels::basic_kernels::matmul: y[t, r] depends only on W.row(r) and x_t).
//  - q8_0 / q4_0 weights x q8_0 activations: every y[t, r] is computed exactly as the scalar reference
//    writes it: the int32 dot of each 32-element block is exact (integer arithmetic, grouped in any
//    order), and the float steps are the reference's, s = s + float(isum_b) * (fp16(d_w) * fp16(d_x)),
//    block after block, in IEEE single precision without contraction (each product is pinned by an
//    empty asm so that -ffp-contract=fast cannot fuse it). So the output is the same on every ISA here,
//    for any n, r0, r1 and tile position, and bit-identical to kernels::scalar compiled without FP
//    contraction (and to the wasm backend).
//  - f32: lane l of a 16-lane accumulator sums elements 16i + l with fused multiply-adds (the last,
//    partial step reads zeros), and the 16 lanes are reduced by one fixed tree,
//    ((t0 + t1) + (t2 + t3)) with t_j = (x_j + x_(j+8)) + (x_(j+4) + x_(j+12)) in the order the code
//    below spells out. AVX2 emulates the 16 lanes with two 8-lane halves; the value is the same on
//    every ISA here and differs from the left-to-right reference only by rounding.
//
// Kernels (AVX-512 VNNI: 16 rows in the 16 lanes of a zmm; AVX2 / AVX-VNNI: 8 rows in a ymm):
//  - decode (n = 1): each pass streams 16 (8) rows four blocks at a time; the token's activations are
//    rearranged once per call (a stack buffer) so that one vpdpbusd per 64 weight bytes (q4_0: the low
//    and the high nibbles of four blocks) leaves each block's partial sums in one 128-bit lane; a
//    transpose-add tree turns 16 rows x 4 blocks into 4 vectors of 16 block sums; the weight scales
//    come from one gather per block. Unsigned x signed: q4_0 nibbles are used as they are (0..15) and
//    q8_0 weights as w ^ 0x80 = w + 128; the offset (8 or 128) times sum(x_block) is precomputed per
//    activation block and starts the accumulator, so every block sum is exact for any byte values.
//  - prefill (n >= 2): 16 (8) rows are repacked once per chunk of the reduction dimension into a stack
//    panel, lane = row, 4 consecutive weights per lane (q4_0 nibbles widened to bytes, q8_0 as w + 128,
//    plus a vector of the 16 scales); a register tile of the panel x up to 8 tokens then does one
//    vpdpbusd per 4 activations with the activations broadcast from memory, the offset correction is a
//    broadcast per (token, block), and each (token, block) ends in cvt, two multiplies and one add.
//    The reduction dimension is split in chunks; between chunks the running sums live in y itself (a
//    float store and load is exact).
//  - AVX2 without VNNI: vpmaddubsw + vpmaddwd. q4_0 (nibble x int8) cannot saturate; q8_0 uses the
//    nibble split (w + 128) = 16 * hi + lo, two vpmaddubsw per weight vector, also exact for all bytes.
//  - f32: decode 16 (AVX2: 8) rows per pass with one transposed 16-way reduction; prefill 4 rows x 4
//    tokens (AVX2: 2 x 3) register tiles over row blocks that stay in L2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <cstdlib>
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

namespace edgelm::backends::x86 {

namespace detail {

enum class isa_t { none = 0, avx2 = 1, avxvnni = 2, avx512vnni = 3 };

inline const char* isa_string(isa_t i) noexcept {
  switch (i) {
    case isa_t::avx512vnni: return "avx512vnni";
    case isa_t::avxvnni: return "avxvnni";
    case isa_t::avx2: return "avx2";
    default: return nullptr;
  }
}

// The best path this CPU (and OS) supports. clang 14's __builtin_cpu_supports knows neither "f16c" nor
// "avxvnni", so those two bits come from cpuid (their register state is covered by avx2's OS check).
inline isa_t detect_isa() noexcept {
#if defined(EDGELM_X86_ENABLED)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return isa_t::none;
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u);
  if (!f16c) return isa_t::none;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni"))
    return isa_t::avx512vnni;
  a = b = c = d = 0;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u)) return isa_t::avxvnni;
  return isa_t::avx2;
#else
  return isa_t::none;
#endif
}

inline isa_t cpu_isa() noexcept {
  static const isa_t v = detect_isa();
  return v;
}

// Blocks of the reduction dimension per chunk, and tokens per prefill chunk (stack buffers: decode
// ~10 KB, prefill ~36 KB with AVX-512, ~20 KB with AVX2).
inline constexpr std::size_t mv_quads = 32;      // decode: 128 blocks (4096 elements) per chunk
inline constexpr std::size_t mv_stride = 320;    // bytes of rearranged activations per quad of blocks
inline constexpr std::size_t gm_kc = 32;         // prefill: blocks per chunk
inline constexpr std::size_t gm_tc = 64;         // prefill: tokens per chunk

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

#define EDGELM_X86_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define EDGELM_X86_I512 EDGELM_X86_T512 inline __attribute__((always_inline))

namespace detail::k512 {

inline int pf_hint() noexcept { const char* e = std::getenv("PFH"); return e ? std::atoi(e) : 0; }
static const int g_pfh = pf_hint();
EDGELM_X86_I512 void pfetch(const char* p) noexcept {
  switch (g_pfh) { case 0: _mm_prefetch(p, _MM_HINT_T0); break; case 1: _mm_prefetch(p, _MM_HINT_T1); break; case 2: _mm_prefetch(p, _MM_HINT_T2); break; default: _mm_prefetch(p, _MM_HINT_NTA); }
}
// Keeps the compiler from contracting a product into a later add (and from reassociating sums).
EDGELM_X86_I512 __m512 pin(__m512 v) noexcept {
  __asm__("" : "+v"(v));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Quantized decode
// ---------------------------------------------------------------------------------------------

// Rearranged activations of one quad of blocks (b .. b+3; blocks past the row are zero), dx[4] at 256:
//   planes (q4_0; q8_0 with VBMI): A = the first 16 bytes of each block (chunk j = block b+j), B = the
//         last 16, C = -offset * the per-lane sums of 4 of A + B, so that dpbusd(dpbusd(C, lo, A), hi, B)
//         leaves in chunk j the partial sums of block b+j;
//   pairs (q8_0 without VBMI): A = [x_b | x_b+1], B = [x_b+2 | x_b+3], C / D = -128 * the per-lane
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
// chunk whose rearranged activations are xp. y = this pass's 16 outputs (running sums when !first).
template <class WB>
EDGELM_X86_T512 inline void mv_pass(float* y, const WB* w, std::size_t nb, unsigned cnt, const unsigned char* xp, std::size_t kc,
                                    bool first, const char* pf, std::size_t pf_step, const char* pf_end) noexcept {
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1u);
  const __m512i mconst = _mm512_set1_epi8(std::is_same_v<WB, block_q4_0> ? 0x0F : static_cast<char>(0x80));
  __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y);
  for (std::size_t b = 0; b < kc; b += 4) {
    const unsigned char* xq = xp + (b / 4) * mv_stride;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    for (std::size_t l = 0; l < pf_step; l += 64, pf += 64)
      if (pf < pf_end) pfetch(pf);
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
#define EDGELM_X86_T512V __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")))
#define EDGELM_X86_I512V EDGELM_X86_T512V inline __attribute__((always_inline))

// Row quad (blocks w[0..NQ)): v = the partial sums (chunk j = block j), r = a vector whose words
// 0/1 .. hold the scales where the pair permute below finds them.
template <int NQ>
EDGELM_X86_I512V void mvv_row(const block_q4_0* w, const unsigned char* xq, __m512i iqs, __m512i m0f, __m512i& v, __m512i& r) noexcept {
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
  v = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_load_si512(xq + 128), lo, _mm512_load_si512(xq)), hi, _mm512_load_si512(xq + 64));
}

template <int NQ>
EDGELM_X86_I512V void mvv_row(const block_q8_0* w, const unsigned char* xq, __m512i iqs, __m512i m80, __m512i& v, __m512i& r) noexcept {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(w);
  __m512i z0, z1, z2;
  if (NQ == 4) {
    z0 = _mm512_loadu_si512(p);
    z1 = _mm512_loadu_si512(p + 64);
    z2 = _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 128)));
  } else {
    constexpr int bytes = 34 * NQ;
    z0 = _mm512_maskz_loadu_epi8(bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << (bytes & 63)) - 1, p);
    z1 = bytes > 64 ? _mm512_maskz_loadu_epi8((__mmask64{1} << ((bytes - 64) & 63)) - 1, p + 64) : _mm512_setzero_si512();
    z2 = _mm512_setzero_si512();
  }
  const __m512i a = _mm512_permutex2var_epi8(z0, iqs, z1);
  const __m512i b = _mm512_permutex2var_epi8(z1, _mm512_add_epi8(iqs, _mm512_set1_epi8(4)), z2);
  const __m512i v0 = _mm512_dpbusd_epi32(_mm512_load_si512(xq + 128), _mm512_xor_si512(a, m80), _mm512_load_si512(xq));
  const __m512i v1 = _mm512_dpbusd_epi32(_mm512_load_si512(xq + 192), _mm512_xor_si512(b, m80), _mm512_load_si512(xq + 64));
  v = _mm512_add_epi32(_mm512_shuffle_i32x4(v0, v1, 0x88), _mm512_shuffle_i32x4(v0, v1, 0xDD));
  r = _mm512_permutex2var_epi16(z0, _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 34, 17, 0), z1);
}

// Two rows' scale vectors -> 8 words: [r.d0, r'.d0, r.d1, r'.d1, ...]
EDGELM_X86_I512V __m512i mvv_pair(const block_q4_0*, __m512i a, __m512i b) noexcept {
  return _mm512_permutex2var_epi16(a, _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 27, 50, 18, 41, 9, 32, 0), b);
}
EDGELM_X86_I512V __m512i mvv_pair(const block_q8_0*, __m512i a, __m512i b) noexcept { return _mm512_unpacklo_epi16(a, b); }

template <int NQ, class WB>
EDGELM_X86_I512V void mvv_quad(const WB* const* rb, const unsigned char* xq, __m512i iqs, __m512i mconst, __m512i o[4], __m512 d[4]) noexcept {
  __m512i s[4], q[4];
  const __m512i iq = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 19, 3, 18, 2, 17, 1, 16, 0);
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    __m512i v0, v1, v2, v3, r0, r1, r2, r3;
    mvv_row<NQ>(rb[4 * m], xq, iqs, mconst, v0, r0);
    mvv_row<NQ>(rb[4 * m + 1], xq, iqs, mconst, v1, r1);
    mvv_row<NQ>(rb[4 * m + 2], xq, iqs, mconst, v2, r2);
    mvv_row<NQ>(rb[4 * m + 3], xq, iqs, mconst, v3, r3);
    s[m] = hsum4x4(v0, v1, v2, v3);
    q[m] = _mm512_permutex2var_epi32(mvv_pair(rb[0], r0, r1), iq, mvv_pair(rb[0], r2, r3));
  }
  const __m512i t0 = _mm512_shuffle_i32x4(s[0], s[1], 0x44), t1 = _mm512_shuffle_i32x4(s[0], s[1], 0xEE);
  const __m512i t2 = _mm512_shuffle_i32x4(s[2], s[3], 0x44), t3 = _mm512_shuffle_i32x4(s[2], s[3], 0xEE);
  o[0] = _mm512_shuffle_i32x4(t0, t2, 0x88);
  o[1] = _mm512_shuffle_i32x4(t0, t2, 0xDD);
  o[2] = _mm512_shuffle_i32x4(t1, t3, 0x88);
  o[3] = _mm512_shuffle_i32x4(t1, t3, 0xDD);
  const __m512i is = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i s0 = _mm512_permutex2var_epi64(q[0], is, q[1]), s1 = _mm512_permutex2var_epi64(q[2], is, q[3]);
  const __m512i t01 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), s1);
  const __m512i t23 = _mm512_permutex2var_epi64(s0, _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4), s1);
  d[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(t01));
  d[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t01, 1));
  d[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(t23));
  d[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(t23, 1));
}

template <class WB>
EDGELM_X86_T512V inline void mvv_pass(float* y, const WB* w, std::size_t nb, unsigned cnt, const unsigned char* xp, std::size_t kc,
                                    bool first, const char* pf, std::size_t pf_step, const char* pf_end) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1u);
  const __m512i mconst = _mm512_set1_epi8(q4 ? 0x0F : static_cast<char>(0x80));
  // byte permutes of the quants, output byte 16j + i: q4_0 <- 18j + 2 + i (j < 3), 64 + i (j = 3);
  // q8_0 <- 34j + 2 + i (the low halves; the high halves take the same indices + 8 from the window at 8)
  alignas(64) std::int8_t ib[64];
  for (int k = 0; k < 64; ++k) ib[k] = static_cast<std::int8_t>(q4 ? (k < 48 ? 18 * (k / 16) + 2 + k % 16 : 64 + k % 16) : (k < 32 ? 2 + k : 4 + k));
  const __m512i iqs = _mm512_load_si512(ib);
  __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y);
  for (std::size_t b = 0; b < kc; b += 4) {
    const unsigned char* xq = xp + (b / 4) * mv_stride;
    const std::size_t nq = kc - b < 4 ? kc - b : 4;
    for (std::size_t l = 0; l < pf_step; l += 64, pf += 64)
      if (pf < pf_end) pfetch(pf);
    const WB* rb[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) rb[i] = rp[i] + b;
    __m512i o[4];
    __m512 d[4];
    switch (nq) {
      case 4: mvv_quad<4>(rb, xq, iqs, mconst, o, d); break;
      case 3: mvv_quad<3>(rb, xq, iqs, mconst, o, d); break;
      case 2: mvv_quad<2>(rb, xq, iqs, mconst, o, d); break;
      default: mvv_quad<1>(rb, xq, iqs, mconst, o, d); break;
    }
    const float* dx = reinterpret_cast<const float*>(xq + 256);
    for (std::size_t j = 0; j < nq; ++j) {
      const __m512 sc = _mm512_mul_ps(d[j], _mm512_set1_ps(dx[j]));
      acc = _mm512_add_ps(acc, pin(_mm512_mul_ps(_mm512_cvtepi32_ps(o[j]), sc)));
    }
  }
  _mm512_mask_storeu_ps(y, mask, acc);
}

inline std::size_t pf_passes() noexcept { const char* e = std::getenv("PFD"); return e ? std::strtoul(e, nullptr, 10) : 1; }
template <class WB>
EDGELM_X86_T512 inline void matvec_q(float* y, const WB* wd, std::size_t nb, const block_q8_0* x, std::uint32_t r0, std::uint32_t r1, bool vbmi) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  alignas(64) unsigned char xp[mv_quads * mv_stride];
  for (std::size_t kb = 0; kb < nb; kb += 4 * mv_quads) {
    const std::size_t kc = nb - kb < 4 * mv_quads ? nb - kb : 4 * mv_quads;
    for (std::size_t b = 0; b < kc; b += 4) {
      const std::size_t nq = kc - b < 4 ? kc - b : 4;
      if (q4)
        mv_prep_quad<true>(xp + (b / 4) * mv_stride, x + kb + b, nq, q4 ? 3 : 7);
      else
        mv_prep_quad<false>(xp + (b / 4) * mv_stride, x + kb + b, nq, 7);
    }
    // prefetch the rows of the pass PFD passes ahead, spread over this pass's quads
    const std::size_t nquads = (kc + 3) / 4;
    const std::size_t pf_step0 = (16 * nb * sizeof(WB) + 64 * nquads - 1) / (64 * nquads) * 64;
    const char* pf_end = reinterpret_cast<const char*>(wd + std::size_t{r1} * nb);
    const std::size_t pfd = pf_passes();
    const std::size_t pf_step = std::getenv("PFOFF") ? 0 : pf_step0;
    if (std::getenv("PFINIT")) { const char* a = reinterpret_cast<const char*>(wd + std::size_t{r0} * nb); const char* e = a + 16 * (pfd + 1) * nb * sizeof(WB); for (; a < e && a < pf_end; a += 64) pfetch(a); }
    for (std::uint32_t r = r0; r < r1; r += 16) {
      const unsigned cnt = r1 - r < 16 ? r1 - r : 16;
      const char* pf = reinterpret_cast<const char*>(wd + (std::size_t{r} + 16 * pfd) * nb);
      if (vbmi)
        mvv_pass(y + r, wd + std::size_t{r} * nb + kb, nb, cnt, xp, kc, kb == 0, pf, pf_step, pf_end);
      else
        mv_pass(y + r, wd + std::size_t{r} * nb + kb, nb, cnt, xp, kc, kb == 0, pf, pf_step, pf_end);
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
// blocks: per block 8 vectors (lane r = weights 4g .. 4g+3 of row r as unsigned bytes) and the 16
// scales as floats: 576 bytes.
template <class WB>
EDGELM_X86_T512 inline void gm_pack(unsigned char* dst, const WB* w, std::size_t nb, unsigned cnt, std::size_t kc) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  const WB* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * nb;
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i gidx = _mm512_mullo_epi32(_mm512_min_epu32(lane, _mm512_set1_epi32(static_cast<int>(cnt - 1))),
                                          _mm512_set1_epi32(static_cast<int>(nb * sizeof(WB))));
  const __m512i m0f = _mm512_set1_epi8(0x0F), m80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::size_t b = 0; b < kc; ++b) {
    unsigned char* o = dst + b * 576;
    __m512i z[4], t[4];
    for (int k = 0; k < 4; ++k) z[k] = load4x16(rp[k][b].qs, rp[k + 4][b].qs, rp[k + 8][b].qs, rp[k + 12][b].qs);
    transpose4(z, t);
    if (q4) {
      for (int g = 0; g < 4; ++g) {
        _mm512_store_si512(o + 64 * g, _mm512_and_si512(t[g], m0f));
        _mm512_store_si512(o + 64 * (g + 4), _mm512_and_si512(_mm512_srli_epi16(t[g], 4), m0f));
      }
    } else {
      for (int g = 0; g < 4; ++g) _mm512_store_si512(o + 64 * g, _mm512_xor_si512(t[g], m80));
      for (int k = 0; k < 4; ++k) z[k] = load4x16(rp[k][b].qs + 16, rp[k + 4][b].qs + 16, rp[k + 8][b].qs + 16, rp[k + 12][b].qs + 16);
      transpose4(z, t);
      for (int g = 0; g < 4; ++g) _mm512_store_si512(o + 64 * (g + 4), _mm512_xor_si512(t[g], m80));
    }
    const __m512i dg = _mm512_i32gather_epi32(gidx, static_cast<const void*>(&rp[0][b].d), 1);
    _mm512_store_ps(o + 512, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dg)));
  }
}

// -offset * sum(x) and the scale of each block of tokens [0, tc) (x = token 0 at the chunk's first
// block, stride ldx), blocks [0, kc): out[t * gm_kc + b].
EDGELM_X86_T512 inline void gm_prep(xblock* out, const block_q8_0* x, std::size_t ldx, std::size_t tc, std::size_t kc, int shift) noexcept {
  const __m256i m80 = _mm256_set1_epi8(static_cast<char>(0x80)), zero = _mm256_setzero_si256();
  for (std::size_t t = 0; t < tc; ++t)
    for (std::size_t b = 0; b < kc; ++b) {
      const block_q8_0& xb = x[t * ldx + b];
      // sum(x + 128) over the 32 bytes with vpsadbw, minus 32 * 128
      const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs)), m80), zero);
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const std::int32_t sum = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2))) - 4096;
      out[t * gm_kc + b].corr = -sum * (1 << shift);
      out[t * gm_kc + b].dx = fp16_to_f32(xb.d);
    }
}

// A panel x NT tokens over kc blocks. xt[t] = token t's activations at the chunk's first block,
// xb[t] = its prepared blocks, yt[t] = its 16 outputs (running sums when !first), mask = live rows.
template <int NT>
EDGELM_X86_T512 inline void gm_tile(const unsigned char* pk, std::size_t kc, const block_q8_0* const* xt, const xblock* const* xb,
                                    float* const* yt, __mmask16 mask, bool first) noexcept {
  __m512 acc[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, yt[t]);
  for (std::size_t b = 0; b < kc; ++b) {
    const unsigned char* o = pk + b * 576;
    const __m512i w0 = _mm512_load_si512(o), w1 = _mm512_load_si512(o + 64), w2 = _mm512_load_si512(o + 128),
                  w3 = _mm512_load_si512(o + 192), w4 = _mm512_load_si512(o + 256), w5 = _mm512_load_si512(o + 320),
                  w6 = _mm512_load_si512(o + 384), w7 = _mm512_load_si512(o + 448);
    const __m512 dw = _mm512_load_ps(o + 512);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const std::int8_t* q = xt[t][b].qs;
      __m512i i = _mm512_set1_epi32(xb[t][b].corr);
      i = _mm512_dpbusd_epi32(i, w0, _mm512_set1_epi32(load_i32(q)));
      i = _mm512_dpbusd_epi32(i, w1, _mm512_set1_epi32(load_i32(q + 4)));
      i = _mm512_dpbusd_epi32(i, w2, _mm512_set1_epi32(load_i32(q + 8)));
      i = _mm512_dpbusd_epi32(i, w3, _mm512_set1_epi32(load_i32(q + 12)));
      i = _mm512_dpbusd_epi32(i, w4, _mm512_set1_epi32(load_i32(q + 16)));
      i = _mm512_dpbusd_epi32(i, w5, _mm512_set1_epi32(load_i32(q + 20)));
      i = _mm512_dpbusd_epi32(i, w6, _mm512_set1_epi32(load_i32(q + 24)));
      i = _mm512_dpbusd_epi32(i, w7, _mm512_set1_epi32(load_i32(q + 28)));
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(xb[t][b].dx));
      acc[t] = _mm512_add_ps(acc[t], pin(_mm512_mul_ps(_mm512_cvtepi32_ps(i), sc)));
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(yt[t], mask, acc[t]);
}

template <class WB>
EDGELM_X86_T512 inline void gemm_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                   std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  constexpr bool q4 = std::is_same_v<WB, block_q4_0>;
  alignas(64) unsigned char pk[gm_kc * 576];
  xblock xp[gm_tc * gm_kc];
  for (std::size_t kb = 0; kb < nb; kb += gm_kc) {
    const std::size_t kc = nb - kb < gm_kc ? nb - kb : gm_kc;
    for (std::size_t t0 = 0; t0 < n; t0 += gm_tc) {
      const std::size_t tc = n - t0 < gm_tc ? n - t0 : gm_tc;
      gm_prep(xp, x + t0 * ldx + kb, ldx, tc, kc, q4 ? 3 : 7);
      for (std::uint32_t r = r0; r < r1; r += 16) {
        const unsigned cnt = r1 - r < 16 ? r1 - r : 16;
        const __mmask16 mask = static_cast<__mmask16>((1u << cnt) - 1u);
        gm_pack(pk, wd + std::size_t{r} * nb + kb, nb, cnt, kc);
        for (std::size_t t = 0; t < tc; t += 8) {
          const block_q8_0* xt[8];
          const xblock* xb[8];
          float* yt[8];
          const std::size_t nt = tc - t < 8 ? tc - t : 8;
          for (std::size_t i = 0; i < nt; ++i) {
            xt[i] = x + (t0 + t + i) * ldx + kb;
            xb[i] = xp + (t + i) * gm_kc;
            yt[i] = y + (t0 + t + i) * ldy + r;
          }
          switch (nt) {
            case 8: gm_tile<8>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 7: gm_tile<7>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 6: gm_tile<6>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 5: gm_tile<5>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 4: gm_tile<4>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 3: gm_tile<3>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            case 2: gm_tile<2>(pk, kc, xt, xb, yt, mask, kb == 0); break;
            default: gm_tile<1>(pk, kc, xt, xb, yt, mask, kb == 0); break;
          }
        }
      }
    }
  }
}

template <class WB>
EDGELM_X86_T512 inline void matmul_q(float* y, std::size_t ldy, const WB* wd, std::size_t nb, const block_q8_0* x, std::size_t ldx,
                                     std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  if (n == 1)
    matvec_q(y, wd, nb, x, r0, r1, std::getenv("NOVBMI") == nullptr);
  else
    gemm_q(y, ldy, wd, nb, x, ldx, n, r0, r1);
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

// 16 rows (cnt live, the rest repeat the last) x one token.
EDGELM_X86_T512 inline void f32_rows16(float* y, const float* w, std::size_t ldw, unsigned cnt, const float* x, std::size_t k) noexcept {
  const float* rp[16];
  for (unsigned i = 0; i < 16; ++i) rp[i] = w + (i < cnt ? i : cnt - 1) * ldw;
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  std::size_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m512 xv = _mm512_loadu_ps(x + j);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(rp[i] + j), xv, acc[i]);
  }
  if (j < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - j)) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + j);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, rp[i] + j), xv, acc[i]);
  }
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
    for (std::uint32_t r = r0; r < r1; r += 16) f32_rows16(y + r, w + std::size_t{r} * k, k, r1 - r < 16 ? r1 - r : 16, x, k);
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

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // EDGELM_X86_ENABLED

namespace detail {

// The products on a given path (tests call these to compare ISAs on one machine); false when the path
// is not compiled in (the caller must check that the CPU supports it).
inline bool matmul_on(isa_t isa, float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n,
                      std::uint32_t r0, std::uint32_t r1) noexcept {
#if defined(EDGELM_X86_ENABLED)
  if (r0 >= r1 || n == 0) return isa != isa_t::none;
  switch (isa) {
    case isa_t::avx512vnni: k512::matmul_f32(y, ldy, w.data, w.cols, x, ldx, n, r0, r1); return true;
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
  switch (isa) {
    case isa_t::avx512vnni: k512::matmul_q(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1); return true;
    default: return false;
  }
#else
  (void)isa, (void)y, (void)ldy, (void)w, (void)x, (void)ldx, (void)n, (void)r0, (void)r1;
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

}  // namespace edgelm::backends::x86
