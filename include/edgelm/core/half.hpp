// edgelm/core/half.hpp - IEEE fp16 and bfloat16 <-> f32, stored as uint16_t
// (wasm32 with clang 14 has no _Float16/__bf16).
#pragma once
#include <cstdint>
#include <cstring>

namespace edgelm {

inline float bits_to_f32(std::uint32_t u) noexcept { float f; std::memcpy(&f, &u, 4); return f; }
inline std::uint32_t f32_to_bits(float f) noexcept { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }

// fp16 -> f32, exact for every input incl. subnormals, inf and NaN.
inline float fp16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    // subnormal: value = man * 2^-24
    float v = static_cast<float>(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

// f32 -> fp16 with round-to-nearest-even (same results as F16C / numpy).
inline std::uint16_t f32_to_fp16(float f) noexcept {
  std::uint32_t x = f32_to_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (x > 0x7F800000u ? 0x200u : 0u));
  if (x >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (x < 0x38800000u) {                                                     // below 2^-14: subnormal or zero
    if (x < 0x33000000u) return sign;                                        // < 2^-25 rounds to zero
    const std::uint32_t e = x >> 23;
    const std::uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14 - (e - 127) + 13 - 1 ... shift to 10-bit subnormal
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);
  }
  std::uint32_t r = ((x >> 13) - (112u << 10));
  const std::uint32_t rem = x & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<std::uint16_t>(sign | r);
}

inline float bf16_to_f32(std::uint16_t b) noexcept { return bits_to_f32(static_cast<std::uint32_t>(b) << 16); }
inline std::uint16_t f32_to_bf16(float f) noexcept {
  std::uint32_t x = f32_to_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

}  // namespace edgelm
