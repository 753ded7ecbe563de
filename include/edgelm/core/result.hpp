// edgelm/core/result.hpp - error codes and result<T>: errors are values, never exceptions.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace edgelm {

// Every failure the library can report. Each bad-input class has its own code so tests
// (and users) can tell a truncated file from a hostile count or a wrong tensor type.
enum class errc : std::uint16_t {
  ok = 0,
  io_error,                // the OS refused to open/read/map a file
  truncated,               // the input ends before a structure it announces
  bad_magic,               // not the format we were asked to read
  unsupported_version,     // a format version we do not understand
  count_too_large,         // a count or length larger than the bytes left or a named limit
  negative_size,           // a size field that is negative
  absurd_dimension,        // a shape / hyper-parameter outside the named limits
  overflow,                // size arithmetic would overflow
  unknown_value_type,      // GGUF metadata value type id out of range
  unknown_tensor_type,     // a ggml type id no ggml version ever defined
  unsupported_tensor_type, // a real ggml type that this build cannot run
  tensor_type_mismatch,    // a tensor whose type is not allowed where it is used
  offset_out_of_bounds,    // tensor data outside the file
  misaligned,              // tensor data not at the file's alignment
  bad_alignment,           // general.alignment not a power of two
  duplicate_name,          // two tensors or keys with the same name
  invalid_utf8,            // a key or token that is not valid UTF-8
  bad_key_type,            // a metadata key with the wrong value type
  missing_key,             // required metadata missing
  missing_tensor,          // required tensor missing
  shape_mismatch,          // tensor shape disagrees with the config
  bad_config,              // inconsistent hyper-parameters
  bad_tokenizer,           // tokenizer data unusable (missing / oversized pieces...)
  bad_value,               // NaN/Inf where a finite number is required
  unsupported_architecture,
  invalid_argument,        // a caller-supplied option out of range
  context_overflow,        // prompt / generation longer than the context
  out_of_memory,
};

// Short stable name of an error code ("truncated", "duplicate_name", ...).
constexpr std::string_view to_string(errc c) noexcept {
  switch (c) {
    case errc::ok: return "ok";
    case errc::io_error: return "io_error";
    case errc::truncated: return "truncated";
    case errc::bad_magic: return "bad_magic";
    case errc::unsupported_version: return "unsupported_version";
    case errc::count_too_large: return "count_too_large";
    case errc::negative_size: return "negative_size";
    case errc::absurd_dimension: return "absurd_dimension";
    case errc::overflow: return "overflow";
    case errc::unknown_value_type: return "unknown_value_type";
    case errc::unknown_tensor_type: return "unknown_tensor_type";
    case errc::unsupported_tensor_type: return "unsupported_tensor_type";
    case errc::tensor_type_mismatch: return "tensor_type_mismatch";
    case errc::offset_out_of_bounds: return "offset_out_of_bounds";
    case errc::misaligned: return "misaligned";
    case errc::bad_alignment: return "bad_alignment";
    case errc::duplicate_name: return "duplicate_name";
    case errc::invalid_utf8: return "invalid_utf8";
    case errc::bad_key_type: return "bad_key_type";
    case errc::missing_key: return "missing_key";
    case errc::missing_tensor: return "missing_tensor";
    case errc::shape_mismatch: return "shape_mismatch";
    case errc::bad_config: return "bad_config";
    case errc::bad_tokenizer: return "bad_tokenizer";
    case errc::bad_value: return "bad_value";
    case errc::unsupported_architecture: return "unsupported_architecture";
    case errc::invalid_argument: return "invalid_argument";
    case errc::context_overflow: return "context_overflow";
    case errc::out_of_memory: return "out_of_memory";
  }
  return "unknown_error";
}

// An error: a code plus where it happened (byte offset and/or the name of the tensor or key)
// and a human-readable message.
struct error {
  static constexpr std::uint64_t no_offset = ~std::uint64_t{0};
  errc code = errc::ok;
  std::string msg;                  // what went wrong, in words
  std::uint64_t offset = no_offset; // byte offset in the input, if known
  std::string where;                // tensor name / metadata key / file, if known

  // "truncated: tensor data ends past the file (tensor 'blk.0.attn_q.weight', byte 1234)"
  std::string message() const {
    std::string s{to_string(code)};
    s += ": ";
    s += msg;
    if (!where.empty() || offset != no_offset) {
      s += " (";
      if (!where.empty()) { s += "'"; s += where; s += "'"; }
      if (offset != no_offset) {
        if (!where.empty()) s += ", ";
        s += "byte ";
        s += std::to_string(offset);
      }
      s += ")";
    }
    return s;
  }
};

inline error make_error(errc c, std::string msg, std::uint64_t offset = error::no_offset, std::string where = {}) {
  return error{c, std::move(msg), offset, std::move(where)};
}

// Tag wrapper so `return unexpected(err)` reads naturally.
struct unexpected {
  error err;
  explicit unexpected(error e) : err(std::move(e)) {}
};

// result<T>: either a T or an error. Accessing the wrong side is a programming error
// (checked in debug builds by the caller's tests, never by throwing).
template <class T>
class [[nodiscard]] result {
 public:
  result(T v) : value_(std::move(v)) {}                      // NOLINT: implicit by design
  result(unexpected u) : err_(std::move(u.err)) {}           // NOLINT
  result(edgelm::error e) : err_(std::move(e)) {}            // NOLINT

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const edgelm::error& error() const { return err_; }

 private:
  std::optional<T> value_;
  edgelm::error err_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(unexpected u) : err_(std::move(u.err)), ok_(false) {}  // NOLINT
  result(edgelm::error e) : err_(std::move(e)), ok_(false) {}   // NOLINT
  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const edgelm::error& error() const { return err_; }

 private:
  edgelm::error err_;
  bool ok_ = true;
};

}  // namespace edgelm

// Propagate an error from an expression returning result<...>.
#define EDGELM_TRY(expr)                                   \
  do {                                                     \
    auto&& edgelm_try_r_ = (expr);                         \
    if (!edgelm_try_r_) return edgelm_try_r_.error();      \
  } while (0)
