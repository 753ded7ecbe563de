// edgelm/precision/dequantize.hpp - any supported ggml tensor row -> float32, used once at load time
// to convert tensors whose file type differs from the model's precision.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../core/half.hpp"
#include "../formats/ggml_types.hpp"

namespace edgelm {

// Can this build convert tensors of type t to float?
constexpr bool can_dequantize(ggml_type t) noexcept {
  switch (t) {
    case ggml_type::f32: case ggml_type::f16: case ggml_type::bf16: return true;
    default: return false;
  }
}

// Convert n elements (a whole number of blocks) starting at src; false if the type is not supported.
// Returns false too if a block scale is NaN/Inf (a corrupt or hostile tensor).
inline bool dequantize_row(ggml_type t, const std::byte* src, float* dst, std::size_t n) noexcept {
  switch (t) {
    case ggml_type::f32:
      std::memcpy(dst, src, n * 4);
      return true;
    case ggml_type::f16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_f32(h);
      }
      return true;
    case ggml_type::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return true;
    default:
      return false;
  }
}

}  // namespace edgelm
