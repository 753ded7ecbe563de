// tests/test_kquants.cpp - precision/ggml_quants.hpp: the in-place weight types Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
// Q6_K (their dot products against q8_0 / q8_sum / q8_k activations, scalar and Highway), the q8_k
// activation quantizer, and the `mixed` policy end to end (every matrix in its file type).
//
// The oracle: tests/data/quant/<type>.bin hold the blocks ggml's own quantizers wrote for a fixed input and
// the floats ggml's dequantizers read back (see tests/data/quant/README.md). A dot product of those blocks
// with a quantized activation row must equal, up to float rounding, the sum over ggml's dequantized weights
// times the activation's dequantized values, computed here in double. No value comes from the code under test.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>

#include "test_util.hpp"
#if __has_include("fuzz/model_builders.hpp")
#include "fuzz/model_builders.hpp"
#define EDGELM_TEST_HAVE_BUILDERS 1
#endif

namespace {

using namespace edgelm;
using hwy_k = backends::highway::kernels;

// A float sum of per-block products vs the double sum: each block's scaled integer sum is rounded a few
// times (scale products, one add), so the difference is bounded by a few ulps of the sum of |terms|.
constexpr double dot_rel_tol = 1e-5;

struct fixture {
  bool ok = false;
  std::uint32_t type = 0, n = 0;
  std::vector<std::byte> q;
  std::vector<float> y;
};

fixture load_fixture(const std::string& name) {
  fixture f;
  auto b = edgelm_test::read_all(edgelm_test::source_dir() + "/tests/data/quant/" + name);
  std::uint32_t n_bytes = 0;
  if (b.size() < 24 || std::memcmp(b.data(), "EDGQFX01", 8) != 0) return f;
  std::memcpy(&f.type, b.data() + 8, 4);
  std::memcpy(&f.n, b.data() + 12, 4);
  std::memcpy(&n_bytes, b.data() + 16, 4);
  if (b.size() != 24 + std::size_t{n_bytes} + std::size_t{f.n} * 4) return f;
  f.q.resize(n_bytes);
  std::memcpy(f.q.data(), b.data() + 24, n_bytes);
  f.y.resize(f.n);
  std::memcpy(f.y.data(), b.data() + 24 + n_bytes, std::size_t{f.n} * 4);
  f.ok = true;
  return f;
}

std::vector<float> gaussian(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(g);
  return v;
}

// The activation's values as the dot product sees them.
std::vector<double> act_values(const std::vector<block_q8_0>& a, std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = double(a[i / 32].qs[i % 32]) * fp16_to_f32(a[i / 32].d);
  return v;
}
std::vector<double> act_values(const std::vector<block_q8_sum>& a, std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = double(a[i / 32].qs[i % 32]) * a[i / 32].d;
  return v;
}
std::vector<double> act_values(const std::vector<block_q8_k>& a, std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = double(a[i / 256].qs[i % 256]) * a[i / 256].d;
  return v;
}

// Q4_1 / Q5_1 dot against q8_sum, whose s = d * sum(qs) is exact in float only up to rounding; and the
// min term m * s multiplies the same activation values: the reference uses the values themselves.
template <class T, class K>
void check_dot(const char* file) {
  INFO(file);
  const fixture f = load_fixture(file);
  REQUIRE_MESSAGE(f.ok, "missing or malformed fixture tests/data/quant/", file);
  REQUIRE(f.type == static_cast<std::uint32_t>(T::type));
  using A = typename T::activation;
  for (unsigned seed : {1u, 2u, 3u}) {
    const auto x = gaussian(f.n, seed);
    std::vector<typename A::block_type> a((f.n + A::block_size - 1) / A::block_size);
    A::quantize_row(x.data(), a.data(), f.n);
    const auto av = act_values(a, f.n);
    double ref = 0, mag = 0;
    for (std::size_t i = 0; i < f.n; ++i) {
      ref += double(f.y[i]) * av[i];
      mag += std::fabs(double(f.y[i]) * av[i]);
    }
    const auto* w = reinterpret_cast<const typename T::block_type*>(f.q.data());
    const double got = K::dot(w, a.data(), f.n);
    CHECK(std::fabs(got - ref) <= dot_rel_tol * mag + 1e-30);
    // and the matmul path (one row, one token): the dot itself, or (K-quants on AVX-512 VNNI) a tile that
    // sums in float lanes, a different float order
    const matrix<T> m{w, 1, f.n};
    float y = 0;
    K::matmul(&y, 1, m, a.data(), 0, 1, 0, 1);
    if constexpr (T::block_size == 256)
      CHECK(std::fabs(y - ref) <= dot_rel_tol * mag + 1e-30);
    else
      CHECK(f32_to_bits(y) == f32_to_bits(static_cast<float>(got)));
    // The K-quant paths keep the scalar reference's integer sums and float expression: the same bits.
    if constexpr (T::block_size == 256) CHECK(f32_to_bits(static_cast<float>(got)) == f32_to_bits(kernels::scalar::dot(w, a.data(), f.n)));
  }
}

}  // namespace

TEST_CASE("kquants: q8_k activations are ggml's block_q8_K (max magnitude -> -127, sums of 16)") {
  auto x = gaussian(512, 7);
  x[300] = -9.0f;  // the largest magnitude of the second block: maps to -127 whatever its sign
  std::vector<block_q8_k> q(2);
  q8_k::quantize_row(x.data(), q.data(), 512);
  for (int b = 0; b < 2; ++b) {
    float amax = 0, max = 0;
    for (int j = 0; j < 256; ++j)
      if (std::fabs(x[b * 256 + j]) > amax) amax = std::fabs(x[b * 256 + j]), max = x[b * 256 + j];
    CHECK(q[b].d == doctest::Approx(max / -127.0f).epsilon(1e-6));
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += q[b].qs[g * 16 + j];
      CHECK(q[b].bsums[g] == s);
    }
    for (int j = 0; j < 256; ++j) CHECK(std::fabs(q[b].qs[j] * q[b].d - x[b * 256 + j]) <= std::fabs(q[b].d) * 0.5f + 1e-6f);
  }
  CHECK(q[1].qs[300 - 256] == -127);
  CHECK(q[1].d > 0.0f);
  // all zero: d = 0, no division by zero
  std::vector<float> z(256, 0.0f);
  q8_k::quantize_row(z.data(), q.data(), 256);
  CHECK(q[0].d == 0.0f);
  CHECK(q[0].bsums[3] == 0);
}

TEST_CASE("kquants: Highway's q8_k activations are q8_k::quantize_row's bytes (ties, halves, NaN, inf, zeros, short last block)") {
  // (x86 with AVX-512: its own quantizer; elsewhere the reference itself)
  for (const std::size_t n : {std::size_t{256}, std::size_t{512}, std::size_t{768}, std::size_t{256 + 17}, std::size_t{5}}) {
    for (int variant = 0; variant < 8; ++variant) {
      CAPTURE(n);
      CAPTURE(variant);
      auto x = gaussian(n, static_cast<std::uint32_t>(100 + variant));
      if (variant == 1) x[n / 2] = 3.0f, x[n / 3] = -3.0f;                        // equal magnitudes: the first wins
      if (variant == 2) x[1] = std::nanf(""), x[n - 1] = 10.0f;                    // NaN is skipped, quantizes to -128
      if (variant == 3) x[n / 2] = INFINITY;                                      // not finite: a zero block
      if (variant == 4) std::fill(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(n, 256)), 0.0f);
      if (variant == 5)                                                           // products on exact halves
        for (std::size_t j = 0; j < n; ++j) x[j] = static_cast<float>(static_cast<int>(j % 255) - 127) * 0.5f;
      if (variant == 6)
        for (auto& v : x) v *= 1e-30f;                                            // tiny scales
      if (variant == 7) x[0] = -127.0f, x[2] = 63.5f, x[3] = -63.5f, x[4] = 0.5f;  // -127 -> 127 * sign flips
      const std::size_t nb = (n + 255) / 256;
      std::vector<block_q8_k> want(nb), got(nb);
      std::memset(want.data(), 0x5A, nb * sizeof(block_q8_k));
      std::memset(got.data(), 0x5A, nb * sizeof(block_q8_k));
      q8_k::quantize_row(x.data(), want.data(), n);
      hwy_k::quantize_q8_k(x.data(), got.data(), n);
      CHECK(std::memcmp(want.data(), got.data(), nb * sizeof(block_q8_k)) == 0);
    }
  }
}

TEST_CASE("kquants: dot products of ggml's blocks (scalar and Highway) equal the dequantized sums") {
  check_dot<q4_1, kernels::scalar>("q4_1.bin");
  check_dot<q5_0, kernels::scalar>("q5_0.bin");
  check_dot<q5_1, kernels::scalar>("q5_1.bin");
  check_dot<q4_k, kernels::scalar>("q4_k.bin");
  check_dot<q5_k, kernels::scalar>("q5_k.bin");
  check_dot<q6_k, kernels::scalar>("q6_k.bin");
  check_dot<q4_1, hwy_k>("q4_1.bin");
  check_dot<q5_0, hwy_k>("q5_0.bin");
  check_dot<q5_1, hwy_k>("q5_1.bin");
  check_dot<q4_k, hwy_k>("q4_k.bin");
  check_dot<q5_k, hwy_k>("q5_k.bin");
  check_dot<q6_k, hwy_k>("q6_k.bin");
}

TEST_CASE("kquants: weight types dequantize rows exactly as ggml") {
  auto one = [&]<class T>(const char* file) {
    INFO(file);
    const fixture f = load_fixture(file);
    REQUIRE(f.ok);
    std::vector<float> y(f.n);
    T::dequantize_row(reinterpret_cast<const typename T::block_type*>(f.q.data()), y.data(), f.n);
    for (std::size_t i = 0; i < f.n; ++i) REQUIRE(f32_to_bits(y[i]) == f32_to_bits(f.y[i]));
  };
  one.operator()<q4_1>("q4_1.bin");
  one.operator()<q5_0>("q5_0.bin");
  one.operator()<q5_1>("q5_1.bin");
  one.operator()<q4_k>("q4_k.bin");
  one.operator()<q5_k>("q5_k.bin");
  one.operator()<q6_k>("q6_k.bin");
}

TEST_CASE("kquants: visit_type picks the policy's type by id") {
  int hits = 0;
  CHECK(visit_type(policy_traits<mixed>::types{}, ggml_type::q6_k, [&](auto t) { hits += std::is_same_v<decltype(t), q6_k>; }));
  CHECK(hits == 1);
  CHECK_FALSE(visit_type(policy_traits<mixed>::types{}, ggml_type::q3_k, [&](auto) { ++hits; }));
  CHECK_FALSE(visit_type(policy_traits<q8_0>::types{}, ggml_type::q4_0, [&](auto) { ++hits; }));
  CHECK(hits == 1);
  CHECK(policy_traits<mixed>::convert_to(ggml_type::bf16) == ggml_type::f32);
  CHECK(policy_traits<mixed>::convert_to(ggml_type::q3_k) == ggml_type::q8_0);
  CHECK(policy_traits<q4_0>::convert_to(ggml_type::f32) == ggml_type::q4_0);
}

#if EDGELM_TEST_HAVE_BUILDERS
namespace {
// A llama GGUF of 256-wide matrices (K-quant rows) whose matrices each have another type, as llama-quantize's
// mixes do (bytes from the builder: every scale finite).
std::vector<std::byte> mixed_types_gguf() {
  edgelm_test::tiny_llama p;
  p.dim = 256;
  p.hidden = 512;
  p.heads = 4;
  p.kv_heads = 2;
  p.layers = 2;
  p.context = 32;
  p.type = static_cast<std::uint32_t>(ggml_type::q8_0);
  auto spec = edgelm_test::tiny_llama_gguf(p);
  const std::pair<const char*, ggml_type> types[] = {
      {"token_embd.weight", ggml_type::q6_k},        {"blk.0.attn_q.weight", ggml_type::q4_k},   {"blk.0.attn_k.weight", ggml_type::q5_k},
      {"blk.0.attn_v.weight", ggml_type::q6_k},      {"blk.0.attn_output.weight", ggml_type::q5_0}, {"blk.0.ffn_gate.weight", ggml_type::q4_1},
      {"blk.0.ffn_down.weight", ggml_type::q5_1},    {"blk.0.ffn_up.weight", ggml_type::q8_0},   {"blk.1.attn_q.weight", ggml_type::q4_0},
      {"blk.1.ffn_down.weight", ggml_type::q6_k},    {"blk.1.ffn_gate.weight", ggml_type::f32},  {"output.weight", ggml_type::q5_k}};
  for (const auto& [name, t] : types) spec.tensor(name).type = static_cast<std::uint32_t>(t);
  auto L = spec.layout();
  // Block scales small enough that activations stay in a sane range through two layers.
  for (std::size_t i = 0; i < spec.tensors.size(); ++i) {
    const auto t = static_cast<ggml_type>(spec.tensors[i].type);
    if (t == ggml_type::f32 || spec.tensors[i].ne.size() != 2) continue;
    const auto& info = ggml_info(t);
    const std::uint64_t n = edgelm_test::gguf_tensor_bytes(spec.tensors[i]);
    // where the fp16 d of each block is (and dmin / m next to it)
    std::size_t d_at = 0, d2_at = SIZE_MAX;
    if (t == ggml_type::q6_k) d_at = 208;
    else if (t == ggml_type::q4_k || t == ggml_type::q5_k || t == ggml_type::q4_1 || t == ggml_type::q5_1) d2_at = 2;
    for (std::uint64_t b = 0; b < n / info.type_size; ++b) {
      const std::uint16_t d = static_cast<std::uint16_t>(0x1C00 + (b * 7 % 64));  // ~2^-8
      edgelm_test::poke(L.file, L.tensor_data_at[i] + b * info.type_size + d_at, d);
      if (d2_at != SIZE_MAX) edgelm_test::poke(L.file, L.tensor_data_at[i] + b * info.type_size + d2_at, std::uint16_t(0x1800));
    }
  }
  return L.file;
}

template <class M>
std::vector<float> run_ids(const M& m, const std::vector<std::int32_t>& ids) {
  auto st = m.net.make_state(0);
  REQUIRE(st);
  std::vector<float> all;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto lg = m.net.forward(*st, ids[i], static_cast<std::uint32_t>(i));
    all.insert(all.end(), lg.begin(), lg.end());
  }
  return all;
}
}  // namespace

TEST_CASE("kquants: a GGUF mixing Q4_K/Q5_K/Q6_K/Q5_0/Q4_1/Q5_1/Q8_0/Q4_0/F32 matrices runs in place under `mixed`") {
  const auto file = mixed_types_gguf();
  auto mm = load<mixed>(memory_storage::copy(file));
  REQUIRE_MESSAGE(mm, (mm ? "" : mm.error().message()));
  CHECK(mm->net.w().converted == 0);
  CHECK(mm->net.w().in_place_as[static_cast<int>(ggml_type::q4_k)] == 1);
  CHECK(mm->net.w().in_place_as[static_cast<int>(ggml_type::q6_k)] == 3);
  auto mf = load<f32>(memory_storage::copy(file));  // the reference: ggml-exact dequantized weights, f32 products
  REQUIRE(mf);
  CHECK(mf->net.w().converted > 10);
  auto mh = load<mixed, hwy_k>(memory_storage::copy(file));
  REQUIRE(mh);
  const std::vector<std::int32_t> ids = {1, 5, 3, 7, 2, 6, 4, 0};
  const auto ref = run_ids(*mf, ids), got = run_ids(*mm, ids), goth = run_ids(*mh, ids);
  REQUIRE(ref.size() == got.size());
  // Only the activations are quantized (to 8 bits) on the mixed path: logits stay within 3% of the largest.
  double amax = 0, err = 0, errh = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    amax = std::max(amax, std::fabs(double(ref[i])));
    err = std::max(err, std::fabs(double(got[i]) - ref[i]));
    errh = std::max(errh, std::fabs(double(goth[i]) - ref[i]));
  }
  // (The Highway q8_0 / q4_0 products sum in another order; a last-bit difference can flip an activation's
  // int8 rounding in the next layer, so Highway is held to the same bound against f32, not to scalar's bits.)
  MESSAGE("max |diff| vs f32: scalar " << err << ", highway " << errh << ", of max |logit| " << amax);
  CHECK(amax > 0.01);
  CHECK(err <= 0.03 * amax);
  CHECK(errh <= 0.03 * amax);
  // a batch of the same tokens is bit-identical to one by one (the matmul contract holds for every type)
  auto st = mm->net.make_state(state_options{.max_batch = 8});
  REQUIRE(st);
  auto lb = mm->net.forward(*st, ids, 0, logits_for::last);
  const std::vector<float> last(got.end() - mm->config().vocab_size, got.end());
  for (std::size_t i = 0; i < last.size(); ++i) CHECK(f32_to_bits(lb[i]) == f32_to_bits(last[i]));
  // a uniform precision converts what it does not run (q8_0: the K-quants, Q5_0, Q4_1, ...), nothing else
  auto m8 = load<q8_0>(memory_storage::copy(file));
  REQUIRE(m8);
  // in place: the 5 norms and the 5 Q8_0 matrices (blk.0 ffn_up; blk.1 attn_k, attn_v, attn_output, ffn_up)
  CHECK(m8->net.w().in_place == 10);
  CHECK(m8->net.w().converted == 11);
}
#endif

namespace {

// Random K-quant blocks: every level, scale and min bit pattern is a valid block; d and dmin finite halves.
template <class B>
std::vector<B> random_blocks(std::size_t count, unsigned seed) {
  std::mt19937 g(seed);
  std::vector<B> v(count);
  std::uniform_real_distribution<float> ud(-0.02f, 0.02f);
  for (auto& b : v) {
    auto* p = reinterpret_cast<unsigned char*>(&b);
    for (std::size_t i = 0; i < sizeof(B); ++i) p[i] = static_cast<unsigned char>(g());
    b.d = f32_to_fp16(ud(g));
    if constexpr (requires { b.dmin; }) b.dmin = f32_to_fp16(ud(g));
  }
  return v;
}

// The Highway policy's matmul of a llama-quantize type (pack: on the 16-row panels made as at load, where the
// CPU has them; else AVX-512 VNNI tiles of the rows, or AVX2 row dots): every output within dot_rel_tol of the
// double sum of the dequantized weights (precision/dequantize.hpp, checked against ggml's dequantizer above)
// times the activation values; and the same bits whatever the tile, the token count or the row range (the
// thread split).
template <class T>
void check_matmul(std::uint32_t rows, std::uint32_t cols, bool pack) {
  using B = typename T::block_type;
  using A = typename T::activation;
  using XB = typename A::block_type;
  INFO(T::name, " ", rows, "x", cols);
  const std::size_t nb = cols / T::block_size;
  const auto w = random_blocks<B>(rows * nb, 11u + cols);
  matrix<T> m{w.data(), rows, cols};
  const std::size_t bytes = hwy_k::packed_bytes(m);
  auto buf = aligned_buffer<std::byte>::make(bytes ? bytes : 1);
  REQUIRE(buf.has_value());
  if (pack && bytes) {
    m.packing = hwy_k::pack(m, buf->data());
    m.packed = buf->data();
    CHECK(m.packing != 0);
  }
  if (pack) MESSAGE(T::name, ": packed bytes ", bytes, " (rows: ", rows * nb * sizeof(B), ")");
  std::vector<float> wf(cols);
  std::vector<std::vector<double>> wd(rows);
  for (std::uint32_t r = 0; r < rows; ++r) {
    T::dequantize_row(m.row(r), wf.data(), cols);
    wd[r].assign(wf.begin(), wf.end());
  }
  constexpr std::size_t n = 9;
  std::vector<XB> x(n * nb);
  for (std::size_t t = 0; t < n; ++t) {
    const auto xf = gaussian(cols, static_cast<unsigned>(200 + t));
    A::quantize_row(xf.data(), x.data() + t * nb, cols);
  }
  std::vector<float> y1(n * rows, 0.0f);
  for (std::size_t t = 0; t < n; ++t) hwy_k::matmul(y1.data() + t * rows, rows, m, x.data() + t * nb, nb, 1, 0, rows);
  int far = 0;
  for (std::size_t t = 0; t < n; ++t) {
    std::vector<XB> one(x.begin() + t * nb, x.begin() + (t + 1) * nb);
    const auto av = act_values(one, cols);
    for (std::uint32_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (std::size_t i = 0; i < cols; ++i) ref += wd[r][i] * av[i], mag += std::fabs(wd[r][i] * av[i]);
      far += !(std::fabs(y1[t * rows + r] - ref) <= dot_rel_tol * mag + 1e-30);
    }
  }
  CHECK(far == 0);
  const std::uint32_t ranges[][2] = {{0, rows}, {0, 16}, {16, rows}, {3, rows - 2}, {17, 18}};
  for (std::size_t nn : {1u, 2u, 3u, 4u, 5u, 8u, 9u})
    for (const auto& rr : ranges) {
      std::vector<float> y(nn * rows, -1.0f);
      hwy_k::matmul(y.data(), rows, m, x.data(), nb, nn, rr[0], rr[1]);
      int bad = 0;
      for (std::size_t t = 0; t < nn; ++t)
        for (std::uint32_t r = 0; r < rows; ++r)
          bad += f32_to_bits(y[t * rows + r]) != f32_to_bits((r >= rr[0] && r < rr[1]) ? y1[t * rows + r] : -1.0f);
      INFO("n=", nn, " rows [", rr[0], ", ", rr[1], ")");
      CHECK(bad == 0);
    }
}

}  // namespace

TEST_CASE("kquants: Highway's Q4_K / Q5_K / Q6_K matmul equals the dequantized sums, with the same bits for every tile, token count and row range") {
  for (std::uint32_t cols : {768u, 2048u}) {
    check_matmul<q4_k>(37, cols, false);
    check_matmul<q5_k>(37, cols, false);
    check_matmul<q6_k>(37, cols, false);
  }
}

TEST_CASE("kquants: Q4_K / Q6_K / Q5_0 repacked at load (Highway's 16-row panels) give the dequantized sums, the same bits for every tile and row range") {
  // Where the CPU has no repacked layout (packed_bytes 0) the product reads the rows; the check is the same.
  for (std::uint32_t cols : {768u, 2048u}) {
    check_matmul<q4_k>(45, cols, true);
    check_matmul<q6_k>(45, cols, true);
    check_matmul<q5_k>(45, cols, true);
  }
  for (std::uint32_t cols : {576u, 1536u, 32u}) check_matmul<q5_0>(45, cols, true);
}

// ---------------------------------------------------------------------------------------------
// the Highway policy's dot products of the llama-quantize types (Q5_0 . q8_0,
// Q4_1 / Q5_1 . q8_sum, Q4_K / Q5_K / Q6_K . q8_k) against kernels::scalar on random and extreme blocks,
// every block count from 1 (odd counts and the 4-block tails of the 32-block kernels included).
//  - K-quants: the same bits as the scalar reference on every build (AVX2: x86_kquants.hpp, WASM SIMD128:
//    wasm_kquants.hpp, elsewhere the reference itself).
//  - 32-blocks: the same bits under WASM SIMD128 (wasm_kquants.hpp keeps the reference's block order); on
//    x86 (AVX2, float lanes: a different order) within a few ulps of the sum of |terms|.
// Extremes: 6-bit scales and mins 63, levels 15 / 31 / 63, Q6_K scales -128 / 127, activations at the ends of
// their quantizer's range (q8_k: -128 / 127; q8_0, q8_sum: -127 / 127).
namespace kqw {
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
}  // namespace kqw
