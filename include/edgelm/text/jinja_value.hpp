// edgelm/text/jinja_value.hpp - the values a chat-template program computes with: a small variant
// (undefined, none, bool, int, float, string, list, dict, namespace, callable), shared and immutable
// where Jinja's sandbox makes them immutable, so copying a value never copies a message's text.
// Printing follows Python (str(), repr()) because Jinja templates print Python objects.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgelm::jinja {

class value;
using list_type = std::vector<value>;
using dict_type = std::vector<std::pair<std::string, value>>;  // insertion-ordered, as Python's dict

// Functions a template can call (range, namespace, raise_exception, ...) and macros it defines.
enum class builtin_fn : std::uint8_t { none, range, namespace_, dict, raise_exception, strftime_now, macro };

class value {
 public:
  enum class kind : std::uint8_t { undefined, none, boolean, integer, number, string, list, dict, ns, callable };

  value() = default;  // undefined
  static value none() { value v; v.k_ = kind::none; return v; }
  static value boolean(bool b) { value v; v.k_ = kind::boolean; v.i_ = b; return v; }
  static value integer(std::int64_t i) { value v; v.k_ = kind::integer; v.i_ = i; return v; }
  static value number(double d) { value v; v.k_ = kind::number; v.d_ = d; return v; }
  static value string(std::string s) {
    value v; v.k_ = kind::string; v.s_ = std::make_shared<const std::string>(std::move(s)); return v;
  }
  static value list(list_type l, bool tuple = false) {
    value v; v.k_ = kind::list; v.l_ = std::make_shared<const list_type>(std::move(l)); v.i_ = tuple; return v;
  }
  // range(): a list that prints as Python's range object ("range(0, 3)").
  static value range(list_type l, std::string repr) {
    value v = list(std::move(l));
    v.s_ = std::make_shared<const std::string>(std::move(repr));
    return v;
  }
  bool is_range() const noexcept { return k_ == kind::list && s_ != nullptr; }
  static value dict(dict_type d) { value v; v.k_ = kind::dict; v.m_ = std::make_shared<dict_type>(std::move(d)); return v; }
  // A namespace() object: the one mutable value (`{% set ns.x = ... %}` writes through every copy).
  static value ns(dict_type d) { value v; v.k_ = kind::ns; v.m_ = std::make_shared<dict_type>(std::move(d)); return v; }
  // `hint` says why it is undefined ("'x' is undefined"), for the error when it is used.
  static value undefined(std::string hint) { value v; v.s_ = std::make_shared<const std::string>(std::move(hint)); return v; }
  static value callable(builtin_fn f, const void* target = nullptr, std::string name = {}) {
    value v; v.k_ = kind::callable; v.i_ = static_cast<std::int64_t>(f); v.target_ = target;
    v.s_ = std::make_shared<const std::string>(std::move(name)); return v;
  }

  kind type() const noexcept { return k_; }
  bool is_undefined() const noexcept { return k_ == kind::undefined; }
  bool is_none() const noexcept { return k_ == kind::none; }
  bool is_bool() const noexcept { return k_ == kind::boolean; }
  bool is_int() const noexcept { return k_ == kind::integer || k_ == kind::boolean; }  // bool is an int, as in Python
  bool is_number() const noexcept { return is_int() || k_ == kind::number; }
  bool is_string() const noexcept { return k_ == kind::string; }
  bool is_list() const noexcept { return k_ == kind::list; }
  bool is_tuple() const noexcept { return k_ == kind::list && i_ != 0; }
  bool is_dict() const noexcept { return k_ == kind::dict; }
  bool is_ns() const noexcept { return k_ == kind::ns; }
  bool is_mapping_like() const noexcept { return k_ == kind::dict || k_ == kind::ns; }
  bool is_callable() const noexcept { return k_ == kind::callable; }

  bool as_bool() const noexcept { return i_ != 0; }
  std::int64_t as_int() const noexcept { return i_; }
  double as_double() const noexcept { return k_ == kind::number ? d_ : static_cast<double>(i_); }
  const std::string& str() const noexcept { return s_ ? *s_ : empty_string(); }  // string text / undefined hint
  const list_type& items() const noexcept { return l_ ? *l_ : empty_list(); }
  const dict_type& entries() const noexcept { return m_ ? *m_ : empty_dict(); }
  dict_type* mutable_entries() const noexcept { return k_ == kind::ns ? m_.get() : nullptr; }
  builtin_fn fn() const noexcept { return static_cast<builtin_fn>(i_); }
  const void* target() const noexcept { return target_; }
  const std::string& undefined_hint() const noexcept { return str(); }

  // Key lookup in a dict or namespace; nullptr when absent.
  const value* find(std::string_view key) const noexcept {
    if (!m_) return nullptr;
    for (const auto& kv : *m_)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }

  // Python truthiness.
  bool truthy() const noexcept {
    switch (k_) {
      case kind::undefined: case kind::none: return false;
      case kind::boolean: case kind::integer: return i_ != 0;
      case kind::number: return d_ != 0.0;
      case kind::string: return !str().empty();
      case kind::list: return !items().empty();
      case kind::dict: return !entries().empty();
      case kind::ns: case kind::callable: return true;
    }
    return false;
  }

  // Python's type names, for error messages ("'int' object ...").
  std::string_view type_name() const noexcept {
    switch (k_) {
      case kind::undefined: return "undefined";
      case kind::none: return "NoneType";
      case kind::boolean: return "bool";
      case kind::integer: return "int";
      case kind::number: return "float";
      case kind::string: return "str";
      case kind::list: return is_tuple() ? "tuple" : "list";
      case kind::dict: return "dict";
      case kind::ns: return "Namespace";
      case kind::callable: return "function";
    }
    return "object";
  }

 private:
  static const std::string& empty_string() noexcept { static const std::string e; return e; }
  static const list_type& empty_list() noexcept { static const list_type e; return e; }
  static const dict_type& empty_dict() noexcept { static const dict_type e; return e; }

  kind k_ = kind::undefined;
  std::int64_t i_ = 0;
  double d_ = 0.0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const list_type> l_;
  std::shared_ptr<dict_type> m_;
  const void* target_ = nullptr;
};

namespace detail {

// Python's repr(float): the shortest text that reads back as the same double, in fixed notation
// for exponents -4..15 and scientific ("1e+20", "1.5e-05") outside.
inline std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
  // The shortest scientific form that reads back as d: the first precision that round-trips (the
  // correctly rounded digits, as std::to_chars's shortest form; written with snprintf because the libc++
  // of emscripten 3.1.6 has no floating-point to_chars). Locale: the "C" decimal point is assumed.
  char buf[64];
  for (int p = 0; p < 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string sci(buf);
  const bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  const auto e_at = sci.find('e');
  std::string digits = sci.substr(0, e_at);
  int exp = std::atoi(sci.c_str() + e_at + 1);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-exp - 1), '0');
      out += digits;
    } else if (static_cast<std::size_t>(exp) + 1 >= digits.size()) {
      out += digits;
      out.append(static_cast<std::size_t>(exp) + 1 - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(exp) + 1);
      out += '.';
      out += digits.substr(static_cast<std::size_t>(exp) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) { out += '.'; out += digits.substr(1); }
  char e[16];
  std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + e;
}

// Python's repr(str): single quotes unless the text holds ' and no ".
inline void python_repr_string(std::string& out, std::string_view s) {
  const bool dq = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char q = dq ? '"' : '\'';
  out += q;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(q)) { out += '\\'; out += q; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  out += q;
}

}  // namespace detail
}  // namespace edgelm::jinja
