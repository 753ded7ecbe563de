// edgelm/model/families/llama.hpp - the llama forward: Llama 2, TinyLlama, SmolLM / SmolLM2, Mistral-style GQA,
// Llama 3 with RoPE scaling (rope_freqs). Pre-norm blocks of RMSNorm, grouped-query attention with rotary on
// adjacent pairs, and the gated SiLU MLP: llama2.c's run.c operation for operation (its golden outputs are
// byte-identical), for a batch of tokens.
// Tensors: GGUF llama names as they are (weights.hpp make_weights); llama2.c files (formats/llama2c.hpp); Hugging
// Face llama / mistral folders with q / k rows permuted back to adjacent pairs (formats/hf_model.hpp).
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_llama(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                        logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  const std::uint32_t dim = c.dim, kv_dim = c.kv_dim(), hs = c.head_dim;
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows -> x, and the rotation angles of every position

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention rmsnorm, then q, k, v of every token (one parallel region over the rows of all three)
    rmsnorm_rows(s, xb, x, L.attn_norm, n);
    matmul_rows(s, xb, dim, n, {{L.wq, s.q.data(), dim}, {L.wk, s.k.data(), kv_dim}, {L.wv, s.v.data(), kv_dim}});
    per_token(s, n, [&](std::size_t t) noexcept {
      K::rope(s.q.data() + t * dim, s.k.data() + t * kv_dim, dim, kv_dim, hs, s.rope_cos.data() + t * (hs / 2), s.rope_sin.data() + t * (hs / 2));
    });

    // causal attention of the batch over positions 0 .. pos + t, into xb, then its output projection
    attend(s, l, pos, n);
    matmul_rows(s, xb, dim, n, {{L.wo, s.xb2.data(), dim}});
    add_rows(s, n, x, s.xb2.data());  // residual

    // feed-forward: w2(silu(w1 x) * w3 x)
    rmsnorm_rows(s, xb, x, L.ffn_norm, n);
    swiglu_mlp(s, L, n);
    add_rows(s, n, x, xb);  // residual
  }

  return classify(s, n, which);  // final rmsnorm and classifier
}

}  // namespace edgelm
