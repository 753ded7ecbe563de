// edgelm/backends/highway.hpp - SIMD kernels written once with Google Highway (static dispatch: the
// target is the one the translation unit is compiled for: AVX2 with -mavx2 -mfma, AVX-512 with
// -mavx512f..., WASM SIMD128 with em++ -msimd128). Implements the f32 dot/matvec and RMSNorm; every
// other op falls back to the scalar reference through basic_kernels.
#pragma once
#include <cmath>
#include <cstddef>

#include <hwy/highway.h>

#include <edgelm/kernels/scalar.hpp>

namespace edgelm::backends::highway {

namespace hn = hwy::HWY_NAMESPACE;

namespace detail {

// sum(a[i] * b[i]) over one descriptor's lanes with two accumulators, plus a one-lane tail that goes
// through the same code path (no separate scalar loop).
template <class D>
HWY_INLINE float dot_lanes(D d, const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
}

inline float dot(const float* a, const float* b, std::size_t n) {
  std::size_t i = 0;
  float s = dot_lanes(hn::ScalableTag<float>(), a, b, n, i);
  return s + dot_lanes(hn::CappedTag<float, 1>(), a, b, n, i);
}

template <class D>
HWY_INLINE void scale_mul(D d, float* o, const float* w, const float* x, float ss, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, ss);
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, w + i), hn::Mul(vs, hn::LoadU(d, x + i))), d, o + i);
}

}  // namespace detail

// The Highway kernel policy: transformer<P, backends::highway::kernels>.
struct kernels : edgelm::kernels::basic_kernels<kernels> {
  static constexpr const char* name = "highway";
  static const char* target() noexcept { return hwy::TargetName(HWY_TARGET); }

  using basic_kernels<kernels>::dot;
  // f32 dot product: the core of the f32 matvec and of the attention scores.
  static float dot(const float* w, const float* x, std::size_t n) noexcept { return detail::dot(w, x, n); }

  static void rmsnorm(float* o, const float* x, const float* weight, std::size_t n, float eps) noexcept {
    float ss = detail::dot(x, x, n);
    ss /= static_cast<float>(n);
    ss += eps;
    ss = 1.0f / std::sqrt(ss);
    std::size_t i = 0;
    detail::scale_mul(hn::ScalableTag<float>(), o, weight, x, ss, n, i);
    detail::scale_mul(hn::CappedTag<float, 1>(), o, weight, x, ss, n, i);
  }
};

}  // namespace edgelm::backends::highway
