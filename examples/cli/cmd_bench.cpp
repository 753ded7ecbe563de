// examples/cli/cmd_bench.cpp - `edgelm bench`: llama-bench's prefill and decode tests per thread count.
#include "cli.hpp"

#include <algorithm>
#include <cstdio>

namespace edgelm_cli {

// llama-bench's two tests: pp (a prompt of o.pp tokens from position 0, batched) and tg (o.n single-token
// steps from position 0), each the mean of o.reps timed runs after one untimed warm-up run.
int cmd_bench(const options& o) {
  const auto t0 = clock_type::now();
  auto m = load_model(o);
  if (!m) return fail(err_text(m.error()));
  const double load_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
  const long tg = o.n_given ? o.n : 64;
  const auto vocab = m->config().vocab_size;
  // The prompt: BOS, then fixed pseudo-random ids (llama-bench also uses random tokens).
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(o.pp));
  std::uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (std::size_t i = 0; i < prompt.size(); ++i) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    prompt[i] = i == 0 ? std::max(m->tokenizer().bos_id(), 0) : static_cast<std::int32_t>((rng >> 33) % vocab);
  }
  for (long threads : o.threads) {
    auto eng = make_engine(threads);
    if (!eng) return fail(err_text(eng.error()));
    const int rc = m->visit([&](const auto& typed) {
    auto so = state_opts(o, *eng);
    so.context = static_cast<std::uint32_t>(std::max<long>(o.context > 0 ? o.context : o.pp + tg, 1));
    auto st = typed.net.make_state(so);
    if (!st) return fail(err_text(st.error()));
    if (static_cast<std::size_t>(o.pp + tg) > st->context) return fail("-p + -n exceed the context");
    auto run_pp = [&] {
      for (std::size_t pos = 0; pos < prompt.size();) {
        const std::size_t b = std::min<std::size_t>(st->max_batch, prompt.size() - pos);
        const bool last = pos + b == prompt.size();
        typed.net.forward(*st, std::span<const std::int32_t>(prompt.data() + pos, b), static_cast<std::uint32_t>(pos),
                       last ? edgelm::logits_for::last : edgelm::logits_for::none);
        pos += b;
      }
    };
    auto run_tg = [&] {
      std::int32_t tok = std::max(m->tokenizer().bos_id(), 0);
      for (long pos = 0; pos < tg; ++pos) tok = edgelm::argmax(typed.net.forward(*st, tok, static_cast<std::uint32_t>(pos)));
    };
    auto mean_s = [&](auto&& f) {
      f();  // warm-up
      double total = 0;
      for (long r = 0; r < o.reps; ++r) {
        const auto a = clock_type::now();
        f();
        total += std::chrono::duration<double>(clock_type::now() - a).count();
      }
      return total / static_cast<double>(o.reps);
    };
    const double pp_s = o.pp > 0 ? mean_s(run_pp) : 0.0;
    const double tg_s = tg > 0 ? mean_s(run_tg) : 0.0;
    const double pp_tps = pp_s > 0 ? static_cast<double>(o.pp) / pp_s : 0.0, tg_tps = tg_s > 0 ? static_cast<double>(tg) / tg_s : 0.0;
    const std::string kern = m->kernel_target();
    const auto prec = m->precision();
    if (o.json)
      std::printf("{\"model\":\"%s\",\"threads\":%ld,\"pp\":%ld,\"pp_tok_s\":%.2f,\"tg\":%ld,\"tg_tok_s\":%.2f,\"load_ms\":%.1f,\"peak_rss_mb\":%.1f,"
                  "\"kernels\":\"%s\",\"precision\":\"%.*s\",\"batch\":%u,\"kv_type\":\"%s\",\"state_mb\":%.1f}\n",
                  o.model.c_str(), threads, o.pp, pp_tps, tg, tg_tps, load_ms, peak_rss_mb(), kern.c_str(), static_cast<int>(prec.size()), prec.data(),
                  st->max_batch, o.kv == edgelm::kv_type::f16 ? "f16" : "f32", static_cast<double>(st->bytes()) / (1024.0 * 1024.0));
    else
      std::printf("%s  %.*s  %s  threads %ld:  pp%ld %.1f tok/s   tg%ld %.1f tok/s   (load %.0f ms, peak RSS %.1f MB)\n", o.model.c_str(),
                  static_cast<int>(prec.size()), prec.data(), kern.c_str(), threads, o.pp, pp_tps, tg, tg_tps, load_ms, peak_rss_mb());
    std::fflush(stdout);
    return 0;
    });
    if (rc != 0) return rc;
  }
  return 0;
}

}  // namespace edgelm_cli
