// edgelm/formats/model_file.hpp - the format-neutral result of reading a model file:
// hyper-parameters, a tensor table (views into the file's bytes) and tokenizer data.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/result.hpp"
#include "../storage/storage.hpp"
#include "ggml_types.hpp"

namespace edgelm {

// Named limits for hostile input; override by defining the macros before including edgelm.
#ifndef EDGELM_MAX_TENSORS
#define EDGELM_MAX_TENSORS 65536
#endif
#ifndef EDGELM_MAX_METADATA
#define EDGELM_MAX_METADATA 65536
#endif
#ifndef EDGELM_MAX_VOCAB
#define EDGELM_MAX_VOCAB 1048576
#endif
#ifndef EDGELM_MAX_LAYERS
#define EDGELM_MAX_LAYERS 512
#endif
#ifndef EDGELM_MAX_DIM
#define EDGELM_MAX_DIM 65536
#endif
#ifndef EDGELM_MAX_CONTEXT
#define EDGELM_MAX_CONTEXT 1048576
#endif
#ifndef EDGELM_MAX_METADATA_VALUES
#define EDGELM_MAX_METADATA_VALUES (4u << 20)
#endif
#ifndef EDGELM_MAX_STRING
#define EDGELM_MAX_STRING (16u << 20)
#endif
#ifndef EDGELM_MAX_TOKEN_BYTES
#define EDGELM_MAX_TOKEN_BYTES 1024
#endif

struct limits {
  static constexpr std::uint64_t max_tensors = EDGELM_MAX_TENSORS;
  static constexpr std::uint64_t max_metadata = EDGELM_MAX_METADATA;
  // Metadata values in all arrays together: each is held as a parsed value (~100 bytes), so this
  // bounds the memory a hostile file can make the reader allocate (a 128k vocab needs ~0.7M).
  static constexpr std::uint64_t max_metadata_values = EDGELM_MAX_METADATA_VALUES;
  static constexpr std::uint64_t max_vocab = EDGELM_MAX_VOCAB;
  static constexpr std::uint64_t max_layers = EDGELM_MAX_LAYERS;
  static constexpr std::uint64_t max_dim = EDGELM_MAX_DIM;
  static constexpr std::uint64_t max_context = EDGELM_MAX_CONTEXT;
  static constexpr std::uint64_t max_string = EDGELM_MAX_STRING;
  static constexpr std::uint64_t max_token_bytes = EDGELM_MAX_TOKEN_BYTES;
};

enum class rope_style : std::uint8_t { adjacent_pairs /* llama2.c, GGUF llama */, half_split /* NeoX/HF */ };
enum class norm_kind : std::uint8_t { rms /* llama, qwen2 */, layer /* LayerNorm with weight and bias: gpt2, gpt_neo, gpt_neox, phi */ };
enum class ffn_kind : std::uint8_t {
  silu_gated,  // down(silu(gate x) * up x): llama, qwen2
  gelu_tanh,   // down(gelu_tanh(up x + b) + b): gpt2, gpt_neo, phi ("gelu_new", "gelu_pytorch_tanh")
  gelu_erf,    // the same with the exact erf gelu: gpt_neox ("gelu")
};
enum class residual_kind : std::uint8_t {
  sequential,       // x += attn(n1 x); x += ffn(n2 x)
  parallel,         // gpt_neox: x += attn(n1 x) + ffn(n2 x)
  parallel_shared,  // phi: x += attn(n1 x) + ffn(n1 x), one norm
};

// Hyper-parameters of a decoder transformer.
struct model_config {
  std::string arch = "llama";
  std::uint32_t dim = 0;          // embedding width
  std::uint32_t hidden_dim = 0;   // FFN width
  std::uint32_t n_layers = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t n_kv_heads = 0;
  std::uint32_t vocab_size = 0;
  std::uint32_t seq_len = 0;      // trained context length
  std::uint32_t head_dim = 0;     // dim / n_heads
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  rope_style rope = rope_style::adjacent_pairs;
  bool shared_classifier = true;  // output.weight is token_embd.weight

  // The architecture families beyond llama (each default is llama's; each family's forward in model/families/*.hpp).
  norm_kind norm = norm_kind::rms;
  ffn_kind ffn = ffn_kind::silu_gated;
  residual_kind residual = residual_kind::sequential;
  bool qkv_bias = false;           // blk.N.attn_{q,k,v}.bias
  bool out_bias = false;           // blk.N.attn_output.bias
  bool ffn_bias = false;           // blk.N.ffn_{up,down}.bias
  bool output_bias = false;        // output.bias (phi's lm_head)
  std::uint32_t n_rot = 0;         // dims of each head rotated (even, <= head_dim); 0: all of head_dim
  bool learned_positions = false;  // position_embd.weight (seq_len rows) added to the embedding; no rotary
  bool scaled_attention = true;    // scores / sqrt(head_dim) (gpt_neo: unscaled)
  std::vector<std::uint32_t> window;  // per layer: 0 = global attention, w = the last w positions (gpt_neo local)
  std::vector<float> rope_freqs;   // rot_dims() / 2 rotary frequencies (RoPE scaling: llama3, linear); empty: theta^(-2i/rot)

  std::uint32_t kv_dim() const noexcept { return head_dim * n_kv_heads; }
  std::uint32_t rot_dims() const noexcept { return n_rot ? n_rot : head_dim; }
  // The llama architecture: the plain llama forward (llama2.c's run.c, bit-exact) runs it, with RoPE frequencies
  // from rope_freqs when they are given (RoPE scaling).
  bool is_llama_forward() const noexcept {
    return norm == norm_kind::rms && ffn == ffn_kind::silu_gated && residual == residual_kind::sequential && !qkv_bias && !out_bias && !ffn_bias &&
           !output_bias && rot_dims() == head_dim && !learned_positions && scaled_attention && window.empty() && rope == rope_style::adjacent_pairs;
  }
  // ... without RoPE scaling (what `edgelm quantize` writes as a llama GGUF).
  bool is_llama() const noexcept { return is_llama_forward() && rope_freqs.empty(); }
};

// One tensor: where its bytes are and what they are. `data` points into the storage's bytes.
struct tensor_info {
  std::string name;
  ggml_type type = ggml_type::f32;
  std::uint32_t n_dims = 0;
  std::array<std::uint64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous (column) dimension
  std::uint64_t offset = 0;                     // absolute byte offset in the file
  std::uint64_t n_bytes = 0;
  const std::byte* data = nullptr;

  std::uint64_t n_elements() const noexcept { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

enum class token_type : std::int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// Tokenizer data, normalised: pieces use ' ' where SentencePiece stores U+2581 (model "llama"); for a
// byte-level BPE vocabulary (GGUF model "gpt2") the pieces are as stored, in GPT-2's byte alphabet.
struct tokenizer_data {
  std::string model = "llama";     // GGUF tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;                 // GGUF tokenizer.ggml.pre (gpt2): names the pre-tokenizer pattern
  std::vector<std::string> merges; // gpt2: "left right" in rank order
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<token_type> types;
  std::int32_t bos_id = 1;
  std::int32_t eos_id = 2;
  std::int32_t unk_id = 0;
  bool add_bos = true;
  bool add_space_prefix = true;   // SentencePiece dummy prefix
  // The pieces were stored with U+2581 for the space (GGUF, tokenizer.json): a U+2581 in the text is then a space,
  // as SentencePiece's normalizer and llama.cpp make it. llama2.c's tokenizer.bin stores ' ' and run.c byte-encodes
  // a literal U+2581, so it keeps false.
  bool marker_is_space = false;
  std::vector<std::int32_t> eog_ids;  // GGUF tokenizer.ggml.eot_token_id / eom_token_id: more end-of-generation tokens
  std::string chat_template;      // GGUF tokenizer.chat_template ("" when none)
  std::uint32_t max_token_length = 0;
};

enum class file_format : std::uint8_t { gguf, llama2c, safetensors /* a Hugging Face folder: config.json + model*.safetensors */ };

// Everything a loader needs. Owns a reference to the bytes so the tensor views stay valid.
struct model_file {
  file_format format = file_format::gguf;
  model_config config;
  std::vector<tensor_info> tensors;
  tokenizer_data tokenizer;        // empty pieces: no tokenizer inside the file
  std::shared_ptr<detail::byte_owner> bytes;

  const tensor_info* find(std::string_view name) const noexcept {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

}  // namespace edgelm
