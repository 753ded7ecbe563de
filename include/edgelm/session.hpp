// edgelm/session.hpp - one conversation with a model: prompt (with prefix reuse), step() one token at
// a time (for frame-budgeted game loops), generate() streaming pieces to a callback.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "load.hpp"
#include "sampling/sampler.hpp"

namespace edgelm {

struct session_options {
  std::uint32_t context = 0;  // positions in the KV cache; 0: the model's trained context
};

struct generate_options {
  std::uint32_t max_tokens = 256;  // new tokens at most
  float temperature = 0.8f;
  std::uint32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;
  std::uint64_t seed = 0;
  bool stop_at_eos = true;         // stop on EOS (and always on BOS, as llama2.c)

  sampling_options sampling() const noexcept {
    sampling_options s;
    s.temperature = temperature;
    s.top_k = top_k;
    s.top_p = top_p;
    s.min_p = min_p;
    s.repeat_penalty = repeat_penalty;
    s.seed = seed;
    return s;
  }
};

// What one step produced.
struct step_result {
  std::int32_t token = -1;
  std::string_view piece;  // decoded bytes (valid until the next call)
  bool done = false;       // EOS/BOS sampled (token not appended) or the context is full
};

struct generation_stats {
  std::uint32_t prompt_tokens = 0;   // incl. BOS
  std::uint32_t reused_tokens = 0;   // prompt prefix already in the KV cache
  std::uint32_t generated_tokens = 0;
};

template <class Model>
class session {
 public:
  using P = typename decltype(std::declval<Model>().net)::precision_type;

  // Allocates the KV cache once. `m` must outlive the session.
  static result<session> create(const Model& m, session_options o = {}) {
    if (o.context > m.config().seq_len)
      return make_error(errc::invalid_argument, "context " + std::to_string(o.context) + " exceeds the model's " + std::to_string(m.config().seq_len));
    auto st = m.net.make_state(o.context);
    if (!st) return st.error();
    session s;
    s.m_ = &m;
    s.st_ = std::move(*st);
    return s;
  }

  const std::vector<std::int32_t>& tokens() const noexcept { return tokens_; }
  std::uint32_t context() const noexcept { return st_.context; }
  // Logits after the last fed token (empty before any).
  std::span<const float> logits() const noexcept { return have_logits_ ? std::span<const float>(st_.logits.data(), st_.logits.size()) : std::span<const float>{}; }

  // Replace the conversation with `ids`, reusing the longest prefix already in the KV cache.
  result<void> set_tokens(std::span<const std::int32_t> ids) {
    if (ids.empty()) return make_error(errc::invalid_argument, "empty token sequence");
    if (ids.size() > st_.context)
      return make_error(errc::context_overflow, "prompt of " + std::to_string(ids.size()) + " tokens does not fit the context of " + std::to_string(st_.context));
    for (auto t : ids)
      if (t < 0 || static_cast<std::size_t>(t) >= m_->config().vocab_size) return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary");
    std::size_t keep = 0;
    while (keep < tokens_.size() && keep < ids.size() && tokens_[keep] == ids[keep]) ++keep;
    if (keep == ids.size()) --keep;  // re-run the last token to get its logits
    reused_ = static_cast<std::uint32_t>(keep);
    tokens_.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
    for (std::size_t i = keep; i < ids.size(); ++i) feed_one(ids[i]);
    return {};
  }

  // Tokenize `text` (BOS first if the tokenizer wants it) and make it the prompt.
  result<void> prompt(std::string_view text) {
    auto ids = m_->tok.encode(text, m_->tok.add_bos() || text.empty());
    return set_tokens(ids);
  }

  // Feed one more token (e.g. a user turn), computing its logits.
  result<void> feed(std::int32_t t) {
    if (t < 0 || static_cast<std::size_t>(t) >= m_->config().vocab_size) return make_error(errc::invalid_argument, "token id outside the vocabulary");
    if (tokens_.size() >= st_.context) return make_error(errc::context_overflow, "the context is full");
    feed_one(t);
    return {};
  }

  void reset_sampler(const sampling_options& o) { sampler_ = sampler(o); }

  // Sample the next token from the current logits, append it and compute the following logits.
  result<step_result> step() {
    if (!have_logits_) return make_error(errc::invalid_argument, "step() before a prompt");
    scratch_.assign(st_.logits.data(), st_.logits.data() + st_.logits.size());
    const std::int32_t t = sampler_.sample(scratch_, tokens_);
    step_result r;
    r.token = t;
    if (t == m_->tok.bos() || (stop_at_eos_ && t == m_->tok.eos())) {
      r.done = true;
      return r;
    }
    r.piece = m_->tok.decode(tokens_.back(), t);
    if (tokens_.size() >= st_.context) {  // no room to run it: report it, then stop
      r.done = true;
      tokens_.push_back(t);
      have_logits_ = false;
      return r;
    }
    feed_one(t);
    return r;
  }

  // Prompt, then stream up to max_tokens pieces to on_piece(std::string_view) -> bool (false stops).
  template <class F>
  result<generation_stats> generate(std::string_view prompt_text, const generate_options& o, F&& on_piece) {
    auto sv = validate(o.sampling());
    if (!sv) return sv.error();
    auto pr = prompt(prompt_text);
    if (!pr) return pr.error();
    generation_stats st;
    st.prompt_tokens = static_cast<std::uint32_t>(tokens_.size());
    st.reused_tokens = reused_;
    reset_sampler(o.sampling());
    stop_at_eos_ = o.stop_at_eos;
    for (std::uint32_t i = 0; i < o.max_tokens; ++i) {
      // the last allowed token needs no forward pass; step() handles a full context
      auto r = step();
      if (!r) return r.error();
      if (r->done && (r->token == m_->tok.bos() || r->token == m_->tok.eos())) break;
      ++st.generated_tokens;
      if (!on_piece(r->piece)) break;
      if (r->done) break;
    }
    return st;
  }

 private:
  void feed_one(std::int32_t t) {
    m_->net.forward(st_, t, static_cast<std::uint32_t>(tokens_.size()));
    tokens_.push_back(t);
    have_logits_ = true;
  }

  const Model* m_ = nullptr;
  run_state<P> st_;
  std::vector<std::int32_t> tokens_;
  std::vector<float> scratch_;
  sampler sampler_;
  std::uint32_t reused_ = 0;
  bool have_logits_ = false;
  bool stop_at_eos_ = true;
};

}  // namespace edgelm
