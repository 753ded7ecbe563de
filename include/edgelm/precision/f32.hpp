// edgelm/precision/f32.hpp - the precision policy concept and plain float32 weights.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "../formats/ggml_types.hpp"

namespace edgelm {

// A precision policy: a stateless struct naming a block type that is exactly the GGUF on-disk layout,
// the elements per block, the GGUF type id, and the precision its activations are converted to before
// a dot product (q4_0 and q8_0 dot against q8_0 activations, as in ggml).
template <class P>
concept precision = requires(const float* x, typename P::block_type* b, std::size_t n, float* y) {
  typename P::block_type;
  typename P::activation;
  { P::block_size } -> std::convertible_to<std::size_t>;
  { P::type } -> std::convertible_to<ggml_type>;
  { P::name } -> std::convertible_to<std::string_view>;
  { P::quantize_row(x, b, n) };
  { P::dequantize_row(b, y, n) };
} && std::is_trivially_copyable_v<typename P::block_type>;

struct f32 {
  using block_type = float;
  using activation = f32;
  static constexpr std::size_t block_size = 1;
  static constexpr ggml_type type = ggml_type::f32;
  static constexpr std::string_view name = "f32";
  // n floats -> n floats (a copy).
  static void quantize_row(const float* x, block_type* out, std::size_t n) noexcept { std::memcpy(out, x, n * sizeof(float)); }
  static void dequantize_row(const block_type* b, float* y, std::size_t n) noexcept { std::memcpy(y, b, n * sizeof(float)); }
};
static_assert(sizeof(f32::block_type) == 4);

}  // namespace edgelm
