// edgelm/text/chat_json.hpp - JSON inputs of chat templating: a messages file
// ([{"role": "user", "content": "Hi"}, ...], extra keys such as tool_calls kept), a tools list, and
// a tokenizer_config.json (chat_template, bos_token, eos_token). Parsed with nlohmann::json without
// exceptions (json::parse(..., nullptr, false) and checked accessors); nesting deeper than
// max_json_depth is refused before parsing, so hostile input cannot exhaust the stack.
// Separate from chat_template.hpp so that users who do not read JSON do not pull in nlohmann.
#pragma once
#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "../detail/json.hpp"
#include "chat_template.hpp"

namespace edgelm {

// Any JSON value -> a template value (objects keep their key order, as Python's json module).
inline jinja::value json_to_value(const nlohmann::ordered_json& j, int depth = 0) {
  using jinja::value;
  if (depth > max_json_depth) return value::none();
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return value::none();
    case nlohmann::ordered_json::value_t::boolean: return value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return value::integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return value::number(static_cast<double>(u));
      return value::integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return value::string(j.get_ref<const std::string&>());
    case nlohmann::ordered_json::value_t::array: {
      jinja::list_type l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(json_to_value(x, depth + 1));
      return value::list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      jinja::dict_type d;
      d.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), json_to_value(it.value(), depth + 1));
      return value::dict(std::move(d));
    }
    default: return value::none();
  }
}

// A messages file: a JSON list of {"role", "content", ...} objects, validated (validate_messages).
inline result<jinja::value> parse_messages_json(std::string_view text) {
  auto j = detail::parse_json(text, "messages");
  if (!j) return j.error();
  if (!j->is_array()) return make_error(errc::invalid_argument, "messages JSON must be a list of {\"role\", \"content\"} objects", error::no_offset, "messages");
  jinja::value v = json_to_value(*j);
  EDGELM_TRY(validate_messages(v));
  return v;
}

// A tools file: a JSON list of tool (function) schemas, passed to the template as `tools`.
inline result<jinja::value> parse_tools_json(std::string_view text) {
  auto j = detail::parse_json(text, "tools");
  if (!j) return j.error();
  if (!j->is_array()) return make_error(errc::invalid_argument, "tools JSON must be a list", error::no_offset, "tools");
  return json_to_value(*j);
}

// tokenizer_config.json: chat_template (a string, or a list of {"name", "template"} where "default"
// is used), and bos_token / eos_token (strings or {"content": ...} objects; null or absent: unset).
inline result<chat_template_info> tokenizer_config_chat_template(std::string_view text) {
  auto j = detail::parse_json(text, "tokenizer_config.json");
  if (!j) return j.error();
  if (!j->is_object()) return make_error(errc::invalid_argument, "tokenizer_config.json must be a JSON object", error::no_offset, "tokenizer_config.json");
  chat_template_info info;
  auto it = j->find("chat_template");
  if (it != j->end() && !it->is_null()) {
    if (it->is_string()) info.chat_template = it->get_ref<const std::string&>();
    else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_object()) continue;
        auto n = e.find("name");
        auto t = e.find("template");
        if (n != e.end() && n->is_string() && t != e.end() && t->is_string() && n->get_ref<const std::string&>() == "default")
          info.chat_template = t->get_ref<const std::string&>();
      }
      if (info.chat_template.empty())
        return make_error(errc::invalid_argument, "chat_template list has no template named \"default\"", error::no_offset, "chat_template");
    } else return make_error(errc::bad_key_type, "chat_template must be a string or a list of {name, template}", error::no_offset, "chat_template");
  }
  auto token = [&](const char* key) -> result<std::optional<std::string>> {
    auto t = j->find(key);
    if (t == j->end() || t->is_null()) return std::optional<std::string>{};
    if (t->is_string()) return std::optional<std::string>{t->get_ref<const std::string&>()};
    if (t->is_object()) {
      auto c = t->find("content");
      if (c != t->end() && c->is_string()) return std::optional<std::string>{c->get_ref<const std::string&>()};
    }
    return make_error(errc::bad_key_type, "must be a string, null or an object with a string \"content\"", error::no_offset, key);
  };
  auto bos = token("bos_token");
  if (!bos) return bos.error();
  auto eos = token("eos_token");
  if (!eos) return eos.error();
  info.bos_token = *bos;
  info.eos_token = *eos;
  for (const char* key : {"unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
    auto t = token(key);
    if (!t) return t.error();
    if (*t) info.other_tokens.emplace_back(key, **t);
  }
  return info;
}

}  // namespace edgelm
