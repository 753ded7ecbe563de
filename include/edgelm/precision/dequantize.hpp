// edgelm/precision/dequantize.hpp - any supported ggml tensor row -> float32, used once at load time
// to convert tensors whose file type differs from the model's precision.
//
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Every
// conversion reproduces ggml's dequantize_row_* bit for bit (tests/test_quant.cpp checks it against
// fixtures written by ggml itself, tests/data/quant). The block structs are GGUF's on-disk layouts.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../core/half.hpp"
#include "../formats/ggml_types.hpp"
#include "block_util.hpp"
#include "q4_0.hpp"
#include "q8_0.hpp"

namespace edgelm {

// ggml's block_q4_1: value = nibble * d + m (nibbles laid out as in block_q4_0).
struct block_q4_1 {
  std::uint16_t d, m;   // fp16 scale and minimum
  std::uint8_t qs[16];
};
// ggml's block_q5_0: value = (5-bit q - 16) * d; bit 4 of element j is bit j of qh (little-endian u32).
struct block_q5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];
  std::uint8_t qs[16];
};
// ggml's block_q5_1: value = 5-bit q * d + m.
struct block_q5_1 {
  std::uint16_t d, m;
  std::uint8_t qh[4];
  std::uint8_t qs[16];
};
// K-quants: super-blocks of 256 elements (QK_K) with quantized sub-block scales.
struct block_q2_k {
  std::uint8_t scales[16];  // low nibble scale, high nibble min, per 16 elements
  std::uint8_t qs[64];      // 2-bit quants
  std::uint16_t d, dmin;    // fp16 super-block scales of the scales and of the mins
};
struct block_q3_k {
  std::uint8_t hmask[32];   // high bit of each quant
  std::uint8_t qs[64];      // low 2 bits
  std::uint8_t scales[12];  // 16 6-bit scales
  std::uint16_t d;
};
struct block_q4_k {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];  // 8 6-bit scales and 8 6-bit mins
  std::uint8_t qs[128];
};
struct block_q5_k {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[32];
  std::uint8_t qs[128];
};
struct block_q6_k {
  std::uint8_t ql[128];     // low 4 bits
  std::uint8_t qh[64];      // high 2 bits
  std::int8_t scales[16];   // 8-bit sub-block scales
  std::uint16_t d;
};

namespace detail {

inline bool finite_fp16(std::uint16_t h) noexcept { return (h & 0x7C00u) != 0x7C00u; }

// ggml's get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K/Q5_K super-block.
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& d, std::uint8_t& m) noexcept {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// One dequantizer per block format: `run` writes block_size floats, false for a NaN/Inf scale.
// Float expressions follow ggml's order exactly; a*b + c goes through no_contract so that no FMA changes
// the rounding.
struct dq_q8_0 {
  using block = block_q8_0;
  static constexpr ggml_type type = ggml_type::q8_0;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d)) return false;
    q8_0::dequantize_row(&b, y, 32);
    return true;
  }
};
struct dq_q4_0 {
  using block = block_q4_0;
  static constexpr ggml_type type = ggml_type::q4_0;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d)) return false;
    q4_0::dequantize_row(&b, y, 32);
    return true;
  }
};
struct dq_q4_1 {
  using block = block_q4_1;
  static constexpr ggml_type type = ggml_type::q4_1;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d) || !finite_fp16(b.m)) return false;
    const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
    for (int j = 0; j < 16; ++j) {
      y[j] = no_contract(static_cast<float>(b.qs[j] & 0x0F) * d) + m;
      y[j + 16] = no_contract(static_cast<float>(b.qs[j] >> 4) * d) + m;
    }
    return true;
  }
};
struct dq_q5_0 {
  using block = block_q5_0;
  static constexpr ggml_type type = ggml_type::q5_0;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d)) return false;
    const float d = fp16_to_f32(b.d);
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      y[j] = static_cast<float>(((b.qs[j] & 0x0F) | h0) - 16) * d;
      y[j + 16] = static_cast<float>(((b.qs[j] >> 4) | h1) - 16) * d;
    }
    return true;
  }
};
struct dq_q5_1 {
  using block = block_q5_1;
  static constexpr ggml_type type = ggml_type::q5_1;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d) || !finite_fp16(b.m)) return false;
    const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
    std::uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      y[j] = no_contract(static_cast<float>((b.qs[j] & 0x0F) | h0) * d) + m;
      y[j + 16] = no_contract(static_cast<float>((b.qs[j] >> 4) | h1) * d) + m;
    }
    return true;
  }
};
struct dq_q2_k {
  using block = block_q2_k;
  static constexpr ggml_type type = ggml_type::q2_k;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d) || !finite_fp16(b.dmin)) return false;
    const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
    const std::uint8_t* q = b.qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const std::uint8_t sc = b.scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF), ml = min * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = no_contract(dl * static_cast<float>((q[l + 16 * half] >> shift) & 3)) - ml;
        }
      }
      q += 32;
    }
    return true;
  }
};
struct dq_q3_k {
  using block = block_q3_k;
  static constexpr ggml_type type = ggml_type::q3_k;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d)) return false;
    const float d_all = fp16_to_f32(b.d);
    // Unpack the 16 6-bit scales exactly as ggml (four little-endian u32 words).
    constexpr std::uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    std::uint32_t aux[4];
    std::memcpy(aux, b.scales, 12);
    const std::uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    std::int8_t scales[16];
    std::memcpy(scales, aux, 16);
    const std::uint8_t* q = b.qs;
    std::uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(scales[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * half;
            *y++ = dl * static_cast<float>(((q[k] >> shift) & 3) - ((b.hmask[k] & m) ? 0 : 4));
          }
        }
        m = static_cast<std::uint8_t>(m << 1);
      }
      q += 32;
    }
    return true;
  }
};
struct dq_q4_k {
  using block = block_q4_k;
  static constexpr ggml_type type = ggml_type::q4_k;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d) || !finite_fp16(b.dmin)) return false;
    const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
    const std::uint8_t* q = b.qs;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
      std::uint8_t sc, m;
      scale_min_k4(is + 0, b.scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, b.scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = no_contract(d1 * static_cast<float>(q[l] & 0xF)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = no_contract(d2 * static_cast<float>(q[l] >> 4)) - m2;
    }
    return true;
  }
};
struct dq_q5_k {
  using block = block_q5_k;
  static constexpr ggml_type type = ggml_type::q5_k;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d) || !finite_fp16(b.dmin)) return false;
    const float d = fp16_to_f32(b.d), min = fp16_to_f32(b.dmin);
    const std::uint8_t* ql = b.qs;
    unsigned u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      std::uint8_t sc, m;
      scale_min_k4(is + 0, b.scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, b.scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = no_contract(d1 * static_cast<float>((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0))) - m1;
      for (int l = 0; l < 32; ++l) *y++ = no_contract(d2 * static_cast<float>((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0))) - m2;
    }
    return true;
  }
};
struct dq_q6_k {
  using block = block_q6_k;
  static constexpr ggml_type type = ggml_type::q6_k;
  static bool run(const block& b, float* y) noexcept {
    if (!finite_fp16(b.d)) return false;
    const float d = fp16_to_f32(b.d);
    const std::uint8_t* ql = b.ql;
    const std::uint8_t* qh = b.qh;
    const std::int8_t* sc = b.scales;
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
    return true;
  }
};

// A row of n_blocks blocks of one format; blocks are copied out first, so src needs no alignment.
template <class DQ>
bool dequantize_blocks(const std::byte* src, float* dst, std::size_t n_blocks) noexcept {
  static_assert(sizeof(typename DQ::block) == ggml_type_table[static_cast<std::uint32_t>(DQ::type)].type_size,
                "block struct does not match ggml's type size");
  constexpr std::size_t qk = ggml_type_table[static_cast<std::uint32_t>(DQ::type)].block_size;
  for (std::size_t i = 0; i < n_blocks; ++i) {
    typename DQ::block b;
    std::memcpy(&b, src + i * sizeof b, sizeof b);
    if (!DQ::run(b, dst + i * qk)) return false;
  }
  return true;
}

inline bool dequantize_f32(const std::byte* src, float* dst, std::size_t n) noexcept {
  std::memcpy(dst, src, n * 4);
  return true;
}
inline bool dequantize_f16(const std::byte* src, float* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = fp16_to_f32(h);
  }
  return true;
}
inline bool dequantize_bf16(const std::byte* src, float* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
  return true;
}

// Row converter per ggml type id (count: number of blocks); null where this build has none.
using dequantize_fn = bool (*)(const std::byte* src, float* dst, std::size_t n_blocks) noexcept;

constexpr std::array<dequantize_fn, ggml_type_count> make_dequantize_table() noexcept {
  std::array<dequantize_fn, ggml_type_count> t{};
  auto at = [&](ggml_type ty) -> dequantize_fn& { return t[static_cast<std::uint32_t>(ty)]; };
  at(ggml_type::f32) = dequantize_f32;
  at(ggml_type::f16) = dequantize_f16;
  at(ggml_type::bf16) = dequantize_bf16;
  at(ggml_type::q4_0) = dequantize_blocks<dq_q4_0>;
  at(ggml_type::q4_1) = dequantize_blocks<dq_q4_1>;
  at(ggml_type::q5_0) = dequantize_blocks<dq_q5_0>;
  at(ggml_type::q5_1) = dequantize_blocks<dq_q5_1>;
  at(ggml_type::q8_0) = dequantize_blocks<dq_q8_0>;
  at(ggml_type::q2_k) = dequantize_blocks<dq_q2_k>;
  at(ggml_type::q3_k) = dequantize_blocks<dq_q3_k>;
  at(ggml_type::q4_k) = dequantize_blocks<dq_q4_k>;
  at(ggml_type::q5_k) = dequantize_blocks<dq_q5_k>;
  at(ggml_type::q6_k) = dequantize_blocks<dq_q6_k>;
  return t;
}
inline constexpr std::array<dequantize_fn, ggml_type_count> dequantize_table = make_dequantize_table();

}  // namespace detail

// Can this build convert tensors of type t to float?
constexpr bool can_dequantize(ggml_type t) noexcept {
  const auto id = static_cast<std::uint32_t>(t);
  return id < ggml_type_count && detail::dequantize_table[id] != nullptr;
}

// Convert n elements starting at src (n a whole number of t's blocks; src needs no alignment) into
// dst[n]. Returns false if t is not supported, n is not a whole number of blocks, or a block scale is
// NaN/Inf (a corrupt or hostile tensor; dst is then partly written).
inline bool dequantize_row(ggml_type t, const std::byte* src, float* dst, std::size_t n) noexcept {
  if (!can_dequantize(t)) return false;
  const ggml_type_info& info = ggml_info(t);
  if (n % info.block_size != 0) return false;
  return detail::dequantize_table[static_cast<std::uint32_t>(t)](src, dst, n / info.block_size);
}

}  // namespace edgelm
