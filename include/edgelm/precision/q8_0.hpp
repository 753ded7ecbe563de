// edgelm/precision/q8_0.hpp - 8-bit blocks of 32 with one fp16 scale (ggml's Q8_0, 8.5 bits per weight).
// Also the format every quantized precision converts its activations to before a dot product.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/half.hpp"
#include "../formats/ggml_types.hpp"
#include "block_util.hpp"
#include "f32.hpp"

namespace edgelm {

// Exactly GGUF's block_q8_0: value j = qs[j] * d.
struct block_q8_0 {
  std::uint16_t d;      // scale, IEEE fp16
  std::int8_t qs[32];   // quants
};
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2, "block_q8_0 must match GGUF's layout");

struct q8_0 {
  using block_type = block_q8_0;
  using activation = q8_0;  // q8_0 weights dot against q8_0 activations (dynamic int8, as ggml)
  static constexpr std::size_t block_size = 32;
  static constexpr ggml_type type = ggml_type::q8_0;
  static constexpr std::string_view name = "q8_0";

  // Blocks needed for n elements (a short last block is zero-padded).
  static constexpr std::size_t blocks(std::size_t n) noexcept { return (n + block_size - 1) / block_size; }

  // One block, exactly ggml's quantize_row_q8_0_ref: d = max|x| / 127, qs = roundf(x / d), d stored as
  // fp16 (round to nearest even). The reciprocal is taken of the float d, not of the fp16 one, as ggml.
  static void quantize_block(const float* x, block_q8_0& y) noexcept {
    float amax = 0.0f;
    for (std::size_t j = 0; j < block_size; ++j) {
      const float a = std::fabs(x[j]);
      amax = amax > a ? amax : a;  // ggml's MAX(amax, fabsf(v)), NaN behaviour included
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y.d = f32_to_fp16(d);
    for (std::size_t j = 0; j < block_size; ++j) y.qs[j] = static_cast<std::int8_t>(detail::round_clamp(x[j] * id, -127, 127));
  }

  // n floats -> blocks(n) blocks; when n is not a multiple of 32 the last block is zero-padded.
  static void quantize_row(const float* x, block_q8_0* y, std::size_t n) noexcept {
    detail::for_each_padded_block<block_size>(x, n, [&](std::size_t b, const float* xb) { quantize_block(xb, y[b]); });
  }

  // The first n elements of blocks(n) blocks -> n floats (ggml's dequantize_row_q8_0: qs[j] * d).
  static void dequantize_row(const block_q8_0* b, float* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; i += block_size) {
      const float d = fp16_to_f32(b[i / block_size].d);
      const std::size_t m = n - i < block_size ? n - i : block_size;
      for (std::size_t j = 0; j < m; ++j) y[i + j] = static_cast<float>(b[i / block_size].qs[j]) * d;
    }
  }
};

}  // namespace edgelm
