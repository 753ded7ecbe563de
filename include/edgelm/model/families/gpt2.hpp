// edgelm/model/families/gpt2.hpp - the gpt2 forward: GPT-2 and DistilGPT-2. Learned position embeddings (no
// rotary), pre-norm LayerNorm blocks, biases on every projection, the GELU MLP ("gelu_new": tanh), and attention
// scores scaled by 1 / sqrt(head_dim) unless the config says scale_attn_weights false.
// Tensors: HF names in formats/hf_model.hpp (hf_gpt2_layer / _global: Conv1D weights transposed, c_attn split into
// q / k / v); GGUF as llama.cpp's gpt2 writes them (attn_qkv split at read time), bound by weights.hpp.
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_gpt2(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                       logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows + position rows -> x

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention: layernorm, q k v with biases, causal attention, output projection with bias
    norm_rows(s, xb, x, L.attn_norm, L.attn_norm_b, n);
    qkv_proj(s, L, n);
    if (!c.scaled_attention) unscale_q(s, n);
    attend(s, l, pos, n);
    out_proj(s, L, n);
    add_rows(s, n, x, s.xb2.data());  // residual

    // feed-forward: down(gelu(up x + b)) + b
    norm_rows(s, xb, x, L.ffn_norm, L.ffn_norm_b, n);
    gelu_mlp(s, L, n);
    add_rows(s, n, x, xb);  // residual
  }

  return classify(s, n, which);  // final layernorm and classifier (tied to the embedding)
}

}  // namespace edgelm
