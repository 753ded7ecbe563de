// examples/cli/cmd_quantize.cpp - `edgelm quantize`: any loadable model -> a uniform GGUF that llama.cpp loads.
#include "cli.hpp"

#include <edgelm/formats/gguf_vocab.hpp>
#include <edgelm/quantize.hpp>

#include <cinttypes>
#include <cstdio>

namespace edgelm_cli {

int cmd_quantize(const options& o) {
  auto mf = edgelm::read_model_path(o.in_file);  // a model file or a Hugging Face folder
  if (!mf) return fail(err_text(mf.error()));
  if (mf->format == edgelm::file_format::safetensors) {
    if (!o.tokenizer.empty()) return fail("-z is for llama2.c inputs");
    if (auto lay = edgelm::detail::family_gguf_layout(mf->config); !lay) return fail(err_text(lay.error()));  // (before any warning)
    // the folder's tokenizer.json (+ tokenizer_config.json) as the GGUF vocabulary, where a GGUF can say it
    if (auto tj = read_text_file(o.in_file + "/tokenizer.json")) {
      const auto cfg = read_text_file(o.in_file + "/tokenizer_config.json");
      auto src = edgelm::read_tokenizer_json(*tj, cfg ? std::string_view(*cfg) : std::string_view{});
      if (!src) return fail("tokenizer.json: " + err_text(src.error()));
      auto td = edgelm::gguf_vocab_of(*src, mf->config.vocab_size);
      if (td) mf->tokenizer = std::move(*td);
      else std::fprintf(stderr, "edgelm: warning: tokenizer.json not embedded (%s): the output runs on token ids\n", err_text(td.error()).c_str());
    } else {
      std::fprintf(stderr, "edgelm: warning: the folder has no tokenizer.json: the output runs on token ids\n");
    }
  } else if (!o.tokenizer.empty()) {
    if (mf->format != edgelm::file_format::llama2c) return fail("-z is for llama2.c inputs; a GGUF input keeps its own tokenizer");
    auto ts = edgelm::file_storage::open(o.tokenizer);
    if (!ts) return fail(err_text(ts.error()));
    auto td = edgelm::read_llama2c_tokenizer(ts->bytes(), mf->config.vocab_size);
    if (!td) return fail(err_text(td.error()));
    mf->tokenizer = std::move(*td);
  } else if (mf->format == edgelm::file_format::llama2c) {
    std::fprintf(stderr, "edgelm: warning: no -z TOKENIZER: the output has no vocabulary (it runs on token ids)\n");
  }
  edgelm::quantize_options qo;
  qo.type = o.type == "f32" ? edgelm::ggml_type::f32 : o.type == "f16" ? edgelm::ggml_type::f16 : o.type == "q8_0" ? edgelm::ggml_type::q8_0 : edgelm::ggml_type::q4_0;
  qo.fallback_type = o.fallback == "f32" ? edgelm::ggml_type::f32 : edgelm::ggml_type::f16;
  qo.q4_0_reference = o.q4_0_reference;
  qo.name = o.name;
  qo.log.fn = log_always;  // fallbacks are always reported
  // Write to OUT.tmp and rename, so a failed run never leaves a truncated OUT behind.
  const std::string tmp = o.out_file + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return fail("cannot create '" + tmp + "'");
  const auto t0 = clock_type::now();
  auto r = edgelm::quantize_model(*mf, qo, [&](std::span<const std::byte> b) { return std::fwrite(b.data(), 1, b.size(), f) == b.size(); });
  const bool closed = std::fclose(f) == 0;
  if (!r || !closed) {
    std::remove(tmp.c_str());
    return fail(r ? "write error on '" + tmp + "'" : err_text(r.error()));
  }
  if (std::rename(tmp.c_str(), o.out_file.c_str()) != 0) {
    std::remove(tmp.c_str());
    return fail("cannot rename '" + tmp + "' to '" + o.out_file + "'");
  }
  std::fprintf(stderr, "edgelm: wrote %s: %" PRIu64 " bytes (%.2f MB, from %.2f MB of input tensors) in %.2f s\n", o.out_file.c_str(), r->bytes_out,
               static_cast<double>(r->bytes_out) / 1e6, static_cast<double>(r->bytes_in) / 1e6,
               std::chrono::duration<double>(clock_type::now() - t0).count());
  return 0;
}

}  // namespace edgelm_cli
