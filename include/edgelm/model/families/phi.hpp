// edgelm/model/families/phi.hpp - the phi forward: Phi-1, Phi-1.5, Phi-2. One LayerNorm per block, read by both
// the attention and the MLP, whose outputs are added to the block's input together (parallel residual); partial
// half-split rotary (partial_rotary_factor of each head); biases everywhere, the classifier's too.
// Tensors: HF names in formats/hf_model.hpp (hf_phi_layer / _global); GGUF as llama.cpp's phi2 writes them, bound
// by weights.hpp (ffn_norm is attn_norm: one norm).
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_phi(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                      logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows -> x, and the rotation angles of every position

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention: layernorm, q k v with biases, partial rotary, causal attention, output projection with bias
    norm_rows(s, xb, x, L.attn_norm, L.attn_norm_b, n);
    qkv_proj(s, L, n);
    rotary(s, n);
    attend(s, l, pos, n);
    out_proj(s, L, n);

    // feed-forward of the same norm of x (recomputed: the attention overwrote xb): down(gelu(up x + b)) + b
    norm_rows(s, xb, x, L.ffn_norm, L.ffn_norm_b, n);
    gelu_mlp(s, L, n);
    add_rows(s, n, x, s.xb2.data());  // x + attn(ln x) + mlp(ln x)
    add_rows(s, n, x, xb);
  }

  return classify(s, n, which);  // final layernorm and classifier with its bias
}

}  // namespace edgelm
