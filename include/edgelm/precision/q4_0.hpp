// edgelm/precision/q4_0.hpp - 4-bit blocks of 32 with one fp16 scale (ggml's Q4_0, 4.5 bits per weight).
// Activations are quantized to q8_0 for the dot product, as in ggml.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/half.hpp"
#include "../formats/ggml_types.hpp"
#include "block_util.hpp"
#include "f32.hpp"
#include "q8_0.hpp"

namespace edgelm {

// Exactly GGUF's block_q4_0: element j (0..15) is the low nibble of qs[j], element j + 16 the high
// nibble; value = (nibble - 8) * d.
struct block_q4_0 {
  std::uint16_t d;      // scale, IEEE fp16
  std::uint8_t qs[16];  // nibbles
};
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2, "block_q4_0 must match GGUF's layout");

struct q4_0 {
  using block_type = block_q4_0;
  using activation = q8_0;
  static constexpr std::size_t block_size = 32;
  static constexpr ggml_type type = ggml_type::q4_0;
  static constexpr std::string_view name = "q4_0";

  static constexpr std::size_t blocks(std::size_t n) noexcept { return (n + block_size - 1) / block_size; }

  // Level (-8..7) of element j of a block.
  static int level(const block_q4_0& b, std::size_t j) noexcept {
    return (j < 16 ? (b.qs[j] & 0x0F) : (b.qs[j - 16] >> 4)) - 8;
  }

  // Squared error of a block against the 32 floats it was made from.
  static float block_error(const float* x, const block_q4_0& b) noexcept {
    const float d = fp16_to_f32(b.d);
    float e = 0.0f;
    for (std::size_t j = 0; j < block_size; ++j) {
      const float r = x[j] - static_cast<float>(level(b, j)) * d;
      e += r * r;
    }
    return e;
  }

  // One block, exactly ggml's quantize_row_q4_0_ref: d = (the element of largest magnitude) / -8,
  // nibble = min(15, (int8_t)(x / d + 8.5)). Kept for tests and for byte-identical output to ggml.
  static void quantize_block_reference(const float* x, block_q4_0& y) noexcept {
    float amax = 0.0f, max = 0.0f;
    for (std::size_t j = 0; j < block_size; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y.d = f32_to_fp16(d);
    for (std::size_t j = 0; j < 16; ++j) {
      y.qs[j] = static_cast<std::uint8_t>(nibble_truncated(detail::no_contract(x[j] * id) + 8.5f) |
                                           (nibble_truncated(detail::no_contract(x[j + 16] * id) + 8.5f) << 4));
    }
  }

  // One block, searching for the scale with the least squared error (never worse than ggml's):
  //  1. ggml's block is the baseline;
  //  2. the level t that the largest-magnitude element maps to is searched on a coarse grid (-8.5 .. -6
  //     and +5.5 .. +7.5, step 0.5) refined twice around the best (+-0.25, +-0.125); each candidate
  //     rounds x * t / max to the nearest level in [-8, 7] and is scored by the energy its least-squares
  //     scale (sum x*l / sum l*l) explains;
  //  3. the winner's least-squares scale is rounded to fp16 and it and its two fp16 neighbours are tried
  //     with nearest rounding; the exact error with the fp16 scale the file will hold decides between
  //     these and the baseline. (A further least-squares refit or a 4x finer grid gained < 0.1%.)
  // About 0.7 us per block with AVX2 -O2 (ggml's reference: ~0.07 us; baseline x86-64 without SSE4.1,
  // where nearbyint is a libm call: ~2.5 us); ~11% less squared error than ggml on gaussian data and on
  // stories260K's weights (tests/test_quant.cpp prints the numbers).
  static void quantize_block(const float* x, block_q4_0& y) noexcept {
    quantize_block_reference(x, y);
    float best = block_error(x, y);
    float amax = 0.0f, max = 0.0f;
    for (std::size_t j = 0; j < block_size; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (!(best > 0.0f) || !std::isfinite(best) || !std::isfinite(amax)) return;  // exact already, or not finite

    // 2. search on t
    float best_score = -1.0f, best_ls = 0.0f, best_t = 0.0f;
    auto try_t = [&](float t) {
      float sxl, sll;
      grid_eval(x, t / max, sxl, sll);
      if (sll > 0.0f && sxl * sxl / sll > best_score) {
        best_score = sxl * sxl / sll;
        best_ls = sxl / sll;
        best_t = t;
      }
    };
    for (int k = 0; k <= 5; ++k) try_t(-8.5f + 0.5f * static_cast<float>(k));
    for (int k = 0; k <= 4; ++k) try_t(5.5f + 0.5f * static_cast<float>(k));
    for (float step : {0.25f, 0.125f}) {
      const float c = best_t;
      try_t(c - step);
      try_t(c + step);
    }
    if (best_score < 0.0f) return;

    // 3. the least-squares scale in fp16 and its two fp16 neighbours, each with nearest rounding
    const std::uint16_t h = f32_to_fp16(best_ls);
    block_q4_0 cand;
    for (int delta = -1; delta <= 1; ++delta) {
      const auto hh = static_cast<std::uint16_t>(h + delta);
      if (((h & 0x7FFFu) == 0 && delta < 0) || (hh & 0x7C00u) == 0x7C00u) continue;  // no wrap to -0, no NaN/Inf
      const float e = with_scale(x, hh, cand);
      if (e < best) {
        best = e;
        y = cand;
      }
    }
  }

  // n floats -> blocks(n) blocks with the searching quantizer; a short last block is zero-padded.
  static void quantize_row(const float* x, block_q4_0* y, std::size_t n) noexcept {
    detail::for_each_padded_block<block_size>(x, n, [&](std::size_t b, const float* xb) { quantize_block(xb, y[b]); });
  }
  // n floats -> blocks(n) blocks, byte-identical to ggml's quantize_row_q4_0_ref (for whole blocks).
  static void quantize_row_reference(const float* x, block_q4_0* y, std::size_t n) noexcept {
    detail::for_each_padded_block<block_size>(x, n, [&](std::size_t b, const float* xb) { quantize_block_reference(xb, y[b]); });
  }

  // The first n elements of blocks(n) blocks -> n floats (ggml's dequantize_row_q4_0).
  static void dequantize_row(const block_q4_0* b, float* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; i += block_size) {
      const block_q4_0& blk = b[i / block_size];
      const float d = fp16_to_f32(blk.d);
      const std::size_t m = n - i < block_size ? n - i : block_size;
      for (std::size_t j = 0; j < m; ++j) y[i + j] = static_cast<float>(level(blk, j)) * d;
    }
  }

 private:
  // sum x*l and sum l*l for l = nearest level in [-8, 7] of x * id. Written to vectorize: a float clamp,
  // nearbyint (one instruction with SSE4.1/AVX, NEON, wasm) and eight partial sums in a fixed order.
  // Ties may round to even here (unlike roundf); the candidate is re-rounded exactly in with_scale.
  static void grid_eval(const float* x, float id, float& sxl, float& sll) noexcept {
    float a[8] = {}, b[8] = {};
    for (std::size_t j = 0; j < block_size; j += 8) {
      for (std::size_t k = 0; k < 8; ++k) {
        float v = x[j + k] * id;
        v = v >= -8.0f ? v : -8.0f;  // NaN -> -8
        v = v <= 7.0f ? v : 7.0f;
        const float l = std::nearbyint(v);
        a[k] += x[j + k] * l;
        b[k] += l * l;
      }
    }
    sxl = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    sll = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
  }

  // ggml's MIN(15, (int8_t)v) for v = x/d + 8.5 (in [0.5, 16.5] for finite x); the clamp only guards
  // non-finite input against an undefined float->int conversion.
  static unsigned nibble_truncated(float v) noexcept {
    if (!(v >= 0.0f)) v = 0.0f;
    if (v > 15.0f) v = 15.0f;
    return static_cast<unsigned>(v);
  }

  // Quantize with the fp16 scale h and nearest rounding; returns the exact squared error.
  static float with_scale(const float* x, std::uint16_t h, block_q4_0& out) noexcept {
    const float d = fp16_to_f32(h);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out.d = h;
    float e = 0.0f;
    int l[32];
    for (std::size_t j = 0; j < block_size; ++j) {
      l[j] = detail::round_clamp(x[j] * id, -8, 7);
      const float r = x[j] - static_cast<float>(l[j]) * d;
      e += r * r;
    }
    for (std::size_t j = 0; j < 16; ++j) out.qs[j] = static_cast<std::uint8_t>((l[j] + 8) | ((l[j + 16] + 8) << 4));
    return e;
  }
};

}  // namespace edgelm
