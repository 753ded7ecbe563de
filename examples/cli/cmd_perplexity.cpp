// examples/cli/cmd_perplexity.cpp - `edgelm perplexity`: llama-perplexity's method and output on a text file.
#include "cli.hpp"

#include <edgelm/perplexity.hpp>

#include <cinttypes>
#include <cstdio>

namespace edgelm_cli {

// llama-perplexity's output: "[1]12.3456,[2]..." then "Final estimate: PPL = X +/- Y" (stdout),
// progress and sizes on stderr.
int cmd_perplexity(const options& o) {
  auto text = read_text_file(o.text_file);
  if (!text) return fail("cannot read '" + o.text_file + "'");
  auto m = load_model(o);
  if (!m) return fail(err_text(m.error()));
  edgelm::perplexity_options po;
  po.context = o.context > 0 ? static_cast<std::uint32_t>(o.context) : 512;
  po.max_chunks = static_cast<std::uint32_t>(o.chunks);
  po.batch = static_cast<std::uint32_t>(o.batch);
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  po.exec = eng->exec;
  if (po.context > m->config().seq_len)
    std::fprintf(stderr, "edgelm: warning: the model was trained on only %u context tokens (%u specified)\n", m->config().seq_len, po.context);
  const auto t0 = clock_type::now();
  const auto ids = m->tokenizer().encode(*text, m->tokenizer().add_bos());
  const auto prec = m->precision();
  std::fprintf(stderr, "edgelm: perplexity: %zu tokens, n_ctx=%u, %.*s kernels, %.*s weights\n", ids.size(), po.context,
               static_cast<int>(m->kernels().size()), m->kernels().data(), static_cast<int>(prec.size()), prec.data());
  auto r = m->visit([&](const auto& typed) {
    return edgelm::perplexity(typed, std::span<const std::int32_t>(ids), po, [](std::uint32_t i, double running) {
      std::printf("[%u]%.4lf,", i + 1, running);
      std::fflush(stdout);
      return true;
    });
  });
  if (!r) return fail(err_text(r.error()));
  std::printf("\n");
  if (r->ppl_stderr > 0) std::printf("Final estimate: PPL = %.4lf +/- %.5lf\n", r->ppl, r->ppl_stderr);
  else std::printf("Final estimate: PPL = %.4lf\n", r->ppl);
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::fprintf(stderr, "edgelm: perplexity: %u chunks, %" PRIu64 " tokens scored, %.2f s (%.1f tokens/s evaluated)\n", r->n_chunks, r->count, secs,
               secs > 0 ? static_cast<double>(r->n_chunks) * (po.context - 1) / secs : 0.0);
  return 0;
}

}  // namespace edgelm_cli
