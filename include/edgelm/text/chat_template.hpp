// edgelm/text/chat_template.hpp - a conversation -> the prompt text, rendered by the model's own
// chat_template (GGUF `tokenizer.chat_template` or tokenizer_config.json) exactly as Hugging Face's
// apply_chat_template renders it with jinja2, or by a named built-in (the real template text of a
// model family, chat_builtins.hpp) when the model has none.
//
//   auto tpl = edgelm::chat_template::parse(text);             // result<chat_template>
//   edgelm::chat_options o;  o.bos_token = "<s>";  o.eos_token = "</s>";
//   auto prompt = tpl->apply({{"system", "Be brief."}, {"user", "Hi"}}, o);   // result<std::string>
//
// What is passed to the template is what transformers passes: messages, add_generation_prompt,
// tools (none unless given), documents (none), bos_token / eos_token when known, plus `extra`.
// Bad input (a template that does not parse, uses an unsupported construct or raises; a message
// with an empty or odd role, invalid UTF-8) is an error value, never a crash; rendering is bounded
// by jinja::limits (nesting, output size, work).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/reader.hpp"
#include "../core/result.hpp"
#include "../formats/gguf.hpp"
#include "chat_builtins.hpp"
#include "jinja_render.hpp"

namespace edgelm {

struct chat_message {
  std::string role;     // "system", "user", "assistant", "tool", ...
  std::string content;  // UTF-8 text
};

struct chat_options {
  bool add_generation_prompt = true;        // end with the assistant's header, ready to generate
  std::optional<std::string> bos_token;     // passed as bos_token when set (as HF's special tokens)
  std::optional<std::string> eos_token;
  std::vector<std::pair<std::string, std::string>> other_tokens;  // unk_token, pad_token, ... when known
  jinja::value tools;                       // a list of tool schemas; undefined: tools=None
  jinja::value extra;                       // a dict of further template variables (date_string, ...)
  jinja::render_options render;             // limits, strftime_now's time
};

namespace detail {

// A role is 1..64 ASCII letters, digits, '_' or '-' (every role the real templates know).
inline bool valid_role(std::string_view r) noexcept {
  if (r.empty() || r.size() > 64) return false;
  for (char c : r)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

}  // namespace detail

// Checks a messages value (a list of dicts with a string role and content that is a string, none
// or a list; other keys such as tool_calls pass through). Errors name the message index.
inline result<void> validate_messages(const jinja::value& messages) {
  if (!messages.is_list()) return make_error(errc::invalid_argument, "messages must be a list", error::no_offset, "messages");
  const auto& items = messages.items();
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const auto& m = items[i];
    if (!m.is_dict()) return make_error(errc::invalid_argument, "a message must be an object with role and content", error::no_offset, where);
    const jinja::value* role = m.find("role");
    if (!role || !role->is_string()) return make_error(errc::invalid_argument, "message role missing or not a string", error::no_offset, where);
    if (!detail::valid_role(role->str()))
      return make_error(errc::invalid_argument, "bad message role '" + role->str().substr(0, 80) + "' (1..64 letters, digits, '_' or '-')",
                        error::no_offset, where);
    const jinja::value* content = m.find("content");
    if (!content) return make_error(errc::invalid_argument, "message has no content", error::no_offset, where);
    if (!content->is_string() && !content->is_none() && !content->is_list())
      return make_error(errc::invalid_argument, "message content must be a string, null or a list of parts", error::no_offset, where);
    if (content->is_string() && !detail::valid_utf8(content->str()))
      return make_error(errc::invalid_utf8, "message content is not valid UTF-8", error::no_offset, where);
  }
  return {};
}

// chat_message list -> the messages value a template sees.
inline result<jinja::value> messages_value(std::span<const chat_message> msgs) {
  jinja::list_type list;
  list.reserve(msgs.size());
  for (const auto& m : msgs)
    list.push_back(jinja::value::dict({{"role", jinja::value::string(m.role)}, {"content", jinja::value::string(m.content)}}));
  jinja::value v = jinja::value::list(std::move(list));
  EDGELM_TRY(validate_messages(v));
  return v;
}

class chat_template {
 public:
  // Parses a template's text. Errors: invalid_argument naming the construct and its line/column.
  static result<chat_template> parse(std::string_view source, const jinja::limits& lim = {}) {
    if (!detail::valid_utf8(source)) return make_error(errc::invalid_utf8, "chat template is not valid UTF-8", error::no_offset, "chat_template");
    auto p = jinja::parse_program(source, lim);
    if (!p) return p.error();
    chat_template t;
    t.prog_ = std::make_shared<const jinja::program>(std::move(*p));
    return t;
  }

  // A named built-in ("chatml", "llama3", ...; see builtin_chat_templates). Unknown names are an
  // error listing the known ones.
  static result<chat_template> builtin(std::string_view name, const jinja::limits& lim = {}) {
    for (const auto& b : builtin_chat_templates)
      if (b.name == name) {
        auto t = parse(b.source, lim);
        if (t) t->builtin_ = &b;
        return t;
      }
    return make_error(errc::invalid_argument, "unknown built-in chat template '" + std::string(name) + "' (known: " + builtin_names() + ")",
                      error::no_offset, "chat_template");
  }

  static std::string builtin_names() {
    std::string s;
    for (const auto& b : builtin_chat_templates) {
      if (!s.empty()) s += ", ";
      s += b.name;
    }
    return s;
  }

  // The built-in this template is (by name, or by identical text), or nullptr.
  const builtin_chat_template* recognised() const {
    if (builtin_) return builtin_;
    for (const auto& b : builtin_chat_templates)
      if (jinja::normalise_template(b.source) == prog_->source) return &b;
    return nullptr;
  }

  // Renders `messages` (a list value, see validate_messages).
  result<std::string> apply(const jinja::value& messages, const chat_options& o = {}) const {
    EDGELM_TRY(validate_messages(messages));
    jinja::dict_type ctx;
    ctx.emplace_back("messages", messages);
    ctx.emplace_back("tools", o.tools.is_undefined() ? jinja::value::none() : o.tools);
    ctx.emplace_back("documents", jinja::value::none());
    ctx.emplace_back("add_generation_prompt", jinja::value::boolean(o.add_generation_prompt));
    if (o.bos_token) ctx.emplace_back("bos_token", jinja::value::string(*o.bos_token));
    if (o.eos_token) ctx.emplace_back("eos_token", jinja::value::string(*o.eos_token));
    for (const auto& [k, v] : o.other_tokens) ctx.emplace_back(k, jinja::value::string(v));
    for (const auto& kv : o.extra.entries()) {
      bool replaced = false;
      for (auto& c : ctx)
        if (c.first == kv.first) { c.second = kv.second; replaced = true; }
      if (!replaced) ctx.push_back(kv);
    }
    return jinja::render(*prog_, jinja::value::dict(std::move(ctx)), o.render);
  }
  result<std::string> apply(std::span<const chat_message> msgs, const chat_options& o = {}) const {
    auto v = messages_value(msgs);
    if (!v) return v.error();
    return apply(*v, o);
  }
  result<std::string> apply(std::initializer_list<chat_message> msgs, const chat_options& o = {}) const {
    return apply(std::span<const chat_message>(msgs.begin(), msgs.size()), o);
  }

  const std::string& source() const noexcept { return prog_->source; }  // normalised text

 private:
  std::shared_ptr<const jinja::program> prog_;
  const builtin_chat_template* builtin_ = nullptr;
};

// What a model file says about chat: its template text (empty: none) and special-token strings.
struct chat_template_info {
  std::string chat_template;
  std::optional<std::string> bos_token, eos_token;
  // The other special tokens HF passes to templates (unk_token, pad_token, ...), when the file names them.
  std::vector<std::pair<std::string, std::string>> other_tokens;
};

// From a GGUF's metadata: tokenizer.chat_template, and the bos/eos strings of
// tokenizer.ggml.tokens[tokenizer.ggml.bos_token_id / eos_token_id] (when present and in range).
inline result<chat_template_info> gguf_chat_template(const gguf_file& g) {
  chat_template_info info;
  if (const gguf_value* t = g.find("tokenizer.chat_template")) {
    if (t->type != gguf_type::string) return make_error(errc::bad_key_type, "must be a string", error::no_offset, "tokenizer.chat_template");
    info.chat_template = t->s;
  }
  const gguf_value* toks = g.find("tokenizer.ggml.tokens");
  auto token = [&](const char* key) -> std::optional<std::string> {
    const gguf_value* id = g.find(key);
    if (!toks || toks->type != gguf_type::array || toks->elem_type != gguf_type::string || !id || !id->is_integer()) return std::nullopt;
    const std::uint64_t i = id->is_signed() ? static_cast<std::uint64_t>(id->i < 0 ? UINT64_MAX : static_cast<std::uint64_t>(id->i)) : id->u;
    if (i >= toks->size()) return std::nullopt;
    return toks->at(static_cast<std::size_t>(i)).s;
  };
  info.bos_token = token("tokenizer.ggml.bos_token_id");
  info.eos_token = token("tokenizer.ggml.eos_token_id");
  if (auto t = token("tokenizer.ggml.unknown_token_id")) info.other_tokens.emplace_back("unk_token", *t);
  if (auto t = token("tokenizer.ggml.padding_token_id")) info.other_tokens.emplace_back("pad_token", *t);
  return info;
}

}  // namespace edgelm
