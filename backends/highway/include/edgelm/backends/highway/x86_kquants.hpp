// backends/highway/x86_kquants.hpp - AVX2 dot products for the in-place weight types of llama-quantize's
// mixes (precision/ggml_quants.hpp): Q5_0 / Q4_1 / Q5_1 against q8_0 / q8_sum activations, Q4_K / Q5_K /
// Q6_K against q8_k. Chosen at run time (x86::detail::cpu_isa() != none: AVX2 + FMA + F16C), else the
// scalar reference runs. Used by the Highway kernel policy's dot overloads, one row . one token at a time.
//
// The weights are unpacked to bytes in registers and multiplied with vpmaddubsw (unsigned weight levels x
// signed activations; Q5_0's signed levels through |w| x sign(x, w)), then vpmaddwd sums pairs (with the
// sub-block scale for the K-quants). No sum can saturate: a pair of bytes is at most 2 * 63 * 128.
//  - K-quants: the integer sum of a super-block is exact and the float expression is the scalar
//    reference's, so the result is bit-identical to kernels::scalar.
//  - 32-blocks: per block the exact int32 sum is scaled and accumulated in 8 float lanes (FMA), summed
//    at the end: a different float order than the scalar reference (a few ulps), the same for every call.
#pragma once
#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <edgelm/precision/ggml_quants.hpp>

#include "x86.hpp"

#if defined(EDGELM_X86_ENABLED)
namespace edgelm::backends::x86::kq {

#define EDGELM_KQ_T EDGELM_X86_NOSAN __attribute__((target("avx2,fma,f16c")))

EDGELM_KQ_T inline std::int32_t hsum_i32(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
EDGELM_KQ_T inline float hsum_f32(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// The 32 nibbles of a 32-block: bytes 0..15 the low nibbles of qs[0..15], 16..31 the high ones.
EDGELM_KQ_T inline __m256i nibbles32(const std::uint8_t* qs) noexcept {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), m4 = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}
// Byte j = 0x10 where bit j of the 32-bit qh is set, else 0.
EDGELM_KQ_T inline __m256i bits32(const std::uint8_t* qh4) noexcept {
  std::uint32_t qh;
  std::memcpy(&qh, qh4, 4);
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}
EDGELM_KQ_T inline float h2f(std::uint16_t h) noexcept { return _cvtsh_ss(h); }
// Software prefetch of the weight stream this far ahead (the rows of a matrix are contiguous, so past a
// row's end it fetches the next rows; a prefetch never faults).
inline constexpr std::size_t kq_prefetch = 2048;
EDGELM_KQ_T inline void prefetch_span(const void* p, std::size_t bytes) noexcept {
  const char* c = static_cast<const char*>(p) + kq_prefetch;
  for (std::size_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

// One Q5_0 block . q8_0 block: the 8 int32 partial sums as floats (levels -16..15 as |w| x sign(x, w)).
EDGELM_KQ_T inline __m256 q5_0_block(const block_q5_0& w, const block_q8_0& x) noexcept {
  const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(w.qs), bits32(w.qh)), _mm256_set1_epi8(16));
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q)), _mm256_set1_epi16(1)));
}

EDGELM_KQ_T inline float dot_q5_0(const block_q5_0* w, const block_q8_0* x, std::size_t n) noexcept {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const std::size_t nb = n / 32;
  std::size_t b = 0;
  for (; b + 2 <= nb; b += 2) {  // two independent chains
    if ((b & 2) == 0) prefetch_span(w + b, 64);
    acc0 = _mm256_fmadd_ps(q5_0_block(w[b], x[b]), _mm256_set1_ps(h2f(w[b].d) * h2f(x[b].d)), acc0);
    acc1 = _mm256_fmadd_ps(q5_0_block(w[b + 1], x[b + 1]), _mm256_set1_ps(h2f(w[b + 1].d) * h2f(x[b + 1].d)), acc1);
  }
  if (b < nb) acc0 = _mm256_fmadd_ps(q5_0_block(w[b], x[b]), _mm256_set1_ps(h2f(w[b].d) * h2f(x[b].d)), acc0);
  return hsum_f32(_mm256_add_ps(acc0, acc1));
}

template <bool Five, class B>
EDGELM_KQ_T inline float dot_q41_q51(const B* w, const block_q8_sum* x, std::size_t n) noexcept {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (std::size_t b = 0; b < n / 32; ++b) {
    __m256i q = nibbles32(w[b].qs);
    if constexpr (Five) q = _mm256_or_si256(q, bits32(w[b].qh));
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(w[b].d) * x[b].d), acc);
    mins += h2f(w[b].m) * x[b].s;
  }
  return hsum_f32(acc) + mins;
}

// Q4_K / Q5_K: pair p of sub-blocks (2p: low nibbles of qs[32p..], 2p+1: high nibbles), Five adds bit 2p /
// 2p+1 of qh[l] as the fifth bit. Integer sums as the scalar reference, then its float expression.
template <bool Five, class B>
EDGELM_KQ_T inline float dot_q45k(const B* w, const block_q8_k* x, std::size_t n) noexcept {
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  float s = 0.0f;
  for (std::size_t b = 0; b < n / 256; ++b) {
    prefetch_span(w + b, sizeof(B));
    __m256i acc = _mm256_setzero_si256();
    std::int32_t sum_min = 0;
    __m256i hb = _mm256_setzero_si256();
    if constexpr (Five) hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh));
    // The 8 6-bit scales and mins (detail::scale_min_k4 for j = 0..7) in two 32-bit words each.
    std::uint32_t u[4];
    std::memcpy(u, w[b].scales, 12);
    u[3] = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const std::uint32_t m03 = u[1] & 0x3F3F3F3Fu;
    u[1] = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = m03;
    u[0] &= 0x3F3F3F3Fu;
    std::uint8_t scm[16];  // scales 0..7, then mins 0..7
    std::memcpy(scm, u, 16);
    for (int p = 0; p < 4; ++p) {
      const int sc0 = scm[2 * p], sc1 = scm[2 * p + 1], m0 = scm[8 + 2 * p], m1 = scm[8 + 2 * p + 1];
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * p));
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (Five) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
        hb = _mm256_srli_epi16(hb, 2);
      }
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 64 * p));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 64 * p + 32));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), _mm256_set1_epi16(sc0)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), _mm256_set1_epi16(sc1)));
      sum_min += m0 * (x[b].bsums[4 * p] + x[b].bsums[4 * p + 1]) + m1 * (x[b].bsums[4 * p + 2] + x[b].bsums[4 * p + 3]);
    }
    const std::int32_t sum_sc = hsum_i32(acc);
    s += edgelm::detail::no_contract(h2f(w[b].d) * x[b].d * static_cast<float>(sum_sc)) -
         edgelm::detail::no_contract(h2f(w[b].dmin) * x[b].d * static_cast<float>(sum_min));
  }
  return s;
}

// Q6_K: 32 consecutive elements at a time (half h, group g), levels u = low 4 | high 2 << 4 in 0..63; the
// signed level is u - 32, so sum (u - 32) q = sum u q - 32 * bsums. Bit-identical to the scalar reference.
EDGELM_KQ_T inline float dot_q6k(const block_q6_k* w, const block_q8_k* x, std::size_t n) noexcept {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  float s = 0.0f;
  for (std::size_t b = 0; b < n / 256; ++b) {
    prefetch_span(w + b, sizeof(block_q6_k));
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h + 32));
      __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * h));
      for (int g = 0; g < 4; ++g) {
        const __m256i src = (g & 1) ? ql1 : ql0;
        const __m256i lo = g < 2 ? _mm256_and_si256(src, m4) : _mm256_and_si256(_mm256_srli_epi16(src, 4), m4);
        const __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
        qh = _mm256_srli_epi16(qh, 2);
        const int e = 128 * h + 32 * g;
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + e));
        const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(w[b].scales[e / 16 + 1]), _mm_set1_epi16(w[b].scales[e / 16]));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), sc));
      }
    }
    std::int32_t corr = 0;
    for (int j = 0; j < 16; ++j) corr += std::int32_t{w[b].scales[j]} * x[b].bsums[j];
    const std::int32_t sum = hsum_i32(acc) - 32 * corr;
    s += edgelm::detail::no_contract(h2f(w[b].d) * x[b].d * static_cast<float>(sum));
  }
  return s;
}

#undef EDGELM_KQ_T

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI matrix products for Q4_K / Q5_K / Q6_K (x86::detail::cpu_isa() is avx512vnni or avx512vbmi):
// tiles of up to 4 (row, token) pairs, R rows x T tokens (decode: 4 rows x 1 token, so each activation
// block is read from L1 for 4 rows while the 4 weight streams come in; prefill: 1 row x 4 tokens, so each
// row's levels and scales are unpacked once for 4 tokens).
//  - Levels: 64 consecutive elements per zmm (Q4_K / Q5_K: the low and the high nibbles of 32 bytes, i.e.
//    sub-blocks 2i and 2i + 1, Q5_K's fifth bits from qh; Q6_K: low 4 | high 2 << 4), so the activations
//    are plain 64-byte loads. vpmaddubsw (unsigned level x int8; a pair is at most 2 * 63 * 128) then
//    vpdpwssd by the sub-block scales, vpermw-broadcast per lane pair: per super-block 16 exact int32 lane
//    sums. Q4_K / Q5_K mins: vpmaddwd of the mins with the token's 16 bsums (8 exact lanes); Q6_K's -32
//    offset as 32 * sum_j scale_j * bsums_j, subtracted from the lanes in integers.
//  - Float: per (row, token) pair, lane sums x (d * x.d) (and mins x (dmin * x.d)) accumulated by FMA in
//    16 (8) float lanes over the super-blocks, reduced once at the end: the order ggml's AVX kernels use,
//    a few ulps from the scalar reference's (which reduces per super-block); every pair runs the same
//    instructions whatever the tile, so a value never depends on the tile, the token count or the row
//    range (the thread split).
// ---------------------------------------------------------------------------------------------
#define EDGELM_KQ_T512 EDGELM_X86_NOSAN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define EDGELM_KQ_I512 EDGELM_KQ_T512 inline __attribute__((always_inline))

// The AVX-512 VNNI paths below run on this CPU.
inline bool on_vnni512() noexcept {
  const detail::isa_t isa = detail::cpu_isa();
  return isa == detail::isa_t::avx512vnni || isa == detail::isa_t::avx512vbmi;
}

namespace k512 {

// int16 lanes 0..15 = word a, 16..31 = word b
EDGELM_KQ_I512 __m512i idx_pair(int a, int b) noexcept {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(a))), _mm256_set1_epi16(static_cast<short>(b)), 1);
}
// [lo | hi] of a 32-byte vector's nibbles
EDGELM_KQ_I512 __m512i join(__m256i lo, __m256i hi) noexcept { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// One row's super-block: levels of elements 64i .. 64i + 63 as zmm i (bytes), the scale of each lane pair
// (int16), the 16 int16 multipliers of the token's bsums (Q4_K / Q5_K: min j / 2; Q6_K: scale j), d, dmin.
struct unpacked {
  __m512i lv[4], sc[4];
  __m256i m16;
  float d, dmin;
};

template <bool Five, class B>
EDGELM_KQ_I512 void unpack(const B& w, unpacked& u) noexcept {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i hz = _mm256_setzero_si256();
  if constexpr (Five) hz = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * i));
    __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if constexpr (Five) {  // bit 2i / 2i + 1 of qh[l]: the fifth bit of element l of sub-block 2i / 2i + 1
      const __m256i one = _mm256_set1_epi8(1);
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hz, one), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hz, 1), one), 4));
      hz = _mm256_srli_epi16(hz, 2);
    }
    u.lv[i] = join(lo, hi);
  }
  // the 8 6-bit scales and mins (detail::scale_min_k4) in registers, 32-bit words u0 u1 u2 of the 12 bytes
  // (the 16-byte load ends inside qs): [u0 & 3F, u2 & 0F | (u0 >> 6 & 03) << 4, u1 & 3F, u2 >> 4 & 0F | (u1 >> 6 & 03) << 4]
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales));
  const __m128i a = _mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 1, 2, 0));  // u0 u2 u1 u2
  const __m128i c = _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4));
  const __m128i hb = _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(raw, _MM_SHUFFLE(1, 1, 0, 0)), 6), _mm_set1_epi32(0x03030303)), 4);
  const __m128i v = _mm_blend_epi32(_mm_and_si128(a, _mm_set1_epi32(0x3F3F3F3F)), _mm_or_si128(_mm_and_si128(c, _mm_set1_epi32(0x0F0F0F0F)), hb), 0xA);
  const __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(v));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) u.sc[i] = _mm512_permutexvar_epi16(idx_pair(2 * i, 2 * i + 1), s16);
  const __m128i mm = _mm_unpackhi_epi64(v, v);
  u.m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mm, mm));
  u.d = _cvtsh_ss(w.d);
  u.dmin = _cvtsh_ss(w.dmin);
}

EDGELM_KQ_I512 void unpack6(const block_q6_k& w, unpacked& u) noexcept {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // elements 128h + 0..63 and 128h + 64..127
    const __m512i ql = _mm512_loadu_si512(w.ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * h));
    const __m512i hz = join(qh, _mm256_srli_epi16(qh, 2));  // bits 0-1: elements 0..31, then 32..63
    u.lv[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(hz, m3), 4));
    u.lv[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hz, 4), m3), 4));
  }
  u.m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales)));
  const __m512i s = _mm512_castsi256_si512(u.m16);
  const __m512i lane8 = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
                                                           7, 6, 5, 4, 3, 2, 1, 0),
                                          3);  // lane pair L of zmm i: elements 64i + 2L, sub-block 4i + L / 8
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) u.sc[i] = _mm512_permutexvar_epi16(_mm512_add_epi16(lane8, _mm512_set1_epi16(static_cast<short>(4 * i))), s);
  u.d = _cvtsh_ss(w.d);
  u.dmin = 0.0f;
}

// R rows (wr[r]) x T tokens (xt[t]), R * T <= 4; y[t * ldy + r] (y at the tile's first row / token).
template <class B, int R, int T>
EDGELM_KQ_T512 void tile(float* y, std::size_t ldy, const B* const* wr, const block_q8_k* const* xt, std::size_t nb) noexcept {
  static_assert(R * T <= 4);
  constexpr bool six = std::is_same_v<B, block_q6_k>;
  __m512 acc[R * T];
  __m256 accm[R * T];
  for (int k = 0; k < R * T; ++k) acc[k] = _mm512_setzero_ps(), accm[k] = _mm256_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const B& w = wr[r][b];
      if constexpr (R > 1)
        for (std::size_t c = 0; c < sizeof(B); c += 64) _mm_prefetch(reinterpret_cast<const char*>(&w) + kq_prefetch + c, _MM_HINT_T0);
      unpacked u;
      if constexpr (six)
        unpack6(w, u);
      else
        unpack<std::is_same_v<B, block_q5_k>>(w, u);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const int k = r * T + t;
        const block_q8_k& x = xt[t][b];
        __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(u.lv[i], _mm512_loadu_si512(x.qs + 64 * i)), u.sc[i]);
        const __m256i m = _mm256_madd_epi16(u.m16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)));
        if constexpr (six) {
          s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(_mm256_slli_epi32(m, 5)));
        } else {
          accm[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_set1_ps(u.dmin * x.d), accm[k]);
        }
        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(u.d * x.d), acc[k]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      const int k = r * T + t;
      const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(acc[k]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[k]), 1)));
      y[t * ldy + r] = six ? hsum_f32(a8) : hsum_f32(a8) - hsum_f32(accm[k]);
    }
}

// y[t * ldy + r] = W.row(r) . x_t for r in [r0, r1), t < n: 4-row tiles for one token, 4-token tiles for more.
template <class B>
EDGELM_KQ_T512 void matmul(float* y, std::size_t ldy, const B* w, std::size_t nb, const block_q8_k* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                           std::uint32_t r1) noexcept {
  const B* wr[4];
  const block_q8_k* xt[4];
  if (n == 1) {
    xt[0] = x;
    std::uint32_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      for (int i = 0; i < 4; ++i) wr[i] = w + std::size_t{r + i} * nb;
      tile<B, 4, 1>(y + r, ldy, wr, xt, nb);
    }
    for (; r < r1; ++r) {
      wr[0] = w + std::size_t{r} * nb;
      tile<B, 1, 1>(y + r, ldy, wr, xt, nb);
    }
    return;
  }
  for (std::uint32_t r = r0; r < r1; ++r) {
    wr[0] = w + std::size_t{r} * nb;
    std::size_t t = 0;
    for (; t + 4 <= n; t += 4) {
      for (int i = 0; i < 4; ++i) xt[i] = x + (t + i) * ldx;
      tile<B, 1, 4>(y + t * ldy + r, ldy, wr, xt, nb);
    }
    for (; t < n; ++t) {
      xt[0] = x + t * ldx;
      tile<B, 1, 1>(y + t * ldy + r, ldy, wr, xt, nb);
    }
  }
}

}  // namespace k512

// The K-quant products on AVX-512 VNNI (false elsewhere: the caller runs its row-by-row dot).
template <class B>
inline bool matmul_k(float* y, std::size_t ldy, const B* w, std::size_t nb, const block_q8_k* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
  if (!on_vnni512()) return false;
  if (r0 < r1 && n > 0) k512::matmul(y, ldy, w, nb, x, ldx, n, r0, r1);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Repacked Q4_K / Q6_K (x86 AVX-512 VNNI, made at load by pack_k): 16 rows interleaved per super-block, so
// each int32 lane of a zmm is one row and a 4-byte activation group is broadcast to all 16 (vpdpbusd:
// unsigned levels x int8 activations, 4 products per lane). No per-row unpacking of scales at run time:
// the panel holds them as bytes (and Q4_K's mins as int16 pairs for vpdpwssd with the bsums). Per group g
// of rows 16g .. 16g + 15 and super-block b, a panel at (g * nb + b) * bytes:
//   chunk c = 0..31 (elements 8c .. 8c + 7), 64 bytes at 64c (Q6_K: at 192 (c / 2) + 64 (c % 2)): lane r byte k =
//     level(8c + k) | level(8c + 4 + k) << 4 (Q6_K: the low 4 bits of its levels);
//   Q4_K: 2048 scale j of row r (byte at 16j + r), 2176 mins of sub-blocks 2p, 2p + 1 (int16 pair at 64p + 4r),
//     2432 d of row r (fp16), 2464 dmin;
//   Q6_K: 192q + 128 (q = 0..15, elements 16q .. 16q + 15): lane r byte k bits 2i, 2i + 1 = high 2 bits of
//     element 16q + 4i + k; 3072 scale q of row r (int8 at 16q + r); 3328 d of row r (fp16); 32 bytes of padding.
//     A sub-block's three vectors (chunks 2q, 2q + 1 and its high bits) are 192 consecutive bytes, so the
//     kernel reads a panel front to back. With the chunks and the high bits in two regions of the panel (two
//     interleaved streams) the decode streamed 15-31 GB/s on a memory-contended Zen 5 host, against 26-33 GB/s
//     this way (kernel harness, same host, alternating; a plain read loop: 30-32).
// Rows past the matrix's end are zero. Integer sums per super-block and row are exact (as above); the
// float step per super-block and lane is fixed, so values do not depend on the tile or the row range
// (which is masked to the group's lanes).
// ---------------------------------------------------------------------------------------------
inline constexpr std::uint32_t packing_k16 = 0x36314B58u;  // "XK16"
template <class B>
inline constexpr std::size_t panel_bytes = std::is_same_v<B, block_q6_k> ? 3392 : std::is_same_v<B, block_q5_0> ? 352 : 2496;  // Q6_K: whole cache lines

namespace pk {

inline void levels(const block_q4_k& b, std::uint8_t lv[256]) noexcept {
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l) {
      lv[64 * j + l] = b.qs[32 * j + l] & 0x0F;
      lv[64 * j + 32 + l] = b.qs[32 * j + l] >> 4;
    }
}
inline void levels(const block_q6_k& b, std::uint8_t lv[256]) noexcept {
  for (int h = 0; h < 2; ++h)
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l) {
        const std::uint8_t lo = b.ql[64 * h + l + 32 * (g & 1)];
        lv[128 * h + 32 * g + l] = static_cast<std::uint8_t>(((g < 2) ? (lo & 0x0F) : (lo >> 4)) | (((b.qh[32 * h + l] >> (2 * g)) & 3) << 4));
      }
}

template <class B>
inline void pack_rows(unsigned char* dst, const B* w, std::size_t rows, std::size_t nb) noexcept {
  constexpr std::size_t PB = panel_bytes<B>;
  constexpr bool six = std::is_same_v<B, block_q6_k>;
  std::uint8_t lv[256];
  const std::size_t groups = (rows + 15) / 16;
  for (std::size_t g = 0; g < groups; ++g)
    for (std::size_t b = 0; b < nb; ++b) {
      unsigned char* o = dst + (g * nb + b) * PB;
      std::memset(o, 0, PB);
      for (std::size_t r = 0; r < 16 && g * 16 + r < rows; ++r) {
        const B& blk = w[(g * 16 + r) * nb + b];
        levels(blk, lv);
        for (int c = 0; c < 32; ++c) {
          const std::size_t co = six ? 192 * static_cast<std::size_t>(c / 2) + 64 * static_cast<std::size_t>(c % 2) : 64 * static_cast<std::size_t>(c);
          for (int k = 0; k < 4; ++k) o[co + 4 * r + k] = static_cast<unsigned char>((lv[8 * c + k] & 0x0F) | (lv[8 * c + 4 + k] & 0x0F) << 4);
        }
        if constexpr (six) {
          for (int q = 0; q < 16; ++q)
            for (int k = 0; k < 4; ++k) {
              unsigned v = 0;
              for (int i = 0; i < 4; ++i) v |= ((lv[16 * q + 4 * i + k] >> 4) & 3u) << (2 * i);
              o[192 * q + 128 + 4 * r + k] = static_cast<unsigned char>(v);
            }
          for (int q = 0; q < 16; ++q) std::memcpy(o + 3072 + 16 * q + r, &blk.scales[q], 1);
          std::memcpy(o + 3328 + 2 * r, &blk.d, 2);
        } else {
          for (int j = 0; j < 8; ++j) {
            std::uint8_t sc = 0, m = 0;
            edgelm::detail::scale_min_k4(j, blk.scales, sc, m);
            o[2048 + 16 * j + r] = sc;
            const std::int16_t m16 = m;
            std::memcpy(o + 2176 + 64 * (j / 2) + 4 * r + 2 * (j & 1), &m16, 2);
          }
          std::memcpy(o + 2432 + 2 * r, &blk.d, 2);
          std::memcpy(o + 2464 + 2 * r, &blk.dmin, 2);
        }
      }
    }
}

EDGELM_KQ_I512 __m512i bcast4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One group's 16 rows . T tokens over all nb super-blocks: out[t] lane r = row 16g + r . x_t.
template <int T>
EDGELM_KQ_T512 void group_q4k(const unsigned char* pk, std::size_t nb, const block_q8_k* const* xt, __m512 out[T]) noexcept {
  constexpr std::size_t PB = panel_bytes<block_q4_k>;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 fl[T], fm[T];
  for (int t = 0; t < T; ++t) fl[t] = _mm512_setzero_ps(), fm[t] = _mm512_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
    const unsigned char* p = pk + b * PB;
    __m512i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m512i a0[T], a1[T];
      for (int t = 0; t < T; ++t) a0[t] = _mm512_setzero_si512(), a1[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int c = 4 * j; c < 4 * j + 4; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(p) + 2 * PB + 64 * c, _MM_HINT_T0);
        const __m512i q = _mm512_loadu_si512(p + 64 * c);
        const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          a0[t] = _mm512_dpbusd_epi32(a0[t], lo, bcast4(xt[t][b].qs + 8 * c));
          a1[t] = _mm512_dpbusd_epi32(a1[t], hi, bcast4(xt[t][b].qs + 8 * c + 4));
        }
      }
      const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2048 + 16 * j)));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(a0[t], a1[t]), sc));
    }
    for (int c = 32; c < 39; ++c) _mm_prefetch(reinterpret_cast<const char*>(p) + 2 * PB + 64 * c, _MM_HINT_T0);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2432)));
    const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2464)));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const block_q8_k& x = xt[t][b];
      // the sums of the 8 sub-blocks of 32 (bsums of 16, pairwise) as 4 int16 pairs
      const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums)),
                                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8)));
      __m512i m = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(p + 2176), _mm512_set1_epi32(_mm_extract_epi32(bs, 0)));
      m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(p + 2176 + 64), _mm512_set1_epi32(_mm_extract_epi32(bs, 1)));
      m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(p + 2176 + 128), _mm512_set1_epi32(_mm_extract_epi32(bs, 2)));
      m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(p + 2176 + 192), _mm512_set1_epi32(_mm_extract_epi32(bs, 3)));
      const __m512 xd = _mm512_set1_ps(x.d);
      fl[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, xd), fl[t]);
      fm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dm, xd), fm[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = _mm512_sub_ps(fl[t], fm[t]);
}

template <int T>
EDGELM_KQ_T512 void group_q6k(const unsigned char* pk, std::size_t nb, const block_q8_k* const* xt, __m512 out[T]) noexcept {
  constexpr std::size_t PB = panel_bytes<block_q6_k>;
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  __m512 fl[T];
  for (int t = 0; t < T; ++t) fl[t] = _mm512_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
    const unsigned char* p = pk + b * PB;
    __m512i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) {  // sub-block q: elements 16q .. 16q + 15, chunks 2q and 2q + 1
      const char* ahead = reinterpret_cast<const char*>(p) + 2 * PB;  // the panel two on: the same bytes of it
      _mm_prefetch(ahead + 192 * q, _MM_HINT_T0);
      _mm_prefetch(ahead + 192 * q + 64, _MM_HINT_T0);
      _mm_prefetch(ahead + 192 * q + 128, _MM_HINT_T0);
      if (q < static_cast<int>((PB - 3072) / 64)) _mm_prefetch(ahead + 3072 + 64 * q, _MM_HINT_T0);  // its scales and d (5 lines)
      const __m512i q0 = _mm512_loadu_si512(p + 192 * q), q1 = _mm512_loadu_si512(p + 192 * q + 64);
      const __m512i h = _mm512_loadu_si512(p + 192 * q + 128);
      const __m512i u0 = _mm512_or_si512(_mm512_and_si512(q0, m4), _mm512_and_si512(_mm512_slli_epi16(h, 4), m30));
      const __m512i u1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), _mm512_and_si512(_mm512_slli_epi16(h, 2), m30));
      const __m512i u2 = _mm512_or_si512(_mm512_and_si512(q1, m4), _mm512_and_si512(h, m30));
      const __m512i u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), _mm512_and_si512(_mm512_srli_epi16(h, 2), m30));
      const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3072 + 16 * q)));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const block_q8_k& x = xt[t][b];
        const std::int8_t* a = x.qs + 16 * q;
        const __m512i s0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u0, bcast4(a)), u1, bcast4(a + 4));
        const __m512i s1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u2, bcast4(a + 8)), u3, bcast4(a + 12));
        // sum (u - 32) x = sum u x - 32 * bsum
        const __m512i s = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(32 * std::int32_t{x.bsums[q]}));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s, sc));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 3328)));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) fl[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(xt[t][b].d)), fl[t]);
  }
  for (int t = 0; t < T; ++t) out[t] = fl[t];
}

// Q5_0 (llama-quantize's fallback for rows that are not a multiple of 256): 16 rows x one 32-block per
// 352-byte panel at (g * nb + b) * 352: chunk c = 0..3 (elements 8c .. 8c + 7) at 64c, lane r byte k = low 4
// bits of element 8c + k | of 8c + 4 + k << 4; at 256 lane r byte k: bit 2c = fifth bit of element 8c + k,
// bit 2c + 1 of 8c + 4 + k; at 320 d of row r (fp16). Levels u = value + 16 in 0..31 (vpdpbusd), then
// sum (u - 16) x = sum u x - 16 sum x.
inline void pack_rows_q5_0(unsigned char* dst, const block_q5_0* w, std::size_t rows, std::size_t nb) noexcept {
  std::uint8_t lv[32];
  const std::size_t groups = (rows + 15) / 16;
  for (std::size_t g = 0; g < groups; ++g)
    for (std::size_t b = 0; b < nb; ++b) {
      unsigned char* o = dst + (g * nb + b) * panel_bytes<block_q5_0>;
      std::memset(o, 0, panel_bytes<block_q5_0>);
      for (std::size_t r = 0; r < 16 && g * 16 + r < rows; ++r) {
        const block_q5_0& blk = w[(g * 16 + r) * nb + b];
        std::uint32_t qh;
        std::memcpy(&qh, blk.qh, 4);
        for (int j = 0; j < 16; ++j) {
          lv[j] = static_cast<std::uint8_t>((blk.qs[j] & 0x0F) | ((qh >> j) & 1u) << 4);
          lv[j + 16] = static_cast<std::uint8_t>((blk.qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
        }
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            o[64 * c + 4 * r + k] = static_cast<unsigned char>((lv[8 * c + k] & 0x0F) | (lv[8 * c + 4 + k] & 0x0F) << 4);
            o[256 + 4 * r + k] |= static_cast<unsigned char>(((lv[8 * c + k] >> 4) & 1u) << (2 * c) | ((lv[8 * c + 4 + k] >> 4) & 1u) << (2 * c + 1));
          }
        std::memcpy(o + 320 + 2 * r, &blk.d, 2);
      }
    }
}

// Fifth bit 2c (lo) / 2c + 1 (hi) of each byte moved to bit 4.
template <int C, bool Hi>
EDGELM_KQ_I512 __m512i bit4(__m512i h) noexcept {
  constexpr int from = 2 * C + (Hi ? 1 : 0);
  const __m512i m10 = _mm512_set1_epi8(0x10);
  if constexpr (from < 4) return _mm512_and_si512(_mm512_slli_epi16(h, 4 - from), m10);
  else if constexpr (from == 4) return _mm512_and_si512(h, m10);
  else return _mm512_and_si512(_mm512_srli_epi16(h, from - 4), m10);
}

template <int C>
EDGELM_KQ_I512 void levels_q5_0(const unsigned char* p, __m512i h, __m512i u[8]) noexcept {
  const __m512i m4 = _mm512_set1_epi8(0x0F), q = _mm512_loadu_si512(p + 64 * C);
  u[2 * C] = _mm512_or_si512(_mm512_and_si512(q, m4), bit4<C, false>(h));
  u[2 * C + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), bit4<C, true>(h));
}

template <int T>
EDGELM_KQ_T512 void group_q5_0(const unsigned char* pk, std::size_t nb, const block_q8_0* const* xt, __m512 out[T]) noexcept {
  __m512 fl[T];
  for (int t = 0; t < T; ++t) fl[t] = _mm512_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
    const unsigned char* p = pk + b * panel_bytes<block_q5_0>;
    for (int c = 0; c < 6; ++c) _mm_prefetch(reinterpret_cast<const char*>(p) + 8 * panel_bytes<block_q5_0> + 64 * c, _MM_HINT_T0);
    const __m512i h = _mm512_loadu_si512(p + 256);
    __m512i u[8];
    levels_q5_0<0>(p, h, u);
    levels_q5_0<1>(p, h, u);
    levels_q5_0<2>(p, h, u);
    levels_q5_0<3>(p, h, u);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 320)));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const block_q8_0& x = xt[t][b];
      __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        a0 = _mm512_dpbusd_epi32(a0, u[2 * c], bcast4(x.qs + 8 * c));
        a1 = _mm512_dpbusd_epi32(a1, u[2 * c + 1], bcast4(x.qs + 8 * c + 4));
      }
      // sum x over the block: |x - 128| sums of the bytes as unsigned, less 32 * 128
      const __m256i xs = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
      const __m256i sad = _mm256_sad_epu8(xs, _mm256_setzero_si256());
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
      const std::int32_t sx = static_cast<std::int32_t>(_mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)))) - 32 * 128;
      const __m512i isum = _mm512_sub_epi32(_mm512_add_epi32(a0, a1), _mm512_set1_epi32(16 * sx));
      fl[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, _mm512_set1_ps(_cvtsh_ss(x.d))), fl[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = fl[t];
}

template <class B, int T, class XB>
EDGELM_KQ_T512 void group(const unsigned char* pk, std::size_t nb, const XB* const* xt, float* const* yt, __mmask16 mask) noexcept {
  __m512 out[T];
  if constexpr (std::is_same_v<B, block_q6_k>)
    group_q6k<T>(pk, nb, xt, out);
  else if constexpr (std::is_same_v<B, block_q5_0>)
    group_q5_0<T>(pk, nb, xt, out);
  else
    group_q4k<T>(pk, nb, xt, out);
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(yt[t], mask, out[t]);
}

// Any panel type (XB: its activation blocks, q8_k or q8_0): groups outer (each group's panels stay in cache
// for all tokens), tokens 4 at a time inner.
template <class B, class XB>
EDGELM_KQ_T512 void matmul(float* y, std::size_t ldy, const unsigned char* pw, std::size_t nb, const XB* x, std::size_t ldx, std::size_t n,
                           std::uint32_t r0, std::uint32_t r1) noexcept {
  const std::uint32_t g0 = r0 / 16, g1 = (r1 + 15) / 16;
  for (std::uint32_t g = g0; g < g1; ++g) {
    const std::uint32_t rb = g * 16, lo = r0 > rb ? r0 - rb : 0, hi = r1 - rb < 16 ? r1 - rb : 16;
    const __mmask16 mask = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    const unsigned char* pg = pw + std::size_t{g} * nb * panel_bytes<B>;
    for (std::size_t t = 0; t < n; t += 4) {
      const XB* xt[4];
      float* yt[4];
      const std::size_t nt = n - t < 4 ? n - t : 4;
      for (std::size_t i = 0; i < nt; ++i) xt[i] = x + (t + i) * ldx, yt[i] = y + (t + i) * ldy + rb;
      switch (nt) {
        case 4: group<B, 4>(pg, nb, xt, yt, mask); break;
        case 3: group<B, 3>(pg, nb, xt, yt, mask); break;
        case 2: group<B, 2>(pg, nb, xt, yt, mask); break;
        default: group<B, 1>(pg, nb, xt, yt, mask); break;
      }
    }
  }
}

}  // namespace pk

template <class B>
inline constexpr bool has_panels = std::is_same_v<B, block_q4_k> || std::is_same_v<B, block_q6_k> || std::is_same_v<B, block_q5_0>;

// Bytes of the repacked copy of a Q4_K / Q6_K / Q5_0 matrix on this CPU (0: none: not AVX-512 VNNI, another
// type, or too large for size_t).
template <class B>
inline std::size_t packed_bytes_k(std::size_t rows, std::size_t nb) noexcept {
  if constexpr (has_panels<B>) {
    const std::size_t groups = (rows + 15) / 16;
    if (!on_vnni512() || groups == 0 || nb == 0 || groups > SIZE_MAX / panel_bytes<B> / nb) return 0;
    return groups * nb * panel_bytes<B>;
  } else {
    (void)rows, (void)nb;
    return 0;
  }
}
template <class B>
inline std::uint32_t pack_k(const B* w, std::size_t rows, std::size_t nb, std::byte* dst) noexcept {
  if (packed_bytes_k<B>(rows, nb) == 0) return 0;
  if constexpr (std::is_same_v<B, block_q5_0>)
    pk::pack_rows_q5_0(reinterpret_cast<unsigned char*>(dst), w, rows, nb);
  else if constexpr (has_panels<B>)
    pk::pack_rows(reinterpret_cast<unsigned char*>(dst), w, rows, nb);
  return packing_k16;
}
// The product on pack_k's layout, XB the type's activation blocks (false: not that layout, or not this CPU).
template <class B, class XB>
inline bool matmul_k_packed(float* y, std::size_t ldy, const std::byte* packed, std::uint32_t packing, std::size_t nb, const XB* x, std::size_t ldx,
                            std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
  if constexpr (has_panels<B>) {
    if (!packed || packing != packing_k16 || !on_vnni512()) return false;
    if (r0 < r1 && n > 0) pk::matmul<B>(y, ldy, reinterpret_cast<const unsigned char*>(packed), nb, x, ldx, n, r0, r1);
    return true;
  } else {
    (void)y, (void)ldy, (void)packed, (void)packing, (void)nb, (void)x, (void)ldx, (void)n, (void)r0, (void)r1;
    return false;
  }
}

// ---- q8_k activations: q8_k::quantize_row, byte for byte (AVX-512; 256 floats are 16 vectors) ----
namespace k512 {
// One 256-block: the first element of largest magnitude (NaN skipped: max_ps returns its second operand
// when either is NaN), iscale = -127 / it, then the reference's round_clamp(iscale * x, -128, 127) on 16
// lanes (clamp with NaN -> -128, truncate, the half-away-from-zero step from the exact fraction); each
// vector is one 16-element bsums group.
EDGELM_KQ_T512 inline void q8k_block(const float* xb, block_q8_k& o) noexcept {
  __m512 v[16];
  __m512 am = _mm512_setzero_ps();
  for (int i = 0; i < 16; ++i) {
    v[i] = _mm512_loadu_ps(xb + 16 * i);
    am = _mm512_max_ps(_mm512_abs_ps(v[i]), am);
  }
  const float amax = _mm512_reduce_max_ps(am);
  if (!(amax > 0.0f) || !(amax <= FLT_MAX)) {  // all zero (or not finite): zeros, as the reference
    std::memset(&o, 0, sizeof o);
    return;
  }
  float max = 0.0f;
  const __m512 va = _mm512_set1_ps(amax);
  for (int i = 0; i < 16; ++i)
    if (const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(v[i]), va, _CMP_EQ_OQ)) {
      max = xb[16 * i + __builtin_ctz(m)];
      break;
    }
  const float iscale = -127.0f / max;
  const __m512 vs = _mm512_set1_ps(iscale), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  const __m512 h = _mm512_set1_ps(0.5f), nh = _mm512_set1_ps(-0.5f);
  const __m512i one = _mm512_set1_epi32(1);
  for (int i = 0; i < 16; ++i) {
    const __m512 c = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(vs, v[i]), lo), hi);
    __m512i q = _mm512_cvttps_epi32(c);
    const __m512 f = _mm512_sub_ps(c, _mm512_cvtepi32_ps(q));
    q = _mm512_mask_add_epi32(q, _mm512_cmp_ps_mask(f, h, _CMP_GE_OQ), q, one);
    q = _mm512_mask_sub_epi32(q, _mm512_cmp_ps_mask(f, nh, _CMP_LE_OQ), q, one);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs + 16 * i), _mm512_cvtepi32_epi8(q));
    o.bsums[i] = static_cast<std::int16_t>(_mm512_reduce_add_epi32(q));
  }
  o.d = 1.0f / iscale;
}
}  // namespace k512

// q8_k::quantize_row's bytes (false: not an AVX-512 CPU; the caller runs the reference).
inline bool quantize_q8_k(const float* x, block_q8_k* y, std::size_t n) noexcept {
  if (!on_vnni512()) return false;
  const std::size_t full = n / 256;
  for (std::size_t b = 0; b < full; ++b) k512::q8k_block(x + 256 * b, y[b]);
  if (const std::size_t rest = n % 256) {
    float tmp[256] = {};
    std::memcpy(tmp, x + 256 * full, rest * sizeof(float));
    k512::q8k_block(tmp, y[full]);
  }
  return true;
}

#undef EDGELM_KQ_T512
#undef EDGELM_KQ_I512

// Whether these kernels run on this CPU.
inline bool available() noexcept { return detail::cpu_isa() != detail::isa_t::none; }

}  // namespace edgelm::backends::x86::kq
#endif
