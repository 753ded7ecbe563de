// edgelm/formats/hf_model.hpp - a Hugging Face model (a bundle of config.json [+ generation_config.json] and
// model.safetensors, or model.safetensors.index.json + the shards it names) -> edgelm model_file, for the
// architectures whose forward this build has: the llama family (model_type llama and mistral; SmolLM/SmolLM2,
// TinyLlama, Llama 2 run the same forward).
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

// Parse "model.layers.<N>.<rest>" (N without leading zeros, < n_layers).
inline bool hf_layer_of(std::string_view name, std::uint32_t n_layers, std::uint32_t& layer, std::string_view& rest) {
  constexpr std::string_view p = "model.layers.";
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

// hf_config -> model_config for the llama forward, refusing what that forward would compute differently.
inline result<model_config> hf_llama_config(const hf_config& h) {
  auto unsupported = [](std::string what, const char* key) {
    return make_error(errc::unsupported_architecture, what + " is not supported by this build's llama forward yet", error::no_offset, key);
  };
  if (h.hidden_act != "silu") return unsupported("hidden_act '" + h.hidden_act + "'", "hidden_act");
  if (h.attention_bias) return unsupported("attention_bias", "attention_bias");
  if (h.mlp_bias) return unsupported("mlp_bias", "mlp_bias");
  if (h.rope_scaling) return unsupported("rope scaling '" + h.rope_scaling->type + "'", "rope_scaling");
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
  c.shared_classifier = h.tie_word_embeddings;
  return c;
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
  if (h->family != hf_family::llama && h->family != hf_family::mistral)
    return make_error(errc::unsupported_architecture,
                      "model_type '" + h->model_type + "' is read, but its forward is not in this build yet (supported: llama, mistral)", error::no_offset,
                      "model_type");
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
