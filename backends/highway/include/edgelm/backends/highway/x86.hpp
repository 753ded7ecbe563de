// edgelm/backends/highway/x86.hpp - x86-64 matrix products chosen at run time from the CPU
// (__builtin_cpu_supports): AVX-512 VNNI, AVX-VNNI, AVX2. Each ISA's code is compiled with a target
// attribute, so no -m flags are needed and one binary runs everywhere; never AMX.
// Placeholder: no ISA path yet, every call returns false (the caller falls back to Highway).
#pragma once
#include <cstddef>
#include <cstdint>

#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/f32.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

namespace edgelm::backends::x86 {

// The ISA the products below use on this CPU, or nullptr when none applies.
inline const char* isa_name() noexcept { return nullptr; }

// y[t * ldy + r] = W.row(r) . x_t for t < n, r0 <= r < r1 (kernels::basic_kernels::matmul's contract).
// Returns false when this CPU has no path here (the caller computes it).
inline bool matmul(float*, std::size_t, const matrix<f32>&, const float*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }
inline bool matmul(float*, std::size_t, const matrix<q8_0>&, const block_q8_0*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }
inline bool matmul(float*, std::size_t, const matrix<q4_0>&, const block_q8_0*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }

}  // namespace edgelm::backends::x86
