// edgelm/session.hpp - one conversation with a model: prompt (with prefix reuse, prefilled in batches),
// step() one token at a time (for frame-budgeted game loops: a long prompt is prefilled across several
// step(budget) calls), generate() streaming pieces to a callback.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "load.hpp"
#include "sampling/sampler.hpp"
#include "text/stream.hpp"

namespace edgelm {

struct session_options {
  std::uint32_t context = 0;     // positions in the KV cache; 0: min(trained context, EDGELM_DEFAULT_CONTEXT)
  std::uint32_t batch = 64;      // prompt tokens per forward pass (1..65536)
  kv_type kv = kv_type::f32;     // f16 halves the KV cache
  std::uint64_t max_state_bytes = EDGELM_MAX_STATE_BYTES;  // larger state: out_of_memory at create()
  executor exec{};               // threads (core/thread_pool.hpp) or the caller's job system; default inline
};

struct generate_options {
  std::uint32_t max_tokens = 256;  // new tokens at most
  float temperature = 0.8f;
  std::uint32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::vector<std::pair<std::int32_t, float>> logit_bias;
  std::uint64_t seed = 0;
  bool stop_at_eos = true;         // stop on the tokenizer's end-of-generation tokens (EOS, <|im_end|>, <|eot_id|>...:
                                   // text_tokenizer::stop_tokens()); always on BOS, as llama2.c
  std::vector<std::int32_t> stop_tokens;  // more tokens that end the generation (not printed)
  std::vector<std::string> stop;   // stop strings: the text ends before the first one (not printed)

  sampling_options sampling() const noexcept {
    sampling_options s;
    s.temperature = temperature;
    s.top_k = top_k;
    s.top_p = top_p;
    s.min_p = min_p;
    s.repeat_penalty = repeat_penalty;
    s.presence_penalty = presence_penalty;
    s.frequency_penalty = frequency_penalty;
    s.logit_bias = logit_bias;
    s.seed = seed;
    return s;
  }
};

// A token and its log-probability under the model (log-softmax of the raw logits, before penalties,
// temperature and truncation).
struct token_logprob {
  std::int32_t token = -1;
  float logprob = 0.0f;
};

// What one step produced.
struct step_result {
  std::int32_t token = -1;
  std::string_view piece;  // the token's own bytes (valid until the next call)
  std::string_view text;   // the text this step releases: whole UTF-8 characters only, nothing that may
                           // still become a stop string; at the end (done) everything still held
  float logprob = 0.0f;    // of `token`, when session::set_logprobs(n) asked for them (n > 0)
  std::span<const token_logprob> top;  // the n most likely tokens, most likely first (valid until the next call)
  bool done = false;       // EOS/BOS/a stop token sampled (token not appended), a stop string found, or the context is full
  bool stopped = false;    // done because of a stop token or a stop string
  bool prefilling = false; // step(budget) worked on a queued prompt and sampled nothing: call again
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
  using clock = std::chrono::steady_clock;

  // Allocates the KV cache once. `m` must outlive the session (and must not move).
  static result<session> create(const Model& m, session_options o = {}) {
    if (o.context > m.config().seq_len)
      return make_error(errc::invalid_argument, "context " + std::to_string(o.context) + " exceeds the model's " + std::to_string(m.config().seq_len));
    state_options so;
    so.context = o.context;
    so.max_batch = o.batch;
    so.kv = o.kv;
    so.max_state_bytes = o.max_state_bytes;
    so.exec = o.exec;
    auto st = m.net.make_state(so);
    if (!st) return st.error();
    session s;
    s.m_ = &m;
    s.st_ = std::move(*st);
    return s;
  }

  const std::vector<std::int32_t>& tokens() const noexcept { return tokens_; }
  std::uint32_t context() const noexcept { return st_.context; }
  const run_state<P>& state() const noexcept { return st_; }
  // Logits after the last fed token (empty before any, and while a prompt is still being prefilled).
  std::span<const float> logits() const noexcept { return have_logits_ ? std::span<const float>(st_.logits.data(), m_->config().vocab_size) : std::span<const float>{}; }
  // Tokens of the last prompt that were already in the KV cache (the prefix it shared with the conversation).
  std::uint32_t reused_tokens() const noexcept { return reused_; }
  // Prompt tokens queued by begin_tokens() and not yet run.
  std::size_t pending() const noexcept { return pending_.size() - next_; }

  // Replace the conversation with `ids`, reusing the longest prefix already in the KV cache, and run the
  // rest in batches (session_options::batch tokens per forward pass).
  result<void> set_tokens(std::span<const std::int32_t> ids) {
    auto r = begin_tokens(ids);
    if (!r) return r.error();
    auto d = prefill();
    if (!d) return d.error();
    return {};
  }

  // Like set_tokens(), but only queues the tokens: prefill(budget) or step(budget) runs them.
  result<void> begin_tokens(std::span<const std::int32_t> ids) {
    if (ids.empty()) return make_error(errc::invalid_argument, "empty token sequence");
    if (ids.size() > st_.context)
      return make_error(errc::context_overflow, "prompt of " + std::to_string(ids.size()) + " tokens does not fit the context of " + std::to_string(st_.context));
    for (auto t : ids)
      if (t < 0 || static_cast<std::size_t>(t) >= m_->config().vocab_size) return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary");
    std::size_t keep = 0;
    const std::size_t cached = tokens_.size() - (last_unfed_ ? 1 : 0);  // tokens whose keys/values are in the cache
    while (keep < cached && keep < ids.size() && tokens_[keep] == ids[keep]) ++keep;
    if (keep == ids.size()) --keep;  // re-run the last token to get its logits
    reused_ = static_cast<std::uint32_t>(keep);
    stream_.reset();  // text held from an earlier generation belongs to it
    tokens_.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
    pending_.assign(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
    next_ = 0;
    have_logits_ = false;
    last_unfed_ = false;
    return {};
  }

  // Run queued prompt tokens for about `budget` (zero: all of them). Batches are sized from the measured
  // time per token so that a call ends close to its budget; at least one token runs per call. Returns
  // true when the whole prompt is in (its logits ready).
  result<bool> prefill(std::chrono::microseconds budget = std::chrono::microseconds{0}) {
    if (budget.count() < 0) return make_error(errc::invalid_argument, "negative prefill budget");
    const auto t0 = clock::now();
    while (next_ < pending_.size()) {
      std::size_t b = std::min<std::size_t>(pending_.size() - next_, st_.max_batch);
      if (budget.count() > 0) {
        const double left_ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(budget - (clock::now() - t0)).count());
        if (ns_per_token_ > 0) b = std::clamp<std::size_t>(left_ns > 0 ? static_cast<std::size_t>(left_ns / ns_per_token_) : 1, 1, b);
        else b = 1;  // first batch of this session: measure
      }
      const bool last = next_ + b == pending_.size();
      const auto tb = clock::now();
      m_->net.forward(st_, std::span<const std::int32_t>(pending_.data() + next_, b), static_cast<std::uint32_t>(tokens_.size()),
                      last ? logits_for::last : logits_for::none);
      const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - tb).count()) / static_cast<double>(b);
      ns_per_token_ = ns_per_token_ > 0 ? 0.5 * ns_per_token_ + 0.5 * ns : ns;
      tokens_.insert(tokens_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(next_), pending_.begin() + static_cast<std::ptrdiff_t>(next_ + b));
      next_ += b;
      if (last) have_logits_ = true;
      if (budget.count() > 0 && clock::now() - t0 >= budget) break;
    }
    if (next_ == pending_.size()) {
      pending_.clear();
      next_ = 0;
      return true;
    }
    return false;
  }

  // Tokenize `text` (with the tokenizer's own special tokens around it: BOS for Llama; parse_special: special
  // tokens written in the text become their ids, false for untrusted text) and make it the prompt. An empty
  // text is BOS alone.
  result<void> prompt(std::string_view text, bool parse_special = true) { return set_tokens(encode_prompt(text, true, parse_special)); }
  // The same, queued for step(budget) / prefill(budget).
  result<void> begin_prompt(std::string_view text, bool parse_special = true) { return begin_tokens(encode_prompt(text, true, parse_special)); }
  // A rendered chat conversation (the chat template writes its own BOS, as Hugging Face's apply_chat_template):
  // its special tokens are parsed and nothing is added. The longest prefix already in the KV cache is kept, so
  // a conversation that grows turn by turn prefills only the new turn.
  result<void> prompt_rendered(std::string_view text) { return set_tokens(encode_prompt(text, false, true)); }

  // Feed one more token (e.g. a user turn), computing its logits.
  result<void> feed(std::int32_t t) {
    if (pending() > 0) return make_error(errc::invalid_argument, "feed() while a prompt is being prefilled");
    if (t < 0 || static_cast<std::size_t>(t) >= m_->config().vocab_size) return make_error(errc::invalid_argument, "token id outside the vocabulary");
    if (tokens_.size() >= st_.context) return make_error(errc::context_overflow, "the context is full");
    stream_.reset();  // a fed token starts a new turn
    if (last_unfed_) {  // the token a stop string ended on: into the cache first
      m_->net.forward(st_, std::span<const std::int32_t>(&tokens_.back(), 1), static_cast<std::uint32_t>(tokens_.size() - 1), logits_for::none);
      last_unfed_ = false;
      if (tokens_.size() >= st_.context) return make_error(errc::context_overflow, "the context is full");
    }
    feed_one(t);
    return {};
  }

  void reset_sampler(const sampling_options& o) { sampler_ = sampler(o); }

  // Forget the conversation: the next prompt reuses nothing from the KV cache (which stays allocated).
  void clear() noexcept {
    tokens_.clear();
    pending_.clear();
    next_ = 0;
    reused_ = 0;
    have_logits_ = false;
    last_unfed_ = false;
    stream_.reset();
  }

  // Stop tokens (besides EOS while stop_at_eos) and stop strings for step(); resets the text stream.
  void set_stops(std::vector<std::int32_t> tokens, std::vector<std::string> strings) {
    stop_tokens_ = std::move(tokens);
    stream_.set_stops(std::move(strings));
  }
  // Report each sampled token's log-probability and the n most likely alternatives (0: off).
  void set_logprobs(std::uint32_t n) noexcept { logprobs_ = n; }

  // Sample the next token from the current logits, append it and compute the following logits.
  // With a budget, a prompt still queued by begin_tokens() is prefilled first for at most about that long;
  // while it is not done the result has prefilling = true and no token (call again next frame).
  result<step_result> step(std::chrono::microseconds budget = std::chrono::microseconds{0}) {
    if (pending() > 0) {
      auto d = prefill(budget);
      if (!d) return d.error();
      if (budget.count() > 0) {  // this call's time went to the prompt: the first token comes next call
        step_result r;
        r.prefilling = true;
        return r;
      }
    }
    if (!have_logits_) return make_error(errc::invalid_argument, "step() before a prompt");
    const std::span<const float> raw(st_.logits.data(), m_->config().vocab_size);
    scratch_.assign(raw.begin(), raw.end());
    const std::int32_t t = sampler_.sample(scratch_, tokens_);
    step_result r;
    r.token = t;
    if (logprobs_ > 0) {
      r.logprob = log_softmax_top(raw, t, logprobs_, top_);
      r.top = top_;
    }
    const bool stop_token = std::find(stop_tokens_.begin(), stop_tokens_.end(), t) != stop_tokens_.end();
    if (t == m_->tok.bos_id() || (stop_at_eos_ && m_->tok.is_stop(t)) || stop_token) {
      r.done = true;
      r.stopped = stop_token;
      r.text = stream_.flush();
      return r;
    }
    r.piece = m_->tok.decode_piece(t, tokens_.back() == m_->tok.bos_id());
    r.text = stream_.push(r.piece);
    if (stream_.stopped()) {  // a stop string: the token is part of the conversation, the text ends
      r.done = r.stopped = true;
      tokens_.push_back(t);  // (its keys/values are computed only if the conversation goes on: feed())
      have_logits_ = false;
      last_unfed_ = true;
      return r;
    }
    if (tokens_.size() >= st_.context) {  // no room to run it: report it, then stop
      r.done = true;
      tokens_.push_back(t);
      have_logits_ = false;
      last_unfed_ = true;
      r.text = flush_after(r.text);
      return r;
    }
    feed_one(t);
    return r;
  }

  // log p(t) under softmax(logits), and the n most likely tokens into top (largest first; ties: lower id).
  // One pass for the maximum, one for the sum, one keeping a sorted list of n: no sort of the vocabulary.
  static float log_softmax_top(std::span<const float> logits, std::int32_t t, std::uint32_t n, std::vector<token_logprob>& top) {
    float mx = logits[0];
    for (float v : logits) mx = std::max(mx, v);
    double sum = 0.0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
    const double lse = mx + std::log(sum);
    top.clear();
    const std::size_t k = std::min<std::size_t>(n, logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i) {
      if (top.size() == k && !(logits[i] > top.back().logprob)) continue;
      const token_logprob c{static_cast<std::int32_t>(i), logits[i]};
      auto at = std::upper_bound(top.begin(), top.end(), c, [](const token_logprob& a, const token_logprob& b) { return a.logprob > b.logprob; });
      top.insert(at, c);
      if (top.size() > k) top.pop_back();
    }
    for (auto& c : top) c.logprob = static_cast<float>(c.logprob - lse);
    return static_cast<float>(logits[static_cast<std::size_t>(t)] - lse);
  }

  // Prompt, then stream up to max_tokens pieces to on_piece(std::string_view) -> bool (false stops).
  template <class F>
  result<generation_stats> generate(std::string_view prompt_text, const generate_options& o, F&& on_piece) {
    auto sv = validate(o.sampling(), m_->config().vocab_size);
    if (!sv) return sv.error();
    auto pr = prompt(prompt_text);
    if (!pr) return pr.error();
    return continue_generation(o, std::forward<F>(on_piece));
  }

  // Stream up to max_tokens pieces from where the conversation is (after prompt(), prompt_rendered(),
  // set_tokens() or feed()); the stats count the prompt as the tokens in the conversation so far.
  template <class F>
  result<generation_stats> continue_generation(const generate_options& o, F&& on_piece) {
    auto sv = validate(o.sampling(), m_->config().vocab_size);
    if (!sv) return sv.error();
    if (pending() > 0) {
      auto d = prefill();
      if (!d) return d.error();
    }
    if (!have_logits_) return make_error(errc::invalid_argument, "generation before a prompt");
    generation_stats st;
    st.prompt_tokens = static_cast<std::uint32_t>(tokens_.size());
    st.reused_tokens = reused_;
    reset_sampler(o.sampling());
    stop_at_eos_ = o.stop_at_eos;
    set_stops(o.stop_tokens, o.stop);
    // on_piece gets text (whole UTF-8 characters, stop strings cut), so its concatenation is the reply
    bool ended = false;
    for (std::uint32_t i = 0; i < o.max_tokens && !ended; ++i) {
      // the last allowed token needs no forward pass; step() handles a full context
      auto r = step();
      if (!r) return r.error();
      if (!(r->done && r->piece.empty())) ++st.generated_tokens;  // BOS / EOS / a stop token are not generated text
      if (!r->text.empty() && !on_piece(r->text)) return st;
      ended = r->done;
    }
    if (!ended) {
      const std::string_view rest = stream_.flush();
      if (!rest.empty()) on_piece(rest);
    }
    return st;
  }

 private:
  std::vector<std::int32_t> encode_prompt(std::string_view text, bool add_special, bool parse_special) const {
    auto ids = m_->tok.encode(text, add_special, parse_special);
    if (ids.empty() && m_->tok.bos()) ids.push_back(*m_->tok.bos());
    return ids;
  }

  // The text of a final step: what it released plus what the stream still held.
  std::string_view flush_after(std::string_view released) {
    final_.assign(released);  // (released views the stream's buffer, which flush() reuses)
    final_.append(stream_.flush());
    return final_;
  }

  void feed_one(std::int32_t t) {
    m_->net.forward(st_, std::span<const std::int32_t>(&t, 1), static_cast<std::uint32_t>(tokens_.size()), logits_for::last);
    tokens_.push_back(t);
    have_logits_ = true;
  }

  const Model* m_ = nullptr;
  run_state<P> st_;
  std::vector<std::int32_t> tokens_;
  std::vector<std::int32_t> pending_;  // queued prompt tokens; pending_[next_..] not yet run
  std::size_t next_ = 0;
  std::vector<float> scratch_;
  sampler sampler_;
  double ns_per_token_ = 0;  // measured prefill cost, for budgeted batches
  std::uint32_t reused_ = 0;
  bool have_logits_ = false;
  bool last_unfed_ = false;  // tokens_.back() was sampled but never run (a stop string or a full context ended there)
  bool stop_at_eos_ = true;
  std::vector<std::int32_t> stop_tokens_;
  text_stream stream_;
  std::string final_;
  std::uint32_t logprobs_ = 0;
  std::vector<token_logprob> top_;
};

}  // namespace edgelm
