// tests/fuzz/fuzz_chat_template.cpp - libFuzzer target: hostile chat templates (and message text)
// through the Jinja-subset parser and renderer. Input: TEMPLATE [\0 MESSAGE TEXT]. The template is
// parsed and rendered for a fixed three-turn conversation (the message text, when given, is every
// message's content), with and without the generation prompt, under small limits so each run is
// fast. Any crash, hang, sanitizer report or an output over the limit is a finding; errors are fine.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_chat_template.cpp -o fuzz_chat_template
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <edgelm/text/chat_template.hpp>

#define EDGELM_FUZZ_ASSERT(cond) \
  do {                           \
    if (!(cond)) __builtin_trap(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = in.find('\0');
  const std::string_view tpl = in.substr(0, cut);
  const std::string text = cut == std::string_view::npos ? std::string("Hello {{ x }}") : std::string(in.substr(cut + 1));

  edgelm::jinja::limits lim;
  lim.max_steps = 200000;
  lim.max_output_bytes = 1u << 20;
  auto t = edgelm::chat_template::parse(tpl, lim);
  if (!t) return 0;
  edgelm::chat_options o;
  o.render.lim = lim;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  std::tm fixed{};
  fixed.tm_year = 124;
  fixed.tm_mday = 1;
  o.render.now = fixed;
  for (bool agp : {true, false}) {
    o.add_generation_prompt = agp;
    auto r = t->apply({{"system", text}, {"user", text}, {"assistant", text}}, o);
    if (r) EDGELM_FUZZ_ASSERT(r->size() <= lim.max_output_bytes);
    else EDGELM_FUZZ_ASSERT(!r.error().message().empty());
  }
  return 0;
}
