// edgelm/core/checked.hpp - overflow-checked size arithmetic for untrusted counts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>

namespace edgelm::detail {

// a*b into out; false on overflow.
constexpr bool mul_ok(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}
constexpr bool add_ok(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
  out = a + b;
  return true;
}
// Does a 64-bit size fit this platform's size_t (wasm32: 4 GiB)?
constexpr bool fits_size_t(std::uint64_t v) noexcept {
  return v <= static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max());
}
constexpr bool is_pow2(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) / a * a; }

}  // namespace edgelm::detail
