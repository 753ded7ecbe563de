// edgelm/quantize.hpp - a model_file (GGUF or llama2.c) -> a GGUF v3 file of another weight type
// (f32, f16, q8_0, q4_0) that llama.cpp loads. The library side of `edgelm quantize`.
//
// What is written, after llama.cpp's llama-quantize:
//  - every 2-D (or higher) tensor whose name ends in "weight" gets the target type; one whose rows are
//    not a whole number of the target's blocks (e.g. a 172-wide FFN) gets `fallback_type` (F16, as
//    llama.cpp does) and is reported through the logger;
//  - every other tensor (1-D norms, ...) is copied unchanged (F32 stays F32, as ggml keeps them);
//  - a tensor that already has its output type is copied byte for byte (no requantization);
//  - metadata: a GGUF input's keys are copied in order; a llama2.c input gets the llama architecture
//    keys and an embedded llama (SentencePiece) tokenizer built from model_file::tokenizer (pieces with
//    ' ' -> U+2581, ids unk/bos/eos named <unk>/<s>/</s>, as llama.cpp's convert-llama2c-to-ggml);
//    general.file_type and general.quantization_version (2) are set for both.
//
// The output is "pure" in llama-quantize's sense: every weight matrix of one type (no Q6_K output, no
// per-layer mixtures), because transformer<P> runs a single weight precision and binds a file of
// its type in place. Tensors are converted one at a time: the peak memory of quantizing is the
// input (mapped) plus one tensor, never the whole output.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/checked.hpp"
#include "core/half.hpp"
#include "core/log.hpp"
#include "core/result.hpp"
#include "formats/ggml_types.hpp"
#include "formats/gguf.hpp"
#include "formats/gguf_writer.hpp"
#include "formats/model_file.hpp"
#include "precision/dequantize.hpp"
#include "precision/f32.hpp"
#include "precision/q4_0.hpp"
#include "precision/q8_0.hpp"

namespace edgelm {

struct quantize_options {
  ggml_type type = ggml_type::q8_0;           // target of the weight matrices: f32, f16, q8_0 or q4_0
  ggml_type fallback_type = ggml_type::f16;   // for matrices whose rows do not divide into blocks: f16 or f32
  bool q4_0_reference = false;                // q4_0: ggml's rounding (bit-identical to llama-quantize) instead of the scale search
  std::string name;                           // general.name when the input has none (llama2.c inputs)
  logger log;                                 // one line per fallback and a summary
};

struct quantize_report {
  std::size_t converted = 0;     // tensors written in the target type (converted)
  std::size_t copied = 0;        // tensors copied unchanged (norms, or already the output type)
  std::size_t fell_back = 0;     // weight matrices written in fallback_type
  std::uint64_t bytes_in = 0;    // tensor bytes read
  std::uint64_t bytes_out = 0;   // file bytes written (header + padded data)
};

// llama.cpp's llama_ftype of a uniform file (general.file_type).
constexpr std::uint32_t llama_file_type(ggml_type t) noexcept {
  switch (t) {
    case ggml_type::f32: return 0;   // LLAMA_FTYPE_ALL_F32
    case ggml_type::f16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case ggml_type::q4_0: return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case ggml_type::q8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case ggml_type::bf16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    default: return 0;
  }
}

// Types quantize_model can write.
constexpr bool can_quantize_to(ggml_type t) noexcept {
  return t == ggml_type::f32 || t == ggml_type::f16 || t == ggml_type::q8_0 || t == ggml_type::q4_0;
}

namespace detail {

inline bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ' ' -> U+2581 (the inverse of gguf.hpp's sp_to_space).
inline std::string space_to_sp(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ') out += "\xE2\x96\x81";
    else out += c;
  }
  return out;
}

// n floats (a whole number of blocks of t) -> t's bytes at out.
inline void quantize_row_as(ggml_type t, const float* x, std::byte* out, std::size_t n, bool q4_reference) noexcept {
  switch (t) {
    case ggml_type::f32: std::memcpy(out, x, n * sizeof(float)); break;
    case ggml_type::f16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = f32_to_fp16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case ggml_type::q8_0: q8_0::quantize_row(x, reinterpret_cast<q8_0::block_type*>(out), n); break;
    case ggml_type::q4_0:
      if (q4_reference) q4_0::quantize_row_reference(x, reinterpret_cast<q4_0::block_type*>(out), n);
      else q4_0::quantize_row(x, reinterpret_cast<q4_0::block_type*>(out), n);
      break;
    default: break;
  }
}

// The vocabulary keys: none ("none", llama.cpp's "no vocabulary"), a SentencePiece vocabulary ("llama": ' ' written
// as U+2581, the specials named <unk>/<s>/</s> as llama.cpp's convert-llama2c-to-ggml does) or a byte-level BPE one
// ("gpt2": tokens as stored, merges, pre-tokenizer name); formats/gguf_vocab.hpp makes either from a tokenizer.json.
inline result<void> write_vocab(gguf_writer& w, const tokenizer_data& td, std::uint32_t vocab_size) {
  if (td.pieces.empty()) return w.set_string("tokenizer.ggml.model", "none");
  if (td.pieces.size() != vocab_size)
    return make_error(errc::bad_tokenizer, "tokenizer has " + std::to_string(td.pieces.size()) + " tokens, the model " + std::to_string(vocab_size));
  std::vector<std::int32_t> types(td.pieces.size());
  for (std::size_t i = 0; i < td.pieces.size(); ++i) types[i] = static_cast<std::int32_t>(i < td.types.size() ? td.types[i] : token_type::normal);
  if (td.model == "gpt2") {
    EDGELM_TRY(w.set_string("tokenizer.ggml.model", "gpt2"));
    EDGELM_TRY(w.set_string("tokenizer.ggml.pre", td.pre.empty() ? std::string("gpt-2") : td.pre));
    EDGELM_TRY(w.set_strings("tokenizer.ggml.tokens", td.pieces));
    EDGELM_TRY(w.set_i32s("tokenizer.ggml.token_type", types));
    EDGELM_TRY(w.set_strings("tokenizer.ggml.merges", td.merges));
    if (td.bos_id >= 0) EDGELM_TRY(w.set_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(td.bos_id)));
    if (td.eos_id >= 0) EDGELM_TRY(w.set_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(td.eos_id)));
    EDGELM_TRY(w.set_bool("tokenizer.ggml.add_bos_token", td.add_bos));
    EDGELM_TRY(w.set_bool("tokenizer.ggml.add_eos_token", false));
    if (!td.chat_template.empty()) EDGELM_TRY(w.set_string("tokenizer.chat_template", td.chat_template));
    return {};
  }
  std::vector<std::string> tokens(td.pieces.size());
  for (std::size_t i = 0; i < td.pieces.size(); ++i) {
    const auto id = static_cast<std::int32_t>(i);
    // llama2.c's tokenizer.bin spells the specials "\n<s>\n"; SentencePiece (and llama.cpp) say <s>. A vocabulary
    // that names them itself (one from a tokenizer.json: "<bos>", "<|im_end|>") keeps its names.
    const bool llama2c_spelling = td.pieces[i].empty() || td.pieces[i].find('\n') != std::string::npos;
    if (llama2c_spelling && id == td.unk_id) tokens[i] = "<unk>";
    else if (llama2c_spelling && id == td.bos_id) tokens[i] = "<s>";
    else if (llama2c_spelling && id == td.eos_id) tokens[i] = "</s>";
    else tokens[i] = space_to_sp(td.pieces[i]);
  }
  std::vector<float> scores = td.scores;
  scores.resize(td.pieces.size(), 0.0f);
  EDGELM_TRY(w.set_string("tokenizer.ggml.model", "llama"));
  EDGELM_TRY(w.set_strings("tokenizer.ggml.tokens", tokens));
  EDGELM_TRY(w.set_f32s("tokenizer.ggml.scores", scores));
  EDGELM_TRY(w.set_i32s("tokenizer.ggml.token_type", types));
  EDGELM_TRY(w.set_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(td.bos_id)));
  EDGELM_TRY(w.set_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(td.eos_id)));
  EDGELM_TRY(w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<std::uint32_t>(td.unk_id)));
  EDGELM_TRY(w.set_bool("tokenizer.ggml.add_bos_token", td.add_bos));
  EDGELM_TRY(w.set_bool("tokenizer.ggml.add_eos_token", false));
  if (!td.add_space_prefix) EDGELM_TRY(w.set_bool("tokenizer.ggml.add_space_prefix", false));
  if (!td.chat_template.empty()) EDGELM_TRY(w.set_string("tokenizer.chat_template", td.chat_template));
  return {};
}

// The metadata of a llama model read from a llama2.c checkpoint or a Hugging Face folder as a llama GGUF (keys as
// llama.cpp's convert scripts write them), with its vocabulary (write_vocab).
inline result<void> llama_metadata(gguf_writer& w, const model_file& mf, const quantize_options& o) {
  const model_config& c = mf.config;
  const std::string a = "llama.";
  EDGELM_TRY(w.set_string("general.architecture", "llama"));
  EDGELM_TRY(w.set_string("general.name", o.name.empty() ? std::string("llama") : o.name));
  EDGELM_TRY(w.set_u32(a + "context_length", c.seq_len));
  EDGELM_TRY(w.set_u32(a + "embedding_length", c.dim));
  EDGELM_TRY(w.set_u32(a + "block_count", c.n_layers));
  EDGELM_TRY(w.set_u32(a + "feed_forward_length", c.hidden_dim));
  EDGELM_TRY(w.set_u32(a + "attention.head_count", c.n_heads));
  EDGELM_TRY(w.set_u32(a + "attention.head_count_kv", c.n_kv_heads));
  EDGELM_TRY(w.set_f32(a + "rope.freq_base", c.rope_theta));
  EDGELM_TRY(w.set_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps));
  EDGELM_TRY(w.set_u32(a + "rope.dimension_count", c.head_dim));
  EDGELM_TRY(w.set_u32(a + "vocab_size", c.vocab_size));

  return write_vocab(w, mf.tokenizer, c.vocab_size);
}


// The GGUF architecture a non-GGUF input's config is written as, with the layout llama.cpp's loader expects
// (convert_hf_to_gguf.py's): llama (adjacent-pair rotary, q/k rows already interleaved by the readers), qwen2,
// phi2 (separate q/k/v), gpt2 and gptneox (q/k/v fused as attn_qkv, rows [q | k | v]), and gptneo, edgelm's own
// (llama.cpp has no GPT-Neo): gpt2's tensors with separate bias-free q/k/v, unscaled attention and
// gptneo.attention.windows (u32 per layer: 0 = global, w = the last w positions). A config the architecture
// cannot express (an activation, bias or rotary choice its forward would compute differently) is refused.
struct gguf_family_layout {
  std::string arch;
  bool fuse_qkv = false;
};
inline result<gguf_family_layout> family_gguf_layout(const model_config& c) {
  auto refuse = [&](const std::string& arch, const char* what) {
    return make_error(errc::unsupported_architecture, "the " + c.arch + " model cannot be written as a GGUF '" + arch + "': " + what);
  };
  const bool no_window = c.window.empty(), full_rot = c.rot_dims() == c.head_dim;
  if (c.arch == "llama" || c.is_llama_forward()) {
    if (!c.is_llama()) return refuse("llama", "RoPE scaling is not written by this build");
    return gguf_family_layout{"llama", false};
  }
  const std::string a = c.arch;
  if (a == "qwen2") {
    if (!(c.norm == norm_kind::rms && c.ffn == ffn_kind::silu_gated && c.residual == residual_kind::sequential && c.qkv_bias && !c.out_bias &&
          !c.ffn_bias && !c.output_bias && full_rot && !c.learned_positions && c.scaled_attention && no_window && c.rope == rope_style::half_split &&
          c.rope_freqs.empty()))
      return refuse(a, "only Qwen2's own layout (RMSNorm, SiLU-gated FFN, q/k/v biases, full half-split rotary)");
    return gguf_family_layout{"qwen2", false};
  }
  const bool ln_biases = c.norm == norm_kind::layer && c.qkv_bias && c.out_bias && c.ffn_bias && c.scaled_attention && no_window && c.rope_freqs.empty();
  if (a == "gpt2") {
    if (!(ln_biases && c.ffn == ffn_kind::gelu_tanh && c.residual == residual_kind::sequential && !c.output_bias && c.learned_positions &&
          c.n_kv_heads == c.n_heads))
      return refuse(a, "llama.cpp's gpt2 is LayerNorm, tanh GELU, biases everywhere, learned positions and scaled attention");
    return gguf_family_layout{"gpt2", true};
  }
  if (a == "phi2") {
    if (!(ln_biases && c.ffn == ffn_kind::gelu_tanh && c.residual == residual_kind::parallel_shared && c.output_bias && !c.learned_positions &&
          c.rope == rope_style::half_split && !c.shared_classifier))
      return refuse(a, "llama.cpp's phi2 is LayerNorm, tanh GELU, parallel attention + MLP, biases everywhere (classifier too), half-split rotary");
    return gguf_family_layout{"phi2", false};
  }
  if (a == "gptneox") {
    if (!(ln_biases && c.ffn == ffn_kind::gelu_erf && (c.residual == residual_kind::parallel || c.residual == residual_kind::sequential) &&
          !c.output_bias && !c.learned_positions && c.rope == rope_style::half_split && c.n_kv_heads == c.n_heads && !c.shared_classifier))
      return refuse(a, "llama.cpp's gptneox is LayerNorm, erf GELU, biases everywhere, half-split rotary, its own classifier");
    return gguf_family_layout{"gptneox", true};
  }
  if (a == "gptneo") {
    if (!(c.norm == norm_kind::layer && c.ffn == ffn_kind::gelu_tanh && c.residual == residual_kind::sequential && !c.qkv_bias && c.out_bias &&
          c.ffn_bias && !c.output_bias && c.learned_positions && !c.scaled_attention && c.n_kv_heads == c.n_heads && c.rope_freqs.empty()))
      return refuse(a, "GPT-Neo's layout (LayerNorm, tanh GELU, bias-free q/k/v, learned positions, unscaled attention)");
    return gguf_family_layout{"gptneo", false};
  }
  return refuse(a, "no GGUF layout for this architecture");
}

// The metadata of a family model read from a Hugging Face folder (keys as convert_hf_to_gguf.py writes them).
inline result<void> family_metadata(gguf_writer& w, const model_file& mf, const quantize_options& o, const std::string& arch) {
  const model_config& c = mf.config;
  const std::string a = arch + ".";
  EDGELM_TRY(w.set_string("general.architecture", arch));
  EDGELM_TRY(w.set_string("general.name", o.name.empty() ? arch : o.name));
  EDGELM_TRY(w.set_u32(a + "context_length", c.seq_len));
  EDGELM_TRY(w.set_u32(a + "embedding_length", c.dim));
  EDGELM_TRY(w.set_u32(a + "block_count", c.n_layers));
  EDGELM_TRY(w.set_u32(a + "feed_forward_length", c.hidden_dim));
  EDGELM_TRY(w.set_u32(a + "attention.head_count", c.n_heads));
  EDGELM_TRY(w.set_u32(a + "attention.head_count_kv", c.n_kv_heads));
  if (c.norm == norm_kind::rms) EDGELM_TRY(w.set_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps));
  else EDGELM_TRY(w.set_f32(a + "attention.layer_norm_epsilon", c.norm_eps));
  if (!c.learned_positions) {
    EDGELM_TRY(w.set_f32(a + "rope.freq_base", c.rope_theta));
    EDGELM_TRY(w.set_u32(a + "rope.dimension_count", c.rot_dims()));
  }
  if (arch == "gptneox") EDGELM_TRY(w.set_bool(a + "use_parallel_residual", c.residual == residual_kind::parallel));
  if (arch == "gptneo") {
    std::vector<std::uint32_t> win = c.window;
    win.resize(c.n_layers, 0);
    std::vector<gguf_value> xs;
    for (auto x : win) xs.push_back(gguf_u32(x));
    EDGELM_TRY(w.set(a + "attention.windows", gguf_array(gguf_type::u32, std::move(xs))));
  }
  EDGELM_TRY(w.set_u32(a + "vocab_size", c.vocab_size));
  return write_vocab(w, mf.tokenizer, c.vocab_size);
}

}  // namespace detail

namespace detail {
// The output's tensor table and, per output tensor, the input tensors it is made of (one, or q, k, v for a
// fused attn_qkv: their rows concatenated).
struct quantize_plan {
  gguf_writer w;
  std::vector<std::array<std::size_t, 3>> src;
  std::vector<std::uint8_t> n_src;
};

inline result<quantize_plan> plan_quantize(const model_file& mf, const quantize_options& o) {
  if (!can_quantize_to(o.type))
    return make_error(errc::invalid_argument, "cannot quantize to " + std::string(ggml_type_name(o.type)) + " (supported: F32, F16, Q8_0, Q4_0)");
  if (o.fallback_type != ggml_type::f16 && o.fallback_type != ggml_type::f32)
    return make_error(errc::invalid_argument, "the fallback type must be F16 or F32");
  quantize_plan p;
  gguf_writer& w = p.w;
  bool fuse = false;
  if (mf.format == file_format::gguf) {
    if (!mf.bytes) return make_error(errc::invalid_argument, "model_file holds no bytes");
    auto g = parse_gguf(mf.bytes->bytes());
    if (!g) return g.error();
    for (auto& kv : g->metadata) EDGELM_TRY(w.set(kv.key, std::move(kv.value)));
    // (a GGUF input's fused q/k/v were split into views by the reader: they are written back fused)
    const gguf_value* arch = g->find("general.architecture");
    fuse = arch && arch->type == gguf_type::string && (arch->s == "gpt2" || arch->s == "gptneox");
    bool had_fused = false;
    for (const auto& t : g->tensors) had_fused |= t.name.find(".attn_qkv.") != std::string::npos;
    fuse = fuse && had_fused;
  } else {
    auto lay = family_gguf_layout(mf.config);
    if (!lay) return lay.error();
    fuse = lay->fuse_qkv;
    if (lay->arch == "llama") EDGELM_TRY(llama_metadata(w, mf, o));
    else EDGELM_TRY(family_metadata(w, mf, o, lay->arch));
  }
  EDGELM_TRY(w.set_u32("general.quantization_version", 2));  // GGML_QNT_VERSION
  EDGELM_TRY(w.set_u32("general.file_type", llama_file_type(o.type)));

  auto out_type = [&](const tensor_info& t, std::uint32_t dims) {
    ggml_type out = t.type;
    if (dims >= 2 && ends_with(t.name, "weight")) {
      out = o.type;
      if (t.ne[0] % ggml_info(o.type).block_size != 0) {
        out = o.fallback_type;
        o.log(log_level::warn, t.name + ": rows of " + std::to_string(t.ne[0]) + " are not a multiple of " + std::to_string(ggml_info(o.type).block_size) +
                                   ", falling back to " + std::string(ggml_type_name(out)));
      }
    }
    return out;
  };
  for (std::size_t i = 0; i < mf.tensors.size(); ++i) {
    const auto& t = mf.tensors[i];
    // ggml_n_dims: trailing dimensions of 1 do not count, so a [n, 1] tensor is a vector
    std::uint32_t dims = 1;
    for (std::uint32_t d = 1; d < t.n_dims; ++d)
      if (t.ne[d] > 1) dims = d + 1;
    const std::size_t at = t.name.find(".attn_");
    const bool part = fuse && at != std::string::npos && (t.name.compare(at, 8, ".attn_q.") == 0 || t.name.compare(at, 8, ".attn_k.") == 0 ||
                                                          t.name.compare(at, 8, ".attn_v.") == 0);
    if (!part) {
      EDGELM_TRY(w.add_tensor(t.name, out_type(t, dims), std::span<const std::uint64_t>(t.ne.data(), t.n_dims)));
      p.src.push_back({i, 0, 0});
      p.n_src.push_back(1);
      continue;
    }
    if (t.name.compare(at, 8, ".attn_q.") != 0) continue;  // k and v go with their q
    const std::string prefix = t.name.substr(0, at + 1), suffix = t.name.substr(at + 8);
    const tensor_info* k = mf.find(prefix + "attn_k." + suffix);
    const tensor_info* v = mf.find(prefix + "attn_v." + suffix);
    if (!k || !v) return make_error(errc::missing_tensor, "q without k and v to fuse", t.offset, t.name);
    const bool vec = t.n_dims == 1;
    if (k->type != t.type || v->type != t.type || k->n_dims != t.n_dims || v->n_dims != t.n_dims || (!vec && (k->ne[0] != t.ne[0] || v->ne[0] != t.ne[0])))
      return make_error(errc::shape_mismatch, "q, k and v to fuse differ in type or width", t.offset, t.name);
    std::array<std::uint64_t, 4> ne = t.ne;
    ne[vec ? 0 : 1] = t.ne[vec ? 0 : 1] + k->ne[vec ? 0 : 1] + v->ne[vec ? 0 : 1];
    tensor_info fused = t;
    fused.name = prefix + "attn_qkv." + suffix;
    fused.ne = ne;
    EDGELM_TRY(w.add_tensor(fused.name, out_type(fused, dims), std::span<const std::uint64_t>(ne.data(), t.n_dims)));
    p.src.push_back({i, static_cast<std::size_t>(k - mf.tensors.data()), static_cast<std::size_t>(v - mf.tensors.data())});
    p.n_src.push_back(3);
  }
  return p;
}
}  // namespace detail

// Describe the output file: metadata and tensor table, without tensor data (quantize_model writes it).
// Errors: invalid_argument for an unsupported target/fallback type, unsupported_architecture for a config no
// GGUF architecture expresses, the writer's errors, and the GGUF reader's errors when the input's metadata
// cannot be re-read.
inline result<gguf_writer> plan_quantized_gguf(const model_file& mf, const quantize_options& o) {
  auto p = detail::plan_quantize(mf, o);
  if (!p) return p.error();
  return std::move(p->w);
}

// Convert `mf` and stream the GGUF file to `sink` (bool(std::span<const std::byte>); false stops with
// io_error). Errors: plan_quantized_gguf's, unsupported_tensor_type for a source type this build
// cannot read, bad_value for a source block with a NaN/Inf scale.
template <class Sink>
result<quantize_report> quantize_model(const model_file& mf, const quantize_options& o, Sink&& sink) {
  auto plan = detail::plan_quantize(mf, o);
  if (!plan) return plan.error();
  quantize_report rep;
  std::vector<float> row;
  auto produce = [&](std::size_t i, const gguf_tensor_entry& e, std::vector<std::byte>& out) -> result<void> {
    const std::size_t n = plan->n_src[i];
    const tensor_info& first = mf.tensors[plan->src[i][0]];
    if (!detail::fits_size_t(e.n_bytes)) return make_error(errc::out_of_memory, "tensor larger than the address space", first.offset, first.name);
    out.resize(static_cast<std::size_t>(e.n_bytes));
    std::size_t at = 0;
    bool converted = false;
    for (std::size_t s = 0; s < n; ++s) {  // the parts' rows one after another
      const tensor_info& t = mf.tensors[plan->src[i][s]];
      rep.bytes_in += t.n_bytes;
      if (e.type == t.type) {  // nothing to convert
        if (at + t.n_bytes > out.size()) return make_error(errc::shape_mismatch, "tensor sizes disagree", t.offset, t.name);
        std::memcpy(out.data() + at, t.data, static_cast<std::size_t>(t.n_bytes));
        at += static_cast<std::size_t>(t.n_bytes);
        continue;
      }
      if (!can_dequantize(t.type))
        return make_error(errc::unsupported_tensor_type, "cannot read tensors of type " + std::string(ggml_type_name(t.type)), t.offset, t.name);
      const std::uint64_t cols = t.ne[0], rows = t.n_elements() / cols;
      const auto& si = ggml_info(t.type);
      const auto& di = ggml_info(e.type);
      const std::uint64_t src_row = cols / si.block_size * si.type_size, dst_row = cols / di.block_size * di.type_size;
      if (at + rows * dst_row > out.size()) return make_error(errc::shape_mismatch, "tensor sizes disagree", t.offset, t.name);
      row.resize(static_cast<std::size_t>(cols));
      for (std::uint64_t r = 0; r < rows; ++r) {
        if (!dequantize_row(t.type, t.data + r * src_row, row.data(), row.size()))
          return make_error(errc::bad_value, "tensor has a NaN/Inf block scale", t.offset + r * src_row, t.name);
        detail::quantize_row_as(e.type, row.data(), out.data() + at + r * dst_row, row.size(), o.q4_0_reference);
      }
      at += static_cast<std::size_t>(rows * dst_row);
      converted = true;
    }
    if (at != out.size()) return make_error(errc::shape_mismatch, "tensor sizes disagree", first.offset, first.name);
    if (!converted) ++rep.copied;
    else if (e.type == o.type) ++rep.converted;
    else ++rep.fell_back;
    return {};
  };
  auto counting_sink = [&](std::span<const std::byte> b) {
    rep.bytes_out += b.size();
    return sink(b);
  };
  auto r = plan->w.write(counting_sink, produce);
  if (!r) return r.error();
  o.log(log_level::info, "quantized to " + std::string(ggml_type_name(o.type)) + ": " + std::to_string(rep.converted) + " converted, " +
                             std::to_string(rep.fell_back) + " fell back to " + std::string(ggml_type_name(o.fallback_type)) + ", " +
                             std::to_string(rep.copied) + " copied; " + std::to_string(rep.bytes_out) + " bytes");
  return rep;
}

// The whole output file in memory.
inline result<std::vector<std::byte>> quantize_model_to_bytes(const model_file& mf, const quantize_options& o) {
  std::vector<std::byte> out;
  auto r = quantize_model(mf, o, [&](std::span<const std::byte> b) {
    out.insert(out.end(), b.begin(), b.end());
    return true;
  });
  if (!r) return r.error();
  return out;
}

}  // namespace edgelm
