// examples/cli/cmd_logits.cpp - `edgelm logits`: every vocabulary logit at every position of an id sequence.
#include "cli.hpp"

#include <cstdio>

namespace edgelm_cli {

int cmd_logits(const options& o) {
  auto m = load_model(o);
  if (!m) return fail(err_text(m.error()));
  std::vector<std::int32_t> ids;
  if (auto e = parse_ids(o.ids, m->config().vocab_size, ids); !e.empty()) return fail("--ids: " + e);
  if (ids.empty()) return fail("--ids is empty");
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  return m->visit([&](const auto& typed) {
    auto so = state_opts(o, *eng);
    so.all_logits = true;
    auto st = typed.net.make_state(so);
    if (!st) return fail(err_text(st.error()));
    if (ids.size() > st->context) return fail("more ids than the context holds");
    const std::size_t vocab = typed.config().vocab_size;
    for (std::size_t pos = 0; pos < ids.size();) {
      const std::size_t b = std::min<std::size_t>(st->max_batch, ids.size() - pos);
      auto logits = typed.net.forward(*st, std::span<const std::int32_t>(ids.data() + pos, b), static_cast<std::uint32_t>(pos), edgelm::logits_for::all);
      for (std::size_t t = 0; t < b; ++t) {
        for (std::size_t i = 0; i < vocab; ++i) std::printf(i ? " %.9g" : "%.9g", static_cast<double>(logits[t * vocab + i]));
        std::printf("\n");
      }
      pos += b;
    }
    return 0;
  });
}

}  // namespace edgelm_cli
