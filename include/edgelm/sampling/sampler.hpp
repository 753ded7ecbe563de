// edgelm/sampling/sampler.hpp - greedy, temperature, top-k, top-p, min-p and repetition penalty with a
// seeded generator: the same seed, options and logits give the same tokens on every platform.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/result.hpp"

namespace edgelm {

struct sampling_options {
  float temperature = 0.8f;     // <= 0: greedy (argmax)
  std::uint32_t top_k = 0;      // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off; drop tokens with p < min_p * p_max
  float repeat_penalty = 1.0f;  // 1: off; llama.cpp's rule over the last repeat_last_n tokens
  std::uint32_t repeat_last_n = 64;
  std::uint64_t seed = 0;       // generator seed
};

inline result<void> validate(const sampling_options& o) {
  if (!std::isfinite(o.temperature)) return make_error(errc::invalid_argument, "temperature must be finite");
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return make_error(errc::invalid_argument, "top-p must be in (0, 1]");
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) return make_error(errc::invalid_argument, "min-p must be in [0, 1]");
  if (!(o.repeat_penalty > 0.0f) || !std::isfinite(o.repeat_penalty)) return make_error(errc::invalid_argument, "repeat penalty must be positive");
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

  // Choose the next token. `logits` is modified (penalties, temperature). `history` are the tokens so far.
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> history) {
    const std::size_t n = logits.size();
    if (o_.repeat_penalty != 1.0f && !history.empty()) {
      const std::size_t from = history.size() > o_.repeat_last_n ? history.size() - o_.repeat_last_n : 0;
      seen_.assign(n, 0);
      for (std::size_t i = from; i < history.size(); ++i) {
        const auto t = history[i];
        if (t < 0 || static_cast<std::size_t>(t) >= n || seen_[t]) continue;
        seen_[t] = 1;
        logits[t] = logits[t] > 0 ? logits[t] / o_.repeat_penalty : logits[t] * o_.repeat_penalty;
      }
    }
    if (o_.temperature <= 0.0f) return argmax(logits);

    // softmax at temperature T
    float mx = logits[0];
    for (float v : logits) mx = std::max(mx, v);
    cand_.resize(n);
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      const float p = std::exp((logits[i] - mx) / o_.temperature);
      cand_[i] = {p, static_cast<std::int32_t>(i)};
      sum += p;
    }
    auto by_prob = [](const cand& a, const cand& b) { return a.p != b.p ? a.p > b.p : a.id < b.id; };
    std::size_t keep = n;
    if (o_.top_k > 0 && o_.top_k < n) {
      keep = o_.top_k;
      std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_prob);
    } else if (o_.top_p < 1.0f || o_.min_p > 0.0f) {
      std::sort(cand_.begin(), cand_.end(), by_prob);
    }
    const bool sorted = keep < n || o_.top_p < 1.0f || o_.min_p > 0.0f;
    if (sorted) {
      if (o_.min_p > 0.0f) {
        const float floor = o_.min_p * cand_[0].p;
        std::size_t k = 1;
        while (k < keep && cand_[k].p >= floor) ++k;
        keep = k;
      }
      if (o_.top_p < 1.0f) {
        float total = 0.0f;
        for (std::size_t i = 0; i < keep; ++i) total += cand_[i].p;
        float cum = 0.0f;
        std::size_t k = 0;
        while (k < keep) {
          cum += cand_[k].p;
          ++k;
          if (cum >= o_.top_p * total) break;
        }
        keep = k;
      }
      sum = 0.0f;
      for (std::size_t i = 0; i < keep; ++i) sum += cand_[i].p;
    }
    const float r = rng_.uniform() * sum;
    float cdf = 0.0f;
    for (std::size_t i = 0; i < keep; ++i) {
      cdf += cand_[i].p;
      if (r < cdf) return cand_[i].id;
    }
    return cand_[keep - 1].id;  // rounding
  }

 private:
  struct cand {
    float p;
    std::int32_t id;
  };
  sampling_options o_;
  rng rng_;
  std::vector<cand> cand_;
  std::vector<std::uint8_t> seen_;
};

}  // namespace edgelm
