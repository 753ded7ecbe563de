// tests/test_perplexity.cpp - perplexity.hpp: llama-perplexity's method (chunks, BOS per chunk, second
// half scored, standard error) on mock models with known answers, and on stories260K against numbers
// measured with llama.cpp's own llama-perplexity on the same GGUF files and text.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>
#include <edgelm/perplexity.hpp>
#include <edgelm/quantize.hpp>

#include "test_util.hpp"

namespace {

// A model with a fixed rule for its logits, recording what it was fed. mode 0: uniform logits;
// mode 1: next token = (token + 1) % vocab with probability p (the rest spread evenly).
struct mock_model {
  struct state {
    std::vector<float> logits;  // (max_batch, vocab)
    std::uint32_t max_batch = 1;
  };
  struct net_type {
    std::uint32_t vocab = 16;
    int mode = 0;
    double p = 0.5;
    mutable std::vector<std::pair<std::int32_t, std::uint32_t>> fed;  // (token, pos)
    edgelm::result<state> make_state(const edgelm::state_options& o) const {
      return state{std::vector<float>(std::size_t{vocab} * o.max_batch), o.max_batch};
    }
    std::span<const float> forward(state& s, std::span<const std::int32_t> toks, std::uint32_t pos, edgelm::logits_for which) const {
      for (std::size_t t = 0; t < toks.size(); ++t) {
        const std::int32_t tok = toks[t];
        fed.emplace_back(tok, pos + static_cast<std::uint32_t>(t));
        float* l = s.logits.data() + t * vocab;
        if (mode == 0) {
          for (std::uint32_t i = 0; i < vocab; ++i) l[i] = 0.25f;
        } else {
          const double rest = (1.0 - p) / (vocab - 1);
          for (std::uint32_t i = 0; i < vocab; ++i) l[i] = static_cast<float>(std::log(rest));
          l[static_cast<std::uint32_t>(tok + 1) % vocab] = static_cast<float>(std::log(p));
        }
      }
      if (which == edgelm::logits_for::none) return {};
      if (which == edgelm::logits_for::last) return std::span<const float>(s.logits).subspan((toks.size() - 1) * vocab, vocab);
      return std::span<const float>(s.logits).first(toks.size() * vocab);
    }
  } net;
  struct tok_type {
    bool bos_first = true;
    bool add_bos() const { return bos_first; }
    std::int32_t bos_id() const { return 1; }
  } tok;
  edgelm::model_config cfg;
  const edgelm::model_config& config() const { return cfg; }
  mock_model() { cfg.vocab_size = net.vocab; cfg.seq_len = 1024; }
};

std::vector<std::int32_t> counting(std::size_t n, std::uint32_t vocab) {
  std::vector<std::int32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::int32_t>((i + 5) % vocab);
  return v;
}

}  // namespace

TEST_CASE("perplexity: uniform logits give the vocabulary size, with no spread") {
  mock_model m;
  const auto toks = counting(100, m.net.vocab);
  auto r = edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = 16, .max_chunks = 0});
  REQUIRE(r);
  CHECK(r->n_chunks == 6);                 // 100 / 16
  CHECK(r->count == 6 * (16 - 8 - 1));      // positions first..n_ctx-2 of every chunk
  CHECK(r->ppl == doctest::Approx(16.0).epsilon(1e-6));
  CHECK(r->ppl_stderr < 1e-5);             // every token has the same NLL (rounding leaves ~1e-7)
  REQUIRE(r->running.size() == 6);
  for (double x : r->running) CHECK(x == doctest::Approx(16.0).epsilon(1e-6));
}

TEST_CASE("perplexity: chunking, BOS per chunk, only the second half scored") {
  mock_model m;
  m.net.mode = 1;
  m.net.p = 0.9;
  const std::uint32_t n_ctx = 10;
  // A sequence that follows the mock's rule except at every position k % 7 == 3 (jump by 2 instead).
  std::vector<std::int32_t> toks{1};
  for (std::size_t i = 1; i < 57; ++i) toks.push_back((toks.back() + (i % 7 == 3 ? 2 : 1)) % static_cast<std::int32_t>(m.net.vocab));
  auto r = edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = n_ctx, .max_chunks = 4});
  REQUIRE(r);
  CHECK(r->n_chunks == 4);  // min(--chunks 4, 57 / 10 = 5)
  // Positions fed: 0..n_ctx-2 per chunk (the last token is only a target), BOS at position 0.
  REQUIRE(m.net.fed.size() == 4 * (n_ctx - 1));
  for (std::size_t c = 0; c < 4; ++c)
    for (std::uint32_t p = 0; p + 1 < n_ctx; ++p) {
      const auto& [tok, pos] = m.net.fed[c * (n_ctx - 1) + p];
      CHECK(pos == p);
      CHECK(tok == (p == 0 ? 1 : toks[c * n_ctx + p]));
    }
  // Expected NLL by hand: targets first+1..n_ctx-1 of each chunk, predicted from the (real) previous token.
  const double hit = -std::log(0.9), miss = -std::log(0.1 / 15);
  double nll = 0, nll2 = 0;
  std::uint64_t count = 0;
  std::vector<double> running;
  for (std::size_t c = 0; c < 4; ++c) {
    for (std::uint32_t j = n_ctx / 2; j + 1 < n_ctx; ++j) {
      const std::size_t i = c * n_ctx + j;
      const double v = (toks[i + 1] == (toks[i] + 1) % 16) ? hit : miss;
      nll += v;
      nll2 += v * v;
      ++count;
    }
    running.push_back(std::exp(nll / count));
  }
  CHECK(r->count == count);
  CHECK(r->nll == doctest::Approx(nll).epsilon(1e-5));
  for (std::size_t c = 0; c < 4; ++c) CHECK(r->running[c] == doctest::Approx(running[c]).epsilon(1e-5));
  const double mean = nll / count, var = nll2 / count - mean * mean;
  CHECK(r->ppl == doctest::Approx(std::exp(mean)).epsilon(1e-5));
  CHECK(r->ppl_stderr == doctest::Approx(std::sqrt(var / (count - 1)) * std::exp(mean)).epsilon(1e-4));

  // Without add_bos the chunk's own first token is fed.
  m.net.fed.clear();
  m.tok.bos_first = false;
  auto r2 = edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = n_ctx, .max_chunks = 2});
  REQUIRE(r2);
  CHECK(m.net.fed[n_ctx - 1].first == toks[n_ctx]);

  // on_chunk can stop early.
  std::uint32_t calls = 0;
  auto r3 = edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = n_ctx}, [&](std::uint32_t, double) { return ++calls < 2; });
  REQUIRE(r3);
  CHECK(r3->n_chunks == 2);
  CHECK(r3->count == 2 * (n_ctx - n_ctx / 2 - 1));
}

TEST_CASE("perplexity: bad arguments") {
  mock_model m;
  const auto toks = counting(40, m.net.vocab);
  auto code = [](const auto& r) { return r ? edgelm::errc::ok : r.error().code; };
  CHECK(code(edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = 21})) == edgelm::errc::invalid_argument);  // < 2 * n_ctx tokens
  CHECK(code(edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = 3})) == edgelm::errc::invalid_argument);
  auto bad = toks;
  bad[7] = 16;
  CHECK(code(edgelm::perplexity(m, std::span<const std::int32_t>(bad), {.context = 8})) == edgelm::errc::invalid_argument);
  CHECK(code(edgelm::perplexity(m, std::span<const std::int32_t>(toks), {.context = 20})) == edgelm::errc::ok);
}

// Reference numbers: llama.cpp's llama-perplexity (node-llama-cpp 3.21.1's bundled llama.cpp, release
// "v0.4.0", commit 80fb11a; built AVX2, -DGGML_NATIVE=OFF; -t 1) on the same files and text:
//   llama-perplexity -m stories260K.gguf -f tests/data/stories_heldout.txt -c 128 --chunks 8
//   llama-perplexity -m <edgelm quantize stories260K.gguf --type q8_0> -f ... -c 128 --chunks 8
// (tools/compare_llamacpp.sh; the full runs are in docs/QUANTIZATION.md).
namespace {
constexpr double llama_ppl_f32_ctx128_chunks8 = 4.5265;  // "Final estimate: PPL = 4.5265 +/- 0.35749"
constexpr double llama_ppl_q8_0_ctx128_chunks8 = 4.5364; // "Final estimate: PPL = 4.5364 +/- 0.35944"

std::string heldout_text() {
  const auto bytes = edgelm_test::read_all(edgelm_test::source_dir() + "/tests/data/stories_heldout.txt");
  return std::string(bytes.begin(), bytes.end());
}
}  // namespace

TEST_CASE("perplexity: stories260K F32 on the held-out stories, as llama-perplexity") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  const std::string text = heldout_text();
  REQUIRE(text.size() > 10000);
  auto fs = edgelm::file_storage::open(path);
  REQUIRE(fs);
  auto m = edgelm::load<edgelm::f32, edgelm::backends::highway::kernels>(std::move(*fs));
  REQUIRE(m);
  auto r = edgelm::perplexity(*m, text, {.context = 128, .max_chunks = 8});
  REQUIRE_MESSAGE(r, (r ? "" : r.error().message()));
  CHECK(r->n_chunks == 8);
  CHECK(r->count == 8 * 63);
  MESSAGE("edgelm F32 PPL " << r->ppl << " +/- " << r->ppl_stderr << ", llama-perplexity " << llama_ppl_f32_ctx128_chunks8);
  CHECK(std::fabs(r->ppl / llama_ppl_f32_ctx128_chunks8 - 1.0) < 0.01);  // the bar: within 1%
  CHECK(std::fabs(r->ppl / llama_ppl_f32_ctx128_chunks8 - 1.0) < 0.001); // what it actually reaches

  // The scalar reference kernels agree with the SIMD ones.
  auto fs2 = edgelm::file_storage::open(path);
  REQUIRE(fs2);
  auto ms = edgelm::load<edgelm::f32, edgelm::kernels::scalar>(std::move(*fs2));
  REQUIRE(ms);
  auto rs = edgelm::perplexity(*ms, text, {.context = 128, .max_chunks = 8});
  REQUIRE(rs);
  CHECK(rs->ppl == doctest::Approx(r->ppl).epsilon(1e-4));
}

TEST_CASE("perplexity: stories260K Q8_0 (edgelm quantize) in q8_0, as llama-perplexity on the same file") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  const std::string text = heldout_text();
  auto fs = edgelm::file_storage::open(path);
  REQUIRE(fs);
  auto mf = edgelm::read_model_file(std::move(*fs));
  REQUIRE(mf);
  edgelm::quantize_options qo;
  qo.type = edgelm::ggml_type::q8_0;
  auto bytes = edgelm::quantize_model_to_bytes(*mf, qo);
  REQUIRE(bytes);
  auto m = edgelm::load<edgelm::q8_0, edgelm::backends::highway::kernels>(edgelm::memory_storage(std::move(*bytes)));
  REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
  auto r = edgelm::perplexity(*m, text, {.context = 128, .max_chunks = 8});
  REQUIRE(r);
  MESSAGE("edgelm Q8_0 PPL " << r->ppl << " +/- " << r->ppl_stderr << ", llama-perplexity " << llama_ppl_q8_0_ctx128_chunks8);
  CHECK(std::fabs(r->ppl / llama_ppl_q8_0_ctx128_chunks8 - 1.0) < 0.01);
}
