// edgelm/kernels/scalar.hpp - the readable reference of every op, and the oracle SIMD backends are
// tested against. Float operations are done in the same order as llama2.c's run.c, so greedy outputs
// match it token for token. Products go through detail::no_contract: GCC's default -ffp-contract=fast
// would otherwise fuse some of them into FMAs depending on how a call was inlined, and a value would then
// depend on the batch it ran in (and differ from run.c, which is built without FMA).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "../core/half.hpp"
#include "../precision/block_util.hpp"
#include "../precision/f32.hpp"
#include "../precision/ggml_quants.hpp"
#include "../precision/q4_0.hpp"
#include "../precision/q8_0.hpp"

namespace edgelm {

// A row-major weight matrix (rows x cols) in precision P. Each row takes blocks_per_row() =
// ceil(cols / block_size) blocks; when cols is not a whole number of blocks (a converted copy, e.g. Q8_0
// rows of 172 elements) the last block of each row is zero-padded, and the activations it is multiplied
// with are zero-padded the same way, so padding adds nothing to a dot product. Tensors bound in place from
// a file always have whole blocks (GGUF requires it), so the stride is then the file's row length.
template <class P>
struct matrix {
  const typename P::block_type* data = nullptr;
  std::uint32_t rows = 0;
  std::uint32_t cols = 0;
  // Optional second copy of the same weights in a kernel policy's own layout (K::pack, made at load
  // when it makes that policy faster); `packing` names the layout (0: none). `data` stays valid either
  // way, so a kernel that does not know the layout uses the rows.
  const std::byte* packed = nullptr;
  std::uint32_t packing = 0;
  static constexpr std::size_t blocks_per_row(std::size_t cols) noexcept { return (cols + P::block_size - 1) / P::block_size; }
  std::size_t blocks_per_row() const noexcept { return blocks_per_row(cols); }
  const typename P::block_type* row(std::uint32_t r) const noexcept { return data + std::size_t{r} * blocks_per_row(); }
};

// The arguments of the attention op: n queries at positions pos .. pos + n - 1 against one layer's KV
// cache. KV is float (f32 cache) or std::uint16_t (fp16 bits, an f16 cache).
template <class KV>
struct attention_args {
  float* out = nullptr;           // (n, n_heads * head_dim), row stride ld_out
  std::size_t ld_out = 0;
  const float* q = nullptr;       // (n, n_heads * head_dim), already rotated, row stride ld_q
  std::size_t ld_q = 0;
  const KV* k = nullptr;          // (context, kv_dim): this layer's keys, rows 0 .. pos + n - 1 written
  const KV* v = nullptr;          // (context, kv_dim)
  std::uint32_t kv_dim = 0;       // n_kv_heads * head_dim
  std::uint32_t head_dim = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t kv_mul = 1;       // query heads per KV head (GQA)
  std::uint32_t pos = 0;          // position of query 0; query t sees keys 0 .. pos + t (causal)
  std::uint32_t n = 0;            // queries
};

namespace kernels {

// Ops shared by every backend. `Derived` supplies `dot` overloads; a SIMD backend derives from
// basic_kernels<itself> and overrides what it speeds up, inheriting the rest.
template <class Derived>
struct basic_kernels {
  // Weight repacking at load (see matrix::packed): the bytes of this policy's own layout of w on this
  // CPU, 0 when it has none (the default: products read the rows in place); pack writes it to dst
  // (packed_bytes(w) long) and returns the layout id to store in w.packing. The layout must pack rows in
  // groups of packed_row_group, a matrix's copy being its row slices' copies (slices at multiples of
  // the group) one after the other, so that a loader can pack a large matrix slice by slice.
  static constexpr std::uint32_t packed_row_group = 0;
  template <class P>
  static std::size_t packed_bytes(const matrix<P>&) noexcept {
    return 0;
  }
  template <class P>
  static std::uint32_t pack(const matrix<P>&, std::byte*) noexcept {
    return 0;
  }

  // f32 . f32, summed left to right (run.c's order).
  static float dot(const float* w, const float* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t j = 0; j < n; ++j) s += detail::no_contract(w[j] * x[j]);
    return s;
  }

  // q8_0 weights . q8_0 activations over n elements (n a multiple of 32), as ggml's
  // ggml_vec_dot_q8_0_q8_0: an exact int32 sum per block, scaled by d_w * d_x in float, summed in order.
  static float dot(const block_q8_0* w, const block_q8_0* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 32; ++b) {
      std::int32_t acc = 0;
      for (std::size_t j = 0; j < 32; ++j) acc += std::int32_t{w[b].qs[j]} * std::int32_t{x[b].qs[j]};
      s += detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d)));
    }
    return s;
  }

  // q4_0 weights . q8_0 activations over n elements (n a multiple of 32), as ggml's
  // ggml_vec_dot_q4_0_q8_0: weight element j is the low nibble of qs[j], j + 16 the high one, minus 8.
  static float dot(const block_q4_0* w, const block_q8_0* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 32; ++b) {
      std::int32_t acc = 0;
      for (std::size_t j = 0; j < 16; ++j) {
        acc += ((w[b].qs[j] & 0x0F) - 8) * std::int32_t{x[b].qs[j]};
        acc += ((w[b].qs[j] >> 4) - 8) * std::int32_t{x[b].qs[j + 16]};
      }
      s += detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d)));
    }
    return s;
  }

  // The other ggml formats (ggml_quants.hpp), each as an exact int32 sum per (sub-)block scaled in float.
  // q5_0 . q8_0: 5-bit levels (nibble | bit j of qh << 4) - 16.
  static float dot(const block_q5_0* w, const block_q8_0* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 32; ++b) {
      std::uint32_t qh;
      std::memcpy(&qh, w[b].qh, 4);
      std::int32_t acc = 0;
      for (std::size_t j = 0; j < 16; ++j) {
        acc += (((w[b].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16) * std::int32_t{x[b].qs[j]};
        acc += (((w[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16) * std::int32_t{x[b].qs[j + 16]};
      }
      s += detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * fp16_to_f32(x[b].d)));
    }
    return s;
  }
  // q4_1 . q8_sum: (d_w * d_x) * sum(level * q) + m_w * s_x per block.
  static float dot(const block_q4_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 32; ++b) {
      std::int32_t acc = 0;
      for (std::size_t j = 0; j < 16; ++j) acc += (w[b].qs[j] & 0x0F) * std::int32_t{x[b].qs[j]} + (w[b].qs[j] >> 4) * std::int32_t{x[b].qs[j + 16]};
      s += detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * x[b].d)) + detail::no_contract(fp16_to_f32(w[b].m) * x[b].s);
    }
    return s;
  }
  // q5_1 . q8_sum.
  static float dot(const block_q5_1* w, const block_q8_sum* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 32; ++b) {
      std::uint32_t qh;
      std::memcpy(&qh, w[b].qh, 4);
      std::int32_t acc = 0;
      for (std::size_t j = 0; j < 16; ++j) {
        acc += ((w[b].qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) * std::int32_t{x[b].qs[j]};
        acc += ((w[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) * std::int32_t{x[b].qs[j + 16]};
      }
      s += detail::no_contract(static_cast<float>(acc) * (fp16_to_f32(w[b].d) * x[b].d)) + detail::no_contract(fp16_to_f32(w[b].m) * x[b].s);
    }
    return s;
  }
  // q4_k . q8_k: per super-block d * sum_j scale_j * sum(level * q) - dmin * sum_j min_j * sum(q of j), the 8
  // sub-blocks j of 32 elements being the low (even j) and high (odd j) nibbles of qs[32 * (j / 2) ..].
  static float dot(const block_q4_k* w, const block_q8_k* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 256; ++b) {
      std::int32_t sum_sc = 0, sum_min = 0;
      for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        detail::scale_min_k4(j, w[b].scales, sc, m);
        const std::uint8_t* q = w[b].qs + 32 * (j / 2);
        const std::int8_t* a = x[b].qs + 32 * j;
        std::int32_t acc = 0;
        for (int l = 0; l < 32; ++l) acc += ((j & 1) ? (q[l] >> 4) : (q[l] & 0x0F)) * std::int32_t{a[l]};
        sum_sc += sc * acc;
        sum_min += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
      }
      s += detail::no_contract(fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(sum_sc)) - detail::no_contract(fp16_to_f32(w[b].dmin) * x[b].d * static_cast<float>(sum_min));
    }
    return s;
  }
  // q5_k . q8_k: as q4_k with bit j of qh[l] as the fifth bit of element l of sub-block j.
  static float dot(const block_q5_k* w, const block_q8_k* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 256; ++b) {
      std::int32_t sum_sc = 0, sum_min = 0;
      for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, m;
        detail::scale_min_k4(j, w[b].scales, sc, m);
        const std::uint8_t* q = w[b].qs + 32 * (j / 2);
        const std::int8_t* a = x[b].qs + 32 * j;
        std::int32_t acc = 0;
        for (int l = 0; l < 32; ++l) {
          const int lv = ((j & 1) ? (q[l] >> 4) : (q[l] & 0x0F)) | (((w[b].qh[l] >> j) & 1) << 4);
          acc += lv * std::int32_t{a[l]};
        }
        sum_sc += sc * acc;
        sum_min += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
      }
      s += detail::no_contract(fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(sum_sc)) - detail::no_contract(fp16_to_f32(w[b].dmin) * x[b].d * static_cast<float>(sum_min));
    }
    return s;
  }
  // q6_k . q8_k: d * sum over the 16 sub-blocks of 16 of scale * sum(level * q), levels in -32..31. Element
  // e = 128 h + 32 g + l (h half, g group 0..3, l 0..31): low 4 bits from ql[64 h + l + 32 (g & 1)] (low nibble for
  // g < 2), high 2 bits from qh[32 h + l] >> 2 g; its scale is scales[e / 16].
  static float dot(const block_q6_k* w, const block_q8_k* x, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t b = 0; b < n / 256; ++b) {
      std::int32_t sums[16] = {};
      for (int h = 0; h < 2; ++h)
        for (int g = 0; g < 4; ++g)
          for (int l = 0; l < 32; ++l) {
            const std::uint8_t lo = w[b].ql[64 * h + l + 32 * (g & 1)];
            const int q = (((g < 2) ? (lo & 0x0F) : (lo >> 4)) | (((w[b].qh[32 * h + l] >> (2 * g)) & 3) << 4)) - 32;
            const int e = 128 * h + 32 * g + l;
            sums[e / 16] += q * std::int32_t{x[b].qs[e]};
          }
      std::int32_t acc = 0;
      for (int j = 0; j < 16; ++j) acc += std::int32_t{w[b].scales[j]} * sums[j];
      s += detail::no_contract(fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(acc));
    }
    return s;
  }

  // Batched product, the core of every forward: for each of n tokens t and each row r in [r0, r1),
  //   y[t * ldy + r] = W.row(r) . x_t,   x_t = x + t * ldx
  // x holds n rows of activations in P's dot-product precision (ldx in activation blocks, or floats for
  // f32), each with blocks_per_row() * block_size elements (zero-padded past cols).
  // The contract every backend keeps: the value of y[t, r] depends only on W.row(r) and x_t, never on n,
  // r0, r1 or where the element falls in a tile. That makes the result bit-identical for any thread
  // count (threads split [0, rows)) and a batch identical to the same tokens run one by one.
  template <class P>
  static void matmul(float* y, std::size_t ldy, const matrix<P>& w, const typename P::activation::block_type* x, std::size_t ldx,
                     std::size_t n, std::uint32_t r0, std::uint32_t r1) noexcept {
    const std::size_t k = w.blocks_per_row() * P::block_size;
    for (std::size_t t = 0; t < n; ++t)
      for (std::uint32_t r = r0; r < r1; ++r) y[t * ldy + r] = Derived::dot(w.row(r), x + t * ldx, k);
  }

  // out[rows] = W (rows x cols) . x: the n = 1 case of matmul.
  template <class P>
  static void matvec(float* out, const matrix<P>& w, const typename P::activation::block_type* x) noexcept {
    Derived::matmul(out, 0, w, x, 0, 1, 0, w.rows);
  }

  // Causal multi-head attention over a block of n queries (see attention_args). Work items are
  // i = t * n_heads + h (query t, head h); this call does items [i0, i1). scratch holds >= pos + n floats
  // (one worker's). For each item, exactly run.c's order: scores q.k_j / sqrt(head_dim) for j <= pos + t,
  // softmax, then the weighted sum of v_j accumulated in j order.
  template <class KV>
  static void attention(const attention_args<KV>& a, std::size_t i0, std::size_t i1, float* scratch) noexcept {
    const float scale = std::sqrt(static_cast<float>(a.head_dim));
    for (std::size_t i = i0; i < i1; ++i) {
      const std::size_t t = i / a.n_heads, h = i % a.n_heads;
      const std::size_t len = a.pos + t + 1;
      const float* q = a.q + t * a.ld_q + h * a.head_dim;
      const std::size_t kv_off = (h / a.kv_mul) * a.head_dim;
      for (std::size_t j = 0; j < len; ++j) scratch[j] = Derived::dot(q, a.k + j * a.kv_dim + kv_off, a.head_dim) / scale;
      Derived::softmax(scratch, len);
      float* o = a.out + t * a.ld_out + h * a.head_dim;
      for (std::size_t d = 0; d < a.head_dim; ++d) o[d] = 0.0f;
      for (std::size_t j = 0; j < len; ++j) Derived::axpy(o, scratch[j], a.v + j * a.kv_dim + kv_off, a.head_dim);
    }
  }

  // Activations of a quantized product: n floats -> q8_0 blocks (the last zero-padded), exactly
  // q8_0::quantize_row (a backend may vectorise it, but must produce the same bytes).
  static void quantize_q8_0(const float* x, block_q8_0* y, std::size_t n) noexcept { q8_0::quantize_row(x, y, n); }
  // The activations of Q4_1 / Q5_1 and of the K-quants (ggml_quants.hpp).
  static void quantize_q8_sum(const float* x, block_q8_sum* y, std::size_t n) noexcept { q8_sum::quantize_row(x, y, n); }
  static void quantize_q8_k(const float* x, block_q8_k* y, std::size_t n) noexcept { q8_k::quantize_row(x, y, n); }

  // f32 query . fp16 key (an f16 KV cache), summed left to right.
  static float dot(const float* q, const std::uint16_t* k, std::size_t n) noexcept {
    float s = 0.0f;
    for (std::size_t j = 0; j < n; ++j) s += detail::no_contract(q[j] * fp16_to_f32(k[j]));
    return s;
  }
  // out[i] += a * v[i] with v in fp16.
  static void axpy(float* out, float a, const std::uint16_t* v, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] += detail::no_contract(a * fp16_to_f32(v[i]));
  }
  // The KV cache rows of a new position from floats (f32: a copy; f16: round to nearest even).
  static void store_kv(float* dst, const float* src, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
  }
  static void store_kv(std::uint16_t* dst, const float* src, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) dst[i] = f32_to_fp16(src[i]);
  }

  // o = weight * x / sqrt(mean(x^2) + eps)
  static void rmsnorm(float* o, const float* x, const float* weight, std::size_t n, float eps) noexcept {
    float ss = 0.0f;
    for (std::size_t j = 0; j < n; ++j) ss += detail::no_contract(x[j] * x[j]);
    ss /= static_cast<float>(n);
    ss += eps;
    ss = 1.0f / std::sqrt(ss);
    for (std::size_t j = 0; j < n; ++j) o[j] = weight[j] * (ss * x[j]);
  }

  // In-place softmax; subtract the max for numerical stability.
  static void softmax(float* x, std::size_t n) noexcept {
    float max_val = x[0];
    for (std::size_t i = 1; i < n; ++i)
      if (x[i] > max_val) max_val = x[i];
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = std::exp(x[i] - max_val);
      sum += x[i];
    }
    for (std::size_t i = 0; i < n; ++i) x[i] /= sum;
  }

  // The rotation angles of position pos: cos/sin[i] for the pair (2i, 2i+1) of every head, head_dim/2
  // entries, computed once per position (not per layer) with run.c's expressions.
  static void rope_table(float* cos_out, float* sin_out, std::size_t head_dim, std::size_t pos, float theta) noexcept {
    for (std::size_t i = 0; i < head_dim; i += 2) {
      const float freq = 1.0f / std::pow(theta, static_cast<float>(i) / static_cast<float>(head_dim));
      const float val = static_cast<float>(pos) * freq;
      cos_out[i / 2] = std::cos(val);
      sin_out[i / 2] = std::sin(val);
    }
  }

  // Rotary embedding on adjacent pairs (x[2i], x[2i+1]) of each head, as llama2.c and GGUF 'llama'.
  // q has n_q dims, k has n_k dims (<= n_q, GQA); both are split in heads of head_dim.
  static void rope(float* q, float* k, std::size_t n_q, std::size_t n_k, std::size_t head_dim, const float* fcos, const float* fsin) noexcept {
    for (std::size_t i = 0; i < n_q; i += 2) {
      const std::size_t hd = (i % head_dim) / 2;
      const float fcr = fcos[hd], fci = fsin[hd];
      const int rotn = i < n_k ? 2 : 1;
      for (int v = 0; v < rotn; ++v) {
        float* vec = v == 0 ? q : k;
        const float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = detail::no_contract(v0 * fcr) - detail::no_contract(v1 * fci);
        vec[i + 1] = detail::no_contract(v0 * fci) + detail::no_contract(v1 * fcr);
      }
    }
  }

  // SwiGLU: a = silu(a) * b
  static void silu_mul(float* a, const float* b, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      float v = a[i];
      v *= 1.0f / (1.0f + std::exp(-v));
      a[i] = v * b[i];
    }
  }

  static void add(float* x, const float* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) x[i] += y[i];
  }

  // out[i] += a * v[i]
  static void axpy(float* out, float a, const float* v, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] += detail::no_contract(a * v[i]);
  }

  // ---- the ops of the families beyond llama (transformers' formulas; no backend overrides them) ----

  // LayerNorm: o = (x - mean) / sqrt(var + eps) * weight + bias, var the biased variance (torch's layer_norm).
  static void layernorm(float* o, const float* x, const float* weight, const float* bias, std::size_t n, float eps) noexcept {
    float mean = 0.0f;
    for (std::size_t j = 0; j < n; ++j) mean += x[j];
    mean /= static_cast<float>(n);
    float var = 0.0f;
    for (std::size_t j = 0; j < n; ++j) var += detail::no_contract((x[j] - mean) * (x[j] - mean));
    var /= static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + eps);
    for (std::size_t j = 0; j < n; ++j) o[j] = detail::no_contract(detail::no_contract((x[j] - mean) * inv) * weight[j]) + bias[j];
  }

  // GELU, tanh approximation (gelu_new, gelu_pytorch_tanh): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  static void gelu_tanh(float* x, std::size_t n) noexcept {
    constexpr float k = 0.7978845608028654f;  // sqrt(2 / pi)
    for (std::size_t i = 0; i < n; ++i) {
      const float v = x[i];
      const float inner = detail::no_contract(k * (v + detail::no_contract(0.044715f * detail::no_contract(v * detail::no_contract(v * v)))));
      x[i] = detail::no_contract(0.5f * v) * (1.0f + std::tanh(inner));
    }
  }
  // GELU, exact (transformers' "gelu"): 0.5 x (1 + erf(x / sqrt(2))).
  static void gelu_erf(float* x, std::size_t n) noexcept {
    constexpr float r = 0.7071067811865476f;  // 1 / sqrt(2)
    for (std::size_t i = 0; i < n; ++i) {
      const float v = x[i];
      x[i] = detail::no_contract(0.5f * v) * (1.0f + std::erf(detail::no_contract(v * r)));
    }
  }

  // Rotary embedding on the first n_rot dims of each head of x (n dims, heads of head_dim; the rest pass
  // through), angles fcos/fsin[i] for i < n_rot / 2 (rope_table with head_dim = n_rot). adjacent_pairs
  // rotates (x[2i], x[2i+1]); half_split (NeoX, HF's rotate_half) rotates (x[i], x[i + n_rot / 2]).
  static void rope_partial(float* x, std::size_t n, std::size_t head_dim, std::size_t n_rot, bool half_split, const float* fcos, const float* fsin) noexcept {
    const std::size_t half = n_rot / 2;
    for (std::size_t h = 0; h + head_dim <= n; h += head_dim) {
      float* v = x + h;
      for (std::size_t i = 0; i < half; ++i) {
        const std::size_t a = half_split ? i : 2 * i, b = half_split ? i + half : 2 * i + 1;
        const float v0 = v[a], v1 = v[b];
        v[a] = detail::no_contract(v0 * fcos[i]) - detail::no_contract(v1 * fsin[i]);
        v[b] = detail::no_contract(v1 * fcos[i]) + detail::no_contract(v0 * fsin[i]);
      }
    }
  }

  // The rotation angles of position pos from given frequencies (RoPE scaling): cos/sin[i] of pos * freqs[i].
  static void rope_table_freqs(float* cos_out, float* sin_out, std::size_t n, std::size_t pos, const float* freqs) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      const float val = static_cast<float>(pos) * freqs[i];
      cos_out[i] = std::cos(val);
      sin_out[i] = std::sin(val);
    }
  }

  // x *= a
  static void scale(float* x, float a, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) x[i] *= a;
  }
};

// The reference backend.
struct scalar : basic_kernels<scalar> {
  static constexpr const char* name = "scalar";

  using basic_kernels<scalar>::matmul;
  // f32 matmul, four rows at a time per token. Each row is still summed left to right (run.c's order, so
  // the results are bit-identical to one dot per row); interleaving four independent sums only hides the
  // latency of the add chain (about 3x faster than one row at a time).
  static void matmul(float* y, std::size_t ldy, const matrix<f32>& w, const float* x, std::size_t ldx, std::size_t n, std::uint32_t r0,
                     std::uint32_t r1) noexcept {
    const std::size_t k = w.cols;
    for (std::size_t t = 0; t < n; ++t) {
      const float* xt = x + t * ldx;
      float* out = y + t * ldy;
      std::uint32_t r = r0;
      for (; r + 4 <= r1; r += 4) {
        const float *w0 = w.row(r), *w1 = w.row(r + 1), *w2 = w.row(r + 2), *w3 = w.row(r + 3);
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (std::size_t j = 0; j < k; ++j) {
          s0 += detail::no_contract(w0[j] * xt[j]);
          s1 += detail::no_contract(w1[j] * xt[j]);
          s2 += detail::no_contract(w2[j] * xt[j]);
          s3 += detail::no_contract(w3[j] * xt[j]);
        }
        out[r] = s0;
        out[r + 1] = s1;
        out[r + 2] = s2;
        out[r + 3] = s3;
      }
      for (; r < r1; ++r) out[r] = dot(w.row(r), xt, k);
    }
  }
};

}  // namespace kernels
}  // namespace edgelm
