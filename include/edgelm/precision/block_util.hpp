// edgelm/precision/block_util.hpp - small helpers shared by the block formats (internal).
#pragma once
#include <cmath>
#include <cstddef>

namespace edgelm::detail {

// Returns v unchanged, but as a value the compiler must have rounded to float: a product passed
// through it is never fused with a following add into an FMA. GCC contracts a*b + c across statements
// when FMA is enabled and the language mode is gnu++ (-ffp-contract=fast); ggml's reference code is
// compiled without FMA, so bit-exact agreement with it needs the separate rounding. Clang contracts only
// within one expression, MSVC not by default, and wasm SIMD128 has no FMA.
inline float no_contract(float v) noexcept {
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && !defined(__clang__) && (defined(__aarch64__) || defined(__arm__))
  __asm__("" : "+w"(v));
#endif
  return v;
}

// roundf(v) (half away from zero) clamped to [lo, hi]; NaN -> lo. Inline and free of branches so that
// loops over a block vectorize (roundf is a libm call on most targets and dominated quantizing). The
// clamp comes first (rounding commutes with clamping to integers) and keeps hostile or diverged inputs
// (NaN, Inf, huge) from reaching an out-of-range float->int conversion, which is undefined behaviour;
// for the inputs ggml defines it never triggers, so results equal (int)roundf(v).
inline int round_clamp(float v, int lo, int hi) noexcept {
  const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
  v = v >= flo ? v : flo;  // NaN compares false -> lo
  v = v <= fhi ? v : fhi;
  const int i = static_cast<int>(v);             // truncated toward zero
  const float frac = v - static_cast<float>(i);  // exact: |v| < 2^24 and i = trunc(v)
  return i + static_cast<int>(frac >= 0.5f) - static_cast<int>(frac <= -0.5f);
}

// Calls f(block_index, const float* BS elements) for the whole blocks of the first n elements of x and,
// when n is not a multiple of BS, once more for a zero-padded copy of the short last block.
template <std::size_t BS, class F>
inline void for_each_padded_block(const float* x, std::size_t n, F&& f) noexcept {
  const std::size_t full = n / BS;
  for (std::size_t b = 0; b < full; ++b) f(b, x + b * BS);
  if (const std::size_t rest = n % BS) {
    float tmp[BS] = {};
    for (std::size_t j = 0; j < rest; ++j) tmp[j] = x[full * BS + j];
    f(full, static_cast<const float*>(tmp));
  }
}

}  // namespace edgelm::detail
