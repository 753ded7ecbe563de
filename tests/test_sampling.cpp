// Tests of include/edgelm/sampling: each filter's effect on a known distribution.
#include <doctest/doctest.h>

#include <edgelm/edgelm.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
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

TEST_CASE("presence and frequency penalties subtract per seen token and per occurrence (OpenAI's rule)") {
  sampling_options o;
  o.temperature = 0;
  o.presence_penalty = 0.5f;
  o.frequency_penalty = 0.25f;
  sampler s(o);
  std::vector<float> l = {2.0f, 1.9f, 1.0f};
  const std::vector<std::int32_t> hist = {0, 0, 2};
  CHECK(s.sample(l, hist) == 1);
  CHECK(l[0] == doctest::Approx(2.0f - 0.5f - 0.25f * 2));
  CHECK(l[1] == 1.9f);
  CHECK(l[2] == doctest::Approx(1.0f - 0.5f - 0.25f));
}

TEST_CASE("logit bias and the constraint hook come before temperature and truncation") {
  sampling_options o;
  o.temperature = 0;
  o.logit_bias = {{1, -std::numeric_limits<float>::infinity()}, {2, 3.0f}};
  sampler s(o);
  std::vector<float> l = {1.0f, 5.0f, 2.5f};
  CHECK(s.sample(l, {}) == 2);  // 1 banned, 2 raised to 5.5
  // a hook that allows only even ids
  sampling_options c;
  c.temperature = 1.0f;
  c.constrain = [](void*, std::span<float> lg, std::span<const std::int32_t>) noexcept {
    for (std::size_t i = 1; i < lg.size(); i += 2) lg[i] = -std::numeric_limits<float>::infinity();
  };
  const auto h = histogram(c, {0.0f, 9.0f, 0.0f, 9.0f, 1.0f}, 3000);
  for (const auto& kv : h) CHECK(kv.first % 2 == 0);
  CHECK(h.size() == 3);
  // everything banned: a defined answer, not NaN arithmetic
  sampling_options all;
  all.temperature = 1.0f;
  all.constrain = [](void*, std::span<float> lg, std::span<const std::int32_t>) noexcept {
    for (auto& v : lg) v = -std::numeric_limits<float>::infinity();
  };
  sampler sa(all);
  std::vector<float> l2 = {1.0f, 2.0f};
  const auto t = sa.sample(l2, {});
  CHECK((t == 0 || t == 1));
  // bad options are rejected
  sampling_options bad;
  bad.logit_bias = {{-1, 1.0f}};
  CHECK_FALSE(validate(bad));
  bad.logit_bias = {{3, std::numeric_limits<float>::quiet_NaN()}};
  CHECK_FALSE(validate(bad));
  bad.logit_bias = {{3, 1.0f}};
  CHECK(validate(bad));
  CHECK_FALSE(validate(bad, 3));
  CHECK(validate(bad, 4));
}

// The kept set of top-p on a large vocabulary equals a full sort's (written here, independently): the
// sampler sorts only a growing prefix.
TEST_CASE("top-p on a 50k vocabulary keeps exactly the full-sort nucleus") {
  std::vector<float> logits(50000);
  std::uint64_t z = 12345;
  for (auto& v : logits) {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(static_cast<double>(z >> 11) / 9007199254740992.0) * 12.0f;
  }
  for (float p : {0.05f, 0.5f, 0.9f}) {
    // reference nucleus: probabilities at T = 1, sorted descending (ties by id), smallest prefix >= p
    double mx = *std::max_element(logits.begin(), logits.end()), total = 0;
    std::vector<std::pair<double, int>> ps;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      ps.emplace_back(std::exp(double(logits[i]) - mx), static_cast<int>(i));
      total += ps.back().first;
    }
    std::sort(ps.begin(), ps.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    std::set<int> nucleus;
    double cum = 0;
    for (auto& [q, id] : ps) {
      nucleus.insert(id);
      cum += q;
      if (cum >= p * total) break;
    }
    sampling_options o;
    o.temperature = 1.0f;
    o.top_p = p;
    o.seed = 3;
    const auto h = histogram(o, logits, 1000);  // (each draw samples a 50k vocabulary: 1000 keep the suite fast under ASan and wasm)
    bool inside = true;
    for (const auto& [id, n] : h) inside = inside && nucleus.count(id) == 1;
    CHECK_MESSAGE(inside, "top-p " << p << ": a sampled token outside the nucleus of " << nucleus.size());
    if (nucleus.size() > 1) CHECK(h.size() > 1);
  }
}
