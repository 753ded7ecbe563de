// edgelm/core/reader.hpp - a bounded little-endian reader over untrusted bytes.
// Every read checks the bytes left first; nothing here can read out of bounds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "checked.hpp"
#include "result.hpp"

namespace edgelm::detail {

class byte_reader {
 public:
  explicit byte_reader(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

  std::uint64_t pos() const noexcept { return pos_; }
  std::uint64_t size() const noexcept { return bytes_.size(); }
  std::uint64_t left() const noexcept { return bytes_.size() - pos_; }
  bool seek(std::uint64_t p) noexcept {
    if (p > bytes_.size()) return false;
    pos_ = p;
    return true;
  }

  // Fixed-size little-endian scalar (every supported host is little-endian).
  template <class T>
  bool read(T& out) noexcept {
    if (left() < sizeof(T)) return false;
    std::memcpy(&out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  // A view of the next n bytes; false if fewer remain.
  bool view(std::uint64_t n, std::span<const std::byte>& out) noexcept {
    if (n > left()) return false;
    out = bytes_.subspan(static_cast<std::size_t>(pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return true;
  }
  bool view(std::uint64_t n, std::string_view& out) noexcept {
    std::span<const std::byte> s;
    if (!view(n, s)) return false;
    out = std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
    return true;
  }
  bool skip(std::uint64_t n) noexcept {
    if (n > left()) return false;
    pos_ += n;
    return true;
  }
  error fail(errc c, std::string msg, std::string where = {}) const {
    return make_error(c, std::move(msg), pos_, std::move(where));
  }

 private:
  std::span<const std::byte> bytes_;
  std::uint64_t pos_ = 0;
};

// Strict UTF-8 validation (no overlongs, no surrogates, max U+10FFFF).
inline bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t i = 0, n = s.size();
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace edgelm::detail
