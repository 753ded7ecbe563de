// edgelm/formats/detect.hpp - which model format a file is, from its first bytes, through one small table
// (like `file`'s magic list): GGUF by its magic; safetensors by its u64 little-endian header length that fits
// the file followed by '{'; llama2.c (a headerless legacy format) only when its 7-int32 header is plausible.
// Anything else (an HTML error page, random bytes, a JSON file) is errc::bad_magic, so a reader never runs on
// bytes that are not its format.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "../core/result.hpp"
#include "model_file.hpp"

namespace edgelm {

inline bool is_gguf(std::span<const std::byte> b) noexcept { return b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0; }

// safetensors: u64 header length n (little-endian), 2 <= n <= size - 8, then a JSON object.
inline bool is_safetensors(std::span<const std::byte> b) noexcept {
  if (b.size() < 10) return false;
  std::uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  return n >= 2 && n <= b.size() - 8 && b[8] == std::byte{'{'};
}

// llama2.c: every header field inside the limits read_llama2c enforces (a negative vocabulary size means an
// unshared classifier). Whether the sizes divide and the file is long enough is read_llama2c's to say.
inline bool is_llama2c(std::span<const std::byte> b) noexcept {
  if (b.size() < 28) return false;
  std::int32_t h[7];
  std::memcpy(h, b.data(), sizeof h);
  const std::int64_t max[7] = {limits::max_dim,  4 * limits::max_dim, limits::max_layers, limits::max_dim,
                               limits::max_dim,  limits::max_vocab,   limits::max_context};
  for (int k = 0; k < 7; ++k) {
    const std::int64_t v = k == 5 && h[k] < 0 ? -std::int64_t{h[k]} : h[k];
    if (v < (k == 5 ? 3 : 1) || v > max[k]) return false;
  }
  return true;
}

struct format_signature {
  file_format format;
  std::string_view name;
  bool (*matches)(std::span<const std::byte>) noexcept;
};

// In the order they are tried: the formats with a magic first, the headerless one last.
inline constexpr format_signature format_signatures[] = {
    {file_format::gguf, "GGUF", is_gguf},
    {file_format::safetensors, "safetensors", is_safetensors},
    {file_format::llama2c, "llama2.c", is_llama2c},
};

// The format of a model file's bytes, or errc::bad_magic naming what the first bytes look like.
inline result<file_format> detect_format(std::span<const std::byte> b) {
  for (const auto& f : format_signatures)
    if (f.matches(b)) return f.format;
  std::string seen;  // the first bytes, printable ASCII only, for the message
  for (std::size_t i = 0; i < b.size() && i < 16; ++i) {
    const auto c = static_cast<unsigned char>(b[i]);
    seen += c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '.';
  }
  return make_error(errc::bad_magic,
                    b.empty() ? std::string("the file is empty")
                              : "not a model file (GGUF, safetensors or llama2.c); it starts with \"" + seen + "\"",
                    0);
}

}  // namespace edgelm
