// tests/test_kquants_wasm.cpp - the Highway policy's dot products of the llama-quantize types (Q5_0 . q8_0,
// Q4_1 / Q5_1 . q8_sum, Q4_K / Q5_K / Q6_K . q8_k) against kernels::scalar on random and extreme blocks,
// every block count from 1 (odd counts and the 4-block tails of the 32-block kernels included).
//  - K-quants: the same bits as the scalar reference on every build (AVX2: x86_kquants.hpp, WASM SIMD128:
//    wasm_kquants.hpp, elsewhere the reference itself).
//  - 32-blocks: the same bits under WASM SIMD128 (wasm_kquants.hpp keeps the reference's block order); on
//    x86 (AVX2, float lanes: a different order) within a few ulps of the sum of |terms|.
// Extremes: 6-bit scales and mins 63, levels 15 / 31 / 63, Q6_K scales -128 / 127, activations at the ends of
// their quantizer's range (q8_k: -128 / 127; q8_0, q8_sum: -127 / 127).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>

#include "test_util.hpp"

namespace {

using namespace edgelm;
using hwy_k = backends::highway::kernels;

// How a block's bytes are filled: random, or every level / scale / activation at its extreme.
enum class fill { random, max, min };

template <class B>
void fill_weights(B& b, std::mt19937& g, fill f) {
  auto* p = reinterpret_cast<unsigned char*>(&b);
  for (std::size_t i = 0; i < sizeof(B); ++i) p[i] = f == fill::random ? static_cast<unsigned char>(g()) : f == fill::max ? 0xFF : 0x00;
  std::uniform_real_distribution<float> ud(-0.02f, 0.02f);
  b.d = f32_to_fp16(f == fill::random ? ud(g) : 0.0173f);
  if constexpr (requires { b.dmin; }) b.dmin = f32_to_fp16(f == fill::random ? ud(g) : -0.0091f);
  if constexpr (requires { b.m; }) b.m = f32_to_fp16(f == fill::random ? ud(g) : 0.0042f);
  if constexpr (std::is_same_v<B, block_q6_k>)
    if (f != fill::random)
      for (auto& s : b.scales) s = f == fill::max ? 127 : -128;  // (0xFF / 0x00 bytes: -1 / 0 otherwise)
  if constexpr (std::is_same_v<B, block_q6_k>)
    if (f == fill::min) std::memset(b.ql, 0xFF, sizeof b.ql);  // level 15 low bits, high 0: u = 15
}

template <class A>
void fill_act(A& a, std::mt19937& g, fill f) {
  // q8_k's quantizer reaches -128, q8_0's and q8_sum's stop at -127 (x86's Q5_0 kernel relies on it: its
  // sign trick cannot negate -128)
  constexpr int lo = std::is_same_v<A, block_q8_k> ? -128 : -127;
  for (auto& q : a.qs) q = static_cast<std::int8_t>(f == fill::random ? lo + static_cast<int>(g() % static_cast<unsigned>(128 - lo)) : f == fill::max ? lo : 127);
  if constexpr (std::is_same_v<A, block_q8_k>) {
    std::uniform_real_distribution<float> ud(0.001f, 0.05f);
    a.d = f == fill::random ? ud(g) : 0.0377f;
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += a.qs[16 * j + l];
      a.bsums[j] = static_cast<std::int16_t>(s);
    }
  } else if constexpr (std::is_same_v<A, block_q8_sum>) {
    std::uniform_real_distribution<float> ud(0.001f, 0.05f);
    a.d = f == fill::random ? ud(g) : 0.0377f;
    int s = 0;
    for (auto q : a.qs) s += q;
    a.s = a.d * static_cast<float>(s);
  } else {
    std::uniform_real_distribution<float> ud(0.001f, 0.05f);
    a.d = f32_to_fp16(f == fill::random ? ud(g) : 0.0377f);
  }
}

// hwy_k::dot vs kernels::scalar::dot over nb blocks of T.
template <class T>
void check_type(unsigned seed) {
  using B = typename T::block_type;
  using A = typename T::activation::block_type;
  constexpr std::size_t qk = T::block_size;
  std::mt19937 g(seed);
  int bad = 0, far = 0, cases = 0;
  for (std::size_t nb = 1; nb <= (qk == 32 ? 13u : 5u); ++nb)
    for (int rep = 0; rep < 6; ++rep) {
      std::vector<B> w(nb);
      std::vector<A> x(nb);
      for (std::size_t b = 0; b < nb; ++b) {
        // rep 0-2 random; 3: weights at max, activations -128; 4: weights 0 / min, activations 127;
        // 5: mixed extremes block by block
        const fill fw = rep < 3 ? fill::random : rep == 3 ? fill::max : rep == 4 ? fill::min : (b % 3 == 0 ? fill::max : b % 3 == 1 ? fill::random : fill::min);
        const fill fx = rep < 3 ? fill::random : rep == 3 ? fill::max : rep == 4 ? fill::min : (b % 2 ? fill::max : fill::min);
        fill_weights(w[b], g, fw);
        fill_act(x[b], g, fx);
      }
      const std::size_t n = nb * qk;
      const float ref = kernels::scalar::dot(w.data(), x.data(), n);
      const float got = hwy_k::dot(w.data(), x.data(), n);
      ++cases;
      bad += f32_to_bits(got) != f32_to_bits(ref);
      // the magnitude bound of a float sum of per-block terms
      std::vector<float> wf(n);
      T::dequantize_row(w.data(), wf.data(), n);
      double mag = 0;
      for (std::size_t i = 0; i < n; ++i) {
        double xv;
        if constexpr (std::is_same_v<A, block_q8_0>)
          xv = double(x[i / qk].qs[i % qk]) * fp16_to_f32(x[i / qk].d);
        else
          xv = double(x[i / qk].qs[i % qk]) * x[i / qk].d;
        mag += std::fabs(double(wf[i]) * xv);
      }
      far += !(std::fabs(double(got) - double(ref)) <= 1e-5 * mag + 1e-30);
    }
  INFO(T::name, " seed ", seed, " cases ", cases);
  CHECK(far == 0);
#if defined(EDGELM_HWY_WASM) || !defined(EDGELM_HWY_X86)
  CHECK(bad == 0);  // every type: the reference's bits
#else
  if constexpr (qk == 256) CHECK(bad == 0);  // x86: the K-quants keep the reference's bits
#endif
}

}  // namespace

TEST_CASE("kquants_wasm: Highway dot products of Q5_0 / Q4_1 / Q5_1 / Q4_K / Q5_K / Q6_K equal the scalar reference, odd counts and extremes") {
  for (unsigned seed : {11u, 12u}) {
    check_type<q5_0>(seed);
    check_type<q4_1>(seed);
    check_type<q5_1>(seed);
    check_type<q4_k>(seed);
    check_type<q5_k>(seed);
    check_type<q6_k>(seed);
  }
}
