// Tests of the f32 Llama transformer, the session and the Highway kernel seam against llama2.c's
// run.c reference outputs (../shared/models/golden: greedy text, token ids and logits from run.c).
#include <doctest/doctest.h>

#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace edgelm;
using hwy_kernels = backends::highway::kernels;

namespace {

std::vector<int> golden_ids(const std::string& file, const std::string& key) {
  std::ifstream f(file);
  std::string line;
  std::vector<int> v;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) {
      std::istringstream is(line.substr(key.size()));
      int x;
      while (is >> x) v.push_back(x);
    }
  return v;
}

template <class K>
model<f32, K> load_bin() {
  auto fs = file_storage::open(edgelm_test::shared_models_dir() + "/stories260K.bin");
  auto ts = file_storage::open(edgelm_test::shared_models_dir() + "/tok512.bin");
  REQUIRE(fs);
  REQUIRE(ts);
  auto m = load<f32, K>(std::move(*fs), *ts);
  REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
  return std::move(*m);
}
template <class K>
model<f32, K> load_gguf() {
  auto fs = file_storage::open(edgelm_test::shared_models_dir() + "/stories260K.gguf");
  REQUIRE(fs);
  auto m = load<f32, K>(std::move(*fs));
  REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
  return std::move(*m);
}

// Greedy generation via step(): prompt ids, then argmax tokens until n_positions (run.c's -n).
template <class M>
std::vector<int> greedy(const M& m, const std::vector<int>& prompt, std::size_t n_positions) {
  auto s = session<M>::create(m);
  REQUIRE(s);
  std::vector<tokenizer::token> p(prompt.begin(), prompt.end());
  REQUIRE(s->set_tokens(p));
  sampling_options o;
  o.temperature = 0;
  s->reset_sampler(o);
  std::vector<int> out;
  while (prompt.size() + out.size() < n_positions + 1) {
    auto r = s->step();
    REQUIRE(r);
    if (r->done && (r->token == 1 || r->token == 2)) break;
    out.push_back(r->token);
  }
  return out;
}

const char* cases[] = {"once_upon_a_time_n200", "lily_and_tom_n200", "the_little_dog_n200", "empty_prompt_n200"};

}  // namespace

TEST_CASE_TEMPLATE("greedy generation equals run.c's token ids (llama2.c .bin and GGUF)", K, kernels::scalar, hwy_kernels) {
  EDGELM_SHARED_FILE(bin, "stories260K.bin");
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  const auto mb = load_bin<K>();
  const auto mg = load_gguf<K>();
  for (const char* c : cases) {
    const std::string f = edgelm_test::shared_models_dir() + "/golden/" + c + ".ids.txt";
    const auto prompt = golden_ids(f, "prompt_ids:");
    const auto want = golden_ids(f, "generated_ids:");
    REQUIRE_FALSE(want.empty());
    CHECK_MESSAGE(greedy(mb, prompt, 200) == want, c);
    CHECK_MESSAGE(greedy(mg, prompt, 200) == want, c);
  }
}

TEST_CASE_TEMPLATE("logits at positions 0..3 match run.c within 1e-4", K, kernels::scalar, hwy_kernels) {
  EDGELM_SHARED_FILE(bin, "stories260K.bin");
  const auto m = load_bin<K>();
  std::ifstream f(edgelm_test::shared_models_dir() + "/golden/once_upon_a_time_logits_pos0-3.txt");
  std::string line;
  std::vector<std::vector<float>> want;
  while (std::getline(f, line)) {
    std::istringstream is(line.substr(line.find(':') + 1));
    std::vector<float> v;
    float x;
    while (is >> x) v.push_back(x);
    want.push_back(v);
  }
  REQUIRE(want.size() == 4);
  auto st = m.net.make_state();
  REQUIRE(st);
  const int ids[] = {1, 403, 407, 261};
  for (std::uint32_t pos = 0; pos < 4; ++pos) {
    auto logits = m.net.forward(*st, ids[pos], pos);
    REQUIRE(logits.size() == want[pos].size());
    float worst = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::abs(logits[i] - want[pos][i]));
    CHECK(worst <= 1e-4f);
  }
}

TEST_CASE("Highway kernels agree with the scalar oracle within a named tolerance") {
  // Named tolerance: SIMD reorders float sums; for unit-scale inputs of length n the difference is
  // bounded by a few ulps times n.
  constexpr float rel_tol = 1e-5f;
  std::uint32_t s = 1;
  auto rnd = [&] { s = s * 1664525u + 1013904223u; return static_cast<float>(static_cast<std::int32_t>(s)) / 2147483648.0f; };
  for (std::size_t n : {1u, 3u, 7u, 8u, 15u, 16u, 17u, 64u, 100u, 172u, 1000u}) {
    std::vector<float> a(n), b(n), w(n), o1(n), o2(n);
    for (std::size_t i = 0; i < n; ++i) { a[i] = rnd(); b[i] = rnd(); w[i] = rnd(); }
    const float ds = kernels::scalar::dot(a.data(), b.data(), n);
    const float dh = hwy_kernels::dot(a.data(), b.data(), n);
    float mag = 0;
    for (std::size_t i = 0; i < n; ++i) mag += std::abs(a[i] * b[i]);
    CHECK(std::abs(ds - dh) <= rel_tol * mag + 1e-7f);
    kernels::scalar::rmsnorm(o1.data(), a.data(), w.data(), n, 1e-5f);
    hwy_kernels::rmsnorm(o2.data(), a.data(), w.data(), n, 1e-5f);
    for (std::size_t i = 0; i < n; ++i) CHECK(std::abs(o1[i] - o2[i]) <= rel_tol * (1 + std::abs(o1[i])));
  }
  CHECK(std::string(hwy_kernels::target()).size() > 0);
}

TEST_CASE("session: generate streams pieces, stops on request, prompts longer than the context fail") {
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  const auto m = load_gguf<kernels::scalar>();
  auto s = session<model<f32>>::create(m, {.context = 64});
  REQUIRE(s);
  std::string text;
  generate_options o;
  o.max_tokens = 20;
  o.temperature = 0;
  auto st = s->generate("Once upon a time", o, [&](std::string_view p) { text += p; return true; });
  REQUIRE(st);
  CHECK(st->prompt_tokens == 5);
  CHECK(st->generated_tokens == 20);
  // The golden text continues "Once upon a time" with ", there was a little girl named Lily."
  CHECK(text.rfind(", there was a little girl named Lily.", 0) == 0);

  // Same prompt again: the prefix is reused from the KV cache and the output is identical.
  std::string again;
  auto st2 = s->generate("Once upon a time", o, [&](std::string_view p) { again += p; return true; });
  REQUIRE(st2);
  CHECK(st2->reused_tokens == 4);
  CHECK(again == text);

  int pieces = 0;
  auto st3 = s->generate("Once upon a time", o, [&](std::string_view) { return ++pieces < 3; });
  REQUIRE(st3);
  CHECK(pieces == 3);

  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += " the cat";
  auto over = s->generate(long_prompt, o, [](std::string_view) { return true; });
  REQUIRE_FALSE(over);
  CHECK(over.error().code == errc::context_overflow);

  // Generation stops when the context is full (64 positions).
  generate_options big = o;
  big.max_tokens = 1000;
  auto full = s->generate("Once upon a time", big, [](std::string_view) { return true; });
  REQUIRE(full);
  CHECK(full->generated_tokens == 64 - 5 + 1);

  auto bad_ctx = session<model<f32>>::create(m, {.context = 100000});
  CHECK_FALSE(bad_ctx);
}

TEST_CASE("sampling is seeded and reproducible; options are validated") {
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  const auto m = load_gguf<kernels::scalar>();
  auto s = session<model<f32>>::create(m);
  REQUIRE(s);
  auto run = [&](generate_options o) {
    std::string t;
    auto r = s->generate("Lily", o, [&](std::string_view p) { t += p; return true; });
    REQUIRE(r);
    return t;
  };
  generate_options o;
  o.max_tokens = 40;
  o.temperature = 0.9f;
  o.top_p = 0.9f;
  o.top_k = 40;
  o.min_p = 0.05f;
  o.repeat_penalty = 1.1f;
  o.seed = 42;
  const auto a = run(o), b = run(o);
  CHECK(a == b);
  o.seed = 43;
  CHECK(run(o) != a);
  generate_options bad;
  bad.top_p = 0;
  CHECK_FALSE(s->generate("x", bad, [](std::string_view) { return true; }));
}
