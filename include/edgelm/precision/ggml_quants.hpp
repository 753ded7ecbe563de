// edgelm/precision/ggml_quants.hpp - the other block formats llama.cpp's presets write (Q4_1, Q5_0, Q5_1 and
// the K-quants Q4_K, Q5_K, Q6_K) as weight types that run in place from the file, the activation formats
// their dot products take, and the `mixed` policy: every weight matrix keeps its own file type.
//
// A weight type is what matrix<T> and the kernels' dot products need: the on-disk block (dequantize.hpp),
// the activation format, the block size, the GGUF id and dequantize_row. Only f32 / q8_0 / q4_0 are also
// conversion targets (precision: they have quantize_row); these types are never written by edgelm.
//
// Activations: Q5_0 dots against q8_0 (as ggml); Q4_1 / Q5_1 against q8_sum (a q8_0 block with float scale
// and the block's sum, for the min term: ggml's q8_1 in float); the K-quants against q8_k (ggml's block_q8_K:
// 256 int8 with a float scale and the sums of each 16).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "../core/half.hpp"
#include "../formats/ggml_types.hpp"
#include "block_util.hpp"
#include "dequantize.hpp"
#include "f32.hpp"
#include "q4_0.hpp"
#include "q8_0.hpp"

namespace edgelm {

// Which activation buffer a weight type's dot product reads.
enum class act_kind : std::uint8_t { f32, q8_0, q8_sum, q8_k };

// q8_0 with a float scale and s = d * sum(qs): the activations of Q4_1 / Q5_1 (value*m terms).
struct block_q8_sum {
  float d;
  float s;
  std::int8_t qs[32];
};
// ggml's block_q8_K: the activations of the K-quants.
struct block_q8_k {
  float d;
  std::int8_t qs[256];
  std::int16_t bsums[16];  // sum of each 16 consecutive qs
};
static_assert(sizeof(block_q8_k) == 292, "block_q8_k must match ggml's block_q8_K");

struct q8_sum {
  using block_type = block_q8_sum;
  static constexpr std::size_t block_size = 32;
  // n floats -> ceil(n / 32) blocks (the last zero-padded); the int8 levels as q8_0's (max|x| / 127).
  static void quantize_row(const float* x, block_q8_sum* y, std::size_t n) noexcept {
    detail::for_each_padded_block<block_size>(x, n, [&](std::size_t b, const float* xb) {
      float amax = 0.0f;
      for (std::size_t j = 0; j < block_size; ++j) amax = amax > std::fabs(xb[j]) ? amax : std::fabs(xb[j]);
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      int sum = 0;
      for (std::size_t j = 0; j < block_size; ++j) {
        y[b].qs[j] = static_cast<std::int8_t>(detail::round_clamp(xb[j] * id, -127, 127));
        sum += y[b].qs[j];
      }
      y[b].d = d;
      y[b].s = d * static_cast<float>(sum);
    });
  }
};

struct q8_k {
  using block_type = block_q8_k;
  static constexpr std::size_t block_size = 256;
  // n floats -> ceil(n / 256) blocks (the last zero-padded), as ggml's quantize_row_q8_K_ref: the element
  // of largest magnitude maps to -127 (iscale = -127 / max), others round to nearest, clamped to 127.
  static void quantize_row(const float* x, block_q8_k* y, std::size_t n) noexcept {
    detail::for_each_padded_block<block_size>(x, n, [&](std::size_t b, const float* xb) {
      float amax = 0.0f, max = 0.0f;
      for (std::size_t j = 0; j < block_size; ++j)
        if (std::fabs(xb[j]) > amax) {
          amax = std::fabs(xb[j]);
          max = xb[j];
        }
      block_q8_k& o = y[b];
      if (!(amax > 0.0f) || !std::isfinite(amax)) {  // all zero (or not finite: zeros rather than UB)
        std::memset(&o, 0, sizeof o);
        return;
      }
      const float iscale = -127.0f / max;
      for (std::size_t j = 0; j < block_size; ++j) o.qs[j] = static_cast<std::int8_t>(detail::round_clamp(iscale * xb[j], -128, 127));
      for (std::size_t g = 0; g < 16; ++g) {
        int s = 0;
        for (std::size_t j = 0; j < 16; ++j) s += o.qs[g * 16 + j];
        o.bsums[g] = static_cast<std::int16_t>(s);
      }
      o.d = 1.0f / iscale;
    });
  }
};

namespace detail {
// The first n elements (a whole number of blocks, as every in-place matrix has) of a row of DQ blocks.
template <class DQ>
inline void dequantize_whole(const typename DQ::block* b, float* y, std::size_t n) noexcept {
  constexpr std::size_t qk = ggml_type_table[static_cast<std::uint32_t>(DQ::type)].block_size;
  for (std::size_t i = 0; i < n / qk; ++i) (void)DQ::run(b[i], y + i * qk);
}
}  // namespace detail

#define EDGELM_WEIGHT_TYPE(NAME, BLOCK, ACT, KIND, QK, STR)                                        \
  struct NAME {                                                                                    \
    using block_type = BLOCK;                                                                      \
    using activation = ACT;                                                                        \
    static constexpr act_kind act = act_kind::KIND;                                                \
    static constexpr std::size_t block_size = QK;                                                  \
    static constexpr ggml_type type = ggml_type::NAME;                                             \
    static constexpr std::string_view name = STR;                                                  \
    static void dequantize_row(const BLOCK* b, float* y, std::size_t n) noexcept {                 \
      detail::dequantize_whole<detail::dq_##NAME>(b, y, n);                                        \
    }                                                                                              \
  };                                                                                               \
  static_assert(sizeof(BLOCK) == ggml_type_table[static_cast<std::uint32_t>(ggml_type::NAME)].type_size)

EDGELM_WEIGHT_TYPE(q4_1, block_q4_1, q8_sum, q8_sum, 32, "q4_1");
EDGELM_WEIGHT_TYPE(q5_0, block_q5_0, q8_0, q8_0, 32, "q5_0");
EDGELM_WEIGHT_TYPE(q5_1, block_q5_1, q8_sum, q8_sum, 32, "q5_1");
EDGELM_WEIGHT_TYPE(q4_k, block_q4_k, q8_k, q8_k, 256, "q4_k");
EDGELM_WEIGHT_TYPE(q5_k, block_q5_k, q8_k, q8_k, 256, "q5_k");
EDGELM_WEIGHT_TYPE(q6_k, block_q6_k, q8_k, q8_k, 256, "q6_k");
#undef EDGELM_WEIGHT_TYPE

// The activation kind of a weight type (f32 / q8_0 / q4_0 name theirs by their activation policy).
template <class T>
constexpr act_kind activation_kind() noexcept {
  if constexpr (requires { T::act; }) return T::act;
  else if constexpr (std::is_same_v<typename T::activation, f32>) return act_kind::f32;
  else return act_kind::q8_0;
}

// A compile-time list of weight types.
template <class... Ts>
struct type_list {};

// A weight policy names the weight types a model runs in place (`types`) and what any other tensor is
// converted to at load (`convert_to(file type)`). A precision P (f32, q8_0, q4_0) is the uniform policy: its
// own type in place, everything else converted to it (one instantiation of every kernel: the smallest build).
template <class P>
struct policy_traits {
  using types = type_list<P>;
  static constexpr std::string_view name = P::name;
  static constexpr ggml_type convert_to(ggml_type) noexcept { return P::type; }
};

// Every matrix in its own file type when a kernel exists for it (the K-quant and legacy files of
// llama-quantize run with nothing converted); float tensors of another type (F16, BF16) become f32, other
// quantized ones (Q2_K, Q3_K, IQ*) q8_0.
struct mixed {
  static constexpr std::string_view name = "mixed";
};
template <>
struct policy_traits<mixed> {
  using types = type_list<f32, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k>;
  static constexpr std::string_view name = "mixed";
  static constexpr ggml_type convert_to(ggml_type t) noexcept {
    return t == ggml_type::f16 || t == ggml_type::bf16 || t == ggml_type::f64 ? ggml_type::f32 : ggml_type::q8_0;
  }
};

// What transformer<P, K> accepts: a uniform precision or `mixed`.
template <class P>
concept weight_policy = precision<P> || std::is_same_v<P, mixed>;

// Is T one of the list's types?
template <class T, class L>
struct in_list;
template <class T, class... Ts>
struct in_list<T, type_list<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

// Calls f(T{}) (a default-constructed tag of the policy type) for the type of `types` whose GGUF id is t;
// false if none is.
template <class... Ts, class F>
constexpr bool visit_type(type_list<Ts...>, ggml_type t, F&& f) {
  if constexpr (sizeof...(Ts) == 1) {  // a uniform policy: nothing to choose
    if (((Ts::type == t) && ...)) {
      (f(Ts{}), ...);
      return true;
    }
    return false;
  } else {
    return ((Ts::type == t ? (f(Ts{}), true) : false) || ...);
  }
}

// Does the list contain a type whose dot product takes activations of kind k?
template <class... Ts>
constexpr bool needs_activation(type_list<Ts...>, act_kind k) noexcept {
  return ((activation_kind<Ts>() == k) || ...);
}

}  // namespace edgelm
