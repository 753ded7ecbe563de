// backends/highway/wasm_kquants.hpp - WebAssembly SIMD128 dot products for the in-place weight types of
// llama-quantize's mixes (precision/ggml_quants.hpp): Q5_0 . q8_0, Q4_1 / Q5_1 . q8_sum, Q4_K / Q5_K / Q6_K .
// q8_k. Used by the Highway kernel policy's dot overloads on wasm (em++ -msimd128), one row . one token.
//
// Results: every function returns exactly the bits of kernels::scalar's dot (NaN payloads from inf/NaN
// scales aside).
//  - K-quants: the integer sums of a super-block are exact (grouped differently, but integers), then the
//    scalar reference's float expression, super-block after super-block.
//  - 32-blocks: the int32 sum of each block is exact; four blocks' float terms are formed at once in f32x4
//    lanes (the reference's operations per lane: float(sum) * (d_w * d_x) [+ m_w * s_x], IEEE single, no FMA
//    in SIMD128) and added to the running sum one lane at a time in block order, as the reference does.
//
// Integer products: i32x4.dot_i16x8_s on int16 lanes. A 16-byte vector read as eight int16 lanes holds the
// byte pair (2k, 2k+1) in lane k, so its "even" elements (low byte) and "odd" elements (high byte) come out
// with shifts alone: an int8 activation's even part is (v << 8) >>s 8, its odd part v >>s 8; a weight nibble
// or bit field is (v << a) >>u b (or a shift and a mask). The weights' even lanes are multiplied with the
// activations' even lanes and odd with odd, so no byte shuffles and no widening instructions are needed.
// Weight levels are unsigned (0..15 / 0..31 / 0..63; Q5_0 signed -16..15) and activations int8 (-128..127):
// a product is at most 63 * 128 in magnitude and a pair sum fits int32 easily, so nothing saturates.
// The per-sub-block scales multiply the four sub-blocks' sums at once (a transpose-add of four int32x4
// partial vectors, then i32x4.mul by [sc_j .. sc_j+3]); Q4_K / Q5_K mins and Q6_K's -32 offset use the
// activation's bsums (one dot each), as the scalar reference does.
//
// V8 notes (node 20): TurboFan emits a basic block's loads ahead of its arithmetic; storing each step's
// partial sums (EDGELM_WASM_KQ_PIN, as wasm.hpp's EDGELM_WASM_PIN) keeps a step's registers together.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <edgelm/core/half.hpp>
#include <edgelm/precision/block_util.hpp>
#include <edgelm/precision/ggml_quants.hpp>

#include "wasm.hpp"

#if defined(__wasm_simd128__)
namespace edgelm::backends::wasm::kq {

// wasm.hpp's EDGELM_WASM_PIN: a store of the step's partial sums between one step's loads and the next's.
#define EDGELM_WASM_KQ_PIN(p) __asm__ volatile("" : : "r"(p) : "memory")

namespace detail {

using edgelm::backends::wasm::detail::half_hi_to_f32;
using edgelm::backends::wasm::detail::hsum4_i32;

// int8 bytes as int16 lanes: the even bytes (2k) and the odd bytes (2k + 1), sign-extended.
inline v128_t even_s8(v128_t v) noexcept { return wasm_i16x8_shr(wasm_i16x8_shl(v, 8), 8); }
inline v128_t odd_s8(v128_t v) noexcept { return wasm_i16x8_shr(v, 8); }
// Nibble K of each int16 lane (bits 4K .. 4K + 3): 0 / 1 the low / high nibble of the even byte, 2 / 3 of the
// odd byte.
template <int K>
inline v128_t nib(v128_t v) noexcept {
  if constexpr (K == 3)
    return wasm_u16x8_shr(v, 12);
  else
    return wasm_u16x8_shr(wasm_i16x8_shl(v, 12 - 4 * K), 12);
}
// v shifted left by S (right by -S).
template <int S>
inline v128_t shift(v128_t v) noexcept {
  if constexpr (S > 0)
    return wasm_i16x8_shl(v, S);
  else if constexpr (S < 0)
    return wasm_u16x8_shr(v, -S);
  else
    return v;
}
// The int32x4 partial dot of 16 weight levels (even lanes we, odd lanes wo) with 16 int8 activations a.
inline v128_t dot16(v128_t we, v128_t wo, v128_t a) noexcept {
  return wasm_i32x4_add(wasm_i32x4_dot_i16x8(we, even_s8(a)), wasm_i32x4_dot_i16x8(wo, odd_s8(a)));
}
// Sum of the four int32 lanes (exact).
inline std::int32_t hsum_i32(v128_t v) noexcept {
  v = wasm_i32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_i32x4_add(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_i32x4_extract_lane(v, 0);
}

// ---- 32-blocks ----
// Qh bits as int16 lanes: bit 2k (even elements) / 2k + 1 (odd elements) of a 16-bit half of qh in lane k.
inline v128_t bits_even() noexcept { return wasm_i16x8_const(1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 8, 1 << 10, 1 << 12, 1 << 14); }
inline v128_t bits_odd() noexcept {
  return wasm_i16x8_const(1 << 1, 1 << 3, 1 << 5, 1 << 7, 1 << 9, 1 << 11, 1 << 13, static_cast<std::int16_t>(0x8000));
}

// The int32x4 partial sums of one 32-block: Five adds the fifth bit from qh, Signed subtracts 16 (Q5_0).
// Element j < 16 is the low nibble of qs[j], j + 16 the high one (lanes: nib<0>/<2> low, <1>/<3> high).
template <bool Five, bool Signed, class B>
inline v128_t block32(const B& w, const std::int8_t* a) noexcept {
  const v128_t q = wasm_v128_load(w.qs);
  v128_t le = nib<0>(q), lo = nib<2>(q), he = nib<1>(q), ho = nib<3>(q);
  if constexpr (Five) {
    const v128_t h0 = wasm_v128_load16_splat(w.qh), h1 = wasm_v128_load16_splat(w.qh + 2);
    const v128_t be = bits_even(), bo = bits_odd(), z = wasm_i16x8_const_splat(0);
    if constexpr (Signed) {  // level = nibble - (bit clear ? 16 : 0)
      const v128_t c16 = wasm_i16x8_const_splat(16);
      le = wasm_i16x8_sub(le, wasm_v128_and(wasm_i16x8_eq(wasm_v128_and(h0, be), z), c16));
      lo = wasm_i16x8_sub(lo, wasm_v128_and(wasm_i16x8_eq(wasm_v128_and(h0, bo), z), c16));
      he = wasm_i16x8_sub(he, wasm_v128_and(wasm_i16x8_eq(wasm_v128_and(h1, be), z), c16));
      ho = wasm_i16x8_sub(ho, wasm_v128_and(wasm_i16x8_eq(wasm_v128_and(h1, bo), z), c16));
    } else {  // level = nibble | (bit set ? 16 : 0)
      const v128_t c16 = wasm_i16x8_const_splat(16);
      le = wasm_v128_or(le, wasm_v128_andnot(c16, wasm_i16x8_eq(wasm_v128_and(h0, be), z)));
      lo = wasm_v128_or(lo, wasm_v128_andnot(c16, wasm_i16x8_eq(wasm_v128_and(h0, bo), z)));
      he = wasm_v128_or(he, wasm_v128_andnot(c16, wasm_i16x8_eq(wasm_v128_and(h1, be), z)));
      ho = wasm_v128_or(ho, wasm_v128_andnot(c16, wasm_i16x8_eq(wasm_v128_and(h1, bo), z)));
    }
  }
  return wasm_i32x4_add(dot16(le, lo, wasm_v128_load(a)), dot16(he, ho, wasm_v128_load(a + 16)));
}

// Four fp16 scales, each in the upper half of a 32-bit lane (half_hi_to_f32's input).
inline v128_t gather_d4(const std::uint16_t* d0, const std::uint16_t* d1, const std::uint16_t* d2, const std::uint16_t* d3) noexcept {
  v128_t h = wasm_i32x4_const_splat(0);
  h = wasm_v128_load16_lane(d0, h, 1);
  h = wasm_v128_load16_lane(d1, h, 3);
  h = wasm_v128_load16_lane(d2, h, 5);
  h = wasm_v128_load16_lane(d3, h, 7);
  return h;
}

// Adds the four lanes of v to s in lane order (the reference's block order).
inline float add_lanes_in_order(float s, v128_t v) noexcept {
  s += wasm_f32x4_extract_lane(v, 0);
  s += wasm_f32x4_extract_lane(v, 1);
  s += wasm_f32x4_extract_lane(v, 2);
  s += wasm_f32x4_extract_lane(v, 3);
  return s;
}

}  // namespace detail

// Q5_0 . q8_0 over n elements (a multiple of 32).
inline float dot_q5_0(const block_q5_0* w, const block_q8_0* x, std::size_t n) noexcept {
  const std::size_t nb = n / 32;
  float s = 0.0f;
  std::size_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    alignas(16) v128_t p[4];
    for (std::size_t j = 0; j < 4; ++j) {
      p[j] = detail::block32<true, true>(w[b + j], x[b + j].qs);
      EDGELM_WASM_KQ_PIN(p);
    }
    const v128_t acc = detail::hsum4_i32(p[0], p[1], p[2], p[3]);
    const v128_t dw = detail::half_hi_to_f32(detail::gather_d4(&w[b].d, &w[b + 1].d, &w[b + 2].d, &w[b + 3].d));
    const v128_t dx = detail::half_hi_to_f32(detail::gather_d4(&x[b].d, &x[b + 1].d, &x[b + 2].d, &x[b + 3].d));
    s = detail::add_lanes_in_order(s, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(acc), wasm_f32x4_mul(dw, dx)));
  }
  for (; b < nb; ++b) {
    const std::int32_t acc = detail::hsum_i32(detail::block32<true, true>(w[b], x[b].qs));
    s += edgelm::detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d)));
  }
  return s;
}

// Q4_1 (Five = false) / Q5_1 (Five = true) . q8_sum over n elements (a multiple of 32).
template <bool Five, class B>
inline float dot_q41_q51(const B* w, const block_q8_sum* x, std::size_t n) noexcept {
  const std::size_t nb = n / 32;
  float s = 0.0f;
  std::size_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    alignas(16) v128_t p[4];
    for (std::size_t j = 0; j < 4; ++j) {
      p[j] = detail::block32<Five, false>(w[b + j], x[b + j].qs);
      EDGELM_WASM_KQ_PIN(p);
    }
    const v128_t acc = detail::hsum4_i32(p[0], p[1], p[2], p[3]);
    const v128_t dw = detail::half_hi_to_f32(detail::gather_d4(&w[b].d, &w[b + 1].d, &w[b + 2].d, &w[b + 3].d));
    const v128_t mw = detail::half_hi_to_f32(detail::gather_d4(&w[b].m, &w[b + 1].m, &w[b + 2].m, &w[b + 3].m));
    const v128_t dx = wasm_f32x4_make(x[b].d, x[b + 1].d, x[b + 2].d, x[b + 3].d);
    const v128_t sx = wasm_f32x4_make(x[b].s, x[b + 1].s, x[b + 2].s, x[b + 3].s);
    const v128_t t = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(acc), wasm_f32x4_mul(dw, dx)), wasm_f32x4_mul(mw, sx));
    s = detail::add_lanes_in_order(s, t);
  }
  for (; b < nb; ++b) {
    const std::int32_t acc = detail::hsum_i32(detail::block32<Five, false>(w[b], x[b].qs));
    s += edgelm::detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * x[b].d)) + edgelm::detail::no_contract(fp16_to_f32(w[b].m) * x[b].s);
  }
  return s;
}

// Q4_K (Five = false) / Q5_K (Five = true) . q8_k over n elements (a multiple of 256). Sub-block 2p is the
// low nibbles of qs[32p .. 32p + 31] against x.qs[64p ..], 2p + 1 the high nibbles against x.qs[64p + 32 ..];
// Q5_K's fifth bit of element l of sub-block j is bit j of qh[l] (even l: bit j of lane k of qh read as
// int16, odd l: bit 8 + j). Per super-block: sum_sc = sum_j sc_j * S_j, sum_min = sum_j m_j * (bsums[2j] +
// bsums[2j + 1]), then the scalar reference's float expression.
template <bool Five, class B>
inline float dot_q45k(const B* w, const block_q8_k* x, std::size_t n) noexcept {
  float s = 0.0f;
  for (std::size_t b = 0; b < n / 256; ++b) {
    const B& wb = w[b];
    const block_q8_k& xb = x[b];
    // the 8 6-bit scales and mins (detail::scale_min_k4 for j = 0..7): bytes 0..7 scales, 8..15 mins
    std::uint32_t u[4];
    std::memcpy(u, wb.scales, 12);
    u[3] = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const std::uint32_t m03 = u[1] & 0x3F3F3F3Fu;
    u[1] = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = m03;
    u[0] &= 0x3F3F3F3Fu;
    const v128_t scm = wasm_v128_load(u);
    alignas(16) v128_t S[8];  // the sub-blocks' int32x4 partial sums
#pragma clang loop unroll(full)
    for (int p = 0; p < 4; ++p) {
#pragma clang loop unroll(full)
      for (int c = 0; c < 2; ++c) {  // elements 16c .. 16c + 15 of sub-blocks 2p and 2p + 1
        const v128_t q = wasm_v128_load(wb.qs + 32 * p + 16 * c);
        v128_t le = detail::nib<0>(q), lo = detail::nib<2>(q), he = detail::nib<1>(q), ho = detail::nib<3>(q);
        if constexpr (Five) {
          // bit j -> bit 4: even lanes shift by 4 - j, odd lanes by 4 - (8 + j), then mask
          const v128_t h = wasm_v128_load(wb.qh + 16 * c), c16 = wasm_i16x8_const_splat(16);
          switch (p) {
#define EDGELM_KQ_BITS(J)                                                             \
  le = wasm_v128_or(le, wasm_v128_and(detail::shift<4 - (J)>(h), c16));               \
  lo = wasm_v128_or(lo, wasm_v128_and(detail::shift<4 - 8 - (J)>(h), c16));           \
  he = wasm_v128_or(he, wasm_v128_and(detail::shift<4 - (J) - 1>(h), c16));           \
  ho = wasm_v128_or(ho, wasm_v128_and(detail::shift<4 - 8 - (J) - 1>(h), c16));
            case 0: EDGELM_KQ_BITS(0) break;
            case 1: EDGELM_KQ_BITS(2) break;
            case 2: EDGELM_KQ_BITS(4) break;
            default: EDGELM_KQ_BITS(6) break;
#undef EDGELM_KQ_BITS
          }
        }
        const v128_t lo_sum = detail::dot16(le, lo, wasm_v128_load(xb.qs + 64 * p + 16 * c));
        const v128_t hi_sum = detail::dot16(he, ho, wasm_v128_load(xb.qs + 64 * p + 32 + 16 * c));
        if (c == 0) {
          S[2 * p] = lo_sum;
          S[2 * p + 1] = hi_sum;
        } else {
          S[2 * p] = wasm_i32x4_add(S[2 * p], lo_sum);
          S[2 * p + 1] = wasm_i32x4_add(S[2 * p + 1], hi_sum);
        }
        EDGELM_WASM_KQ_PIN(S);
      }
    }
    const v128_t s16 = wasm_u16x8_extend_low_u8x16(scm);   // scales 0..7 as int16
    const v128_t m16 = wasm_u16x8_extend_high_u8x16(scm);  // mins 0..7
    const v128_t sc = wasm_i32x4_add(wasm_i32x4_mul(detail::hsum4_i32(S[0], S[1], S[2], S[3]), wasm_u32x4_extend_low_u16x8(s16)),
                                     wasm_i32x4_mul(detail::hsum4_i32(S[4], S[5], S[6], S[7]), wasm_u32x4_extend_high_u16x8(s16)));
    const v128_t bs0 = wasm_v128_load(xb.bsums), bs1 = wasm_v128_load(xb.bsums + 8);
    const v128_t mn = wasm_i32x4_add(wasm_i32x4_dot_i16x8(bs0, wasm_i16x8_shuffle(m16, m16, 0, 0, 1, 1, 2, 2, 3, 3)),
                                     wasm_i32x4_dot_i16x8(bs1, wasm_i16x8_shuffle(m16, m16, 4, 4, 5, 5, 6, 6, 7, 7)));
    const v128_t t = wasm_i32x4_add(wasm_i32x4_shuffle(sc, mn, 0, 1, 4, 5), wasm_i32x4_shuffle(sc, mn, 2, 3, 6, 7));
    const std::int32_t sum_sc = wasm_i32x4_extract_lane(t, 0) + wasm_i32x4_extract_lane(t, 1);
    const std::int32_t sum_min = wasm_i32x4_extract_lane(t, 2) + wasm_i32x4_extract_lane(t, 3);
    s += edgelm::detail::no_contract(fp16_to_f32(wb.d) * xb.d * static_cast<float>(sum_sc)) -
         edgelm::detail::no_contract(fp16_to_f32(wb.dmin) * xb.d * static_cast<float>(sum_min));
  }
  return s;
}

// Q6_K . q8_k over n elements (a multiple of 256). Element e = 128h + 32g + l: low 4 bits from
// ql[64h + 32(g & 1) + l] (low nibble for g < 2), high 2 from bits 2g, 2g + 1 of qh[32h + l]; unsigned
// levels u in 0..63 against the activations, the -32 as 32 * sum_j scale_j * bsums_j. Sub-block (16 elements)
// 8h + 2g + c for l in [16c, 16c + 16).
inline float dot_q6k(const block_q6_k* w, const block_q8_k* x, std::size_t n) noexcept {
  float s = 0.0f;
  for (std::size_t b = 0; b < n / 256; ++b) {
    const block_q6_k& wb = w[b];
    const block_q8_k& xb = x[b];
    const v128_t c48 = wasm_i16x8_const_splat(0x30);
    const v128_t sc8 = wasm_v128_load(wb.scales);
    const v128_t sl = wasm_i16x8_extend_low_i8x16(sc8), sh = wasm_i16x8_extend_high_i8x16(sc8);  // scales as int16
    v128_t acc = wasm_i32x4_const_splat(0);
    for (int h = 0; h < 2; ++h) {
      alignas(16) v128_t S[8];
#pragma clang loop unroll(full)
      for (int g = 0; g < 4; ++g)
#pragma clang loop unroll(full)
        for (int c = 0; c < 2; ++c) {
          const v128_t ql = wasm_v128_load(wb.ql + 64 * h + 32 * (g & 1) + 16 * c);
          const v128_t qh = wasm_v128_load(wb.qh + 32 * h + 16 * c);
          v128_t we = g < 2 ? detail::nib<0>(ql) : detail::nib<1>(ql);
          v128_t wo = g < 2 ? detail::nib<2>(ql) : detail::nib<3>(ql);
          // bits 2g, 2g + 1 of the even / odd byte -> bits 4, 5
          switch (g) {
#define EDGELM_KQ_HI(G)                                                               \
  we = wasm_v128_or(we, wasm_v128_and(detail::shift<4 - 2 * (G)>(qh), c48));          \
  wo = wasm_v128_or(wo, wasm_v128_and(detail::shift<4 - 8 - 2 * (G)>(qh), c48));
            case 0: EDGELM_KQ_HI(0) break;
            case 1: EDGELM_KQ_HI(1) break;
            case 2: EDGELM_KQ_HI(2) break;
            default: EDGELM_KQ_HI(3) break;
#undef EDGELM_KQ_HI
          }
          S[2 * g + c] = detail::dot16(we, wo, wasm_v128_load(xb.qs + 128 * h + 32 * g + 16 * c));
          EDGELM_WASM_KQ_PIN(S);
        }
      const v128_t sv = h == 0 ? sl : sh;  // scales 8h .. 8h + 7
      acc = wasm_i32x4_add(acc, wasm_i32x4_mul(detail::hsum4_i32(S[0], S[1], S[2], S[3]), wasm_i32x4_extend_low_i16x8(sv)));
      acc = wasm_i32x4_add(acc, wasm_i32x4_mul(detail::hsum4_i32(S[4], S[5], S[6], S[7]), wasm_i32x4_extend_high_i16x8(sv)));
    }
    // sum_j scale_j * (U_j - 32 * bsums_j)
    const v128_t corr = wasm_i32x4_add(wasm_i32x4_dot_i16x8(sl, wasm_v128_load(xb.bsums)), wasm_i32x4_dot_i16x8(sh, wasm_v128_load(xb.bsums + 8)));
    const std::int32_t sum = detail::hsum_i32(wasm_i32x4_sub(acc, wasm_i32x4_shl(corr, 5)));
    s += edgelm::detail::no_contract(fp16_to_f32(wb.d) * xb.d * static_cast<float>(sum));
  }
  return s;
}

#undef EDGELM_WASM_KQ_PIN

}  // namespace edgelm::backends::wasm::kq
#endif
