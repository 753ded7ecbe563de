// tests/support/kernels.hpp - the one list of kernel backends every backend test runs over.
// EDGELM_TEST_KERNELS: scalar (the reference), Highway, and xsimd where it is compiled in (native builds
// with edgelm::xsimd, which defines EDGELM_HAVE_XSIMD).
#pragma once
#include <edgelm/backends/highway.hpp>
#include <edgelm/kernels/scalar.hpp>

#if defined(EDGELM_HAVE_XSIMD) && __has_include(<edgelm/backends/xsimd.hpp>)
#include <edgelm/backends/xsimd.hpp>
#define EDGELM_TEST_KERNELS edgelm::kernels::scalar, edgelm::backends::highway::kernels, edgelm::backends::xsimd::kernels
#define EDGELM_TEST_SIMD_KERNELS edgelm::backends::highway::kernels, edgelm::backends::xsimd::kernels
#else
#define EDGELM_TEST_KERNELS edgelm::kernels::scalar, edgelm::backends::highway::kernels
#define EDGELM_TEST_SIMD_KERNELS edgelm::backends::highway::kernels
#endif
