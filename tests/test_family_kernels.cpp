// tests/test_family_kernels.cpp - the kernel ops of the families beyond llama (kernels/scalar.hpp, basic_kernels):
// layernorm, gelu (tanh and erf), partial rotary in both styles, against values computed by hand (python's
// math module for the gelu constants).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <edgelm/kernels/scalar.hpp>

using K = edgelm::kernels::scalar;

TEST_CASE("family kernels: layernorm with weight and bias") {
  const float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 1}, b[4] = {0, 0.5f, 0, 0};
  float o[4];
  K::layernorm(o, x, w, b, 4, 0.0f);  // mean 2.5, var 1.25
  const double inv = 1 / std::sqrt(1.25);
  const double want[4] = {-1.5 * inv, -0.5 * inv + 0.5, 2 * 0.5 * inv, 1.5 * inv};
  for (int i = 0; i < 4; ++i) CHECK(o[i] == doctest::Approx(want[i]).epsilon(1e-6));
  K::layernorm(o, x, w, b, 4, 0.75f);  // var + eps = 2
  CHECK(o[0] == doctest::Approx(-1.5 / std::sqrt(2.0)).epsilon(1e-6));
}

TEST_CASE("family kernels: gelu tanh and erf") {
  float t[3] = {1, -1, 2.5f}, e[3] = {1, -1, 2.5f};
  K::gelu_tanh(t, 3);
  K::gelu_erf(e, 3);
  const double wt[3] = {0.8411919906082768, -0.15880800939172324, 2.484915733910001};
  const double we[3] = {0.8413447460685429, -0.15865525393145707, 2.4844758366855597};
  for (int i = 0; i < 3; ++i) {
    CHECK(t[i] == doctest::Approx(wt[i]).epsilon(1e-6));
    CHECK(e[i] == doctest::Approx(we[i]).epsilon(1e-6));
  }
}

TEST_CASE("family kernels: partial rotary, adjacent pairs and half split") {
  // two heads of 6, the first 4 dims rotated: angle 90 degrees for pair 0, 0 for pair 1
  const float c[2] = {0, 1}, s[2] = {1, 0};
  std::vector<float> h = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, a = h;
  K::rope_partial(h.data(), 12, 6, 4, true, c, s);   // pairs (0, 2), (1, 3)
  K::rope_partial(a.data(), 12, 6, 4, false, c, s);  // pairs (0, 1), (2, 3)
  CHECK(h == std::vector<float>{-3, 2, 1, 4, 5, 6, -3, 2, 1, 4, 5, 6});
  CHECK(a == std::vector<float>{-2, 1, 3, 4, 5, 6, -2, 1, 3, 4, 5, 6});
  // the table of 4 rotated dims: theta^(-0/4), theta^(-2/4)
  float tc[2], ts[2];
  K::rope_table(tc, ts, 4, 3, 10000.0f);
  CHECK(tc[0] == doctest::Approx(std::cos(3.0)));
  CHECK(ts[1] == doctest::Approx(std::sin(3.0 / 100.0)));
  // an angle of 30 degrees, half split: (x, y) -> (x cos - y sin, y cos + x sin)
  const float c2[1] = {std::sqrt(3.0f) / 2}, s2[1] = {0.5f};
  float v[2] = {2, 0};
  K::rope_partial(v, 2, 2, 2, true, c2, s2);
  CHECK(v[0] == doctest::Approx(std::sqrt(3.0)));
  CHECK(v[1] == doctest::Approx(1.0));
}
