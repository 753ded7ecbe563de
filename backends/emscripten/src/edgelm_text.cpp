// backends/emscripten/src/edgelm_text.cpp - the C ABI of edgelm-text.wasm (text_api.h): chat templates rendered by
// edgelm's Jinja-subset interpreter (include/edgelm/text/chat_template.hpp, the renderer `edgelm chat` and
// `edgelm template` use), in a module of its own so that the engine's .wasm does not carry it. The JS package's
// Worker loads it on the first lm.chat() call; the rendered text then goes to the engine module, which tokenizes it
// (special tokens parsed, nothing added: session::prompt_rendered).
// The library throws nothing; this file adds no exceptions, no printing and no ASYNCIFY. Its only state is the
// last result and error of the C ABI (the library itself keeps no global state).
#include <edgelm/backends/emscripten/text_api.h>

#include <edgelm/text/chat_template.hpp>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#if defined(__EMSCRIPTEN__)
#include <emscripten/emscripten.h>
#define EDGELM_EXPORT EMSCRIPTEN_KEEPALIVE
#else
#define EDGELM_EXPORT
#endif

namespace {
std::string g_out;    // the last rendering (or the built-in names)
std::string g_error;  // the last error
}  // namespace

extern "C" {

EDGELM_EXPORT const char* edgelm_text_error(void) { return g_error.c_str(); }
EDGELM_EXPORT const char* edgelm_text_out(void) { return g_out.data(); }

EDGELM_EXPORT const char* edgelm_text_builtins(void) {
  g_out = edgelm::chat_template::builtin_names();
  return g_out.c_str();
}

EDGELM_EXPORT int edgelm_text_render(const char* tpl, size_t tpl_len, const char* builtin, const char* strings, const uint32_t* lens,
                                     uint32_t n_messages, const char* bos, const char* eos, int add_generation_prompt) {
  g_out.clear();
  auto t = builtin && *builtin ? edgelm::chat_template::builtin(builtin)
                               : edgelm::chat_template::parse(std::string_view(tpl ? tpl : "", tpl ? tpl_len : 0));
  if (!t) {
    g_error = builtin && *builtin ? t.error().message() : "the model's chat template is not supported: " + t.error().message() +
                                                              " (pass chatTemplate: NAME, one of: " + edgelm::chat_template::builtin_names() + ")";
    return -1;
  }
  if (n_messages > 0 && (!strings || !lens)) {
    g_error = "invalid_argument: no message data";
    return -1;
  }
  std::vector<edgelm::chat_message> msgs;
  msgs.reserve(n_messages);
  const char* p = strings;
  for (uint32_t i = 0; i < n_messages; ++i) {
    edgelm::chat_message m;
    m.role.assign(p, lens[2 * i]);
    p += lens[2 * i];
    m.content.assign(p, lens[2 * i + 1]);
    p += lens[2 * i + 1];
    msgs.push_back(std::move(m));
  }
  edgelm::chat_options o;
  o.add_generation_prompt = add_generation_prompt != 0;
  if (bos) o.bos_token = std::string(bos);
  if (eos) o.eos_token = std::string(eos);
  auto r = t->apply(std::span<const edgelm::chat_message>(msgs), o);
  if (!r) {
    g_error = r.error().where == "raise_exception" ? "the chat template refused the conversation: " + r.error().msg : r.error().message();
    return -1;
  }
  g_out = std::move(*r);
  return static_cast<int>(g_out.size());
}

}  // extern "C"
