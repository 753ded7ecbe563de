// edgelm/model/weights.hpp - the weights of a Llama-family model in precision P: views into the file
// where its tensor type already is P (zero copy, mmap natively), else converted once at load.
#pragma once
#include <array>
#include <cstdint>
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

namespace edgelm {

template <precision P>
struct layer_weights {
  const float* attn_norm = nullptr;  // (dim)
  matrix<P> wq;                      // (dim, dim)
  matrix<P> wk;                      // (kv_dim, dim)
  matrix<P> wv;                      // (kv_dim, dim)
  matrix<P> wo;                      // (dim, dim)
  const float* ffn_norm = nullptr;   // (dim)
  matrix<P> w1;                      // (hidden_dim, dim)  gate
  matrix<P> w2;                      // (dim, hidden_dim)  down
  matrix<P> w3;                      // (hidden_dim, dim)  up
};

template <precision P>
struct weights {
  matrix<P> token_embd;                  // (vocab, dim)
  std::vector<layer_weights<P>> layers;  // (n_layers)
  const float* output_norm = nullptr;    // (dim)
  matrix<P> output;                      // (vocab, dim); == token_embd when shared
  std::vector<aligned_buffer<std::byte>> owned;  // converted tensors
  std::size_t converted = 0;             // how many tensors were converted at load
  std::array<std::uint32_t, ggml_type_count> converted_from{};  // converted tensors by their file type
  std::size_t in_place = 0;              // how many are views into the file
  std::size_t packed = 0;                // how many in-place matrices also have the kernels' packed copy
};

// How make_weights gives matrices a kernel policy's packed copy (K::packed_bytes / K::pack; null: none).
template <precision P>
struct weight_packer {
  std::size_t (*bytes)(const matrix<P>&) noexcept = nullptr;
  std::uint32_t (*pack)(const matrix<P>&, std::byte*) noexcept = nullptr;
  std::uint32_t row_group = 0;  // K::packed_row_group: the layout packs rows in groups of this many (0: no packing)
};

namespace detail {

// A layer's weight matrices: GGUF name suffix, shape (rows, cols) and where it is bound. The one list
// both the sizing of the packed arena and the binding walk.
template <precision P>
struct layer_matrix {
  const char* name;
  std::uint64_t rows, cols;
  matrix<P> layer_weights<P>::*member;
};
template <precision P>
inline std::array<layer_matrix<P>, 7> layer_matrices(const model_config& c) {
  const std::uint64_t D = c.dim, H = c.hidden_dim, KVD = c.kv_dim();
  using L = layer_weights<P>;
  return {{{"attn_q.weight", D, D, &L::wq},
           {"attn_k.weight", KVD, D, &L::wk},
           {"attn_v.weight", KVD, D, &L::wv},
           {"attn_output.weight", D, D, &L::wo},
           {"ffn_gate.weight", H, D, &L::w1},
           {"ffn_down.weight", D, H, &L::w2},
           {"ffn_up.weight", H, D, &L::w3}}};
}

template <precision P>
struct weight_builder {
  const model_file& mf;
  weights<P>& w;
  const logger& log;
  weight_packer<P> packer{};
  std::byte* arena = nullptr;  // one huge-page allocation for every packed copy (see make_weights)
  std::size_t arena_size = 0, arena_used = 0;

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
    if (t->type == ggml_type::f32 && reinterpret_cast<std::uintptr_t>(t->data) % alignof(float) == 0) {
      ++w.in_place;
      return reinterpret_cast<const float*>(t->data);
    }
    auto buf = aligned_buffer<std::byte>::make(n * sizeof(float));
    if (!buf) { err = buf.error(); return nullptr; }
    float* dst = reinterpret_cast<float*>(buf->data());
    if (!to_float(*t, dst, n, err)) return nullptr;
    w.owned.push_back(std::move(*buf));
    ++w.converted;
    return dst;
  }

  // A block scale that is fp16 Inf/NaN poisons every output: rejected at load. Reading one 16-bit scale
  // per block is cheap next to the first forward pass, which touches every byte anyway.
  bool check_scales(const matrix<P>& m, std::uint64_t first_row, const tensor_info& t, error& err) {
    if constexpr (requires(const typename P::block_type& b) { { b.d } -> std::convertible_to<std::uint16_t>; }) {
      const std::uint64_t n_blocks = std::uint64_t{m.rows} * m.blocks_per_row(), base = first_row * m.blocks_per_row();
      for (std::uint64_t i = 0; i < n_blocks; ++i)
        if ((m.data[i].d & 0x7C00u) == 0x7C00u) {
          err = make_error(errc::bad_value, "block " + std::to_string(base + i) + " has a NaN/Inf scale", t.offset + (base + i) * sizeof(typename P::block_type), t.name);
          return false;
        }
    }
    return true;
  }

  // The packed copy of an in-place matrix when the kernels have a layout of their own (never for the
  // token embedding: its rows are looked up). Done in slices of whole row groups (the layout is the
  // concatenation of its slices' layouts), each checked, packed, then its file pages given back (they
  // stay readable): memory holds one copy of the weights plus at most one slice, not two copies.
  // Returns false with err set on a bad scale or a failed allocation; `packed` tells whether it ran.
  bool repack(const tensor_info& t, matrix<P>& out, bool& packed, error& err) {
    packed = false;
    if (!packer.bytes || !packer.pack || packer.row_group == 0 || t.name == "token_embd.weight") return true;
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
      matrix<P> part = out, before = out;
      part.data = out.row(r);
      part.rows = std::min(step, out.rows - r);
      before.rows = r;
      if (!check_scales(part, r, t, err)) return false;
      const std::size_t at = r ? packer.bytes(before) : 0;
      id = packer.pack(part, dst + at);
      if (id == 0) return false;  // cannot happen once bytes() > 0; the caller then binds the rows as they are
      if (mf.bytes) mf.bytes->release({reinterpret_cast<const std::byte*>(part.data), std::size_t{part.rows} * part.blocks_per_row() * sizeof(typename P::block_type)});
    }
    out.packed = dst;
    out.packing = id;
    ++w.packed;
    packed = true;
    return true;
  }

  // 2-D weight (rows x cols) in precision P.
  bool mat(const std::string& name, std::uint64_t rows, std::uint64_t cols, matrix<P>& out, error& err) {
    const tensor_info* t = need(name, cols, rows, err);
    if (!t) return false;
    out.rows = static_cast<std::uint32_t>(rows);
    out.cols = static_cast<std::uint32_t>(cols);
    // In place: the file's rows are whole P blocks already (GGUF requires ne0 % block_size == 0), so the
    // file's row stride is matrix<P>'s.
    if (t->type == P::type && reinterpret_cast<std::uintptr_t>(t->data) % alignof(typename P::block_type) == 0) {
      out.data = reinterpret_cast<const typename P::block_type*>(t->data);
      bool packed = false;
      if (!repack(*t, out, packed, err)) return false;
      if (!packed && !check_scales(out, 0, *t, err)) return false;
      ++w.in_place;
      return true;
    }
    // Converted: each row becomes blocks_per_row = ceil(cols / block_size) blocks, the last one
    // zero-padded when cols is not a multiple of the block size (P::quantize_row pads).
    const std::uint64_t row_blocks = matrix<P>::blocks_per_row(static_cast<std::size_t>(cols));
    std::uint64_t n_blocks = 0, bytes = 0;
    if (!mul_ok(rows, row_blocks, n_blocks) || !mul_ok(n_blocks, sizeof(typename P::block_type), bytes) || !fits_size_t(bytes)) {
      err = make_error(errc::overflow, "converted tensor size overflows", t->offset, name);
      return false;
    }
    auto buf = aligned_buffer<std::byte>::make(static_cast<std::size_t>(bytes));
    if (!buf) { err = buf.error(); return false; }
    auto row = aligned_buffer<float>::make(static_cast<std::size_t>(cols));
    if (!row) { err = row.error(); return false; }
    auto* dst = reinterpret_cast<typename P::block_type*>(buf->data());
    const std::uint64_t src_row_bytes = cols / ggml_info(t->type).block_size * ggml_info(t->type).type_size;
    for (std::uint64_t r = 0; r < rows; ++r) {
      tensor_info rt = *t;
      rt.data = t->data + r * src_row_bytes;
      if (!to_float(rt, row->data(), static_cast<std::size_t>(cols), err)) return false;
      // The fast reference quantizer (q4_0's scale search is ~10x slower: it is for `edgelm quantize`).
      if constexpr (requires { P::quantize_row_reference(row->data(), dst, std::size_t{0}); })
        P::quantize_row_reference(row->data(), dst + r * row_blocks, static_cast<std::size_t>(cols));
      else
        P::quantize_row(row->data(), dst + r * row_blocks, static_cast<std::size_t>(cols));
    }
    out.data = dst;
    w.owned.push_back(std::move(*buf));
    ++w.converted;
    ++w.converted_from[static_cast<std::uint32_t>(t->type)];
    log(log_level::debug, "converted " + name + " from " + std::string(ggml_type_name(t->type)) + " to " + std::string(P::name));
    return true;
  }
};

}  // namespace detail

// Bind (or convert) every tensor the Llama forward pass needs, validating shapes against the config.
template <precision P>
result<weights<P>> make_weights(const model_file& mf, const logger& log = {}, weight_packer<P> packer = {}) {
  weights<P> w;
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
      if (!t || t->type != P::type || t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows || rows > UINT32_MAX || cols > UINT32_MAX) return;
      const matrix<P> m{nullptr, static_cast<std::uint32_t>(rows), static_cast<std::uint32_t>(cols)};
      const std::size_t n = (packer.bytes(m) + 63) / 64 * 64;
      if (n > SIZE_MAX - total) fits = false;
      else total += n;
    };
    for (std::uint32_t l = 0; l < c.n_layers; ++l)
      for (const auto& lm : detail::layer_matrices<P>(c)) add("blk." + std::to_string(l) + "." + lm.name, lm.rows, lm.cols);
    if (!c.shared_classifier) add("output.weight", V, D);
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
    if (!(L.ffn_norm = b.vec(p + "ffn_norm.weight", D, err))) return err;
    for (const auto& lm : detail::layer_matrices<P>(c))
      if (!b.mat(p + lm.name, lm.rows, lm.cols, L.*lm.member, err)) return err;
  }
  if (!(w.output_norm = b.vec("output_norm.weight", D, err))) return err;
  if (c.shared_classifier) {
    w.output = w.token_embd;
  } else if (!b.mat("output.weight", V, D, w.output, err)) {
    return err;
  }
  return w;
}

}  // namespace edgelm
