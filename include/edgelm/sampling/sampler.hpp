// edgelm/sampling/sampler.hpp - greedy, temperature, top-k, top-p, min-p, repetition / presence /
// frequency penalties, logit bias and a constraint hook, with a seeded generator: the same seed, options
// and logits give the same tokens on every platform.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <span>
#include <vector>

#include "../core/result.hpp"

namespace edgelm {

// The sampler is a chain, applied in this order to a copy of the logits:
//   penalties (repetition, presence, frequency over the last repeat_last_n tokens) -> logit bias ->
//   constraint hook -> temperature -> truncation (top-k, then min-p, then top-p) -> draw.
// Nothing sorts the whole vocabulary: top-k selects k (nth_element), min-p is a threshold, top-p sorts a
// growing prefix (64, 256, ... candidates) until it holds the wanted mass.
struct sampling_options {
  float temperature = 0.8f;     // <= 0: greedy (argmax after penalties, bias and constraint)
  std::uint32_t top_k = 0;      // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off; drop tokens with p < min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; llama.cpp's rule over the last repeat_last_n tokens
  float presence_penalty = 0.0f;   // 0: off; minus this once for every token seen in the window
  float frequency_penalty = 0.0f;  // 0: off; minus this times the token's count in the window
  std::uint32_t repeat_last_n = 64;
  std::vector<std::pair<std::int32_t, float>> logit_bias;  // added to a token's logit (-infinity bans it)
  // Constraint hook (grammars, allowed-token lists): called with the logits after penalties and bias and
  // the tokens so far; it may lower any logit (-infinity forbids the token). null: none.
  void (*constrain)(void* user, std::span<float> logits, std::span<const std::int32_t> history) noexcept = nullptr;
  void* constrain_user = nullptr;
  std::uint64_t seed = 0;       // generator seed
};

inline result<void> validate(const sampling_options& o) {
  if (!std::isfinite(o.temperature)) return make_error(errc::invalid_argument, "temperature must be finite");
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return make_error(errc::invalid_argument, "top-p must be in (0, 1]");
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) return make_error(errc::invalid_argument, "min-p must be in [0, 1]");
  if (!(o.repeat_penalty > 0.0f) || !std::isfinite(o.repeat_penalty)) return make_error(errc::invalid_argument, "repeat penalty must be positive");
  if (!std::isfinite(o.presence_penalty) || !std::isfinite(o.frequency_penalty))
    return make_error(errc::invalid_argument, "presence and frequency penalties must be finite");
  for (const auto& [t, b] : o.logit_bias)
    if (t < 0 || std::isnan(b) || b == std::numeric_limits<float>::infinity())
      return make_error(errc::invalid_argument, "logit bias needs a token id >= 0 and a finite value (or -infinity to ban)");
  return {};
}

// The same, also checking the logit-bias token ids against a vocabulary of `vocab` tokens.
inline result<void> validate(const sampling_options& o, std::size_t vocab) {
  auto r = validate(o);
  if (!r) return r;
  for (const auto& [t, b] : o.logit_bias)
    if (static_cast<std::size_t>(t) >= vocab)
      return make_error(errc::invalid_argument, "logit bias for token " + std::to_string(t) + " outside the vocabulary of " + std::to_string(vocab));
  return {};
}

// xoshiro-style 64-bit generator (splitmix64 seeding + xorshift64*): tiny, fast, portable.
class rng {
 public:
  explicit rng(std::uint64_t seed = 0) noexcept {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    state_ = (z ^ (z >> 31)) | 1u;
  }
  std::uint64_t next() noexcept {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  // uniform in [0, 1)
  float uniform() noexcept { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

 private:
  std::uint64_t state_;
};

// Index of the largest value; the first one on ties (as llama2.c's argmax).
inline std::int32_t argmax(std::span<const float> v) noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<std::int32_t>(best);
}

class sampler {
 public:
  sampler() = default;
  explicit sampler(const sampling_options& o) : o_(o), rng_(o.seed) {}

  const sampling_options& options() const noexcept { return o_; }

  // Choose the next token. `logits` is modified (penalties, bias, constraint, temperature). `history` are
  // the tokens so far.
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history) {
    const std::size_t n = logits.size();
    penalize(logits, history);
    for (const auto& [t, b] : o_.logit_bias)
      if (t >= 0 && static_cast<std::size_t>(t) < n) logits[static_cast<std::size_t>(t)] += b;
    if (o_.constrain) o_.constrain(o_.constrain_user, logits, history);
    if (o_.temperature <= 0.0f) return argmax(logits);

    // softmax at temperature T (unnormalised: p = exp((l - max) / T); a banned token has p = 0)
    float mx = logits[0];
    for (float v : logits) mx = std::max(mx, v);
    if (!(mx > -std::numeric_limits<float>::infinity())) return argmax(logits);  // everything banned (or NaN)
    cand_.resize(n);
    for (std::size_t i = 0; i < n; ++i) cand_[i] = {std::exp((logits[i] - mx) / o_.temperature), static_cast<std::int32_t>(i)};
    auto by_prob = [](const cand& a, const cand& b) { return a.p != b.p ? a.p > b.p : a.id < b.id; };
    std::size_t keep = n;
    bool sorted = false;  // cand_[0, keep) in by_prob order
    if (o_.top_k > 0 && o_.top_k < n) {
      keep = o_.top_k;
      std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep - 1), cand_.end(), by_prob);
      std::sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep), by_prob);
      sorted = true;
    }
    if (o_.min_p > 0.0f) {  // a threshold: keeps the order
      float pmax = 0.0f;
      for (std::size_t i = 0; i < keep; ++i) pmax = std::max(pmax, cand_[i].p);
      const float floor = o_.min_p * pmax;
      std::size_t k = 0;
      for (std::size_t i = 0; i < keep; ++i)
        if (cand_[i].p >= floor) cand_[k++] = cand_[i];
      keep = k;
    }
    if (o_.top_p < 1.0f && keep > 1) {
      float total = 0.0f;
      for (std::size_t i = 0; i < keep; ++i) total += cand_[i].p;
      const float want = o_.top_p * total;
      // sort a growing prefix until it holds the wanted mass (the tail is never sorted)
      std::size_t m = sorted ? keep : std::min<std::size_t>(keep, 64);
      for (;;) {
        if (!sorted)
          std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(m), cand_.begin() + static_cast<std::ptrdiff_t>(keep), by_prob);
        float cum = 0.0f;
        std::size_t k = 0;
        while (k < m) {
          cum += cand_[k].p;
          ++k;
          if (cum >= want) break;
        }
        if (cum >= want || m == keep) {
          keep = k;
          break;
        }
        m = std::min(keep, m * 4);
      }
    }
    float sum = 0.0f;
    for (std::size_t i = 0; i < keep; ++i) sum += cand_[i].p;
    const float r = rng_.uniform() * sum;
    float cdf = 0.0f;
    for (std::size_t i = 0; i < keep; ++i) {
      cdf += cand_[i].p;
      if (r < cdf) return cand_[i].id;
    }
    // rounding: the last candidate with any probability
    for (std::size_t i = keep; i-- > 0;)
      if (cand_[i].p > 0.0f) return cand_[i].id;
    return cand_[0].id;
  }

 private:
  struct cand {
    float p;
    std::int32_t id;
  };
  // Repetition (llama.cpp's rule), presence and frequency penalties over the last repeat_last_n tokens.
  void penalize(std::span<float> logits, std::span<const std::int32_t> history) {
    const bool rep = o_.repeat_penalty != 1.0f, pf = o_.presence_penalty != 0.0f || o_.frequency_penalty != 0.0f;
    if ((!rep && !pf) || history.empty()) return;
    const std::size_t n = logits.size();
    const std::size_t from = history.size() > o_.repeat_last_n ? history.size() - o_.repeat_last_n : 0;
    counts_.assign(n, 0);
    for (std::size_t i = from; i < history.size(); ++i) {
      const auto t = history[i];
      if (t >= 0 && static_cast<std::size_t>(t) < n) ++counts_[static_cast<std::size_t>(t)];
    }
    for (std::size_t i = from; i < history.size(); ++i) {
      const auto t = history[i];
      if (t < 0 || static_cast<std::size_t>(t) >= n) continue;
      std::uint32_t& c = counts_[static_cast<std::size_t>(t)];
      if (c == 0) continue;  // done already
      float& l = logits[static_cast<std::size_t>(t)];
      if (rep) l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
      if (pf) l -= o_.presence_penalty + o_.frequency_penalty * static_cast<float>(c);
      c = 0;
    }
  }

  sampling_options o_;
  rng rng_;
  std::vector<cand> cand_;
  std::vector<std::uint32_t> counts_;
};

}  // namespace edgelm
