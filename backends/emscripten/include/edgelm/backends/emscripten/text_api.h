/* edgelm/backends/emscripten/text_api.h - the C ABI of edgelm-text.wasm (backends/emscripten/src/edgelm_text.cpp):
 * chat templates rendered by edgelm's Jinja-subset interpreter (edgelm/text/chat_template.hpp), as Hugging Face's
 * apply_chat_template(messages, tokenize=False) renders them. A module of its own, loaded by the JS package's Worker
 * on the first lm.chat() call, so that the engine module (c_api.h) stays small.
 *
 * Strings in: UTF-8. Out: edgelm_text_out() (valid until the next call). Errors: -1, message in edgelm_text_error().
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* edgelm_text_error(void);
const char* edgelm_text_out(void);
/* The built-in templates' names, comma separated ("chatml, smollm2, ..."). */
const char* edgelm_text_builtins(void);

/* Render a conversation. The template: builtin (a name, NUL-terminated) when non-NULL and non-empty, else the Jinja
 * text tpl[0..tpl_len). Messages: n_messages (role, content) pairs whose bytes are back to back in `strings`, with
 * lens[2i] = role i's length and lens[2i+1] = content i's. bos / eos: the bos_token / eos_token strings passed to
 * the template (NULL: undefined). Returns the rendered length (text at edgelm_text_out()), or -1. */
int edgelm_text_render(const char* tpl, size_t tpl_len, const char* builtin, const char* strings, const uint32_t* lens, uint32_t n_messages,
                       const char* bos, const char* eos, int add_generation_prompt);

#ifdef __cplusplus
}
#endif
