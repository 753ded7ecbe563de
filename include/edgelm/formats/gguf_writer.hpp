// edgelm/formats/gguf_writer.hpp - GGUF v3 writer: metadata of every value type (arrays included),
// tensor infos, alignment padding. The counterpart of gguf.hpp's parse_gguf, laid out as ggml's
// gguf_write_to_buf does so that llama.cpp loads what it writes:
//
//   "GGUF" u32 version=3  u64 n_tensors  u64 n_kv
//   n_kv x  { string key, u32 type, value }
//   n_tensors x { string name, u32 n_dims, i64 ne[n_dims], u32 ggml type, u64 offset (from data start) }
//   zero padding to general.alignment (default 32)
//   tensor data, each tensor padded with zeros to the alignment (the last one too)
//
// Strings are u64 length + bytes (no NUL); arrays are u32 element type + u64 count + elements.
// The writer checks what it is given instead of trusting it (no exceptions, no asserts): keys and
// tensor names must be non-empty, valid UTF-8 and unique, tensor names shorter than 64 bytes
// (llama.cpp's GGML_MAX_NAME), shapes whole numbers of blocks, general.alignment a u32 power of two.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/checked.hpp"
#include "../core/reader.hpp"
#include "../core/result.hpp"
#include "ggml_types.hpp"
#include "gguf.hpp"

namespace edgelm {

// One tensor as the writer will lay it out. `offset` is relative to the start of the data section.
struct gguf_tensor_entry {
  std::string name;
  ggml_type type = ggml_type::f32;
  std::uint32_t n_dims = 0;
  std::array<std::uint64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  std::uint64_t n_bytes = 0;
  std::uint64_t offset = 0;
  std::span<const std::byte> data;  // empty: the caller produces the bytes at write time

  std::uint64_t n_elements() const noexcept { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

inline constexpr std::uint64_t gguf_default_alignment = 32;
inline constexpr std::size_t gguf_max_tensor_name = 63;  // llama.cpp rejects names of GGML_MAX_NAME (64) bytes

namespace detail {

// Is v a well-formed value of its declared type (arrays: every element of the element type)?
inline result<void> gguf_check_value(const gguf_value& v, const std::string& key, std::uint32_t depth) {
  if (static_cast<std::uint32_t>(v.type) >= gguf_type_count)
    return make_error(errc::unknown_value_type, "value type " + std::to_string(static_cast<std::uint32_t>(v.type)) + " is not a GGUF type", error::no_offset, key);
  if (v.type == gguf_type::boolean && v.u > 1) return make_error(errc::bad_value, "bool value is neither 0 nor 1", error::no_offset, key);
  // Integers must fit their declared width (unsigned ones live in v.u, signed ones in v.i).
  const auto out_of_range = [&] { return make_error(errc::bad_value, "integer does not fit its GGUF type", error::no_offset, key); };
  switch (v.type) {
    case gguf_type::u8: if (v.u > 0xFFu) return out_of_range(); break;
    case gguf_type::u16: if (v.u > 0xFFFFu) return out_of_range(); break;
    case gguf_type::u32: if (v.u > 0xFFFFFFFFu) return out_of_range(); break;
    case gguf_type::i8: if (v.i < -128 || v.i > 127) return out_of_range(); break;
    case gguf_type::i16: if (v.i < -32768 || v.i > 32767) return out_of_range(); break;
    case gguf_type::i32: if (v.i < INT32_MIN || v.i > INT32_MAX) return out_of_range(); break;
    default: break;
  }
  if (v.type == gguf_type::string && v.s.size() > limits::max_string)
    return make_error(errc::count_too_large, "string longer than EDGELM_MAX_STRING", error::no_offset, key);
  if (v.type == gguf_type::array) {
    if (depth >= gguf_max_depth) return make_error(errc::count_too_large, "arrays nested too deeply", error::no_offset, key);
    if (static_cast<std::uint32_t>(v.elem_type) >= gguf_type_count)
      return make_error(errc::unknown_value_type, "array element type is not a GGUF type", error::no_offset, key);
    if (!v.packed.empty()) {
      if (v.elem_type == gguf_type::string || v.elem_type == gguf_type::array ||
          v.packed.size() % static_cast<std::size_t>(gguf_scalar_size(v.elem_type)) != 0 || !v.arr.empty())
        return make_error(errc::bad_key_type, "packed array bytes do not fit the element type", error::no_offset, key);
      return {};
    }
    for (const auto& e : v.arr) {
      if (e.type != v.elem_type) return make_error(errc::bad_key_type, "array element of another type than the array's", error::no_offset, key);
      EDGELM_TRY(gguf_check_value(e, key, depth + 1));
    }
  }
  return {};
}

// Little-endian append helpers (GGUF is little-endian; so are all targets edgelm supports).
template <class T>
void gguf_put(std::vector<std::byte>& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}
inline void gguf_put_string(std::vector<std::byte>& out, std::string_view s) {
  gguf_put<std::uint64_t>(out, s.size());
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}

inline void gguf_put_value(std::vector<std::byte>& out, const gguf_value& v) {
  switch (v.type) {
    case gguf_type::u8: gguf_put(out, static_cast<std::uint8_t>(v.u)); break;
    case gguf_type::i8: gguf_put(out, static_cast<std::int8_t>(v.i)); break;
    case gguf_type::u16: gguf_put(out, static_cast<std::uint16_t>(v.u)); break;
    case gguf_type::i16: gguf_put(out, static_cast<std::int16_t>(v.i)); break;
    case gguf_type::u32: gguf_put(out, static_cast<std::uint32_t>(v.u)); break;
    case gguf_type::i32: gguf_put(out, static_cast<std::int32_t>(v.i)); break;
    case gguf_type::u64: gguf_put(out, static_cast<std::uint64_t>(v.u)); break;
    case gguf_type::i64: gguf_put(out, static_cast<std::int64_t>(v.i)); break;
    case gguf_type::f32: gguf_put(out, static_cast<float>(v.f)); break;
    case gguf_type::f64: gguf_put(out, static_cast<double>(v.f)); break;
    case gguf_type::boolean: gguf_put(out, static_cast<std::uint8_t>(v.u != 0)); break;
    case gguf_type::string: gguf_put_string(out, v.s); break;
    case gguf_type::array:
      gguf_put(out, static_cast<std::uint32_t>(v.elem_type));
      gguf_put<std::uint64_t>(out, v.size());
      if (!v.packed.empty()) out.insert(out.end(), v.packed.begin(), v.packed.end());
      for (const auto& e : v.arr) gguf_put_value(out, e);
      break;
  }
}

}  // namespace detail

// Value constructors, so that `w.set("llama.block_count", gguf_u32(5))` reads naturally.
inline gguf_value gguf_uint(gguf_type t, std::uint64_t x) { gguf_value v; v.type = t; v.u = x; return v; }
inline gguf_value gguf_int(gguf_type t, std::int64_t x) { gguf_value v; v.type = t; v.i = x; return v; }
inline gguf_value gguf_u32(std::uint32_t x) { return gguf_uint(gguf_type::u32, x); }
inline gguf_value gguf_i32(std::int32_t x) { return gguf_int(gguf_type::i32, x); }
inline gguf_value gguf_f32(float x) { gguf_value v; v.type = gguf_type::f32; v.f = x; return v; }
inline gguf_value gguf_f64(double x) { gguf_value v; v.type = gguf_type::f64; v.f = x; return v; }
inline gguf_value gguf_bool(bool x) { gguf_value v; v.type = gguf_type::boolean; v.u = x ? 1 : 0; return v; }
inline gguf_value gguf_string(std::string s) { gguf_value v; v.type = gguf_type::string; v.s = std::move(s); return v; }
// An array of `elem` values (elements must carry that type; set() checks).
inline gguf_value gguf_array(gguf_type elem, std::vector<gguf_value> elems) {
  gguf_value v;
  v.type = gguf_type::array;
  v.elem_type = elem;
  v.arr = std::move(elems);
  return v;
}

class gguf_writer {
 public:
  gguf_writer() = default;

  // Add metadata `key`, or replace its value in place (keeping the key's position) when present.
  // Errors: missing_key (empty key), invalid_utf8, a malformed value (bad_key_type / bad_value /
  // unknown_value_type), and for general.alignment: bad_key_type unless u32, bad_alignment unless a
  // power of two <= 1 MiB.
  result<void> set(std::string_view key, gguf_value v) {
    const std::string k(key);
    if (k.empty()) return make_error(errc::missing_key, "empty metadata key");
    if (!detail::valid_utf8(k)) return make_error(errc::invalid_utf8, "metadata key is not valid UTF-8", error::no_offset, k);
    if (k.size() > limits::max_string) return make_error(errc::count_too_large, "metadata key longer than EDGELM_MAX_STRING");
    EDGELM_TRY(detail::gguf_check_value(v, k, 0));
    if (k == "general.alignment") {
      // ggml reads the alignment with gguf_get_val_u32, which aborts on any other type.
      if (v.type != gguf_type::u32) return make_error(errc::bad_key_type, "general.alignment must be a u32", error::no_offset, k);
      if (!detail::is_pow2(v.u) || v.u > (1u << 20))
        return make_error(errc::bad_alignment, "alignment " + std::to_string(v.u) + " is not a power of two <= 1 MiB", error::no_offset, k);
      alignment_ = v.u;
    }
    for (auto& kv : kv_)
      if (kv.key == k) {
        kv.value = std::move(v);
        return {};
      }
    if (kv_.size() >= limits::max_metadata) return make_error(errc::count_too_large, "more metadata than EDGELM_MAX_METADATA");
    kv_.push_back({k, std::move(v)});
    return {};
  }
  result<void> set_u32(std::string_view key, std::uint32_t x) { return set(key, gguf_u32(x)); }
  result<void> set_i32(std::string_view key, std::int32_t x) { return set(key, gguf_i32(x)); }
  result<void> set_f32(std::string_view key, float x) { return set(key, gguf_f32(x)); }
  result<void> set_bool(std::string_view key, bool x) { return set(key, gguf_bool(x)); }
  result<void> set_string(std::string_view key, std::string s) { return set(key, gguf_string(std::move(s))); }
  result<void> set_strings(std::string_view key, std::span<const std::string> xs) {
    std::vector<gguf_value> e;
    e.reserve(xs.size());
    for (const auto& s : xs) e.push_back(gguf_string(s));
    return set(key, gguf_array(gguf_type::string, std::move(e)));
  }
  result<void> set_f32s(std::string_view key, std::span<const float> xs) {
    std::vector<gguf_value> e;
    e.reserve(xs.size());
    for (float x : xs) e.push_back(gguf_f32(x));
    return set(key, gguf_array(gguf_type::f32, std::move(e)));
  }
  result<void> set_i32s(std::string_view key, std::span<const std::int32_t> xs) {
    std::vector<gguf_value> e;
    e.reserve(xs.size());
    for (auto x : xs) e.push_back(gguf_i32(x));
    return set(key, gguf_array(gguf_type::i32, std::move(e)));
  }

  // Remove a key; false if it was not there. Removing general.alignment restores the default.
  bool remove(std::string_view key) {
    for (auto it = kv_.begin(); it != kv_.end(); ++it)
      if (it->key == key) {
        if (key == "general.alignment") alignment_ = gguf_default_alignment;
        kv_.erase(it);
        return true;
      }
    return false;
  }

  const gguf_value* find(std::string_view key) const noexcept {
    for (const auto& kv : kv_)
      if (kv.key == key) return &kv.value;
    return nullptr;
  }
  const std::vector<gguf_kv>& metadata() const noexcept { return kv_; }
  const std::vector<gguf_tensor_entry>& tensors() const noexcept { return tensors_; }
  std::uint64_t alignment() const noexcept { return alignment_; }

  // Add a tensor of `type` with shape `ne` (1..4 dims, ne[0] contiguous). `data`, when given, must be
  // exactly the tensor's byte size and must stay valid until write(); when empty, write()'s producer
  // supplies the bytes. Errors: invalid_argument / invalid_utf8 / duplicate_name for the name,
  // absurd_dimension, unknown_tensor_type, shape_mismatch (ne[0] not a whole number of blocks),
  // overflow, and shape_mismatch when `data` has the wrong size.
  result<void> add_tensor(std::string name, ggml_type type, std::span<const std::uint64_t> ne, std::span<const std::byte> data = {}) {
    if (name.empty() || name.size() > gguf_max_tensor_name)
      return make_error(errc::invalid_argument, "tensor name must be 1.." + std::to_string(gguf_max_tensor_name) + " bytes", error::no_offset, name);
    if (!detail::valid_utf8(name)) return make_error(errc::invalid_utf8, "tensor name is not valid UTF-8", error::no_offset, name);
    for (const auto& t : tensors_)
      if (t.name == name) return make_error(errc::duplicate_name, "tensor added twice", error::no_offset, name);
    if (tensors_.size() >= limits::max_tensors) return make_error(errc::count_too_large, "more tensors than EDGELM_MAX_TENSORS", error::no_offset, name);
    if (ne.empty() || ne.size() > 4) return make_error(errc::absurd_dimension, "a tensor has 1..4 dimensions", error::no_offset, name);
    if (!ggml_type_known(static_cast<std::uint32_t>(type))) return make_error(errc::unknown_tensor_type, "not a ggml type", error::no_offset, name);
    gguf_tensor_entry t;
    t.name = std::move(name);
    t.type = type;
    t.n_dims = static_cast<std::uint32_t>(ne.size());
    std::uint64_t n = 1;
    for (std::size_t d = 0; d < ne.size(); ++d) {
      // ggml stores dimensions as int64: anything above 2^62 elements is not a real tensor
      if (ne[d] == 0 || ne[d] > (std::uint64_t{1} << 62)) return make_error(errc::absurd_dimension, "dimension is zero or huge", error::no_offset, t.name);
      t.ne[d] = ne[d];
      if (!detail::mul_ok(n, ne[d], n) || n > (std::uint64_t{1} << 62)) return make_error(errc::overflow, "element count overflows", error::no_offset, t.name);
    }
    const auto& info = ggml_info(type);
    if (t.ne[0] % info.block_size != 0)
      return make_error(errc::shape_mismatch, "row of " + std::to_string(t.ne[0]) + " elements is not a whole number of " + std::string(info.name) + " blocks",
                        error::no_offset, t.name);
    if (!detail::mul_ok(n / info.block_size, info.type_size, t.n_bytes)) return make_error(errc::overflow, "byte size overflows", error::no_offset, t.name);
    if (!data.empty() && data.size() != t.n_bytes)
      return make_error(errc::shape_mismatch, "data holds " + std::to_string(data.size()) + " bytes, the shape needs " + std::to_string(t.n_bytes),
                        error::no_offset, t.name);
    t.data = data;
    tensors_.push_back(std::move(t));
    return {};
  }

  // The header (everything before the tensor data, padding included). Fills in every tensor's offset.
  result<std::vector<std::byte>> header() {
    EDGELM_TRY(layout());
    std::vector<std::byte> out;
    out.insert(out.end(), {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}});
    detail::gguf_put<std::uint32_t>(out, 3);
    detail::gguf_put<std::uint64_t>(out, tensors_.size());
    detail::gguf_put<std::uint64_t>(out, kv_.size());
    for (const auto& kv : kv_) {
      detail::gguf_put_string(out, kv.key);
      detail::gguf_put(out, static_cast<std::uint32_t>(kv.value.type));
      detail::gguf_put_value(out, kv.value);
    }
    for (const auto& t : tensors_) {
      detail::gguf_put_string(out, t.name);
      detail::gguf_put(out, t.n_dims);
      for (std::uint32_t d = 0; d < t.n_dims; ++d) detail::gguf_put(out, static_cast<std::int64_t>(t.ne[d]));
      detail::gguf_put(out, static_cast<std::uint32_t>(t.type));
      detail::gguf_put(out, t.offset);
    }
    out.resize(static_cast<std::size_t>(detail::align_up(out.size(), alignment_)), std::byte{0});
    return out;
  }

  // Size of the whole file in bytes.
  result<std::uint64_t> file_size() {
    auto h = header();
    if (!h) return h.error();
    return h->size() + data_size_;
  }

  // Stream the file to `sink`, a callable bool(std::span<const std::byte>) (false: stop with io_error).
  // `produce(std::size_t index, const gguf_tensor_entry&, std::vector<std::byte>& out) -> result<void>`
  // fills the bytes of each tensor added without data (out must end up exactly n_bytes long); it is
  // called in tensor order, one tensor at a time, so a converter never holds more than one tensor.
  template <class Sink, class Produce>
  result<void> write(Sink&& sink, Produce&& produce) {
    auto h = header();
    if (!h) return h.error();
    if (!sink(std::span<const std::byte>(*h))) return make_error(errc::io_error, "the sink refused the header");
    std::vector<std::byte> buf;
    static constexpr std::byte zeros[64] = {};
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      std::span<const std::byte> bytes = t.data;
      if (bytes.empty()) {
        buf.clear();
        EDGELM_TRY(produce(i, t, buf));
        if (buf.size() != t.n_bytes)
          return make_error(errc::shape_mismatch, "produced " + std::to_string(buf.size()) + " bytes, the tensor needs " + std::to_string(t.n_bytes),
                            error::no_offset, t.name);
        bytes = buf;
      }
      if (!sink(bytes)) return make_error(errc::io_error, "the sink refused tensor data", error::no_offset, t.name);
      for (std::uint64_t pad = detail::align_up(t.n_bytes, alignment_) - t.n_bytes; pad > 0;) {
        const std::size_t n = static_cast<std::size_t>(pad < sizeof zeros ? pad : sizeof zeros);
        if (!sink(std::span<const std::byte>(zeros, n))) return make_error(errc::io_error, "the sink refused padding", error::no_offset, t.name);
        pad -= n;
      }
    }
    return {};
  }

  // Every tensor must have been added with its data.
  template <class Sink>
  result<void> write(Sink&& sink) {
    return write(std::forward<Sink>(sink), [](std::size_t, const gguf_tensor_entry& t, std::vector<std::byte>&) -> result<void> {
      return make_error(errc::invalid_argument, "tensor was added without data and no producer was given", error::no_offset, t.name);
    });
  }

  // The whole file in memory (out_of_memory if it does not fit size_t).
  result<std::vector<std::byte>> to_bytes() {
    auto size = file_size();
    if (!size) return size.error();
    if (!detail::fits_size_t(*size)) return make_error(errc::out_of_memory, "file larger than this platform's address space");
    std::vector<std::byte> out;
    out.reserve(static_cast<std::size_t>(*size));
    auto r = write([&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); return true; });
    if (!r) return r.error();
    return out;
  }

 private:
  // Offsets of every tensor in the data section, each aligned.
  result<void> layout() {
    std::uint64_t off = 0;
    for (auto& t : tensors_) {
      t.offset = off;
      std::uint64_t padded = detail::align_up(t.n_bytes, alignment_);
      if (padded < t.n_bytes || !detail::add_ok(off, padded, off)) return make_error(errc::overflow, "data section size overflows", error::no_offset, t.name);
    }
    data_size_ = off;
    return {};
  }

  std::vector<gguf_kv> kv_;
  std::vector<gguf_tensor_entry> tensors_;
  std::uint64_t alignment_ = gguf_default_alignment;
  std::uint64_t data_size_ = 0;
};

}  // namespace edgelm
