// edgelm/backends/highway/wasm.hpp - WebAssembly SIMD128 matrix products: q4_0 / q8_0 weights x q8_0
// activations through i32x4.dot_i16x8_s, and f32 x f32.
//
// Results. For q4_0 and q8_0 every y[t, r] is computed exactly as the scalar reference computes it:
// the int32 dot of each 32-element block is exact (integer arithmetic, grouped in any order), and the
// float steps are the reference's, s = s + float(isum_b) * (fp16(d_w) * fp16(d_x)), block after block,
// in IEEE single precision (SIMD128 has no fused multiply-add). So the output is bit-identical to
// kernels::scalar for any n, any row split and any tile position, and a batch equals the same tokens
// one by one (only the payload of a NaN result, from NaN/inf scales, is not pinned down).
// f32 sums four interleaved lanes per row (element i goes to lane i % 4), reduces them as
// (l0 + l2) + (l1 + l3) and adds the cols % 4 tail elements in order: the same sequence for every
// element, so it too is independent of n, r0, r1 and the tiling (it differs from the left-to-right
// reference only by rounding).
//
// Kernels (tuned under node 20 / V8 11.3 on x86-64 (AMD EPYC) for SmolLM2-135M shapes; one thread, a
// model's matrices: decode ~135 tok/s for q4_0 and q8_0, prefill ~390 tok/s, 3x and 8x the per-row
// Highway dots):
//  - decode (one token): one row at a time (rows interleaved in one pass defeat the hardware
//    prefetchers), four blocks per step: four int16 block dots (the token's activations are widened to
//    int16 once per call, in a stack buffer), one transpose-add for the four block sums, one vector of
//    four scales, and the four products added to the row's sum in block order.
//  - prefill (two or more tokens): "transposed" activations. A super-tile of up to 32 tokens is laid out
//    once per reduction chunk so that lane k of a vector holds one step of the elements of token k of a
//    group of four (an int16 pair (2e, 2e+1), or with the relaxed dot an int8 quad 4e .. 4e+3); the
//    weights of the step (4 bytes) are broadcast to the four lanes (v128.load32_splat from the row's
//    block unpacked once per chunk), so one dot instruction serves four tokens and the steps of a block
//    add up to each token's exact block sum in its own lane: no horizontal reductions. Register tiles:
//    3 rows x 8 tokens with i32x4.dot_i16x8_s (6 accumulators; per pair 3 broadcasts, 2 activation
//    loads, 6 dots, 6 adds: V8 keeps it all in registers), 4 rows x 8 tokens with the relaxed dot (q4_0;
//    per quad 4 broadcasts, 2 loads, 8 dots, 8 i16 adds). Each row's blocks are unpacked once per chunk
//    for all tokens of the super-tile; each activation vector serves all rows of the tile.
//  The reduction dimension is processed in chunks (stack buffers of at most ~37 KB, most of it the
//  transposed activations: 24 KB); between chunks the running sums live in y itself (a
//  float store and load is exact). Whole rows in one chunk are worth more than more tokens per chunk.
//  q4_0: nibbles are used unsigned (0..15) and the -8 offset is folded into the block sum as
//  -8 * sum(x_block), computed once per activation block.
//  V8 11.3 notes: TurboFan emits a basic block's loads before its arithmetic (so an inner loop body
//  holds one step: unrolled, it spills), it does not fold loads into SIMD instructions, and it folds a
//  constant offset from a pointer that steps through the loop (emscripten passes -disable-lsr, so the
//  loops step pointers themselves). Widening loads (i16x8.load8x8) in the inner loop cost an ALU slot.
//
// Activation quantization (quantize_q8_0) and attention over an f32 cache are here too (see below).
//
// Relaxed SIMD: see EDGELM_WASM_RELAXED_DOT and EDGELM_WASM_DOT_ADD below. The relaxed builds (tools/build_web.sh)
// take, in Chromium 156 on x86-64 with AVX-VNNI (one thread, SmolLM2-135M, tools/bench_web.sh, 2026-12-04):
//  - q8_0 prefill: dq8 (i32x4 dot_add, 5 rows x 8 tokens) where dot_add_kind() says it is exact, ~480-530 tok/s
//    against ~210 for the SIMD128 i16 kernel; decode: wda8, ~127-141 tok/s against ~115;
//  - q4_0 prefill: rq4 (the relaxed i16 dot); decode: wda4 (dot_add on nibbles, exact on every engine),
//    ~127-140 tok/s against ~125 with the relaxed i16 dot (on x86 without VNNI V8 lowers dot_add to
//    pmaddubsw + pmaddwd + paddd: a few percent slower there than the i16 dot was).
// tests/web/kernels checks every product of these builds bit for bit against kernels::scalar in Chromium.
#pragma once
#include <cstddef>
#include <cstdint>

#include <edgelm/core/half.hpp>
#include <edgelm/kernels/scalar.hpp>
#include <edgelm/precision/f32.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

// EDGELM_WASM_RELAXED_DOT(a, b) = i16x8.relaxed_dot_i8x16_i7x16_s(a, b): with b's bytes in 0..127 every
// engine returns the exact pairwise sums a[2k]*b[2k] + a[2k+1]*b[2k+1] (x86's pmaddubsw and Arm's sdot
// agree when b's top bit is clear), so the q4_0 path built on it (nibbles 0..15 as b) is deterministic
// and bit-identical to the SIMD128 one; it doubles the multiply-adds per instruction (prefill: the
// transposed kernel rq4 below).
// emscripten 3.1.6 / clang 14 cannot emit it: clang 14 has no builtin for it (its relaxed builtins are
// the 2021 prototype set: fma/fms, laneselect, relaxed swizzle/min/max/trunc, and LLVM 14 encodes them
// with prototype opcodes, e.g. laneselect as 0xfd 0xb2, that node 20 rejects even with relaxed SIMD
// enabled), its assembler does not know the instruction, and inline asm may not emit raw bytes in a
// function body. So with this toolchain -mrelaxed-simd changes nothing here and isa_name() is
// "simd128". A newer clang's builtin is picked up below; a build may also define the macro itself (an
// expression of type v128_t). Node 20 runs the instruction only with --experimental-wasm-relaxed-simd;
// with it (the instruction patched into a binary) this path passed the same bit-exactness tests and
// made q4_0 decode ~15% faster and, with the transposed int8 kernel, q4_0 prefill matmuls ~1.5x the
// SIMD128 ones (node 20, --experimental-wasm-relaxed-simd).
// (i32x4.relaxed_dot_i8x16_i7x16_add_s is not used: node 20's V8 returns twice the dot and drops the
// addend.)
#if defined(__wasm_relaxed_simd__) && !defined(EDGELM_WASM_RELAXED_DOT) && defined(__has_builtin)
#if __has_builtin(__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8)
#define EDGELM_WASM_RELAXED_DOT(a, b) \
  ((v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)(a), (__i8x16)(b)))
#endif
#endif

// EDGELM_WASM_DOT_ADD(a, b, c) = i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c): lane k is c[k] plus the four
// products a[4k+j] * b[4k+j]. With b's bytes in 0..127 every engine agrees; with the top bit set the spec
// leaves it open, and engines differ: V8 on x86 with AVX-VNNI emits vpdpbusd (b unsigned, the sum exact),
// Arm's sdot takes b signed (exact), and V8 on x86 without AVX-VNNI emits pmaddubsw + pmaddwd (b unsigned, but
// the pair sums saturate to int16). dot_add_kind() below finds out at run time which one the engine at
// hand does, and the q8_0 prefill kernel dq8 uses the instruction only when it is exact (q8_0 weights are
// signed 8-bit: b = w + 128 as an unsigned byte, with -128 * sum(x) added back, or b = w as a signed one):
// one instruction per 16 multiply-adds, where SIMD128's i32x4.dot_i16x8_s + i32x4.add take two per 8.
// clang 14 cannot emit it either; tools/build_web.sh's relaxed builds define it as
// __builtin_wasm_laneselect_i32x4 (the 2021 prototype opcode fd d2 01, three v128 operands in the same
// order, nothing else in the engine emits it) and rewrite those instructions in place to fd 93 02 after
// linking. A newer clang's builtin is picked up here.
#if defined(__wasm_relaxed_simd__) && !defined(EDGELM_WASM_DOT_ADD) && defined(__has_builtin)
#if __has_builtin(__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4)
#define EDGELM_WASM_DOT_ADD(a, b, c) \
  ((v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)(a), (__i8x16)(b), (__i32x4)(c)))
#endif
#endif

namespace edgelm::backends::wasm {

#if defined(__wasm_simd128__)

// The ISA the products below use.
inline const char* isa_name() noexcept {
#if defined(EDGELM_WASM_RELAXED_DOT)
  return "relaxed-simd";
#else
  return "simd128";
#endif
}

namespace detail {

// Blocks of the reduction dimension per decode chunk: one token's activations (at most 64 bytes per
// block; prefill's chunks are its kernels', below).
inline constexpr std::size_t kc_decode = 128;

// Keeps the loads and the arithmetic of one step together. V8's TurboFan (as in node 20) emits all
// loads of a basic block first and the pure arithmetic after them; with 16+ vector loads per step that
// overflows x86's 16 xmm registers and spills. A store of the step's result (forced by this empty asm,
// through which `p` escapes) sits in V8's effect chain between the loads of one step and those of the
// next, so each step's arithmetic is emitted before the following loads (+30% decode, +10% prefill).
#define EDGELM_WASM_PIN(p) __asm__ volatile("" : : "r"(p) : "memory")

// [sum(a), sum(b), sum(c), sum(d)] of int32 lanes (exact).
inline v128_t hsum4_i32(v128_t a, v128_t b, v128_t c, v128_t d) noexcept {
  const v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  const v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i64x2_shuffle(ab, cd, 0, 2), wasm_i64x2_shuffle(ab, cd, 1, 3));
}

// The same transpose-add in f32: lane k of the result is (v0 + v2) + (v1 + v3) of the k-th argument.
inline v128_t hsum4_f32(v128_t a, v128_t b, v128_t c, v128_t d) noexcept {
  const v128_t ab = wasm_f32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  const v128_t cd = wasm_f32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  return wasm_f32x4_add(wasm_i64x2_shuffle(ab, cd, 0, 2), wasm_i64x2_shuffle(ab, cd, 1, 3));
}

// fp16 scales, each in the upper half of a 32-bit lane (lower half zero).
//  - rebias_free: the arithmetic shift puts sign, exponent and mantissa at their f32 places, which is
//    the f32 d * 2^-112 for every finite fp16 d (subnormals included, exactly). Multiplied by
//    d_x * 2^112 (exact: |d_x| < 2^16) it gives fl(d * d_x) with the reference's single rounding.
//  - half_hi_to_f32: exactly edgelm::fp16_to_f32 (inf and NaN payloads included).
inline v128_t rebias_free(v128_t u) noexcept {
  return wasm_v128_and(wasm_i32x4_shr(u, 3), wasm_i32x4_const_splat(static_cast<std::int32_t>(0x8FFFE000u)));
}
inline v128_t half_hi_to_f32(v128_t u) noexcept {
  const v128_t f = wasm_f32x4_mul(rebias_free(u), wasm_f32x4_const_splat(0x1p112f));
  const v128_t special = wasm_i32x4_gt(wasm_v128_and(u, wasm_i32x4_const_splat(0x7FFFFFFF)), wasm_i32x4_const_splat(0x7BFFFFFF));
  return wasm_v128_or(f, wasm_v128_and(special, wasm_i32x4_const_splat(0x7F800000)));
}
// Whether a scale among those collected as wasm_u32x4_max(seen, u << 1) was inf or NaN.
inline bool any_special(v128_t seen) noexcept {
  return wasm_v128_any_true(wasm_u32x4_ge(seen, wasm_i32x4_const_splat(static_cast<std::int32_t>(0xF8000000u))));
}

template <class B>
inline v128_t gather_scales(const B& b0, const B& b1, const B& b2, const B& b3) noexcept {
  v128_t h = wasm_i32x4_const_splat(0);
  h = wasm_v128_load16_lane(&b0.d, h, 1);
  h = wasm_v128_load16_lane(&b1.d, h, 3);
  h = wasm_v128_load16_lane(&b2.d, h, 5);
  h = wasm_v128_load16_lane(&b3.d, h, 7);
  return h;
}

// coff * (the sum of a q8_0 block's quants), exact in int32 (|sum| <= 4096, |coff| <= 128).
inline std::int32_t scaled_sum(const block_q8_0& xb, std::int16_t coff) noexcept {
  const v128_t s = wasm_i16x8_add(wasm_i16x8_add(wasm_i16x8_load8x8(xb.qs), wasm_i16x8_load8x8(xb.qs + 8)),
                                  wasm_i16x8_add(wasm_i16x8_load8x8(xb.qs + 16), wasm_i16x8_load8x8(xb.qs + 24)));  // |.| <= 512
  const v128_t c = wasm_i32x4_dot_i16x8(s, wasm_i16x8_splat(coff));
  return wasm_i32x4_extract_lane(c, 0) + wasm_i32x4_extract_lane(c, 1) + wasm_i32x4_extract_lane(c, 2) + wasm_i32x4_extract_lane(c, 3);
}

// ---- weight formats ----
// A policy names its block, how a q8_0 activation block is stored for it (xt, 32 per block), how a
// weight block is unpacked (U) and the int32x4 partial sums of one block dot.

// Activations widened to int16 (for i32x4.dot_i16x8_s).
struct act_i16 {
  using xt = std::int16_t;
  static void store(const block_q8_0& b, std::int16_t* o) noexcept {
    wasm_v128_store(o, wasm_i16x8_load8x8(b.qs));
    wasm_v128_store(o + 8, wasm_i16x8_load8x8(b.qs + 8));
    wasm_v128_store(o + 16, wasm_i16x8_load8x8(b.qs + 16));
    wasm_v128_store(o + 24, wasm_i16x8_load8x8(b.qs + 24));
  }
};

struct u16x4 {
  v128_t v[4];  // elements 0-7, 8-15, 16-23, 24-31 as int16
};

inline v128_t madd4(const u16x4& w, const std::int16_t* xp) noexcept {
  const v128_t m0 = wasm_i32x4_dot_i16x8(w.v[0], wasm_v128_load(xp));
  const v128_t m1 = wasm_i32x4_dot_i16x8(w.v[1], wasm_v128_load(xp + 8));
  const v128_t m2 = wasm_i32x4_dot_i16x8(w.v[2], wasm_v128_load(xp + 16));
  const v128_t m3 = wasm_i32x4_dot_i16x8(w.v[3], wasm_v128_load(xp + 24));
  return wasm_i32x4_add(wasm_i32x4_add(m0, m1), wasm_i32x4_add(m2, m3));
}

struct wq8 : act_i16 {
  using block = block_q8_0;
  using U = u16x4;
  static constexpr bool offset8 = false;  // the values are the int8 quants themselves
  static U unpack(const block_q8_0& b) noexcept {
    return {{wasm_i16x8_load8x8(b.qs), wasm_i16x8_load8x8(b.qs + 8), wasm_i16x8_load8x8(b.qs + 16), wasm_i16x8_load8x8(b.qs + 24)}};
  }
  static v128_t dot(const U& w, const std::int16_t* xp) noexcept { return madd4(w, xp); }
};

struct wq4 : act_i16 {
  using block = block_q4_0;
  using U = u16x4;
  static constexpr bool offset8 = true;  // nibbles 0..15; the block sum gets -8 * sum(x) added
  static U unpack(const block_q4_0& b) noexcept {
    const v128_t lo = wasm_u16x8_load8x8(b.qs), hi = wasm_u16x8_load8x8(b.qs + 8);
    const v128_t m = wasm_i16x8_const_splat(0x0F);
    return {{wasm_v128_and(lo, m), wasm_v128_and(hi, m), wasm_u16x8_shr(lo, 4), wasm_u16x8_shr(hi, 4)}};
  }
  static v128_t dot(const U& w, const std::int16_t* xp) noexcept { return madd4(w, xp); }
};

// Activations kept int8 (the relaxed dots' signed operand), weights as two vectors of bytes.
struct act_i8 {
  using xt = std::int8_t;
  struct U {
    v128_t lo, hi;  // elements 0-15 and 16-31
  };
  static void store(const block_q8_0& b, std::int8_t* o) noexcept {
    wasm_v128_store(o, wasm_v128_load(b.qs));
    wasm_v128_store(o + 16, wasm_v128_load(b.qs + 16));
  }
};
// A q4_0 block's elements 0-15 (low nibbles) and 16-31 (high nibbles) as bytes 0..15.
inline act_i8::U nibbles(const block_q4_0& b) noexcept {
  const v128_t q = wasm_v128_load(b.qs);
  return {wasm_v128_and(q, wasm_i8x16_const_splat(0x0F)), wasm_u8x16_shr(q, 4)};
}

#if defined(EDGELM_WASM_RELAXED_DOT)
// q4_0 with the relaxed int8 dot: activations stay int8, nibbles are the 7-bit operand.
struct wq4_relaxed : act_i8 {
  using block = block_q4_0;
  static constexpr bool offset8 = true;
  static U unpack(const block_q4_0& b) noexcept { return nibbles(b); }
  static v128_t dot(const U& w, const std::int8_t* xp) noexcept {
    // two i16 lanes of pair sums (|.| <= 2 * 128 * 15 each, 7680 for their sum), then pairwise to int32
    const v128_t s = wasm_i16x8_add(EDGELM_WASM_RELAXED_DOT(wasm_v128_load(xp), w.lo), EDGELM_WASM_RELAXED_DOT(wasm_v128_load(xp + 16), w.hi));
    return wasm_i32x4_extadd_pairwise_i16x8(s);
  }
};
using wq4_fast = wq4_relaxed;
#else
using wq4_fast = wq4;
#endif

#if defined(EDGELM_WASM_DOT_ADD)
// Decode on i32x4.relaxed_dot_i8x16_i7x16_add_s (used where dot_add_kind() says the engine's is exact): the
// activations int8 (the signed operand), the weights the 7-bit operand, two instructions per 32-element
// block chained through the addend (lane k: a quarter of the block sum, exact in int32).
//  - q8_0 (wda8): the quants ^ flip, as in dq8 (flip 0x80: w + 128 read unsigned, the block sum starting at
//    -128 * sum(x); flip 0: read signed, coff 0);
//  - q4_0 (wda4): the nibbles 0..15 (the -8 offset as in wq4).
// Against the SIMD128 decode (four widening loads, four i32x4.dot_i16x8_s and three adds per q8_0 block) and
// the relaxed i16 dot (two dots, an i16 add and an extadd per q4_0 block).
template <class B>
struct wda : act_i8 {  // U: the 7-bit operand
  using block = B;
  static constexpr bool offset8 = true;
  static U unpack(const B& b, v128_t flip) noexcept {
    if constexpr (sizeof(B) == sizeof(block_q8_0))
      return {wasm_v128_xor(wasm_v128_load(b.qs), flip), wasm_v128_xor(wasm_v128_load(b.qs + 16), flip)};
    else
      return nibbles(b);
  }
  static v128_t dot(const U& w, const std::int8_t* xp) noexcept {
    return EDGELM_WASM_DOT_ADD(wasm_v128_load(xp + 16), w.hi, EDGELM_WASM_DOT_ADD(wasm_v128_load(xp), w.lo, wasm_i32x4_const_splat(0)));
  }
};
using wda8 = wda<block_q8_0>;
using wda4 = wda<block_q4_0>;
#endif

// Activations of T tokens, blocks [0, nb) of a chunk, block-major: xq[(b * T + t) * 32 ...] in the
// policy's form, dx[b * T + t] = fp16(d) as f32 (times `dscale`), cx[b * T + t] = -8 * sum of the
// block's quants (offset8 formats only; coff * the sum, coff = -8 but for the dot_add q8_0 decode's -128 / 0).
template <class W, std::size_t T>
inline void prep_x(const block_q8_0* const* xs, std::size_t nb, typename W::xt* xq, float* dx, std::int32_t* cx, float dscale,
                   std::int16_t coff = -8) noexcept {
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      const block_q8_0& xb = xs[t][b];
      W::store(xb, xq + (b * T + t) * 32);
      dx[b * T + t] = fp16_to_f32(xb.d) * dscale;
      if constexpr (W::offset8) cx[b * T + t] = scaled_sum(xb, coff);
    }
}

// ---- decode ----

// Blocks wp[0 .. m-1] (1 <= m <= 4) of one row (activations xp, dxs = d_x * 2^112 and cx at the same
// block); for m < 4 the last block is repeated in the unused lanes and its lanes are not added.
// The scales by rebias_free (exact for finite fp16), collected in `seen`: the caller redoes a chunk of a row
// whose scales hold an inf or NaN with the scalar reference.
// (A tail through the full step from a zero-padded copy of the blocks was ~500 B smaller and 35% slower in
// Chromium: the local array kept the step's values in memory across the pins.)
template <class W, bool Tail>
inline float row1_step(const typename W::block* wp, const typename W::xt* xp, const float* dxs, const std::int32_t* cx, std::size_t m,
                       float acc, v128_t& seen, v128_t flip) noexcept {
  std::size_t jj[4];
  for (std::size_t j = 0; j < 4; ++j) jj[j] = !Tail || j < m ? j : m - 1;
  alignas(16) v128_t p[4];
  for (std::size_t j = 0; j < 4; ++j) {
    if constexpr (requires { W::unpack(wp[0], flip); })
      p[j] = W::dot(W::unpack(wp[jj[j]], flip), xp + jj[j] * 32);
    else
      p[j] = W::dot(W::unpack(wp[jj[j]]), xp + jj[j] * 32);
    EDGELM_WASM_PIN(p);
  }
  v128_t s = hsum4_i32(p[0], p[1], p[2], p[3]);
  v128_t dxv, cxv = wasm_i32x4_const_splat(0);
  if constexpr (Tail) {
    dxv = wasm_f32x4_make(dxs[jj[0]], dxs[jj[1]], dxs[jj[2]], dxs[jj[3]]);
    if constexpr (W::offset8) cxv = wasm_i32x4_make(cx[jj[0]], cx[jj[1]], cx[jj[2]], cx[jj[3]]);
  } else {
    dxv = wasm_v128_load(dxs);
    if constexpr (W::offset8) cxv = wasm_v128_load(cx);
  }
  if constexpr (W::offset8) s = wasm_i32x4_add(s, cxv);
  const v128_t h = gather_scales(wp[jj[0]], wp[jj[1]], wp[jj[2]], wp[jj[3]]);
  seen = wasm_u32x4_max(seen, wasm_i32x4_shl(h, 1));
  const v128_t sc = wasm_f32x4_mul(rebias_free(h), dxv);
  const v128_t v = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), sc);
  acc += wasm_f32x4_extract_lane(v, 0);
  if (!Tail || m > 1) acc += wasm_f32x4_extract_lane(v, 1);
  if (!Tail || m > 2) acc += wasm_f32x4_extract_lane(v, 2);
  if (!Tail || m > 3) acc += wasm_f32x4_extract_lane(v, 3);
  return acc;
}

template <class W>
inline float row1(const typename W::block* wr, const typename W::xt* xq, const float* dxs, const std::int32_t* cx, std::size_t nb, float acc,
                  v128_t& seen, v128_t flip) noexcept {
  v128_t sn = seen;  // a local: `seen` itself would be kept in memory across the pins
  std::size_t b = 0;
  for (; b + 4 <= nb; b += 4) acc = row1_step<W, false>(wr + b, xq + b * 32, dxs + b, cx + b, 4, acc, sn, flip);
  if (b < nb) acc = row1_step<W, true>(wr + b, xq + b * 32, dxs + b, cx + b, nb - b, acc, sn, flip);
  seen = sn;
  return acc;
}

// One token (yt = y + t * ldy, xt = x + t * ldx), rows [r0, r1), one row at a time: each row is then a
// single sequential stream through the weights. (Neighbouring rows interleaved in one pass defeat the
// hardware prefetchers, 2-3x less bandwidth; 2 or 4 rows far apart in one pass, sharing the activation
// loads, measured 5-15% slower than this.)
// flip, coff: the weight policy's unpack mask and activation-sum factor (the dot_add q8_0 decode's; see wda).
template <class W, class P>
inline void matmul_decode(float* yt, const matrix<P>& w, const block_q8_0* xt, std::uint32_t r0, std::uint32_t r1,
                          v128_t flip = wasm_i32x4_const_splat(0), std::int16_t coff = -8) noexcept {
  const std::size_t nb = w.blocks_per_row();
  alignas(16) typename W::xt xq[kc_decode * 32];
  alignas(16) float dxs[kc_decode];
  alignas(16) std::int32_t cx[kc_decode];
  for (std::size_t c0 = 0; c0 < nb; c0 += kc_decode) {
    const std::size_t nbc = nb - c0 < kc_decode ? nb - c0 : kc_decode;
    const block_q8_0* xs[1] = {xt + c0};
    prep_x<W, 1>(xs, nbc, xq, dxs, cx, 0x1p112f, coff);
    for (std::uint32_t r = r0; r < r1; ++r) {
      const float a0 = c0 != 0 ? yt[r] : 0.0f;
      v128_t seen = wasm_i32x4_const_splat(0);
      float a = row1<W>(w.row(r) + c0, xq, dxs, cx, nbc, a0, seen, flip);
      if (any_special(seen)) {  // inf / NaN scales: the reference's steps block by block (0 + t = t exactly, and
        a = a0;                 // the running sum is never -0), so the same value as the row in one call
        for (std::size_t b = 0; b < nbc; ++b) a += kernels::scalar::dot(w.row(r) + c0 + b, xt + c0 + b, 32);
      }
      yt[r] = a;
    }
  }
}

// ---- prefill ----

// The scales of blocks [0, nb) of one row as f32 (dw has room for nb rounded up to 4).
template <class B>
inline void row_scales(const B* wr, std::size_t nb, float* dw) noexcept {
  const std::size_t last = nb - 1;
  for (std::size_t b = 0; b < nb; b += 4) {
    const std::size_t b1 = b + 1 < last ? b + 1 : last, b2 = b + 2 < last ? b + 2 : last, b3 = b + 3 < last ? b + 3 : last;
    wasm_v128_store(dw + b, half_hi_to_f32(gather_scales(wr[b], wr[b1], wr[b2], wr[b3])));
  }
}

// ---- prefill, transposed activations ----
// The activations of 4G tokens are laid out so that one instruction gives four tokens at once: for
// block b, group g (tokens 4g .. 4g+3) and step e of a block, one vector [t0 | t1 | t2 | t3] holding
// each token's elements of that step in its 32-bit lane. The weight elements of the step (4 bytes) are
// broadcast to all four lanes (v128.load32_splat from the row's block unpacked once per chunk), so each
// lane sums its own token's block: no horizontal reductions, each broadcast serves G groups and each
// activation vector R rows. Two kernels (policies below):
//  - i16 (SIMD128, q4_0 and q8_0): a step is an element pair (2e, 2e+1) as int16; i32x4.dot_i16x8_s
//    adds the pair's two products in the token's lane, and the 16 steps of a block add up in int32.
//  - relaxed (q4_0 with EDGELM_WASM_RELAXED_DOT): a step is an element quad (4e .. 4e+3) as int8 and
//    nibbles 0..15 as the 7-bit operand; the relaxed dot gives the token's two pair sums in i16 lanes
//    2k, 2k+1, the 8 steps of a block add up in i16 (|.| <= 8 * 2 * 15 * 128 = 30720: exact), and one
//    i32x4.extadd_pairwise_i16x8_s per block gives the token's block sum in lane k. Half the
//    multiply-add instructions of the i16 kernel and half its activation bytes (measured under node 20
//    with relaxed SIMD enabled: q4_0 prefill matmuls 1.6-1.8x the previous relaxed 4 rows x 8 tokens
//    tile with per-token reductions, ~1.4x the i16 kernel).
// Either way the block sums are exact integers, and the float steps per (row, token) are the
// reference's, acc + float(block sum) * (d_w * d_x), block after block, whatever the tile.

// One 16-byte vector of each of 4 tokens (a .. d: tokens 0 .. 3, the same steps) -> 64 bytes at o: vector j
// holds dword j of every token, token k in lane k (the transposed layout of both kernels below).
inline void interleave4(v128_t a, v128_t b, v128_t c, v128_t d, void* o) noexcept {
  unsigned char* p = static_cast<unsigned char*>(o);
  const v128_t ab0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), ab1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
  const v128_t cd0 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), cd1 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
  wasm_v128_store(p, wasm_i64x2_shuffle(ab0, cd0, 0, 2));
  wasm_v128_store(p + 16, wasm_i64x2_shuffle(ab0, cd0, 1, 3));
  wasm_v128_store(p + 32, wasm_i64x2_shuffle(ab1, cd1, 0, 2));
  wasm_v128_store(p + 48, wasm_i64x2_shuffle(ab1, cd1, 1, 3));
}

// The transposed layout of ng groups of 4 tokens, blocks [0, nb): group g of block b at xp + (b * ng + g) * 128
// elements, S slices of a block each (load(qs, s): slice s of one token as a vector), interleaved by interleave4.
template <std::size_t S, class X, class Load>
inline void prep_groups(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, X* xp, Load load) noexcept {
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      const block_q8_0& x0 = xs[4 * g][b];
      const block_q8_0& x1 = xs[4 * g + 1][b];
      const block_q8_0& x2 = xs[4 * g + 2][b];
      const block_q8_0& x3 = xs[4 * g + 3][b];
      X* o = xp + (b * ng + g) * 128;
      for (std::size_t s = 0; s < S; ++s) interleave4(load(x0.qs, s), load(x1.qs, s), load(x2.qs, s), load(x3.qs, s), o + (128 / S) * s);
    }
}

struct tx_i16 {  // the i16 kernel's steps
  using xt = std::int16_t;
  using wt = std::int16_t;
  static constexpr std::size_t wstep = 2, xstep = 8;  // elements per step: weights, one group's vector
  static v128_t init(v128_t c) noexcept { return c; }
  static v128_t step(v128_t a, v128_t wv, v128_t xv) noexcept { return wasm_i32x4_add(a, wasm_i32x4_dot_i16x8(wv, xv)); }
  static v128_t finish(v128_t a, v128_t) noexcept { return a; }
  // Blocks [0, nb) of ng groups of 4 tokens (xs[t] + b): group g of block b at xp + (b * ng + g) * 128,
  // elements 8s .. 8s+7 (pairs 4s .. 4s+3) widened to int16.
  static void prep(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, std::int16_t* xp) noexcept {
    prep_groups<4>(xs, ng, nb, xp, [](const std::int8_t* q, std::size_t s) noexcept { return wasm_i16x8_load8x8(q + 8 * s); });
  }
  // Tiles: 3 rows x 2 groups of 4 tokens (2 rows was 5% slower, 4 the same, 6 spills); chunks of at most
  // 24 blocks and 384 blocks x tokens (the transposed activations: 64 bytes each, 24 KB).
  static constexpr std::size_t rows = 3, groups = 2, kc = 24, budget = 384;
};

struct tq8 : tx_i16 {
  using block = block_q8_0;
  static constexpr bool offset8 = false;
  static void unpack(const block_q8_0& b, std::int16_t* o, v128_t) noexcept {
    wasm_v128_store(o, wasm_i16x8_load8x8(b.qs));
    wasm_v128_store(o + 8, wasm_i16x8_load8x8(b.qs + 8));
    wasm_v128_store(o + 16, wasm_i16x8_load8x8(b.qs + 16));
    wasm_v128_store(o + 24, wasm_i16x8_load8x8(b.qs + 24));
  }
};
struct tq4 : tx_i16 {
  using block = block_q4_0;
  static constexpr bool offset8 = true;  // nibbles 0..15; the block sum gets -8 * sum(x) added
  static void unpack(const block_q4_0& b, std::int16_t* o, v128_t) noexcept {
    const v128_t lo = wasm_u16x8_load8x8(b.qs), hi = wasm_u16x8_load8x8(b.qs + 8);
    const v128_t m = wasm_i16x8_const_splat(0x0F);
    wasm_v128_store(o, wasm_v128_and(lo, m));
    wasm_v128_store(o + 8, wasm_v128_and(hi, m));
    wasm_v128_store(o + 16, wasm_u16x8_shr(lo, 4));
    wasm_v128_store(o + 24, wasm_u16x8_shr(hi, 4));
  }
};

#if defined(EDGELM_WASM_RELAXED_DOT) || defined(EDGELM_WASM_DOT_ADD)
// The int8 quad layout of the relaxed kernels: quad e (elements 4e .. 4e+3) of token k at bytes 16e + 4k of
// its group (elements 16h .. 16h+15: quads 4h .. 4h+3).
inline void prep_quads(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, std::int8_t* xp) noexcept {
  prep_groups<2>(xs, ng, nb, xp, [](const std::int8_t* q, std::size_t h) noexcept { return wasm_v128_load(q + 16 * h); });
}
#endif

#if defined(EDGELM_WASM_RELAXED_DOT)
struct rq4 {  // the relaxed kernel (q4_0)
  using block = block_q4_0;
  using xt = std::int8_t;
  using wt = std::uint8_t;
  static constexpr bool offset8 = true;
  static constexpr std::size_t wstep = 4, xstep = 16;
  static v128_t init(v128_t) noexcept { return wasm_i16x8_const_splat(0); }
  static v128_t step(v128_t a, v128_t wv, v128_t xv) noexcept { return wasm_i16x8_add(a, EDGELM_WASM_RELAXED_DOT(xv, wv)); }
  static v128_t finish(v128_t a, v128_t c) noexcept { return wasm_i32x4_add(wasm_i32x4_extadd_pairwise_i16x8(a), c); }
  static void unpack(const block_q4_0& b, std::uint8_t* o, v128_t) noexcept {
    const act_i8::U n = nibbles(b);
    wasm_v128_store(o, n.lo);
    wasm_v128_store(o + 16, n.hi);
  }
  static void prep(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, std::int8_t* xp) noexcept { prep_quads(xs, ng, nb, xp); }
  // Tiles: 4 rows x 2 groups of 4 tokens (8 i16 sums; 3 x 3 was 10-15% slower, 5 x 2, 6 x 1 and 4 x 3
  // 15-25%); chunks of at most 48 blocks (a 1536-wide row whole for 16 tokens) and 768 blocks x tokens
  // (32 bytes each: 24 KB, as the i16 kernel's 384; 24 / 384 was 5-10% slower).
  static constexpr std::size_t rows = 4, groups = 2, kc = 48, budget = 768;
};
#endif

#if defined(EDGELM_WASM_DOT_ADD)
// The q8_0 kernel on i32x4.relaxed_dot_i8x16_i7x16_add_s (where dot_add_kind() says it is exact): a step is an
// element quad as int8 (activations: the signed operand), the row's quad broadcast as the 7-bit operand,
// stored as w ^ flip: flip = 0x80 where the engine reads it unsigned (w + 128; the block sum starts at
// -128 * sum(x), exact), 0 where it reads it signed (w itself). The 8 steps of a block add up in int32 in
// the instruction itself: one instruction per 16 multiply-adds.
struct dq8 {
  using block = block_q8_0;
  using xt = std::int8_t;
  using wt = std::uint8_t;
  static constexpr bool offset8 = true;  // the block sums start at cx (= coff * sum(x), coff = -128 or 0)
  static constexpr std::size_t wstep = 4, xstep = 16;
  static v128_t init(v128_t c) noexcept { return c; }
  static v128_t step(v128_t a, v128_t wv, v128_t xv) noexcept { return EDGELM_WASM_DOT_ADD(xv, wv, a); }
  static v128_t finish(v128_t a, v128_t) noexcept { return a; }
  static void unpack(const block_q8_0& b, std::uint8_t* o, v128_t flip) noexcept {
    wasm_v128_store(o, wasm_v128_xor(wasm_v128_load(b.qs), flip));
    wasm_v128_store(o + 16, wasm_v128_xor(wasm_v128_load(b.qs + 16), flip));
  }
  static void prep(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, std::int8_t* xp) noexcept { prep_quads(xs, ng, nb, xp); }
  static constexpr std::size_t rows = 5, groups = 2, kc = 48, budget = 768;
};

// 1: the engine computes i32x4.relaxed_dot_i8x16_i7x16_add_s exactly with b unsigned, 2: exactly with b
// signed, 0: neither (saturating pair sums, or anything else): checked on four lanes whose results tell the
// three apart (a = 127 x b = 255 saturates pmaddubsw's pairs; b's top bit set in every lane but one). The
// operands come through memory the optimizers cannot see into, so the instruction itself runs.
inline int dot_add_kind() noexcept {
  alignas(16) static constexpr std::int8_t ka[16] = {127, 127, 127, 127, -128, -128, -128, -128, 1, 2, 3, 4, -1, 5, -7, 100};
  alignas(16) static constexpr std::uint8_t kb[16] = {255, 255, 255, 255, 128, 128, 128, 128, 200, 100, 7, 129, 0, 255, 1, 127};
  alignas(16) static constexpr std::int32_t kc[4] = {1000, -1000, 7, -3};
  const void* pa = ka;
  const void* pb = kb;
  const void* pc = kc;
  __asm__ volatile("" : "+r"(pa), "+r"(pb), "+r"(pc));
  alignas(16) std::int32_t r[4];
  wasm_v128_store(r, EDGELM_WASM_DOT_ADD(wasm_v128_load(pa), wasm_v128_load(pb), wasm_v128_load(pc)));
  const std::int32_t u[4] = {130540, -66536, 944, 13965}, s[4] = {492, 64536, -336, 12685};
  bool is_u = true, is_s = true;
  for (int k = 0; k < 4; ++k) {
    is_u = is_u && r[k] == u[k];
    is_s = is_s && r[k] == s[k];
  }
  return is_u ? 1 : is_s ? 2 : 0;
}
#endif

// The kernel of a weight policy.
template <class W>
struct tx_for;
template <>
struct tx_for<wq8> {
  using type = tq8;
};
template <>
struct tx_for<wq4> {
  using type = tq4;
};
#if defined(EDGELM_WASM_RELAXED_DOT)
template <>
struct tx_for<wq4_relaxed> {
  using type = rq4;
};
#endif
template <class W>
using tx_of = typename tx_for<W>::type;

// Super-tiles of up to tx_tokens tokens; a row group's blocks are unpacked once per chunk and serve
// every token of the super-tile.
inline constexpr std::size_t tx_tokens = 32;

// dx[b * 4ng + t] = fp16(d) as f32, cx[b * 4ng + t] = -8 * sum of the block's quants (Offset8 only), for
// blocks [0, nb) of the 4ng tokens xs[t] + b.
// (cx = coff * sum, coff an int16: q4_0's -8, dq8's -128 or 0)
template <bool Offset8>
inline void prep_scales(const block_q8_0* const* xs, std::size_t ng, std::size_t nb, float* dx, std::int32_t* cx, std::int16_t coff) noexcept {
  const std::size_t T = 4 * ng;
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      const block_q8_0& xb = xs[t][b];
      dx[b * T + t] = fp16_to_f32(xb.d);
      if constexpr (Offset8) cx[b * T + t] = scaled_sum(xb, coff);
    }
}

// R rows (unpacked blocks wb + i * K::kc * 32, f32 scales dw + i * K::kc) . G groups of 4 tokens
// (xp, dx, cx at the first group; per block xs elements, ds floats further), blocks [0, nb).
// acc[i * G + g] holds the running sums of row i, group g: the reference's float steps,
// acc + float(block sum) * (d_w * d_x), block after block. The integer sums get cx (q4_0's
// -8 * sum(x), exact).
template <class K, std::size_t R, std::size_t G>
inline void tx_rows(const typename K::wt* wb, const float* dw, const typename K::xt* xp, std::size_t xs, const float* dx, const std::int32_t* cx,
                    std::size_t ds, std::size_t nb, v128_t* acc) noexcept {
  for (std::size_t b = 0; b < nb; ++b) {
    v128_t a[R][G];
    for (std::size_t g = 0; g < G; ++g) {
      const v128_t c = K::offset8 ? wasm_v128_load(cx + b * ds + 4 * g) : wasm_i32x4_const_splat(0);
      for (std::size_t i = 0; i < R; ++i) a[i][g] = K::init(c);
    }
    const typename K::xt* px = xp + b * xs;
    const typename K::wt* pw = wb + b * 32;
    const typename K::wt* const pe = pw + 32;
    // (pointer steps, so that V8 folds the row and group offsets into the loads; one step per
    // iteration: V8 issues a basic block's loads first, and more would spill)
    for (; pw != pe; pw += K::wstep, px += K::xstep) {
      v128_t xv[G];
      for (std::size_t g = 0; g < G; ++g) xv[g] = wasm_v128_load(px + g * 128);
      for (std::size_t i = 0; i < R; ++i) {
        const v128_t wv = wasm_v128_load32_splat(pw + i * (K::kc * 32));
        for (std::size_t g = 0; g < G; ++g) a[i][g] = K::step(a[i][g], wv, xv[g]);
      }
    }
    for (std::size_t g = 0; g < G; ++g) {
      const v128_t dxv = wasm_v128_load(dx + b * ds + 4 * g);
      const v128_t c = K::offset8 ? wasm_v128_load(cx + b * ds + 4 * g) : wasm_i32x4_const_splat(0);
      for (std::size_t i = 0; i < R; ++i) {
        const v128_t sc = wasm_f32x4_mul(wasm_v128_load32_splat(dw + i * K::kc + b), dxv);
        acc[i * G + g] = wasm_f32x4_add(acc[i * G + g], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(K::finish(a[i][g], c)), sc));
      }
    }
  }
}

// Rows ri[0..R) (stored: the first nr) x groups [g0, g0 + G) of a super-tile whose tokens start at t0
// (nt valid): the running sums come from y (unless first) and go back to y.
template <class K, std::size_t R, std::size_t G>
inline void tx_tile(float* y, std::size_t ldy, const std::uint32_t* ri, std::size_t nr, std::size_t t0, std::size_t nt, std::size_t g0, bool first,
                    const typename K::wt* wb, const float* dw, const typename K::xt* xp, std::size_t ng, const float* dx, const std::int32_t* cx,
                    std::size_t nb) noexcept {
  v128_t acc[R * G];
  for (std::size_t i = 0; i < R; ++i)
    for (std::size_t g = 0; g < G; ++g) {
      const std::size_t tt = 4 * (g0 + g);
      if (first || tt >= nt) {  // (tt >= nt: a padding group, see matmul_tx)
        acc[i * G + g] = wasm_f32x4_const_splat(0.0f);
      } else {
        const float* yc = y + (t0 + tt) * ldy + ri[i];
        acc[i * G + g] = wasm_f32x4_make(yc[0], tt + 1 < nt ? yc[ldy] : 0.0f, tt + 2 < nt ? yc[2 * ldy] : 0.0f, tt + 3 < nt ? yc[3 * ldy] : 0.0f);
      }
    }
  tx_rows<K, R, G>(wb, dw, xp + g0 * 128, ng * 128, dx + 4 * g0, cx + 4 * g0, 4 * ng, nb, acc);
  for (std::size_t i = 0; i < nr; ++i)
    for (std::size_t g = 0; g < G; ++g) {
      const std::size_t tt = 4 * (g0 + g);
      if (tt >= nt) continue;
      float* yc = y + (t0 + tt) * ldy + ri[i];
      const v128_t v = acc[i * G + g];
      yc[0] = wasm_f32x4_extract_lane(v, 0);
      if (tt + 1 < nt) yc[ldy] = wasm_f32x4_extract_lane(v, 1);
      if (tt + 2 < nt) yc[2 * ldy] = wasm_f32x4_extract_lane(v, 2);
      if (tt + 3 < nt) yc[3 * ldy] = wasm_f32x4_extract_lane(v, 3);
    }
}

// Tokens [t0, t0 + nt), 2 <= nt <= tx_tokens (padded to whole groups of 4 by repeating token t0 + nt - 1,
// whose extra results are not stored), rows [r0, r1) in groups of K::rows (the last repeats row r1 - 1;
// nothing extra is stored), groups of tokens in tiles of K::groups (the rest in a smaller tile), the
// reduction in equal chunks of at most K::kc blocks. flip and coff: the kernel's unpack mask and offset factor.
template <class K, class P>
inline void matmul_tx(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t t0, std::size_t nt,
                      std::uint32_t r0, std::uint32_t r1, v128_t flip, std::int16_t coff) noexcept {
  constexpr std::size_t R = K::rows, G = K::groups;
  static_assert(G >= 1 && G <= 3, "tiles of 1 to 3 groups");
  // groups of 4 tokens, rounded up to whole tiles when G = 2 (a padding group repeats the last token and stores
  // nothing: one tile shape less in the binary, the single-thread .wasm's size budget)
  const std::size_t ng = G == 2 ? ((nt + 7) / 8) * 2 : (nt + 3) / 4;
  const std::size_t nb = w.blocks_per_row();
  const std::size_t kmax = K::budget / (4 * ng) < K::kc ? K::budget / (4 * ng) : K::kc;
  const std::size_t nch = (nb + kmax - 1) / kmax, kc = (nb + nch - 1) / nch;
  alignas(16) typename K::xt xp[K::budget * 32];
  alignas(16) float dx[K::budget];
  alignas(16) std::int32_t cx[K::budget];
  alignas(16) float dw[R * K::kc];
  alignas(16) typename K::wt wb[R * K::kc * 32];
  for (std::size_t c0 = 0; c0 < nb; c0 += kc) {
    const std::size_t nbc = nb - c0 < kc ? nb - c0 : kc;
    const block_q8_0* xs[tx_tokens];
    for (std::size_t t = 0; t < 4 * ng; ++t) xs[t] = x + (t0 + (t < nt ? t : nt - 1)) * ldx + c0;
    K::prep(xs, ng, nbc, xp);
    prep_scales<K::offset8>(xs, ng, nbc, dx, cx, coff);
    for (std::uint32_t r = r0; r < r1; r += R) {
      std::uint32_t ri[R];
      for (std::size_t i = 0; i < R; ++i) ri[i] = r + i < r1 ? r + static_cast<std::uint32_t>(i) : r1 - 1;
      const std::size_t nr = r1 - r < R ? r1 - r : R;
      for (std::size_t i = 0; i < R; ++i) {
        const typename K::block* wr = w.row(ri[i]) + c0;
        row_scales(wr, nbc, dw + i * K::kc);
        for (std::size_t b = 0; b < nbc; ++b) K::unpack(wr[b], wb + i * (K::kc * 32) + b * 32, flip);
      }
      std::size_t g = 0;
      for (; g + G <= ng; g += G) tx_tile<K, R, G>(y, ldy, ri, nr, t0, nt, g, c0 == 0, wb, dw, xp, ng, dx, cx, nbc);
      if constexpr (G == 3) {
        if (ng - g == 2) tx_tile<K, R, 2>(y, ldy, ri, nr, t0, nt, g, c0 == 0, wb, dw, xp, ng, dx, cx, nbc);
      }
      if (G != 2 && ng - g == 1) tx_tile<K, R, 1>(y, ldy, ri, nr, t0, nt, g, c0 == 0, wb, dw, xp, ng, dx, cx, nbc);
    }
  }
}

// Super-tiles of up to 32 tokens; a last single token goes to decode (a padded slot costs about as
// much as the decode of one token).
// W: the decode policy, K: the prefill kernel (tx_of<W> by default); flip / coff their unpack mask and offset
// factor (q4_0: -8; the dot_add q8_0 kernels' -128 / 0).
template <class W, class P, class K = tx_of<W>>
inline void matmul_q(float* y, std::size_t ldy, const matrix<P>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1, v128_t flip = wasm_i32x4_const_splat(0), std::int16_t coff = -8) noexcept {
  if (r0 >= r1) return;
  if (w.blocks_per_row() == 0) {
    for (std::size_t t = 0; t < n; ++t)
      for (std::uint32_t r = r0; r < r1; ++r) y[t * ldy + r] = 0.0f;
    return;
  }
  std::size_t t = 0;
  // 32 tokens when their chunk holds a whole row, else 16: a chunk boundary (the running sums through y)
  // costs more than unpacking the weights for 16 tokens more.
  const std::size_t nb = w.blocks_per_row();
  const std::size_t tmax = nb <= K::kc && nb * tx_tokens <= K::budget ? tx_tokens : tx_tokens / 2;
  while (t < n) {
    std::size_t nt = n - t < tmax ? n - t : tmax;
    if (nt % 4 == 1 && nt > 1) --nt;  // ... + 1 by decode
    if (nt >= 2) {
      matmul_tx<K>(y, ldy, w, x, ldx, t, nt, r0, r1, flip, coff);
    } else {
      matmul_decode<W>(y + t * ldy, w, x + t * ldx, r0, r1, flip, coff);
    }
    t += nt;
  }
}

// ---- f32 ----

// Rows w[0..3] . tokens x[0..NT-1] over k elements; out[j] lane i = row i . token j.
template <std::size_t NT>
inline void f32_rows4(const float* const* w, const float* const* x, std::size_t k, v128_t* out) noexcept {
  v128_t a[NT][4];
  for (std::size_t j = 0; j < NT; ++j)
    for (int i = 0; i < 4; ++i) a[j][i] = wasm_f32x4_const_splat(0.0f);
  std::size_t e = 0;
  for (; e + 4 <= k; e += 4) {
    const v128_t w0 = wasm_v128_load(w[0] + e), w1 = wasm_v128_load(w[1] + e), w2 = wasm_v128_load(w[2] + e), w3 = wasm_v128_load(w[3] + e);
    for (std::size_t j = 0; j < NT; ++j) {
      const v128_t xv = wasm_v128_load(x[j] + e);
      a[j][0] = wasm_f32x4_add(a[j][0], wasm_f32x4_mul(w0, xv));
      a[j][1] = wasm_f32x4_add(a[j][1], wasm_f32x4_mul(w1, xv));
      a[j][2] = wasm_f32x4_add(a[j][2], wasm_f32x4_mul(w2, xv));
      a[j][3] = wasm_f32x4_add(a[j][3], wasm_f32x4_mul(w3, xv));
    }
  }
  for (std::size_t j = 0; j < NT; ++j) out[j] = hsum4_f32(a[j][0], a[j][1], a[j][2], a[j][3]);
  for (; e < k; ++e) {
    v128_t wv = wasm_f32x4_const_splat(0.0f);
    wv = wasm_v128_load32_lane(w[0] + e, wv, 0);
    wv = wasm_v128_load32_lane(w[1] + e, wv, 1);
    wv = wasm_v128_load32_lane(w[2] + e, wv, 2);
    wv = wasm_v128_load32_lane(w[3] + e, wv, 3);
    for (std::size_t j = 0; j < NT; ++j) out[j] = wasm_f32x4_add(out[j], wasm_f32x4_mul(wv, wasm_v128_load32_splat(x[j] + e)));
  }
}

// Two tokens x four rows per pass (the last pass may repeat a token or a row; nothing extra is stored).
inline void matmul_f32(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                       std::uint32_t r1) noexcept {
  if (r0 >= r1) return;
  const std::size_t k = w.cols;
  for (std::size_t t = 0; t < n; t += 2) {
    const bool two = t + 1 < n;
    const float* xs[2] = {x + t * ldx, x + (two ? t + 1 : t) * ldx};
    for (std::uint32_t r = r0; r < r1; r += 4) {
      const std::uint32_t last = r1 - 1;
      const float* ws[4] = {w.row(r), w.row(r + 1 < last ? r + 1 : last), w.row(r + 2 < last ? r + 2 : last), w.row(r + 3 < last ? r + 3 : last)};
      v128_t out[2];
      if (two)
        f32_rows4<2>(ws, xs, k, out);
      else
        f32_rows4<1>(ws, xs, k, out);
      const std::uint32_t m = r1 - r < 4 ? r1 - r : 4;
      for (std::size_t j = 0; j < (two ? 2u : 1u); ++j) {
        alignas(16) float a[4];
        wasm_v128_store(a, out[j]);
        float* yt = y + (t + j) * ldy + r;
        for (std::uint32_t i = 0; i < m; ++i) yt[i] = a[i];
      }
    }
  }
}

// ---- activation quantization ----

// Blocks of 32 floats -> q8_0, byte-identical to q8_0::quantize_block (ggml's quantize_row_q8_0_ref):
//  - amax: the integer max of the |x| bit patterns is the float max for every non-NaN input; a block
//    whose max is inf or NaN (the reference's NaN order effects, inf * 0) goes to the reference itself.
//  - d = amax / 127 and id = 1 / d (0 for d = 0) in scalar float, as the reference; fp16(d) by
//    edgelm::f32_to_fp16.
//  - q = round_clamp(x * id, -127, 127): pmax/pmin are exactly the reference's `v >= lo ? v : lo`,
//    `v <= hi ? v : hi` (NaN -> lo, as there: x = 0 with id = inf), then trunc, the exact fraction v - i
//    and +-1 for |frac| >= 0.5 (round half away from zero).
// (Written out without arrays of v128_t: clang 14 keeps such arrays on the shadow stack here, with a
// memcpy of the block into them.)
inline v128_t quantize4_q8_0(v128_t v, v128_t vid) noexcept {
  const v128_t s = wasm_f32x4_pmin(wasm_f32x4_const_splat(127.0f), wasm_f32x4_pmax(wasm_f32x4_const_splat(-127.0f), wasm_f32x4_mul(v, vid)));
  const v128_t t = wasm_i32x4_trunc_sat_f32x4(s);
  const v128_t frac = wasm_f32x4_sub(s, wasm_f32x4_convert_i32x4(t));
  return wasm_i32x4_add(wasm_i32x4_sub(t, wasm_f32x4_ge(frac, wasm_f32x4_const_splat(0.5f))), wasm_f32x4_le(frac, wasm_f32x4_const_splat(-0.5f)));
}
// The lane-wise max of the |x| bit patterns of one block's eight vectors (the caller reduces the lanes).
inline v128_t block_absmax_bits(const float* x) noexcept {
  const v128_t am = wasm_i32x4_const_splat(0x7FFFFFFF);
  return wasm_i32x4_max(wasm_i32x4_max(wasm_i32x4_max(wasm_v128_and(wasm_v128_load(x), am), wasm_v128_and(wasm_v128_load(x + 4), am)),
                                       wasm_i32x4_max(wasm_v128_and(wasm_v128_load(x + 8), am), wasm_v128_and(wasm_v128_load(x + 12), am))),
                        wasm_i32x4_max(wasm_i32x4_max(wasm_v128_and(wasm_v128_load(x + 16), am), wasm_v128_and(wasm_v128_load(x + 20), am)),
                                       wasm_i32x4_max(wasm_v128_and(wasm_v128_load(x + 24), am), wasm_v128_and(wasm_v128_load(x + 28), am))));
}

// The quants of one block with the reciprocal scale vid (all lanes id).
inline void quantize_qs_q8_0(const float* x, v128_t vid, std::int8_t* qs) noexcept {
  const v128_t b0 = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(quantize4_q8_0(wasm_v128_load(x), vid), quantize4_q8_0(wasm_v128_load(x + 4), vid)),
                                            wasm_i16x8_narrow_i32x4(quantize4_q8_0(wasm_v128_load(x + 8), vid), quantize4_q8_0(wasm_v128_load(x + 12), vid)));
  const v128_t b1 = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(quantize4_q8_0(wasm_v128_load(x + 16), vid), quantize4_q8_0(wasm_v128_load(x + 20), vid)),
                                            wasm_i16x8_narrow_i32x4(quantize4_q8_0(wasm_v128_load(x + 24), vid), quantize4_q8_0(wasm_v128_load(x + 28), vid)));
  wasm_v128_store(qs, b0);
  wasm_v128_store(qs + 16, b1);
}

// Four blocks: the four maxima in one vector, d = amax / 127 and id = 1 / d (0 for d = 0) as four
// IEEE divisions, fp16(d) for the normal fp16 range in SIMD (round to nearest even: (x + 0xFFF + lsb) >> 13,
// rebiased; >= 65520 is inf) and by edgelm::f32_to_fp16 for the rest (below 2^-14). A block whose max is
// inf or NaN goes to the reference (all four through q8_0::quantize_block).
inline void quantize4_blocks_q8_0(const float* x, block_q8_0* y) noexcept {
  const v128_t m0 = block_absmax_bits(x), m1 = block_absmax_bits(x + 32), m2 = block_absmax_bits(x + 64), m3 = block_absmax_bits(x + 96);
  const v128_t m01 = wasm_i32x4_max(wasm_i32x4_shuffle(m0, m1, 0, 4, 1, 5), wasm_i32x4_shuffle(m0, m1, 2, 6, 3, 7));
  const v128_t m23 = wasm_i32x4_max(wasm_i32x4_shuffle(m2, m3, 0, 4, 1, 5), wasm_i32x4_shuffle(m2, m3, 2, 6, 3, 7));
  const v128_t amax = wasm_i32x4_max(wasm_i64x2_shuffle(m01, m23, 0, 2), wasm_i64x2_shuffle(m01, m23, 1, 3));  // lane k: block k
  if (wasm_v128_any_true(wasm_i32x4_gt(amax, wasm_i32x4_const_splat(0x7F7FFFFF)))) {
    for (int k = 0; k < 4; ++k) q8_0::quantize_block(x + 32 * k, y[k]);
    return;
  }
  const v128_t d = wasm_f32x4_div(amax, wasm_f32x4_const_splat(127.0f));
  const v128_t nz = wasm_f32x4_ne(d, wasm_f32x4_const_splat(0.0f));
  const v128_t id = wasm_v128_and(wasm_f32x4_div(wasm_f32x4_const_splat(1.0f), d), nz);
  // fp16(d), d >= 0 finite
  const v128_t lsb = wasm_v128_and(wasm_u32x4_shr(d, 13), wasm_i32x4_const_splat(1));
  v128_t h = wasm_i32x4_sub(wasm_u32x4_shr(wasm_i32x4_add(wasm_i32x4_add(d, wasm_i32x4_const_splat(0xFFF)), lsb), 13), wasm_i32x4_const_splat(112 << 10));
  h = wasm_v128_bitselect(wasm_i32x4_const_splat(0x7C00), h, wasm_i32x4_gt(d, wasm_i32x4_const_splat(0x477FEFFF)));
  alignas(16) std::uint32_t hs[4];
  wasm_v128_store(hs, h);
  if (wasm_v128_any_true(wasm_i32x4_lt(d, wasm_i32x4_const_splat(0x38800000)))) {
    alignas(16) float ds[4];
    wasm_v128_store(ds, d);
    for (int k = 0; k < 4; ++k)
      if (f32_to_bits(ds[k]) < 0x38800000u) hs[k] = f32_to_fp16(ds[k]);
  }
  for (int k = 0; k < 4; ++k) y[k].d = static_cast<std::uint16_t>(hs[k]);
  quantize_qs_q8_0(x, wasm_i32x4_shuffle(id, id, 0, 0, 0, 0), y[0].qs);
  quantize_qs_q8_0(x + 32, wasm_i32x4_shuffle(id, id, 1, 1, 1, 1), y[1].qs);
  quantize_qs_q8_0(x + 64, wasm_i32x4_shuffle(id, id, 2, 2, 2, 2), y[2].qs);
  quantize_qs_q8_0(x + 96, wasm_i32x4_shuffle(id, id, 3, 3, 3, 3), y[3].qs);
}

// ---- attention (f32 KV cache) ----

// s[j] = (q . k_j) * scale for j < len, k_j = k + j * ldk, hd elements. Four keys per pass, one
// accumulator each, taking (q0 * k0 + q1 * k1) per 8-element step (four independent add chains of
// length hd / 8; V8 keeps 2 query + 8 key vectors + 4 sums in registers). Every key's score is the same
// sequence of float operations wherever it falls: the 8-element steps, one 4-element step, the lanes
// reduced as (l0 + l2) + (l1 + l3), the hd % 4 tail added in order, times scale. So a score depends only
// on q and k_j.
inline void attn_scores(const float* q, const float* k, std::size_t ldk, std::size_t hd, std::size_t len, float scale, float* s) noexcept {
  for (std::size_t j = 0; j < len; j += 4) {
    const std::size_t m = len - j < 4 ? len - j : 4;
    const float* kp[4];
    for (std::size_t i = 0; i < 4; ++i) kp[i] = k + (j + (i < m ? i : m - 1)) * ldk;
    v128_t a[4];
    for (int i = 0; i < 4; ++i) a[i] = wasm_f32x4_const_splat(0.0f);
    std::size_t d = 0;
    for (; d + 8 <= hd; d += 8) {
      const v128_t q0 = wasm_v128_load(q + d), q1 = wasm_v128_load(q + d + 4);
      for (int i = 0; i < 4; ++i)
        a[i] = wasm_f32x4_add(a[i], wasm_f32x4_add(wasm_f32x4_mul(q0, wasm_v128_load(kp[i] + d)), wasm_f32x4_mul(q1, wasm_v128_load(kp[i] + d + 4))));
    }
    if (d + 4 <= hd) {
      const v128_t q0 = wasm_v128_load(q + d);
      for (int i = 0; i < 4; ++i) a[i] = wasm_f32x4_add(a[i], wasm_f32x4_mul(q0, wasm_v128_load(kp[i] + d)));
      d += 4;
    }
    const v128_t r = hsum4_f32(a[0], a[1], a[2], a[3]);
    if (d == hd && m == 4) {
      wasm_v128_store(s + j, wasm_f32x4_mul(r, wasm_f32x4_splat(scale)));
    } else {
      alignas(16) float out[4];
      wasm_v128_store(out, r);
      for (std::size_t i = 0; i < m; ++i) {
        float v = out[i];
        for (std::size_t e = d; e < hd; ++e) v += q[e] * kp[i][e];
        s[j + i] = v * scale;
      }
    }
  }
}

// o[c] = sum_j p[j] * v_j[c] for c < hd, v_j = v + j * ldv: keys in pairs, acc += (p_j v_j + p_j+1 v_j+1)
// (an odd last key alone), the same for every column c (register blocks of 4 or 1 vectors, a scalar tail).
template <std::size_t NV>
inline void attn_values_block(float* o, const float* p, const float* v, std::size_t ldv, std::size_t len) noexcept {
  v128_t a[NV];
  for (std::size_t i = 0; i < NV; ++i) a[i] = wasm_f32x4_const_splat(0.0f);
  std::size_t j = 0;
  for (; j + 2 <= len; j += 2) {
    const v128_t p0 = wasm_v128_load32_splat(p + j), p1 = wasm_v128_load32_splat(p + j + 1);
    const float* v0 = v + j * ldv;
    const float* v1 = v0 + ldv;
    for (std::size_t i = 0; i < NV; ++i)
      a[i] = wasm_f32x4_add(a[i], wasm_f32x4_add(wasm_f32x4_mul(p0, wasm_v128_load(v0 + 4 * i)), wasm_f32x4_mul(p1, wasm_v128_load(v1 + 4 * i))));
  }
  if (j < len) {
    const v128_t p0 = wasm_v128_load32_splat(p + j);
    const float* v0 = v + j * ldv;
    for (std::size_t i = 0; i < NV; ++i) a[i] = wasm_f32x4_add(a[i], wasm_f32x4_mul(p0, wasm_v128_load(v0 + 4 * i)));
  }
  for (std::size_t i = 0; i < NV; ++i) wasm_v128_store(o + 4 * i, a[i]);
}
inline void attn_values(float* o, const float* p, const float* v, std::size_t ldv, std::size_t hd, std::size_t len) noexcept {
  std::size_t c = 0;
  for (; c + 16 <= hd; c += 16) attn_values_block<4>(o + c, p, v + c, ldv, len);
  for (; c + 4 <= hd; c += 4) attn_values_block<1>(o + c, p, v + c, ldv, len);
  for (; c < hd; ++c) {
    float acc = 0.0f;
    std::size_t j = 0;
    for (; j + 2 <= len; j += 2) acc += p[j] * v[j * ldv + c] + p[j + 1] * v[(j + 1) * ldv + c];
    if (j < len) acc += p[j] * v[j * ldv + c];
    o[c] = acc;
  }
}

}  // namespace detail

// Activations of a quantized product: n floats -> q8_0 blocks, byte-identical to q8_0::quantize_row
// (the last block zero-padded when n is not a multiple of 32), four blocks at a time: 2x the scalar code.
// The last 1-4 blocks when there are not four whole ones go through the same code from a zero-padded copy
// (a zero-padded block is what the reference quantizes too).
inline void quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept {
  const std::size_t blocks = (n + 31) / 32;
  std::size_t b = 0;
  for (; b + 4 <= n / 32; b += 4) detail::quantize4_blocks_q8_0(x + b * 32, y + b);
  if (b < blocks) {
    alignas(16) float t[128] = {};
    for (std::size_t e = b * 32; e < n; ++e) t[e - b * 32] = x[e];
    block_q8_0 o[4];
    detail::quantize4_blocks_q8_0(t, o);
    for (std::size_t k = 0; b + k < blocks; ++k) y[b + k] = o[k];
  }
}

// Causal attention items [i0, i1) over an f32 KV cache (kernels::basic_kernels::attention's contract;
// each item computed alone): scores, softmax(s, len) by the caller's `softmax` (scaling s to the
// probabilities), then the weighted sum of values.
template <class Softmax>
inline void attention(const attention_args<float>& a, std::size_t i0, std::size_t i1, float* scratch, float scale, Softmax&& softmax) noexcept {
  for (std::size_t i = i0; i < i1; ++i) {
    const std::size_t t = i / a.n_heads, h = i % a.n_heads;
    const std::size_t len = a.pos + t + 1;
    const float* q = a.q + t * a.ld_q + h * a.head_dim;
    const std::size_t kv_off = (h / a.kv_mul) * a.head_dim;
    detail::attn_scores(q, a.k + kv_off, a.kv_dim, a.head_dim, len, scale, scratch);
    softmax(scratch, len);
    detail::attn_values(a.out + t * a.ld_out + h * a.head_dim, scratch, a.v + kv_off, a.kv_dim, a.head_dim, len);
  }
}

// y[t * ldy + r] = W.row(r) . x_t for t < n, r0 <= r < r1 (kernels::basic_kernels::matmul's contract).
inline bool matmul(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
  detail::matmul_f32(y, ldy, w, x, ldx, n, r0, r1);
  return true;
}
inline bool matmul(float* y, std::size_t ldy, const matrix<q8_0>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
#if defined(EDGELM_WASM_DOT_ADD)
  if (const int k = detail::dot_add_kind()) {
    const v128_t flip = k == 1 ? wasm_i8x16_const_splat(static_cast<std::int8_t>(0x80)) : wasm_i32x4_const_splat(0);
    const auto coff = static_cast<std::int16_t>(k == 1 ? -128 : 0);
    detail::matmul_q<detail::wda8, q8_0, detail::dq8>(y, ldy, w, x, ldx, n, r0, r1, flip, coff);
    return true;
  }
#endif
  detail::matmul_q<detail::wq8>(y, ldy, w, x, ldx, n, r0, r1);
  return true;
}
inline bool matmul(float* y, std::size_t ldy, const matrix<q4_0>& w, const block_q8_0* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                   std::uint32_t r1) noexcept {
#if defined(EDGELM_WASM_DOT_ADD)
  // decode on dot_add on every engine: nibbles are its 7-bit operand, exact everywhere (see wda)
  detail::matmul_q<detail::wda4, q4_0, detail::tx_of<detail::wq4_fast>>(y, ldy, w, x, ldx, n, r0, r1);
#else
  detail::matmul_q<detail::wq4_fast>(y, ldy, w, x, ldx, n, r0, r1);
#endif
  return true;
}

#else  // no SIMD128: nothing here (the caller computes it)

inline const char* isa_name() noexcept { return nullptr; }
inline bool matmul(float*, std::size_t, const matrix<f32>&, const float*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }
inline bool matmul(float*, std::size_t, const matrix<q8_0>&, const block_q8_0*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }
inline bool matmul(float*, std::size_t, const matrix<q4_0>&, const block_q8_0*, std::size_t, std::size_t, std::uint32_t, std::uint32_t) noexcept { return false; }

#undef EDGELM_WASM_PIN
#endif

}  // namespace edgelm::backends::wasm
