// edgelm/perplexity.hpp - perplexity of a model on a text, computed exactly as llama.cpp's
// llama-perplexity does (tools/perplexity/perplexity.cpp, perplexity()), so the two numbers can be
// compared on the same GGUF file and text:
//
//  1. tokenize the whole text once, BOS first when the vocabulary adds one (common_tokenize(ctx,
//     text, add_special = true));
//  2. cut the tokens into n_chunks = min(max_chunks, n_tokens / n_ctx) non-overlapping chunks of
//     n_ctx tokens (at least 2 * n_ctx tokens are required, as llama.cpp does);
//  3. for each chunk: a fresh KV cache, the chunk's first token replaced by BOS (when the vocabulary
//     adds BOS), the model run over positions 0 .. n_ctx-1;
//  4. only the second half is scored: with first = n_ctx / 2, the logits at positions
//     first .. n_ctx-2 predict tokens first+1 .. n_ctx-1, and -log softmax(target) is summed in
//     double (nll) together with its square (nll2);
//  5. the estimate after chunk k is exp(nll / count); the final one comes with the standard error
//     ppl * sqrt((nll2/count - (nll/count)^2) / (count - 1)).
//
// log_softmax is llama.cpp's too: max in float, sum of expf(logit - max) in double,
// logit[target] - max - log(sum).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/executor.hpp"
#include "core/result.hpp"
#include "model/transformer.hpp"

namespace edgelm {

struct perplexity_options {
  std::uint32_t context = 512;     // n_ctx: tokens per chunk (llama-perplexity's --ctx-size, default 512)
  std::uint32_t max_chunks = 0;    // --chunks; 0: every whole chunk of the text
  std::uint32_t batch = 64;        // tokens per forward pass (llama-perplexity's -ub); 1..65536
  executor exec{};                 // threads (default inline)
};

struct perplexity_result {
  std::size_t n_tokens = 0;        // tokens of the whole text (BOS included)
  std::uint32_t n_chunks = 0;      // chunks evaluated
  std::uint64_t count = 0;         // tokens scored
  double nll = 0;                  // sum of -log p(target)
  double nll2 = 0;                 // sum of its squares
  std::vector<double> running;     // estimate after each chunk: exp(nll_so_far / count_so_far)
  double ppl = 0;                  // exp(nll / count)
  double ppl_stderr = 0;           // llama.cpp's "+/-" (0 when it cannot be computed)
};

namespace detail {
// llama.cpp's log_softmax(n_vocab, logits, tok).
inline double log_softmax_at(std::span<const float> logits, std::int32_t tok) noexcept {
  float max_logit = logits[0];
  for (std::size_t i = 1; i < logits.size(); ++i) max_logit = std::max(max_logit, logits[i]);
  double sum_exp = 0.0;
  for (float l : logits) sum_exp += std::exp(l - max_logit);
  return logits[static_cast<std::size_t>(tok)] - max_logit - std::log(sum_exp);
}
}  // namespace detail

// Perplexity of `m` (an edgelm::model<P, K>) over already tokenized text. `on_chunk(chunk_index,
// running_estimate)` is called after every chunk (for progress output); return false to stop early
// (the result then covers the chunks done). Errors: invalid_argument for a context below 4, token ids
// outside the vocabulary or fewer than 2 * context tokens; the KV cache allocation's errors.
template <class Model, class OnChunk>
result<perplexity_result> perplexity(const Model& m, std::span<const std::int32_t> tokens, const perplexity_options& o, OnChunk&& on_chunk) {
  const std::uint32_t n_ctx = o.context;
  if (n_ctx < 4) return make_error(errc::invalid_argument, "perplexity needs a context of at least 4 tokens");
  if (tokens.size() < 2 * std::size_t{n_ctx})
    return make_error(errc::invalid_argument, "the text tokenizes to " + std::to_string(tokens.size()) + " tokens; a context of " + std::to_string(n_ctx) +
                                                  " needs at least " + std::to_string(2 * std::size_t{n_ctx}));
  const auto vocab = m.config().vocab_size;
  for (auto t : tokens)
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab) return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary");
  state_options so;
  so.context = n_ctx;
  so.max_batch = o.batch;
  so.all_logits = true;
  so.exec = o.exec;
  auto st = m.net.make_state(so);
  if (!st) return st.error();
  std::vector<std::int32_t> chunk(n_ctx);

  perplexity_result r;
  r.n_tokens = tokens.size();
  const std::size_t n_chunk_max = tokens.size() / n_ctx;
  r.n_chunks = static_cast<std::uint32_t>(o.max_chunks == 0 ? n_chunk_max : std::min<std::size_t>(o.max_chunks, n_chunk_max));
  const bool add_bos = m.tok.add_bos();
  const std::uint32_t first = n_ctx / 2;

  for (std::uint32_t i = 0; i < r.n_chunks; ++i) {
    const std::size_t start = std::size_t{i} * n_ctx;
    // Positions 0 .. n_ctx-2 need their logits; the last token of the chunk is only a target. They run
    // in batches (writing position pos overwrites the previous chunk's cache); only batches holding
    // scored positions compute logits.
    for (std::uint32_t pos = 0; pos + 1 < n_ctx; ++pos) chunk[pos] = (pos == 0 && add_bos) ? m.tok.bos_id() : tokens[start + pos];
    for (std::uint32_t pos = 0; pos + 1 < n_ctx;) {
      const std::uint32_t b = std::min<std::uint32_t>(st->max_batch, n_ctx - 1 - pos);
      const bool scored = pos + b > first;
      auto logits = m.net.forward(*st, std::span<const std::int32_t>(chunk.data() + pos, b), pos, scored ? logits_for::all : logits_for::none);
      for (std::uint32_t t = 0; scored && t < b; ++t) {
        if (pos + t < first) continue;
        const double v = -detail::log_softmax_at(logits.subspan(std::size_t{t} * vocab, vocab), tokens[start + pos + t + 1]);
        r.nll += v;
        r.nll2 += v * v;
      }
      pos += b;
    }
    r.count += n_ctx - first - 1;
    r.running.push_back(std::exp(r.nll / static_cast<double>(r.count)));
    if (!on_chunk(i, r.running.back())) {
      r.n_chunks = i + 1;
      break;
    }
  }
  if (r.count == 0) return r;
  const double nll = r.nll / static_cast<double>(r.count);
  double nll2 = r.nll2 / static_cast<double>(r.count);
  r.ppl = std::exp(nll);
  nll2 -= nll * nll;
  if (nll2 > 0 && r.count > 1) r.ppl_stderr = std::sqrt(nll2 / static_cast<double>(r.count - 1)) * r.ppl;
  return r;
}

template <class Model>
result<perplexity_result> perplexity(const Model& m, std::span<const std::int32_t> tokens, const perplexity_options& o) {
  return perplexity(m, tokens, o, [](std::uint32_t, double) { return true; });
}

// Tokenize `text` as llama-perplexity does (BOS first when the vocabulary adds one), then score it.
template <class Model, class OnChunk>
result<perplexity_result> perplexity(const Model& m, std::string_view text, const perplexity_options& o, OnChunk&& on_chunk) {
  const auto ids = m.tok.encode(text, m.tok.add_bos());
  return perplexity(m, std::span<const std::int32_t>(ids), o, on_chunk);
}
template <class Model>
result<perplexity_result> perplexity(const Model& m, std::string_view text, const perplexity_options& o) {
  return perplexity(m, text, o, [](std::uint32_t, double) { return true; });
}

}  // namespace edgelm
