// edgelm/formats/hf_model.hpp - a Hugging Face model (a bundle of config.json [+ generation_config.json] and
// model.safetensors, or model.safetensors.index.json + the shards it names) -> edgelm model_file, for the
// architectures whose forward this build has: the llama family (model_type llama and mistral; SmolLM/SmolLM2,
// TinyLlama, Llama 2 run the same forward), and qwen2, gpt2, gpt_neo, gpt_neox, phi (read_hf_family below: their
// tensors keep HF's half-split q/k order, which the family forward rotates as it is).
//
// The tensors are renamed to the GGUF names the binder uses (model.layers.N.self_attn.q_proj.weight ->
// blk.N.attn_q.weight, ...), and HF's q/k row order is undone. HF stores q_proj / k_proj for half-split (NeoX)
// rotary: within each head, the first head_dim/2 rows are the real parts and the next head_dim/2 the imaginary
// ones. edgelm's llama forward (like GGUF llama and llama2.c) rotates adjacent pairs, so each head's rows are
// interleaved back, row h*hd + 2i + j <- row h*hd + j*hd/2 + i (the inverse of transformers'
// convert_llama_weights_to_hf permute; llama.cpp's convert_hf_to_gguf.py does the same with n_head for q and
// n_head_kv for k). This is a row permutation, so it is done in the file's own dtype (f32/f16/bf16 bytes): a copy
// of q and k owned by the model_file, the pages of the originals handed back (their views are no longer used);
// every other tensor stays a zero-copy view into its shard. (When the family forwards gain half-split rotary,
// the copy can go: bind HF order as is with rope_style::half_split.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/buffer.hpp"
#include "../core/checked.hpp"
#include "../core/result.hpp"
#include "../detail/json.hpp"
#include "../storage/bundle.hpp"
#include "ggml_types.hpp"
#include "hf_config.hpp"
#include "model_file.hpp"
#include "safetensors.hpp"

namespace edgelm {

inline constexpr std::size_t hf_max_shards = 4096;

namespace detail {

// Keeps every storage of a multi-file model alive (and the tensors converted at read time).
struct hf_bytes final : byte_owner {
  std::vector<std::shared_ptr<byte_owner>> parts;  // the safetensors files
  std::vector<aligned_buffer<std::byte>> owned;    // q/k tensors with their rows permuted
  // The bytes of the single weights file (views of tensor_info::offset refer to it); empty when sharded.
  std::span<const std::byte> bytes() const noexcept override { return parts.size() == 1 ? parts[0]->bytes() : std::span<const std::byte>{}; }
  void release(std::span<const std::byte> part) const noexcept override {
    for (const auto& p : parts) {
      const auto b = p->bytes();
      if (!b.empty() && part.data() >= b.data() && part.data() + part.size() <= b.data() + b.size()) p->release(part);
    }
  }
};

// A shard file name from an index: a bare file name, nothing that could leave the folder.
inline bool safe_file_name(std::string_view n) noexcept {
  if (n.empty() || n.size() > 255 || n == "." || n == "..") return false;
  for (char c : n)
    if (c == '/' || c == '\\' || c == '\0' || c == ':') return false;
  return true;
}

}  // namespace detail

// model.safetensors.index.json -> the shard file names it uses (sorted, unique) and, for each tensor, its file.
struct hf_index {
  std::vector<std::string> shards;
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard
};
inline result<hf_index> read_hf_index(std::string_view text) {
  using namespace detail;
  const std::string what = "model.safetensors.index.json";
  if (text.size() > hf_config_max_bytes) return make_error(errc::count_too_large, "larger than 16 MiB", error::no_offset, what);
  auto j = parse_json(text, what);
  if (!j) {
    auto e = j.error();
    if (e.code == errc::invalid_argument) e.code = errc::bad_config;
    return e;
  }
  const auto* wm = member(*j, "weight_map");
  if (!wm) return make_error(errc::missing_key, "required key missing", error::no_offset, "weight_map");
  if (!wm->is_object()) return make_error(errc::bad_key_type, "must be an object {tensor: file}", error::no_offset, "weight_map");
  if (wm->size() > limits::max_tensors) return make_error(errc::count_too_large, "more tensors than EDGELM_MAX_TENSORS", error::no_offset, "weight_map");
  hf_index ix;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) return make_error(errc::bad_key_type, "must be a file name", error::no_offset, "weight_map." + it.key().substr(0, 64));
    const std::string& file = it.value().get_ref<const std::string&>();
    if (!safe_file_name(file)) return make_error(errc::bad_config, "'" + file.substr(0, 64) + "' is not a plain file name", error::no_offset, "weight_map." + it.key().substr(0, 64));
    ix.weight_map.emplace_back(it.key(), file);
    ix.shards.push_back(file);
  }
  std::sort(ix.shards.begin(), ix.shards.end());
  ix.shards.erase(std::unique(ix.shards.begin(), ix.shards.end()), ix.shards.end());
  if (ix.shards.size() > hf_max_shards) return make_error(errc::count_too_large, "more than 4096 shard files", error::no_offset, "weight_map");
  return ix;
}

// The tensors of the model's weights files, as one table: model.safetensors, or every shard the index names
// (each must be in the bundle, and hold the tensors the index says it does; a name in two files is
// duplicate_name). Views point into the bundle's storages, which `owner` collects.
inline result<std::vector<tensor_info>> read_hf_tensors(const bundle& b, detail::hf_bytes& owner) {
  std::vector<tensor_info> all;
  auto add_file = [&](const std::string& name) -> result<safetensors_file> {
    auto s = b.find(name);
    if (!s) return make_error(errc::io_error, "the model's file is missing", error::no_offset, name);
    auto f = parse_safetensors(s->bytes());
    if (!f) {
      auto e = f.error();
      e.msg += " (in " + name + ")";
      return e;
    }
    owner.parts.push_back(std::move(s));
    return f;
  };
  if (!b.contains("model.safetensors.index.json")) {
    auto f = add_file("model.safetensors");
    if (!f) return f.error();
    return std::move(f->tensors);
  }
  auto ix = read_hf_index(b.text("model.safetensors.index.json"));
  if (!ix) return ix.error();
  std::unordered_map<std::string, std::string> in_file;  // tensor -> the shard it was read from
  for (const auto& shard : ix->shards) {
    auto f = add_file(shard);
    if (!f) return f.error();
    if (all.size() + f->tensors.size() > limits::max_tensors) return make_error(errc::count_too_large, "more tensors than EDGELM_MAX_TENSORS", error::no_offset, shard);
    for (auto& t : f->tensors) {
      if (!in_file.emplace(t.name, shard).second) return make_error(errc::duplicate_name, "the tensor is in two shards (" + in_file[t.name] + ", " + shard + ")", error::no_offset, t.name);
      all.push_back(std::move(t));
    }
  }
  for (const auto& [tensor, shard] : ix->weight_map) {
    auto it = in_file.find(tensor);
    if (it == in_file.end() || it->second != shard)
      return make_error(errc::missing_tensor, "the index puts it in " + shard + ", which does not hold it", error::no_offset, tensor);
  }
  return all;
}

namespace detail {

// HF llama-family tensor names -> GGUF names. Per layer: model.layers.N.<hf> -> blk.N.<gguf>.
struct hf_name_map {
  std::string_view hf, gguf;
  std::uint8_t permute;  // 0: as is; 1: q rows (n_heads); 2: k rows (n_kv_heads)
};
inline constexpr hf_name_map hf_llama_layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight", 0},   {"self_attn.q_proj.weight", "attn_q.weight", 1},
    {"self_attn.k_proj.weight", "attn_k.weight", 2},     {"self_attn.v_proj.weight", "attn_v.weight", 0},
    {"self_attn.o_proj.weight", "attn_output.weight", 0}, {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", 0},      {"mlp.up_proj.weight", "ffn_up.weight", 0},
    {"mlp.down_proj.weight", "ffn_down.weight", 0},
};
inline constexpr hf_name_map hf_llama_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight", 0}, {"model.norm.weight", "output_norm.weight", 0}, {"lm_head.weight", "output.weight", 0}};

// Parse "<prefix><N>.<rest>" (prefix "model.layers." by default; N without leading zeros, < n_layers).
inline bool hf_layer_of(std::string_view name, std::uint32_t n_layers, std::uint32_t& layer, std::string_view& rest, std::string_view p = "model.layers.") {
  if (name.substr(0, p.size()) != p) return false;
  name.remove_prefix(p.size());
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i < 6) v = v * 10 + static_cast<unsigned>(name[i++] - '0');
  if (i == 0 || i >= name.size() || name[i] != '.' || (i > 1 && name[0] == '0') || v >= n_layers) return false;
  layer = static_cast<std::uint32_t>(v);
  rest = name.substr(i + 1);
  return true;
}

// Undo HF's half-split row order of a q/k projection (rows = n_heads * head_dim, each row `row_bytes`).
inline result<void> hf_unpermute_rows(tensor_info& t, std::uint32_t n_heads, hf_bytes& owner) {
  const std::uint64_t rows = t.ne[1];
  if (t.n_dims != 2 || rows == 0 || t.ne[0] == 0 || n_heads == 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
    return make_error(errc::shape_mismatch, std::to_string(rows) + " rows do not split into " + std::to_string(n_heads) + " heads of an even size", t.offset, t.name);
  if (!fits_size_t(t.n_bytes)) return make_error(errc::out_of_memory, "tensor larger than the address space", t.offset, t.name);
  auto buf = aligned_buffer<std::byte>::make_uninitialized(static_cast<std::size_t>(t.n_bytes));
  if (!buf) return buf.error();
  const std::uint64_t hd = rows / n_heads, half = hd / 2, row_bytes = t.n_bytes / rows;
  for (std::uint64_t h = 0; h < n_heads; ++h)
    for (std::uint64_t i = 0; i < half; ++i)
      for (std::uint64_t j = 0; j < 2; ++j)
        std::memcpy(buf->data() + (h * hd + 2 * i + j) * row_bytes, t.data + (h * hd + j * half + i) * row_bytes, static_cast<std::size_t>(row_bytes));
  owner.release({t.data, static_cast<std::size_t>(t.n_bytes)});  // the original rows are not read again
  t.data = buf->data();
  owner.owned.push_back(std::move(*buf));
  return {};
}

// The rotary frequencies of a scaled RoPE, transformers' formulas (modeling_rope_utils): linear divides every
// frequency by the factor; llama3 divides the low frequencies (wavelength above original / low_freq_factor)
// by it, keeps the high ones (below original / high_freq_factor) and interpolates smoothly between.
inline std::vector<float> hf_rope_freqs(const hf_config& h) {
  const hf_rope_scaling& s = *h.rope_scaling;
  const std::uint32_t rot = h.rotary_dim;
  std::vector<float> f(rot / 2);
  const double pi = 3.14159265358979323846;
  for (std::uint32_t i = 0; i < rot / 2; ++i) {
    const float inv = 1.0f / std::pow(h.rope_theta, static_cast<float>(2 * i) / static_cast<float>(rot));
    double v = inv;
    if (s.type == "linear") {
      v = inv / s.factor;
    } else {  // llama3
      const double old = s.original_max_position_embeddings, wavelen = 2 * pi / inv;
      const double low_wavelen = old / s.low_freq_factor, high_wavelen = old / s.high_freq_factor;
      if (wavelen > low_wavelen) {
        v = inv / s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        v = (1 - smooth) * inv / s.factor + smooth * inv;
      }
    }
    f[i] = static_cast<float>(v);
  }
  return f;
}

// hf_config -> model_config for the llama forward, refusing what that forward would compute differently.
inline result<model_config> hf_llama_config(const hf_config& h) {
  auto unsupported = [](std::string what, const char* key) {
    return make_error(errc::unsupported_architecture, what + " is not supported by this build's llama forward yet", error::no_offset, key);
  };
  if (h.hidden_act != "silu") return unsupported("hidden_act '" + h.hidden_act + "'", "hidden_act");
  if (h.attention_bias) return unsupported("attention_bias", "attention_bias");
  if (h.mlp_bias) return unsupported("mlp_bias", "mlp_bias");
  if (h.rope_scaling && h.rope_scaling->type != "llama3" && h.rope_scaling->type != "linear")
    return unsupported("rope scaling '" + h.rope_scaling->type + "'", "rope_scaling");
  if (h.rotary_dim != h.head_dim) return unsupported("partial rotary", "partial_rotary_factor");
  if (std::uint64_t{h.head_dim} * h.num_attention_heads != h.hidden_size)
    return unsupported("head_dim x num_attention_heads != hidden_size", "head_dim");
  model_config c;
  c.arch = "llama";
  c.dim = h.hidden_size;
  c.hidden_dim = h.intermediate_size;
  c.n_layers = h.num_hidden_layers;
  c.n_heads = h.num_attention_heads;
  c.n_kv_heads = h.num_key_value_heads;
  c.vocab_size = h.vocab_size;
  c.head_dim = h.head_dim;
  // A sliding window (Mistral v0.1) equals full attention for contexts up to the window: the trained context
  // edgelm offers is capped there, rather than silently attending further than the model did.
  c.seq_len = h.sliding_window ? std::min(h.max_position_embeddings, h.sliding_window) : h.max_position_embeddings;
  c.rope_theta = h.rope_theta;
  c.norm_eps = h.norm_eps;
  c.rope = rope_style::adjacent_pairs;  // after hf_unpermute_rows
  if (h.rope_scaling) c.rope_freqs = hf_rope_freqs(h);
  c.shared_classifier = h.tie_word_embeddings;
  return c;
}


// ---- the other families: qwen2, gpt2, gpt_neo, gpt_neox, phi ----
// Their tensors keep HF's rotary order (the forward rotates half-split, rope_style::half_split); what changes
// at read time is layout: GPT-2's Conv1D weights are stored [in, out] and are transposed to edgelm's
// [rows = out, cols = in]; fused q/k/v projections are split (GPT-2's c_attn [q | k | v], GPT-NeoX's
// query_key_value interleaved per head [head][q, k, v][head_dim]). Copies (in the file's dtype) are owned by
// the model_file; the rest stays zero-copy views.
enum class hf_op : std::uint8_t {
  as_is,
  conv1d,     // transpose [in, out] -> [out, in]
  fused,      // [q | k | v] rows (bias: elements) -> attn_{q,k,v}.<suffix>
  conv_fused, // conv1d, then fused
  neox_fused, // rows [head][q, k, v][head_dim] -> attn_{q,k,v}.<suffix>
  skip,       // a buffer some checkpoints save (masks, inv_freq): recomputed
};
struct hf_tensor_rule {
  std::string_view hf, gguf;  // for fused ops, gguf is the suffix ("weight" / "bias")
  hf_op op;
};
struct hf_family_table {
  std::string_view layer_prefix;
  std::span<const hf_tensor_rule> layer, global;
};
inline constexpr hf_tensor_rule hf_qwen2_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", hf_op::as_is},   {"self_attn.q_proj.weight", "attn_q.weight", hf_op::as_is},
    {"self_attn.k_proj.weight", "attn_k.weight", hf_op::as_is},     {"self_attn.v_proj.weight", "attn_v.weight", hf_op::as_is},
    {"self_attn.q_proj.bias", "attn_q.bias", hf_op::as_is},         {"self_attn.k_proj.bias", "attn_k.bias", hf_op::as_is},
    {"self_attn.v_proj.bias", "attn_v.bias", hf_op::as_is},         {"self_attn.o_proj.weight", "attn_output.weight", hf_op::as_is},
    {"post_attention_layernorm.weight", "ffn_norm.weight", hf_op::as_is}, {"mlp.gate_proj.weight", "ffn_gate.weight", hf_op::as_is},
    {"mlp.up_proj.weight", "ffn_up.weight", hf_op::as_is},          {"mlp.down_proj.weight", "ffn_down.weight", hf_op::as_is},
    {"self_attn.rotary_emb.inv_freq", "", hf_op::skip}};
inline constexpr hf_tensor_rule hf_qwen2_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight", hf_op::as_is}, {"model.norm.weight", "output_norm.weight", hf_op::as_is}, {"lm_head.weight", "output.weight", hf_op::as_is}};
inline constexpr hf_tensor_rule hf_gpt2_layer[] = {
    {"ln_1.weight", "attn_norm.weight", hf_op::as_is},        {"ln_1.bias", "attn_norm.bias", hf_op::as_is},
    {"attn.c_attn.weight", "weight", hf_op::conv_fused},      {"attn.c_attn.bias", "bias", hf_op::fused},
    {"attn.c_proj.weight", "attn_output.weight", hf_op::conv1d}, {"attn.c_proj.bias", "attn_output.bias", hf_op::as_is},
    {"ln_2.weight", "ffn_norm.weight", hf_op::as_is},         {"ln_2.bias", "ffn_norm.bias", hf_op::as_is},
    {"mlp.c_fc.weight", "ffn_up.weight", hf_op::conv1d},      {"mlp.c_fc.bias", "ffn_up.bias", hf_op::as_is},
    {"mlp.c_proj.weight", "ffn_down.weight", hf_op::conv1d},  {"mlp.c_proj.bias", "ffn_down.bias", hf_op::as_is},
    {"attn.bias", "", hf_op::skip},                           {"attn.masked_bias", "", hf_op::skip}};
inline constexpr hf_tensor_rule hf_gpt2_global[] = {
    {"transformer.wte.weight", "token_embd.weight", hf_op::as_is}, {"transformer.wpe.weight", "position_embd.weight", hf_op::as_is},
    {"transformer.ln_f.weight", "output_norm.weight", hf_op::as_is}, {"transformer.ln_f.bias", "output_norm.bias", hf_op::as_is},
    {"lm_head.weight", "output.weight", hf_op::as_is}};
inline constexpr hf_tensor_rule hf_gpt_neo_layer[] = {
    {"ln_1.weight", "attn_norm.weight", hf_op::as_is},        {"ln_1.bias", "attn_norm.bias", hf_op::as_is},
    {"attn.attention.q_proj.weight", "attn_q.weight", hf_op::as_is}, {"attn.attention.k_proj.weight", "attn_k.weight", hf_op::as_is},
    {"attn.attention.v_proj.weight", "attn_v.weight", hf_op::as_is}, {"attn.attention.out_proj.weight", "attn_output.weight", hf_op::as_is},
    {"attn.attention.out_proj.bias", "attn_output.bias", hf_op::as_is},
    {"ln_2.weight", "ffn_norm.weight", hf_op::as_is},         {"ln_2.bias", "ffn_norm.bias", hf_op::as_is},
    {"mlp.c_fc.weight", "ffn_up.weight", hf_op::as_is},       {"mlp.c_fc.bias", "ffn_up.bias", hf_op::as_is},
    {"mlp.c_proj.weight", "ffn_down.weight", hf_op::as_is},   {"mlp.c_proj.bias", "ffn_down.bias", hf_op::as_is},
    {"attn.attention.bias", "", hf_op::skip},                 {"attn.attention.masked_bias", "", hf_op::skip}};
inline constexpr hf_tensor_rule hf_gpt_neox_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", hf_op::as_is}, {"input_layernorm.bias", "attn_norm.bias", hf_op::as_is},
    {"attention.query_key_value.weight", "weight", hf_op::neox_fused}, {"attention.query_key_value.bias", "bias", hf_op::neox_fused},
    {"attention.dense.weight", "attn_output.weight", hf_op::as_is}, {"attention.dense.bias", "attn_output.bias", hf_op::as_is},
    {"post_attention_layernorm.weight", "ffn_norm.weight", hf_op::as_is}, {"post_attention_layernorm.bias", "ffn_norm.bias", hf_op::as_is},
    {"mlp.dense_h_to_4h.weight", "ffn_up.weight", hf_op::as_is}, {"mlp.dense_h_to_4h.bias", "ffn_up.bias", hf_op::as_is},
    {"mlp.dense_4h_to_h.weight", "ffn_down.weight", hf_op::as_is}, {"mlp.dense_4h_to_h.bias", "ffn_down.bias", hf_op::as_is},
    {"attention.bias", "", hf_op::skip}, {"attention.masked_bias", "", hf_op::skip}, {"attention.rotary_emb.inv_freq", "", hf_op::skip}};
inline constexpr hf_tensor_rule hf_gpt_neox_global[] = {
    {"gpt_neox.embed_in.weight", "token_embd.weight", hf_op::as_is}, {"gpt_neox.final_layer_norm.weight", "output_norm.weight", hf_op::as_is},
    {"gpt_neox.final_layer_norm.bias", "output_norm.bias", hf_op::as_is}, {"embed_out.weight", "output.weight", hf_op::as_is}};
inline constexpr hf_tensor_rule hf_phi_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", hf_op::as_is}, {"input_layernorm.bias", "attn_norm.bias", hf_op::as_is},
    {"self_attn.q_proj.weight", "attn_q.weight", hf_op::as_is},   {"self_attn.q_proj.bias", "attn_q.bias", hf_op::as_is},
    {"self_attn.k_proj.weight", "attn_k.weight", hf_op::as_is},   {"self_attn.k_proj.bias", "attn_k.bias", hf_op::as_is},
    {"self_attn.v_proj.weight", "attn_v.weight", hf_op::as_is},   {"self_attn.v_proj.bias", "attn_v.bias", hf_op::as_is},
    {"self_attn.dense.weight", "attn_output.weight", hf_op::as_is}, {"self_attn.dense.bias", "attn_output.bias", hf_op::as_is},
    {"mlp.fc1.weight", "ffn_up.weight", hf_op::as_is},            {"mlp.fc1.bias", "ffn_up.bias", hf_op::as_is},
    {"mlp.fc2.weight", "ffn_down.weight", hf_op::as_is},          {"mlp.fc2.bias", "ffn_down.bias", hf_op::as_is},
    {"self_attn.rotary_emb.inv_freq", "", hf_op::skip}};
inline constexpr hf_tensor_rule hf_phi_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight", hf_op::as_is}, {"model.final_layernorm.weight", "output_norm.weight", hf_op::as_is},
    {"model.final_layernorm.bias", "output_norm.bias", hf_op::as_is}, {"lm_head.weight", "output.weight", hf_op::as_is},
    {"lm_head.bias", "output.bias", hf_op::as_is}};

inline hf_family_table hf_table_of(hf_family f) {
  switch (f) {
    case hf_family::qwen2: return {"model.layers.", hf_qwen2_layer, hf_qwen2_global};
    case hf_family::gpt2: return {"transformer.h.", hf_gpt2_layer, hf_gpt2_global};
    case hf_family::gpt_neo: return {"transformer.h.", hf_gpt_neo_layer, hf_gpt2_global};
    case hf_family::gpt_neox: return {"gpt_neox.layers.", hf_gpt_neox_layer, hf_gpt_neox_global};
    default: return {"model.layers.", hf_phi_layer, hf_phi_global};
  }
}

// hf_config -> model_config of a family forward, refusing what it would compute differently.
inline result<model_config> hf_family_config(const hf_config& h) {
  const hf_family F = h.family;
  auto unsupported = [&](std::string what, const char* key) {
    return make_error(errc::unsupported_architecture, what + " is not supported by this build's " + h.model_type + " forward", error::no_offset, key);
  };
  model_config c;
  c.arch = F == hf_family::qwen2 ? "qwen2" : F == hf_family::gpt2 ? "gpt2" : F == hf_family::gpt_neo ? "gptneo" : F == hf_family::gpt_neox ? "gptneox" : "phi2";
  if (F == hf_family::qwen2) {
    if (h.hidden_act != "silu") return unsupported("hidden_act '" + h.hidden_act + "'", "hidden_act");
    c.ffn = ffn_kind::silu_gated;
  } else if (h.hidden_act == "gelu_new" || h.hidden_act == "gelu_pytorch_tanh" || h.hidden_act == "gelu_fast") {
    c.ffn = ffn_kind::gelu_tanh;
  } else if (h.hidden_act == "gelu") {
    c.ffn = ffn_kind::gelu_erf;
  } else {
    return unsupported("hidden_act '" + h.hidden_act + "'", "hidden_act");
  }
  if (h.rope_scaling) return unsupported("rope scaling '" + h.rope_scaling->type + "'", "rope_scaling");
  if (h.scale_attn_by_inverse_layer_idx) return unsupported("scale_attn_by_inverse_layer_idx", "scale_attn_by_inverse_layer_idx");
  if (std::uint64_t{h.head_dim} * h.num_attention_heads != h.hidden_size) return unsupported("head_dim x num_attention_heads != hidden_size", "head_dim");
  const bool fused = F == hf_family::gpt2 || F == hf_family::gpt_neox;
  if ((fused || F == hf_family::gpt_neo) && h.num_key_value_heads != h.num_attention_heads)
    return make_error(errc::bad_config, "this family has as many key/value heads as query heads", error::no_offset, "num_key_value_heads");
  c.dim = h.hidden_size;
  c.hidden_dim = h.intermediate_size;
  c.n_layers = h.num_hidden_layers;
  c.n_heads = h.num_attention_heads;
  c.n_kv_heads = h.num_key_value_heads;
  c.vocab_size = h.vocab_size;
  c.head_dim = h.head_dim;
  c.seq_len = h.sliding_window ? std::min(h.max_position_embeddings, h.sliding_window) : h.max_position_embeddings;
  c.rope_theta = h.rope_theta;
  c.norm_eps = h.norm_eps;
  c.shared_classifier = h.tie_word_embeddings;
  c.norm = F == hf_family::qwen2 ? norm_kind::rms : norm_kind::layer;
  c.rope = rope_style::half_split;
  c.learned_positions = h.learned_positions;
  c.n_rot = c.learned_positions ? 0 : h.rotary_dim;
  c.qkv_bias = F == hf_family::qwen2 || F == hf_family::gpt2 || F == hf_family::phi || (F == hf_family::gpt_neox && h.attention_bias);
  c.out_bias = F == hf_family::gpt2 || F == hf_family::gpt_neo || F == hf_family::phi || (F == hf_family::gpt_neox && h.attention_bias);
  c.ffn_bias = F != hf_family::qwen2;
  c.output_bias = F == hf_family::phi;
  c.residual = F == hf_family::phi ? residual_kind::parallel_shared : (F == hf_family::gpt_neox && h.use_parallel_residual) ? residual_kind::parallel : residual_kind::sequential;
  c.scaled_attention = F != hf_family::gpt_neo && h.scale_attn_weights;
  if (F == hf_family::gpt_neo && !h.attention_layers.empty()) {
    c.window.resize(c.n_layers, 0);
    for (std::uint32_t l = 0; l < c.n_layers; ++l)
      if (h.attention_layers[l] == "local") c.window[l] = h.window_size;
  }
  return c;
}

// Rows of a 2-D tensor (or elements of a 1-D one) gathered into a new tensor owned by `owner`: row i of the
// result is row rows[i] of t.
inline tensor_info hf_gather(const tensor_info& t, const std::vector<std::uint64_t>& rows, std::string name, hf_bytes& owner, error& err) {
  const std::uint64_t total = t.n_dims == 1 ? t.ne[0] : t.ne[1];
  const std::uint64_t row_bytes = t.n_bytes / (total ? total : 1);
  tensor_info out = t;
  out.name = std::move(name);
  auto buf = aligned_buffer<std::byte>::make_uninitialized(static_cast<std::size_t>(rows.size() * row_bytes));
  if (!buf) { err = buf.error(); return out; }
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::memcpy(buf->data() + i * row_bytes, t.data + rows[i] * row_bytes, static_cast<std::size_t>(row_bytes));
  if (t.n_dims == 1) out.ne[0] = rows.size();
  else out.ne[1] = rows.size();
  out.n_bytes = rows.size() * row_bytes;
  out.data = buf->data();
  owner.owned.push_back(std::move(*buf));
  return out;
}

// [in, out] -> [out, in] (element by element, in the tensor's dtype).
inline result<void> hf_transpose(tensor_info& t, hf_bytes& owner) {
  const auto& info = ggml_info(t.type);
  if (t.n_dims != 2 || info.block_size != 1 || t.n_bytes != t.ne[0] * t.ne[1] * info.type_size)
    return make_error(errc::shape_mismatch, "a Conv1D weight must be a 2-D float tensor", t.offset, t.name);
  const std::uint64_t R = t.ne[1], C = t.ne[0], es = info.type_size;  // R rows (in) of C (out)
  auto buf = aligned_buffer<std::byte>::make_uninitialized(static_cast<std::size_t>(t.n_bytes));
  if (!buf) return buf.error();
  for (std::uint64_t r = 0; r < R; ++r)
    for (std::uint64_t j = 0; j < C; ++j) std::memcpy(buf->data() + (j * R + r) * es, t.data + (r * C + j) * es, static_cast<std::size_t>(es));
  t.ne[0] = R;
  t.ne[1] = C;
  t.data = buf->data();
  owner.owned.push_back(std::move(*buf));
  return {};
}

// A fused q/k/v tensor -> its three parts (q_dim = dim, kv_dim = dim: these families have MHA).
inline result<void> hf_split_qkv(const tensor_info& t, const model_config& c, bool neox, const std::string& prefix, std::string_view suffix,
                                 std::vector<tensor_info>& out, hf_bytes& owner) {
  const std::uint64_t D = c.dim, hd = c.head_dim;
  const std::uint64_t total = t.n_dims == 1 ? t.ne[0] : t.ne[1];
  if (total != 3 * D || (t.n_dims == 2 && t.ne[0] != D) || t.n_dims > 2)
    return make_error(errc::shape_mismatch, "a fused q/k/v tensor needs " + std::to_string(3 * D) + " rows of " + std::to_string(D), t.offset, t.name);
  const char* parts[] = {"attn_q.", "attn_k.", "attn_v."};
  for (std::uint64_t p = 0; p < 3; ++p) {
    std::vector<std::uint64_t> rows(static_cast<std::size_t>(D));
    for (std::uint64_t i = 0; i < D; ++i) rows[i] = neox ? (i / hd) * 3 * hd + p * hd + i % hd : p * D + i;
    error err;
    tensor_info part = hf_gather(t, rows, prefix + parts[p] + std::string(suffix), owner, err);
    if (err.code != errc{}) return err;
    out.push_back(std::move(part));
  }
  return {};
}

inline result<model_file> read_hf_family(const hf_config& h, std::vector<tensor_info>& tensors, std::shared_ptr<hf_bytes> owner) {
  auto cfg = hf_family_config(h);
  if (!cfg) return cfg.error();
  model_file mf;
  mf.format = file_format::safetensors;
  mf.config = *cfg;
  const model_config& c = mf.config;
  const hf_family_table tab = hf_table_of(h.family);
  for (auto& t : tensors) {
    const hf_tensor_rule* m = nullptr;
    std::string prefix;
    std::uint32_t layer = 0;
    std::string_view rest;
    if (hf_layer_of(t.name, c.n_layers, layer, rest, tab.layer_prefix)) {
      for (const auto& x : tab.layer)
        if (x.hf == rest) m = &x;
      prefix = "blk." + std::to_string(layer) + ".";
    } else {
      for (const auto& x : tab.global)
        if (x.hf == t.name) m = &x;
    }
    if (!m) return make_error(errc::unsupported_architecture, "the tensor has no place in the " + h.model_type + " forward", t.offset, t.name);
    if (m->op == hf_op::skip) continue;
    if (m->gguf == "output.weight" && c.shared_classifier) continue;  // tied: transformers ignores a stored lm_head
    if (m->op == hf_op::conv1d || m->op == hf_op::conv_fused) EDGELM_TRY(hf_transpose(t, *owner));
    if (m->op == hf_op::fused || m->op == hf_op::conv_fused || m->op == hf_op::neox_fused) {
      EDGELM_TRY(hf_split_qkv(t, c, m->op == hf_op::neox_fused, prefix, m->gguf, mf.tensors, *owner));
      continue;
    }
    t.name = prefix + std::string(m->gguf);
    mf.tensors.push_back(std::move(t));
  }
  for (std::size_t i = 0; i < mf.tensors.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (mf.tensors[i].name == mf.tensors[j].name) return make_error(errc::duplicate_name, "two tensors map to this name", error::no_offset, mf.tensors[i].name);
  if (const tensor_info* emb = mf.find("token_embd.weight"); emb && (emb->n_dims != 2 || emb->ne[1] != c.vocab_size))
    return make_error(errc::shape_mismatch, "the embedding has " + std::to_string(emb->ne[1]) + " rows, vocab_size is " + std::to_string(c.vocab_size), emb->offset,
                      "token_embd.weight");
  mf.bytes = std::move(owner);
  return mf;
}
}  // namespace detail

// A Hugging Face model from a bundle (config.json, generation_config.json optional, weights). The tokenizer is
// not read here (see load.hpp: tokenizer.json + tokenizer_config.json); mf.tokenizer stays empty.
inline result<model_file> read_hf_model(const bundle& b, hf_config* config_out = nullptr) {
  using namespace detail;
  if (!b.contains("config.json")) return make_error(errc::missing_key, "a Hugging Face model needs its config.json", error::no_offset, "config.json");
  auto h = read_hf_config(b.text("config.json"), b.text("generation_config.json"));
  if (!h) return h.error();
  if (config_out) *config_out = *h;
  if (h->family != hf_family::llama && h->family != hf_family::mistral) {
    auto owner = std::make_shared<hf_bytes>();
    auto tensors = read_hf_tensors(b, *owner);
    if (!tensors) return tensors.error();
    return read_hf_family(*h, *tensors, std::move(owner));
  }
  auto cfg = hf_llama_config(*h);
  if (!cfg) return cfg.error();
  auto owner = std::make_shared<hf_bytes>();
  auto tensors = read_hf_tensors(b, *owner);
  if (!tensors) return tensors.error();

  model_file mf;
  mf.format = file_format::safetensors;
  mf.config = *cfg;
  const model_config& c = mf.config;
  std::unordered_set<std::string> have;  // the GGUF names mapped
  for (auto& t : *tensors) {
    std::string gguf;
    std::uint8_t permute = 0;
    std::uint32_t layer = 0;
    std::string_view rest;
    if (hf_layer_of(t.name, c.n_layers, layer, rest)) {
      for (const auto& m : hf_llama_layer_names)
        if (m.hf == rest) {
          gguf = "blk." + std::to_string(layer) + "." + std::string(m.gguf);
          permute = m.permute;
        }
      if (rest == "self_attn.rotary_emb.inv_freq") continue;  // a buffer older checkpoints saved: recomputed
    } else {
      for (const auto& m : hf_llama_names)
        if (m.hf == t.name) gguf = m.gguf;
    }
    if (gguf.empty())
      return make_error(errc::unsupported_architecture, "the tensor has no place in the " + h->model_type + " forward", t.offset, t.name);
    if (gguf == "output.weight" && c.shared_classifier) continue;  // tied: transformers ignores a stored lm_head
    if (permute) EDGELM_TRY(hf_unpermute_rows(t, permute == 1 ? c.n_heads : c.n_kv_heads, *owner));
    have.insert(gguf);
    t.name = std::move(gguf);
    mf.tensors.push_back(std::move(t));
  }
  // Every tensor the forward needs, named as the folder names it (the binder would give the GGUF name).
  auto need = [&](const std::string& gguf, const std::string& hf) -> result<void> {
    if (!have.count(gguf)) return make_error(errc::missing_tensor, "required tensor missing", error::no_offset, hf);
    return {};
  };
  EDGELM_TRY(need("token_embd.weight", "model.embed_tokens.weight"));
  EDGELM_TRY(need("output_norm.weight", "model.norm.weight"));
  if (!c.shared_classifier) EDGELM_TRY(need("output.weight", "lm_head.weight"));
  for (std::uint32_t l = 0; l < c.n_layers; ++l)
    for (const auto& m : hf_llama_layer_names)
      EDGELM_TRY(need("blk." + std::to_string(l) + "." + std::string(m.gguf), "model.layers." + std::to_string(l) + "." + std::string(m.hf)));
  if (const tensor_info* emb = mf.find("token_embd.weight"); emb && (emb->n_dims != 2 || emb->ne[1] != c.vocab_size))
    return make_error(errc::shape_mismatch, "the embedding has " + std::to_string(emb->ne[1]) + " rows, vocab_size is " + std::to_string(c.vocab_size), emb->offset,
                      "model.embed_tokens.weight");
  mf.bytes = std::move(owner);
  return mf;
}

}  // namespace edgelm
