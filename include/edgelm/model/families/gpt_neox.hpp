// edgelm/model/families/gpt_neox.hpp - the gpt_neox forward: Pythia, GPT-NeoX. LayerNorm blocks whose attention
// and MLP both read the block's input and are added to it together (use_parallel_residual; false: one after the
// other, as GPT-2), partial half-split rotary (rotary_pct of each head), and the exact erf GELU.
// Tensors: HF names in formats/hf_model.hpp (hf_gpt_neox_layer / _global: query_key_value split per head into q /
// k / v); GGUF as llama.cpp's gptneox writes them, bound by weights.hpp.
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_gpt_neox(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                           logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  const bool parallel = c.residual == residual_kind::parallel;
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows -> x, and the rotation angles of every position

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention: layernorm, q k v (with biases when attention_bias), partial rotary, causal attention
    norm_rows(s, xb, x, L.attn_norm, L.attn_norm_b, n);
    qkv_proj(s, L, n);
    rotary(s, n);
    attend(s, l, pos, n);
    out_proj(s, L, n);
    if (!parallel) add_rows(s, n, x, s.xb2.data());  // residual

    // feed-forward: down(gelu(up x + b)) + b, of x before the attention's residual when parallel
    norm_rows(s, xb, x, L.ffn_norm, L.ffn_norm_b, n);
    gelu_mlp(s, L, n);
    if (parallel) add_rows(s, n, x, s.xb2.data());  // x + attn(ln1 x) + mlp(ln2 x)
    add_rows(s, n, x, xb);
  }

  return classify(s, n, which);  // final layernorm and classifier (embed_out)
}

}  // namespace edgelm
