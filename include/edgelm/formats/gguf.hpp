// edgelm/formats/gguf.hpp - GGUF v2/v3 reader: the whole metadata grammar, tensor infos, alignment.
// Written as a model of distrust (after llama.cpp's gguf.cpp): every count is checked against the bytes
// left and against overflow before anything is allocated; type ids are range-checked; names must be
// unique valid UTF-8; tensor data must lie inside the file at the declared alignment.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "../core/checked.hpp"
#include "../core/reader.hpp"
#include "../core/result.hpp"
#include "ggml_types.hpp"
#include "model_file.hpp"

namespace edgelm {

enum class gguf_type : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9, u64 = 10,
  i64 = 11, f64 = 12,
};
inline constexpr std::uint32_t gguf_type_count = 13;

// One metadata value. Arrays hold their elements (nested arrays allowed).
struct gguf_value {
  gguf_type type = gguf_type::u8;
  std::uint64_t u = 0;   // unsigned integers and bool
  std::int64_t i = 0;    // signed integers
  double f = 0;          // f32 / f64
  std::string s;         // string
  gguf_type elem_type = gguf_type::u8;  // arrays
  std::vector<gguf_value> arr;          // arrays of strings or arrays (and arrays built in code)
  std::vector<std::byte> packed;        // parsed arrays of fixed-size scalars: their little-endian bytes,
                                        // 1-8 bytes an element instead of a gguf_value (~100 bytes)

  // Element count of an array.
  std::size_t size() const noexcept;
  // Element i of an array (bounds are the caller's: i < size()).
  gguf_value at(std::size_t i) const;

  bool is_integer() const noexcept {
    switch (type) {
      case gguf_type::u8: case gguf_type::i8: case gguf_type::u16: case gguf_type::i16: case gguf_type::u32:
      case gguf_type::i32: case gguf_type::u64: case gguf_type::i64: return true;
      default: return false;
    }
  }
  bool is_signed() const noexcept {
    return type == gguf_type::i8 || type == gguf_type::i16 || type == gguf_type::i32 || type == gguf_type::i64;
  }
};

namespace detail {
inline std::uint64_t gguf_scalar_size(gguf_type t) noexcept;
}

inline std::size_t gguf_value::size() const noexcept {
  return packed.empty() ? arr.size() : packed.size() / static_cast<std::size_t>(detail::gguf_scalar_size(elem_type));
}

inline gguf_value gguf_value::at(std::size_t i) const {
  if (packed.empty()) return arr[i];
  gguf_value v;
  v.type = elem_type;
  const std::byte* p = packed.data() + i * static_cast<std::size_t>(detail::gguf_scalar_size(elem_type));
  auto get = [p](auto x) { std::memcpy(&x, p, sizeof x); return x; };
  switch (elem_type) {
    case gguf_type::u8: case gguf_type::boolean: v.u = get(std::uint8_t{}); break;
    case gguf_type::i8: v.i = get(std::int8_t{}); break;
    case gguf_type::u16: v.u = get(std::uint16_t{}); break;
    case gguf_type::i16: v.i = get(std::int16_t{}); break;
    case gguf_type::u32: v.u = get(std::uint32_t{}); break;
    case gguf_type::i32: v.i = get(std::int32_t{}); break;
    case gguf_type::u64: v.u = get(std::uint64_t{}); break;
    case gguf_type::i64: v.i = get(std::int64_t{}); break;
    case gguf_type::f32: v.f = get(float{}); break;
    case gguf_type::f64: v.f = get(double{}); break;
    default: break;
  }
  return v;
}

struct gguf_kv {
  std::string key;
  gguf_value value;
};

struct gguf_file {
  std::uint32_t version = 3;
  std::vector<gguf_kv> metadata;   // in file order
  std::vector<tensor_info> tensors;
  std::uint64_t alignment = 32;
  std::uint64_t data_offset = 0;   // start of the tensor data section

  const gguf_value* find(std::string_view key) const noexcept {
    for (const auto& kv : metadata)
      if (kv.key == key) return &kv.value;
    return nullptr;
  }
};

namespace detail {

inline constexpr std::uint32_t gguf_max_depth = 8;

inline std::uint64_t gguf_scalar_size(gguf_type t) noexcept {
  switch (t) {
    case gguf_type::u8: case gguf_type::i8: case gguf_type::boolean: return 1;
    case gguf_type::u16: case gguf_type::i16: return 2;
    case gguf_type::u32: case gguf_type::i32: case gguf_type::f32: return 4;
    case gguf_type::u64: case gguf_type::i64: case gguf_type::f64: return 8;
    case gguf_type::string: return 8;   // at least the length
    case gguf_type::array: return 12;   // at least type + count
  }
  return 1;
}

inline result<std::string> gguf_read_string(byte_reader& r, std::string_view what) {
  std::uint64_t start = r.pos();
  std::uint64_t len = 0;
  if (!r.read(len)) return r.fail(errc::truncated, std::string(what) + " length cut off");
  if (len > r.left()) return make_error(errc::count_too_large, std::string(what) + " length " + std::to_string(len) + " exceeds the bytes left", start);
  if (len > limits::max_string) return make_error(errc::count_too_large, std::string(what) + " longer than EDGELM_MAX_STRING", start);
  std::string_view sv;
  r.view(len, sv);
  return std::string(sv);
}

inline result<gguf_value> gguf_read_value(byte_reader& r, gguf_type t, std::uint32_t depth, const std::string& key, std::uint64_t& budget) {
  gguf_value v;
  v.type = t;
  std::uint64_t at = r.pos();
  auto cut = [&] { return make_error(errc::truncated, "metadata value cut off", at, key); };
  switch (t) {
    case gguf_type::u8: { std::uint8_t x; if (!r.read(x)) return cut(); v.u = x; break; }
    case gguf_type::i8: { std::int8_t x; if (!r.read(x)) return cut(); v.i = x; break; }
    case gguf_type::u16: { std::uint16_t x; if (!r.read(x)) return cut(); v.u = x; break; }
    case gguf_type::i16: { std::int16_t x; if (!r.read(x)) return cut(); v.i = x; break; }
    case gguf_type::u32: { std::uint32_t x; if (!r.read(x)) return cut(); v.u = x; break; }
    case gguf_type::i32: { std::int32_t x; if (!r.read(x)) return cut(); v.i = x; break; }
    case gguf_type::u64: { std::uint64_t x; if (!r.read(x)) return cut(); v.u = x; break; }
    case gguf_type::i64: { std::int64_t x; if (!r.read(x)) return cut(); v.i = x; break; }
    case gguf_type::f32: { float x; if (!r.read(x)) return cut(); v.f = x; break; }
    case gguf_type::f64: { double x; if (!r.read(x)) return cut(); v.f = x; break; }
    case gguf_type::boolean: {
      std::uint8_t x;
      if (!r.read(x)) return cut();
      if (x > 1) return make_error(errc::bad_value, "bool value is neither 0 nor 1", at, key);
      v.u = x;
      break;
    }
    case gguf_type::string: {
      auto s = gguf_read_string(r, "string value");
      if (!s) { auto e = s.error(); e.where = key; return e; }
      v.s = std::move(*s);
      break;
    }
    case gguf_type::array: {
      if (depth >= gguf_max_depth) return make_error(errc::count_too_large, "arrays nested too deeply", at, key);
      std::uint32_t et = 0;
      std::uint64_t n = 0;
      if (!r.read(et) || !r.read(n)) return cut();
      if (et >= gguf_type_count) return make_error(errc::unknown_value_type, "array element type " + std::to_string(et) + " is not a GGUF type", at, key);
      v.elem_type = static_cast<gguf_type>(et);
      std::uint64_t need = 0;
      if (!mul_ok(n, gguf_scalar_size(v.elem_type), need) || need > r.left())
        return make_error(errc::count_too_large, "array of " + std::to_string(n) + " elements exceeds the bytes left", at, key);
      if (n > budget)
        return make_error(errc::count_too_large, "metadata arrays hold more than EDGELM_MAX_METADATA_VALUES values", at, key);
      budget -= n;
      if (v.elem_type != gguf_type::string && v.elem_type != gguf_type::array) {
        // fixed-size scalars: keep the bytes (need was checked against the bytes left above)
        std::span<const std::byte> raw;
        r.view(need, raw);
        if (v.elem_type == gguf_type::boolean)
          for (std::size_t k = 0; k < raw.size(); ++k)
            if (static_cast<unsigned>(raw[k]) > 1) return make_error(errc::bad_value, "bool value is neither 0 nor 1", at + 12 + k, key);
        v.packed.assign(raw.begin(), raw.end());
        break;
      }
      v.arr.reserve(static_cast<std::size_t>(n));
      for (std::uint64_t k = 0; k < n; ++k) {
        auto e = gguf_read_value(r, v.elem_type, depth + 1, key, budget);
        if (!e) return e.error();
        v.arr.push_back(std::move(*e));
      }
      break;
    }
  }
  return v;
}

}  // namespace detail

// Parse the GGUF structure of `bytes` (which stay owned by the caller).
inline result<gguf_file> parse_gguf(std::span<const std::byte> bytes) {
  using namespace detail;
  byte_reader r(bytes);
  gguf_file g;
  char magic[4];
  if (!r.read(magic)) return r.fail(errc::truncated, "file shorter than the GGUF header");
  if (std::memcmp(magic, "GGUF", 4) != 0) return make_error(errc::bad_magic, "not a GGUF file", 0);
  if (!r.read(g.version)) return r.fail(errc::truncated, "GGUF header cut off");
  if (g.version != 2 && g.version != 3)
    return make_error(errc::unsupported_version, "GGUF version " + std::to_string(g.version) + " (supported: 2, 3)", 4);
  std::uint64_t n_tensors = 0, n_kv = 0;
  if (!r.read(n_tensors) || !r.read(n_kv)) return r.fail(errc::truncated, "GGUF header cut off");
  // A tensor info takes at least 8 (name len) + 4 + 8 + 4 + 8 bytes; a kv at least 8 + 4 + 1.
  if (n_tensors > limits::max_tensors || n_tensors > r.left() / 32)
    return make_error(errc::count_too_large, "tensor count " + std::to_string(n_tensors) + " is larger than the file allows", 8);
  if (n_kv > limits::max_metadata || n_kv > r.left() / 13)
    return make_error(errc::count_too_large, "metadata count " + std::to_string(n_kv) + " is larger than the file allows", 16);

  std::unordered_set<std::string> seen;
  std::uint64_t value_budget = limits::max_metadata_values;
  g.metadata.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::uint64_t at = r.pos();
    auto key = gguf_read_string(r, "metadata key");
    if (!key) return key.error();
    if (!valid_utf8(*key)) return make_error(errc::invalid_utf8, "metadata key is not valid UTF-8", at);
    if (key->empty()) return make_error(errc::missing_key, "empty metadata key", at);
    if (!seen.insert(*key).second) return make_error(errc::duplicate_name, "metadata key appears twice", at, *key);
    std::uint32_t t = 0;
    if (!r.read(t)) return r.fail(errc::truncated, "metadata type cut off", *key);
    if (t >= gguf_type_count) return make_error(errc::unknown_value_type, "value type " + std::to_string(t) + " is not a GGUF type", r.pos() - 4, *key);
    auto v = gguf_read_value(r, static_cast<gguf_type>(t), 0, *key, value_budget);
    if (!v) return v.error();
    g.metadata.push_back({std::move(*key), std::move(*v)});
  }

  if (const gguf_value* a = g.find("general.alignment")) {
    if (!a->is_integer() || a->is_signed())
      return make_error(errc::bad_key_type, "general.alignment must be an unsigned integer", error::no_offset, "general.alignment");
    if (!is_pow2(a->u) || a->u > (1u << 20))
      return make_error(errc::bad_alignment, "alignment " + std::to_string(a->u) + " is not a power of two <= 1 MiB", error::no_offset, "general.alignment");
    g.alignment = a->u;
  }

  seen.clear();
  g.tensors.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    std::uint64_t at = r.pos();
    auto name = gguf_read_string(r, "tensor name");
    if (!name) return name.error();
    if (!valid_utf8(*name)) return make_error(errc::invalid_utf8, "tensor name is not valid UTF-8", at);
    if (name->empty() || name->size() > 256) return make_error(errc::count_too_large, "tensor name empty or longer than 256 bytes", at);
    if (!seen.insert(*name).second) return make_error(errc::duplicate_name, "tensor name appears twice", at, *name);
    tensor_info ti;
    ti.name = std::move(*name);
    if (!r.read(ti.n_dims)) return r.fail(errc::truncated, "tensor info cut off", ti.name);
    if (ti.n_dims == 0 || ti.n_dims > 4)
      return make_error(errc::absurd_dimension, "tensor has " + std::to_string(ti.n_dims) + " dimensions (1..4 allowed)", r.pos() - 4, ti.name);
    std::uint64_t n_el = 1;
    for (std::uint32_t d = 0; d < ti.n_dims; ++d) {
      std::int64_t ne = 0;
      if (!r.read(ne)) return r.fail(errc::truncated, "tensor shape cut off", ti.name);
      if (ne < 0) return make_error(errc::negative_size, "negative tensor dimension", r.pos() - 8, ti.name);
      if (ne == 0) return make_error(errc::absurd_dimension, "zero tensor dimension", r.pos() - 8, ti.name);
      ti.ne[d] = static_cast<std::uint64_t>(ne);
      if (!mul_ok(n_el, ti.ne[d], n_el) || n_el > (std::uint64_t{1} << 62))
        return make_error(errc::overflow, "tensor element count overflows", r.pos() - 8, ti.name);
    }
    std::uint32_t type = 0;
    if (!r.read(type)) return r.fail(errc::truncated, "tensor type cut off", ti.name);
    if (!ggml_type_known(type))
      return make_error(errc::unknown_tensor_type, "tensor type id " + std::to_string(type) + " is not a ggml type", r.pos() - 4, ti.name);
    ti.type = static_cast<ggml_type>(type);
    const auto& info = ggml_info(ti.type);
    if (ti.ne[0] % info.block_size != 0)
      return make_error(errc::shape_mismatch, "row of " + std::to_string(ti.ne[0]) + " elements is not a whole number of " +
                        std::string(info.name) + " blocks", at, ti.name);
    if (!mul_ok(n_el / info.block_size, info.type_size, ti.n_bytes))
      return make_error(errc::overflow, "tensor byte size overflows", at, ti.name);
    if (!r.read(ti.offset)) return r.fail(errc::truncated, "tensor offset cut off", ti.name);
    if (ti.offset % g.alignment != 0)
      return make_error(errc::misaligned, "tensor data offset " + std::to_string(ti.offset) + " is not a multiple of the alignment " +
                        std::to_string(g.alignment), r.pos() - 8, ti.name);
    g.tensors.push_back(std::move(ti));
  }

  g.data_offset = align_up(r.pos(), g.alignment);
  if (g.data_offset > bytes.size() && !g.tensors.empty())
    return make_error(errc::truncated, "file ends before the tensor data section", bytes.size());
  const std::uint64_t data_size = bytes.size() > g.data_offset ? bytes.size() - g.data_offset : 0;
  for (auto& t : g.tensors) {
    std::uint64_t end = 0;
    if (t.offset >= data_size)
      return make_error(errc::offset_out_of_bounds, "tensor data starts outside the file", g.data_offset + t.offset, t.name);
    if (!add_ok(t.offset, t.n_bytes, end) || end > data_size)
      return make_error(errc::truncated, "tensor data runs past the end of the file", g.data_offset + t.offset, t.name);
    t.offset += g.data_offset;
    t.data = bytes.data() + t.offset;
  }
  return g;
}

namespace detail {

// Typed metadata accessors with range checks.
inline result<std::uint64_t> gguf_get_uint(const gguf_file& g, const std::string& key, std::uint64_t max) {
  const gguf_value* v = g.find(key);
  if (!v) return make_error(errc::missing_key, "required metadata key missing", error::no_offset, key);
  if (!v->is_integer()) return make_error(errc::bad_key_type, "must be an integer", error::no_offset, key);
  if (v->is_signed() && v->i < 0) return make_error(errc::negative_size, "must not be negative", error::no_offset, key);
  std::uint64_t x = v->is_signed() ? static_cast<std::uint64_t>(v->i) : v->u;
  if (x > max) return make_error(errc::absurd_dimension, "value " + std::to_string(x) + " exceeds the limit " + std::to_string(max), error::no_offset, key);
  return x;
}
inline result<std::uint64_t> gguf_get_uint_or(const gguf_file& g, const std::string& key, std::uint64_t max, std::uint64_t dflt) {
  if (!g.find(key)) return dflt;
  return gguf_get_uint(g, key, max);
}
inline result<float> gguf_get_float_or(const gguf_file& g, const std::string& key, float dflt) {
  const gguf_value* v = g.find(key);
  if (!v) return dflt;
  if (v->type != gguf_type::f32 && v->type != gguf_type::f64) return make_error(errc::bad_key_type, "must be a float", error::no_offset, key);
  if (!(v->f == v->f) || v->f > 3.0e38 || v->f < -3.0e38) return make_error(errc::bad_value, "must be finite", error::no_offset, key);
  return static_cast<float>(v->f);
}
inline result<bool> gguf_get_bool_or(const gguf_file& g, const std::string& key, bool dflt) {
  const gguf_value* v = g.find(key);
  if (!v) return dflt;
  if (v->type != gguf_type::boolean) return make_error(errc::bad_key_type, "must be a bool", error::no_offset, key);
  return v->u != 0;
}

// Replace SentencePiece's U+2581 with ' ' (what llama2.c's tokenizer.bin stores).
inline std::string sp_to_space(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "\xE2\x96\x81") == 0) { out += ' '; i += 3; }
    else out += s[i++];
  }
  return out;
}

inline result<tokenizer_data> gguf_tokenizer(const gguf_file& g) {
  tokenizer_data td;
  const gguf_value* model = g.find("tokenizer.ggml.model");
  if (!model) return td;  // no tokenizer embedded
  if (model->type == gguf_type::string && model->s == "none") return td;  // llama.cpp's "no vocabulary"
  if (model->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, "tokenizer.ggml.model");
  if (model->s != "llama" && model->s != "gpt2")
    return make_error(errc::bad_tokenizer, "tokenizer model '" + model->s + "' is not supported (supported: llama, gpt2)", error::no_offset, "tokenizer.ggml.model");
  const bool byte_level = model->s == "gpt2";
  td.model = model->s;
  td.marker_is_space = !byte_level;
  const gguf_value* tokens = g.find("tokenizer.ggml.tokens");
  if (!tokens) return make_error(errc::missing_key, "tokenizer has no tokens", error::no_offset, "tokenizer.ggml.tokens");
  if (tokens->type != gguf_type::array || tokens->elem_type != gguf_type::string)
    return make_error(errc::bad_key_type, "must be an array of strings", error::no_offset, "tokenizer.ggml.tokens");
  const std::size_t n = tokens->size();
  if (n < 3 || n > limits::max_vocab) return make_error(errc::bad_tokenizer, "vocabulary size " + std::to_string(n) + " out of range", error::no_offset, "tokenizer.ggml.tokens");
  td.pieces.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    const auto& s = tokens->arr[k].s;
    if (s.size() > limits::max_token_bytes)
      return make_error(errc::bad_tokenizer, "token " + std::to_string(k) + " is longer than EDGELM_MAX_TOKEN_BYTES", error::no_offset, "tokenizer.ggml.tokens");
    td.pieces.push_back(byte_level ? s : sp_to_space(s));
    td.max_token_length = std::max<std::uint32_t>(td.max_token_length, static_cast<std::uint32_t>(td.pieces.back().size()));
  }
  td.scores.assign(n, 0.0f);
  if (const gguf_value* sc = g.find("tokenizer.ggml.scores")) {
    if (sc->type != gguf_type::array || sc->elem_type != gguf_type::f32)
      return make_error(errc::bad_key_type, "must be an array of f32", error::no_offset, "tokenizer.ggml.scores");
    if (sc->size() != n) return make_error(errc::bad_tokenizer, "scores and tokens differ in count", error::no_offset, "tokenizer.ggml.scores");
    for (std::size_t k = 0; k < n; ++k) {
      double f = sc->at(k).f;
      if (!(f == f) || f > 3.0e38 || f < -3.0e38) return make_error(errc::bad_value, "score of token " + std::to_string(k) + " is not finite", error::no_offset, "tokenizer.ggml.scores");
      td.scores[k] = static_cast<float>(f);
    }
  }
  td.types.assign(n, token_type::normal);
  if (const gguf_value* ty = g.find("tokenizer.ggml.token_type")) {
    if (ty->type != gguf_type::array || !(ty->elem_type == gguf_type::i32 || ty->elem_type == gguf_type::u32))
      return make_error(errc::bad_key_type, "must be an array of i32", error::no_offset, "tokenizer.ggml.token_type");
    if (ty->size() != n) return make_error(errc::bad_tokenizer, "token types and tokens differ in count", error::no_offset, "tokenizer.ggml.token_type");
    for (std::size_t k = 0; k < n; ++k) {
      const gguf_value e = ty->at(k);
      std::int64_t t = ty->elem_type == gguf_type::i32 ? e.i : static_cast<std::int64_t>(e.u);
      if (t < 1 || t > 6) return make_error(errc::bad_tokenizer, "token " + std::to_string(k) + " has unknown type " + std::to_string(t), error::no_offset, "tokenizer.ggml.token_type");
      td.types[k] = static_cast<token_type>(t);
    }
  }
  auto id = [&](const char* key, std::uint64_t dflt) -> result<std::int32_t> {
    auto v = gguf_get_uint_or(g, key, n - 1, dflt);
    if (!v) { auto e = v.error(); if (e.code == errc::absurd_dimension) e.code = errc::bad_tokenizer; return e; }
    return static_cast<std::int32_t>(*v);
  };
  auto bos = id("tokenizer.ggml.bos_token_id", 1);
  if (!bos) return bos.error();
  auto eos = id("tokenizer.ggml.eos_token_id", 2);
  if (!eos) return eos.error();
  auto unk = id("tokenizer.ggml.unknown_token_id", 0);
  if (!unk) return unk.error();
  td.bos_id = *bos;
  td.eos_id = *eos;
  td.unk_id = *unk;
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (!g.find(key)) continue;
    auto e = id(key, 0);
    if (!e) return e.error();
    td.eog_ids.push_back(*e);
  }
  if (const gguf_value* t = g.find("tokenizer.chat_template")) {
    if (t->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, "tokenizer.chat_template");
    td.chat_template = t->s;
  }
  if (byte_level) {
    // merges ("left right", rank order) and the pre-tokenizer's name
    const gguf_value* merges = g.find("tokenizer.ggml.merges");
    if (!merges) return make_error(errc::bad_tokenizer, "a gpt2 tokenizer needs merges", error::no_offset, "tokenizer.ggml.merges");
    if (merges->type != gguf_type::array || merges->elem_type != gguf_type::string)
      return make_error(errc::bad_key_type, "must be an array of strings", error::no_offset, "tokenizer.ggml.merges");
    td.merges.reserve(merges->size());
    for (std::size_t k = 0; k < merges->size(); ++k) td.merges.push_back(merges->arr[k].s);
    if (const gguf_value* pre = g.find("tokenizer.ggml.pre")) {
      if (pre->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, "tokenizer.ggml.pre");
      td.pre = pre->s;
    }
  }
  auto add_bos = gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", !byte_level);
  if (!add_bos) return add_bos.error();
  td.add_bos = *add_bos;
  auto prefix = gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", true);
  if (!prefix) return prefix.error();
  td.add_space_prefix = *prefix;
  return td;
}

}  // namespace detail

// Only the tokenizer embedded in a GGUF file (for tokenizer-only use); bad_tokenizer if it has none.
inline result<tokenizer_data> read_gguf_tokenizer(std::span<const std::byte> bytes) {
  auto parsed = parse_gguf(bytes);
  if (!parsed) return parsed.error();
  auto tok = detail::gguf_tokenizer(*parsed);
  if (!tok) return tok.error();
  if (tok->pieces.empty()) return make_error(errc::bad_tokenizer, "the GGUF file holds no tokenizer", error::no_offset, "tokenizer.ggml.model");
  return tok;
}

namespace detail {

// llama.cpp's gguf-split: every part is a GGUF with split.no (0-based), split.count and split.tensors.count;
// the first holds all the metadata, each holds some of the tensors. count 0 / 1 (or no key): a whole file.
struct gguf_split_info {
  std::uint64_t no = 0, count = 1, tensors = 0;
};
inline result<gguf_split_info> gguf_split_of(const gguf_file& g) {
  gguf_split_info si;
  auto count = gguf_get_uint_or(g, "split.count", 65535, 1);
  if (!count) return count.error();
  si.count = *count == 0 ? 1 : *count;
  auto no = gguf_get_uint_or(g, "split.no", 65535, 0);
  if (!no) return no.error();
  si.no = *no;
  auto nt = gguf_get_uint_or(g, "split.tensors.count", std::uint64_t{1} << 31, 0);
  if (!nt) return nt.error();
  si.tensors = *nt;
  if (si.no >= si.count) return make_error(errc::bad_value, "split.no " + std::to_string(si.no) + " is not below split.count " + std::to_string(si.count), error::no_offset, "split.no");
  return si;
}

// The shards of a split GGUF as one byte owner: bytes() is the first part's, release() goes to every part
// (each ignores what is not its own).
struct multi_owner final : byte_owner {
  std::vector<std::shared_ptr<byte_owner>> parts;
  std::span<const std::byte> bytes() const noexcept override { return parts.empty() ? std::span<const std::byte>{} : parts.front()->bytes(); }
  void release(std::span<const std::byte> part) const noexcept override {
    for (const auto& p : parts) p->release(part);
  }
};

// A part of a parent's bytes (the parts of a split GGUF laid end to end in one buffer, as the browser loader
// fetches several URLs): keeps the parent alive, releases through it.
struct sub_owner final : byte_owner {
  std::shared_ptr<byte_owner> parent;
  std::span<const std::byte> view;
  std::span<const std::byte> bytes() const noexcept override { return view; }
  void release(std::span<const std::byte> part) const noexcept override { parent->release(part); }
};

// Where a GGUF's bytes end as gguf-split (and llama.cpp's gguf writer) lays them out: the data section is
// every tensor padded to the alignment, so the file ends at the last tensor's end rounded up.
inline std::uint64_t gguf_end(const gguf_file& g) noexcept {
  std::uint64_t end = g.data_offset;
  for (const auto& t : g.tensors) end = std::max(end, t.offset + t.n_bytes);
  const std::uint64_t a = g.alignment ? g.alignment : 1;
  return end > UINT64_MAX - a ? end : (end + a - 1) / a * a;
}

inline result<model_file> read_gguf_parsed(gguf_file&& parsed_file, std::shared_ptr<byte_owner> owner);

}  // namespace detail

namespace detail {

// A parsed GGUF as one model: a part of a split alone is errc::missing_tensor naming the ways to read it.
inline result<model_file> read_gguf_whole(gguf_file&& parsed, std::shared_ptr<byte_owner> owner) {
  auto si = gguf_split_of(parsed);
  if (!si) return si.error();
  if (si->count > 1)
    return make_error(errc::missing_tensor,
                      "part " + std::to_string(si->no + 1) + " of a GGUF split into " + std::to_string(si->count) +
                          " (gguf-split): read all the parts together (the first part's path, read_gguf_split or read_gguf_concatenated), or join them with llama-gguf-split --merge",
                      error::no_offset, "split.count");
  return read_gguf_parsed(std::move(parsed), std::move(owner));
}

// The parts of a split in order (parts.size() >= 2); parsed[i], where given, is parts[i]'s parse (each part is
// parsed once whoever parses it).
inline result<model_file> read_gguf_parts(std::vector<std::shared_ptr<byte_owner>> parts, std::vector<gguf_file> parsed) {
  std::optional<gguf_file> first;
  std::uint64_t count = 0, total = 0;
  std::unordered_set<std::string> names;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i]) return make_error(errc::invalid_argument, "GGUF part " + std::to_string(i + 1) + " is missing");
    result<gguf_file> g = i < parsed.size() ? result<gguf_file>(std::move(parsed[i])) : parse_gguf(parts[i]->bytes());
    if (!g) {
      error e = g.error();
      return make_error(e.code, "GGUF part " + std::to_string(i + 1) + ": " + e.msg, e.offset, e.where);
    }
    auto si = gguf_split_of(*g);
    if (!si) return si.error();
    if (i == 0) count = si->count, total = si->tensors;
    if (si->count != parts.size() || si->count != count)
      return make_error(errc::bad_value, "GGUF part " + std::to_string(i + 1) + " says the split has " + std::to_string(si->count) + " parts; " +
                                             std::to_string(parts.size()) + " were given", error::no_offset, "split.count");
    if (si->no != i)
      return make_error(errc::bad_value, "GGUF part " + std::to_string(i + 1) + " is part " + std::to_string(si->no + 1) + " of its split (parts out of order?)",
                        error::no_offset, "split.no");
    if (si->tensors != total) return make_error(errc::bad_value, "the parts disagree on split.tensors.count", error::no_offset, "split.tensors.count");
    for (const auto& t : g->tensors)
      if (!names.insert(t.name).second) return make_error(errc::duplicate_name, "tensor in two parts of the split", t.offset, t.name);
    if (i == 0) {
      first = std::move(*g);
    } else {
      for (auto& t : g->tensors) first->tensors.push_back(std::move(t));
    }
  }
  if (total != 0 && first->tensors.size() != total)
    return make_error(errc::missing_tensor, "the parts hold " + std::to_string(first->tensors.size()) + " tensors, split.tensors.count says " + std::to_string(total),
                      error::no_offset, "split.tensors.count");
  auto owner = std::make_shared<multi_owner>();
  owner->parts = std::move(parts);
  return read_gguf_parsed(std::move(*first), std::move(owner));
}

}  // namespace detail

// Read a GGUF file into the format-neutral model_file. Architecture 'llama' (and its close
// relatives that share its tensor layout) is supported. One part of a split GGUF (gguf-split) alone is
// errc::missing_tensor naming the parts it needs: read_gguf_split, read_gguf_concatenated, or read_model_path
// on the first part.
inline result<model_file> read_gguf(std::shared_ptr<detail::byte_owner> owner) {
  auto parsed = parse_gguf(owner->bytes());
  if (!parsed) return parsed.error();
  return detail::read_gguf_whole(std::move(*parsed), std::move(owner));
}

// A GGUF split by llama.cpp's gguf-split, its parts in order: the first's metadata and every part's tensors
// (each part's tensor data stays in its own bytes, zero copy). Parts out of order, missing, repeated or of
// another split, and a tensor in two parts, are errors.
inline result<model_file> read_gguf_split(std::vector<std::shared_ptr<detail::byte_owner>> parts) {
  if (parts.empty()) return make_error(errc::invalid_argument, "no GGUF parts");
  if (parts.size() == 1) return read_gguf(std::move(parts.front()));
  return detail::read_gguf_parts(std::move(parts), {});
}

// A GGUF whose bytes may hold all the parts of a gguf-split end to end (`cat` of the parts; each part starts
// where the one before ends, as gguf-split lays them out): one model. Any other GGUF: read_gguf. (Not in
// read_gguf itself, so that builds reading whole files only, e.g. the browser engine, stay small.)
inline result<model_file> read_gguf_concatenated(std::shared_ptr<detail::byte_owner> owner) {
  using namespace detail;
  auto parsed = parse_gguf(owner->bytes());
  if (!parsed) return parsed.error();
  auto si = gguf_split_of(*parsed);
  if (!si) return si.error();
  if (si->count > 1 && si->no == 0 && gguf_end(*parsed) < owner->bytes().size()) {
    // the other parts after it in the same bytes (several URLs fetched into one buffer, or `cat`): each starts
    // where the one before ends. A part parsed over the bytes from its start is parsed as over its own bytes
    // (its tensors end within gguf_end), so each parse is kept for read_gguf_parts; part 1's is the one above.
    const auto all = owner->bytes();
    std::vector<std::shared_ptr<byte_owner>> parts;
    std::vector<gguf_file> parses;
    std::uint64_t at = 0;
    for (std::uint64_t i = 0; i < si->count && at < all.size(); ++i) {
      auto pg = i == 0 ? std::move(parsed) : parse_gguf(all.subspan(static_cast<std::size_t>(at)));
      if (!pg) {
        error e = pg.error();
        return make_error(e.code, "GGUF part " + std::to_string(i + 1) + " (at byte " + std::to_string(at) + " of the concatenated parts): " + e.msg, e.offset,
                          e.where);
      }
      const std::uint64_t len = std::min<std::uint64_t>(gguf_end(*pg), all.size() - at);
      auto sub = std::make_shared<sub_owner>();
      sub->parent = owner;
      sub->view = all.subspan(static_cast<std::size_t>(at), static_cast<std::size_t>(len));
      parts.push_back(std::move(sub));
      parses.push_back(std::move(*pg));
      at += len;
    }
    if (at != all.size())
      return make_error(errc::bad_value, "bytes after the last part of a split GGUF (" + std::to_string(all.size() - at) + ")", at, "split.count");
    return read_gguf_parts(std::move(parts), std::move(parses));  // (at least 2: part 1 ends before the bytes do)
  }
  return read_gguf_whole(std::move(*parsed), std::move(owner));
}

namespace detail {
inline result<model_file> read_gguf_parsed(gguf_file&& parsed_file, std::shared_ptr<byte_owner> owner) {
  gguf_file& g = parsed_file;
  model_file mf;
  mf.format = file_format::gguf;
  mf.bytes = std::move(owner);

  const gguf_value* arch = g.find("general.architecture");
  if (!arch) return make_error(errc::missing_key, "no architecture", error::no_offset, "general.architecture");
  if (arch->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, "general.architecture");
  // llama.cpp's architectures for the families edgelm runs, and gptneo, edgelm's own (llama.cpp has no GPT-Neo;
  // quantize.hpp's family_gguf_layout documents it: gpt2's tensors with separate bias-free q/k/v, unscaled
  // attention, gptneo.attention.windows)
  const bool is_qwen2 = arch->s == "qwen2", is_gpt2 = arch->s == "gpt2", is_phi2 = arch->s == "phi2", is_neox = arch->s == "gptneox",
             is_neo = arch->s == "gptneo";
  if (arch->s != "llama" && !is_qwen2 && !is_gpt2 && !is_phi2 && !is_neox && !is_neo)
    return make_error(errc::unsupported_architecture, "architecture '" + arch->s + "' is not supported (supported: llama, qwen2, gpt2, phi2, gptneox, gptneo)",
                      error::no_offset, "general.architecture");
  const bool layer_norm = is_gpt2 || is_phi2 || is_neox || is_neo;
  const std::string a = arch->s + ".";
  model_config& c = mf.config;
  c.arch = arch->s;
  auto get = [&](const char* k, std::uint64_t max) { return gguf_get_uint(g, a + k, max); };
  auto dim = get("embedding_length", limits::max_dim);               if (!dim) return dim.error();
  auto hidden = get("feed_forward_length", 4 * limits::max_dim);     if (!hidden) return hidden.error();
  auto layers = get("block_count", limits::max_layers);              if (!layers) return layers.error();
  auto heads = get("attention.head_count", limits::max_dim);         if (!heads) return heads.error();
  auto kv = gguf_get_uint_or(g, a + "attention.head_count_kv", limits::max_dim, *heads);
  if (!kv) return kv.error();
  auto ctx = get("context_length", limits::max_context);             if (!ctx) return ctx.error();
  auto theta = gguf_get_float_or(g, a + "rope.freq_base", 10000.0f); if (!theta) return theta.error();
  auto eps = gguf_get_float_or(g, a + (layer_norm ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"), 1e-5f);
  if (!eps) return eps.error();
  c.dim = static_cast<std::uint32_t>(*dim);
  c.hidden_dim = static_cast<std::uint32_t>(*hidden);
  c.n_layers = static_cast<std::uint32_t>(*layers);
  c.n_heads = static_cast<std::uint32_t>(*heads);
  c.n_kv_heads = static_cast<std::uint32_t>(*kv);
  c.seq_len = static_cast<std::uint32_t>(*ctx);
  c.rope_theta = *theta;
  c.norm_eps = *eps;
  if (c.dim == 0 || c.hidden_dim == 0 || c.n_layers == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.seq_len == 0)
    return make_error(errc::bad_config, "a hyper-parameter is zero");
  if (c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0)
    return make_error(errc::bad_config, "dim must divide by n_heads and n_heads by n_kv_heads");
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0) return make_error(errc::bad_config, "head dimension must be even for RoPE");
  auto key_len = gguf_get_uint_or(g, a + "attention.key_length", limits::max_dim, c.head_dim);
  if (!key_len) return key_len.error();
  auto rot = gguf_get_uint_or(g, a + "rope.dimension_count", limits::max_dim, c.head_dim);
  if (!rot) return rot.error();
  if (*key_len != c.head_dim || (arch->s == "llama" && *rot != c.head_dim))
    return make_error(errc::bad_config, "key length / rotary dimensions other than dim/n_heads are not supported");
  if (*rot == 0 || *rot > c.head_dim || *rot % 2 != 0)
    return make_error(errc::bad_config, "rotary dimensions must be even and at most the head dimension", error::no_offset, a + "rope.dimension_count");
  if (arch->s != "llama") {
    // as llama.cpp runs them (and as hf_model.hpp reads the same families from Hugging Face folders): NeoX
    // (half-split) rotary on the files' own q/k order; gpt2 with learned positions; phi2 with partial rotary,
    // one LayerNorm for the parallel attention and MLP, and a classifier bias
    c.rope = rope_style::half_split;
    if (is_qwen2) {
      c.qkv_bias = true;
    } else {
      c.norm = norm_kind::layer;
      c.ffn = ffn_kind::gelu_tanh;
      c.qkv_bias = c.out_bias = c.ffn_bias = true;
      if (c.n_kv_heads != c.n_heads) return make_error(errc::bad_config, "this family has as many key/value heads as query heads", error::no_offset, a + "attention.head_count_kv");
    }
    if (is_gpt2 || is_neo) c.learned_positions = true;
    else c.n_rot = *rot == c.head_dim ? 0 : static_cast<std::uint32_t>(*rot);
    if (is_phi2) {
      c.residual = residual_kind::parallel_shared;
      c.output_bias = true;
    }
    if (is_neox) {  // Pythia: "gelu" is the exact erf GELU (transformers; llama.cpp approximates it with tanh)
      c.ffn = ffn_kind::gelu_erf;
      bool parallel = true;
      if (const gguf_value* pr = g.find(a + "use_parallel_residual")) {
        if (pr->type != gguf_type::boolean) return make_error(errc::bad_key_type, "must be a bool", error::no_offset, a + "use_parallel_residual");
        parallel = pr->u != 0;
      }
      c.residual = parallel ? residual_kind::parallel : residual_kind::sequential;
    }
    if (is_neo) {
      c.qkv_bias = false;
      c.scaled_attention = false;
      if (const gguf_value* w = g.find(a + "attention.windows")) {
        if (w->type != gguf_type::array || w->size() != c.n_layers)
          return make_error(errc::bad_key_type, "must be an array of one window per layer", error::no_offset, a + "attention.windows");
        c.window.resize(c.n_layers);
        for (std::uint32_t l = 0; l < c.n_layers; ++l) {
          const gguf_value x = w->at(l);
          if (!x.is_integer() || x.is_signed() || x.u > c.seq_len)
            return make_error(errc::bad_value, "windows must be integers 0..context_length", error::no_offset, a + "attention.windows");
          c.window[l] = static_cast<std::uint32_t>(x.u);
        }
      }
    }
  }
  if (!(c.norm_eps > 0.0f) || !(c.rope_theta > 0.0f)) return make_error(errc::bad_value, "rope base and norm epsilon must be positive");

  auto tok = gguf_tokenizer(g);
  if (!tok) return tok.error();
  mf.tokenizer = std::move(*tok);

  const tensor_info* emb = nullptr;
  for (const auto& t : g.tensors)
    if (t.name == "token_embd.weight") emb = &t;
  if (!emb) return make_error(errc::missing_tensor, "token embedding missing", error::no_offset, "token_embd.weight");
  if (emb->n_dims != 2) return make_error(errc::shape_mismatch, "token embedding must be 2-D", emb->offset, emb->name);
  if (emb->ne[1] > limits::max_vocab) return make_error(errc::absurd_dimension, "vocabulary larger than EDGELM_MAX_VOCAB", emb->offset, emb->name);
  if (emb->ne[1] < 3) return make_error(errc::absurd_dimension, "vocabulary of fewer than 3 tokens (unk, bos, eos)", emb->offset, emb->name);
  c.vocab_size = static_cast<std::uint32_t>(emb->ne[1]);
  auto vs = gguf_get_uint_or(g, a + "vocab_size", limits::max_vocab, c.vocab_size);
  if (!vs) return vs.error();
  if (*vs != c.vocab_size) return make_error(errc::shape_mismatch, "vocab_size disagrees with the token embedding", error::no_offset, a + "vocab_size");
  if (!mf.tokenizer.pieces.empty() && mf.tokenizer.pieces.size() != c.vocab_size)
    return make_error(errc::bad_tokenizer, "tokenizer has " + std::to_string(mf.tokenizer.pieces.size()) + " tokens, model " + std::to_string(c.vocab_size),
                      error::no_offset, "tokenizer.ggml.tokens");
  bool has_output = false;
  for (const auto& t : g.tensors) has_output |= t.name == "output.weight";
  c.shared_classifier = !has_output;
  if (c.output_bias && !has_output) c.output_bias = false;  // (a tied phi2 file: no classifier of its own)
  if (arch->s != "llama") {
    // the feed-forward width from the tensors (llama.cpp's converters write 4 x dim for gpt2 / phi2 whatever the
    // model's n_inner); the binder checks every layer against it
    for (const auto& t : g.tensors)
      if (t.name == "blk.0.ffn_up.weight" && t.n_dims == 2) {
        if (t.ne[1] == 0 || t.ne[1] > 4 * limits::max_dim) return make_error(errc::absurd_dimension, "feed-forward width out of range", t.offset, t.name);
        c.hidden_dim = static_cast<std::uint32_t>(t.ne[1]);
      }
    // fused q/k/v (gpt2, gptneox, older phi2 files): rows [q | k | v], split into views (no copy)
    std::vector<tensor_info> split;
    for (auto it = g.tensors.begin(); it != g.tensors.end();) {
      const std::string& n = it->name;
      const std::size_t at = n.find(".attn_qkv.");
      if (at == std::string::npos) { ++it; continue; }
      const std::string prefix = n.substr(0, at + 1), suffix = n.substr(at + 10);  // "blk.N." and "weight" / "bias"
      const std::uint64_t kvd = std::uint64_t{c.head_dim} * c.n_kv_heads, rows = std::uint64_t{c.dim} + 2 * kvd;
      const std::uint64_t have = it->n_dims == 1 ? it->ne[0] : it->ne[1];
      if ((it->n_dims != 1 && it->n_dims != 2) || have != rows || it->n_bytes % rows != 0)
        return make_error(errc::shape_mismatch, "a fused q/k/v tensor must have dim + 2 x kv_dim rows", it->offset, n);
      const std::uint64_t row_bytes = it->n_bytes / rows;
      std::uint64_t first = 0;
      for (const auto& [part, r] : {std::pair<const char*, std::uint64_t>{"attn_q.", c.dim}, {"attn_k.", kvd}, {"attn_v.", kvd}}) {
        tensor_info t = *it;
        t.name = prefix + part + suffix;
        if (t.n_dims == 1) t.ne[0] = r;
        else t.ne[1] = r;
        t.n_bytes = r * row_bytes;
        t.offset += first * row_bytes;
        t.data += first * row_bytes;
        first += r;
        split.push_back(std::move(t));
      }
      it = g.tensors.erase(it);
    }
    std::unordered_set<std::string> names;
    for (const auto& t : g.tensors) names.insert(t.name);
    for (auto& t : split) {
      if (!names.insert(t.name).second) return make_error(errc::duplicate_name, "both a fused q/k/v tensor and " + t.name, t.offset, t.name);
      g.tensors.push_back(std::move(t));
    }
  }

  // RoPE scaling, as llama.cpp applies it: a rope_freqs.weight tensor (Llama 3.1/3.2: head_dim / 2 factors that
  // divide the base frequencies), or rope.scaling.type "linear" with rope.scaling.factor (positions divided by
  // it). Other scaling types (yarn, longrope) are refused rather than computed wrong.
  const std::size_t half = c.head_dim / 2;
  std::vector<double> divide(half, 1.0);
  bool scaled = false;
  if (const gguf_value* st = g.find(a + "rope.scaling.type")) {
    if (st->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, a + "rope.scaling.type");
    if (st->s == "linear") {
      auto f = gguf_get_float_or(g, a + "rope.scaling.factor", 1.0f);
      if (!f) return f.error();
      if (!(*f > 0.0f) || *f > 1.0e6f) return make_error(errc::bad_value, "must be positive", error::no_offset, a + "rope.scaling.factor");
      if (*f != 1.0f) {
        for (auto& d : divide) d *= *f;
        scaled = true;
      }
    } else if (st->s != "none") {
      return make_error(errc::unsupported_architecture, "RoPE scaling '" + st->s + "' is not supported (none, linear, rope_freqs.weight)", error::no_offset, a + "rope.scaling.type");
    }
  }
  for (const auto& t : g.tensors) {
    if (t.name != "rope_freqs.weight") continue;
    if (t.type != ggml_type::f32 || t.n_dims != 1 || t.ne[0] != half)
      return make_error(errc::shape_mismatch, "rope_freqs.weight must be " + std::to_string(half) + " f32 factors (head_dim / 2)", t.offset, t.name);
    for (std::size_t i = 0; i < half; ++i) {
      float f;
      std::memcpy(&f, t.data + i * sizeof(float), sizeof f);
      if (!(f > 0.0f) || f > 1.0e30f) return make_error(errc::bad_value, "rope frequency factor " + std::to_string(i) + " is not a positive number", t.offset, t.name);
      divide[i] *= f;
    }
    scaled = true;
  }
  if (scaled) {
    c.rope_freqs.resize(half);
    for (std::size_t i = 0; i < half; ++i)
      c.rope_freqs[i] = static_cast<float>(std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim)) / divide[i]);
  }
  mf.tensors = std::move(g.tensors);
  return mf;
}
}  // namespace detail

}  // namespace edgelm
