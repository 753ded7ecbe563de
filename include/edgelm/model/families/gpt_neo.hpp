// edgelm/model/families/gpt_neo.hpp - the gpt_neo forward: GPT-Neo (EleutherAI; TinyStories' models). GPT-2's
// block with separate bias-free q / k / v, unscaled attention scores (no 1 / sqrt(head_dim)), and layers that
// alternate global attention with local attention over the last window_size positions (config.window).
// Tensors: HF names in formats/hf_model.hpp (hf_gpt_neo_layer, GPT-2's globals); GGUF "gptneo", edgelm's own
// layout (quantize.hpp family_gguf_layout; llama.cpp has no GPT-Neo), bound by weights.hpp.
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_gpt_neo(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                          logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows + position rows -> x

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention: layernorm, q k v, unscaled scores, global or local (window > 0) causal attention
    norm_rows(s, xb, x, L.attn_norm, L.attn_norm_b, n);
    qkv_proj(s, L, n);
    unscale_q(s, n);
    attend(s, l, pos, n, l < c.window.size() ? c.window[l] : 0);
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
