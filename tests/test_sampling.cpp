// Tests of include/edgelm/sampling: each filter's effect on a known distribution.
#include <doctest/doctest.h>

#include <edgelm/edgelm.hpp>
#include <map>
#include <vector>

using namespace edgelm;

namespace {
std::map<int, int> histogram(sampling_options o, const std::vector<float>& logits, int draws, std::vector<std::int32_t> history = {}) {
  sampler s(o);
  std::map<int, int> h;
  for (int i = 0; i < draws; ++i) {
    auto l = logits;
    ++h[s.sample(l, history)];
  }
  return h;
}
}  // namespace

TEST_CASE("greedy picks the first maximum, as llama2.c's argmax") {
  sampling_options o;
  o.temperature = 0;
  sampler s(o);
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  CHECK(s.sample(l, {}) == 1);
}

TEST_CASE("top-k keeps only the k most likely tokens") {
  sampling_options o;
  o.temperature = 1.0f;
  o.top_k = 2;
  const auto h = histogram(o, {1.0f, 4.0f, 3.9f, 0.0f, 3.8f}, 2000);
  CHECK(h.size() == 2);
  CHECK(h.count(1) == 1);
  CHECK(h.count(2) == 1);
}

TEST_CASE("top-p keeps the smallest set reaching p") {
  sampling_options o;
  o.temperature = 1.0f;
  o.top_p = 0.5f;
  // probabilities ~ 0.64, 0.24, 0.09, 0.03: top-p 0.5 keeps token 0 only
  const auto h = histogram(o, {3.0f, 2.0f, 1.0f, 0.0f}, 1000);
  CHECK(h.size() == 1);
  CHECK(h.begin()->first == 0);
}

TEST_CASE("min-p drops tokens below min_p * p_max") {
  sampling_options o;
  o.temperature = 1.0f;
  o.min_p = 0.2f;
  // p ratios to max: 1, e^-1=0.37, e^-2=0.14, e^-3=0.05 -> keeps tokens 0 and 1
  const auto h = histogram(o, {3.0f, 2.0f, 1.0f, 0.0f}, 3000);
  CHECK(h.size() == 2);
  CHECK(h.count(0) == 1);
  CHECK(h.count(1) == 1);
}

TEST_CASE("temperature sharpens and flattens; frequencies follow softmax") {
  sampling_options o;
  o.temperature = 1.0f;
  o.seed = 5;
  const auto h = histogram(o, {0.0f, std::log(3.0f)}, 40000);  // p = 0.25, 0.75
  CHECK(h.at(1) / 40000.0 == doctest::Approx(0.75).epsilon(0.03));
  o.temperature = 0.01f;
  const auto cold = histogram(o, {0.0f, 0.5f}, 500);
  CHECK(cold.size() == 1);
}

TEST_CASE("repetition penalty follows llama.cpp's rule") {
  sampling_options o;
  o.temperature = 0;
  o.repeat_penalty = 2.0f;
  sampler s(o);
  std::vector<float> l = {1.5f, 1.0f, -1.0f};
  std::vector<std::int32_t> hist = {0};
  CHECK(s.sample(l, hist) == 1);  // 1.5 / 2 = 0.75 < 1.0
  CHECK(l[0] == 0.75f);
  std::vector<float> neg = {-1.0f, -1.5f};
  std::vector<std::int32_t> hist2 = {0};
  CHECK(s.sample(neg, hist2) == 1);  // -1 * 2 = -2 < -1.5
}

TEST_CASE("the same seed gives the same sequence") {
  sampling_options o;
  o.temperature = 1.0f;
  o.seed = 1234;
  sampler a(o), b(o);
  std::vector<float> base = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.0f, -0.3f};
  for (int i = 0; i < 100; ++i) {
    auto x = base, y = base;
    REQUIRE(a.sample(x, {}) == b.sample(y, {}));
  }
  CHECK(validate(o));
  o.top_p = 1.5f;
  CHECK_FALSE(validate(o));
}
