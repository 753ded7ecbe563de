// edgelm/backends/highway.hpp - SIMD kernels written once with Google Highway (static dispatch: the
// target is the one the translation unit is compiled for: AVX2 with -mavx2 -mfma, AVX-512 with
// -mavx512f..., WASM SIMD128 with em++ -msimd128). Implements the f32, q8_0 x q8_0 and q4_0 x q8_0 dot
// products (and through them every matvec) and RMSNorm; every other op falls back to the scalar
// reference through basic_kernels.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <edgelm/core/half.hpp>
#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#if defined(__x86_64__) && !defined(EDGELM_NO_X86_KERNELS)
#include <edgelm/backends/highway/x86.hpp>
#include <edgelm/backends/highway/x86_kquants.hpp>
#define EDGELM_HWY_X86 1
#endif
#if defined(__wasm_simd128__) && !defined(EDGELM_NO_WASM_KERNELS)
#include <edgelm/backends/highway/wasm.hpp>
#include <edgelm/backends/highway/wasm_kquants.hpp>
#define EDGELM_HWY_WASM 1
#endif

// Everything is compiled for one Highway target, inside hwy::HWY_NAMESPACE's twin here, so that two
// translation units built for different targets (e.g. AVX2 and AVX-512) never share a mangled name.
namespace edgelm::backends::highway {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

namespace detail {

// sum(a[i] * b[i]) over one descriptor's lanes with two accumulators, plus a one-lane tail that goes
// through the same code path (no separate scalar loop).
template <class D>
HWY_INLINE float dot_lanes(D d, const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
}

inline float dot(const float* a, const float* b, std::size_t n);

// Four rows against one x: x is loaded once per step for four multiply-adds. The sums per row use the
// same lane grouping as dot_lanes on one accumulator (results may differ from dot() in the last bits).
template <class D>
HWY_INLINE void dot4_lanes(D d, const float* const* w, const float* HWY_RESTRICT x, std::size_t n, std::size_t& i, float* out) {
  const std::size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  for (; i + N <= n; i += N) {
    const auto vx = hn::LoadU(d, x + i);
    s0 = hn::MulAdd(hn::LoadU(d, w[0] + i), vx, s0);
    s1 = hn::MulAdd(hn::LoadU(d, w[1] + i), vx, s1);
    s2 = hn::MulAdd(hn::LoadU(d, w[2] + i), vx, s2);
    s3 = hn::MulAdd(hn::LoadU(d, w[3] + i), vx, s3);
  }
  out[0] += hn::GetLane(hn::SumOfLanes(d, s0));
  out[1] += hn::GetLane(hn::SumOfLanes(d, s1));
  out[2] += hn::GetLane(hn::SumOfLanes(d, s2));
  out[3] += hn::GetLane(hn::SumOfLanes(d, s3));
}

// Rows in groups of four; a last group of fewer rows repeats its last row, so every row is summed by the
// same code wherever it falls (matmul's contract: a value never depends on the row range).
inline void matvec_f32(float* out, const float* w, std::size_t rows, std::size_t cols, const float* x) {
  for (std::size_t r = 0; r < rows; r += 4) {
    const std::size_t m = rows - r < 4 ? rows - r : 4;
    const float* rw[4];
    for (std::size_t k = 0; k < 4; ++k) rw[k] = w + (r + (k < m ? k : m - 1)) * cols;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::size_t i = 0;
    dot4_lanes(hn::ScalableTag<float>(), rw, x, cols, i, acc);
    dot4_lanes(hn::CappedTag<float, 1>(), rw, x, cols, i, acc);
    for (std::size_t k = 0; k < m; ++k) out[r + k] = acc[k];
  }
}

inline float dot(const float* a, const float* b, std::size_t n) {
  std::size_t i = 0;
  float s = dot_lanes(hn::ScalableTag<float>(), a, b, n, i);
  return s + dot_lanes(hn::CappedTag<float, 1>(), a, b, n, i);
}

template <class D>
HWY_INLINE void scale_mul(D d, float* o, const float* w, const float* x, float ss, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, ss);
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, w + i), hn::Mul(vs, hn::LoadU(d, x + i))), d, o + i);
}

template <class D>
HWY_INLINE void scale_in_place(D d, float* x, float c, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  const auto vc = hn::Set(d, c);
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vc), d, x + i);
}

// ---- quantized dot products: one 32-element block at a time, int8 -> int16 -> int32 ----
// Elements are widened to int16 (PromoteTo) and multiplied pairwise into int32 lanes with
// ReorderWidenMulAccumulate (AVX2: vpmaddwd; WASM SIMD128: i32x4.dot_i16x8_s). A block's int32 lanes are
// exact; they are converted to float and scaled by d_w * d_x into float accumulators, so the result
// differs from the scalar reference (which sums each block's int32 first) only by float rounding.
// The descriptor is capped at 16 int16 lanes so that a step never crosses a block (or, for q4_0, the
// low/high nibble halves); with a 1-lane target (HWY_SCALAR) the same code runs one element per step.
using qd16 = hn::CappedTag<std::int16_t, 16>;

template <class D16>
HWY_INLINE hn::Vec<hn::RepartitionToWide<D16>> block_q8_q8(D16 d16, const std::int8_t* HWY_RESTRICT w, const std::int8_t* HWY_RESTRICT x) {
  const hn::Rebind<std::int8_t, D16> d8;
  const hn::RepartitionToWide<D16> d32;
  const std::size_t N = hn::Lanes(d16);
  auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
  for (std::size_t j = 0; j < 32; j += N) {
    const auto a = hn::PromoteTo(d16, hn::LoadU(d8, w + j));
    const auto b = hn::PromoteTo(d16, hn::LoadU(d8, x + j));
    s0 = hn::ReorderWidenMulAccumulate(d32, a, b, s0, s1);
  }
  return hn::Add(s0, s1);
}

template <class D16>
HWY_INLINE hn::Vec<hn::RepartitionToWide<D16>> block_q4_q8(D16 d16, const std::uint8_t* HWY_RESTRICT w, const std::int8_t* HWY_RESTRICT x) {
  const hn::Rebind<std::uint8_t, D16> du8;
  const hn::Rebind<std::int8_t, D16> d8;
  const hn::RepartitionToWide<D16> d32;
  const std::size_t N = hn::Lanes(d16);
  const auto mask = hn::Set(d16, std::int16_t{0x0F}), eight = hn::Set(d16, std::int16_t{8});
  auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
  for (std::size_t j = 0; j < 16; j += N) {
    const auto q = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, w + j)));
    const auto lo = hn::Sub(hn::And(q, mask), eight);             // elements j .. j+N-1
    const auto hi = hn::Sub(hn::ShiftRight<4>(q), eight);         // elements 16+j .. 16+j+N-1
    s0 = hn::ReorderWidenMulAccumulate(d32, lo, hn::PromoteTo(d16, hn::LoadU(d8, x + j)), s0, s1);
    s0 = hn::ReorderWidenMulAccumulate(d32, hi, hn::PromoteTo(d16, hn::LoadU(d8, x + 16 + j)), s0, s1);
  }
  return hn::Add(s0, s1);
}

// fp16 bits -> float through Highway's PromoteTo (AVX2: one vcvtph2ps; elsewhere Highway's branch-free
// emulation), cheaper in the inner loop than the portable edgelm::fp16_to_f32.
HWY_INLINE float half_to_float(const std::uint16_t& h) {
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(&h))));
}

// sum over blocks of (int32 block dot) * d_w * d_x; two float accumulators for two blocks in flight.
template <class WB, class BlockDot>
HWY_INLINE float dot_blocks(const WB* HWY_RESTRICT w, const block_q8_0* HWY_RESTRICT x, std::size_t nb, BlockDot block_dot) {
  const qd16 d16;
  const hn::RepartitionToWide<qd16> d32;
  const hn::Rebind<float, decltype(d32)> df;
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  std::size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const auto i0 = block_dot(d16, w[b], x[b]);
    const auto i1 = block_dot(d16, w[b + 1], x[b + 1]);
    acc0 = hn::MulAdd(hn::ConvertTo(df, i0), hn::Set(df, half_to_float(w[b].d) * half_to_float(x[b].d)), acc0);
    acc1 = hn::MulAdd(hn::ConvertTo(df, i1), hn::Set(df, half_to_float(w[b + 1].d) * half_to_float(x[b + 1].d)), acc1);
  }
  if (b < nb) acc0 = hn::MulAdd(hn::ConvertTo(df, block_dot(d16, w[b], x[b])), hn::Set(df, half_to_float(w[b].d) * half_to_float(x[b].d)), acc0);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
}

inline float dot(const block_q8_0* w, const block_q8_0* x, std::size_t n) {
  return dot_blocks(w, x, n / 32, [](qd16 d, const block_q8_0& wb, const block_q8_0& xb) { return block_q8_q8(d, wb.qs, xb.qs); });
}
inline float dot(const block_q4_0* w, const block_q8_0* x, std::size_t n) {
  return dot_blocks(w, x, n / 32, [](qd16 d, const block_q4_0& wb, const block_q8_0& xb) { return block_q4_q8(d, wb.qs, xb.qs); });
}

// ---- attention: scores, softmax with a vectorised exp, weighted sum of values ----
template <class D>
HWY_INLINE hn::Vec<D> load_kv(D d, const float* p) { return hn::LoadU(d, p); }
template <class D>
HWY_INLINE hn::Vec<D> load_kv(D d, const std::uint16_t* p) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}

// q . k over n elements, k in float or fp16.
template <class KV>
HWY_INLINE float dot_kv(const float* HWY_RESTRICT q, const KV* HWY_RESTRICT k, std::size_t n) {
  if constexpr (std::is_same_v<KV, float>) {
    return dot(q, k, n);
  } else {
    const hn::ScalableTag<float> d;
    const std::size_t N = hn::Lanes(d);
    auto s = hn::Zero(d);
    std::size_t i = 0;
    for (; i + N <= n; i += N) s = hn::MulAdd(hn::LoadU(d, q + i), load_kv(d, k + i), s);
    float r = hn::GetLane(hn::SumOfLanes(d, s));
    const hn::CappedTag<float, 1> d1;
    for (; i < n; ++i) r += hn::GetLane(hn::Mul(hn::LoadU(d1, q + i), load_kv(d1, k + i)));
    return r;
  }
}

// x[0..n) = exp(x - max) in whole vectors (the last one padded with -inf, whose exp is 0, and only its
// valid lanes stored); returns the sum of the vector lanes. Every x[j] gets the same vector exp, so a
// value depends only on x[j] and the max.
HWY_INLINE float softmax_unnormalised_padded(float* x, std::size_t n) {
  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  auto vmx = hn::Set(d, x[0]);
  std::size_t i = 0;
  for (; i + N <= n; i += N) vmx = hn::Max(vmx, hn::LoadU(d, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(d, vmx));
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const auto vm = hn::Set(d, mx);
  auto sum = hn::Zero(d);
  i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    hn::StoreU(e, d, x + i);
    sum = hn::Add(sum, e);
  }
  if (i < n) {
    HWY_ALIGN float tmp[hn::MaxLanes(d)];
    for (std::size_t k = 0; k < N; ++k) tmp[k] = i + k < n ? x[i + k] : -HUGE_VALF;
    const auto e = hn::Exp(d, hn::Sub(hn::Load(d, tmp), vm));
    hn::Store(e, d, tmp);
    for (std::size_t k = 0; i + k < n; ++k) x[i + k] = tmp[k];
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

// out[0..hd) = sum_j p[j] * v_j, v_j = v + j * stride; the output columns in register blocks of up to
// four vectors, keys in order (so a value never depends on the batch or the worker).
template <class D, class KV>
HWY_INLINE void weighted_sum(D d, float* HWY_RESTRICT out, const float* HWY_RESTRICT p, const KV* HWY_RESTRICT v, std::size_t len,
                             std::size_t stride, std::size_t hd, std::size_t& c) {
  const std::size_t N = hn::Lanes(d);
  for (; c + 4 * N <= hd; c += 4 * N) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (std::size_t j = 0; j < len; ++j) {
      const auto pj = hn::Set(d, p[j]);
      const KV* vj = v + j * stride + c;
      a0 = hn::MulAdd(pj, load_kv(d, vj), a0);
      a1 = hn::MulAdd(pj, load_kv(d, vj + N), a1);
      a2 = hn::MulAdd(pj, load_kv(d, vj + 2 * N), a2);
      a3 = hn::MulAdd(pj, load_kv(d, vj + 3 * N), a3);
    }
    hn::StoreU(a0, d, out + c);
    hn::StoreU(a1, d, out + c + N);
    hn::StoreU(a2, d, out + c + 2 * N);
    hn::StoreU(a3, d, out + c + 3 * N);
  }
  for (; c + N <= hd; c += N) {
    auto a0 = hn::Zero(d);
    for (std::size_t j = 0; j < len; ++j) a0 = hn::MulAdd(hn::Set(d, p[j]), load_kv(d, v + j * stride + c), a0);
    hn::StoreU(a0, d, out + c);
  }
}

// a[i] = silu(a[i]) * b[i] = a[i] * (1 / (1 + exp(-a[i]))) * b[i] with Highway's exp (within ~1 ulp):
// the same operations per element in full and one-lane vectors, so a value never depends on n (the
// batch). exp's argument is capped at 100 (Highway's exp is valid up to 104): exp(100) is already inf,
// as std::exp of anything above 88.7, so large negative a still gives -0 * b.
template <class D>
HWY_INLINE void silu_mul_lanes(D d, float* HWY_RESTRICT a, const float* HWY_RESTRICT b, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f), cap = hn::Set(d, 100.0f);
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, a + i);
    const auto e = hn::Exp(d, hn::Min(hn::Neg(v), cap));
    const auto s = hn::Div(one, hn::Add(one, e));
    hn::StoreU(hn::Mul(hn::Mul(v, s), hn::LoadU(d, b + i)), d, a + i);
  }
}

template <class D>
HWY_INLINE void add_lanes(D d, float* HWY_RESTRICT x, const float* HWY_RESTRICT y, std::size_t n, std::size_t& i) {
  const std::size_t N = hn::Lanes(d);
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, x + i);
}

}  // namespace detail

// The Highway kernel policy: transformer<P, backends::highway::kernels>.
struct kernels : edgelm::kernels::basic_kernels<kernels> {
  static constexpr const char* name = "highway";
  // The SIMD target of the hot matrix products: the run-time choice of the x86 path (e.g. "avx512vnni",
  // "avx2") or the compile-time Highway target (e.g. "AVX2", "WASM").
  static const char* target() noexcept {
#if defined(EDGELM_HWY_X86)
    if (const char* t = edgelm::backends::x86::isa_name()) return t;
#endif
#if defined(EDGELM_HWY_WASM)
    return edgelm::backends::wasm::isa_name();
#endif
    return hwy::TargetName(HWY_TARGET);
  }

  // Weight repacking at load: the x86 AVX-512 VNNI paths' interleaved 16-row layouts (x86::pack) for
  // q8_0 / q4_0 and (x86_kquants.hpp: kq::pack_k) q4_k / q6_k; nothing elsewhere (the products read the
  // rows in place).
  static constexpr std::uint32_t packed_row_group = 16;
  template <class P>
  static std::size_t packed_bytes(const matrix<P>& w) noexcept {
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
    if constexpr (std::is_same_v<P, q4_k> || std::is_same_v<P, q6_k> || std::is_same_v<P, q5_0>)
      return edgelm::backends::x86::kq::packed_bytes_k<typename P::block_type>(w.rows, w.blocks_per_row());
#endif
#if defined(EDGELM_HWY_X86)
    return edgelm::backends::x86::packed_bytes(w);
#else
    (void)w;
    return 0;
#endif
  }
  template <class P>
  static std::uint32_t pack(const matrix<P>& w, std::byte* dst) noexcept {
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
    if constexpr (std::is_same_v<P, q4_k> || std::is_same_v<P, q6_k> || std::is_same_v<P, q5_0>)
      return edgelm::backends::x86::kq::pack_k(w.data, w.rows, w.blocks_per_row(), dst);
#endif
#if defined(EDGELM_HWY_X86)
    return edgelm::backends::x86::pack(w, dst);
#else
    (void)w, (void)dst;
    return 0;
#endif
  }

  using basic_kernels<kernels>::matmul;
  // f32 matmul: per token, four rows per pass over x.
  static void matmul(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::matmul(y, ldy, w, x, ldx, n, r0, r1)) return;
#endif
#if defined(EDGELM_HWY_WASM)
    if (edgelm::backends::wasm::matmul(y, ldy, w, x, ldx, n, r0, r1)) return;
#endif
    for (std::size_t t = 0; t < n; ++t) detail::matvec_f32(y + t * ldy + r0, w.row(r0), r1 - r0, w.cols, x + t * ldx);
  }
  // Quantized weights x q8_0 activations.
  template <class P>
    requires(std::is_same_v<P, q8_0> || std::is_same_v<P, q4_0>)
  static void matmul(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::matmul(y, ldy, w, x, ldx, n, r0, r1)) return;
#endif
#if defined(EDGELM_HWY_WASM)
    if (edgelm::backends::wasm::matmul(y, ldy, w, x, ldx, n, r0, r1)) return;
#endif
    const std::size_t k = w.blocks_per_row() * 32;
    for (std::size_t t = 0; t < n; ++t)
      for (std::uint32_t r = r0; r < r1; ++r) y[t * ldy + r] = detail::dot(w.row(r), x + t * ldx, k);
  }

  // K-quant weights x q8_k activations (x86_kquants.hpp): AVX-512 VNNI 16-row panels where they were made at
  // load (q4_k, q6_k), else AVX-512 VNNI tiles of the rows, else the row-by-row dot.
  template <class P>
    requires(std::is_same_v<P, q4_k> || std::is_same_v<P, q5_k> || std::is_same_v<P, q6_k>)
  static void matmul(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_k* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
    if (edgelm::backends::x86::kq::matmul_k_packed<typename P::block_type>(y, ldy, w.packed, w.packing, w.blocks_per_row(), x, ldx, n, r0, r1)) return;
    if (edgelm::backends::x86::kq::matmul_k(y, ldy, w.data, w.blocks_per_row(), x, ldx, n, r0, r1)) return;
#endif
    basic_kernels<kernels>::matmul(y, ldy, w, x, ldx, n, r0, r1);
  }

  // Q5_0 weights x q8_0 activations: x86_kquants.hpp's 16-row panels where they were made at load, else
  // the row-by-row dot.
  template <class P>
    requires(std::is_same_v<P, q5_0>)
  static void matmul(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
    if (edgelm::backends::x86::kq::matmul_k_packed<block_q5_0>(y, ldy, w.packed, w.packing, w.blocks_per_row(), x, ldx, n, r0, r1)) return;
#endif
    basic_kernels<kernels>::matmul(y, ldy, w, x, ldx, n, r0, r1);
  }

  using basic_kernels<kernels>::dot;
  // f32 dot product: the attention scores.
  static float dot(const float* w, const float* x, std::size_t n) noexcept { return detail::dot(w, x, n); }
  // Quantized weights . q8_0 activations, n elements (a multiple of 32).
  static float dot(const block_q8_0* w, const block_q8_0* x, std::size_t n) noexcept { return detail::dot(w, x, n); }
  static float dot(const block_q4_0* w, const block_q8_0* x, std::size_t n) noexcept { return detail::dot(w, x, n); }
  // The other in-place types of llama-quantize's mixes (x86_kquants.hpp: AVX2 where the CPU has it;
  // wasm_kquants.hpp under em++ -msimd128; the scalar reference elsewhere).
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
  static float dot(const block_q5_0* w, const block_q8_0* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q5_0(w, x, n) : basic_kernels::dot(w, x, n);
  }
  static float dot(const block_q4_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q41_q51<false>(w, x, n) : basic_kernels::dot(w, x, n);
  }
  static float dot(const block_q5_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q41_q51<true>(w, x, n) : basic_kernels::dot(w, x, n);
  }
  static float dot(const block_q4_k* w, const block_q8_k* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q45k<false>(w, x, n) : basic_kernels::dot(w, x, n);
  }
  static float dot(const block_q5_k* w, const block_q8_k* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q45k<true>(w, x, n) : basic_kernels::dot(w, x, n);
  }
  static float dot(const block_q6_k* w, const block_q8_k* x, std::size_t n) noexcept {
    return edgelm::backends::x86::kq::available() ? edgelm::backends::x86::kq::dot_q6k(w, x, n) : basic_kernels::dot(w, x, n);
  }
#elif defined(EDGELM_HWY_WASM)
  // WASM SIMD128 (wasm_kquants.hpp): the same bits as the scalar reference, every type.
  static float dot(const block_q5_0* w, const block_q8_0* x, std::size_t n) noexcept { return edgelm::backends::wasm::kq::dot_q5_0(w, x, n); }
  static float dot(const block_q4_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    return edgelm::backends::wasm::kq::dot_q41_q51<false>(w, x, n);
  }
  static float dot(const block_q5_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    return edgelm::backends::wasm::kq::dot_q41_q51<true>(w, x, n);
  }
  static float dot(const block_q4_k* w, const block_q8_k* x, std::size_t n) noexcept { return edgelm::backends::wasm::kq::dot_q45k<false>(w, x, n); }
  static float dot(const block_q5_k* w, const block_q8_k* x, std::size_t n) noexcept { return edgelm::backends::wasm::kq::dot_q45k<true>(w, x, n); }
  static float dot(const block_q6_k* w, const block_q8_k* x, std::size_t n) noexcept { return edgelm::backends::wasm::kq::dot_q6k(w, x, n); }
#endif

  // Causal attention (basic_kernels::attention's contract): scores, a softmax with a vectorised exp and
  // 1/sum folded into the probabilities, then the weighted sum of values in register blocks.
  // WASM with an f32 cache: wasm.hpp's scores (four keys per pass) and weighted sum (four output vectors,
  // two keys per step) around the same softmax.
  template <class KV>
  static void attention(const attention_args<KV>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::attention(a, i0, i1, scratch)) return;
#endif
    const float inv_scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
#if defined(EDGELM_HWY_WASM)
    if constexpr (std::is_same_v<KV, float>) {
      edgelm::backends::wasm::attention(a, i0, i1, scratch, inv_scale, [](float* s, std::size_t len) noexcept { softmax(s, len); });
      return;
    }
#endif
    for (std::size_t i = i0; i < i1; ++i) {
      const std::size_t t = i / a.n_heads, h = i % a.n_heads;
      const std::size_t len = a.pos + t + 1;
      const float* q = a.q + t * a.ld_q + h * a.head_dim;
      const std::size_t kv_off = (h / a.kv_mul) * a.head_dim;
      for (std::size_t j = 0; j < len; ++j) scratch[j] = detail::dot_kv(q, a.k + j * a.kv_dim + kv_off, a.head_dim) * inv_scale;
      softmax(scratch, len);
      float* o = a.out + t * a.ld_out + h * a.head_dim;
      std::size_t c = 0;
      detail::weighted_sum(hn::ScalableTag<float>(), o, scratch, a.v + kv_off, len, a.kv_dim, a.head_dim, c);
      detail::weighted_sum(hn::CappedTag<float, 1>(), o, scratch, a.v + kv_off, len, a.kv_dim, a.head_dim, c);
    }
  }

  // In-place softmax with a vectorised exp: every element gets the same full-vector exp (the tail padded with
  // -inf), so a value depends only on x[j] and the max; 1/sum is folded in as a product.
  static void softmax(float* x, std::size_t n) noexcept {
    const float inv_sum = 1.0f / detail::softmax_unnormalised_padded(x, n);
    std::size_t j = 0;
    detail::scale_in_place(hn::ScalableTag<float>(), x, inv_sum, n, j);
    detail::scale_in_place(hn::CappedTag<float, 1>(), x, inv_sum, n, j);
  }

  // Activations of a quantized product, byte-identical to q8_0::quantize_row (WASM: SIMD128).
  static void quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::quantize_q8_0(x, y, n)) return;
#endif
#if defined(EDGELM_HWY_WASM)
    edgelm::backends::wasm::quantize_q8_0(x, y, n);
#else
    q8_0::quantize_row(x, y, n);
#endif
  }

  // Activations of a K-quant product, byte-identical to q8_k::quantize_row (x86: AVX-512).
  static void quantize_q8_k(const float* x, block_q8_k* y, std::size_t n) noexcept {
#if defined(EDGELM_HWY_X86) && defined(EDGELM_X86_ENABLED)
    if (edgelm::backends::x86::kq::quantize_q8_k(x, y, n)) return;
#endif
    q8_k::quantize_row(x, y, n);
  }

  // RoPE, bit-identical to basic_kernels::rope (x86: whole heads in vectors).
  static void rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t head_dim, const float* fcos, const float* fsin) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::rope(q, k, n_q, n_k, head_dim, fcos, fsin)) return;
#endif
    basic_kernels<kernels>::rope(q, k, n_q, n_k, head_dim, fcos, fsin);
  }

  // SwiGLU a = silu(a) * b with a vectorised exp (element-wise: independent of n).
  static void silu_mul(float* a, const float* b, std::size_t n) noexcept {
#if defined(EDGELM_HWY_X86)
    if (edgelm::backends::x86::silu_mul(a, b, n)) return;
#endif
    std::size_t i = 0;
    detail::silu_mul_lanes(hn::ScalableTag<float>(), a, b, n, i);
    detail::silu_mul_lanes(hn::CappedTag<float, 1>(), a, b, n, i);
  }

  // x += y (exact, element-wise).
  static void add(float* x, const float* y, std::size_t n) noexcept {
    std::size_t i = 0;
    detail::add_lanes(hn::ScalableTag<float>(), x, y, n, i);
    detail::add_lanes(hn::CappedTag<float, 1>(), x, y, n, i);
  }

  static void rmsnorm(float* o, const float* x, const float* weight, std::size_t n, float eps) noexcept {
    float ss = detail::dot(x, x, n);
    ss /= static_cast<float>(n);
    ss += eps;
    ss = 1.0f / std::sqrt(ss);
    std::size_t i = 0;
    detail::scale_mul(hn::ScalableTag<float>(), o, weight, x, ss, n, i);
    detail::scale_mul(hn::CappedTag<float, 1>(), o, weight, x, ss, n, i);
  }
};

}  // namespace HWY_NAMESPACE

// The kernels of the target this translation unit is compiled for.
using kernels = HWY_NAMESPACE::kernels;

}  // namespace edgelm::backends::highway
