// edgelm/model/families/qwen2.hpp - the qwen2 forward: Qwen1.5, Qwen2, Qwen2.5. The llama block with biases on
// q, k and v, and rotary in NeoX's half-split order (the checkpoints' own q / k row order, not permuted).
// Tensors: HF names in formats/hf_model.hpp (hf_qwen2_layer / _global); GGUF as llama.cpp's qwen2 writes them, bound
// by weights.hpp (the q/k/v biases from the config's qkv_bias).
#pragma once
#include "../transformer.hpp"

namespace edgelm {

template <weight_policy P, class K>
std::span<const float> transformer<P, K>::forward_qwen2(run_state<P>& s, std::span<const std::int32_t> tokens, std::uint32_t pos,
                                                        logits_for which) const noexcept {
  const model_config& c = cfg_;
  const std::uint32_t n = static_cast<std::uint32_t>(tokens.size());
  float* x = s.x.data();
  float* xb = s.xb.data();

  embed_batch(s, tokens, pos);  // token rows -> x, and the rotation angles of every position

  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const layer_weights& L = w_.layers[l];
    // attention: rmsnorm, q k v with their biases, half-split rotary (of rot_dims()), causal attention
    rmsnorm_rows(s, xb, x, L.attn_norm, n);
    qkv_proj(s, L, n);
    rotary(s, n);
    attend(s, l, pos, n);
    out_proj(s, L, n);
    add_rows(s, n, x, s.xb2.data());  // residual

    // feed-forward: down(silu(gate x) * up x)
    rmsnorm_rows(s, xb, x, L.ffn_norm, n);
    swiglu_mlp(s, L, n);
    add_rows(s, n, x, xb);  // residual
  }

  return classify(s, n, which);  // final rmsnorm and classifier
}

}  // namespace edgelm
