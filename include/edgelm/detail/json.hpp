// edgelm/detail/json.hpp - reading untrusted JSON with nlohmann::json and no exceptions: a nesting-depth
// check before parsing (so hostile input cannot exhaust the stack), json::parse(..., nullptr, false), and
// type-checked accessors that return result<> (nlohmann's at() / get<>() abort on a type error when exceptions
// are off: never call them on a value whose type was not checked). Used by the chat JSON inputs, tokenizer.json
// and the Hugging Face config / index readers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/result.hpp"

namespace edgelm {

inline constexpr int max_json_depth = 64;

namespace detail {

// Deepest [ / { nesting of a JSON text (strings skipped); stops counting past `cap`.
inline int json_depth(std::string_view s, int cap) noexcept {
  int depth = 0, deepest = 0;
  bool in_str = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') in_str = true;
    else if (c == '[' || c == '{') { deepest = std::max(deepest, ++depth); if (deepest > cap) return deepest; }
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

// Parse a small JSON document into a DOM (keys in file order). Errors: count_too_large (nested deeper than
// max_json_depth), invalid_argument (not JSON); `what` names the input in the error.
inline result<nlohmann::ordered_json> parse_json(std::string_view text, const std::string& what) {
  if (json_depth(text, max_json_depth) > max_json_depth)
    return make_error(errc::count_too_large, "JSON nested deeper than " + std::to_string(max_json_depth) + " levels", error::no_offset, what);
  auto j = nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return make_error(errc::invalid_argument, "not valid JSON", error::no_offset, what);
  return j;
}

// The member `k` of an object, or null when j is not an object, lacks k, or k is JSON null.
template <class J>
const J* member(const J& j, const char* k) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(k);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// The first of `keys` that is present (not null) in j, and its name; {nullptr, ""} when none is.
template <class J>
std::pair<const J*, const char*> first_member(const J& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (const J* v = member(j, k)) return {v, k};
  return {nullptr, ""};
}

// Typed reads of one value, for readers of configuration files. `key` names it in the error
// (errc::bad_key_type for a wrong type, negative_size / absurd_dimension / bad_value for a value out of range).
template <class J>
result<std::uint64_t> json_uint(const J& v, const std::string& key, std::uint64_t max) {
  std::uint64_t u = 0;
  if (v.is_number_unsigned()) u = v.template get<std::uint64_t>();
  else if (v.is_number_integer()) {
    const auto i = v.template get<std::int64_t>();
    if (i < 0) return make_error(errc::negative_size, "must not be negative (is " + std::to_string(i) + ")", error::no_offset, key);
    u = static_cast<std::uint64_t>(i);
  } else if (v.is_number_float()) {
    // 4096.0 is accepted (some tools write integers as floats); 0.5 is not
    const double d = v.template get<double>();
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15) return make_error(errc::bad_key_type, "must be a whole number", error::no_offset, key);
    u = static_cast<std::uint64_t>(d);
  } else {
    return make_error(errc::bad_key_type, "must be a number", error::no_offset, key);
  }
  if (u > max) return make_error(errc::absurd_dimension, std::to_string(u) + " is larger than the limit " + std::to_string(max), error::no_offset, key);
  return u;
}
template <class J>
result<double> json_number(const J& v, const std::string& key) {
  if (!v.is_number()) return make_error(errc::bad_key_type, "must be a number", error::no_offset, key);
  const double d = v.template get<double>();
  if (!std::isfinite(d)) return make_error(errc::bad_value, "must be finite", error::no_offset, key);
  return d;
}
template <class J>
result<bool> json_bool(const J& v, const std::string& key) {
  if (!v.is_boolean()) return make_error(errc::bad_key_type, "must be true or false", error::no_offset, key);
  return v.template get<bool>();
}
template <class J>
result<std::string> json_string(const J& v, const std::string& key, std::size_t max_bytes = 4096) {
  if (!v.is_string()) return make_error(errc::bad_key_type, "must be a string", error::no_offset, key);
  const auto& s = v.template get_ref<const typename J::string_t&>();
  if (s.size() > max_bytes) return make_error(errc::count_too_large, "string longer than " + std::to_string(max_bytes) + " bytes", error::no_offset, key);
  return s;
}

}  // namespace detail
}  // namespace edgelm
