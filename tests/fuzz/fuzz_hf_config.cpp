// tests/fuzz/fuzz_hf_config.cpp - libFuzzer target: Hugging Face config.json [+ "\n\x01\n" + generation_config.json]
// through read_hf_config and the llama mapping, and the same text as a model.safetensors.index.json through
// read_hf_index. Whatever is accepted must keep the promises the family binders rely on.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include -I tests \
//     tests/fuzz/fuzz_hf_config.cpp -o fuzz_hf_config
//   ./fuzz_hf_config -dict=tests/fuzz/hf_config.dict -max_len=65536 corpus_dir tests/fuzz/corpus/fuzz_hf_config
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <edgelm/formats/hf_config.hpp>
#include <edgelm/formats/hf_model.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using edgelm::limits;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t sep = in.find("\n\x01\n");
  const std::string_view cfg = in.substr(0, sep), gen = sep == std::string_view::npos ? std::string_view{} : in.substr(sep + 3);

  if (auto ix = edgelm::read_hf_index(in)) {
    for (const auto& s : ix->shards) EDGELM_FUZZ_ASSERT(edgelm::detail::safe_file_name(s));
    EDGELM_FUZZ_ASSERT(ix->weight_map.size() <= limits::max_tensors && ix->shards.size() <= ix->weight_map.size());
  }
  auto c = edgelm::read_hf_config(cfg, gen);
  if (!c) {
    EDGELM_FUZZ_ASSERT(c.error().code != edgelm::errc::ok);
    return 0;
  }
  EDGELM_FUZZ_ASSERT(c->hidden_size > 0 && c->hidden_size <= limits::max_dim);
  EDGELM_FUZZ_ASSERT(c->num_hidden_layers > 0 && c->num_hidden_layers <= limits::max_layers);
  EDGELM_FUZZ_ASSERT(c->vocab_size > 0 && c->vocab_size <= limits::max_vocab);
  EDGELM_FUZZ_ASSERT(c->intermediate_size > 0 && c->intermediate_size <= 4 * limits::max_dim);
  EDGELM_FUZZ_ASSERT(c->max_position_embeddings > 0 && c->max_position_embeddings <= limits::max_context);
  EDGELM_FUZZ_ASSERT(c->num_attention_heads > 0 && c->num_key_value_heads > 0 && c->num_attention_heads % c->num_key_value_heads == 0);
  EDGELM_FUZZ_ASSERT(c->head_dim > 0 && std::uint64_t{c->head_dim} * c->num_attention_heads <= limits::max_dim);
  EDGELM_FUZZ_ASSERT(c->norm_eps > 0 && c->norm_eps < 1 && c->rope_theta > 0);
  if (c->learned_positions) EDGELM_FUZZ_ASSERT(c->rotary_dim == 0 && c->head_dim * c->num_attention_heads == c->hidden_size);
  else EDGELM_FUZZ_ASSERT(c->rotary_dim > 0 && c->rotary_dim <= c->head_dim && c->rotary_dim % 2 == 0);
  EDGELM_FUZZ_ASSERT(c->attention_layers.empty() || c->attention_layers.size() == c->num_hidden_layers);
  for (auto id : c->eos()) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::uint64_t>(id) < limits::max_vocab);
  if (auto m = edgelm::detail::hf_llama_config(*c)) {
    EDGELM_FUZZ_ASSERT(m->dim == m->head_dim * m->n_heads && m->n_heads % m->n_kv_heads == 0 && m->head_dim % 2 == 0);
    EDGELM_FUZZ_ASSERT(m->seq_len > 0 && m->seq_len <= limits::max_context);
  }
  return 0;
}
