// edgelm/text/jinja_render.hpp - runs a parsed template (jinja_parser.hpp) against a context, with the
// semantics of jinja2 3.1's ImmutableSandboxedEnvironment as Hugging Face configures it for chat
// templates: Python truthiness, arithmetic and printing; default Undefined (prints as "", is falsy,
// iterates as empty; any other use is an error naming the missing variable); `set` inside a loop
// iteration does not leak out of it (use namespace()); lists and dicts cannot be mutated; the globals
// raise_exception() and strftime_now(); and HF's tojson (json.dumps with ensure_ascii=False).
// Errors are values: a template error carries the construct and the line/column, raise_exception()
// carries the template's own message. Work, output size and macro depth are bounded (limits).
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja_parser.hpp"

namespace edgelm::jinja {

struct render_options {
  limits lim;
  // What strftime_now() formats. Unset: the current local time (as Python's datetime.now()).
  std::optional<std::tm> now;
};

namespace detail {

// Byte offsets where each UTF-8 character of `s` starts (Python indexes strings by character).
inline std::vector<std::size_t> char_starts(std::string_view s) {
  std::vector<std::size_t> v;
  v.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) v.push_back(i);
  return v;
}
inline std::size_t char_count(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}
inline bool ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Simple (one character to one character) case mapping for the scripts chat text mostly uses: ASCII,
// Latin-1, Latin Extended-A, Greek and Cyrillic. Other characters are left as they are (Python maps
// every cased script; that, final sigma and the dotted I are known differences).
inline std::uint32_t cp_case(std::uint32_t c, bool upper) {
  auto pair = [&](std::uint32_t lo, std::uint32_t hi, bool even_upper) -> std::uint32_t {  // alternating pairs
    if (c < lo || c > hi) return 0;
    const bool is_upper = ((c & 1) == 0) == even_upper;
    if (upper) return is_upper ? c : c - 1;
    return is_upper ? c + 1 : c;
  };
  if (c < 0x80) {
    if (upper && c >= 'a' && c <= 'z') return c - 32;
    if (!upper && c >= 'A' && c <= 'Z') return c + 32;
    return c;
  }
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return upper ? c : c + 32;
  if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return upper ? c - 32 : c;
  if (c == 0xff) return upper ? 0x178 : c;
  if (c == 0xb5) return upper ? 0x39c : c;
  if (c == 0x178) return upper ? c : 0xff;
  if (c == 0x131) return upper ? 'I' : c;
  if (c == 0x17f) return upper ? 'S' : c;
  if (c == 0x130) return c;
  if (std::uint32_t r = pair(0x100, 0x137, true)) return r;
  if (std::uint32_t r = pair(0x139, 0x148, false)) return r;
  if (std::uint32_t r = pair(0x14a, 0x177, true)) return r;
  if (std::uint32_t r = pair(0x179, 0x17e, false)) return r;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return upper ? c : c + 32;
  if (c >= 0x3b1 && c <= 0x3c9) return upper ? (c == 0x3c2 ? 0x3a3 : c - 32) : c;
  if (c == 0x386) return upper ? c : 0x3ac;
  if (c == 0x3ac) return upper ? 0x386 : c;
  if (c >= 0x388 && c <= 0x38a) return upper ? c : c + 37;
  if (c >= 0x3ad && c <= 0x3af) return upper ? c - 37 : c;
  if (c == 0x38c) return upper ? c : 0x3cc;
  if (c == 0x3cc) return upper ? 0x38c : c;
  if (c >= 0x38e && c <= 0x38f) return upper ? c : c + 63;
  if (c >= 0x3cd && c <= 0x3ce) return upper ? c - 63 : c;
  if (c >= 0x410 && c <= 0x42f) return upper ? c : c + 32;
  if (c >= 0x430 && c <= 0x44f) return upper ? c - 32 : c;
  if (c >= 0x400 && c <= 0x40f) return upper ? c : c + 80;
  if (c >= 0x450 && c <= 0x45f) return upper ? c - 80 : c;
  if (std::uint32_t r = pair(0x460, 0x481, true)) return r;
  if (std::uint32_t r = pair(0x48a, 0x4bf, true)) return r;
  return c;
}
inline bool cp_cased(std::uint32_t c) { return cp_case(c, true) != c || cp_case(c, false) != c || c == 0xdf; }

// Decodes the UTF-8 character at s[i] (invalid bytes come out as themselves, one at a time).
inline std::uint32_t next_cp(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
  if (c < 0xc0 || i + n >= s.size()) { ++i; return c; }
  std::uint32_t cp = c & (0x3fu >> n);
  for (std::size_t k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3fu);
  i += n + 1;
  return cp;
}

// Case changes over a whole string: mode 'u' upper, 'l' lower, 't' str.title(), 'c' capitalize,
// 'w' the title filter (upper after [-\s({\[<]).
inline std::string change_case(std::string_view s, char mode) {
  std::string out;
  out.reserve(s.size());
  bool prev_cased = false, first = true, word_start = true;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t start = i;
    const bool space = space_at(s, i) != 0;
    const std::uint32_t c = next_cp(s, i);
    bool up = false;
    switch (mode) {
      case 'u': up = true; break;
      case 'l': up = false; break;
      case 't': up = !prev_cased; break;
      case 'c': up = first; break;
      case 'w': up = word_start; break;
    }
    const bool cased = cp_cased(c);
    if (c == 0xdf && up) out += (mode == 'u') ? "SS" : "Ss";
    else if (c < 0x80 || cased) append_utf8(out, cp_case(c, up));
    else out.append(s.substr(start, i - start));
    prev_cased = cased;
    first = false;
    word_start = space || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  }
  return out;
}

}  // namespace detail

class renderer {
 public:
  renderer(const program& p, const render_options& opt) : p_(p), opt_(opt) {}

  result<std::string> run(const value& context) {
    std::string out;
    out_ = &out;
    frames_.emplace_back();
    for (const auto& kv : context.entries()) frames_[0].vars.push_back(kv);
    exec(p_.root);
    if (err_) return *err_;
    return out;
  }

 private:
  enum class flow : std::uint8_t { normal, brk, cont, error };
  struct frame {
    std::vector<std::pair<std::string, value>> vars;
    bool barrier = false;  // a macro's frame: lookups skip the caller's frames
  };

  const program& p_;
  const render_options& opt_;
  std::string* out_ = nullptr;
  std::vector<frame> frames_;
  std::optional<error> err_;
  std::uint64_t steps_ = 0;
  std::uint32_t call_depth_ = 0;
  value block_base_;  // input of a filter block's chain

  // ---- errors and budgets ----
  bool failed() const { return err_.has_value(); }
  value fail(const node* n, const std::string& what) {
    if (!err_) err_ = template_error(p_.source, n ? n->pos : 0, what);
    return {};
  }
  value fail_undefined(const node* n, const value& u) {
    return fail(n, u.undefined_hint().empty() ? std::string("undefined value used") : u.undefined_hint());
  }
  bool charge(const node* n, std::uint64_t units) {
    steps_ += units;
    if (steps_ > opt_.lim.max_steps) {
      fail(n, "template exceeded the work limit of " + std::to_string(opt_.lim.max_steps) + " steps");
      return false;
    }
    return true;
  }
  bool check_size(const node* n, std::size_t bytes) {
    if (bytes > opt_.lim.max_output_bytes) {
      fail(n, "template output or string exceeds the limit of " + std::to_string(opt_.lim.max_output_bytes) + " bytes");
      return false;
    }
    return charge(n, bytes / 16);
  }
  bool emit(const node* n, std::string_view s) {
    if (!check_size(n, out_->size() + s.size())) return false;
    out_->append(s);
    return true;
  }

  // ---- variables ----
  const value* lookup(std::string_view name) const {
    for (std::size_t f = frames_.size(); f-- > 0;) {
      for (auto it = frames_[f].vars.rbegin(); it != frames_[f].vars.rend(); ++it)
        if (it->first == name) return &it->second;
      if (frames_[f].barrier && f > 0) {
        for (const auto& kv : frames_[0].vars)
          if (kv.first == name) return &kv.second;
        return nullptr;
      }
    }
    return nullptr;
  }
  void assign(std::string name, value v) {
    auto& vars = frames_.back().vars;
    for (auto& kv : vars)
      if (kv.first == name) { kv.second = std::move(v); return; }
    vars.emplace_back(std::move(name), std::move(v));
  }
  value global_fn(std::string_view name) const {
    if (name == "range") return value::callable(builtin_fn::range, nullptr, "range");
    if (name == "namespace") return value::callable(builtin_fn::namespace_, nullptr, "namespace");
    if (name == "dict") return value::callable(builtin_fn::dict, nullptr, "dict");
    if (name == "raise_exception") return value::callable(builtin_fn::raise_exception, nullptr, "raise_exception");
    if (name == "strftime_now") return value::callable(builtin_fn::strftime_now, nullptr, "strftime_now");
    return value::undefined("'" + std::string(name) + "' is undefined");
  }

  // ---- statements ----
  flow exec(const std::vector<node*>& body) {
    for (const node* n : body) {
      const flow f = exec1(n);
      if (f != flow::normal) return f;
    }
    return flow::normal;
  }

  // Runs `body` with its output captured into a string.
  std::optional<std::string> capture(const std::vector<node*>& body, flow* f = nullptr) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    const flow r = exec(body);
    out_ = saved;
    if (f) *f = r;
    if (r == flow::error || failed()) return std::nullopt;
    return buf;
  }

  flow exec1(const node* n) {
    if (!charge(n, 1)) return flow::error;
    switch (n->kind) {
      case node_kind::text: return emit(n, n->str) ? flow::normal : flow::error;
      case node_kind::output: {
        const value v = eval(n->a);
        if (failed()) return flow::error;
        return emit(n, to_str(v)) ? flow::normal : flow::error;
      }
      case node_kind::if_: {
        const value c = eval(n->a);
        if (failed()) return flow::error;
        return exec(c.truthy() ? n->body : n->else_body);
      }
      case node_kind::for_: return exec_for(n);
      case node_kind::set: {
        value v = eval(n->a);
        if (failed()) return flow::error;
        if (!n->str.empty()) {  // {% set ns.attr = v %}
          const value* target = lookup(n->names[0]);
          if (!target || !target->is_ns()) {
            fail(n, "cannot assign attribute '" + n->str + "' on '" + n->names[0] + "': not a namespace()");
            return flow::error;
          }
          dict_type* d = target->mutable_entries();
          for (auto& kv : *d)
            if (kv.first == n->str) { kv.second = std::move(v); return flow::normal; }
          d->emplace_back(n->str, std::move(v));
          return flow::normal;
        }
        if (n->names.size() == 1) { assign(n->names[0], std::move(v)); return flow::normal; }
        if (!unpack(n, v, n->names)) return flow::error;
        return flow::normal;
      }
      case node_kind::set_block: {
        auto text = capture(n->body);
        if (!text) return flow::error;
        value v = value::string(std::move(*text));
        if (n->a) {
          block_base_ = v;
          v = eval(n->a);
          if (failed()) return flow::error;
        }
        assign(n->names[0], std::move(v));
        return flow::normal;
      }
      case node_kind::filter_block: {
        auto text = capture(n->body);
        if (!text) return flow::error;
        block_base_ = value::string(std::move(*text));
        const value v = eval(n->a);
        if (failed()) return flow::error;
        return emit(n, to_str(v)) ? flow::normal : flow::error;
      }
      case node_kind::macro:
        assign(n->str, value::callable(builtin_fn::macro, n, n->str));
        return flow::normal;
      case node_kind::break_: return flow::brk;
      case node_kind::continue_: return flow::cont;
      case node_kind::generation: return exec(n->body);
      case node_kind::with_: {
        frames_.emplace_back();
        for (std::size_t i = 0; i < n->names.size(); ++i) {
          value v = eval(n->args[i]);
          if (failed()) { frames_.pop_back(); return flow::error; }
          assign(n->names[i], std::move(v));
        }
        const flow f = exec(n->body);
        frames_.pop_back();
        return f;
      }
      default: fail(n, "internal error: expression where a statement was expected"); return flow::error;
    }
  }

  // Binds `names` to the elements of `v` (for a, b in ... / set a, b = ...).
  bool unpack(const node* n, const value& v, const std::vector<std::string>& names) {
    std::vector<value> parts;
    if (v.is_list()) parts = v.items();
    else if (v.is_string()) {
      for (auto& c : chars(v.str())) parts.push_back(value::string(std::move(c)));
    } else {
      fail(n, "cannot unpack a '" + std::string(v.type_name()) + "' into " + std::to_string(names.size()) + " names");
      return false;
    }
    if (parts.size() != names.size()) {
      fail(n, "cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(names.size()) + " names");
      return false;
    }
    for (std::size_t i = 0; i < names.size(); ++i) assign(names[i], parts[i]);
    return true;
  }

  static std::vector<std::string> chars(std::string_view s) {
    std::vector<std::string> out;
    const auto st = detail::char_starts(s);
    for (std::size_t i = 0; i < st.size(); ++i) {
      const std::size_t e = i + 1 < st.size() ? st[i + 1] : s.size();
      out.emplace_back(s.substr(st[i], e - st[i]));
    }
    return out;
  }

  // The elements a for loop (or list(), join, ...) iterates: list items, string characters, dict keys.
  std::optional<list_type> iterate(const node* n, const value& v) {
    switch (v.type()) {
      case value::kind::list: return v.items();
      case value::kind::undefined: return list_type{};
      case value::kind::string: {
        list_type out;
        for (auto& c : chars(v.str())) out.push_back(value::string(std::move(c)));
        return out;
      }
      case value::kind::dict: {
        list_type out;
        for (const auto& kv : v.entries()) out.push_back(value::string(kv.first));
        return out;
      }
      default:
        fail(n, "'" + std::string(v.type_name()) + "' object is not iterable");
        return std::nullopt;
    }
  }

  flow exec_for(const node* n) {
    const value seq = eval(n->a);
    if (failed()) return flow::error;
    auto all = iterate(n->a, seq);
    if (!all) return flow::error;
    list_type items;
    if (n->c) {  // {% for x in xs if cond %}: filter first, loop.* counts what is left
      for (const auto& it : *all) {
        frames_.emplace_back();
        bool ok = bind_targets(n, it);
        value keep = ok ? eval(n->c) : value{};
        frames_.pop_back();
        if (!ok || failed()) return flow::error;
        if (keep.truthy()) items.push_back(it);
      }
    } else items = std::move(*all);
    const std::size_t len = items.size();
    bool completed = false;  // jinja runs the else block unless an iteration reached the end of its body
    for (std::size_t i = 0; i < len; ++i) {
      if (!charge(n, 1)) return flow::error;
      frames_.emplace_back();
      if (!bind_targets(n, items[i])) { frames_.pop_back(); return flow::error; }
      dict_type loop;
      const auto L = static_cast<std::int64_t>(len), I = static_cast<std::int64_t>(i);
      loop.emplace_back("index", value::integer(I + 1));
      loop.emplace_back("index0", value::integer(I));
      loop.emplace_back("revindex", value::integer(L - I));
      loop.emplace_back("revindex0", value::integer(L - I - 1));
      loop.emplace_back("first", value::boolean(i == 0));
      loop.emplace_back("last", value::boolean(i + 1 == len));
      loop.emplace_back("length", value::integer(L));
      loop.emplace_back("depth", value::integer(1));
      loop.emplace_back("depth0", value::integer(0));
      loop.emplace_back("previtem", i > 0 ? items[i - 1] : value::undefined("there is no previous item"));
      loop.emplace_back("nextitem", i + 1 < len ? items[i + 1] : value::undefined("there is no next item"));
      assign("loop", value::dict(std::move(loop)));
      const flow f = exec(n->body);
      frames_.pop_back();
      if (f == flow::error) return f;
      if (f == flow::brk) break;
      if (f == flow::normal) completed = true;
    }
    if (!completed && !n->else_body.empty()) return exec(n->else_body);
    return flow::normal;
  }
  bool bind_targets(const node* n, const value& item) {
    if (n->names.size() == 1) { assign(n->names[0], item); return true; }
    return unpack(n, item, n->names);
  }

  // ---- expressions ----
  value eval(const node* n) {
    if (failed()) return {};
    if (!n) return block_base_;
    if (!charge(n, 1)) return {};
    switch (n->kind) {
      case node_kind::literal: return n->lit;
      case node_kind::name: {
        const value* v = lookup(n->str);
        return v ? *v : global_fn(n->str);
      }
      case node_kind::list:
      case node_kind::tuple: {
        list_type items;
        for (const node* a : n->args) {
          items.push_back(eval(a));
          if (failed()) return {};
        }
        return value::list(std::move(items), n->kind == node_kind::tuple);
      }
      case node_kind::dict: {
        dict_type d;
        for (std::size_t i = 0; i + 1 < n->args.size(); i += 2) {
          const value k = eval(n->args[i]);
          value v = eval(n->args[i + 1]);
          if (failed()) return {};
          if (!k.is_string()) return fail(n->args[i], "dict keys must be strings");
          bool replaced = false;
          for (auto& kv : d)
            if (kv.first == k.str()) { kv.second = v; replaced = true; }
          if (!replaced) d.emplace_back(k.str(), std::move(v));
        }
        return value::dict(std::move(d));
      }
      case node_kind::getattr: {
        const value obj = eval(n->a);
        if (failed()) return {};
        return get_attr(n, obj, n->str);
      }
      case node_kind::getitem: {
        const value obj = eval(n->a);
        const value key = eval(n->b);
        if (failed()) return {};
        return get_item(n, obj, key);
      }
      case node_kind::slice: return eval_slice(n);
      case node_kind::call: return eval_call(n);
      case node_kind::filter: {
        const value in = eval(n->a);
        if (failed()) return {};
        return apply_filter(n, in);
      }
      case node_kind::test: {
        const value in = eval(n->a);
        if (failed()) return {};
        auto r = apply_test(n, in);
        if (!r) return {};
        return value::boolean(*r != n->negated);
      }
      case node_kind::neg:
      case node_kind::pos: {
        const value v = eval(n->a);
        if (failed()) return {};
        if (v.is_undefined()) return fail_undefined(n, v);
        if (v.is_int()) return value::integer(n->kind == node_kind::neg ? -v.as_int() : v.as_int());
        if (v.is_number()) return value::number(n->kind == node_kind::neg ? -v.as_double() : v.as_double());
        return fail(n, "bad operand type for unary " + std::string(n->kind == node_kind::neg ? "-" : "+") + ": '" +
                           std::string(v.type_name()) + "'");
      }
      case node_kind::not_: {
        const value v = eval(n->a);
        if (failed()) return {};
        return value::boolean(!v.truthy());
      }
      case node_kind::and_: {
        value a = eval(n->a);
        if (failed() || !a.truthy()) return a;
        return eval(n->b);
      }
      case node_kind::or_: {
        value a = eval(n->a);
        if (failed() || a.truthy()) return a;
        return eval(n->b);
      }
      case node_kind::concat: {
        const value a = eval(n->a);
        const value b = eval(n->b);
        if (failed()) return {};
        std::string s = to_str(a);
        const std::string t = to_str(b);
        if (!check_size(n, s.size() + t.size())) return {};
        return value::string(s + t);
      }
      case node_kind::binary: {
        const value a = eval(n->a);
        const value b = eval(n->b);
        if (failed()) return {};
        return arith(n, n->str, a, b);
      }
      case node_kind::compare: {
        value left = eval(n->a);
        for (std::size_t i = 0; i < n->args.size(); ++i) {
          value right = eval(n->args[i]);
          if (failed()) return {};
          auto r = compare(n, n->names[i], left, right);
          if (!r) return {};
          if (!*r) return value::boolean(false);
          left = std::move(right);
        }
        return value::boolean(true);
      }
      case node_kind::cond: {
        const value c = eval(n->a);
        if (failed()) return {};
        if (c.truthy()) return eval(n->b);
        return n->c ? eval(n->c) : value::undefined("the inline if expression had no else branch");
      }
      default: return fail(n, "internal error: statement where an expression was expected");
    }
  }

  value get_attr(const node* n, const value& obj, const std::string& name) {
    if (obj.is_undefined()) return fail_undefined(n, obj);
    if (obj.is_mapping_like()) {
      if (!charge(n, obj.entries().size() / 8)) return {};  // lookups are linear: a huge dict costs its size
      if (const value* v = obj.find(name)) return *v;
      return value::undefined("'" + std::string(obj.is_ns() ? "Namespace" : "dict") + " object' has no attribute '" + name + "'");
    }
    return value::undefined("'" + std::string(obj.type_name()) + " object' has no attribute '" + name + "'");
  }

  value get_item(const node* n, const value& obj, const value& key) {
    if (obj.is_undefined()) return fail_undefined(n, obj);
    if (key.is_undefined()) return fail_undefined(n, key);
    if (obj.is_mapping_like()) {
      if (!charge(n, obj.entries().size() / 8)) return {};
      if (key.is_string())
        if (const value* v = obj.find(key.str())) return *v;
      return value::undefined("'dict object' has no attribute '" + to_str(key) + "'");
    }
    if ((obj.is_list() || obj.is_string()) && key.is_int()) {
      std::int64_t i = key.as_int();
      if (obj.is_list()) {
        const auto len = static_cast<std::int64_t>(obj.items().size());
        if (i < 0) i += len;
        if (i < 0 || i >= len) return value::undefined("list index " + std::to_string(key.as_int()) + " out of range");
        return obj.items()[static_cast<std::size_t>(i)];
      }
      if (!charge(n, obj.str().size() / 16)) return {};  // indexing by character scans the string
      const auto st = detail::char_starts(obj.str());
      const auto len = static_cast<std::int64_t>(st.size());
      if (i < 0) i += len;
      if (i < 0 || i >= len) return value::undefined("string index " + std::to_string(key.as_int()) + " out of range");
      const std::size_t b = st[static_cast<std::size_t>(i)];
      const std::size_t e = static_cast<std::size_t>(i) + 1 < st.size() ? st[static_cast<std::size_t>(i) + 1] : obj.str().size();
      return value::string(obj.str().substr(b, e - b));
    }
    if (key.is_string()) return get_attr(n, obj, key.str());
    return value::undefined("'" + std::string(obj.type_name()) + " object' has no item " + repr(key));
  }

  value eval_slice(const node* n) {
    const value obj = eval(n->a);
    std::optional<std::int64_t> idx[3];
    for (int k = 0; k < 3; ++k) {
      if (!n->args[static_cast<std::size_t>(k)]) continue;
      const value v = eval(n->args[static_cast<std::size_t>(k)]);
      if (failed()) return {};
      if (v.is_none()) continue;
      if (!v.is_int()) return fail(n, "slice indices must be integers or none");
      idx[k] = v.as_int();
    }
    if (failed()) return {};
    if (obj.is_undefined()) return fail_undefined(n, obj);
    const std::int64_t step = idx[2].value_or(1);
    if (step == 0) return fail(n, "slice step cannot be zero");
    std::vector<std::size_t> st;
    std::int64_t len = 0;
    if (obj.is_list()) len = static_cast<std::int64_t>(obj.items().size());
    else if (obj.is_string()) {
      if (!charge(n, obj.str().size() / 16)) return {};
      st = detail::char_starts(obj.str());
      len = static_cast<std::int64_t>(st.size());
    }
    else return fail(n, "'" + std::string(obj.type_name()) + "' object is not subscriptable");
    // Python's slice.indices()
    auto clamp = [&](std::optional<std::int64_t> v, std::int64_t dflt) {
      if (!v) return dflt;
      std::int64_t x = *v;
      if (x < 0) x += len;
      if (step > 0) return std::clamp<std::int64_t>(x, 0, len);
      return std::clamp<std::int64_t>(x, -1, len - 1);
    };
    const std::int64_t start = clamp(idx[0], step > 0 ? 0 : len - 1);
    const std::int64_t stop = clamp(idx[1], step > 0 ? len : -1);
    list_type items;
    std::string s;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      const auto u = static_cast<std::size_t>(i);
      if (obj.is_list()) items.push_back(obj.items()[u]);
      else {
        const std::size_t e = u + 1 < st.size() ? st[u + 1] : obj.str().size();
        s.append(obj.str(), st[u], e - st[u]);
      }
    }
    if (!charge(n, static_cast<std::uint64_t>(items.size() + s.size() / 16))) return {};
    if (obj.is_list()) return value::list(std::move(items), obj.is_tuple());
    return value::string(std::move(s));
  }

  // ---- calls ----
  struct call_args {
    std::vector<value> pos;
    std::vector<std::pair<std::string, value>> kw;
    // argument `i` or keyword `name`, or nullptr
    const value* get(std::size_t i, std::string_view name) const {
      if (i < pos.size()) return &pos[i];
      for (const auto& kv : kw)
        if (kv.first == name) return &kv.second;
      return nullptr;
    }
  };
  std::optional<call_args> eval_args(const node* n, std::size_t skip = 0) {
    call_args a;
    for (std::size_t i = skip; i < n->args.size(); ++i) {
      a.pos.push_back(eval(n->args[i]));
      if (failed()) return std::nullopt;
    }
    for (const auto& kv : n->kwargs) {
      a.kw.emplace_back(kv.first, eval(kv.second));
      if (failed()) return std::nullopt;
    }
    return a;
  }

  value eval_call(const node* n) {
    if (n->a->kind == node_kind::getattr) {  // obj.method(...)
      const value obj = eval(n->a->a);
      if (failed()) return {};
      auto args = eval_args(n);
      if (!args) return {};
      bool handled = false;
      value r = call_method(n, obj, n->a->str, *args, handled);
      if (handled || failed()) return r;
      const value callee = get_attr(n->a, obj, n->a->str);
      if (failed()) return {};
      return call_value(n, callee, *args);
    }
    const value callee = eval(n->a);
    if (failed()) return {};
    auto args = eval_args(n);
    if (!args) return {};
    return call_value(n, callee, *args);
  }

  value call_value(const node* n, const value& f, const call_args& a) {
    if (f.is_undefined()) return fail_undefined(n, f);
    if (!f.is_callable()) return fail(n, "'" + std::string(f.type_name()) + "' object is not callable");
    switch (f.fn()) {
      case builtin_fn::range: {
        std::int64_t v[3] = {0, 0, 1};
        if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) return fail(n, "range() takes 1 to 3 integer arguments");
        for (const auto& x : a.pos)
          if (!x.is_int()) return fail(n, "range() arguments must be integers");
        if (a.pos.size() == 1) v[1] = a.pos[0].as_int();
        else { v[0] = a.pos[0].as_int(); v[1] = a.pos[1].as_int(); if (a.pos.size() == 3) v[2] = a.pos[2].as_int(); }
        if (v[2] == 0) return fail(n, "range() step must not be zero");
        list_type out;
        for (std::int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
          if (!charge(n, 1)) return {};
          out.push_back(value::integer(i));
        }
        std::string repr = "range(" + std::to_string(v[0]) + ", " + std::to_string(v[1]);
        if (v[2] != 1) repr += ", " + std::to_string(v[2]);
        return value::range(std::move(out), repr + ")");
      }
      case builtin_fn::namespace_:
      case builtin_fn::dict: {
        dict_type d;
        if (a.pos.size() > 1) return fail(n, f.str() + "() takes at most one positional argument");
        if (a.pos.size() == 1) {
          if (!a.pos[0].is_mapping_like()) return fail(n, f.str() + "() argument must be a mapping");
          d = a.pos[0].entries();
        }
        for (const auto& kv : a.kw) {
          bool replaced = false;
          for (auto& e : d)
            if (e.first == kv.first) { e.second = kv.second; replaced = true; }
          if (!replaced) d.push_back(kv);
        }
        return f.fn() == builtin_fn::dict ? value::dict(std::move(d)) : value::ns(std::move(d));
      }
      case builtin_fn::raise_exception: {
        const value* m = a.get(0, "message");
        if (!err_) err_ = make_error(errc::invalid_argument, m ? to_str(*m) : std::string(), n->pos, "raise_exception");
        return {};
      }
      case builtin_fn::strftime_now: {
        const value* fmt = a.get(0, "format");
        if (!fmt || !fmt->is_string()) return fail(n, "strftime_now() needs a format string");
        std::tm tm{};
        if (opt_.now) tm = *opt_.now;
        else {
          const std::time_t t = std::time(nullptr);
#if defined(_WIN32)
          localtime_s(&tm, &t);
#else
          localtime_r(&t, &tm);
#endif
        }
        if (fmt->str().empty()) return value::string("");
        for (std::size_t cap = 256; cap <= 65536; cap *= 4) {
          std::string buf(cap, '\0');
          const std::size_t len = std::strftime(buf.data(), buf.size(), fmt->str().c_str(), &tm);
          if (len > 0) { buf.resize(len); return value::string(std::move(buf)); }
        }
        return value::string("");
      }
      case builtin_fn::macro: return call_macro(n, static_cast<const node*>(f.target()), a);
      case builtin_fn::none: break;
    }
    return fail(n, "object is not callable");
  }

  value call_macro(const node* n, const node* m, const call_args& a) {
    if (call_depth_ >= opt_.lim.max_call_depth)
      return fail(n, "macro calls nested deeper than the limit of " + std::to_string(opt_.lim.max_call_depth));
    if (a.pos.size() > m->names.size()) return fail(n, "macro '" + m->str + "' takes at most " + std::to_string(m->names.size()) + " arguments");
    for (const auto& kv : a.kw)
      if (std::find(m->names.begin(), m->names.end(), kv.first) == m->names.end())
        return fail(n, "macro '" + m->str + "' has no parameter '" + kv.first + "'");
    ++call_depth_;
    frames_.emplace_back();
    frames_.back().barrier = true;
    for (std::size_t i = 0; i < m->names.size() && !failed(); ++i) {
      const value* v = a.get(i, m->names[i]);
      if (i >= a.pos.size()) {
        v = nullptr;
        for (const auto& kv : a.kw)
          if (kv.first == m->names[i]) v = &kv.second;
      }
      if (v) assign(m->names[i], *v);
      else if (m->kwargs[i].second) assign(m->names[i], eval(m->kwargs[i].second));
      else assign(m->names[i], value::undefined("parameter '" + m->names[i] + "' was not provided"));
    }
    std::optional<std::string> text;
    if (!failed()) text = capture(m->body);
    frames_.pop_back();
    --call_depth_;
    if (!text) return {};
    return value::string(std::move(*text));
  }

  // ---- methods of str and dict (the sandbox refuses the mutating ones) ----
  value call_method(const node* n, const value& obj, const std::string& name, const call_args& a, bool& handled) {
    handled = true;
    static constexpr std::string_view mutating[] = {"append", "pop", "popitem", "update", "extend", "insert", "remove",
                                                    "clear", "setdefault", "sort", "reverse", "add", "discard"};
    if (obj.is_list() || obj.is_dict())
      for (auto m : mutating)
        if (name == m) return fail(n, "access to attribute '" + name + "' of '" + std::string(obj.type_name()) + "' object is unsafe");
    if (obj.is_undefined()) return fail_undefined(n, obj);
    if (obj.is_dict()) {
      if (name == "items" || name == "keys" || name == "values") {
        list_type out;
        for (const auto& kv : obj.entries()) {
          if (name == "items") out.push_back(value::list({value::string(kv.first), kv.second}, true));
          else if (name == "keys") out.push_back(value::string(kv.first));
          else out.push_back(kv.second);
        }
        return value::list(std::move(out));
      }
      if (name == "get") {
        const value* k = a.get(0, "key");
        const value* d = a.get(1, "default");
        if (!k) return fail(n, "get() needs a key");
        if (k->is_string())
          if (const value* v = obj.find(k->str())) return *v;
        return d ? *d : value::none();
      }
      if (name == "copy") return value::dict(obj.entries());
      if (name == "cycle" && obj.find("index0") && obj.find("revindex0")) {  // loop.cycle(a, b, ...)
        if (a.pos.empty()) return fail(n, "loop.cycle() needs at least one argument");
        const auto i = static_cast<std::size_t>(obj.find("index0")->as_int());
        return a.pos[i % a.pos.size()];
      }
    }
    if (obj.is_list() && (name == "count" || name == "index")) {
      const value* x = a.get(0, "value");
      if (!x) return fail(n, name + "() needs an argument");
      std::int64_t c = 0;
      for (std::size_t i = 0; i < obj.items().size(); ++i)
        if (py_equal(obj.items()[i], *x)) {
          if (name == "index") return value::integer(static_cast<std::int64_t>(i));
          ++c;
        }
      if (name == "index") return fail(n, "value is not in list");
      return value::integer(c);
    }
    if (obj.is_string()) {
      const std::string& s = obj.str();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const value* c = a.get(0, "chars");
        return value::string(strip(s, c && c->is_string() ? &c->str() : nullptr, name != "rstrip", name != "lstrip"));
      }
      if (name == "upper" || name == "lower") return value::string(detail::change_case(s, name == "upper" ? 'u' : 'l'));
      if (name == "title") return value::string(detail::change_case(s, 't'));
      if (name == "capitalize") return value::string(detail::change_case(s, 'c'));
      if (name == "startswith" || name == "endswith") {
        const value* x = a.get(0, "prefix");
        if (!x) return fail(n, name + "() needs an argument");
        auto test1 = [&](const value& p) {
          if (!p.is_string()) return false;
          const std::string& t = p.str();
          if (t.size() > s.size()) return false;
          return name == "startswith" ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0;
        };
        if (x->is_list()) {
          for (const auto& p : x->items())
            if (test1(p)) return value::boolean(true);
          return value::boolean(false);
        }
        if (!x->is_string()) return fail(n, name + "() argument must be a string or a tuple of strings");
        return value::boolean(test1(*x));
      }
      if (name == "split" || name == "rsplit") {
        const value* sep = a.get(0, "sep");
        const value* mx = a.get(1, "maxsplit");
        const std::int64_t maxsplit = mx && mx->is_int() ? mx->as_int() : -1;
        if (sep && !sep->is_none() && !sep->is_string()) return fail(n, "split() separator must be a string or none");
        if (sep && sep->is_string() && sep->str().empty()) return fail(n, "split(): empty separator");
        return split(s, sep && sep->is_string() ? &sep->str() : nullptr, maxsplit, name == "rsplit");
      }
      if (name == "replace") {
        const value* o = a.get(0, "old");
        const value* w = a.get(1, "new");
        const value* c = a.get(2, "count");
        if (!o || !w || !o->is_string() || !w->is_string()) return fail(n, "replace() needs two strings");
        return replace(n, s, o->str(), w->str(), c && c->is_int() ? c->as_int() : -1);
      }
      if (name == "find" || name == "count" || name == "rfind" || name == "index") {
        const value* x = a.get(0, "sub");
        if (!x || !x->is_string()) return fail(n, name + "() needs a string");
        if (name == "count") {
          if (x->str().empty()) return value::integer(static_cast<std::int64_t>(detail::char_count(s) + 1));
          std::int64_t c = 0;
          for (std::size_t p = s.find(x->str()); p != std::string::npos; p = s.find(x->str(), p + x->str().size())) ++c;
          return value::integer(c);
        }
        const std::size_t p = name == "rfind" ? s.rfind(x->str()) : s.find(x->str());
        if (p == std::string::npos) {
          if (name == "index") return fail(n, "substring not found");
          return value::integer(-1);
        }
        return value::integer(static_cast<std::int64_t>(detail::char_count(std::string_view(s).substr(0, p))));
      }
      if (name == "join") {
        const value* x = a.get(0, "iterable");
        if (!x) return fail(n, "join() needs an argument");
        auto items = iterate(n, *x);
        if (!items) return {};
        std::string r;
        for (std::size_t i = 0; i < items->size(); ++i) {
          if (!(*items)[i].is_string()) return fail(n, "join() expects strings");
          if (i) r += s;
          r += (*items)[i].str();
          if (!check_size(n, r.size())) return {};
        }
        return value::string(std::move(r));
      }
      if (name == "splitlines") {
        list_type out;
        for (auto& l : splitlines(s)) out.push_back(value::string(std::move(l)));
        return value::list(std::move(out));
      }
      if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum" || name == "isupper" || name == "islower") {
        if (s.empty()) return value::boolean(false);
        bool any_cased = false, ok = true;
        for (std::size_t i = 0; i < s.size();) {
          const bool space = detail::space_at(s, i) != 0;
          const std::uint32_t c = detail::next_cp(s, i);
          const bool digit = c >= '0' && c <= '9', alpha = detail::cp_cased(c);  // letters with case (see cp_case)
          if (name == "isdigit") ok &= digit;
          else if (name == "isspace") ok &= space;
          else if (name == "isalpha") ok &= alpha;
          else if (name == "isalnum") ok &= alpha || digit;
          else if (alpha) { any_cased = true; ok &= name == "isupper" ? detail::cp_case(c, true) == c : detail::cp_case(c, false) == c; }
        }
        if (name == "isupper" || name == "islower") ok &= any_cased;
        return value::boolean(ok);
      }
      if (name == "format") return format_method(n, s, a);
    }
    handled = false;
    return {};
  }

  // Python's printf-style `fmt % args` (and the format filter): %s %r %d %i %f %F %e %E %g %G %x %X %o %c %%,
  // with (name), flags, width and precision. `args` is a tuple/list of values, a mapping, or one value.
  value percent_format(const node* n, const std::string& fmt, const value& args) {
    std::vector<value> pos;
    const value* mapping = nullptr;
    if (args.is_tuple()) pos = args.items();
    else if (args.is_mapping_like()) mapping = &args;
    else pos.push_back(args);
    std::size_t next_arg = 0;
    std::string out;
    for (std::size_t i = 0; i < fmt.size(); ++i) {
      if (fmt[i] != '%') { out += fmt[i]; continue; }
      if (++i >= fmt.size()) return fail(n, "incomplete format");
      if (fmt[i] == '%') { out += '%'; continue; }
      const value* v = nullptr;
      if (fmt[i] == '(') {
        const std::size_t e = fmt.find(')', i);
        if (e == std::string::npos || !mapping) return fail(n, "format requires a mapping");
        v = mapping->find(fmt.substr(i + 1, e - i - 1));
        if (!v) return fail(n, "format: key '" + fmt.substr(i + 1, e - i - 1) + "' missing");
        i = e + 1;
      }
      std::string spec = "%";
      while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) spec += fmt[i++];
      while (i < fmt.size() && detail::is_digit(fmt[i])) spec += fmt[i++];
      int prec = -1;
      if (i < fmt.size() && fmt[i] == '.') {
        spec += fmt[i++];
        prec = 0;
        while (i < fmt.size() && detail::is_digit(fmt[i])) { prec = prec * 10 + (fmt[i] - '0'); spec += fmt[i++]; }
      }
      if (i >= fmt.size()) return fail(n, "incomplete format");
      const char conv = fmt[i];
      if (!v) {
        if (mapping) v = mapping;  // Python: a mapping with plain %s formats the mapping itself
        else if (next_arg < pos.size()) v = &pos[next_arg++];
        else return fail(n, "not enough arguments for format string");
      }
      char buf[512];
      switch (conv) {
        case 's': case 'r': {
          std::string t = conv == 's' ? to_str(*v) : repr(*v);
          if (prec >= 0) {
            const auto st = detail::char_starts(t);
            if (static_cast<std::size_t>(prec) < st.size()) t.resize(st[static_cast<std::size_t>(prec)]);
          }
          const std::size_t width = static_cast<std::size_t>(std::atoi(spec.c_str() + 1 + (spec.size() > 1 && spec[1] == '-')));
          const std::size_t len = detail::char_count(t);
          if (width > len && width < 4096) {
            if (spec.find('-') != std::string::npos) t.append(width - len, ' ');
            else t.insert(0, width - len, ' ');
          }
          out += t;
          break;
        }
        case 'd': case 'i': case 'x': case 'X': case 'o': case 'c': {
          if (!v->is_number()) return fail(n, "%" + std::string(1, conv) + " format: a number is required, not " + std::string(v->type_name()));
          const long long x = v->is_int() ? static_cast<long long>(v->as_int()) : static_cast<long long>(v->as_double());
          if (conv == 'c') { detail::append_utf8(out, static_cast<std::uint32_t>(x & 0x1fffff)); break; }
          std::snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), x);
          out += buf;
          break;
        }
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
          if (!v->is_number()) return fail(n, "%" + std::string(1, conv) + " format: a number is required, not " + std::string(v->type_name()));
          if (spec.size() > 12) return fail(n, "format specification too long");
          std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v->as_double());
          out += buf;
          break;
        }
        default: return fail(n, std::string("unsupported format character '") + conv + "'");
      }
      if (!check_size(n, out.size())) return {};
    }
    if (!mapping && next_arg < pos.size() && !(pos.size() == 1 && pos[0].is_list() && !pos[0].is_tuple()))
      return fail(n, "not all arguments converted during string formatting");
    return value::string(std::move(out));
  }

  // str.format with {} / {0} / {name} fields (no format specs).
  value format_method(const node* n, const std::string& s, const call_args& a) {
    std::string r;
    std::size_t auto_i = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') { r += '{'; ++i; continue; }
      if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') { r += '}'; ++i; continue; }
      if (s[i] != '{') { r += s[i]; continue; }
      const std::size_t e = s.find('}', i);
      if (e == std::string::npos) return fail(n, "format(): single '{' encountered");
      const std::string field = s.substr(i + 1, e - i - 1);
      const value* v = nullptr;
      if (field.empty()) v = auto_i < a.pos.size() ? &a.pos[auto_i++] : nullptr;
      else if (std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        const auto k = static_cast<std::size_t>(std::strtoull(field.c_str(), nullptr, 10));
        v = k < a.pos.size() ? &a.pos[k] : nullptr;
      } else {
        for (const auto& kv : a.kw)
          if (kv.first == field) v = &kv.second;
      }
      if (!v) return fail(n, "format(): no argument for field '{" + field + "}'");
      r += to_str(*v);
      if (!check_size(n, r.size())) return {};
      i = e;
    }
    return value::string(std::move(r));
  }

  // ---- string helpers (Python's str methods) ----
  static std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
    std::size_t b = 0, e = s.size();
    if (!chars) {
      if (left) b = detail::skip_space(s, 0);
      if (right) while (e > b) { const std::size_t k = detail::space_before(s, e); if (!k) break; e -= k; }
      return s.substr(b, e - b);
    }
    const auto set = chars_of(*chars);
    auto in_set = [&](std::string_view c) { return std::find(set.begin(), set.end(), c) != set.end(); };
    const auto st = detail::char_starts(s);
    std::size_t i = 0, j = st.size();
    auto ch = [&](std::size_t k) {
      const std::size_t end = k + 1 < st.size() ? st[k + 1] : s.size();
      return std::string_view(s).substr(st[k], end - st[k]);
    };
    if (left) while (i < j && in_set(ch(i))) ++i;
    if (right) while (j > i && in_set(ch(j - 1))) --j;
    b = i < st.size() ? st[i] : s.size();
    e = j < st.size() ? st[j] : s.size();
    return s.substr(b, e - b);
  }
  static std::vector<std::string> chars_of(std::string_view s) { return chars(s); }

  static std::vector<std::string> splitlines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0, i = 0;
    while (i < s.size()) {
      std::size_t brk = 0;
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') brk = 2;
      else if (c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e)) brk = 1;
      else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) brk = 2;
      else if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xa8 || static_cast<unsigned char>(s[i + 2]) == 0xa9)) brk = 3;
      if (brk) {
        out.push_back(s.substr(start, i - start));
        i += brk;
        start = i;
      } else ++i;
    }
    if (start < s.size()) out.push_back(s.substr(start));
    return out;
  }
  value split(const std::string& s, const std::string* sep, std::int64_t maxsplit, bool from_right) {
    std::vector<std::string> parts;
    if (sep) {
      if (!from_right) {
        std::size_t p = 0;
        for (;;) {
          if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) >= maxsplit) break;
          const std::size_t q = s.find(*sep, p);
          if (q == std::string::npos) break;
          parts.push_back(s.substr(p, q - p));
          p = q + sep->size();
        }
        parts.push_back(s.substr(p));
      } else {
        std::size_t e = s.size();
        std::vector<std::string> rev;
        for (;;) {
          if (maxsplit >= 0 && static_cast<std::int64_t>(rev.size()) >= maxsplit) break;
          if (e < sep->size()) break;
          const std::size_t q = s.rfind(*sep, e - sep->size());
          if (q == std::string::npos) break;
          rev.push_back(s.substr(q + sep->size(), e - q - sep->size()));
          e = q;
        }
        rev.push_back(s.substr(0, e));
        parts.assign(rev.rbegin(), rev.rend());
      }
    } else {  // runs of whitespace, no empty parts (maxsplit applies from the left only here)
      std::size_t i = detail::skip_space(s, 0);
      while (i < s.size()) {
        if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) >= maxsplit) {
          parts.push_back(strip(s.substr(i), nullptr, false, true));
          break;
        }
        std::size_t j = i;
        while (j < s.size() && !detail::space_at(s, j)) ++j;
        parts.push_back(s.substr(i, j - i));
        i = detail::skip_space(s, j);
      }
    }
    list_type out;
    for (auto& p : parts) out.push_back(value::string(std::move(p)));
    return value::list(std::move(out));
  }
  value replace(const node* n, const std::string& s, const std::string& o, const std::string& w, std::int64_t count) {
    std::string r;
    if (o.empty()) {  // Python inserts `w` between characters (and at both ends)
      const auto cs = chars(s);
      std::int64_t done = 0;
      for (std::size_t i = 0; i <= cs.size(); ++i) {
        if (count < 0 || done < count) { r += w; ++done; }
        if (i < cs.size()) r += cs[i];
        if (!check_size(n, r.size())) return {};
      }
      return value::string(std::move(r));
    }
    std::size_t p = 0;
    std::int64_t done = 0;
    for (;;) {
      const std::size_t q = (count >= 0 && done >= count) ? std::string::npos : s.find(o, p);
      if (q == std::string::npos) { r.append(s, p, std::string::npos); break; }
      r.append(s, p, q - p);
      r += w;
      ++done;
      p = q + o.size();
      if (!check_size(n, r.size())) return {};
    }
    if (!check_size(n, r.size())) return {};
    return value::string(std::move(r));
  }

  // ---- printing ----
 public:
  // Python's str(): what {{ }} prints.
  static std::string to_str(const value& v) {
    switch (v.type()) {
      case value::kind::undefined: return {};
      case value::kind::string: return v.str();
      default: {
        std::string out;
        repr_into(out, v, false, 0);
        return out;
      }
    }
  }
  static std::string repr(const value& v) {
    std::string out;
    repr_into(out, v, true, 0);
    return out;
  }
  static void repr_into(std::string& out, const value& v, bool quote, int depth) {
    if (depth > 64) { out += "..."; return; }
    switch (v.type()) {
      case value::kind::undefined: if (quote) out += "Undefined"; break;  // str() is "", repr() "Undefined"
      case value::kind::none: out += "None"; break;
      case value::kind::boolean: out += v.as_bool() ? "True" : "False"; break;
      case value::kind::integer: out += std::to_string(v.as_int()); break;
      case value::kind::number: out += detail::python_float(v.as_double()); break;
      case value::kind::string:
        if (quote) detail::python_repr_string(out, v.str());
        else out += v.str();
        break;
      case value::kind::list: {
        if (v.is_range()) { out += v.str(); break; }
        out += v.is_tuple() ? '(' : '[';
        const auto& it = v.items();
        for (std::size_t i = 0; i < it.size(); ++i) {
          if (i) out += ", ";
          repr_into(out, it[i], true, depth + 1);
        }
        if (v.is_tuple() && it.size() == 1) out += ',';
        out += v.is_tuple() ? ')' : ']';
        break;
      }
      case value::kind::dict:
      case value::kind::ns: {
        if (v.is_ns()) out += "<Namespace ";
        out += '{';
        bool first = true;
        for (const auto& kv : v.entries()) {
          if (!first) out += ", ";
          first = false;
          detail::python_repr_string(out, kv.first);
          out += ": ";
          repr_into(out, kv.second, true, depth + 1);
        }
        out += '}';
        if (v.is_ns()) out += '>';
        break;
      }
      case value::kind::callable: out += "<function " + v.str() + ">"; break;
    }
  }

 private:
  // json.dumps(v, ensure_ascii, indent, separators, sort_keys) as HF's tojson filter calls it.
  struct json_style {
    bool ensure_ascii = false;
    std::optional<std::string> indent;  // unset: one line
    std::string item_sep = ", ", key_sep = ": ";
    bool sort_keys = false;
  };
  static void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
          } else if (c >= 0x80 && ensure_ascii) {
            // decode one UTF-8 character, write \uXXXX (surrogate pairs above U+FFFF)
            std::uint32_t cp = 0;
            std::size_t n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
            cp = c & (0x3f >> n);
            for (std::size_t k = 0; k < n && i + 1 < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f);
            char b[16];
            if (cp >= 0x10000) {
              cp -= 0x10000;
              std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else std::snprintf(b, sizeof b, "\\u%04x", cp);
            out += b;
          } else out += static_cast<char>(c);
      }
    }
    out += '"';
  }
  bool json_into(const node* n, std::string& out, const value& v, const json_style& st, int depth) {
    if (depth > 64) { fail(n, "tojson: value nested too deeply"); return false; }
    if (!check_size(n, out.size())) return false;
    auto newline = [&](int d) {
      if (!st.indent) return;
      out += '\n';
      for (int k = 0; k < d; ++k) out += *st.indent;
    };
    switch (v.type()) {
      case value::kind::none: out += "null"; return true;
      case value::kind::boolean: out += v.as_bool() ? "true" : "false"; return true;
      case value::kind::integer: out += std::to_string(v.as_int()); return true;
      case value::kind::number: {
        const double d = v.as_double();
        if (std::isnan(d)) out += "NaN";
        else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
        else out += detail::python_float(d);
        return true;
      }
      case value::kind::string: json_string(out, v.str(), st.ensure_ascii); return true;
      case value::kind::list: {
        if (v.is_range()) { fail(n, "tojson: Object of type range is not JSON serializable"); return false; }
        if (v.items().empty()) { out += "[]"; return true; }
        out += '[';
        bool first = true;
        for (const auto& x : v.items()) {
          if (!first) out += st.item_sep;
          first = false;
          newline(depth + 1);
          if (!json_into(n, out, x, st, depth + 1)) return false;
        }
        newline(depth);
        out += ']';
        return true;
      }
      case value::kind::dict:
      case value::kind::ns: {
        if (v.entries().empty()) { out += "{}"; return true; }
        std::vector<const std::pair<std::string, value>*> kvs;
        for (const auto& kv : v.entries()) kvs.push_back(&kv);
        if (st.sort_keys) std::stable_sort(kvs.begin(), kvs.end(), [](auto* x, auto* y) { return x->first < y->first; });
        out += '{';
        bool first = true;
        for (const auto* kv : kvs) {
          if (!first) out += st.item_sep;
          first = false;
          newline(depth + 1);
          json_string(out, kv->first, st.ensure_ascii);
          out += st.key_sep;
          if (!json_into(n, out, kv->second, st, depth + 1)) return false;
        }
        newline(depth);
        out += '}';
        return true;
      }
      case value::kind::undefined: fail(n, "tojson: Object of type Undefined is not JSON serializable"); return false;
      case value::kind::callable: fail(n, "tojson: a function is not JSON serializable"); return false;
    }
    return false;
  }

  // ---- comparisons and arithmetic (Python's rules) ----
  static bool py_equal(const value& a, const value& b, int depth = 0) {
    if (depth > 64) return false;
    if (a.is_number() && b.is_number()) {
      if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
      return a.as_double() == b.as_double();
    }
    if (a.type() != b.type()) return false;
    switch (a.type()) {
      case value::kind::undefined: case value::kind::none: return true;
      case value::kind::string: return a.str() == b.str();
      case value::kind::list: {
        if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
        for (std::size_t i = 0; i < a.items().size(); ++i)
          if (!py_equal(a.items()[i], b.items()[i], depth + 1)) return false;
        return true;
      }
      case value::kind::dict: {
        if (a.entries().size() != b.entries().size()) return false;
        for (const auto& kv : a.entries()) {
          const value* o = b.find(kv.first);
          if (!o || !py_equal(kv.second, *o, depth + 1)) return false;
        }
        return true;
      }
      case value::kind::ns: return a.mutable_entries() == b.mutable_entries();
      case value::kind::callable: return a.fn() == b.fn() && a.target() == b.target();
      default: return false;
    }
  }
  // Rough size of a value, for the work budget of operations that scan it.
  static std::uint64_t cost(const value& v) {
    if (v.is_string()) return v.str().size();
    if (v.is_list()) return v.items().size() * 16;
    if (v.is_mapping_like()) return v.entries().size() * 16;
    return 0;
  }
  // a < b; nullopt (with the error set) when Python would raise TypeError.
  std::optional<bool> py_less(const node* n, const value& a, const value& b, int depth = 0) {
    if (a.is_undefined()) { fail_undefined(n, a); return std::nullopt; }
    if (b.is_undefined()) { fail_undefined(n, b); return std::nullopt; }
    if (a.is_number() && b.is_number()) {
      if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
      return a.as_double() < b.as_double();
    }
    if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 byte order = code point order
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && depth < 64) {
      const auto& x = a.items();
      const auto& y = b.items();
      for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
        if (py_equal(x[i], y[i])) continue;
        return py_less(n, x[i], y[i], depth + 1);
      }
      return x.size() < y.size();
    }
    fail(n, "'<' not supported between instances of '" + std::string(a.type_name()) + "' and '" + std::string(b.type_name()) + "'");
    return std::nullopt;
  }
  std::optional<bool> contains(const node* n, const value& hay, const value& needle) {
    switch (hay.type()) {
      case value::kind::string:
        if (!needle.is_string()) {
          fail(n, "'in <string>' requires string as left operand, not " + std::string(needle.type_name()));
          return std::nullopt;
        }
        return hay.str().find(needle.str()) != std::string::npos;
      case value::kind::list:
        for (const auto& x : hay.items())
          if (py_equal(x, needle)) return true;
        return false;
      case value::kind::dict:
      case value::kind::ns: return needle.is_string() && hay.find(needle.str()) != nullptr;
      case value::kind::undefined: return false;
      default:
        fail(n, "argument of type '" + std::string(hay.type_name()) + "' is not iterable");
        return std::nullopt;
    }
  }
  std::optional<bool> compare(const node* n, const std::string& op, const value& a, const value& b) {
    if (!charge(n, (cost(a) + cost(b)) / 16)) return std::nullopt;  // comparisons and `in` scan their operands
    if (op == "==") return py_equal(a, b);
    if (op == "!=") return !py_equal(a, b);
    if (op == "in") return contains(n, b, a);
    if (op == "notin") {
      auto r = contains(n, b, a);
      if (!r) return r;
      return !*r;
    }
    if (op == "<") return py_less(n, a, b);
    if (op == ">") return py_less(n, b, a);
    if (op == "<=") {
      auto r = py_less(n, b, a);
      if (!r) return r;
      return !*r;
    }
    if (op == ">=") {
      auto r = py_less(n, a, b);
      if (!r) return r;
      return !*r;
    }
    fail(n, "unknown comparison '" + op + "'");
    return std::nullopt;
  }

  value arith(const node* n, const std::string& op, const value& a, const value& b) {
    if (a.is_undefined()) return fail_undefined(n, a);
    if (b.is_undefined()) return fail_undefined(n, b);
    auto bad = [&] {
      return fail(n, "unsupported operand type(s) for " + op + ": '" + std::string(a.type_name()) + "' and '" + std::string(b.type_name()) + "'");
    };
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        if (!check_size(n, a.str().size() + b.str().size())) return {};
        return value::string(a.str() + b.str());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        list_type l = a.items();
        l.insert(l.end(), b.items().begin(), b.items().end());
        if (!charge(n, l.size())) return {};
        return value::list(std::move(l), a.is_tuple());
      }
    }
    if (op == "*" && (((a.is_string() || a.is_list()) && b.is_int()) || ((b.is_string() || b.is_list()) && a.is_int()))) {
      const value& seq = a.is_int() ? b : a;
      const std::int64_t times = std::max<std::int64_t>(0, (a.is_int() ? a : b).as_int());
      const std::size_t unit = seq.is_string() ? seq.str().size() : seq.items().size() * 8;
      if (times > 0 && unit > 0 && static_cast<std::uint64_t>(times) > opt_.lim.max_output_bytes / unit)
        return fail(n, "repetition result exceeds the size limit");
      if (seq.is_string()) {
        std::string r;
        for (std::int64_t i = 0; i < times; ++i) r += seq.str();
        if (!check_size(n, r.size())) return {};
        return value::string(std::move(r));
      }
      list_type l;
      for (std::int64_t i = 0; i < times; ++i) l.insert(l.end(), seq.items().begin(), seq.items().end());
      if (!charge(n, l.size())) return {};
      return value::list(std::move(l), seq.is_tuple());
    }
    if (op == "%" && a.is_string()) return percent_format(n, a.str(), b);
    if (!a.is_number() || !b.is_number()) {
      if (op == "+" && a.is_string()) return fail(n, "can only concatenate str (not \"" + std::string(b.type_name()) + "\") to str");
      return bad();
    }
    const bool ints = a.is_int() && b.is_int();
    const std::int64_t x = a.as_int(), y = b.as_int();
    const double dx = a.as_double(), dy = b.as_double();
    std::int64_t r = 0;
    if (op == "+") {
      if (!ints) return value::number(dx + dy);
      if (__builtin_add_overflow(x, y, &r)) return fail(n, "integer overflow");
      return value::integer(r);
    }
    if (op == "-") {
      if (!ints) return value::number(dx - dy);
      if (__builtin_sub_overflow(x, y, &r)) return fail(n, "integer overflow");
      return value::integer(r);
    }
    if (op == "*") {
      if (!ints) return value::number(dx * dy);
      if (__builtin_mul_overflow(x, y, &r)) return fail(n, "integer overflow");
      return value::integer(r);
    }
    if (op == "/") {
      if (dy == 0.0) return fail(n, "division by zero");
      return value::number(dx / dy);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (y == 0) return fail(n, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return fail(n, "integer overflow");
        std::int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) { --q; m += y; }
        return value::integer(op == "//" ? q : m);
      }
      if (dy == 0.0) return fail(n, "float division or modulo by zero");
      const double q = std::floor(dx / dy);
      if (op == "//") return value::number(q);
      double m = std::fmod(dx, dy);
      if (m != 0.0 && ((m < 0) != (dy < 0))) m += dy;
      return value::number(m);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        std::int64_t acc = 1;
        for (std::int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(acc, x, &acc)) return fail(n, "integer overflow");
          if (acc == 0 || acc == 1) break;
          if (!charge(n, 1)) return {};
        }
        if (acc == 1 && x == -1) acc = (y % 2) ? -1 : 1;
        return value::integer(acc);
      }
      return value::number(std::pow(dx, dy));
    }
    return bad();
  }

  // ---- filters ----
  value apply_filter(const node* n, const value& in) {
    const std::string& f = n->str;
    auto args = eval_args(n);
    if (!args) return {};
    const call_args& a = *args;
    if (f == "safe" || f == "e" || f == "escape" || f == "forceescape") {
      if (f == "safe") return in.is_string() ? in : value::string(to_str(in));  // Markup(str(x))
      std::string r;
      for (char c : to_str(in)) {
        switch (c) {
          case '&': r += "&amp;"; break;
          case '<': r += "&lt;"; break;
          case '>': r += "&gt;"; break;
          case '"': r += "&#34;"; break;
          case '\'': r += "&#39;"; break;
          default: r += c;
        }
      }
      return value::string(std::move(r));
    }
    if (f == "default" || f == "d") {
      const value* dv = a.get(0, "default_value");
      const value* boolean = a.get(1, "boolean");
      const bool use = in.is_undefined() || (boolean && boolean->truthy() && !in.truthy());
      if (use) return dv ? *dv : value::string("");
      return in;
    }
    if (f == "string") return value::string(to_str(in));
    if (f == "tojson") {
      json_style st;
      // HF's override: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
      if (const value* ea = a.get(0, "ensure_ascii")) st.ensure_ascii = ea->truthy();
      if (const value* ind = a.get(1, "indent"); ind && !ind->is_none()) {
        if (ind->is_int()) st.indent = std::string(static_cast<std::size_t>(std::clamp<std::int64_t>(ind->as_int(), 0, 64)), ' ');
        else if (ind->is_string()) st.indent = ind->str();
        else return fail(n, "tojson: indent must be an integer or a string");
        st.item_sep = ",";
      }
      if (const value* sep = a.get(2, "separators"); sep && !sep->is_none()) {
        if (!sep->is_list() || sep->items().size() != 2 || !sep->items()[0].is_string() || !sep->items()[1].is_string())
          return fail(n, "tojson: separators must be a pair of strings");
        st.item_sep = sep->items()[0].str();
        st.key_sep = sep->items()[1].str();
      }
      if (const value* sk = a.get(3, "sort_keys")) st.sort_keys = sk->truthy();
      std::string out;
      if (!json_into(n, out, in, st, 0)) return {};
      return value::string(std::move(out));
    }
    if (in.is_undefined() && f != "length" && f != "count" && f != "list" && f != "items" && f != "join" && f != "trim" &&
        f != "upper" && f != "lower" && f != "title" && f != "capitalize" && f != "first" && f != "last" && f != "indent" &&
        f != "replace" && f != "selectattr" && f != "rejectattr" && f != "select" && f != "reject" && f != "map" && f != "reverse")
      return fail_undefined(n, in);
    if (f == "trim") {
      const value* c = a.get(0, "chars");
      return value::string(strip(to_str(in), c && c->is_string() ? &c->str() : nullptr, true, true));
    }
    if (f == "upper" || f == "lower") return value::string(detail::change_case(to_str(in), f == "upper" ? 'u' : 'l'));
    if (f == "title") return value::string(detail::change_case(to_str(in), 'w'));
    if (f == "capitalize") return value::string(detail::change_case(to_str(in), 'c'));
    if (f == "length" || f == "count") {
      if (!charge(n, cost(in) / 16)) return {};
      switch (in.type()) {
        case value::kind::undefined: return value::integer(0);
        case value::kind::string: return value::integer(static_cast<std::int64_t>(detail::char_count(in.str())));
        case value::kind::list: return value::integer(static_cast<std::int64_t>(in.items().size()));
        case value::kind::dict: case value::kind::ns: return value::integer(static_cast<std::int64_t>(in.entries().size()));
        default: return fail(n, "object of type '" + std::string(in.type_name()) + "' has no len()");
      }
    }
    if (f == "replace") {
      const value* o = a.get(0, "old");
      const value* w = a.get(1, "new");
      const value* c = a.get(2, "count");
      if (!o || !w) return fail(n, "replace needs two arguments");
      return replace(n, to_str(in), to_str(*o), to_str(*w), c && c->is_int() ? c->as_int() : -1);
    }
    if (f == "join") {
      const value* sep = a.get(0, "d");
      const value* attr = a.get(1, "attribute");
      auto items = iterate(n, in);
      if (!items) return {};
      std::string r;
      for (std::size_t i = 0; i < items->size(); ++i) {
        if (i && sep) r += to_str(*sep);
        value x = (*items)[i];
        if (attr) { x = attr_path(n, x, *attr); if (failed()) return {}; }
        r += to_str(x);
        if (!check_size(n, r.size())) return {};
      }
      return value::string(std::move(r));
    }
    if (f == "first" || f == "last") {
      auto items = iterate(n, in);
      if (!items) return {};
      if (items->empty()) return value::undefined("No " + f + " item, sequence was empty.");
      return f == "first" ? items->front() : items->back();
    }
    if (f == "list") {
      auto items = iterate(n, in);
      if (!items) return {};
      return value::list(std::move(*items));
    }
    if (f == "reverse") {
      if (in.is_string()) {
        auto cs = chars(in.str());
        std::string r;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) r += *it;
        return value::string(std::move(r));
      }
      auto items = iterate(n, in);
      if (!items) return {};
      std::reverse(items->begin(), items->end());
      return value::list(std::move(*items));
    }
    if (f == "items") {
      if (in.is_undefined()) return value::list({});
      if (!in.is_mapping_like()) return fail(n, "items filter needs a mapping");
      list_type out;
      for (const auto& kv : in.entries()) out.push_back(value::list({value::string(kv.first), kv.second}, true));
      return value::list(std::move(out));
    }
    if (f == "int") {
      const value* dv = a.get(0, "default");
      const value dflt = dv ? *dv : value::integer(0);
      if (in.is_int()) return value::integer(in.as_int());
      if (in.is_number()) {
        const double d = in.as_double();
        if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return dflt;
        return value::integer(static_cast<std::int64_t>(d));
      }
      if (in.is_string()) {
        const std::string s = strip(in.str(), nullptr, true, true);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end && *end == '\0' && errno == 0) return value::integer(v);
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) return value::integer(static_cast<std::int64_t>(d));
      }
      return dflt;
    }
    if (f == "float") {
      const value* dv = a.get(0, "default");
      if (in.is_number()) return value::number(in.as_double());
      if (in.is_string()) {
        const std::string s = strip(in.str(), nullptr, true, true);
        char* end = nullptr;
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0') return value::number(d);
      }
      return dv ? *dv : value::number(0.0);
    }
    if (f == "abs") {
      if (in.is_int()) return value::integer(in.as_int() < 0 ? -in.as_int() : in.as_int());
      if (in.is_number()) return value::number(std::fabs(in.as_double()));
      return fail(n, "bad operand type for abs()");
    }
    if (f == "round") {
      const value* pr = a.get(0, "precision");
      const value* method = a.get(1, "method");
      if (!in.is_number()) return fail(n, "round needs a number");
      const std::int64_t digits = pr && pr->is_int() ? pr->as_int() : 0;
      const std::string m = method ? to_str(*method) : "common";
      if (m == "common" && in.is_int() && digits >= 0) return value::integer(in.as_int());  // round(int, n) is that int
      const double scale = std::pow(10.0, static_cast<double>(std::clamp<std::int64_t>(digits, -300, 300)));
      const double x = in.as_double() * scale;
      // Python's round(): halves go to the even neighbour (nearbyint in the default rounding mode)
      const double r = m == "floor" ? std::floor(x) : m == "ceil" ? std::ceil(x) : std::nearbyint(x);
      return value::number(r / scale);
    }
    if (f == "indent") {
      if (!in.is_string()) return fail(n, "indent needs a string, not '" + std::string(in.type_name()) + "'");
      const value* w = a.get(0, "width");
      const value* first = a.get(1, "first");
      const value* blank = a.get(2, "blank");
      std::string ind = "    ";
      if (w && w->is_string()) ind = w->str();
      else if (w && w->is_int()) ind = std::string(static_cast<std::size_t>(std::clamp<std::int64_t>(w->as_int(), 0, 256)), ' ');
      const auto lines = splitlines(to_str(in) + "\n");
      std::string r;
      for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i) {
          r += '\n';
          if (!lines[i].empty() || (blank && blank->truthy())) r += ind;
        }
        r += lines[i];
        if (!check_size(n, r.size())) return {};
      }
      if (first && first->truthy()) r = ind + r;
      return value::string(std::move(r));
    }
    if (f == "sum") {
      const value* attr = a.get(99, "attribute");
      const value* start = a.get(1, "start");
      auto items = iterate(n, in);
      if (!items) return {};
      value acc = start ? *start : value::integer(0);
      for (auto x : *items) {
        if (attr) { x = attr_path(n, x, *attr); if (failed()) return {}; }
        acc = arith(n, "+", acc, x);
        if (failed()) return {};
      }
      return acc;
    }
    if (f == "min" || f == "max") {
      auto items = iterate(n, in);
      if (!items) return {};
      if (items->empty()) return value::undefined("No " + f + " item, sequence was empty.");
      value best = items->front();
      for (std::size_t i = 1; i < items->size(); ++i) {
        auto lt = f == "min" ? py_less(n, (*items)[i], best) : py_less(n, best, (*items)[i]);
        if (!lt) return {};
        if (*lt) best = (*items)[i];
      }
      return best;
    }
    if (f == "unique") {
      auto items = iterate(n, in);
      if (!items) return {};
      list_type out;
      for (const auto& x : *items) {
        if (x.is_dict() || x.is_ns() || (x.is_list() && !x.is_tuple()))
          return fail(n, "unique: unhashable type: '" + std::string(x.type_name()) + "'");
        bool seen = false;
        for (const auto& y : out) seen |= py_equal(x, y);
        if (!seen) out.push_back(x);
        if (!charge(n, out.size())) return {};
      }
      return value::list(std::move(out));
    }
    if ((f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject" || f == "map") && !in.truthy())
      return value::list({});  // jinja: `if seq:` before iterating, so a falsy input gives nothing
    if (f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
      const bool by_attr = f == "selectattr" || f == "rejectattr";
      const bool keep_if = f == "selectattr" || f == "select";
      auto items = iterate(n, in);
      if (!items) return {};
      std::size_t k = 0;
      const value* attr = nullptr;
      if (by_attr) {
        if (a.pos.empty()) return fail(n, f + " needs an attribute name");
        attr = &a.pos[k++];
      }
      std::string test_name;
      if (k < a.pos.size()) {
        if (!a.pos[k].is_string()) return fail(n, f + ": the test name must be a string");
        test_name = a.pos[k++].str();
      }
      const std::vector<value> targs(a.pos.begin() + static_cast<std::ptrdiff_t>(k), a.pos.end());
      list_type out;
      for (const auto& x : *items) {
        value probe = attr ? attr_path(n, x, *attr) : x;
        if (failed()) return {};
        bool ok = probe.truthy();
        if (!test_name.empty()) {
          auto r = run_test(n, test_name, probe, targs);
          if (!r) return {};
          ok = *r;
        }
        if (ok == keep_if) out.push_back(x);
      }
      return value::list(std::move(out));
    }
    if (f == "map") {
      auto items = iterate(n, in);
      if (!items) return {};
      list_type out;
      const value* attr = a.get(99, "attribute");
      if (attr) {
        const value* dflt = a.get(99, "default");
        for (const auto& x : *items) {
          value v = attr_path(n, x, *attr);
          if (failed()) return {};
          if (v.is_undefined() && dflt) v = *dflt;
          out.push_back(std::move(v));
        }
        return value::list(std::move(out));
      }
      if (a.pos.empty() || !a.pos[0].is_string()) return fail(n, "map needs attribute= or a filter name");
      // map('filter', args...): run that filter on each item
      node fake = *n;
      fake.str = a.pos[0].str();
      fake.args.assign(n->args.begin() + 1, n->args.end());
      fake.a = nullptr;
      for (const auto& x : *items) {
        out.push_back(apply_filter(&fake, x));
        if (failed()) return {};
      }
      return value::list(std::move(out));
    }
    if (f == "sort") {  // sort(reverse=False, case_sensitive=False, attribute=None), stable
      const value* rev = a.get(0, "reverse");
      const value* cs = a.get(1, "case_sensitive");
      const value* attr = a.get(2, "attribute");
      auto items = iterate(n, in);
      if (!items) return {};
      std::vector<std::pair<value, value>> keyed;  // (key, item)
      for (const auto& x : *items) {
        value k = attr ? attr_path(n, x, *attr) : x;
        if (failed()) return {};
        if (k.is_string() && !(cs && cs->truthy())) k = value::string(detail::change_case(k.str(), 'l'));
        keyed.emplace_back(std::move(k), x);
      }
      if (!charge(n, keyed.size() * 16)) return {};
      const bool reverse = rev && rev->truthy();
      bool bad = false;
      std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
        if (bad) return false;
        auto lt = reverse ? py_less(n, y.first, x.first) : py_less(n, x.first, y.first);  // as sorted(reverse=): stable
        if (!lt) { bad = true; return false; }
        return *lt;
      });
      if (bad || failed()) return {};
      list_type out;
      for (auto& kv : keyed) out.push_back(std::move(kv.second));
      return value::list(std::move(out));
    }
    if (f == "format") {  // "%s, %s"|format(a, b)
      if (!a.kw.empty()) return percent_format(n, to_str(in), value::dict(a.kw));
      return percent_format(n, to_str(in), value::list(a.pos, true));
    }
    if (f == "attr") {
      const value* name = a.get(0, "name");
      if (!name || !name->is_string()) return fail(n, "attr needs a name");
      return get_attr(n, in, name->str());
    }
    if (f == "dictsort") {
      if (!in.is_mapping_like()) return fail(n, "dictsort needs a mapping");
      std::vector<std::pair<std::string, value>> kv = in.entries();
      std::stable_sort(kv.begin(), kv.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      list_type out;
      for (auto& p : kv) out.push_back(value::list({value::string(p.first), p.second}, true));
      return value::list(std::move(out));
    }
    if (f == "wordcount") {
      const value parts = split(to_str(in), nullptr, -1, false);
      return value::integer(static_cast<std::int64_t>(parts.items().size()));
    }
    return fail(n, "unknown or unsupported filter '" + f + "'");
  }

  // item.attr, where attr may be dotted ("function.name") or an integer index, as jinja's make_attrgetter.
  value attr_path(const node* n, const value& item, const value& attr) {
    if (attr.is_int()) return get_item(n, item, attr);
    value cur = item;
    const std::string path = to_str(attr);
    std::size_t p = 0;
    for (;;) {
      const std::size_t q = path.find('.', p);
      const std::string part = path.substr(p, q == std::string::npos ? std::string::npos : q - p);
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      cur = digits ? get_item(n, cur, value::integer(std::strtoll(part.c_str(), nullptr, 10))) : get_item(n, cur, value::string(part));
      if (failed()) return {};
      if (q == std::string::npos) return cur;
      if (cur.is_undefined()) return cur;
      p = q + 1;
    }
  }

  // ---- tests ----
  std::optional<bool> apply_test(const node* n, const value& in) {
    auto args = eval_args(n);
    if (!args) return std::nullopt;
    return run_test(n, n->str, in, args->pos);
  }
  std::optional<bool> run_test(const node* n, const std::string& t, const value& v, const std::vector<value>& a) {
    using k = value::kind;
    auto arg0 = [&]() -> const value* {
      if (a.empty()) { fail(n, "test '" + t + "' needs an argument"); return nullptr; }
      return &a[0];
    };
    static constexpr std::string_view unary[] = {"defined", "undefined", "none", "boolean", "true", "false", "integer", "float",
                                                 "number", "string", "mapping", "iterable", "sequence", "callable", "escaped",
                                                 "odd", "even", "lower", "upper"};
    for (auto u : unary)
      if (t == u && !a.empty()) { fail(n, "test '" + t + "' takes no argument"); return std::nullopt; }
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "boolean") return v.is_bool();
    if (t == "true") return v.is_bool() && v.as_bool();
    if (t == "false") return v.is_bool() && !v.as_bool();
    if (t == "integer") return v.type() == k::integer;
    if (t == "float") return v.type() == k::number;
    if (t == "number") return v.is_number();
    if (t == "string") return v.is_string();
    if (t == "mapping") return v.is_dict();
    if (t == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    if (t == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    if (t == "callable") return v.is_callable();
    if (t == "escaped") return false;
    if (t == "odd" || t == "even") {
      if (!v.is_int()) { fail(n, "test '" + t + "' needs an integer"); return std::nullopt; }
      return (v.as_int() % 2 != 0) == (t == "odd");
    }
    if (t == "divisibleby") {
      const value* d = arg0();
      if (!d) return std::nullopt;
      if (!v.is_int() || !d->is_int() || d->as_int() == 0) { fail(n, "divisibleby needs non-zero integers"); return std::nullopt; }
      return v.as_int() % d->as_int() == 0;
    }
    if (t == "lower" || t == "upper") {
      const std::string s = to_str(v);
      bool any = false;
      for (char c : s) {
        if (!detail::ascii_alpha(c)) continue;
        any = true;
        if ((t == "lower") != (c >= 'a' && c <= 'z')) return false;
      }
      return any;
    }
    if (t == "sameas") {
      const value* o = arg0();
      if (!o) return std::nullopt;
      if (v.type() != o->type()) return false;
      if (v.is_none() || v.is_undefined()) return true;
      if (v.is_bool()) return v.as_bool() == o->as_bool();
      return py_equal(v, *o) && (v.is_int() || v.is_ns() || v.is_callable());
    }
    static constexpr std::pair<std::string_view, std::string_view> cmp[] = {
        {"eq", "=="}, {"equalto", "=="}, {"==", "=="}, {"ne", "!="}, {"!=", "!="}, {"lt", "<"}, {"lessthan", "<"}, {"<", "<"},
        {"le", "<="}, {"<=", "<="}, {"gt", ">"}, {"greaterthan", ">"}, {">", ">"}, {"ge", ">="}, {">=", ">="}, {"in", "in"}};
    for (const auto& [name, op] : cmp)
      if (t == name) {
        const value* o = arg0();
        if (!o) return std::nullopt;
        return compare(n, std::string(op), v, *o);
      }
    fail(n, "unknown or unsupported test '" + t + "'");
    return std::nullopt;
  }
};

// Renders a parsed program with `context` (a dict value: its entries become the template's globals).
inline result<std::string> render(const program& p, const value& context, const render_options& opt = {}) {
  renderer r(p, opt);
  return r.run(context);
}

}  // namespace edgelm::jinja
