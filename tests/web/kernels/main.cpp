// tests/web/kernels/main.cpp - the browser's wasm matrix products against the scalar reference, bit for bit, in the
// engine at hand (Chromium's V8: relaxed SIMD as it lowers it on this CPU). tools/build_web.sh builds it with the
// relaxed builds' flags (EDGELM_WASM_RELAXED_DOT, EDGELM_WASM_DOT_ADD, patched in after linking) into
// build/web/kernels/; tests/web/run.mjs ('relaxed-kernels') opens tests/web/kernels.html and reads window.kernels.
//
// The reference is kernels::scalar::matmul (the same contract: y[t, r] depends only on W.row(r) and x_t; the
// scalar code is what every native backend is checked against, and its outputs are token-exact with llama2.c).
// Random q8_0 / q4_0 weights over every byte value (-128 included), random q8_0 activations (-128 included),
// finite fp16 scales; shapes around the kernels' tile and chunk edges (rows not a multiple of the register tile,
// reduction lengths past one chunk, token counts past a super-tile), row ranges that start and end mid-tile,
// strides wider than a row. Every product is compared with memcmp; so is the activation quantization.
#include <edgelm/backends/highway/wasm.hpp>
#include <edgelm/kernels/scalar.hpp>

#include <emscripten/emscripten.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

struct rng {  // splitmix64
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) / static_cast<float>(1u << 24); }
};

std::uint16_t scale(rng& g) {
  switch (g.next() % 16) {
    case 0: return 0;                                  // a zero scale
    case 1: return edgelm::f32_to_fp16(65504.0f);      // the largest finite fp16
    case 2: return 0x0001;                             // the smallest subnormal
    case 3: return g.next() % 16 == 0 ? 0x7C00 : 0x3C00;  // now and then inf (the rows take the exact path), else 1
    default: return edgelm::f32_to_fp16(g.uniform(-0.25f, 0.25f));
  }
}

template <class P>
std::vector<typename P::block_type> weights(rng& g, std::size_t rows, std::size_t bpr) {
  std::vector<typename P::block_type> w(rows * bpr);
  for (auto& b : w) {
    b.d = scale(g);
    for (auto& q : b.qs) q = static_cast<std::remove_reference_t<decltype(q)>>(g.next() & 0xff);
  }
  return w;
}

std::vector<edgelm::block_q8_0> activations(rng& g, std::size_t n, std::size_t ldx) {
  std::vector<edgelm::block_q8_0> x(n * ldx);
  for (auto& b : x) {
    b.d = g.next() % 8 == 0 ? edgelm::f32_to_fp16(1.0f / 127.0f) : edgelm::f32_to_fp16(g.uniform(0.0f, 0.05f));
    const bool extreme = g.next() % 4 == 0;  // whole blocks at the ends of the range
    for (auto& q : b.qs) q = static_cast<std::int8_t>(extreme ? (g.next() & 1 ? -128 : 127) : static_cast<std::int8_t>(g.next() & 0xff));
  }
  return x;
}

template <class P>
bool check(rng& g, std::size_t rows, std::size_t cols, std::size_t n, std::uint32_t r0, std::uint32_t r1, std::string& why) {
  const std::size_t bpr = (cols + 31) / 32, ldx = bpr + 1, ldy = rows + 3;
  const auto wb = weights<P>(g, rows, bpr);
  const auto x = activations(g, n, ldx);
  edgelm::matrix<P> w;
  w.data = wb.data();
  w.rows = static_cast<std::uint32_t>(rows);
  w.cols = static_cast<std::uint32_t>(bpr * 32);
  std::vector<float> want(n * ldy, -7.0f), got(n * ldy, -7.0f);
  edgelm::kernels::scalar::matmul(want.data(), ldy, w, x.data(), ldx, n, r0, r1);
  if (!edgelm::backends::wasm::matmul(got.data(), ldy, w, x.data(), ldx, n, r0, r1)) {
    why = "the wasm backend declined the product";
    return false;
  }
  if (std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0) return true;
  bool same = true;  // (a NaN from an inf scale: any NaN, its payload is not pinned down)
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&want[i], &got[i], sizeof(float)) != 0 && !(want[i] != want[i] && got[i] != got[i])) {
      same = false;
      char buf[160];
      std::snprintf(buf, sizeof buf, "token %zu row %zu: %.9g, reference %.9g", i / ldy, i % ldy, static_cast<double>(got[i]),
                    static_cast<double>(want[i]));
      why = buf;
      break;
    }
  return same;
}

}  // namespace

int main() {
  rng g{20261204};
  const std::size_t row_set[] = {1, 7, 33, 67};
  const std::size_t col_set[] = {0, 32, 96, 576, 1568, 4128};
  const std::size_t n_set[] = {1, 2, 3, 4, 5, 8, 9, 12, 17, 20, 33, 43, 70};  // groups of 4 odd and even, past a super-tile
  unsigned cases = 0, failed = 0;
  std::string first;
  for (int prec = 0; prec < 2; ++prec)
    for (std::size_t rows : row_set)
      for (std::size_t cols : col_set)
        for (std::size_t n : n_set)
          for (int range = 0; range < 2; ++range) {
            // all rows, then a range that starts and ends inside a register tile
            const auto r0 = static_cast<std::uint32_t>(range && rows > 4 ? 1 + rows / 5 : 0);
            const auto r1 = static_cast<std::uint32_t>(range && rows > 4 ? rows - 2 : rows);
            if (range && rows <= 4) continue;
            std::string why;
            const bool ok = prec == 0 ? check<edgelm::q8_0>(g, rows, cols, n, r0, r1, why) : check<edgelm::q4_0>(g, rows, cols, n, r0, r1, why);
            ++cases;
            if (!ok) {
              if (!failed++) {
                char buf[128];
                std::snprintf(buf, sizeof buf, "%s rows %zu cols %zu n %zu [%u, %u): ", prec == 0 ? "q8_0" : "q4_0", rows, cols, n, r0, r1);
                first = buf + why;
              }
            }
          }
  // activation quantization: backends::wasm::quantize_q8_0 vs q8_0::quantize_row, byte for byte (lengths around
  // the four-block step and the zero-padded last block; blocks of zeros, of huge values, one holding an inf)
  for (const std::size_t len : {1u, 31u, 32u, 33u, 96u, 100u, 127u, 128u, 129u, 160u, 576u, 1536u, 1573u}) {
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> xf(len);
      for (std::size_t e = 0; e < len; ++e) xf[e] = g.uniform(-3.0f, 3.0f) * (e / 32 % 3 == 1 ? 1e30f : 1.0f);
      if (variant == 1)
        for (std::size_t e = 0; e < len && e < 32; ++e) xf[e] = 0.0f;
      if (variant == 2) xf[len / 2] = 1.0f / 0.0f;
      const std::size_t nb = (len + 31) / 32;
      std::vector<edgelm::block_q8_0> want(nb), got(nb);
      edgelm::q8_0::quantize_row(xf.data(), want.data(), len);
      edgelm::backends::wasm::quantize_q8_0(xf.data(), got.data(), len);
      ++cases;
      if (std::memcmp(want.data(), got.data(), nb * sizeof(edgelm::block_q8_0)) != 0 && !failed++)
        first = "quantize_q8_0 of " + std::to_string(len) + " floats (variant " + std::to_string(variant) + ") differs from q8_0::quantize_row";
    }
  }
#if defined(EDGELM_WASM_DOT_ADD)
  const int kind = edgelm::backends::wasm::detail::dot_add_kind();
#else
  const int kind = -1;
#endif
  std::string quoted;  // first, as a JSON string
  for (const char c : first) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  char head[128];
  std::snprintf(head, sizeof head, "{\"cases\":%u,\"failed\":%u,\"dotAddKind\":%d,\"isa\":\"%s\",\"first\":\"", cases, failed, kind,
                edgelm::backends::wasm::isa_name());
  const std::string json = head + quoted + "\"}";
  EM_ASM(window.kernels = JSON.parse(UTF8ToString($0)), json.c_str());
  return 0;
}
