// edgelm/model/transformer.hpp - the Llama-family decoder (Llama 2, TinyLlama, SmolLM, Mistral-style GQA)
// in precision P with kernels K. forward() reads top to bottom like llama2.c's run.c.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>

#include "../core/buffer.hpp"
#include "../core/log.hpp"
#include "../core/result.hpp"
#include "../formats/model_file.hpp"
#include "../kernels/scalar.hpp"
#include "weights.hpp"

namespace edgelm {

// Activations and the KV cache of one sequence, allocated once (nothing allocates inside forward).
template <precision P>
struct run_state {
  using act_block = typename P::activation::block_type;
  std::uint32_t context = 0;       // positions the KV cache holds
  aligned_buffer<float> x;         // (dim) residual stream
  aligned_buffer<float> xb;        // (dim)
  aligned_buffer<float> xb2;       // (dim)
  aligned_buffer<float> hb;        // (hidden_dim)
  aligned_buffer<float> hb2;       // (hidden_dim)
  aligned_buffer<float> q;         // (dim)
  aligned_buffer<float> att;       // (n_heads, context)
  aligned_buffer<float> logits;    // (vocab)
  aligned_buffer<float> rope_cos;  // (head_dim / 2) RoPE angles of the current position
  aligned_buffer<float> rope_sin;  // (head_dim / 2)
  aligned_buffer<float> key_cache;    // (layer, context, kv_dim)
  aligned_buffer<float> value_cache;  // (layer, context, kv_dim)
  aligned_buffer<act_block> xq;    // activations in P's dot-product precision: blocks for max(dim, hidden)
                                   // elements, the last zero-padded (matches matrix<P>'s padded rows)

  // Bytes held by this state (the KV cache dominates).
  std::size_t bytes() const noexcept {
    return (x.size() + xb.size() + xb2.size() + hb.size() + hb2.size() + q.size() + att.size() + logits.size() + key_cache.size() +
            value_cache.size()) * sizeof(float) + xq.size() * sizeof(act_block);
  }
};

template <precision P, class K = kernels::scalar>
class transformer {
 public:
  using precision_type = P;
  using kernels_type = K;

  transformer() = default;

  // Build from a parsed file: validates the config and binds/converts the weights.
  static result<transformer> from_file(model_file mf, const logger& log = {}) {
    transformer t;
    auto w = make_weights<P>(mf, log);
    if (!w) return w.error();
    t.w_ = std::move(*w);
    t.cfg_ = mf.config;
    t.file_ = std::move(mf);
    return t;
  }

  const model_config& config() const noexcept { return cfg_; }
  const model_file& file() const noexcept { return file_; }
  const weights<P>& w() const noexcept { return w_; }

  // A fresh state for `context` positions (0: the model's trained context).
  result<run_state<P>> make_state(std::uint32_t context = 0) const {
    const model_config& c = cfg_;
    if (context == 0) context = c.seq_len;
    if (context > limits::max_context) return make_error(errc::invalid_argument, "context larger than EDGELM_MAX_CONTEXT");
    run_state<P> s;
    s.context = context;
    std::uint64_t kv = 0;
    if (!detail::mul_ok(std::uint64_t{c.n_layers} * context, c.kv_dim(), kv) || !detail::fits_size_t(kv))
      return make_error(errc::out_of_memory, "KV cache size overflows");
    const std::size_t act_n = (std::max(c.dim, c.hidden_dim) + P::activation::block_size - 1) / P::activation::block_size;
    struct { aligned_buffer<float>* b; std::size_t n; } fl[] = {
        {&s.x, c.dim}, {&s.xb, c.dim}, {&s.xb2, c.dim}, {&s.hb, c.hidden_dim}, {&s.hb2, c.hidden_dim}, {&s.q, c.dim},
        {&s.att, std::size_t{c.n_heads} * context}, {&s.logits, c.vocab_size}, {&s.rope_cos, c.head_dim / 2}, {&s.rope_sin, c.head_dim / 2}, {&s.key_cache, static_cast<std::size_t>(kv)},
        {&s.value_cache, static_cast<std::size_t>(kv)}};
    for (auto& f : fl) {
      auto b = aligned_buffer<float>::make(f.n);
      if (!b) return b.error();
      *f.b = std::move(*b);
    }
    auto xq = aligned_buffer<typename run_state<P>::act_block>::make(act_n);
    if (!xq) return xq.error();
    s.xq = std::move(*xq);
    return s;
  }

  // Run `token` at position `pos` (0-based) and return the logits over the vocabulary (valid until the
  // next call with the same state). Callers check 0 <= token < vocab and pos < s.context.
  std::span<const float> forward(run_state<P>& s, std::int32_t token, std::uint32_t pos) const noexcept {
    const model_config& c = cfg_;
    const std::uint32_t dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, hs = c.head_dim;
    const std::uint32_t kv_mul = c.n_heads / c.n_kv_heads;  // query heads per KV head (GQA)
    float* x = s.x.data();

    // rotation angles of this position, shared by every layer
    K::rope_table(s.rope_cos.data(), s.rope_sin.data(), hs, pos, c.rope_theta);

    // token embedding row -> x (the first dim elements of the row's blocks)
    P::dequantize_row(w_.token_embd.row(static_cast<std::uint32_t>(token)), x, dim);

    for (std::uint32_t l = 0; l < c.n_layers; ++l) {
      const auto& L = w_.layers[l];
      const std::size_t loff = std::size_t{l} * s.context * kv_dim;  // this layer's slice of the KV cache
      float* k = s.key_cache.data() + loff + std::size_t{pos} * kv_dim;
      float* v = s.value_cache.data() + loff + std::size_t{pos} * kv_dim;

      // attention rmsnorm, then q, k, v for this position (k and v straight into the cache)
      K::rmsnorm(s.xb.data(), x, L.attn_norm, dim, c.norm_eps);
      const auto* xa = activations(s, s.xb.data(), dim);
      K::matvec(s.q.data(), L.wq, xa);
      K::matvec(k, L.wk, xa);
      K::matvec(v, L.wv, xa);
      K::rope(s.q.data(), k, dim, kv_dim, hs, s.rope_cos.data(), s.rope_sin.data());

      // multi-head attention over positions 0..pos
      const float scale = std::sqrt(static_cast<float>(hs));
      for (std::uint32_t h = 0; h < c.n_heads; ++h) {
        const float* q = s.q.data() + std::size_t{h} * hs;
        float* att = s.att.data() + std::size_t{h} * s.context;
        const std::size_t kv_off = loff + std::size_t{h / kv_mul} * hs;
        for (std::uint32_t t = 0; t <= pos; ++t) {
          const float* kt = s.key_cache.data() + kv_off + std::size_t{t} * kv_dim;
          att[t] = K::dot(q, kt, hs) / scale;
        }
        K::softmax(att, pos + 1);
        float* xb = s.xb.data() + std::size_t{h} * hs;
        std::memset(xb, 0, hs * sizeof(float));
        for (std::uint32_t t = 0; t <= pos; ++t) K::axpy(xb, att[t], s.value_cache.data() + kv_off + std::size_t{t} * kv_dim, hs);
      }
      K::matvec(s.xb2.data(), L.wo, activations(s, s.xb.data(), dim));
      K::add(x, s.xb2.data(), dim);  // residual

      // feed-forward: w2(silu(w1 x) * w3 x)
      K::rmsnorm(s.xb.data(), x, L.ffn_norm, dim, c.norm_eps);
      const auto* xf = activations(s, s.xb.data(), dim);
      K::matvec(s.hb.data(), L.w1, xf);
      K::matvec(s.hb2.data(), L.w3, xf);
      K::silu_mul(s.hb.data(), s.hb2.data(), hidden);
      K::matvec(s.xb.data(), L.w2, activations(s, s.hb.data(), hidden));
      K::add(x, s.xb.data(), dim);  // residual
    }

    K::rmsnorm(x, x, w_.output_norm, dim, c.norm_eps);
    K::matvec(s.logits.data(), w_.output, activations(s, x, dim));
    return {s.logits.data(), c.vocab_size};
  }

 private:
  // x in the precision the weights' dot product wants: f32 uses x itself, quantized precisions
  // quantize it once into s.xq (shared by the q, k, v / gate, up matvecs). When n is not a whole number
  // of blocks (hidden_dim 172) the last block is zero-padded, as the converted weight rows are.
  static const typename P::activation::block_type* activations(run_state<P>& s, const float* x, std::size_t n) noexcept {
    if constexpr (std::is_same_v<typename P::activation::block_type, float>) {
      (void)s;
      (void)n;
      return x;
    } else {
      P::activation::quantize_row(x, s.xq.data(), n);
      return s.xq.data();
    }
  }

  model_config cfg_;
  model_file file_;  // keeps the bytes (and thus in-place weights) alive
  weights<P> w_;
};

}  // namespace edgelm
