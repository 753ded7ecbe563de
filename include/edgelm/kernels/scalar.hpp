// edgelm/kernels/scalar.hpp - the readable reference of every op, and the oracle SIMD backends are
// tested against. Float operations are done in the same order as llama2.c's run.c, so greedy outputs
// match it token for token.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../precision/f32.hpp"

namespace edgelm {

// A row-major weight matrix (rows x cols) in precision P: row r starts at block r * cols / block_size.
template <class P>
struct matrix {
  const typename P::block_type* data = nullptr;
  std::uint32_t rows = 0;
  std::uint32_t cols = 0;
  const typename P::block_type* row(std::uint32_t r) const noexcept { return data + std::size_t{r} * (cols / P::block_size); }
};

namespace kernels {

// Ops shared by every backend. `Derived` supplies `dot` overloads; a SIMD backend derives from
// basic_kernels<itself> and overrides what it speeds up, inheriting the rest.
template <class Derived>
struct basic_kernels {
  // f32 . f32, summed left to right (run.c's order).
  static float dot(const float* w, const float* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t j = 0; j < n; ++j) s += w[j] * x[j];
    return s;
  }

  // out[rows] = W (rows x cols) . x[cols]; x is already in P's activation precision.
  template <class P>
  static void matvec(float* out, const matrix<P>& w, const typename P::activation::block_type* x) noexcept {
    for (std::uint32_t r = 0; r < w.rows; ++r) out[r] = Derived::dot(w.row(r), x, w.cols / P::block_size * P::block_size);
  }

  // o = weight * x / sqrt(mean(x^2) + eps)
  static void rmsnorm(float* o, const float* x, const float* weight, std::size_t n, float eps) noexcept {
    float ss = 0.0f;
    for (std::size_t j = 0; j < n; ++j) ss += x[j] * x[j];
    ss /= static_cast<float>(n);
    ss += eps;
    ss = 1.0f / std::sqrt(ss);
    for (std::size_t j = 0; j < n; ++j) o[j] = weight[j] * (ss * x[j]);
  }

  // In-place softmax; subtract the max for numerical stability.
  static void softmax(float* x, std::size_t n) noexcept {
    float max_val = x[0];
    for (std::size_t i = 1; i < n; ++i)
      if (x[i] > max_val) max_val = x[i];
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = std::exp(x[i] - max_val);
      sum += x[i];
    }
    for (std::size_t i = 0; i < n; ++i) x[i] /= sum;
  }

  // Rotary embedding on adjacent pairs (x[2i], x[2i+1]) of each head, as llama2.c and GGUF 'llama'.
  // q has n_q dims, k has n_k dims (<= n_q, GQA); both are split in heads of head_dim.
  static void rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t head_dim, std::size_t pos, float theta) noexcept {
    for (std::size_t i = 0; i < n_q; i += 2) {
      const std::size_t hd = i % head_dim;
      const float freq = 1.0f / std::pow(theta, static_cast<float>(hd) / static_cast<float>(head_dim));
      const float val = static_cast<float>(pos) * freq;
      const float fcr = std::cos(val), fci = std::sin(val);
      const int rotn = i < n_k ? 2 : 1;
      for (int v = 0; v < rotn; ++v) {
        float* vec = v == 0 ? q : k;
        const float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }
  }

  // SwiGLU: a = silu(a) * b
  static void silu_mul(float* a, const float* b, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      float v = a[i];
      v *= 1.0f / (1.0f + std::exp(-v));
      a[i] = v * b[i];
    }
  }

  static void add(float* x, const float* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) x[i] += y[i];
  }

  // out[i] += a * v[i]
  static void axpy(float* out, float a, const float* v, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] += a * v[i];
  }
};

// The reference backend.
struct scalar : basic_kernels<scalar> {
  static constexpr const char* name = "scalar";
};

}  // namespace kernels
}  // namespace edgelm
