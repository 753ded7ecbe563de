// edgelm/model/transformer.hpp - transformer<P, K>: a decoder of one of the architecture families (llama, qwen2,
// gpt2, gpt_neo, gpt_neox, phi) under weight policy P (a uniform precision, or `mixed`: every matrix in its file
// type) with kernels K. It holds the config, the weights and the state, and the building blocks every family
// shares (embedding, norms, projections, attention, MLPs, classifier); each family's forward, which runs a batch
// of tokens (a prompt goes through matrix-matrix products; decoding is a batch of one) and reads top to bottom
// like llama2.c's run.c, is in model/families/<family>.hpp, chosen by the config's architecture.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <utility>

#include "../core/buffer.hpp"
#include "../core/checked.hpp"
#include "../core/executor.hpp"
#include "../core/log.hpp"
#include "../core/result.hpp"
#include "../formats/model_file.hpp"
#include "../kernels/scalar.hpp"
#include "weights.hpp"

// The most bytes one state (KV cache + activations) may take unless state_options says otherwise.
#ifndef EDGELM_MAX_STATE_BYTES
#define EDGELM_MAX_STATE_BYTES (std::uint64_t{3} << 30)
#endif
// The default context when the caller gives none: min(trained context, this).
#ifndef EDGELM_DEFAULT_CONTEXT
#define EDGELM_DEFAULT_CONTEXT 4096
#endif

namespace edgelm {

// Element type of the KV cache.
enum class kv_type : std::uint8_t {
  f32,  // exact (the golden outputs)
  f16,  // half the memory; keys and values rounded to fp16 (round to nearest even)
};

struct state_options {
  std::uint32_t context = 0;        // positions the KV cache holds; 0: min(trained context, EDGELM_DEFAULT_CONTEXT)
  std::uint32_t max_batch = 64;     // most tokens one forward() takes (prompt batches); >= 1
  kv_type kv = kv_type::f32;
  bool all_logits = false;          // room for the logits of every batch position (perplexity, `logits`)
  std::uint64_t max_state_bytes = EDGELM_MAX_STATE_BYTES;  // a larger state is an out_of_memory error
  executor exec{};                  // how work is spread over threads (default: inline)
};

// Which positions of a batch get logits.
enum class logits_for : std::uint8_t { none, last, all };

// Element counts of every buffer of a state, computed with checked 64-bit arithmetic against `size_max`
// (the platform's SIZE_MAX; a test passes 2^32 - 1 to check wasm32 on a 64-bit host).
struct state_plan {
  std::uint32_t context = 0, max_batch = 0, workers = 1;
  std::uint64_t act = 0;       // (max_batch, dim) each of x, xb, xb2, q
  std::uint64_t hidden = 0;    // (max_batch, hidden_dim) each of hb, hb2
  std::uint64_t kv_rows = 0;   // (max_batch, kv_dim) each of k, v staging
  std::uint64_t xq = 0;        // q8_0 activation blocks: (max_batch, blocks of 32 of max(dim, hidden)), if needed
  std::uint64_t xqs = 0;       // q8_sum blocks (Q4_1 / Q5_1 weights), the same count, if needed
  std::uint64_t xqk = 0;       // q8_k blocks (K-quant weights): (max_batch, blocks of 256), if needed
  std::uint64_t att = 0;       // (workers, context) attention scores
  std::uint64_t logits = 0;    // (all_logits ? max_batch : 1, vocab)
  std::uint64_t rope = 0;      // (max_batch, head_dim / 2) each of cos, sin
  std::uint64_t kv = 0;        // (layers, context, kv_dim) each of key and value cache
  std::uint64_t bytes = 0;     // all of it
};

// Which activation buffers a state needs (its policy's weight types decide).
struct act_needs {
  bool q8_0 = false, q8_sum = false, q8_k = false;
};

inline result<state_plan> plan_state(const model_config& c, const state_options& o, unsigned workers, act_needs needs, std::uint64_t size_max = SIZE_MAX) {
  using detail::mul_ok;
  state_plan p;
  p.context = o.context ? o.context : std::min<std::uint32_t>(c.seq_len, EDGELM_DEFAULT_CONTEXT);
  if (p.context == 0) return make_error(errc::invalid_argument, "context must be at least 1");
  if (p.context > limits::max_context) return make_error(errc::invalid_argument, "context larger than EDGELM_MAX_CONTEXT");
  if (c.learned_positions && p.context > c.seq_len)
    return make_error(errc::invalid_argument, "context " + std::to_string(p.context) + " is longer than the model's " + std::to_string(c.seq_len) + " learned positions");
  if (o.max_batch == 0 || o.max_batch > 65536) return make_error(errc::invalid_argument, "batch size " + std::to_string(o.max_batch) + " is outside 1..65536");
  if (workers == 0 || workers > 4096) return make_error(errc::invalid_argument, "executor concurrency " + std::to_string(workers) + " is outside 1..4096");
  p.max_batch = std::min(o.max_batch, p.context);
  p.workers = workers;
  const std::uint64_t B = p.max_batch;
  const std::uint64_t widest = std::max(c.dim, c.hidden_dim);
  const std::uint64_t blocks32 = (widest + 31) / 32, blocks256 = (widest + 255) / 256;
  std::uint64_t kv_each = 0, lc = 0;
  bool ok = mul_ok(B, c.dim, p.act) && mul_ok(B, c.hidden_dim, p.hidden) && mul_ok(B, c.kv_dim(), p.kv_rows) && mul_ok(B, needs.q8_0 ? blocks32 : 0, p.xq) && mul_ok(B, needs.q8_sum ? blocks32 : 0, p.xqs) &&
            mul_ok(B, needs.q8_k ? blocks256 : 0, p.xqk) &&
            mul_ok(std::uint64_t{workers}, p.context, p.att) && mul_ok(o.all_logits ? B : 1, c.vocab_size, p.logits) &&
            mul_ok(B, c.head_dim / 2, p.rope) && mul_ok(std::uint64_t{c.n_layers}, p.context, lc) && mul_ok(lc, c.kv_dim(), kv_each);
  p.kv = kv_each;
  const std::uint64_t kv_elem = o.kv == kv_type::f16 ? 2 : 4;
  // floats: 4 act + 2 hidden + 2 kv rows + att + logits + 2 rope; then the two caches and the blocks
  std::uint64_t floats = 0, kvb = 0, xqb = 0, total = 0;
  const std::uint64_t parts[] = {p.act, p.act, p.act, p.act, p.hidden, p.hidden, p.kv_rows, p.kv_rows, p.att, p.logits, p.rope, p.rope};
  for (auto n : parts) ok = ok && n <= size_max / 4 && (floats += n, floats <= size_max / 4);
  std::uint64_t xqb0 = 0, xqb1 = 0, xqb2 = 0;
  ok = ok && mul_ok(p.kv, 2 * kv_elem, kvb) && mul_ok(p.xq, sizeof(block_q8_0), xqb0) && mul_ok(p.xqs, sizeof(block_q8_sum), xqb1) &&
       mul_ok(p.xqk, sizeof(block_q8_k), xqb2);
  const auto add_to = [&](std::uint64_t& acc, std::uint64_t v) {
    if (v > size_max || acc > size_max - v) return false;
    acc += v;
    return true;
  };
  ok = ok && add_to(xqb, xqb0) && add_to(xqb, xqb1) && add_to(xqb, xqb2);
  ok = ok && mul_ok(floats, 4, total) && total <= size_max - kvb && (total += kvb, total <= size_max - xqb);
  if (!ok || p.kv > size_max / kv_elem) return make_error(errc::out_of_memory, "the state for a context of " + std::to_string(p.context) + " overflows the address space");
  p.bytes = total + xqb;
  if (p.bytes > o.max_state_bytes)
    return make_error(errc::out_of_memory, "the state for a context of " + std::to_string(p.context) + " needs " + std::to_string(p.bytes >> 20) +
                                               " MiB, more than the limit of " + std::to_string(o.max_state_bytes >> 20) + " MiB (state_options::max_state_bytes)");
  return p;
}

// The plan of a uniform policy whose activations are blocks of act_block_bytes for act_block_elems elements
// (q8_0: <34, 32>; f32: <4, 1>).
template <std::size_t act_block_bytes, std::size_t act_block_elems>
result<state_plan> plan_state(const model_config& c, const state_options& o, unsigned workers, std::uint64_t size_max = SIZE_MAX) {
  act_needs n;
  n.q8_0 = act_block_elems == 32 && act_block_bytes == sizeof(block_q8_0);
  return plan_state(c, o, workers, n, size_max);
}

// The activation buffers a weight policy's types need.
template <class... Ts>
constexpr act_needs needs_of(type_list<Ts...> l) noexcept {
  act_needs n;
  n.q8_0 = needs_activation(l, act_kind::q8_0);
  n.q8_sum = needs_activation(l, act_kind::q8_sum);
  n.q8_k = needs_activation(l, act_kind::q8_k);
  return n;
}

// Activations and the KV cache of one sequence, allocated once (nothing allocates inside forward).
template <class P>
struct run_state {
  std::uint32_t context = 0;       // positions the KV cache holds
  std::uint32_t max_batch = 1;     // tokens one forward takes
  bool all_logits = false;
  kv_type kv = kv_type::f32;
  executor exec{};
  aligned_buffer<float> x;         // (max_batch, dim) residual stream
  aligned_buffer<float> xb;        // (max_batch, dim)
  aligned_buffer<float> xb2;       // (max_batch, dim)
  aligned_buffer<float> q;         // (max_batch, dim)
  aligned_buffer<float> hb;        // (max_batch, hidden_dim)
  aligned_buffer<float> hb2;       // (max_batch, hidden_dim)
  aligned_buffer<float> k;         // (max_batch, kv_dim) new keys before they enter the cache
  aligned_buffer<float> v;         // (max_batch, kv_dim)
  aligned_buffer<float> att;       // (workers, context) attention scores, one row per worker
  aligned_buffer<float> logits;    // (all_logits ? max_batch : 1, vocab)
  aligned_buffer<float> rope_cos;  // (max_batch, head_dim / 2) RoPE angles of each batch position
  aligned_buffer<float> rope_sin;  // (max_batch, head_dim / 2)
  aligned_buffer<float> key_cache;    // (layer, context, kv_dim), kv == f32 (not zero-filled)
  aligned_buffer<float> value_cache;  // (layer, context, kv_dim)
  aligned_buffer<std::uint16_t> key_cache16;    // the same in fp16 bits, kv == f16
  aligned_buffer<std::uint16_t> value_cache16;
  // Activations quantized for the dot products of the quantized weight types P runs, (max_batch, blocks of
  // max(dim, hidden)) each, a row's last block zero-padded (as a converted matrix's rows); empty if unused.
  aligned_buffer<block_q8_0> xq;
  aligned_buffer<block_q8_sum> xqs;
  aligned_buffer<block_q8_k> xqk;
  std::uint64_t planned_bytes = 0;

  // Bytes held by this state (the KV cache dominates).
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(planned_bytes); }
  std::size_t kv_bytes() const noexcept {
    return (key_cache.size() + value_cache.size()) * sizeof(float) + (key_cache16.size() + value_cache16.size()) * sizeof(std::uint16_t);
  }
};

// The architecture families, each with its forward in model/families/<family>.hpp.
enum class arch_family : std::uint8_t { llama, qwen2, gpt2, gpt_neo, gpt_neox, phi };

// The family of a config, by its arch (GGUF general.architecture: llama, qwen2, gpt2, gptneo, gptneox, phi2). The
// config's switches must have that family's structure (the readers never give others; a hand-made config
// can): the switches a family's forward reads (biases present or not, the GELU, gpt2's scaled attention,
// gpt_neo's windows, gpt_neox's parallel residual, partial rotary, RoPE frequencies) may vary, the rest not.
// Errors: unsupported_architecture.
inline result<arch_family> family_of(const model_config& c) {
  using F = arch_family;
  const bool ln = c.norm == norm_kind::layer, gelu = c.ffn != ffn_kind::silu_gated, seq = c.residual == residual_kind::sequential;
  const bool rotary = !c.learned_positions && c.rope == rope_style::half_split && c.scaled_attention && c.window.empty();
  const bool learned = c.learned_positions && ln && gelu && seq;
  const struct { const char* arch; F family; bool fits; } families[] = {
      {"llama", F::llama, c.is_llama_forward()},
      {"qwen2", F::qwen2, rotary && !ln && !gelu && seq},
      {"gpt2", F::gpt2, learned && c.window.empty()},
      {"gptneo", F::gpt_neo, learned && !c.scaled_attention},
      {"gptneox", F::gpt_neox, rotary && ln && gelu && c.residual != residual_kind::parallel_shared},
      {"phi2", F::phi, rotary && ln && gelu && c.residual == residual_kind::parallel_shared}};
  for (const auto& f : families) {
    if (c.arch != f.arch) continue;
    if (!f.fits) return make_error(errc::unsupported_architecture, "the config asks for a block the " + c.arch + " forward does not compute");
    return f.family;
  }
  return make_error(errc::unsupported_architecture, "architecture '" + c.arch.substr(0, 64) + "' has no forward (families: llama, qwen2, gpt2, gptneo, gptneox, phi2)");
}

template <weight_policy P, class K = kernels::scalar>
class transformer {
 public:
  using precision_type = P;
  using kernels_type = K;
  using types = typename policy_traits<P>::types;  // the weight types run in place

  transformer() = default;

  // Build from a parsed file: validates the config and binds/converts the weights.
  // repack: let the kernels keep their own layout of the weights where they have one
  // (K::packed_bytes > 0 on this CPU); false keeps every matrix a zero-copy view of the file.
  static result<transformer> from_file(model_file mf, const logger& log = {}, bool repack = true) {
    auto fam = family_of(mf.config);
    if (!fam) return fam.error();
#if defined(EDGELM_LLAMA_ONLY)
    // a build for the llama architecture alone (the browser engine's, for size): the other families' forward
    // is not compiled in
    if (*fam != arch_family::llama)
      return make_error(errc::unsupported_architecture, "this build runs the llama architecture only (EDGELM_LLAMA_ONLY); the file is " + mf.config.arch);
#endif
    transformer t;
    t.family_ = *fam;
    weight_packer packer;
    if (repack) {
      packer.bytes = [](const wmatrix& m) noexcept {
        std::size_t r = 0;
        visit_type(types{}, m.type, [&](auto tag) { r = K::packed_bytes(m.template as<decltype(tag)>()); });
        return r;
      };
      packer.pack = [](const wmatrix& m, std::byte* d) noexcept {
        std::uint32_t r = 0;
        visit_type(types{}, m.type, [&](auto tag) { r = K::pack(m.template as<decltype(tag)>(), d); });
        return r;
      };
      packer.row_group = K::packed_row_group;
    }
    auto w = make_weights<P>(mf, log, packer);
    if (!w) return w.error();
    t.w_ = std::move(*w);
    t.cfg_ = mf.config;
    t.file_ = std::move(mf);
    return t;
  }

  const model_config& config() const noexcept { return cfg_; }
  arch_family family() const noexcept { return family_; }  // whose forward runs (family_of(config()))
  const model_file& file() const noexcept { return file_; }
  const model_weights& w() const noexcept { return w_; }

  // The sizes a state with these options would have (errors as make_state's).
  result<state_plan> plan(const state_options& o) const {
    return plan_state(cfg_, o, o.exec.workers(), needs_of(types{}));
  }

  // A fresh state. Errors: invalid_argument (context 0 or above EDGELM_MAX_CONTEXT, batch outside
  // 1..65536), out_of_memory (sizes overflow, exceed o.max_state_bytes, or the allocation fails).
  result<run_state<P>> make_state(const state_options& o) const {
    auto p = plan(o);
    if (!p) return p.error();
    run_state<P> s;
    s.context = p->context;
    s.max_batch = p->max_batch;
    s.all_logits = o.all_logits;
    s.kv = o.kv;
    s.exec = o.exec;
    s.planned_bytes = p->bytes;
    const auto n = [](std::uint64_t v) { return static_cast<std::size_t>(v); };
    struct { aligned_buffer<float>* b; std::size_t n; } fl[] = {
        {&s.x, n(p->act)},          {&s.xb, n(p->act)},       {&s.xb2, n(p->act)},         {&s.q, n(p->act)},
        {&s.hb, n(p->hidden)},      {&s.hb2, n(p->hidden)},   {&s.k, n(p->kv_rows)},       {&s.v, n(p->kv_rows)},
        {&s.att, n(p->att)},        {&s.logits, n(p->logits)}, {&s.rope_cos, n(p->rope)},  {&s.rope_sin, n(p->rope)}};
    for (auto& f : fl) {
      auto b = aligned_buffer<float>::make(f.n);
      if (!b) return b.error();
      *f.b = std::move(*b);
    }
    // The caches are not zero-filled: attention reads only positions already written, so untouched
    // pages of a long context cost no memory.
    if (o.kv == kv_type::f32) {
      for (auto* b : {&s.key_cache, &s.value_cache}) {
        auto kb = aligned_buffer<float>::make_uninitialized(n(p->kv));
        if (!kb) return kb.error();
        *b = std::move(*kb);
      }
    } else {
      for (auto* b : {&s.key_cache16, &s.value_cache16}) {
        auto kb = aligned_buffer<std::uint16_t>::make_uninitialized(n(p->kv));
        if (!kb) return kb.error();
        *b = std::move(*kb);
      }
    }
    auto xq = aligned_buffer<block_q8_0>::make(n(p->xq));
    if (!xq) return xq.error();
    s.xq = std::move(*xq);
    auto xqs = aligned_buffer<block_q8_sum>::make(n(p->xqs));
    if (!xqs) return xqs.error();
    s.xqs = std::move(*xqs);
    auto xqk = aligned_buffer<block_q8_k>::make(n(p->xqk));
    if (!xqk) return xqk.error();
    s.xqk = std::move(*xqk);
    return s;
  }

  // A fresh state for `context` positions (0: min(trained context, EDGELM_DEFAULT_CONTEXT)), batch of one.
  result<run_state<P>> make_state(std::uint32_t context = 0) const {
    state_options o;
    o.context = context;
    o.max_batch = 1;
    return make_state(o);
  }

  // Checks forward()'s preconditions: 1 <= n <= max_batch, pos + n <= context, ids in the vocabulary,
  // `all` only for a state made with all_logits.
  result<void> check(const run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const {
    if (tokens.empty() || tokens.size() > s.max_batch)
      return make_error(errc::invalid_argument, "batch of " + std::to_string(tokens.size()) + " tokens (this state takes 1.." + std::to_string(s.max_batch) + ")");
    if (std::uint64_t{pos} + tokens.size() > s.context)
      return make_error(errc::context_overflow, "positions " + std::to_string(pos) + ".." + std::to_string(pos + tokens.size() - 1) + " do not fit the context of " +
                                                    std::to_string(s.context));
    if (which == logits_for::all && !s.all_logits && tokens.size() > 1)
      return make_error(errc::invalid_argument, "logits of every position need a state made with all_logits");
    for (auto t : tokens)
      if (t < 0 || static_cast<std::uint32_t>(t) >= cfg_.vocab_size) return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary");
    return {};
  }

  // Run tokens[0..n) at positions pos .. pos + n - 1 (their keys and values enter the KV cache) and
  // return the logits asked for: `last` -> vocab floats of the last token, `all` -> (n, vocab), `none` ->
  // empty (a prompt batch whose logits nobody reads skips the classifier). Valid until the next call with
  // this state. The caller keeps check()'s preconditions (session does). The family's own forward runs it
  // (model/families/<family>.hpp).
  std::span<const float> forward(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept {
#if !defined(EDGELM_LLAMA_ONLY)
    switch (family_) {
      case arch_family::llama: break;
      case arch_family::qwen2: return forward_qwen2(s, tokens, pos, which);
      case arch_family::gpt2: return forward_gpt2(s, tokens, pos, which);
      case arch_family::gpt_neo: return forward_gpt_neo(s, tokens, pos, which);
      case arch_family::gpt_neox: return forward_gpt_neox(s, tokens, pos, which);
      case arch_family::phi: return forward_phi(s, tokens, pos, which);
    }
#endif
    return forward_llama(s, tokens, pos, which);
  }

  // One token at position pos; returns its logits.
  std::span<const float> forward(run_state<P>& s, std::int32_t token, std::uint32_t pos) const noexcept {
    return forward(s, std::span<const std::int32_t>(&token, 1), pos, logits_for::last);
  }

 private:
  // One forward per family, each in model/families/<family>.hpp, on forward()'s contract. They share the
  // building blocks below; the buffers: x the residual stream, xb a norm's output and then the attention's
  // (and the MLP's) output, xb2 the attention's output projection, q / k / v, hb / hb2 the MLP's hidden rows.
  std::span<const float> forward_llama(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;
  std::span<const float> forward_qwen2(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;
  std::span<const float> forward_gpt2(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;
  std::span<const float> forward_gpt_neo(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;
  std::span<const float> forward_gpt_neox(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;
  std::span<const float> forward_phi(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos, logits_for which) const noexcept;

  // The token embedding rows of the batch -> x, plus the learned position rows (gpt2, gpt_neo), or else the
  // rotation angles of every position (shared by all layers).
  void embed_batch(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos) const noexcept {
    const model_config& c = cfg_;
    const std::uint32_t dim = c.dim, hs = c.head_dim;
    for (std::uint32_t t = 0; t < tokens.size(); ++t) {
      embed(tokens[t], s.x.data() + std::size_t{t} * dim);
      if (c.learned_positions) {
        float* row = s.xb2.data();  // (the position row, then added)
        visit_type(types{}, w_.pos_embd.type, [&](auto tag) {
          using T = decltype(tag);
          T::dequantize_row(w_.pos_embd.template as<T>().row(pos + t), row, dim);
        });
        K::add(s.x.data() + std::size_t{t} * dim, row, dim);
      } else {
        rope_angles(s.rope_cos.data() + std::size_t{t} * (hs / 2), s.rope_sin.data() + std::size_t{t} * (hs / 2), c.rot_dims(), pos + t);
      }
    }
  }

  // cos / sin of the rot / 2 rotation angles at position pos: theta's frequencies, or the file's (RoPE scaling)
  void rope_angles(float* cos_out, float* sin_out, std::uint32_t rot, std::uint32_t pos) const noexcept {
    if (cfg_.rope_freqs.empty()) K::rope_table(cos_out, sin_out, rot, pos, cfg_.rope_theta);
    else K::rope_table_freqs(cos_out, sin_out, rot / 2, pos, cfg_.rope_freqs.data());
  }

  // y += b on each of the n rows of ld floats; nothing when the file has no such bias (b null).
  static void add_bias(run_state<P>& s, std::uint32_t n, float* y, const float* b, std::uint32_t ld) noexcept {
    if (b) per_token(s, n, [&](std::size_t t) noexcept { K::add(y + t * ld, b, ld); });
  }
  // x += y, row by row (a residual connection).
  void add_rows(run_state<P>& s, std::uint32_t n, float* x, const float* y) const noexcept {
    const std::size_t dim = cfg_.dim;
    per_token(s, n, [&](std::size_t t) noexcept { K::add(x + t * dim, y + t * dim, dim); });
  }

  // q, k, v of every token from xb (one parallel region over the rows of all three), plus their biases.
  void qkv_proj(run_state<P>& s, const layer_weights& L, std::uint32_t n) const noexcept {
    const std::uint32_t dim = cfg_.dim, kv_dim = cfg_.kv_dim();
    matmul_rows(s, s.xb.data(), dim, n, {{L.wq, s.q.data(), dim}, {L.wk, s.k.data(), kv_dim}, {L.wv, s.v.data(), kv_dim}});
    add_bias(s, n, s.q.data(), L.bq, dim);
    add_bias(s, n, s.k.data(), L.bk, kv_dim);
    add_bias(s, n, s.v.data(), L.bv, kv_dim);
  }
  // The config's rotary (rot_dims() of each head, adjacent pairs or half split) on q and k of every token.
  void rotary(run_state<P>& s, std::uint32_t n) const noexcept {
    const std::uint32_t dim = cfg_.dim, kv_dim = cfg_.kv_dim(), hs = cfg_.head_dim, rot = cfg_.rot_dims();
    const bool half_split = cfg_.rope == rope_style::half_split;
    per_token(s, n, [&](std::size_t t) noexcept {
      const float *fc = s.rope_cos.data() + t * (hs / 2), *fs = s.rope_sin.data() + t * (hs / 2);
      K::rope_partial(s.q.data() + t * dim, dim, hs, rot, half_split, fc, fs);
      K::rope_partial(s.k.data() + t * kv_dim, kv_dim, hs, rot, half_split, fc, fs);
    });
  }
  // q *= sqrt(head_dim), for unscaled attention (the attention op divides the scores by it).
  void unscale_q(run_state<P>& s, std::uint32_t n) const noexcept {
    const std::uint32_t dim = cfg_.dim, hs = cfg_.head_dim;
    per_token(s, n, [&](std::size_t t) noexcept { K::scale(s.q.data() + t * dim, std::sqrt(static_cast<float>(hs)), dim); });
  }
  // Causal attention of the batch in layer l (keys and values enter the cache first), into xb; window > 0:
  // each query sees only the last `window` positions.
  void attend(run_state<P>& s, std::uint32_t l, std::uint32_t pos, std::uint32_t n, std::uint32_t window = 0) const noexcept {
    if (s.kv == kv_type::f32) attend_cache(s, s.key_cache.data(), s.value_cache.data(), l, pos, n, window);
    else attend_cache(s, s.key_cache16.data(), s.value_cache16.data(), l, pos, n, window);
  }
  // xb2 = the attention's output projection of xb, plus its bias.
  void out_proj(run_state<P>& s, const layer_weights& L, std::uint32_t n) const noexcept {
    matmul_rows(s, s.xb.data(), cfg_.dim, n, {{L.wo, s.xb2.data(), cfg_.dim}});
    add_bias(s, n, s.xb2.data(), L.bo, cfg_.dim);
  }
  // The gated MLP, xb = down(silu(gate xb) * up xb).
  void swiglu_mlp(run_state<P>& s, const layer_weights& L, std::uint32_t n) const noexcept {
    const std::uint32_t dim = cfg_.dim, hidden = cfg_.hidden_dim;
    matmul_rows(s, s.xb.data(), dim, n, {{L.w1, s.hb.data(), hidden}, {L.w3, s.hb2.data(), hidden}});
    per_token(s, n, [&](std::size_t t) noexcept { K::silu_mul(s.hb.data() + t * hidden, s.hb2.data() + t * hidden, hidden); });
    matmul_rows(s, s.hb.data(), hidden, n, {{L.w2, s.xb.data(), dim}});
  }
  // The GELU MLP, xb = down(gelu(up xb + b_up)) + b_down, with the config's GELU (tanh or erf).
  void gelu_mlp(run_state<P>& s, const layer_weights& L, std::uint32_t n) const noexcept {
    const std::uint32_t dim = cfg_.dim, hidden = cfg_.hidden_dim;
    matmul_rows(s, s.xb.data(), dim, n, {{L.w3, s.hb.data(), hidden}});
    add_bias(s, n, s.hb.data(), L.b3, hidden);
    per_token(s, n, [&](std::size_t t) noexcept {
      if (cfg_.ffn == ffn_kind::gelu_tanh) K::gelu_tanh(s.hb.data() + t * hidden, hidden);
      else K::gelu_erf(s.hb.data() + t * hidden, hidden);
    });
    matmul_rows(s, s.hb.data(), hidden, n, {{L.w2, s.xb.data(), dim}});
    add_bias(s, n, s.xb.data(), L.b2, dim);
  }
  // Final norm and classifier (plus its bias), only for the positions whose logits are wanted.
  std::span<const float> classify(run_state<P>& s, std::uint32_t n, logits_for which) const noexcept {
    if (which == logits_for::none) return {};
    const std::uint32_t dim = cfg_.dim, vocab = cfg_.vocab_size;
    const std::uint32_t first = (which == logits_for::all && n > 1) ? 0 : n - 1, m = n - first;
    float* xl = s.x.data() + std::size_t{first} * dim;
    norm_rows(s, xl, xl, w_.output_norm, w_.output_norm_b, m);
    matmul_rows(s, xl, dim, m, {{w_.output, s.logits.data(), vocab}});
    add_bias(s, m, s.logits.data(), w_.output_b, vocab);
    return {s.logits.data(), std::size_t{m} * vocab};
  }

  // RMSNorm, or LayerNorm with its bias.
  void norm_rows(run_state<P>& s, float* o, const float* xin, const float* weight, const float* b, std::uint32_t n) const noexcept {
    if (cfg_.norm == norm_kind::rms) return rmsnorm_rows(s, o, xin, weight, n);
    const std::size_t dim = cfg_.dim;
    per_token(s, n, [&](std::size_t t) noexcept { K::layernorm(o + t * dim, xin + t * dim, weight, b, dim, cfg_.norm_eps); });
  }

  // Row stride of the activations a weight type T dots against, for `cols` columns: floats for f32, else
  // whole blocks.
  template <class T>
  static std::size_t act_stride(std::size_t cols) noexcept {
    using A = typename T::activation;
    if constexpr (std::is_same_v<typename A::block_type, float>) return cols;
    else return (cols + A::block_size - 1) / A::block_size;
  }
  // Where those activations are: x itself for f32, else the state's buffer of T's activation format.
  template <class T>
  static const typename T::activation::block_type* act_data(const run_state<P>& s, const float* xin) noexcept {
    constexpr act_kind k = activation_kind<T>();
    if constexpr (k == act_kind::f32) return xin;
    else if constexpr (k == act_kind::q8_0) return s.xq.data();
    else if constexpr (k == act_kind::q8_sum) return s.xqs.data();
    else return s.xqk.data();
  }

  // The token embedding row of `token` as floats.
  void embed(std::int32_t token, float* out) const noexcept {
    visit_type(types{}, w_.token_embd.type, [&](auto tag) {
      using T = decltype(tag);
      T::dequantize_row(w_.token_embd.template as<T>().row(static_cast<std::uint32_t>(token)), out, cfg_.dim);
    });
  }

  // f(t) for every token of the batch, spread over the workers (tokens are independent; one token runs
  // inline on the caller).
  template <class F>
  static void per_token(run_state<P>& s, std::uint32_t n, F&& f) noexcept {
    s.exec.for_each(n, 1, [&](std::size_t b, std::size_t e, unsigned) noexcept {
      for (std::size_t t = b; t < e; ++t) f(t);
    });
  }

  void rmsnorm_rows(run_state<P>& s, float* o, const float* xin, const float* weight, std::uint32_t n) const noexcept {
    const std::size_t dim = cfg_.dim;
    per_token(s, n, [&](std::size_t t) noexcept { K::rmsnorm(o + t * dim, xin + t * dim, weight, dim, cfg_.norm_eps); });
  }

  struct product {
    const wmatrix& w;
    float* y;           // (n, ldy)
    std::uint32_t ldy;  // output row stride (= the matrix's rows)
  };

  // y_i = x . W_i^T for one or more matrices that share x (n rows of `cols` floats), as one parallel region
  // over their rows (threads get row ranges in multiples of 16; the split cannot change a value: matmul's
  // contract). First x is quantized, once per activation format the matrices' types take (q8_0 for Q8_0 /
  // Q4_0 / Q5_0, q8_sum for Q4_1 / Q5_1, q8_k for the K-quants; f32 reads x), each row's last block
  // zero-padded when cols is not a whole number of blocks (hidden_dim 172), as the converted weight rows are.
  void matmul_rows(run_state<P>& s, const float* xin, std::size_t cols, std::uint32_t n, std::initializer_list<product> ps) const noexcept {
    bool need[4] = {};
    for (const product& p : ps) visit_type(types{}, p.w.type, [&](auto tag) { need[static_cast<int>(activation_kind<decltype(tag)>())] = true; });
    if (need[static_cast<int>(act_kind::q8_0)]) {
      const std::size_t st = (cols + 31) / 32;
      per_token(s, n, [&](std::size_t t) noexcept { K::quantize_q8_0(xin + t * cols, s.xq.data() + t * st, cols); });
    }
    if (need[static_cast<int>(act_kind::q8_sum)]) {
      const std::size_t st = (cols + 31) / 32;
      per_token(s, n, [&](std::size_t t) noexcept { K::quantize_q8_sum(xin + t * cols, s.xqs.data() + t * st, cols); });
    }
    if (need[static_cast<int>(act_kind::q8_k)]) {
      const std::size_t st = (cols + 255) / 256;
      per_token(s, n, [&](std::size_t t) noexcept { K::quantize_q8_k(xin + t * cols, s.xqk.data() + t * st, cols); });
    }
    const product* list = ps.begin();
    const std::size_t count = ps.size();
    std::size_t total = 0;
    for (const product& p : ps) total += (p.w.rows + 15) / 16;
    const auto body = [&](std::size_t b, std::size_t e, unsigned) noexcept {
      std::size_t base = 0;  // in units of 16 rows
      for (std::size_t i = 0; i < count; ++i) {
        const product& p = list[i];
        const std::size_t units = (p.w.rows + 15) / 16;
        const std::size_t ub = std::max(b, base), ue = std::min(e, base + units);
        if (ub < ue) {
          const auto r0 = static_cast<std::uint32_t>((ub - base) * 16);
          const auto r1 = static_cast<std::uint32_t>(std::min<std::size_t>((ue - base) * 16, p.w.rows));
          visit_type(types{}, p.w.type, [&](auto tag) {
            using T = decltype(tag);
            K::matmul(p.y, p.ldy, p.w.template as<T>(), act_data<T>(s, xin), act_stride<T>(cols), n, r0, r1);
          });
        }
        base += units;
      }
    };
    s.exec.for_each(total, 1, body);
  }

  // Store the batch's keys and values at positions pos.. of layer l, then attention for every
  // (token, head) pair, spread over the workers (each has its own row of scores).
  template <class KV>
  void attend_cache(run_state<P>& s, KV* kc, KV* vc, std::uint32_t l, std::uint32_t pos, std::uint32_t n, std::uint32_t window) const noexcept {
    const model_config& c = cfg_;
    const std::uint32_t kv_dim = c.kv_dim();
    const std::size_t loff = std::size_t{l} * s.context * kv_dim;  // this layer's slice of the KV cache
    K::store_kv(kc + loff + std::size_t{pos} * kv_dim, s.k.data(), std::size_t{n} * kv_dim);
    K::store_kv(vc + loff + std::size_t{pos} * kv_dim, s.v.data(), std::size_t{n} * kv_dim);
    attention_args<KV> a;
    a.out = s.xb.data();
    a.ld_out = c.dim;
    a.q = s.q.data();
    a.ld_q = c.dim;
    a.k = kc + loff;
    a.v = vc + loff;
    a.kv_dim = kv_dim;
    a.head_dim = c.head_dim;
    a.n_heads = c.n_heads;
    a.kv_mul = c.n_heads / c.n_kv_heads;
    a.pos = pos;
    a.n = n;
    float* att = s.att.data();
    const std::size_t ctx = s.context;
    if (window == 0 || pos + n <= window) {
      s.exec.for_each(std::size_t{n} * c.n_heads, 1, [&](std::size_t b, std::size_t e, unsigned w) noexcept { K::attention(a, b, e, att + w * ctx); });
      return;
    }
    // local attention (gpt_neo): query at position p sees keys max(0, p - window + 1) .. p, one query at a
    // time over the cache rows from its first key on (the op's own causal rule then does the rest)
    for (std::uint32_t t = 0; t < n; ++t) {
      const std::uint32_t p = pos + t, start = p + 1 > window ? p + 1 - window : 0;
      attention_args<KV> b = a;
      b.out = a.out + std::size_t{t} * a.ld_out;
      b.q = a.q + std::size_t{t} * a.ld_q;
      b.k = a.k + std::size_t{start} * kv_dim;
      b.v = a.v + std::size_t{start} * kv_dim;
      b.pos = p - start;
      b.n = 1;
      s.exec.for_each(c.n_heads, 1, [&](std::size_t i0, std::size_t i1, unsigned w) noexcept { K::attention(b, i0, i1, att + w * ctx); });
    }
  }

  model_config cfg_;
  arch_family family_ = arch_family::llama;
  model_file file_;  // keeps the bytes (and thus in-place weights) alive
  model_weights w_;
};

}  // namespace edgelm

// Each family's forward (a member of transformer<P, K>; one not called is never instantiated: EDGELM_LLAMA_ONLY).
#include "families/llama.hpp"
#include "families/qwen2.hpp"
#include "families/gpt2.hpp"
#include "families/gpt_neo.hpp"
#include "families/gpt_neox.hpp"
#include "families/phi.hpp"
