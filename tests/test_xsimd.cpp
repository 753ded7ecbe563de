// tests/test_xsimd.cpp - backends/xsimd.hpp against the scalar reference: the f32 dot product, RMSNorm,
// the f32 and q8_0 / q4_0 x q8_0 matmuls on odd shapes (rows 1..67, columns 32..1056 with zero-padded
// quantized rows, 1..70 tokens), and the matmul contract: bit-identical results for a batch and the same
// tokens one by one, and for any split of the row range.
//
// Compiles to nothing without xsimd (or the backend's include folder) or without AVX2 (the project's
// native test build has -mavx2 from edgelm::highway; xsimd 8.1 has no WebAssembly architecture).
#if __has_include(<edgelm/backends/xsimd.hpp>) && __has_include(<xsimd/xsimd.hpp>) && defined(__AVX2__)

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <edgelm/backends/xsimd.hpp>
#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#include <doctest/doctest.h>

namespace {

using namespace edgelm;
using xk = backends::xsimd::kernels;
using ref = kernels::scalar;

// ---- named tolerances ----
// f32 dot products and matmul elements: |xsimd - scalar| <= f32_rel_tol * sum_j |w_j x_j| (the scalar
// reference sums left to right, xsimd per lane then a tree: only the rounding of the sums differs).
constexpr double f32_rel_tol = 1e-5;
// RMSNorm: each output relative to itself (only the sum of squares, all positive terms, is reordered).
constexpr double rmsnorm_rel_tol = 1e-5;
// Quantized matmul elements: the int32 block sums are exact, so |xsimd - scalar| <= quant_rel_tol *
// sum_b |d_w d_x| sum_j |q_w q_x| (the sum of |terms|).
constexpr double quant_rel_tol = 1e-5;

std::vector<float> gaussian(std::size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

bool same_bits(float a, float b) {
  std::uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

// Index of the first element that differs bitwise, or -1.
long first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return static_cast<long>(i);
  return -1;
}

struct shape {
  std::uint32_t rows, cols;
  std::size_t n;
};

// Odd shapes: single rows and tokens, row counts around the tile sizes (4, 8, 2 x 4, 4 x 3), columns that
// are not a multiple of the vector width (f32) or of 32 (quantized: zero-padded last block), up to 1056
// columns and 70 tokens.
const shape shapes[] = {{1, 32, 1},    {1, 33, 2},    {2, 40, 70},   {3, 100, 5},   {4, 64, 4},   {5, 172, 3},  {7, 96, 9},
                        {8, 256, 1},   {9, 257, 8},   {12, 288, 12}, {13, 1056, 7}, {16, 576, 64}, {17, 63, 13}, {31, 575, 2},
                        {33, 1000, 5}, {64, 576, 1},  {65, 129, 11}, {67, 1055, 3}, {67, 32, 70}};

// n tokens of f32 activations with row stride ldx, and the scalar reference matmul.
struct f32_case {
  std::uint32_t rows, cols;
  std::size_t n, ldx, ldy;
  std::vector<float> w, x;
  matrix<f32> m() const { return {w.data(), rows, cols}; }
};

f32_case make_f32(const shape& s, unsigned seed) {
  f32_case c{s.rows, s.cols, s.n, s.cols + 3, s.rows + 5, gaussian(std::size_t{s.rows} * s.cols, seed), {}};
  c.x = gaussian(c.ldx * s.n, seed + 1000);
  return c;
}

template <class P>
struct q_case {
  std::uint32_t rows, cols;
  std::size_t n, bpr, ldx, ldy;
  std::vector<typename P::block_type> w;
  std::vector<block_q8_0> x;
  matrix<P> m() const { return {w.data(), rows, cols}; }
};

template <class P>
q_case<P> make_q(const shape& s, unsigned seed) {
  q_case<P> c;
  c.rows = s.rows;
  c.cols = s.cols;
  c.n = s.n;
  c.bpr = matrix<P>::blocks_per_row(s.cols);
  c.ldx = c.bpr + 2;
  c.ldy = s.rows + 5;
  const auto wf = gaussian(std::size_t{s.rows} * s.cols, seed), xf = gaussian(s.n * s.cols, seed + 1000, 2.0f);
  c.w.resize(s.rows * c.bpr);
  for (std::uint32_t r = 0; r < s.rows; ++r) P::quantize_row(wf.data() + std::size_t{r} * s.cols, c.w.data() + r * c.bpr, s.cols);
  c.x.resize(s.n * c.ldx);
  for (std::size_t t = 0; t < s.n; ++t) q8_0::quantize_row(xf.data() + t * s.cols, c.x.data() + t * c.ldx, s.cols);
  return c;
}

// sum_j |w_j x_j| of row r, token t.
double l1_terms(const f32_case& c, std::uint32_t r, std::size_t t) {
  double s = 0;
  for (std::uint32_t j = 0; j < c.cols; ++j) s += std::fabs(double(c.w[std::size_t{r} * c.cols + j]) * c.x[t * c.ldx + j]);
  return s;
}
template <class P>
double l1_terms(const q_case<P>& c, std::uint32_t r, std::size_t t) {
  std::vector<float> wd(c.bpr * 32), xd(c.bpr * 32);
  P::dequantize_row(c.w.data() + r * c.bpr, wd.data(), wd.size());
  q8_0::dequantize_row(c.x.data() + t * c.ldx, xd.data(), xd.size());
  double s = 0;
  for (std::size_t j = 0; j < wd.size(); ++j) s += std::fabs(double(wd[j]) * xd[j]);
  return s;
}

const float sentinel = std::numeric_limits<float>::quiet_NaN();

// y (n x ldy) from one call over rows [r0, r1), other entries left at the sentinel.
template <class K, class C>
std::vector<float> run(const C& c, std::uint32_t r0, std::uint32_t r1) {
  std::vector<float> y(c.n * c.ldy, sentinel);
  K::matmul(y.data(), c.ldy, c.m(), c.x.data(), c.ldx, c.n, r0, r1);
  return y;
}

// Checks every element against the scalar reference, and that nothing outside the rows was written.
template <class C>
void check_against_scalar(const C& c, double tol) {
  const auto ys = run<ref>(c, 0, c.rows);
  const auto yx = run<xk>(c, 0, c.rows);
  int bad = 0;
  for (std::size_t t = 0; t < c.n; ++t) {
    for (std::uint32_t r = 0; r < c.rows; ++r) {
      const float a = yx[t * c.ldy + r], b = ys[t * c.ldy + r];
      const double bound = tol * l1_terms(c, r, t) + 1e-30;
      if (!(std::fabs(double(a) - b) <= bound) && bad++ < 5) {
        CAPTURE(t);
        CAPTURE(r);
        CHECK_MESSAGE(std::fabs(double(a) - b) <= bound, "xsimd " << a << ", scalar " << b << ", bound " << bound);
      }
    }
    for (std::size_t r = c.rows; r < c.ldy; ++r) CHECK(std::isnan(yx[t * c.ldy + r]));
  }
  CHECK(bad == 0);
}

// The matmul contract: a batch equals the tokens one by one, and any split of the rows (threads) or of
// the tokens (chunked prefill) gives the same bits.
template <class C>
void check_contract(const C& c, unsigned seed) {
  const auto full = run<xk>(c, 0, c.rows);

  std::vector<float> one(c.n * c.ldy, sentinel);
  for (std::size_t t = 0; t < c.n; ++t) xk::matmul(one.data() + t * c.ldy, c.ldy, c.m(), c.x.data() + t * c.ldx, c.ldx, 1, 0, c.rows);
  CHECK_MESSAGE(first_difference(full, one) == -1, "batch vs one by one: first difference at " << first_difference(full, one));

  std::mt19937 g(seed);
  for (int trial = 0; trial < 3; ++trial) {
    // random row cut points and a random token split
    std::vector<std::uint32_t> cuts{0};
    while (cuts.back() < c.rows) cuts.push_back(std::min<std::uint32_t>(c.rows, cuts.back() + 1 + g() % 11));
    const std::size_t tsplit = g() % (c.n + 1);
    std::vector<float> split(c.n * c.ldy, sentinel);
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
      xk::matmul(split.data(), c.ldy, c.m(), c.x.data(), c.ldx, tsplit, cuts[i], cuts[i + 1]);
      xk::matmul(split.data() + tsplit * c.ldy, c.ldy, c.m(), c.x.data() + tsplit * c.ldx, c.ldx, c.n - tsplit, cuts[i], cuts[i + 1]);
    }
    CAPTURE(trial);
    CAPTURE(tsplit);
    CHECK_MESSAGE(first_difference(full, split) == -1, "split rows/tokens: first difference at " << first_difference(full, split));
  }
}

TEST_CASE("xsimd: policy name and target") {
  CHECK(std::string(xk::name) == "xsimd");
  MESSAGE("xsimd architecture: " << std::string(xk::target()));
}

TEST_CASE("xsimd: f32 dot equals the scalar reference within f32_rel_tol") {
  for (std::size_t n : {0u, 1u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 32u, 33u, 64u, 100u, 576u, 1055u, 1056u}) {
    CAPTURE(n);
    const auto a = gaussian(n, 1 + static_cast<unsigned>(n)), b = gaussian(n, 2 + static_cast<unsigned>(n));
    double l1 = 0;
    for (std::size_t i = 0; i < n; ++i) l1 += std::fabs(double(a[i]) * b[i]);
    const float s = ref::dot(a.data(), b.data(), n), v = xk::dot(a.data(), b.data(), n);
    CHECK(std::fabs(double(s) - v) <= f32_rel_tol * l1 + 1e-30);
  }
}

TEST_CASE("xsimd: rmsnorm equals the scalar reference within rmsnorm_rel_tol") {
  for (std::size_t n : {1u, 5u, 8u, 64u, 100u, 288u, 576u, 1055u}) {
    CAPTURE(n);
    const auto x = gaussian(n, 30 + static_cast<unsigned>(n), 3.0f), w = gaussian(n, 40 + static_cast<unsigned>(n));
    std::vector<float> os(n), ov(n);
    ref::rmsnorm(os.data(), x.data(), w.data(), n, 1e-5f);
    xk::rmsnorm(ov.data(), x.data(), w.data(), n, 1e-5f);
    for (std::size_t i = 0; i < n; ++i) CHECK(std::fabs(double(os[i]) - ov[i]) <= rmsnorm_rel_tol * std::fabs(os[i]) + 1e-30);
  }
}

TEST_CASE("xsimd: f32 matmul equals the scalar reference and keeps the contract") {
  unsigned seed = 100;
  for (const shape& s : shapes) {
    CAPTURE(s.rows);
    CAPTURE(s.cols);
    CAPTURE(s.n);
    const auto c = make_f32(s, seed++);
    check_against_scalar(c, f32_rel_tol);
    check_contract(c, seed);
  }
}

TEST_CASE_TEMPLATE("xsimd: quantized matmul equals the scalar reference and keeps the contract", P, q8_0, q4_0) {
  unsigned seed = 200;
  for (const shape& s : shapes) {
    CAPTURE(s.rows);
    CAPTURE(s.cols);
    CAPTURE(s.n);
    const auto c = make_q<P>(s, seed++);
    check_against_scalar(c, quant_rel_tol);
    check_contract(c, seed);
  }
}

TEST_CASE_TEMPLATE("xsimd: quantized dot products are the matmul's elements", P, q8_0, q4_0) {
  const auto c = make_q<P>({9, 1000, 5}, 300);
  const auto y = run<xk>(c, 0, c.rows);
  for (std::size_t t = 0; t < c.n; ++t)
    for (std::uint32_t r = 0; r < c.rows; ++r) {
      const float d = xk::dot(c.w.data() + r * c.bpr, c.x.data() + t * c.ldx, c.bpr * 32);
      CHECK(same_bits(d, y[t * c.ldy + r]));
      const float s = ref::dot(c.w.data() + r * c.bpr, c.x.data() + t * c.ldx, c.bpr * 32);
      CHECK(std::fabs(double(d) - s) <= quant_rel_tol * l1_terms(c, r, t) + 1e-30);
    }
}

// Every int8 value, -128 included (no saturating int8 trick): with unit scales the products are exact
// integers, so xsimd must equal the scalar reference exactly.
TEST_CASE("xsimd: int8 extremes are exact with unit scales") {
  const std::uint16_t one = 0x3C00;  // fp16 1.0
  std::mt19937 g(7);
  const std::uint32_t rows = 11, nb = 3;
  const std::size_t n = 6;
  std::vector<block_q8_0> w8(rows * nb), x(n * nb);
  std::vector<block_q4_0> w4(rows * nb);
  for (std::size_t i = 0; i < w8.size(); ++i) {
    w8[i].d = one;
    w4[i].d = one;
    for (int j = 0; j < 32; ++j) w8[i].qs[j] = static_cast<std::int8_t>(i % 3 == 0 ? -128 : static_cast<int>(g() % 256) - 128);
    for (int j = 0; j < 16; ++j) w4[i].qs[j] = static_cast<std::uint8_t>(i % 3 == 0 ? 0x00 : g() % 256);  // level -8 everywhere, or random
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i].d = one;
    for (int j = 0; j < 32; ++j) x[i].qs[j] = static_cast<std::int8_t>(i % 2 == 0 ? -128 : static_cast<int>(g() % 256) - 128);
  }
  const matrix<q8_0> m8{w8.data(), rows, nb * 32};
  const matrix<q4_0> m4{w4.data(), rows, nb * 32};
  std::vector<float> a(n * rows), b(n * rows);
  xk::matmul(a.data(), rows, m8, x.data(), nb, n, 0, rows);
  ref::matmul(b.data(), rows, m8, x.data(), nb, n, 0, rows);
  CHECK(first_difference(a, b) == -1);
  xk::matmul(a.data(), rows, m4, x.data(), nb, n, 0, rows);
  ref::matmul(b.data(), rows, m4, x.data(), nb, n, 0, rows);
  CHECK(first_difference(a, b) == -1);
}

}  // namespace

#endif  // xsimd available
