// edgelm/formats/safetensors.hpp - the safetensors format (Hugging Face): a u64 little-endian header length N,
// N bytes of JSON {"name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"k": "v"}}, then the data (offsets relative to its start). The header is parsed with
// nlohmann's SAX interface straight into the tensor table (no DOM: a hostile 100 MB header costs the table, not
// ten times its size), then checked as the reference implementation does: the byte ranges, sorted, tile the data
// exactly (no gap, no overlap, nothing after the last), and each one is shape x dtype bytes.
//
// Tensors become edgelm tensor_info views into the bytes (zero copy). safetensors shapes are row-major,
// [rows, cols]; tensor_info.ne[0] is the contiguous dimension (GGUF order), so the shape is reversed:
// [rows, cols] -> ne = {cols, rows}. F32, F16 and BF16 map to ggml f32 / f16 / bf16; the other dtypes of the
// format are errc::unsupported_tensor_type naming the dtype and the tensor.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/checked.hpp"
#include "../core/result.hpp"
#include "ggml_types.hpp"
#include "model_file.hpp"

namespace edgelm {

// The reference implementation's limit on the header (safetensors MAX_HEADER_SIZE).
inline constexpr std::uint64_t safetensors_max_header = 100'000'000;
inline constexpr std::size_t safetensors_max_name = 1024;  // bytes of a tensor name
inline constexpr std::size_t safetensors_max_dims = 4;     // edgelm's tensor_info holds 4

struct safetensors_file {
  std::vector<tensor_info> tensors;                             // in header order; offset absolute in the file
  std::vector<std::pair<std::string, std::string>> metadata;    // __metadata__, in header order
  std::uint64_t data_offset = 0;                                // 8 + header length
};

namespace detail {

struct st_dtype {
  std::string_view name;
  std::uint32_t size;          // bytes per element
  std::optional<ggml_type> type;  // nullopt: a real safetensors dtype edgelm does not run
};
inline constexpr st_dtype st_dtypes[] = {
    {"F32", 4, ggml_type::f32},  {"F16", 2, ggml_type::f16},  {"BF16", 2, ggml_type::bf16}, {"F64", 8, std::nullopt},
    {"I64", 8, std::nullopt},    {"I32", 4, std::nullopt},    {"I16", 2, std::nullopt},     {"I8", 1, std::nullopt},
    {"U64", 8, std::nullopt},    {"U32", 4, std::nullopt},    {"U16", 2, std::nullopt},     {"U8", 1, std::nullopt},
    {"BOOL", 1, std::nullopt},   {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt}, {"F8_E8M0", 1, std::nullopt},
};

// One header entry as the SAX handler collects it.
struct st_entry {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;
  bool has_dtype = false, has_shape = false, has_offsets = false;
};

// SAX handler for the header. Depth 1: the top object (tensor names, __metadata__); depth 2: a tensor entry or
// the metadata object; depth 3: the shape / data_offsets arrays. Unknown keys of an entry are skipped (any value).
class safetensors_sax {
 public:
  using json = nlohmann::json;

  std::vector<st_entry> entries;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<error> err;

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (v < 0 && in_array()) return fail(errc::negative_size, std::string(field_) + " holds a negative number");
    return number(static_cast<std::uint64_t>(v < 0 ? 0 : v));
  }
  bool number_unsigned(json::number_unsigned_t v) { return number(v); }
  bool number_float(json::number_float_t, const json::string_t&) {
    if (in_array()) return fail(errc::bad_key_type, std::string(field_) + " must hold whole numbers");
    return scalar("a number");
  }
  bool binary(json::binary_t&) { return fail(errc::bad_key_type, "binary value"); }
  bool string(json::string_t& s) {
    if (skip_) return true;
    if (depth_ == 2 && in_meta_) {
      if (s.size() > limits::max_string) return fail(errc::count_too_large, "a metadata value is longer than EDGELM_MAX_STRING", key_);
      metadata.emplace_back(std::move(key_), std::move(s));
      return true;
    }
    if (depth_ == 2 && field_ == std::string_view("dtype")) {
      entries.back().dtype = s.substr(0, 32);
      entries.back().has_dtype = true;
      return true;
    }
    return scalar("a string");
  }
  bool key(json::string_t& k) {
    if (skip_) return true;
    if (depth_ == 1) {
      if (k.empty()) return fail(errc::bad_key_type, "a tensor name is empty");
      if (k.size() > safetensors_max_name) return fail(errc::count_too_large, "a tensor name is longer than " + std::to_string(safetensors_max_name) + " bytes", k.substr(0, 64));
      if (!names_.insert(k).second) return fail(errc::duplicate_name, "two header entries have this name", k);
      in_meta_ = k == "__metadata__";
      if (!in_meta_) {
        if (entries.size() >= limits::max_tensors) return fail(errc::count_too_large, "more tensors than EDGELM_MAX_TENSORS");
        entries.emplace_back();
        entries.back().name = std::move(k);
      }
      return true;
    }
    if (depth_ == 2) {
      if (in_meta_) {
        if (metadata.size() >= limits::max_metadata) return fail(errc::count_too_large, "more metadata entries than EDGELM_MAX_METADATA", "__metadata__");
        key_ = std::move(k);
        return true;
      }
      st_entry& e = entries.back();
      field_ = k == "dtype" ? "dtype" : k == "shape" ? "shape" : k == "data_offsets" ? "data_offsets" : "";
      const bool seen = (field_ == std::string_view("dtype") && e.has_dtype) || (field_ == std::string_view("shape") && e.has_shape) ||
                        (field_ == std::string_view("data_offsets") && e.has_offsets);
      if (seen) return fail(errc::duplicate_name, "'" + k + "' given twice", e.name);
      if (!*field_) skip_next_ = true;  // an unknown field: its value, whatever it is, is skipped
      return true;
    }
    return fail(errc::bad_key_type, "unexpected object");
  }
  bool start_object(std::size_t) {
    if (begin_skip()) return skip_ <= 64 || fail(errc::count_too_large, "JSON nested too deeply");
    if (depth_ == 0) { depth_ = 1; return true; }
    if (depth_ == 1) { depth_ = 2; return true; }
    return fail(errc::bad_key_type, depth_ == 2 && in_meta_ ? "metadata values must be strings" : std::string(field_) + " must be " + expected());
  }
  bool end_object() {
    if (end_skip()) return true;
    if (depth_ == 2 && !in_meta_) {
      const st_entry& e = entries.back();
      for (auto [has, name] : {std::pair{e.has_dtype, "dtype"}, std::pair{e.has_shape, "shape"}, std::pair{e.has_offsets, "data_offsets"}})
        if (!has) return fail(errc::missing_key, std::string("the entry has no '") + name + "'", e.name);
    }
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (begin_skip()) return skip_ <= 64 || fail(errc::count_too_large, "JSON nested too deeply");
    if (depth_ == 2 && !in_meta_ && (field_ == std::string_view("shape") || field_ == std::string_view("data_offsets"))) {
      depth_ = 3;
      count_ = 0;
      return true;
    }
    if (depth_ == 0) return fail(errc::bad_key_type, "the header must be a JSON object");
    if (depth_ == 1) return fail(errc::bad_key_type, "a tensor entry must be an object", current());
    return fail(errc::bad_key_type, in_meta_ ? "metadata values must be strings" : std::string(field_) + " must be " + expected(), current());
  }
  bool end_array() {
    if (end_skip()) return true;
    st_entry& e = entries.back();
    if (field_ == std::string_view("shape")) e.has_shape = true;
    else {
      if (count_ != 2) return fail(errc::bad_key_type, "data_offsets must be [begin, end]", e.name);
      e.has_offsets = true;
    }
    depth_ = 2;
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    if (err) return false;
    const std::string_view what = ex.what();
    if (what.find("unexpected end of input") != std::string_view::npos) err = make_error(errc::truncated, "the JSON header ends early", 8 + pos);
    else if (what.find("UTF-8") != std::string_view::npos) err = make_error(errc::invalid_utf8, "the JSON header holds a string that is not valid UTF-8", 8 + pos);
    else err = make_error(errc::bad_magic, "the header is not valid JSON", 8 + pos);
    return false;
  }

 private:
  bool in_array() const { return depth_ == 3 && !skip_; }
  std::string current() const { return in_meta_ ? std::string("__metadata__") : entries.empty() ? std::string() : entries.back().name; }
  const char* expected() const {
    return field_ == std::string_view("dtype") ? "a string" : field_ == std::string_view("shape") ? "an array of sizes" : "[begin, end]";
  }
  bool fail(errc c, std::string msg, std::string where = {}) {
    if (!err) err = make_error(c, std::move(msg), error::no_offset, where.empty() ? current() : std::move(where));
    return false;
  }
  // Skipping an unknown field's value: a scalar is skipped where it stands, an object or array until it closes.
  bool begin_skip() {
    if (skip_) { ++skip_; return true; }
    if (skip_next_) { skip_next_ = false; skip_ = 1; return true; }
    return false;
  }
  bool end_skip() {
    if (!skip_) return false;
    --skip_;
    return true;
  }
  bool scalar(const char* what) {
    if (skip_) return true;
    if (skip_next_) { skip_next_ = false; return true; }
    if (depth_ == 0) return fail(errc::bad_key_type, "the header must be a JSON object");
    if (depth_ == 1) return fail(errc::bad_key_type, std::string(in_meta_ ? "__metadata__" : "a tensor entry") + " must be an object, not " + what, current());
    if (depth_ == 2 && in_meta_) return fail(errc::bad_key_type, "metadata values must be strings", key_.substr(0, 64));
    if (depth_ == 3) return fail(errc::bad_key_type, std::string(field_) + " must hold whole numbers, not " + what, current());
    return fail(errc::bad_key_type, std::string(field_) + " must be " + expected() + ", not " + what, current());
  }
  bool number(std::uint64_t v) {
    if (skip_) return true;
    if (skip_next_) { skip_next_ = false; return true; }
    if (depth_ != 3) return scalar("a number");
    st_entry& e = entries.back();
    if (field_ == std::string_view("shape")) {
      if (e.shape.size() >= safetensors_max_dims) return fail(errc::absurd_dimension, "more than " + std::to_string(safetensors_max_dims) + " dimensions", e.name);
      e.shape.push_back(v);
    } else {
      if (count_ == 0) e.begin = v;
      else if (count_ == 1) e.end = v;
      else return fail(errc::bad_key_type, "data_offsets must be [begin, end]", e.name);
    }
    ++count_;
    return true;
  }

  int depth_ = 0;
  std::uint32_t skip_ = 0;  // > 0: inside a skipped value (its nesting depth)
  bool skip_next_ = false;  // the next value belongs to an unknown field
  bool in_meta_ = false;
  const char* field_ = "";
  std::string key_;
  std::uint32_t count_ = 0;
  std::unordered_set<std::string> names_;
};

}  // namespace detail

// Parse a safetensors file. Every failure is an edgelm error naming the tensor: truncated (shorter than its
// header), count_too_large (header over 100 MB, too many tensors / metadata), bad_magic (the header is not JSON),
// invalid_utf8, bad_key_type (a wrong JSON type), missing_key, duplicate_name, unknown_tensor_type /
// unsupported_tensor_type (dtype), absurd_dimension (more than 4 dimensions), overflow (shape product),
// shape_mismatch (shape x dtype != the byte range), negative_size (end before begin), offset_out_of_bounds
// (past the data, overlapping, a gap, or bytes after the last tensor).
inline result<safetensors_file> parse_safetensors(std::span<const std::byte> bytes) {
  using namespace detail;
  if (bytes.size() < 8) return make_error(errc::truncated, "file shorter than the 8-byte header length", 0);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > safetensors_max_header) return make_error(errc::count_too_large, "header length " + std::to_string(n) + " is over the 100 MB limit", 0);
  if (n > bytes.size() - 8)
    return make_error(errc::truncated, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(bytes.size()) + "-byte file", 0);
  if (n < 2 || bytes[8] != std::byte{'{'}) return make_error(errc::bad_magic, "the header does not start with a JSON object", 8);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, static_cast<std::size_t>(n));
  safetensors_sax h;
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &h, nlohmann::json::input_format_t::json, true);
  if (!ok || h.err) return h.err ? *h.err : make_error(errc::bad_magic, "the header is not valid JSON", 8);

  safetensors_file f;
  f.data_offset = 8 + n;
  f.metadata = std::move(h.metadata);
  const std::uint64_t data_size = bytes.size() - f.data_offset;
  f.tensors.reserve(h.entries.size());
  for (auto& e : h.entries) {
    const st_dtype* dt = nullptr;
    for (const auto& d : st_dtypes)
      if (d.name == e.dtype) dt = &d;
    if (!dt) return make_error(errc::unknown_tensor_type, "dtype '" + e.dtype + "' is not a safetensors dtype", error::no_offset, e.name);
    if (!dt->type)
      return make_error(errc::unsupported_tensor_type, "dtype " + e.dtype + " is not supported (edgelm reads F32, F16 and BF16 tensors)", error::no_offset, e.name);
    if (e.end < e.begin)
      return make_error(errc::negative_size, "data_offsets end " + std::to_string(e.end) + " is before begin " + std::to_string(e.begin), error::no_offset, e.name);
    if (e.end > data_size)
      return make_error(errc::offset_out_of_bounds, "data ends at " + std::to_string(e.end) + ", past the " + std::to_string(data_size) + " data bytes",
                        error::no_offset, e.name);
    std::uint64_t count = 1, n_bytes = 0;
    for (auto d : e.shape)
      if (!mul_ok(count, d, count)) return make_error(errc::overflow, "the shape's element count overflows", error::no_offset, e.name);
    if (!mul_ok(count, dt->size, n_bytes)) return make_error(errc::overflow, "the shape's byte size overflows", error::no_offset, e.name);
    if (n_bytes != e.end - e.begin)
      return make_error(errc::shape_mismatch,
                        "shape x " + e.dtype + " is " + std::to_string(n_bytes) + " bytes but data_offsets span " + std::to_string(e.end - e.begin),
                        error::no_offset, e.name);
    tensor_info t;
    t.name = std::move(e.name);
    t.type = *dt->type;
    t.n_dims = static_cast<std::uint32_t>(e.shape.size());
    for (std::size_t d = 0; d < e.shape.size(); ++d) t.ne[d] = e.shape[e.shape.size() - 1 - d];  // row-major -> ne[0] contiguous
    t.offset = f.data_offset + e.begin;
    t.n_bytes = n_bytes;
    t.data = bytes.data() + t.offset;
    f.tensors.push_back(std::move(t));
  }
  // The byte ranges, in order, tile the data section exactly (as the reference implementation requires).
  std::vector<std::uint32_t> order(f.tensors.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const auto& x = f.tensors[a];
    const auto& y = f.tensors[b];
    return x.offset != y.offset ? x.offset < y.offset : x.n_bytes < y.n_bytes;
  });
  std::uint64_t at = f.data_offset;
  for (std::uint32_t i : order) {
    const tensor_info& t = f.tensors[i];
    if (t.offset < at) return make_error(errc::offset_out_of_bounds, "its bytes overlap the tensor before it", t.offset, t.name);
    if (t.offset > at)
      return make_error(errc::offset_out_of_bounds, "a gap of " + std::to_string(t.offset - at) + " bytes before it: the tensors do not cover the data", t.offset, t.name);
    at += t.n_bytes;
  }
  if (at != bytes.size())
    return make_error(errc::offset_out_of_bounds, std::to_string(bytes.size() - at) + " bytes after the last tensor: the tensors do not cover the data", at);
  return f;
}

}  // namespace edgelm
