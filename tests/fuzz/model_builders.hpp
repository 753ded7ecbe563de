// tests/fuzz/model_builders.hpp - byte-level writers of GGUF files, llama2.c checkpoints and llama2.c
// tokenizer files, shared by tests/test_formats.cpp and the fuzz seed-corpus generator.
//
// The writers write exactly what they are told - lying counts, unknown type ids, misaligned offsets -
// so a test can start from a valid tiny model and break one field per error class. Nothing here
// validates; that is the parsers' job.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <edgelm/formats/ggml_types.hpp>

namespace edgelm_test {

using bytes = std::vector<std::byte>;

inline void put_raw(bytes& b, const void* p, std::size_t n) {
  const auto* c = static_cast<const std::byte*>(p);
  b.insert(b.end(), c, c + n);
}
// Little-endian scalar (every host we build on is little-endian, as the parsers assume).
template <class T>
void put(bytes& b, T v) {
  put_raw(b, &v, sizeof v);
}
// Overwrite a scalar in place (for patching a field after layout).
template <class T>
void poke(bytes& b, std::uint64_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}
inline void put_gguf_str(bytes& b, std::string_view s) {
  put<std::uint64_t>(b, s.size());
  put_raw(b, s.data(), s.size());
}
inline bytes to_bytes(std::string_view s) {
  bytes b;
  put_raw(b, s.data(), s.size());
  return b;
}

// ---------------------------------------------------------------------------------------------
// GGUF

// GGUF metadata value type ids (the parser's gguf_type, spelled out so the builder does not
// depend on the code under test).
namespace gt {
inline constexpr std::uint32_t u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
                               array = 9, u64 = 10, i64 = 11, f64 = 12;
}

// One encoded metadata value: its type id and the bytes that follow the type id in the file.
struct gval {
  std::uint32_t type = 0;
  bytes payload;
};
template <class T>
gval g_scalar(std::uint32_t type, T x) {
  gval v{type, {}};
  put(v.payload, x);
  return v;
}
inline gval g_u8(std::uint8_t x) { return g_scalar(gt::u8, x); }
inline gval g_i8(std::int8_t x) { return g_scalar(gt::i8, x); }
inline gval g_u16(std::uint16_t x) { return g_scalar(gt::u16, x); }
inline gval g_i16(std::int16_t x) { return g_scalar(gt::i16, x); }
inline gval g_u32(std::uint32_t x) { return g_scalar(gt::u32, x); }
inline gval g_i32(std::int32_t x) { return g_scalar(gt::i32, x); }
inline gval g_f32(float x) { return g_scalar(gt::f32, x); }
inline gval g_bool(std::uint8_t x) { return g_scalar(gt::boolean, x); }  // any byte, so 2 can be written
inline gval g_u64(std::uint64_t x) { return g_scalar(gt::u64, x); }
inline gval g_i64(std::int64_t x) { return g_scalar(gt::i64, x); }
inline gval g_f64(double x) { return g_scalar(gt::f64, x); }
inline gval g_str(std::string_view s) {
  gval v{gt::string, {}};
  put_gguf_str(v.payload, s);
  return v;
}
// An array whose declared count and element type may lie about `elems`.
inline gval g_arr_raw(std::uint32_t elem_type, std::uint64_t count, const bytes& elems_payload) {
  gval v{gt::array, {}};
  put(v.payload, elem_type);
  put(v.payload, count);
  v.payload.insert(v.payload.end(), elems_payload.begin(), elems_payload.end());
  return v;
}
// An honest array (elements of any type, arrays included).
inline gval g_arr(std::uint32_t elem_type, const std::vector<gval>& elems) {
  bytes p;
  for (const auto& e : elems) p.insert(p.end(), e.payload.begin(), e.payload.end());
  return g_arr_raw(elem_type, elems.size(), p);
}
inline gval g_strs(const std::vector<std::string>& s) {
  std::vector<gval> e;
  for (const auto& x : s) e.push_back(g_str(x));
  return g_arr(gt::string, e);
}
inline gval g_f32s(const std::vector<float>& f) {
  std::vector<gval> e;
  for (float x : f) e.push_back(g_f32(x));
  return g_arr(gt::f32, e);
}
inline gval g_i32s(const std::vector<std::int32_t>& f) {
  std::vector<gval> e;
  for (auto x : f) e.push_back(g_i32(x));
  return g_arr(gt::i32, e);
}

struct gguf_tensor {
  std::string name;
  std::vector<std::int64_t> ne;               // n_dims = ne.size()
  std::uint32_t type = 0;                     // ggml type id (0 = F32)
  std::optional<std::uint64_t> offset;        // written instead of the laid-out offset
};

// Byte size of a tensor's data as the builder lays it out; 0 when the shape or type is nonsense
// (such tensors get no data, only their info entry).
inline std::uint64_t gguf_tensor_bytes(const gguf_tensor& t) {
  if (!edgelm::ggml_type_known(t.type) || t.ne.empty()) return 0;
  std::uint64_t n = 1;
  for (auto d : t.ne) {
    if (d <= 0 || d > (1 << 24)) return 0;
    n *= static_cast<std::uint64_t>(d);
    if (n > (1u << 24)) return 0;
  }
  const auto& info = edgelm::ggml_type_table[t.type];
  return (n + info.block_size - 1) / info.block_size * info.type_size;
}

// Where things landed in a built file (absolute byte offsets).
struct gguf_layout {
  bytes file;
  std::vector<std::uint64_t> kv_at;           // start of each key (its length field)
  std::vector<std::uint64_t> kv_type_at;      // each value type id
  std::vector<std::uint64_t> tensor_at;       // start of each tensor info (its name length)
  std::vector<std::uint64_t> tensor_offset_at;  // each tensor info's offset field
  std::vector<std::uint64_t> tensor_data_at;  // absolute start of each tensor's data
  std::uint64_t data_offset = 0;              // start of the data section
};

struct gguf_spec {
  std::string magic = "GGUF";
  std::uint32_t version = 3;
  std::optional<std::uint64_t> n_tensors, n_kv;  // written instead of the true counts
  std::vector<std::pair<std::string, gval>> kv;
  std::vector<gguf_tensor> tensors;
  std::uint64_t alignment = 32;                  // layout only; general.alignment is a kv

  // Replace the value of `key` (keeping its place) or append it.
  gguf_spec& set(const std::string& key, gval v) {
    for (auto& p : kv)
      if (p.first == key) { p.second = std::move(v); return *this; }
    kv.emplace_back(key, std::move(v));
    return *this;
  }
  gguf_spec& erase(std::string_view key) {
    kv.erase(std::remove_if(kv.begin(), kv.end(), [&](const auto& p) { return p.first == key; }), kv.end());
    return *this;
  }
  gguf_tensor& tensor(std::string_view name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    return tensors.at(tensors.size());  // a test asked for a tensor it never added: fail loudly
  }
  gguf_spec& erase_tensor(std::string_view name) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [&](const auto& t) { return t.name == name; }),
                  tensors.end());
    return *this;
  }

  gguf_layout layout() const {
    gguf_layout L;
    bytes& b = L.file;
    put_raw(b, magic.data(), std::min<std::size_t>(magic.size(), 4));
    put(b, version);
    put<std::uint64_t>(b, n_tensors.value_or(tensors.size()));
    put<std::uint64_t>(b, n_kv.value_or(kv.size()));
    for (const auto& [k, v] : kv) {
      L.kv_at.push_back(b.size());
      put_gguf_str(b, k);
      L.kv_type_at.push_back(b.size());
      put(b, v.type);
      b.insert(b.end(), v.payload.begin(), v.payload.end());
    }
    // Lay out the data first so the infos can carry the offsets.
    std::vector<std::uint64_t> rel;
    std::uint64_t end = 0;
    for (const auto& t : tensors) {
      const std::uint64_t at = (end + alignment - 1) / alignment * alignment;
      rel.push_back(at);
      end = at + gguf_tensor_bytes(t);
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      L.tensor_at.push_back(b.size());
      put_gguf_str(b, t.name);
      put<std::uint32_t>(b, static_cast<std::uint32_t>(t.ne.size()));
      for (auto d : t.ne) put(b, d);
      put(b, t.type);
      L.tensor_offset_at.push_back(b.size());
      put<std::uint64_t>(b, t.offset.value_or(rel[i]));
    }
    L.data_offset = (b.size() + alignment - 1) / alignment * alignment;
    b.resize(L.data_offset, std::byte{0});
    b.resize(L.data_offset + end, std::byte{0});
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      L.tensor_data_at.push_back(L.data_offset + rel[i]);
      const std::uint64_t n = gguf_tensor_bytes(tensors[i]);
      if (tensors[i].type == 0) {
        for (std::uint64_t k = 0; k < n / 4; ++k)  // small deterministic weights
          poke(b, L.data_offset + rel[i] + 4 * k, 0.01f * static_cast<float>(static_cast<int>((k * 37 + i * 11) % 17) - 8));
      } else {
        // Bytes below 0x40 keep every fp16/bf16 scale finite, so quantized tensors also dequantize cleanly.
        for (std::uint64_t k = 0; k < n; ++k) b[L.data_offset + rel[i] + k] = std::byte(static_cast<unsigned char>((k * 13 + i) & 0x3F));
      }
    }
    return L;
  }
  bytes build() const { return layout().file; }
};

// Hyper-parameters of the tiny valid llama the tests start from.
struct tiny_llama {
  std::int64_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 8, context = 16;
  bool with_output = true;     // an explicit output.weight (unshared classifier)
  bool with_tokenizer = true;  // tokenizer.ggml.* embedded
  std::uint32_t type = 0;      // ggml type of the 2-D weights
};

inline std::vector<std::string> tiny_vocab() {
  // SentencePiece style: U+2581 marks a word start; <0x41> is a byte-fallback piece.
  return {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "b", "c", "\xE2\x96\x81" "ab", "<0x41>"};
}

// A minimal but complete llama GGUF (v3) with metadata of every value type, nested arrays,
// general.alignment and (optionally) an embedded 8-token SentencePiece tokenizer.
inline gguf_spec tiny_llama_gguf(const tiny_llama& p = {}) {
  gguf_spec s;
  s.set("general.architecture", g_str("llama"));
  s.set("general.name", g_str("edgelm tiny test llama"));
  s.set("general.alignment", g_u32(32));
  s.set("llama.context_length", g_u32(static_cast<std::uint32_t>(p.context)));
  s.set("llama.embedding_length", g_u32(static_cast<std::uint32_t>(p.dim)));
  s.set("llama.feed_forward_length", g_u64(static_cast<std::uint64_t>(p.hidden)));
  s.set("llama.block_count", g_i32(static_cast<std::int32_t>(p.layers)));  // signed but positive: allowed
  s.set("llama.attention.head_count", g_u16(static_cast<std::uint16_t>(p.heads)));
  s.set("llama.attention.head_count_kv", g_u8(static_cast<std::uint8_t>(p.kv_heads)));
  s.set("llama.rope.freq_base", g_f32(10000.0f));
  s.set("llama.attention.layer_norm_rms_epsilon", g_f64(1e-5));
  s.set("llama.rope.dimension_count", g_u32(static_cast<std::uint32_t>(p.heads ? p.dim / p.heads : 0)));
  // Every remaining value type, and nested arrays, under a private prefix.
  s.set("test.i8", g_i8(-3));
  s.set("test.i16", g_i16(-300));
  s.set("test.i64", g_i64(-5000000000LL));
  s.set("test.bool", g_bool(1));
  s.set("test.empty", g_arr(gt::u32, {}));
  s.set("test.nested", g_arr(gt::array, {g_arr(gt::u8, {g_u8(1), g_u8(2)}), g_arr(gt::string, {g_str("x")}),
                                         g_arr(gt::array, {g_arr(gt::i64, {g_i64(-1)})})}));
  s.set("test.utf8 key \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", g_str("valid multi-byte key"));
  if (p.with_tokenizer) {
    auto v = tiny_vocab();
    std::vector<float> scores;
    std::vector<std::int32_t> types;
    for (std::size_t k = 0; k < v.size(); ++k) {
      scores.push_back(-static_cast<float>(k));
      types.push_back(k == 0 ? 2 : k < 3 ? 3 : v[k] == "<0x41>" ? 6 : 1);
    }
    s.set("tokenizer.ggml.model", g_str("llama"));
    s.set("tokenizer.ggml.tokens", g_strs(v));
    s.set("tokenizer.ggml.scores", g_f32s(scores));
    s.set("tokenizer.ggml.token_type", g_i32s(types));
    s.set("tokenizer.ggml.bos_token_id", g_u32(1));
    s.set("tokenizer.ggml.eos_token_id", g_u32(2));
    s.set("tokenizer.ggml.unknown_token_id", g_u32(0));
    s.set("tokenizer.ggml.add_bos_token", g_bool(1));
    s.set("tokenizer.ggml.add_space_prefix", g_bool(1));
  }
  const std::int64_t D = p.dim, H = p.hidden, V = p.vocab, KVD = p.heads ? p.dim / p.heads * p.kv_heads : 0;
  auto add = [&](std::string name, std::vector<std::int64_t> ne, std::uint32_t type) {
    s.tensors.push_back({std::move(name), std::move(ne), type, std::nullopt});
  };
  add("token_embd.weight", {D, V}, p.type);
  for (std::int64_t l = 0; l < p.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {D}, 0);
    add(b + "attn_q.weight", {D, D}, p.type);
    add(b + "attn_k.weight", {D, KVD}, p.type);
    add(b + "attn_v.weight", {D, KVD}, p.type);
    add(b + "attn_output.weight", {D, D}, p.type);
    add(b + "ffn_norm.weight", {D}, 0);
    add(b + "ffn_gate.weight", {D, H}, p.type);
    add(b + "ffn_down.weight", {H, D}, p.type);
    add(b + "ffn_up.weight", {D, H}, p.type);
  }
  add("output_norm.weight", {D}, 0);
  if (p.with_output) add("output.weight", {D, V}, p.type);
  return s;
}

// ---------------------------------------------------------------------------------------------
// llama2.c

// The 7 x int32 header of a llama2.c checkpoint; a negative vocab means an unshared classifier.
struct llama2c_header {
  std::int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 8, seq = 16;
};

// Number of float32 weights that follow a (sane) header, in run.c's order.
inline std::uint64_t llama2c_n_floats(const llama2c_header& h) {
  const std::uint64_t D = h.dim, H = h.hidden, L = h.layers, V = h.vocab < 0 ? -std::int64_t{h.vocab} : h.vocab,
                      HS = D / h.heads, KVD = HS * h.kv_heads, S = h.seq;
  std::uint64_t n = V * D;                       // token_embedding_table (vocab, dim)
  n += L * D;                                    // rms_att_weight (layer, dim)
  n += L * D * D + 2 * L * KVD * D + L * D * D;  // wq, wk, wv, wo
  n += L * D;                                    // rms_ffn_weight
  n += 3 * L * H * D;                            // w1, w2, w3
  n += D;                                        // rms_final_weight
  n += S * HS;                                   // freq_cis_real + freq_cis_imag (seq, head_size/2) each
  if (h.vocab < 0) n += V * D;                   // wcls
  return n;
}

// A checkpoint with `n_floats` weights (default: exactly what the header needs), value k = k * 1e-3.
inline bytes llama2c_checkpoint(const llama2c_header& h, std::optional<std::uint64_t> n_floats = {}) {
  bytes b;
  for (std::int32_t v : {h.dim, h.hidden, h.layers, h.heads, h.kv_heads, h.vocab, h.seq}) put(b, v);
  const std::uint64_t n = n_floats.value_or(llama2c_n_floats(h));
  for (std::uint64_t k = 0; k < n; ++k) put(b, static_cast<float>(k % 1000) * 1e-3f);
  return b;
}

struct llama2c_piece {
  float score = 0;
  std::string piece;
};
// A llama2.c tokenizer.bin: int32 max_token_length, then {float score, int32 len, bytes} per token.
inline bytes llama2c_tokenizer(std::int32_t max_token_length, const std::vector<llama2c_piece>& pieces) {
  bytes b;
  put(b, max_token_length);
  for (const auto& p : pieces) {
    put(b, p.score);
    put(b, static_cast<std::int32_t>(p.piece.size()));
    put_raw(b, p.piece.data(), p.piece.size());
  }
  return b;
}
inline std::vector<llama2c_piece> tiny_llama2c_pieces() {
  return {{0.0f, "<unk>"}, {0.0f, "\n<s>\n"}, {0.0f, "\n</s>\n"}, {0.0f, "<0x41>"},
          {-1.0f, " a"},   {-2.0f, "b"},      {-3.0f, "c"},        {-4.0f, " ab"}};
}

// ---------------------------------------------------------------------------------------------
// safetensors and Hugging Face config.json

// u64 header length + the header text as given + the data (nothing checked: for hostile files).
inline bytes safetensors_raw(std::string_view header, const bytes& data) {
  bytes b;
  put<std::uint64_t>(b, header.size());
  put_raw(b, header.data(), header.size());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

struct st_tensor {
  std::string name;
  std::string dtype = "F32";  // F32 / F16 / BF16 (or anything, for hostile files)
  std::vector<std::uint64_t> shape;
  bytes data;
};
// A well-formed file: tensors in the given order, back to back; the header padded with spaces to a multiple
// of 8 (as the Python writer does). `metadata`: the __metadata__ object's text ("" for none).
inline bytes safetensors_file(const std::vector<st_tensor>& ts, std::string_view metadata = R"({"format":"pt"})") {
  std::string h = "{";
  if (!metadata.empty()) h += "\"__metadata__\":" + std::string(metadata);
  std::uint64_t off = 0;
  bytes data;
  for (const auto& t : ts) {
    if (h.size() > 1) h += ",";
    h += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) h += (d ? "," : "") + std::to_string(t.shape[d]);
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.data.size()) + "]}";
    off += t.data.size();
    data.insert(data.end(), t.data.begin(), t.data.end());
  }
  h += "}";
  while (h.size() % 8) h += ' ';
  return safetensors_raw(h, data);
}

// n values of a dtype from f(i): F32, F16 or BF16 bytes (bf16 truncates, f16 via a plain conversion).
template <class F>
bytes st_values(std::string_view dtype, std::uint64_t n, F f) {
  bytes b;
  for (std::uint64_t i = 0; i < n; ++i) {
    const float v = f(i);
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    if (dtype == "BF16") put<std::uint16_t>(b, static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16));
    else if (dtype == "F16") {
      // normal numbers only (the builders use |v| in [2^-14, 65504]), round to nearest even
      const std::uint32_t sign = (u >> 16) & 0x8000u;
      const std::int32_t e = static_cast<std::int32_t>((u >> 23) & 0xFF) - 127 + 15;
      std::uint32_t m = u & 0x7FFFFFu;
      std::uint16_t h = static_cast<std::uint16_t>(sign);
      if (v != 0 && e > 0 && e < 31) {
        std::uint32_t r = (static_cast<std::uint32_t>(e) << 10) | (m >> 13);
        const std::uint32_t rest = m & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;
        h = static_cast<std::uint16_t>(sign | r);
      }
      put<std::uint16_t>(b, h);
    } else put<float>(b, v);
  }
  return b;
}

// A tiny Hugging Face llama: config.json and the tensors of model.safetensors (HF names and order).
struct tiny_hf {
  std::uint32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 10;
  bool tied = false;
  std::string dtype = "F32";
  std::string model_type = "llama";
};
inline std::string tiny_hf_config(const tiny_hf& p) {
  return "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"" + p.model_type + "\", \"hidden_size\": " + std::to_string(p.dim) +
         ", \"intermediate_size\": " + std::to_string(p.hidden) + ", \"num_hidden_layers\": " + std::to_string(p.layers) +
         ", \"num_attention_heads\": " + std::to_string(p.heads) + ", \"num_key_value_heads\": " + std::to_string(p.kv_heads) +
         ", \"vocab_size\": " + std::to_string(p.vocab) + ", \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0" +
         ", \"hidden_act\": \"silu\", \"tie_word_embeddings\": " + (p.tied ? "true" : "false") + ", \"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"float32\"}";
}
inline std::vector<st_tensor> tiny_hf_tensors(const tiny_hf& p) {
  std::vector<st_tensor> ts;
  std::uint64_t seed = 1;
  auto add = [&](std::string name, std::vector<std::uint64_t> shape, bool norm) {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    const std::uint64_t s = seed++;
    ts.push_back({std::move(name), p.dtype, shape, st_values(p.dtype, n, [&](std::uint64_t i) {
                    const float x = static_cast<float>(((i * 2654435761u + s * 40503u) % 1000)) / 1000.0f - 0.5f;  // [-0.5, 0.5)
                    return norm ? 1.0f + 0.25f * x : (x == 0 ? 0.125f : x);
                  })});
  };
  const std::uint64_t D = p.dim, H = p.hidden, KV = p.dim / p.heads * p.kv_heads;
  add("model.embed_tokens.weight", {p.vocab, D}, false);
  for (std::uint32_t l = 0; l < p.layers; ++l) {
    const std::string b = "model.layers." + std::to_string(l) + ".";
    add(b + "input_layernorm.weight", {D}, true);
    add(b + "self_attn.q_proj.weight", {D, D}, false);
    add(b + "self_attn.k_proj.weight", {KV, D}, false);
    add(b + "self_attn.v_proj.weight", {KV, D}, false);
    add(b + "self_attn.o_proj.weight", {D, D}, false);
    add(b + "post_attention_layernorm.weight", {D}, true);
    add(b + "mlp.gate_proj.weight", {H, D}, false);
    add(b + "mlp.up_proj.weight", {H, D}, false);
    add(b + "mlp.down_proj.weight", {D, H}, false);
  }
  add("model.norm.weight", {D}, true);
  if (!p.tied) add("lm_head.weight", {p.vocab, D}, false);
  return ts;
}

}  // namespace edgelm_test
