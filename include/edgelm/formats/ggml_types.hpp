// edgelm/formats/ggml_types.hpp - every ggml tensor type id ever defined, with block geometry.
// Per-type behaviour lives in this one table (as ggml's type_traits), not in switch soup.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

namespace edgelm {

enum class ggml_type : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, /* 4, 5: removed Q4_2/Q4_3 */ q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15, iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18,
  iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28,
  iq1_m = 29, bf16 = 30, /* 31-33: removed Q4_0_4_4/4_8/8_8 */ tq1_0 = 34, tq2_0 = 35,
  /* 36-38: removed IQ4_NL_4_4/4_8/8_8 */ mxfp4 = 39,
};

struct ggml_type_info {
  std::string_view name;      // empty: id was never defined or was removed
  std::uint32_t block_size;   // elements per block
  std::uint32_t type_size;    // bytes per block
};

inline constexpr std::uint32_t ggml_type_count = 40;

inline constexpr std::array<ggml_type_info, ggml_type_count> ggml_type_table = {{
    {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},    {"", 0, 0},
    {"", 0, 0},           {"Q5_0", 32, 22},    {"Q5_1", 32, 24},     {"Q8_0", 32, 34},    {"Q8_1", 32, 36},
    {"Q2_K", 256, 84},    {"Q3_K", 256, 110},  {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},
    {"Q8_K", 256, 292},   {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136}, {"I8", 1, 1},
    {"I16", 1, 2},        {"I32", 1, 4},       {"I64", 1, 8},        {"F64", 1, 8},       {"IQ1_M", 256, 56},
    {"BF16", 1, 2},       {"", 0, 0},          {"", 0, 0},           {"", 0, 0},          {"TQ1_0", 256, 54},
    {"TQ2_0", 256, 66},   {"", 0, 0},          {"", 0, 0},           {"", 0, 0},          {"MXFP4", 32, 17},
}};

// Is this a type id some ggml version defined (and did not remove)?
constexpr bool ggml_type_known(std::uint32_t id) noexcept {
  return id < ggml_type_count && ggml_type_table[id].block_size != 0;
}
constexpr const ggml_type_info& ggml_info(ggml_type t) noexcept { return ggml_type_table[static_cast<std::uint32_t>(t)]; }
constexpr std::string_view ggml_type_name(ggml_type t) noexcept {
  auto id = static_cast<std::uint32_t>(t);
  return id < ggml_type_count && !ggml_type_table[id].name.empty() ? ggml_type_table[id].name : std::string_view{"?"};
}

}  // namespace edgelm
