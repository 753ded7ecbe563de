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
#include <cstddef>
#include <cstdint>
#include <cstring>

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

// Whether these kernels run on this CPU.
inline bool available() noexcept { return detail::cpu_isa() != detail::isa_t::none; }

}  // namespace edgelm::backends::x86::kq
#endif
