// examples/cli/cmd_run.cpp - `edgelm run`: the prompt, then the generated text, as llama2.c's run.c prints them.
#include "cli.hpp"

#include <cstdio>

namespace edgelm_cli {

int cmd_run(const options& o) {
  const auto t0 = clock_type::now();
  auto m = load_model(o);
  if (!m) return fail(err_text(m.error()));
  const auto t_load = clock_type::now();
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  auto s = cli_session::create(*m, session_opts(o, *eng));
  if (!s) return fail(err_text(s.error()));
  auto sv = edgelm::validate(o.gen.sampling(), m->config().vocab_size);
  if (!sv) return fail(err_text(sv.error()));
  const auto& tok = m->tokenizer();

  // Prompt: BOS + text (an empty prompt is BOS alone). Print it as run.c does, piece by piece.
  const auto t_prompt0 = clock_type::now();
  std::vector<std::int32_t> ids;
  if (!o.ids.empty()) {  // the prompt as token ids (runs without a tokenizer with --print-ids)
    if (auto e = parse_ids(o.ids, m->config().vocab_size, ids); !e.empty()) return fail("--ids: " + e);
  } else {
    ids = tok.encode(o.prompt, true);
    if (ids.empty() && tok.bos()) ids.push_back(*tok.bos());
  }
  if (ids.empty())
    return fail(tok.vocab_size() == 0 ? "the model has no tokenizer: give the prompt as --ids" : "the prompt is empty and the tokenizer adds no BOS: give -p TEXT or --ids");
  auto pr = s->set_tokens(ids);
  if (!pr) return fail(err_text(pr.error()));
  const auto t_prompt = clock_type::now();
  if (!o.print_ids)
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (ids[i] != tok.bos_id()) safe_print(tok.decode_piece(ids[i], i == 0 || ids[i - 1] == tok.bos_id()));
  s->reset_sampler(o.gen.sampling());
  s->set_logprobs(static_cast<std::uint32_t>(o.logprobs));
  std::vector<std::int32_t> generated;
  for (long i = 0; i < o.n; ++i) {
    auto r = s->step();
    if (!r) return fail(err_text(r.error()));
    if (o.logprobs > 0) {  // one line per sampled token on stderr: id, logprob, then the top alternatives
      std::fprintf(stderr, "logprobs %ld: %d %.6f |", i, r->token, static_cast<double>(r->logprob));
      for (const auto& c : r->top) std::fprintf(stderr, " %d:%.6f", c.token, static_cast<double>(c.logprob));
      std::fprintf(stderr, "\n");
    }
    if (r->done && r->piece.empty()) break;  // BOS or an end-of-generation token: not text
    generated.push_back(r->token);
    if (o.print_ids) std::printf(generated.size() == 1 ? "%d" : " %d", r->token);
    else safe_print(r->piece);
    std::fflush(stdout);
    if (r->done) break;
  }
  std::printf("\n");
  const auto t_end = clock_type::now();
  const double load_s = std::chrono::duration<double>(t_load - t0).count();
  const double prompt_s = std::chrono::duration<double>(t_prompt - t_prompt0).count();
  const double gen_s = std::chrono::duration<double>(t_end - t_prompt).count();
  const double gen_tps = gen_s > 0 ? static_cast<double>(generated.size()) / gen_s : 0.0;
  std::fprintf(stderr, "achieved tok/s: %f\n", gen_tps);
  if (o.stats) {
    // The memory bar: peak RSS against the mapped file plus the KV cache.
    const double kv_mb = static_cast<double>(s->kv_bytes()) / (1024.0 * 1024.0);
    const double file_mb = static_cast<double>(m->file().bytes->bytes().size()) / (1024.0 * 1024.0);
    const auto prec = m->precision();
    std::fprintf(stderr,
                 "{\"load_s\":%.6f,\"prompt_tokens\":%zu,\"prompt_tok_per_s\":%.2f,\"generated_tokens\":%zu,\"gen_tok_per_s\":%.2f,"
                 "\"peak_rss_mb\":%.2f,\"kernels\":\"%.*s\",\"precision\":\"%.*s\",\"file_mb\":%.2f,\"kv_cache_mb\":%.2f,"
                 "\"tensors_in_place\":%zu,\"tensors_converted\":%zu}\n",
                 load_s, ids.size(), prompt_s > 0 ? static_cast<double>(ids.size()) / prompt_s : 0.0, generated.size(), gen_tps, peak_rss_mb(),
                 static_cast<int>(m->kernels().size()), m->kernels().data(), static_cast<int>(prec.size()), prec.data(), file_mb, kv_mb,
                 m->tensors_in_place(), m->tensors_converted());
  }
  return 0;
}

}  // namespace edgelm_cli
