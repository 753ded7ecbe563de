// tests/test_conformance.cpp - every kernel op x every backend (tests/support/kernels.hpp) x every
// precision against an independent reference, with named tolerances; natively and in WebAssembly.
//
// The reference is plain double-precision arithmetic written here (dequantized values multiplied in
// double), not the scalar backend, so the scalar backend is checked too. Tolerances:
//   dot_tol      float sums of n terms: (n / 8 + 16) ulps of sum |terms| (any summation order)
//   elem_tol     element-wise float ops: 4 ulps of the value (exp/sqrt may differ by an ulp or two)
//   attn_tol     attention output: 1e-5 of sum |weights * values|
// and the matmul contract: a value never depends on the batch, the row range or the tile it falls in
// (bit-identical), which is what makes threads and batched prefill deterministic.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <edgelm/core/buffer.hpp>
#include <edgelm/core/half.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#include "support/kernels.hpp"

using namespace edgelm;

namespace {

constexpr double ulp = 1.0 / 8388608.0;  // 2^-23
double dot_tol(std::size_t n, double l1) { return (static_cast<double>(n) / 8 + 16) * ulp * l1; }
constexpr double elem_ulps = 4;
constexpr double attn_rel = 1e-5;

std::vector<float> gaussian(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// A weight matrix in precision P (rows x cols, rows padded to whole blocks) with its dequantized values,
// stored with `offset` bytes before it so that its blocks sit at any 2-byte-aligned address, as in a file
// (GGUF blocks are 2-byte aligned; the loader only binds such tensors in place).
template <class P>
struct test_matrix {
  std::vector<unsigned char> raw;
  matrix<P> m;
  std::vector<double> deq;  // (rows, padded cols)
  std::size_t padded = 0;
  test_matrix(std::uint32_t rows, std::uint32_t cols, unsigned seed, std::size_t offset) {
    using B = typename P::block_type;
    const std::size_t bpr = matrix<P>::blocks_per_row(cols);
    padded = bpr * P::block_size;
    raw.resize(offset + rows * bpr * sizeof(B));
    auto* blocks = reinterpret_cast<B*>(raw.data() + offset);
    const auto v = gaussian(std::size_t{rows} * cols, seed);
    std::vector<float> row(padded);
    deq.assign(std::size_t{rows} * padded, 0.0);
    for (std::uint32_t r = 0; r < rows; ++r) {
      std::vector<B> tmp(bpr);
      if constexpr (std::is_same_v<P, f32>) std::memcpy(tmp.data(), v.data() + std::size_t{r} * cols, cols * sizeof(float));
      else P::quantize_row(v.data() + std::size_t{r} * cols, tmp.data(), cols);
      std::memcpy(blocks + r * bpr, tmp.data(), bpr * sizeof(B));
      P::dequantize_row(tmp.data(), row.data(), padded);
      for (std::size_t c = 0; c < padded; ++c) deq[r * padded + c] = c < cols ? row[c] : 0.0;
    }
    m = matrix<P>{blocks, rows, cols};
  }
};

// n rows of activations for a matrix of `cols` columns in P's activation precision (+ dequantized).
template <class P>
struct test_acts {
  using A = typename P::activation::block_type;
  std::vector<unsigned char> raw;
  const A* x = nullptr;
  std::size_t ld = 0;  // row stride in A
  std::vector<double> deq;
  test_acts(std::size_t n, std::uint32_t cols, std::size_t padded, unsigned seed, std::size_t offset) {
    if constexpr (std::is_same_v<A, float>) ld = cols + 3;  // a stride that is not the width
    else ld = padded / P::activation::block_size;
    raw.resize(offset + n * ld * sizeof(A) + 64);
    A* base = reinterpret_cast<A*>(raw.data() + offset);
    deq.assign(n * padded, 0.0);
    const auto v = gaussian(n * cols, seed, 2.0f);
    std::vector<float> row(padded);
    for (std::size_t t = 0; t < n; ++t) {
      if constexpr (std::is_same_v<A, float>) {
        std::memcpy(base + t * ld, v.data() + t * cols, cols * sizeof(float));
        for (std::size_t c = 0; c < cols; ++c) deq[t * padded + c] = v[t * cols + c];
      } else {
        std::vector<A> tmp(ld);
        P::activation::quantize_row(v.data() + t * cols, tmp.data(), cols);
        std::memcpy(base + t * ld, tmp.data(), ld * sizeof(A));
        P::activation::dequantize_row(tmp.data(), row.data(), padded);
        for (std::size_t c = 0; c < padded; ++c) deq[t * padded + c] = c < cols ? row[c] : 0.0;
      }
    }
    x = base;
  }
};

// The kernels' packed copy of m (K::pack, as the loader makes it) made in slices of `slice` rows (a
// multiple of K::packed_row_group): the layout must be the slices' layouts one after the other.
template <class K, class P>
bool pack_for_test(matrix<P>& m, std::vector<aligned_buffer<std::byte>>& keep, std::uint32_t slice) {
  const std::size_t bytes = K::template packed_bytes<P>(m);
  if (bytes == 0) return false;
  auto whole = aligned_buffer<std::byte>::make(bytes), sliced = aligned_buffer<std::byte>::make(bytes);
  REQUIRE(whole);
  REQUIRE(sliced);
  const std::uint32_t id = K::template pack<P>(m, whole->data());
  REQUIRE(id != 0);
  for (std::uint32_t r = 0; r < m.rows; r += slice) {
    matrix<P> part = m, before = m;
    part.data = m.row(r);
    part.rows = std::min(slice, m.rows - r);
    before.rows = r;
    CHECK(K::template pack<P>(part, sliced->data() + (r ? K::template packed_bytes<P>(before) : 0)) == id);
  }
  CHECK(std::memcmp(whole->data(), sliced->data(), bytes) == 0);
  m.packed = whole->data();
  m.packing = id;
  keep.push_back(std::move(*whole));
  return true;
}

template <class K, class P>
void check_matmul(std::uint32_t rows, std::uint32_t cols, std::size_t n, unsigned seed, bool packed = false) {
  INFO("precision " << std::string(P::name) << (packed ? ", weights packed by the kernels" : ""));
  CAPTURE(rows);
  CAPTURE(cols);
  CAPTURE(n);
  const test_matrix<P> w(rows, cols, seed, std::is_same_v<P, f32> ? 4 : 2 + 2 * (seed % 2));
  const test_acts<P> x(n, cols, w.padded, seed + 1, std::is_same_v<P, f32> ? 8 : 2 * (seed % 3));
  const std::size_t ldy = rows + 5;
  matrix<P> m = w.m;
  std::vector<aligned_buffer<std::byte>> keep;
  if (packed && !pack_for_test<K>(m, keep, 32)) return;  // this CPU's path has no layout of its own
  std::vector<float> y(n * ldy, -1.0f);
  K::matmul(y.data(), ldy, m, x.x, x.ld, n, 0, rows);
  if (packed) {  // the same bits as the products over the rows in place
    std::vector<float> yr(n * ldy, -1.0f);
    K::matmul(yr.data(), ldy, w.m, x.x, x.ld, n, 0, rows);
    CHECK(std::memcmp(y.data(), yr.data(), y.size() * sizeof(float)) == 0);
  }
  bool bounded = true;
  for (std::size_t t = 0; t < n; ++t)
    for (std::uint32_t r = 0; r < rows; ++r) {
      double e = 0, l1 = 0;
      for (std::size_t c = 0; c < w.padded; ++c) {
        e += w.deq[r * w.padded + c] * x.deq[t * w.padded + c];
        l1 += std::fabs(w.deq[r * w.padded + c] * x.deq[t * w.padded + c]);
      }
      if (!(std::fabs(double(y[t * ldy + r]) - e) <= dot_tol(w.padded, l1))) bounded = false;
    }
  CHECK(bounded);
  // the contract: one token at a time, and odd row ranges, give the same bits
  std::vector<float> y1(n * ldy, -1.0f), y2(n * ldy, -1.0f);
  for (std::size_t t = 0; t < n; ++t) K::matmul(y1.data() + t * ldy, 0, m, x.x + t * x.ld, 0, 1, 0, rows);
  std::uint32_t r0 = 0;
  for (std::uint32_t cut : {3u, 17u, 18u, 40u, 41u, 64u, rows}) {
    const std::uint32_t r1 = std::min(cut, rows);
    if (r1 > r0) K::matmul(y2.data(), ldy, m, x.x, x.ld, n, r0, r1);
    r0 = std::max(r0, r1);
  }
  bool same1 = true, same2 = true;
  for (std::size_t t = 0; t < n; ++t)
    for (std::uint32_t r = 0; r < rows; ++r) {
      same1 = same1 && std::memcmp(&y[t * ldy + r], &y1[t * ldy + r], 4) == 0;
      same2 = same2 && std::memcmp(&y[t * ldy + r], &y2[t * ldy + r], 4) == 0;
    }
  CHECK(same1);
  CHECK(same2);
  // a row range writes its own rows only (threads run neighbouring ranges at the same time)
  for (auto range : {std::pair{1u, 2u}, {3u, 19u}, {16u, 32u}, {5u, 64u}}) {
    const std::uint32_t a = range.first, b = range.second;  // (clang 14 cannot capture structured bindings)
    if (b > rows) continue;
    std::vector<float> y3(n * ldy, -7.0f);
    K::matmul(y3.data(), ldy, m, x.x, x.ld, n, a, b);
    bool own = true;
    for (std::size_t t = 0; t < n; ++t)
      for (std::uint32_t r = 0; r < ldy; ++r) {
        if (r >= a && r < b) own = own && std::memcmp(&y3[t * ldy + r], &y[t * ldy + r], 4) == 0;
        else own = own && y3[t * ldy + r] == -7.0f;
      }
    CHECK_MESSAGE(own, "rows [" << a << ", " << b << ")");
  }
  // untouched: the padding columns of y
  bool pad = true;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = rows; r < ldy; ++r) pad = pad && y[t * ldy + r] == -1.0f;
  CHECK(pad);
}

}  // namespace

TEST_CASE_TEMPLATE("conformance: matmul f32 / q8_0 / q4_0 against double, and the batch/split contract", K, EDGELM_TEST_KERNELS) {
  INFO("backend " << std::string(K::name));
  unsigned seed = 1;
  for (std::uint32_t rows : {1u, 5u, 16u, 67u}) {
    for (std::uint32_t cols : {32u, 64u, 96u, 172u, 576u, 1056u}) {
      for (std::size_t n : {1u, 3u, 8u, 13u}) {
        check_matmul<K, f32>(rows, cols, n, seed++);
        check_matmul<K, q8_0>(rows, cols, n, seed++);
        check_matmul<K, q4_0>(rows, cols, n, seed++);
      }
    }
  }
  // long and wide shapes of real models, one batch size
  check_matmul<K, q4_0>(192, 2048, 70, 901);
  check_matmul<K, q8_0>(130, 1536, 33, 902);
  check_matmul<K, f32>(100, 768, 20, 903);
}

TEST_CASE_TEMPLATE("conformance: matmul over weights repacked by the kernels (K::pack) gives the same bits", K, EDGELM_TEST_KERNELS) {
  INFO("backend " << std::string(K::name));
  unsigned seed = 500;
  for (std::uint32_t rows : {1u, 16u, 45u, 67u})
    for (std::uint32_t cols : {32u, 96u, 172u, 1056u})
      for (std::size_t n : {1u, 2u, 3u, 8u, 9u, 13u, 70u}) {
        check_matmul<K, q8_0>(rows, cols, n, seed++, true);
        check_matmul<K, q4_0>(rows, cols, n, seed++, true);
      }
  check_matmul<K, q4_0>(192, 8192, 3, 911, true);  // more blocks than one decode chunk
  check_matmul<K, q8_0>(80, 8224, 1, 912, true);
}

TEST_CASE_TEMPLATE("conformance: dot products against double", K, EDGELM_TEST_KERNELS) {
  INFO("backend " << std::string(K::name));
  for (std::size_t n : {1u, 3u, 7u, 8u, 15u, 16u, 17u, 64u, 100u, 172u, 1000u}) {
    const auto a = gaussian(n, 10 + static_cast<unsigned>(n)), b = gaussian(n, 20 + static_cast<unsigned>(n));
    double e = 0, l1 = 0;
    for (std::size_t i = 0; i < n; ++i) e += double(a[i]) * b[i], l1 += std::fabs(double(a[i]) * b[i]);
    CHECK(std::fabs(double(K::dot(a.data(), b.data(), n)) - e) <= dot_tol(n, l1));
    // f32 . fp16 (an f16 KV cache)
    std::vector<std::uint16_t> h(n);
    double eh = 0, lh = 0;
    for (std::size_t i = 0; i < n; ++i) {
      h[i] = f32_to_fp16(b[i]);
      eh += double(a[i]) * fp16_to_f32(h[i]);
      lh += std::fabs(double(a[i]) * fp16_to_f32(h[i]));
    }
    CHECK(std::fabs(double(K::dot(a.data(), h.data(), n)) - eh) <= dot_tol(n, lh));
  }
}

TEST_CASE_TEMPLATE("conformance: element-wise ops, norms, softmax, rope against double", K, EDGELM_TEST_KERNELS) {
  INFO("backend " << std::string(K::name));
  auto close = [](double got, double want) { return std::fabs(got - want) <= elem_ulps * ulp * std::fabs(want) + 1e-30; };
  for (std::size_t n : {1u, 2u, 7u, 16u, 33u, 172u, 576u}) {
    CAPTURE(n);
    const auto a = gaussian(n, 3 + static_cast<unsigned>(n)), b = gaussian(n, 5 + static_cast<unsigned>(n)), wt = gaussian(n, 7);
    // rmsnorm: o = w * x / sqrt(mean(x^2) + eps); the mean is a float sum (dot_tol), the rest element-wise
    std::vector<float> o(n);
    K::rmsnorm(o.data(), a.data(), wt.data(), n, 1e-5f);
    double ss = 0;
    for (float v : a) ss += double(v) * v;
    const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i) ok = ok && std::fabs(o[i] - wt[i] * a[i] * inv) <= (dot_tol(n, ss) / ss + 8 * ulp) * std::fabs(wt[i] * a[i] * inv) + 1e-30;
    CHECK(ok);
    // softmax
    std::vector<float> s(a);
    K::softmax(s.data(), n);
    double mx = a[0], sum = 0;
    for (float v : a) mx = std::max(mx, double(v));
    for (float v : a) sum += std::exp(double(v) - mx);
    ok = true;
    for (std::size_t i = 0; i < n; ++i) ok = ok && std::fabs(s[i] - std::exp(double(a[i]) - mx) / sum) <= (n / 4.0 + 8) * ulp * (std::exp(double(a[i]) - mx) / sum);
    CHECK(ok);
    // silu_mul, add, axpy
    std::vector<float> g(a), x(a), y(a);
    K::silu_mul(g.data(), b.data(), n);
    K::add(x.data(), b.data(), n);
    K::axpy(y.data(), 0.37f, b.data(), n);
    ok = true;
    for (std::size_t i = 0; i < n; ++i) {
      ok = ok && close(g[i], double(a[i]) / (1.0 + std::exp(-double(a[i]))) * b[i]);
      ok = ok && std::fabs(x[i] - (double(a[i]) + b[i])) <= ulp * std::fabs(double(a[i]) + b[i]);
      ok = ok && std::fabs(y[i] - (double(a[i]) + 0.37 * b[i])) <= 2 * ulp * (std::fabs(double(a[i])) + std::fabs(0.37 * b[i]));
    }
    CHECK(ok);
    // KV stores: f32 exact, f16 round to nearest even
    std::vector<float> kf(n);
    std::vector<std::uint16_t> kh(n);
    K::store_kv(kf.data(), a.data(), n);
    K::store_kv(kh.data(), a.data(), n);
    ok = std::memcmp(kf.data(), a.data(), n * 4) == 0;
    for (std::size_t i = 0; i < n; ++i) ok = ok && kh[i] == f32_to_fp16(a[i]);
    CHECK(ok);
  }
  // rope: the angles of run.c, rotation of adjacent pairs (q: 4 heads, k: 2 heads of 16)
  const std::size_t hd = 16, nq = 64, nk = 32;
  std::vector<float> c(hd / 2), sn(hd / 2);
  K::rope_table(c.data(), sn.data(), hd, 37, 10000.0f);
  bool ok = true;
  for (std::size_t i = 0; i < hd; i += 2) {
    const double ang = 37.0 / std::pow(10000.0, double(i) / hd);
    ok = ok && std::fabs(c[i / 2] - std::cos(ang)) <= 1e-5 && std::fabs(sn[i / 2] - std::sin(ang)) <= 1e-5;
  }
  CHECK(ok);
  auto q = gaussian(nq, 41), k = gaussian(nk, 42);
  const auto q0 = q, k0 = k;
  K::rope(q.data(), k.data(), nq, nk, hd, c.data(), sn.data());
  ok = true;
  for (std::size_t i = 0; i < nq; i += 2) {
    const double cr = c[(i % hd) / 2], si = sn[(i % hd) / 2];
    ok = ok && std::fabs(q[i] - (q0[i] * cr - q0[i + 1] * si)) <= 4 * ulp * (std::fabs(q0[i]) + std::fabs(q0[i + 1]));
    ok = ok && std::fabs(q[i + 1] - (q0[i] * si + q0[i + 1] * cr)) <= 4 * ulp * (std::fabs(q0[i]) + std::fabs(q0[i + 1]));
    if (i < nk) ok = ok && std::fabs(k[i] - (k0[i] * cr - k0[i + 1] * si)) <= 4 * ulp * (std::fabs(k0[i]) + std::fabs(k0[i + 1]));
  }
  CHECK(ok);
}

namespace {
template <class K, class KV>
void check_attention(std::uint32_t pos, std::uint32_t n, unsigned seed) {
  CAPTURE(pos);
  CAPTURE(n);
  const std::uint32_t hd = 16, n_heads = 6, n_kv = 2, kv_dim = n_kv * hd, dim = n_heads * hd, len = pos + n;
  const auto qv = gaussian(std::size_t{n} * dim, seed), kvv = gaussian(std::size_t{len} * kv_dim, seed + 1), vvv = gaussian(std::size_t{len} * kv_dim, seed + 2);
  std::vector<KV> kc(kvv.size()), vc(vvv.size());
  K::store_kv(kc.data(), kvv.data(), kvv.size());
  K::store_kv(vc.data(), vvv.data(), vvv.size());
  auto val = [](const KV& x) { if constexpr (std::is_same_v<KV, float>) return double(x); else return double(fp16_to_f32(x)); };
  std::vector<float> out(std::size_t{n} * dim, 0.0f), scratch(len);
  attention_args<KV> a;
  a.out = out.data();
  a.ld_out = dim;
  a.q = qv.data();
  a.ld_q = dim;
  a.k = kc.data();
  a.v = vc.data();
  a.kv_dim = kv_dim;
  a.head_dim = hd;
  a.n_heads = n_heads;
  a.kv_mul = n_heads / n_kv;
  a.pos = pos;
  a.n = n;
  // two pieces of the item range, as two workers would do them
  const std::size_t items = std::size_t{n} * n_heads, cut = items / 3;
  K::attention(a, 0, cut, scratch.data());
  K::attention(a, cut, items, scratch.data());
  bool ok = true;
  for (std::uint32_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_heads; ++h) {
      const std::uint32_t L = pos + t + 1, kh = h / (n_heads / n_kv);
      std::vector<double> sc(L);
      double mx = -1e300, sum = 0;
      for (std::uint32_t j = 0; j < L; ++j) {
        double d = 0;
        for (std::uint32_t i = 0; i < hd; ++i) d += double(qv[t * dim + h * hd + i]) * val(kc[j * kv_dim + kh * hd + i]);
        sc[j] = d / std::sqrt(double(hd));
        mx = std::max(mx, sc[j]);
      }
      for (auto& s : sc) sum += (s = std::exp(s - mx));
      for (std::uint32_t i = 0; i < hd; ++i) {
        double e = 0, l1 = 0;
        for (std::uint32_t j = 0; j < L; ++j) {
          e += sc[j] / sum * val(vc[j * kv_dim + kh * hd + i]);
          l1 += std::fabs(sc[j] / sum * val(vc[j * kv_dim + kh * hd + i]));
        }
        ok = ok && std::fabs(out[t * dim + h * hd + i] - e) <= attn_rel * (l1 + 1e-3);
      }
    }
  CHECK(ok);
}
}  // namespace

TEST_CASE_TEMPLATE("conformance: causal attention over a block of queries (f32 and f16 KV) against double", K, EDGELM_TEST_KERNELS) {
  INFO("backend " << std::string(K::name));
  unsigned seed = 100;
  for (auto [pos, n] : {std::pair{0u, 1u}, {0u, 7u}, {5u, 1u}, {31u, 9u}, {100u, 3u}}) {
    check_attention<K, float>(pos, n, seed++);
    check_attention<K, std::uint16_t>(pos, n, seed++);
  }
}
