// examples/cli/cmd_inspect.cpp - `edgelm inspect`: a model file's config, tensor table and tokenizer summary.
#include "cli.hpp"

#include <cinttypes>
#include <cstdio>
#include <map>

namespace edgelm_cli {

int cmd_inspect(const options& o) {
  auto mf = edgelm::read_model_path(o.model);
  if (!mf) return fail(err_text(mf.error()));
  const auto& c = mf->config;
  std::printf("format: %s\n", mf->format == edgelm::file_format::gguf          ? "GGUF"
                               : mf->format == edgelm::file_format::safetensors ? "Hugging Face (safetensors)"
                                                                                : "llama2.c");
  std::printf("architecture: %s\ndim: %u\nhidden_dim: %u\nn_layers: %u\nn_heads: %u\nn_kv_heads: %u\nhead_dim: %u\nvocab_size: %u\n"
              "context_length: %u\nrope_theta: %g\nnorm_eps: %g\nshared_classifier: %s\n",
              c.arch.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size, c.seq_len, c.rope_theta, c.norm_eps,
              c.shared_classifier ? "yes" : "no");
  std::uint64_t total = 0, bytes = 0;
  std::map<std::string, std::size_t> by_type;
  std::printf("tensors: %zu\n", mf->tensors.size());
  for (const auto& t : mf->tensors) {
    std::printf("  %-28s %-6.*s [", t.name.c_str(), static_cast<int>(edgelm::ggml_type_name(t.type).size()), edgelm::ggml_type_name(t.type).data());
    for (std::uint32_t d = 0; d < t.n_dims; ++d) std::printf(d ? ", %" PRIu64 : "%" PRIu64, t.ne[d]);
    std::printf("]  offset %" PRIu64 "  %" PRIu64 " bytes\n", t.offset, t.n_bytes);
    total += t.n_elements();
    bytes += t.n_bytes;
    ++by_type[std::string(edgelm::ggml_type_name(t.type))];
  }
  std::printf("parameters: %" PRIu64 " (%" PRIu64 " bytes of tensor data)\n", total, bytes);
  for (auto& [k, v] : by_type) std::printf("  %zu tensors of type %s\n", v, k.c_str());
  edgelm::tokenizer_data td = mf->tokenizer;
  if (td.pieces.empty() && !o.tokenizer.empty()) {
    auto ts = edgelm::file_storage::open(o.tokenizer);
    if (!ts) return fail(err_text(ts.error()));
    auto t = edgelm::load_tokenizer(ts->bytes(), c.vocab_size);
    if (!t) return fail(err_text(t.error()));
    td = t->data();
  }
  if (td.pieces.empty()) {
    std::printf("tokenizer: none in the file (pass -z TOKENIZER)\n");
  } else {
    std::size_t counts[7] = {};
    for (auto ty : td.types) ++counts[static_cast<int>(ty)];
    const std::string kind = td.model == "gpt2" ? "byte-level BPE (" + std::to_string(td.merges.size()) + " merges, pre-tokenizer " +
                                                      (td.pre.empty() ? std::string("default") : td.pre) + ")"
                                                : std::string("SentencePiece BPE");
    std::printf("tokenizer: %s, %zu tokens (normal %zu, control %zu, byte %zu, unknown %zu, user %zu, unused %zu), "
                "bos %d eos %d unk %d, add_bos %s, max piece %u bytes%s\n",
                kind.c_str(), td.pieces.size(), counts[1], counts[3], counts[6], counts[2], counts[4], counts[5], td.bos_id, td.eos_id, td.unk_id,
                td.add_bos ? "yes" : "no", td.max_token_length, td.chat_template.empty() ? "" : ", chat template");
  }
  return 0;
}

}  // namespace edgelm_cli
