// examples/cli/cmd_chat.cpp - `edgelm chat`: a multi-turn conversation from stdin through the model's chat template,
// each turn prefilling only what the KV cache does not hold yet.
#include "cli.hpp"

#include <cinttypes>
#include <cstdio>
#include <iostream>

namespace edgelm_cli {

int cmd_chat(const options& o) {
  auto m = load_model(o);
  if (!m) return fail(err_text(m.error()));
  // The template: a named built-in, a file, or the model's own.
  std::optional<edgelm::chat_template> tpl;
  if (!o.chat_template.empty()) {
    auto t = edgelm::chat_template::builtin(o.chat_template);
    if (!t) return fail(err_text(t.error()));
    tpl = std::move(*t);
  } else if (!o.chat_template_file.empty()) {
    auto text = read_text_file(o.chat_template_file);
    if (!text) return fail("cannot read " + o.chat_template_file);
    auto t = edgelm::chat_template::parse(*text);
    if (!t) return fail(o.chat_template_file + ": " + err_text(t.error()));
    tpl = std::move(*t);
  } else if (!m->tokenizer().chat_template().empty()) {
    auto t = edgelm::chat_template::parse(m->tokenizer().chat_template());
    if (!t)
      return fail("the model's chat template is not supported: " + err_text(t.error()) + "; use --chat-template NAME (one of: " +
                  edgelm::chat_template::builtin_names() + ")");
    tpl = std::move(*t);
  }
  if (!tpl && o.has_system) return fail("--system needs a chat template: the model has none (use --chat-template NAME)");
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  auto s = cli_session::create(*m, session_opts(o, *eng));
  if (!s) return fail(err_text(s.error()));
  edgelm::generate_options g = o.gen;
  g.max_tokens = static_cast<std::uint32_t>(o.n);
  auto sv = edgelm::validate(g.sampling(), m->config().vocab_size);
  if (!sv) return fail(err_text(sv.error()));
  edgelm::chat_options co;
  co.add_generation_prompt = true;
  if (m->tokenizer().bos()) co.bos_token = m->tokenizer().token_text(m->tokenizer().bos());
  if (m->tokenizer().eos()) co.eos_token = m->tokenizer().token_text(m->tokenizer().eos());

  std::vector<edgelm::chat_message> base, msgs;
  if (o.has_system) base.push_back({"system", o.system});
  msgs = base;
  std::string raw;  // no template: the text so far
  if (!tpl) std::fprintf(stderr, "edgelm chat: the model has no chat template: each line continues the text\n");
  std::fprintf(stderr, "edgelm chat: one turn per line; /reset starts over, /exit (or end of input) ends\n");
  std::uint64_t total_prompt = 0, total_prefilled = 0, total_generated = 0;
  std::string line;
  unsigned turn = 0;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit") break;
    if (line == "/reset") { msgs = base; raw.clear(); std::fprintf(stderr, "(conversation reset)\n"); continue; }
    if (line.empty()) continue;
    ++turn;
    std::string rendered;
    edgelm::result<void> pr;
    for (;;) {  // render; while the conversation does not fit the context, drop its oldest turns
      if (tpl) {
        msgs.push_back({"user", line});
        auto r = tpl->apply(msgs, co);
        msgs.pop_back();
        if (!r) return fail(r.error().where == "raise_exception" ? "the chat template refused the conversation: " + r.error().msg : err_text(r.error()));
        rendered = std::move(*r);
        pr = s->prompt_rendered(rendered);
      } else {
        rendered = raw + line;
        pr = s->prompt(rendered);
      }
      if (pr || pr.error().code != edgelm::errc::context_overflow) break;
      const std::size_t first = base.size();
      if (tpl && msgs.size() >= first + 2) {
        msgs.erase(msgs.begin() + static_cast<std::ptrdiff_t>(first), msgs.begin() + static_cast<std::ptrdiff_t>(first + 2));
      } else if (!tpl && !raw.empty()) {
        raw.clear();
      } else {
        break;
      }
      std::fprintf(stderr, "(context full: the oldest turn was dropped)\n");
    }
    if (!pr) {
      std::fprintf(stderr, "edgelm: error: %s\n", err_text(pr.error()).c_str());
      continue;
    }
    const auto prompt_tokens = static_cast<std::uint32_t>(s->tokens().size());
    const std::uint32_t reused = s->reused_tokens();
    const auto t0 = clock_type::now();
    std::string reply;
    auto r = s->continue_generation(g, [&](std::string_view p) { reply += p; safe_print(p); std::fflush(stdout); return true; });
    if (!r) return fail(err_text(r.error()));
    const double sec = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[turn %u: prompt %u tokens, %u reused, %u prefilled, %u generated, %.1f tok/s]\n", turn, prompt_tokens, reused,
                 prompt_tokens - reused, r->generated_tokens, sec > 0 ? r->generated_tokens / sec : 0.0);
    total_prompt += prompt_tokens;
    total_prefilled += prompt_tokens - reused;
    total_generated += r->generated_tokens;
    if (tpl) {
      msgs.push_back({"user", line});
      msgs.push_back({"assistant", edgelm::utf8_replace_invalid(reply)});  // (templates take valid UTF-8 only)
    } else {
      raw = rendered + reply + "\n";
    }
  }
  if (turn > 0)
    std::fprintf(stderr, "[chat: %u turns, %" PRIu64 " prompt tokens, %" PRIu64 " prefilled (%.0f%% reused from the KV cache), %" PRIu64 " generated]\n",
                 turn, total_prompt, total_prefilled, total_prompt ? 100.0 * static_cast<double>(total_prompt - total_prefilled) / static_cast<double>(total_prompt) : 0.0,
                 total_generated);
  return 0;
}

}  // namespace edgelm_cli
