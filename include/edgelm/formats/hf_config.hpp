// edgelm/formats/hf_config.hpp - a Hugging Face config.json (+ generation_config.json) -> hf_config: every
// hyper-parameter the architecture families need, under one name whatever each family calls it (hidden_size /
// n_embd, num_hidden_layers / n_layer / num_layers, ...), with each family's transformers default where a key
// is optional. Read through checked accessors (detail/json.hpp): a required key that is missing is
// errc::missing_key, a wrong JSON type errc::bad_key_type, a size beyond edgelm's limits errc::absurd_dimension,
// inconsistent values errc::bad_config; every error names the key. Both spellings of RoPE settings are read:
// transformers 5's "rope_parameters" {rope_theta, rope_type, factor, ...} and the older top-level rope_theta /
// rope_scaling {type | rope_type, ...} / rotary_pct / rotary_emb_base / partial_rotary_factor / rotary_dim.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/checked.hpp"
#include "../core/result.hpp"
#include "../detail/json.hpp"
#include "model_file.hpp"

namespace edgelm {

// The config files are small (kilobytes); a larger one is refused before parsing.
inline constexpr std::size_t hf_config_max_bytes = 16u << 20;

enum class hf_family : std::uint8_t { llama, mistral, qwen2, gpt2, gpt_neo, gpt_neox, phi };

inline constexpr std::string_view hf_family_name(hf_family f) noexcept {
  constexpr std::string_view names[] = {"llama", "mistral", "qwen2", "gpt2", "gpt_neo", "gpt_neox", "phi"};
  return names[static_cast<std::size_t>(f)];
}

struct hf_rope_scaling {
  std::string type;                 // "linear", "dynamic", "llama3", "yarn", "longrope", ... (never "default")
  float factor = 1.0f;
  float low_freq_factor = 1.0f;     // llama3
  float high_freq_factor = 4.0f;    // llama3
  std::uint32_t original_max_position_embeddings = 0;  // llama3, yarn (0: not given)
};

struct hf_config {
  hf_family family = hf_family::llama;
  std::string model_type;                  // as written ("llama", "gpt_neox", ...)
  std::vector<std::string> architectures;  // ["LlamaForCausalLM"]
  std::uint32_t hidden_size = 0;           // hidden_size | n_embd
  std::uint32_t intermediate_size = 0;     // intermediate_size | n_inner (gpt2, gpt_neo: default 4 * hidden)
  std::uint32_t num_hidden_layers = 0;     // num_hidden_layers | n_layer | num_layers
  std::uint32_t num_attention_heads = 0;   // num_attention_heads | n_head | num_heads
  std::uint32_t num_key_value_heads = 0;   // default num_attention_heads
  std::uint32_t head_dim = 0;              // default hidden_size / num_attention_heads
  std::uint32_t vocab_size = 0;
  std::uint32_t max_position_embeddings = 0;  // max_position_embeddings | n_positions
  float norm_eps = 1e-5f;                  // rms_norm_eps | layer_norm_eps | layer_norm_epsilon
  bool rms_norm = true;                    // llama, mistral, qwen2: RMSNorm; the others LayerNorm with bias
  bool learned_positions = false;          // gpt2, gpt_neo: position embedding table, no rotary
  float rope_theta = 10000.0f;             // rope_theta | rotary_emb_base (gpt_neox)
  std::optional<hf_rope_scaling> rope_scaling;
  float partial_rotary_factor = 1.0f;      // partial_rotary_factor | rotary_pct
  std::uint32_t rotary_dim = 0;            // dimensions of each head rotated (even); 0 with learned positions
  std::string hidden_act;                  // hidden_act | activation_function: "silu", "gelu", "gelu_new", ...
  bool tie_word_embeddings = false;
  bool use_parallel_residual = false;      // gpt_neox (default true), phi (always)
  bool attention_bias = false;             // q/k/v (and o) biases: qwen2 q/k/v always; gpt2, gpt_neox, phi dense
  bool mlp_bias = false;
  std::vector<std::string> attention_layers;  // gpt_neo: "global" / "local" per layer
  std::uint32_t window_size = 0;           // gpt_neo local attention window
  std::uint32_t sliding_window = 0;        // mistral / qwen2 (use_sliding_window): 0 = none
  bool scale_attn_weights = true;          // gpt2: scores / sqrt(head_dim) (false: unscaled)
  bool scale_attn_by_inverse_layer_idx = false;  // gpt2: scores also / (layer + 1)
  std::optional<std::int32_t> bos_token_id;
  std::vector<std::int32_t> eos_token_ids;  // int or list in the file
  std::string torch_dtype;                 // torch_dtype | dtype ("float32", "bfloat16", ...; "" when absent)

  // generation_config.json (when given): its ids win, as in transformers' generate()
  std::optional<std::int32_t> gen_bos_token_id;
  std::vector<std::int32_t> gen_eos_token_ids;
  std::optional<float> temperature, top_p;
  std::optional<std::uint32_t> top_k;
  std::optional<float> repetition_penalty;

  std::optional<std::int32_t> bos() const { return gen_bos_token_id ? gen_bos_token_id : bos_token_id; }
  const std::vector<std::int32_t>& eos() const { return gen_eos_token_ids.empty() ? eos_token_ids : gen_eos_token_ids; }
};

namespace detail {

using hf_json = nlohmann::ordered_json;

inline result<hf_json> hf_parse(std::string_view text, const std::string& what) {
  if (text.size() > hf_config_max_bytes) return make_error(errc::count_too_large, "larger than 16 MiB", error::no_offset, what);
  auto j = parse_json(text, what);
  if (!j) {
    auto e = j.error();
    if (e.code == errc::invalid_argument) e.code = errc::bad_config;
    return e;
  }
  if (!j->is_object()) return make_error(errc::bad_config, "must be a JSON object", error::no_offset, what);
  return j;
}

// A size under any of `keys` (the first present wins). Missing: `dflt`, or missing_key when required.
inline result<std::optional<std::uint64_t>> hf_size(const hf_json& j, std::initializer_list<const char*> keys, std::uint64_t max) {
  auto [v, k] = first_member(j, keys);
  if (!v) return std::optional<std::uint64_t>{};
  auto u = json_uint(*v, k, max);
  if (!u) return u.error();
  return std::optional<std::uint64_t>{*u};
}
inline result<std::uint32_t> hf_required(const hf_json& j, std::initializer_list<const char*> keys, std::uint64_t max) {
  auto v = hf_size(j, keys, max);
  if (!v) return v.error();
  if (!*v) return make_error(errc::missing_key, "required key missing", error::no_offset, *keys.begin());
  if (**v == 0) return make_error(errc::absurd_dimension, "must not be 0", error::no_offset, *keys.begin());
  return static_cast<std::uint32_t>(**v);
}
inline result<float> hf_float(const hf_json& j, std::initializer_list<const char*> keys, float dflt, bool positive = true) {
  auto [v, k] = first_member(j, keys);
  if (!v) return dflt;
  auto d = json_number(*v, k);
  if (!d) return d.error();
  if (std::fabs(*d) > 3.0e38) return make_error(errc::bad_value, "out of float range", error::no_offset, k);
  const float f = static_cast<float>(*d);
  // checked as the float it becomes: 1e-50 is positive as a double and 0 as a float
  if (positive && !(f > 0)) return make_error(errc::bad_value, "must be positive (as a 32-bit float)", error::no_offset, k);
  return f;
}
inline result<bool> hf_bool(const hf_json& j, const char* key, bool dflt) {
  const hf_json* v = member(j, key);
  if (!v) return dflt;
  return json_bool(*v, key);
}
inline result<std::string> hf_string(const hf_json& j, std::initializer_list<const char*> keys, std::string dflt = {}) {
  auto [v, k] = first_member(j, keys);
  if (!v) return dflt;
  return json_string(*v, k);
}
// A token id or a list of them (bos_token_id / eos_token_id).
inline result<std::vector<std::int32_t>> hf_ids(const hf_json& j, const char* key) {
  std::vector<std::int32_t> out;
  const hf_json* v = member(j, key);
  if (!v) return out;
  auto one = [&](const hf_json& x) -> result<void> {
    auto u = json_uint(x, key, limits::max_vocab - 1);
    if (!u) return u.error();
    out.push_back(static_cast<std::int32_t>(*u));
    return {};
  };
  if (v->is_array()) {
    if (v->size() > 64) return make_error(errc::count_too_large, "more than 64 ids", error::no_offset, key);
    for (const auto& x : *v) EDGELM_TRY(one(x));
  } else {
    EDGELM_TRY(one(*v));
  }
  return out;
}

// rope_scaling (older files) or rope_parameters (transformers 5): the type and its numbers; "default" / null:
// no scaling.
inline result<std::optional<hf_rope_scaling>> hf_rope(const hf_json& j, const char* key) {
  const hf_json* r = member(j, key);
  if (!r) return std::optional<hf_rope_scaling>{};
  if (!r->is_object()) return make_error(errc::bad_key_type, "must be an object", error::no_offset, key);
  auto type = hf_string(*r, {"rope_type", "type"});
  if (!type) return type.error();
  if (type->empty() || *type == "default") return std::optional<hf_rope_scaling>{};
  hf_rope_scaling s;
  s.type = *type;
  auto f = [&](const char* k, float& dst) -> result<void> {
    auto v = hf_float(*r, {k}, dst);
    if (!v) { auto e = v.error(); e.where = std::string(key) + "." + k; return e; }
    dst = *v;
    return {};
  };
  if (member(*r, "factor") || s.type == "linear" || s.type == "dynamic" || s.type == "llama3") {
    if (!member(*r, "factor")) return make_error(errc::missing_key, "rope scaling '" + s.type + "' needs a factor", error::no_offset, std::string(key) + ".factor");
    EDGELM_TRY(f("factor", s.factor));
  }
  EDGELM_TRY(f("low_freq_factor", s.low_freq_factor));
  EDGELM_TRY(f("high_freq_factor", s.high_freq_factor));
  auto orig = hf_size(*r, {"original_max_position_embeddings"}, limits::max_context);
  if (!orig) return orig.error();
  if (*orig) s.original_max_position_embeddings = static_cast<std::uint32_t>(**orig);
  if (s.type == "llama3" && (s.original_max_position_embeddings == 0 || !(s.high_freq_factor > s.low_freq_factor)))
    return make_error(errc::bad_config, "llama3 rope scaling needs original_max_position_embeddings and high_freq_factor > low_freq_factor", error::no_offset, key);
  return std::optional<hf_rope_scaling>{s};
}

inline std::optional<hf_family> hf_family_of(std::string_view model_type) {
  for (std::uint8_t f = 0; f <= static_cast<std::uint8_t>(hf_family::phi); ++f)
    if (hf_family_name(static_cast<hf_family>(f)) == model_type) return static_cast<hf_family>(f);
  return std::nullopt;
}

// gpt_neo: attention_types [[["global", "local"], 12]] -> one entry per layer.
inline result<std::vector<std::string>> hf_neo_layers(const hf_json& j) {
  std::vector<std::string> out;
  if (const hf_json* a = member(j, "attention_layers")) {
    if (!a->is_array() || a->size() > limits::max_layers) return make_error(errc::bad_key_type, "must be a list of \"global\" / \"local\"", error::no_offset, "attention_layers");
    for (const auto& x : *a) {
      if (!x.is_string() || (x.get_ref<const std::string&>() != "global" && x.get_ref<const std::string&>() != "local"))
        return make_error(errc::bad_key_type, "must be a list of \"global\" / \"local\"", error::no_offset, "attention_layers");
      out.push_back(x.get_ref<const std::string&>());
    }
    return out;
  }
  const hf_json* t = member(j, "attention_types");
  if (!t) return out;
  const auto bad = make_error(errc::bad_key_type, "must be [[[\"global\", \"local\"], repeats], ...]", error::no_offset, "attention_types");
  if (!t->is_array() || t->size() > limits::max_layers) return bad;
  for (const auto& item : *t) {
    if (!item.is_array() || item.size() != 2 || !item[0].is_array() || item[0].size() > limits::max_layers) return bad;
    auto reps = json_uint(item[1], "attention_types", limits::max_layers);
    if (!reps) return reps.error();
    for (std::uint64_t r = 0; r < *reps; ++r)
      for (const auto& kind : item[0]) {
        if (!kind.is_string() || (kind.get_ref<const std::string&>() != "global" && kind.get_ref<const std::string&>() != "local")) return bad;
        if (out.size() >= limits::max_layers) return make_error(errc::absurd_dimension, "more layers than EDGELM_MAX_LAYERS", error::no_offset, "attention_types");
        out.push_back(kind.get_ref<const std::string&>());
      }
  }
  return out;
}

}  // namespace detail

// Read config.json (and generation_config.json when not empty). Unknown model types are
// errc::unsupported_architecture naming the type.
inline result<hf_config> read_hf_config(std::string_view config_json, std::string_view generation_config_json = {}) {
  using namespace detail;
  auto jr = hf_parse(config_json, "config.json");
  if (!jr) return jr.error();
  const hf_json& j = *jr;
  hf_config c;
  auto mt = hf_string(j, {"model_type"});
  if (!mt) return mt.error();
  if (mt->empty()) return make_error(errc::missing_key, "required key missing", error::no_offset, "model_type");
  c.model_type = *mt;
  const auto fam = hf_family_of(c.model_type);
  if (!fam)
    return make_error(errc::unsupported_architecture, "model_type '" + c.model_type.substr(0, 64) + "' is not supported (supported: llama, mistral, qwen2, gpt2, gpt_neo, gpt_neox, phi)",
                      error::no_offset, "model_type");
  c.family = *fam;
  const hf_family F = c.family;
  if (const hf_json* a = member(j, "architectures")) {
    if (!a->is_array() || a->size() > 16) return make_error(errc::bad_key_type, "must be a list of class names", error::no_offset, "architectures");
    for (const auto& x : *a) {
      auto s = json_string(x, "architectures", 256);
      if (!s) return s.error();
      c.architectures.push_back(*s);
    }
  }

  // sizes
  auto hidden = hf_required(j, {"hidden_size", "n_embd"}, limits::max_dim);
  if (!hidden) return hidden.error();
  auto layers = hf_required(j, {"num_hidden_layers", "n_layer", "num_layers"}, limits::max_layers);
  if (!layers) return layers.error();
  auto heads = hf_required(j, {"num_attention_heads", "n_head", "num_heads"}, limits::max_dim);
  if (!heads) return heads.error();
  auto vocab = hf_required(j, {"vocab_size"}, limits::max_vocab);
  if (!vocab) return vocab.error();
  c.hidden_size = *hidden;
  c.num_hidden_layers = *layers;
  c.num_attention_heads = *heads;
  c.vocab_size = *vocab;
  const bool default_4x = F == hf_family::gpt2 || F == hf_family::gpt_neo;
  auto inter = hf_size(j, {"intermediate_size", "n_inner"}, 4 * limits::max_dim);
  if (!inter) return inter.error();
  if (!*inter && !default_4x) return make_error(errc::missing_key, "required key missing", error::no_offset, "intermediate_size");
  c.intermediate_size = static_cast<std::uint32_t>(*inter ? **inter : 4 * std::uint64_t{c.hidden_size});
  if (c.intermediate_size == 0 || c.intermediate_size > 4 * limits::max_dim)
    return make_error(errc::absurd_dimension, "the feed-forward width is 0 or over the limit", error::no_offset, "intermediate_size");
  auto kv = hf_size(j, {"num_key_value_heads"}, limits::max_dim);
  if (!kv) return kv.error();
  c.num_key_value_heads = static_cast<std::uint32_t>(*kv ? **kv : c.num_attention_heads);
  if (c.num_key_value_heads == 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    return make_error(errc::bad_config, "num_attention_heads (" + std::to_string(c.num_attention_heads) + ") must be a multiple of num_key_value_heads (" +
                                            std::to_string(c.num_key_value_heads) + ")", error::no_offset, "num_key_value_heads");
  auto hd = hf_size(j, {"head_dim"}, limits::max_dim);
  if (!hd) return hd.error();
  if (!*hd && c.hidden_size % c.num_attention_heads != 0)
    return make_error(errc::bad_config, "hidden_size must be a multiple of num_attention_heads", error::no_offset, "num_attention_heads");
  c.head_dim = static_cast<std::uint32_t>(*hd ? **hd : c.hidden_size / c.num_attention_heads);
  if (c.head_dim == 0) return make_error(errc::absurd_dimension, "must not be 0", error::no_offset, "head_dim");
  std::uint64_t q_dim = 0;
  if (!mul_ok(c.head_dim, c.num_attention_heads, q_dim) || q_dim > limits::max_dim)
    return make_error(errc::absurd_dimension, "head_dim x num_attention_heads is over EDGELM_MAX_DIM", error::no_offset, "head_dim");
  auto ctx = hf_size(j, {"max_position_embeddings", "n_positions"}, limits::max_context);
  if (!ctx) return ctx.error();
  c.max_position_embeddings = static_cast<std::uint32_t>(*ctx ? **ctx : (F == hf_family::gpt2 ? 1024 : 2048));
  if (c.max_position_embeddings == 0) return make_error(errc::absurd_dimension, "must not be 0", error::no_offset, "max_position_embeddings");

  // norms, activation, biases, residual, tying: each family's transformers defaults
  c.rms_norm = F == hf_family::llama || F == hf_family::mistral || F == hf_family::qwen2;
  c.learned_positions = F == hf_family::gpt2 || F == hf_family::gpt_neo;
  auto eps = hf_float(j, {"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"}, c.rms_norm ? 1e-6f : 1e-5f);
  if (!eps) return eps.error();
  if (!(*eps < 1.0f)) return make_error(errc::bad_value, "the norm epsilon must be below 1", error::no_offset, "rms_norm_eps");
  c.norm_eps = *eps;
  const char* act_dflt = c.rms_norm ? "silu" : F == hf_family::gpt_neox ? "gelu" : "gelu_new";
  auto act = hf_string(j, {"hidden_act", "activation_function"}, act_dflt);
  if (!act) return act.error();
  c.hidden_act = *act;
  auto tie = hf_bool(j, "tie_word_embeddings", F == hf_family::gpt2 || F == hf_family::gpt_neo);
  if (!tie) return tie.error();
  c.tie_word_embeddings = *tie;
  auto par = hf_bool(j, "use_parallel_residual", F == hf_family::gpt_neox);
  if (!par) return par.error();
  c.use_parallel_residual = F == hf_family::phi || *par;
  const bool bias_dflt = F == hf_family::gpt2 || F == hf_family::gpt_neox || F == hf_family::phi;
  auto ab = hf_bool(j, "attention_bias", bias_dflt);
  if (!ab) return ab.error();
  c.attention_bias = F == hf_family::qwen2 || *ab;
  auto mb = hf_bool(j, "mlp_bias", bias_dflt);
  if (!mb) return mb.error();
  c.mlp_bias = *mb;

  // positions: learned tables, or rotary (theta, partial dims, scaling) from either spelling
  if (!c.learned_positions) {
    const hf_json* rp = member(j, "rope_parameters");
    if (rp && !rp->is_object()) return make_error(errc::bad_key_type, "must be an object", error::no_offset, "rope_parameters");
    const hf_json& src = rp ? *rp : j;
    auto theta = hf_float(src, {"rope_theta", "rotary_emb_base"}, 10000.0f);
    if (!theta) return theta.error();
    c.rope_theta = *theta;
    auto scaling = hf_rope(j, rp ? "rope_parameters" : "rope_scaling");
    if (!scaling) return scaling.error();
    c.rope_scaling = *scaling;
    auto prf = hf_float(src, {"partial_rotary_factor", "rotary_pct"}, F == hf_family::gpt_neox ? 0.25f : F == hf_family::phi ? 0.5f : 1.0f);
    if (!prf) return prf.error();
    if (!(*prf <= 1.0f)) return make_error(errc::bad_value, "must be in (0, 1]", error::no_offset, "partial_rotary_factor");
    c.partial_rotary_factor = *prf;
    auto rd = hf_size(j, {"rotary_dim"}, limits::max_dim);
    if (!rd) return rd.error();
    // transformers: int(head_dim * partial_rotary_factor)
    c.rotary_dim = static_cast<std::uint32_t>(*rd ? **rd : static_cast<std::uint64_t>(static_cast<double>(c.head_dim) * c.partial_rotary_factor));
    if (c.rotary_dim == 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0)
      return make_error(errc::bad_config, "rotary dimensions " + std::to_string(c.rotary_dim) + " must be even and within head_dim " + std::to_string(c.head_dim),
                        error::no_offset, "partial_rotary_factor");
  } else if (c.head_dim * c.num_attention_heads != c.hidden_size) {
    return make_error(errc::bad_config, "hidden_size must be head_dim x num_attention_heads", error::no_offset, "head_dim");
  }

  // local attention
  if (F == hf_family::gpt_neo) {
    auto al = hf_neo_layers(j);
    if (!al) return al.error();
    c.attention_layers = std::move(*al);
    if (!c.attention_layers.empty() && c.attention_layers.size() != c.num_hidden_layers)
      return make_error(errc::bad_config, "attention_types give " + std::to_string(c.attention_layers.size()) + " layers, num_layers is " +
                                              std::to_string(c.num_hidden_layers), error::no_offset, "attention_types");
    auto w = hf_size(j, {"window_size"}, limits::max_context);
    if (!w) return w.error();
    c.window_size = static_cast<std::uint32_t>(*w ? **w : 256);
    if (c.window_size == 0) return make_error(errc::absurd_dimension, "must not be 0", error::no_offset, "window_size");
  }
  if (F == hf_family::mistral || F == hf_family::qwen2) {
    auto use = hf_bool(j, "use_sliding_window", F == hf_family::mistral);
    if (!use) return use.error();
    auto sw = hf_size(j, {"sliding_window"}, limits::max_context);
    if (!sw) return sw.error();
    if (*use && *sw) c.sliding_window = static_cast<std::uint32_t>(**sw);
  }

  if (F == hf_family::gpt2) {
    auto saw = hf_bool(j, "scale_attn_weights", true);
    if (!saw) return saw.error();
    c.scale_attn_weights = *saw;
    auto inv = hf_bool(j, "scale_attn_by_inverse_layer_idx", false);
    if (!inv) return inv.error();
    c.scale_attn_by_inverse_layer_idx = *inv;
  }

  // ids and dtype
  auto bos = hf_ids(j, "bos_token_id");
  if (!bos) return bos.error();
  if (bos->size() > 1) return make_error(errc::bad_key_type, "must be one id", error::no_offset, "bos_token_id");
  if (!bos->empty()) c.bos_token_id = (*bos)[0];
  auto eos = hf_ids(j, "eos_token_id");
  if (!eos) return eos.error();
  c.eos_token_ids = std::move(*eos);
  auto dt = hf_string(j, {"torch_dtype", "dtype"});
  if (!dt) return dt.error();
  c.torch_dtype = *dt;

  if (!generation_config_json.empty()) {
    auto gr = hf_parse(generation_config_json, "generation_config.json");
    if (!gr) return gr.error();
    const hf_json& g = *gr;
    auto gb = hf_ids(g, "bos_token_id");
    if (!gb) return gb.error();
    if (gb->size() > 1) return make_error(errc::bad_key_type, "must be one id", error::no_offset, "bos_token_id");
    if (!gb->empty()) c.gen_bos_token_id = (*gb)[0];
    auto ge = hf_ids(g, "eos_token_id");
    if (!ge) return ge.error();
    c.gen_eos_token_ids = std::move(*ge);
    for (auto [key, dst] : {std::pair{"temperature", &c.temperature}, std::pair{"top_p", &c.top_p}, std::pair{"repetition_penalty", &c.repetition_penalty}}) {
      if (!member(g, key)) continue;
      auto v = hf_float(g, {key}, 1.0f, false);
      if (!v) return v.error();
      if (*v < 0) return make_error(errc::bad_value, "must not be negative", error::no_offset, key);
      *dst = *v;
    }
    auto tk = hf_size(g, {"top_k"}, limits::max_vocab);
    if (!tk) return tk.error();
    if (*tk) c.top_k = static_cast<std::uint32_t>(**tk);
  }
  return c;
}

}  // namespace edgelm
