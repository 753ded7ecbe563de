// edgelm/model/weights.hpp - the weights of a model of any family under weight policy P: each matrix a view
// into the file where P runs its tensor type in place (zero copy, mmap natively; a uniform precision runs
// its own type, `mixed` every type it has kernels for), else converted once at load.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/buffer.hpp"
#include "../core/checked.hpp"
#include "../core/log.hpp"
#include "../core/result.hpp"
#include "../formats/model_file.hpp"
#include "../kernels/scalar.hpp"
#include "../precision/dequantize.hpp"
#include "../precision/f32.hpp"
#include "../precision/ggml_quants.hpp"

namespace edgelm {

// A weight matrix of any weight type: rows x cols elements of `type`, each row ceil(cols / block size)
// blocks (the file's stride in place; a converted copy's last block zero-padded). as<T>() is the typed
// view the kernels take (T::type == type).
struct wmatrix {
  ggml_type type = ggml_type::f32;
  const std::byte* data = nullptr;
  std::uint32_t rows = 0;
  std::uint32_t cols = 0;
  const std::byte* packed = nullptr;  // the kernels' own layout (see matrix::packed), or null
  std::uint32_t packing = 0;

  std::size_t row_bytes() const noexcept {
    const auto& i = ggml_info(type);
    return (std::size_t{cols} + i.block_size - 1) / i.block_size * i.type_size;
  }
  const std::byte* row(std::uint32_t r) const noexcept { return data + std::size_t{r} * row_bytes(); }
  template <class T>
  matrix<T> as() const noexcept {
    return {reinterpret_cast<const typename T::block_type*>(data), rows, cols, packed, packing};
  }
};

struct layer_weights {
  const float* attn_norm = nullptr;  // (dim)
  wmatrix wq;                        // (dim, dim)
  wmatrix wk;                        // (kv_dim, dim)
  wmatrix wv;                        // (kv_dim, dim)
  wmatrix wo;                        // (dim, dim)
  const float* ffn_norm = nullptr;   // (dim)
  wmatrix w1;                        // (hidden_dim, dim)  gate
  wmatrix w2;                        // (dim, hidden_dim)  down
  wmatrix w3;                        // (hidden_dim, dim)  up
  // The families beyond llama (null: absent): norm biases (LayerNorm), projection biases.
  const float* attn_norm_b = nullptr;  // (dim)
  const float* ffn_norm_b = nullptr;   // (dim)
  const float* bq = nullptr;           // (dim)
  const float* bk = nullptr;           // (kv_dim)
  const float* bv = nullptr;           // (kv_dim)
  const float* bo = nullptr;           // (dim)
  const float* b3 = nullptr;           // (hidden_dim) up
  const float* b2 = nullptr;           // (dim) down
};

struct model_weights {
  wmatrix token_embd;                    // (vocab, dim)
  std::vector<layer_weights> layers;     // (n_layers)
  const float* output_norm = nullptr;    // (dim)
  wmatrix output;                        // (vocab, dim); == token_embd when shared
  wmatrix pos_embd;                      // (seq_len, dim) learned positions (gpt2, gpt_neo); rows 0 when absent
  const float* output_norm_b = nullptr;  // (dim) LayerNorm bias
  const float* output_b = nullptr;       // (vocab) classifier bias (phi)
  std::vector<aligned_buffer<std::byte>> owned;  // converted tensors
  std::size_t converted = 0;             // how many tensors were converted at load
  std::array<std::uint32_t, ggml_type_count> converted_from{};  // converted tensors by their file type
  std::array<std::uint32_t, ggml_type_count> in_place_as{};     // in-place matrices by type
  std::size_t in_place = 0;              // how many are views into the file
  std::size_t packed = 0;                // how many in-place matrices also have the kernels' packed copy
};
template <class P>
using weights = model_weights;

// How make_weights gives matrices a kernel policy's packed copy (K::packed_bytes / K::pack; null: none).
struct weight_packer {
  std::size_t (*bytes)(const wmatrix&) noexcept = nullptr;
  std::uint32_t (*pack)(const wmatrix&, std::byte*) noexcept = nullptr;
  std::uint32_t row_group = 0;  // K::packed_row_group: the layout packs rows in groups of this many (0: no packing)
};

namespace detail {

// A layer's weight matrices: GGUF name suffix, shape (rows, cols) and where it is bound. The one list
// both the sizing of the packed arena and the binding walk.
struct layer_matrix {
  const char* name;
  std::uint64_t rows, cols;
  wmatrix layer_weights::*member;
};
// (ffn_gate only for the gated feed-forward: the gelu families have up and down.)
inline std::vector<layer_matrix> layer_matrices(const model_config& c) {
  const std::uint64_t D = c.dim, H = c.hidden_dim, KVD = c.kv_dim();
  using L = layer_weights;
  std::vector<layer_matrix> m = {{"attn_q.weight", D, D, &L::wq},
                                 {"attn_k.weight", KVD, D, &L::wk},
                                 {"attn_v.weight", KVD, D, &L::wv},
                                 {"attn_output.weight", D, D, &L::wo},
                                 {"ffn_gate.weight", H, D, &L::w1},
                                 {"ffn_down.weight", D, H, &L::w2},
                                 {"ffn_up.weight", H, D, &L::w3}};
  if (c.ffn != ffn_kind::silu_gated) m.erase(m.begin() + 4);
  return m;
}
// A layer's optional vectors: name suffix, length, member, and whether the config has it.
struct layer_vector {
  const char* name;
  std::uint64_t n;
  const float* layer_weights::*member;
  bool present;
};
inline std::array<layer_vector, 8> layer_vectors(const model_config& c) {
  const std::uint64_t D = c.dim, H = c.hidden_dim, KVD = c.kv_dim();
  const bool ln = c.norm == norm_kind::layer, ln2 = ln && c.residual != residual_kind::parallel_shared;
  using L = layer_weights;
  return {{{"attn_norm.bias", D, &L::attn_norm_b, ln},
           {"ffn_norm.bias", D, &L::ffn_norm_b, ln2},
           {"attn_q.bias", D, &L::bq, c.qkv_bias},
           {"attn_k.bias", KVD, &L::bk, c.qkv_bias},
           {"attn_v.bias", KVD, &L::bv, c.qkv_bias},
           {"attn_output.bias", D, &L::bo, c.out_bias},
           {"ffn_up.bias", H, &L::b3, c.ffn_bias},
           {"ffn_down.bias", D, &L::b2, c.ffn_bias}}};
}

template <class P>
struct weight_builder {
  using types = typename policy_traits<P>::types;
  const model_file& mf;
  model_weights& w;
  const logger& log;
  weight_packer packer{};
  std::byte* arena = nullptr;  // one huge-page allocation for every packed copy (see make_weights)
  std::size_t arena_size = 0, arena_used = 0;
  // While matrices are repacked (their file pages given back), f32 vectors are copied instead of used in
  // place: a norm read from the file would map its page again, and where the page cache holds the file in
  // large folios (2 MiB on ext4 with recent kernels) that brings back the whole folio, released matrix
  // bytes around the norm included (measured: +54 MB resident for SmolLM2-135M Q8_0 after one token).
  bool copy_vectors = false;

  const tensor_info* need(const std::string& name, std::uint64_t ne0, std::uint64_t ne1, error& err) {
    const tensor_info* t = mf.find(name);
    if (!t) { err = make_error(errc::missing_tensor, "required tensor missing", error::no_offset, name); return nullptr; }
    const bool one_d = ne1 == 1;
    if ((one_d && (t->n_dims != 1 && !(t->n_dims == 2 && t->ne[1] == 1))) || (!one_d && t->n_dims != 2) || t->ne[0] != ne0 ||
        t->ne[1] != ne1) {
      err = make_error(errc::shape_mismatch,
                       "shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) + "] but the config needs [" + std::to_string(ne0) + ", " +
                           std::to_string(ne1) + "]",
                       t->offset, name);
      return nullptr;
    }
    return t;
  }

  // Convert n elements of t to float into dst, checking that every value is finite.
  bool to_float(const tensor_info& t, float* dst, std::size_t n, error& err) {
    if (!can_dequantize(t.type)) {
      err = make_error(errc::unsupported_tensor_type, "tensor type " + std::string(ggml_type_name(t.type)) + " cannot be run by this build", t.offset, t.name);
      return false;
    }
    if (!dequantize_row(t.type, t.data, dst, n)) {
      err = make_error(errc::bad_value, "tensor has a NaN/Inf block scale", t.offset, t.name);
      return false;
    }
    return true;
  }

  // 1-D tensors (norm weights) always as f32.
  const float* vec(const std::string& name, std::uint64_t n, error& err) {
    const tensor_info* t = need(name, n, 1, err);
    if (!t) return nullptr;
    const bool f32_aligned = t->type == ggml_type::f32 && reinterpret_cast<std::uintptr_t>(t->data) % alignof(float) == 0;
    if (f32_aligned && !copy_vectors) {
      ++w.in_place;
      return reinterpret_cast<const float*>(t->data);
    }
    auto buf = aligned_buffer<std::byte>::make(n * sizeof(float));
    if (!buf) { err = buf.error(); return nullptr; }
    float* dst = reinterpret_cast<float*>(buf->data());
    if (f32_aligned) {  // the same values, out of the file's pages (copy_vectors): still counted in place
      std::memcpy(dst, t->data, n * sizeof(float));
      w.owned.push_back(std::move(*buf));
      ++w.in_place;
      return dst;
    }
    if (!to_float(*t, dst, n, err)) return nullptr;
    w.owned.push_back(std::move(*buf));
    ++w.converted;
    return dst;
  }

  // A block scale that is fp16 Inf/NaN poisons every output: rejected at load. Reading the 16-bit scales
  // of each block is cheap next to the first forward pass, which touches every byte anyway.
  bool check_scales(const wmatrix& m, std::uint64_t first_row, const tensor_info& t, error& err) {
    bool ok = true;
    visit_type(types{}, m.type, [&](auto tag) {
      using T = decltype(tag);
      using B = typename T::block_type;
      if constexpr (requires(const B& b) { { b.d } -> std::convertible_to<std::uint16_t>; }) {
        const matrix<T> mt = m.as<T>();
        const std::uint64_t n_blocks = std::uint64_t{m.rows} * mt.blocks_per_row(), base = first_row * mt.blocks_per_row();
        for (std::uint64_t i = 0; i < n_blocks && ok; ++i) {
          bool bad = (mt.data[i].d & 0x7C00u) == 0x7C00u;
          if constexpr (requires(const B& b) { b.dmin; }) bad = bad || (mt.data[i].dmin & 0x7C00u) == 0x7C00u;
          if constexpr (requires(const B& b) { b.m; }) bad = bad || (mt.data[i].m & 0x7C00u) == 0x7C00u;
          if (bad) {
            err = make_error(errc::bad_value, "block " + std::to_string(base + i) + " has a NaN/Inf scale", t.offset + (base + i) * sizeof(B), t.name);
            ok = false;
          }
        }
      }
    });
    return ok;
  }

  // The packed copy of an in-place matrix when the kernels have a layout of their own (never for the
  // token embedding: its rows are looked up). Done in slices of whole row groups (the layout is the
  // concatenation of its slices' layouts), each checked, packed, then its file pages given back (they
  // stay readable): memory holds one copy of the weights plus at most one slice, not two copies.
  // Returns false with err set on a bad scale or a failed allocation; `packed` tells whether it ran.
  bool repack(const tensor_info& t, wmatrix& out, bool& packed, error& err) {
    packed = false;
    if (!packer.bytes || !packer.pack || packer.row_group == 0 || t.name == "token_embd.weight" || t.name == "position_embd.weight") return true;
    const std::size_t n = packer.bytes(out);
    if (n == 0) return true;
    std::byte* dst = nullptr;
    const std::size_t n64 = (n + 63) / 64 * 64;
    if (arena && n64 <= arena_size - arena_used) {
      dst = arena + arena_used;
      arena_used += n64;
    } else {  // (no arena: its allocation failed, or a matrix it was not sized for)
      auto buf = aligned_buffer<std::byte>::make_uninitialized(n);
      if (!buf) { err = buf.error(); return false; }
      dst = buf->data();
      w.owned.push_back(std::move(*buf));
    }
    const std::uint32_t step = packer.row_group * 64;
    std::uint32_t id = 0;
    for (std::uint32_t r = 0; r < out.rows; r += step) {
      wmatrix part = out, before = out;
      part.data = out.row(r);
      part.rows = std::min(step, out.rows - r);
      before.rows = r;
      if (!check_scales(part, r, t, err)) return false;
      const std::size_t at = r ? packer.bytes(before) : 0;
      id = packer.pack(part, dst + at);
      if (id == 0) return false;  // cannot happen once bytes() > 0; the caller then binds the rows as they are
      if (mf.bytes) mf.bytes->release({part.data, std::size_t{part.rows} * part.row_bytes()});
    }
    out.packed = dst;
    out.packing = id;
    ++w.packed;
    packed = true;
    return true;
  }

  // Can P run a tensor of this type in place?
  static bool runs(ggml_type t) noexcept {
    return visit_type(types{}, t, [](auto) {});
  }

  // 2-D weight (rows x cols): in place when P runs its type, else converted to P's conversion type.
  bool mat(const std::string& name, std::uint64_t rows, std::uint64_t cols, wmatrix& out, error& err) {
    const tensor_info* t = need(name, cols, rows, err);
    if (!t) return false;
    out.rows = static_cast<std::uint32_t>(rows);
    out.cols = static_cast<std::uint32_t>(cols);
    // In place: the file's rows are whole blocks already (GGUF requires ne0 % block_size == 0), so the
    // file's row stride is the matrix's. The blocks need their struct's alignment (2, or 4 for f32).
    if (runs(t->type) && reinterpret_cast<std::uintptr_t>(t->data) % (t->type == ggml_type::f32 ? 4 : 2) == 0) {
      out.type = t->type;
      out.data = t->data;
      bool packed = false;
      if (!repack(*t, out, packed, err)) return false;
      if (!packed && !check_scales(out, 0, *t, err)) return false;
      ++w.in_place;
      ++w.in_place_as[static_cast<std::uint32_t>(t->type)];
      return true;
    }
    bool ok = false;
    const ggml_type to = policy_traits<P>::convert_to(t->type);
    const bool known = visit_type(types{}, to, [&](auto tag) {
      using C = decltype(tag);
      if constexpr (requires(const float* x, typename C::block_type* y, std::size_t n) { C::quantize_row(x, y, n); }) ok = convert<C>(*t, name, rows, cols, out, err);
    });
    if (!known && !ok) err = make_error(errc::unsupported_tensor_type, "no conversion for tensor type " + std::string(ggml_type_name(t->type)), t->offset, name);
    return ok;
  }

  // Converted: each row becomes blocks_per_row = ceil(cols / block_size) blocks of C, the last one
  // zero-padded when cols is not a multiple of the block size (C::quantize_row pads).
  template <class C>
  bool convert(const tensor_info& tin, const std::string& name, std::uint64_t rows, std::uint64_t cols, wmatrix& out, error& err) {
    const tensor_info* t = &tin;
    const std::uint64_t row_blocks = matrix<C>::blocks_per_row(static_cast<std::size_t>(cols));
    std::uint64_t n_blocks = 0, bytes = 0;
    if (!mul_ok(rows, row_blocks, n_blocks) || !mul_ok(n_blocks, sizeof(typename C::block_type), bytes) || !fits_size_t(bytes)) {
      err = make_error(errc::overflow, "converted tensor size overflows", t->offset, name);
      return false;
    }
    auto buf = aligned_buffer<std::byte>::make(static_cast<std::size_t>(bytes));
    if (!buf) { err = buf.error(); return false; }
    auto row = aligned_buffer<float>::make(static_cast<std::size_t>(cols));
    if (!row) { err = row.error(); return false; }
    auto* dst = reinterpret_cast<typename C::block_type*>(buf->data());
    const std::uint64_t src_row_bytes = cols / ggml_info(t->type).block_size * ggml_info(t->type).type_size;
    for (std::uint64_t r = 0; r < rows; ++r) {
      tensor_info rt = *t;
      rt.data = t->data + r * src_row_bytes;
      if (!to_float(rt, row->data(), static_cast<std::size_t>(cols), err)) return false;
      // The fast reference quantizer (q4_0's scale search is ~10x slower: it is for `edgelm quantize`).
      if constexpr (requires { C::quantize_row_reference(row->data(), dst, std::size_t{0}); })
        C::quantize_row_reference(row->data(), dst + r * row_blocks, static_cast<std::size_t>(cols));
      else
        C::quantize_row(row->data(), dst + r * row_blocks, static_cast<std::size_t>(cols));
    }
    out.type = C::type;
    out.data = buf->data();
    w.owned.push_back(std::move(*buf));
    ++w.converted;
    ++w.converted_from[static_cast<std::uint32_t>(t->type)];
    log(log_level::debug, "converted " + name + " from " + std::string(ggml_type_name(t->type)) + " to " + std::string(C::name));
    return true;
  }
};

}  // namespace detail

// Bind (or convert) every tensor the config's family forward needs (model/families/*.hpp), validating shapes
// against the config. The GGUF names are one scheme for all families; which optional tensors a family has
// (norm and projection biases, learned positions, a separate classifier and its bias) the config says.
template <class P>
result<model_weights> make_weights(const model_file& mf, const logger& log = {}, weight_packer packer = {}) {
  model_weights w;
  const model_config& c = mf.config;
  detail::weight_builder<P> b{mf, w, log, packer};
  error err;
  const std::uint64_t D = c.dim, V = c.vocab_size;
  // Packed copies go into one allocation in huge pages (the decode streams all of them every token; with
  // 4 KiB pages that is a TLB miss per 4 KiB): sized first from the matrices that will be packed.
  if (packer.bytes && packer.pack && packer.row_group) {
    std::size_t total = 0;
    bool fits = true;
    auto add = [&](const std::string& name, std::uint64_t rows, std::uint64_t cols) {
      const tensor_info* t = mf.find(name);
      if (!t || !detail::weight_builder<P>::runs(t->type) || t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows || rows > UINT32_MAX || cols > UINT32_MAX) return;
      const wmatrix m{t->type, nullptr, static_cast<std::uint32_t>(rows), static_cast<std::uint32_t>(cols)};
      const std::size_t n = (packer.bytes(m) + 63) / 64 * 64;
      if (n > SIZE_MAX - total) fits = false;
      else total += n;
    };
    for (std::uint32_t l = 0; l < c.n_layers; ++l)
      for (const auto& lm : detail::layer_matrices(c)) add("blk." + std::to_string(l) + "." + lm.name, lm.rows, lm.cols);
    if (!c.shared_classifier) add("output.weight", V, D);
    b.copy_vectors = total > 0;
    if (fits && total > 0) {
      if (auto arena = aligned_buffer<std::byte>::make_pages(total)) {
        b.arena = arena->data();
        b.arena_size = total;
        w.owned.push_back(std::move(*arena));
      }
    }
  }
  if (!b.mat("token_embd.weight", V, D, w.token_embd, err)) return err;
  w.layers.resize(c.n_layers);
  for (std::uint32_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto& L = w.layers[l];
    if (!(L.attn_norm = b.vec(p + "attn_norm.weight", D, err))) return err;
    if (c.residual == residual_kind::parallel_shared) L.ffn_norm = L.attn_norm;  // phi: one norm
    else if (!(L.ffn_norm = b.vec(p + "ffn_norm.weight", D, err))) return err;
    for (const auto& lm : detail::layer_matrices(c))
      if (!b.mat(p + lm.name, lm.rows, lm.cols, L.*lm.member, err)) return err;
    for (const auto& lv : detail::layer_vectors(c))
      if (lv.present && !(L.*lv.member = b.vec(p + lv.name, lv.n, err))) return err;
    if (c.residual == residual_kind::parallel_shared) L.ffn_norm_b = L.attn_norm_b;
  }
  if (!(w.output_norm = b.vec("output_norm.weight", D, err))) return err;
  if (c.norm == norm_kind::layer && !(w.output_norm_b = b.vec("output_norm.bias", D, err))) return err;
  if (c.shared_classifier) {
    w.output = w.token_embd;
  } else if (!b.mat("output.weight", V, D, w.output, err)) {
    return err;
  }
  if (c.output_bias && !(w.output_b = b.vec("output.bias", V, err))) return err;
  if (c.learned_positions && !b.mat("position_embd.weight", c.seq_len, D, w.pos_embd, err)) return err;
  return w;
}

}  // namespace edgelm
