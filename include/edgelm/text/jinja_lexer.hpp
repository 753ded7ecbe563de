// edgelm/text/jinja_lexer.hpp - template text -> tokens, exactly as jinja2 3.1's lexer cuts them with
// the settings Hugging Face renders chat templates with (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): newlines normalised to \n, one trailing newline dropped, `{%-`/`-%}`
// strip all whitespace, `{%+` keeps it, lstrip_blocks removes the spaces before a `{%`/`{#` alone on
// its line, trim_blocks removes the newline after `%}`/`#}`. Tag ends inside (), [] or {} do not end
// the tag (jinja's balancing stack), so `{{ {'a': 1}}}` works.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/result.hpp"

namespace edgelm::jinja {

enum class tok : std::uint8_t {
  text,         // template data, already whitespace-controlled
  var_begin,    // {{
  var_end,      // }}
  block_begin,  // {%
  block_end,    // %}
  name,         // identifier
  string,       // string literal, escapes decoded
  integer,
  number,       // float literal
  op,           // operator / punctuation, in `text`
  eof,
};

struct token {
  tok type = tok::eof;
  std::string text;       // data, name, decoded string, operator or literal digits
  std::uint32_t pos = 0;  // byte offset in the normalised template
};

namespace detail {

// Unicode whitespace as Python's str.isspace() / re's \s see it (what jinja strips).
// Returns the byte length of the whitespace character at s[i], or 0.
inline std::size_t space_at(std::string_view s, std::size_t i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c < 0xc2 || i + 1 >= s.size()) return 0;
  const auto c1 = static_cast<unsigned char>(s[i + 1]);
  if (c == 0xc2) return (c1 == 0x85 || c1 == 0xa0) ? 2 : 0;
  if (i + 2 >= s.size()) return 0;
  const auto c2 = static_cast<unsigned char>(s[i + 2]);
  if (c == 0xe1 && c1 == 0x9a && c2 == 0x80) return 3;                           // U+1680
  if (c == 0xe2 && c1 == 0x80 && (c2 <= 0x8a || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf)) return 3;  // U+2000-200A, 2028, 2029, 202F
  if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f) return 3;                           // U+205F
  if (c == 0xe3 && c1 == 0x80 && c2 == 0x80) return 3;                           // U+3000
  return 0;
}
// Length of the whitespace character ending just before s[end], or 0.
inline std::size_t space_before(std::string_view s, std::size_t end) noexcept {
  for (std::size_t n = 1; n <= 3 && n <= end; ++n)
    if (space_at(s, end - n) == n) return n;
  return 0;
}
inline std::string_view rstrip_space(std::string_view s) noexcept {
  std::size_t e = s.size();
  while (std::size_t n = space_before(s, e)) e -= n;
  return s.substr(0, e);
}
inline std::size_t skip_space(std::string_view s, std::size_t i) noexcept {
  while (i < s.size())
    if (std::size_t n = space_at(s, i)) i += n;
    else break;
  return i;
}
inline bool all_space(std::string_view s) noexcept { return skip_space(s, 0) == s.size(); }

inline bool is_name_start(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline bool is_name_char(char c) noexcept { return is_name_start(c) || is_digit(c); }

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
  else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

inline int hex_val(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A string literal's body decoded as jinja does (Python's "unicode-escape"): \n \t \\ \' \" \r \a \b
// \f \v \0oo \xhh \uXXXX \UXXXXXXXX; an unknown escape keeps its backslash. Returns false on a
// malformed \x/\u/\U escape (jinja's error too).
inline bool decode_escapes(std::string_view body, std::string& out) {
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) { out += c; continue; }
    const char e = body[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // a backslash-newline continues the line
      case 'x': case 'u': case 'U': {
        const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        std::uint32_t cp = 0;
        for (std::size_t k = 1; k <= n; ++k) {
          if (i + k >= body.size()) return false;
          const int h = hex_val(body[i + k]);
          if (h < 0) return false;
          cp = cp * 16 + static_cast<std::uint32_t>(h);
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        append_utf8(out, cp);
        i += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {  // up to three octal digits
          std::uint32_t cp = static_cast<std::uint32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            cp = cp * 8 + static_cast<std::uint32_t>(body[++i] - '0');
          append_utf8(out, cp);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return true;
}

}  // namespace detail

// "line 3, column 7" of a byte offset (columns count bytes, from 1).
inline std::string line_col(std::string_view src, std::size_t pos) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < pos && i < src.size(); ++i) {
    if (src[i] == '\n') { ++line; col = 1; } else ++col;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

inline error template_error(std::string_view src, std::size_t pos, const std::string& what) {
  return make_error(errc::invalid_argument, line_col(src, pos) + ": " + what, pos, "chat_template");
}

// Normalises newlines as jinja does (\r\n and \r become \n; one trailing newline is dropped).
inline std::string normalise_template(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else s += src[i];
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// Tokenises a normalised template. `{% raw %}...{% endraw %}` comes out as one text token.
inline result<std::vector<token>> lex(std::string_view src) {
  using namespace detail;
  std::vector<token> out;
  std::size_t pos = 0;
  bool line_starting = true;  // the previous tag's end consumed a newline (or we are at the start)

  // Applies `{%-` / lstrip_blocks to the text before a tag and emits it.
  auto emit_text = [&](std::size_t from, std::size_t to, char sign, bool is_var) {
    std::string_view text = src.substr(from, to - from);
    if (sign == '-') text = rstrip_space(text);
    else if (sign != '+' && !is_var) {
      const std::size_t nl = text.rfind('\n');
      const std::size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text.size() && all_space(text.substr(l_pos))) text = text.substr(0, l_pos);
    }
    if (!text.empty()) out.push_back({tok::text, std::string(text), static_cast<std::uint32_t>(from)});
  };
  // After `%}`: `-%}` eats all whitespace, `+%}` nothing, `%}` one newline (trim_blocks).
  auto after_end = [&](std::size_t at, char sign, bool block) -> std::size_t {
    if (sign == '-') at = skip_space(src, at);
    else if (block && sign != '+' && at < src.size() && src[at] == '\n') ++at;
    line_starting = at > 0 && src[at - 1] == '\n';
    return at;
  };

  while (pos < src.size()) {
    // Next `{{`, `{%` or `{#`.
    std::size_t tag = pos;
    for (;;) {
      tag = src.find('{', tag);
      if (tag == std::string_view::npos || tag + 1 >= src.size()) { tag = std::string_view::npos; break; }
      const char n = src[tag + 1];
      if (n == '{' || n == '%' || n == '#') break;
      ++tag;
    }
    if (tag == std::string_view::npos) {
      out.push_back({tok::text, std::string(src.substr(pos)), static_cast<std::uint32_t>(pos)});
      break;
    }
    const char kind = src[tag + 1];
    char sign = 0;
    std::size_t inner = tag + 2;
    if (inner < src.size() && (src[inner] == '-' || src[inner] == '+')) sign = src[inner++];

    if (kind == '#') {
      // Comment: up to the first `#}` (or `-#}` / `+#}` just before it).
      const std::size_t close = src.find("#}", inner);
      if (close == std::string_view::npos) return template_error(src, tag, "missing end of comment tag '#}'");
      emit_text(pos, tag, sign, false);
      char esign = 0;
      if (close > inner && (src[close - 1] == '-' || src[close - 1] == '+')) esign = src[close - 1];
      pos = after_end(close + 2, esign, true);
      continue;
    }

    // {% raw %}: everything up to {% endraw %} is text.
    if (kind == '%') {
      std::size_t p = skip_space(src, inner);
      if (src.substr(p, 3) == "raw" && (p + 3 >= src.size() || !is_name_char(src[p + 3]))) {
        std::size_t q = skip_space(src, p + 3);
        char rsign = 0;
        if (q < src.size() && src[q] == '-') { rsign = '-'; ++q; }
        if (src.substr(q, 2) == "%}") {
          emit_text(pos, tag, sign, false);
          std::size_t body = q + 2;
          if (rsign == '-') body = skip_space(src, body);
          line_starting = body > 0 && src[body - 1] == '\n';
          // find {%[-+]? endraw ... %}
          std::size_t search = body;
          for (;;) {
            const std::size_t e = src.find("{%", search);
            if (e == std::string_view::npos) return template_error(src, tag, "missing end of raw directive");
            std::size_t k = e + 2;
            char esign = 0;
            if (k < src.size() && (src[k] == '-' || src[k] == '+')) esign = src[k++];
            k = skip_space(src, k);
            if (src.substr(k, 6) == "endraw") {
              k = skip_space(src, k + 6);
              char csign = 0;
              if (k < src.size() && (src[k] == '-' || src[k] == '+')) csign = src[k++];
              if (src.substr(k, 2) == "%}") {
                emit_text(body, e, esign, false);
                pos = after_end(k + 2, csign, true);
                break;
              }
            }
            search = e + 2;
          }
          continue;
        }
      }
    }

    emit_text(pos, tag, sign, kind == '{');
    const bool block = kind == '%';
    out.push_back({block ? tok::block_begin : tok::var_begin, {}, static_cast<std::uint32_t>(tag)});
    std::size_t i = inner;
    std::vector<char> brackets;
    bool closed = false;
    while (i < src.size()) {
      if (std::size_t n = space_at(src, i)) { i += n; continue; }
      const char c = src[i];
      if (brackets.empty()) {  // the end of the tag?
        if (block) {
          if ((c == '-' || c == '+') && src.substr(i + 1, 2) == "%}") {
            out.push_back({tok::block_end, {}, static_cast<std::uint32_t>(i)});
            pos = after_end(i + 3, c, true);
            closed = true;
            break;
          }
          if (src.substr(i, 2) == "%}") {
            out.push_back({tok::block_end, {}, static_cast<std::uint32_t>(i)});
            pos = after_end(i + 2, 0, true);
            closed = true;
            break;
          }
        } else {
          if (c == '-' && src.substr(i + 1, 2) == "}}") {
            out.push_back({tok::var_end, {}, static_cast<std::uint32_t>(i)});
            pos = after_end(i + 3, '-', false);
            closed = true;
            break;
          }
          if (src.substr(i, 2) == "}}") {
            out.push_back({tok::var_end, {}, static_cast<std::uint32_t>(i)});
            pos = after_end(i + 2, 0, false);
            closed = true;
            break;
          }
        }
      }
      const auto at = static_cast<std::uint32_t>(i);
      if (is_digit(c)) {
        // Integer or float: digits (with _), optional .digits, optional exponent.
        std::size_t j = i;
        std::string digits;
        auto run = [&] {
          while (j < src.size() && (is_digit(src[j]) || (src[j] == '_' && j + 1 < src.size() && is_digit(src[j + 1])))) {
            if (src[j] != '_') digits += src[j];
            ++j;
          }
        };
        run();
        bool is_float = false;
        if (j + 1 < src.size() && src[j] == '.' && is_digit(src[j + 1])) {
          digits += '.';
          ++j;
          run();
          is_float = true;
        }
        if (j < src.size() && (src[j] == 'e' || src[j] == 'E')) {
          std::size_t k = j + 1;
          if (k < src.size() && (src[k] == '+' || src[k] == '-')) ++k;
          if (k < src.size() && is_digit(src[k])) {
            digits += 'e';
            if (src[j + 1] == '-') digits += '-';
            j = k;
            run();
            is_float = true;
          }
        }
        out.push_back({is_float ? tok::number : tok::integer, digits, at});
        i = j;
      } else if (is_name_start(c)) {
        std::size_t j = i;
        while (j < src.size() && is_name_char(src[j])) ++j;
        out.push_back({tok::name, std::string(src.substr(i, j - i)), at});
        i = j;
      } else if (c == '\'' || c == '"') {
        std::size_t j = i + 1;
        while (j < src.size() && src[j] != c) j += src[j] == '\\' ? 2 : 1;
        if (j >= src.size()) return template_error(src, i, "unterminated string literal");
        std::string s;
        if (!decode_escapes(src.substr(i + 1, j - i - 1), s)) return template_error(src, i, "malformed escape in string literal");
        out.push_back({tok::string, std::move(s), at});
        i = j + 1;
      } else {
        static constexpr std::string_view two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (auto t : two)
          if (src.substr(i, 2) == t) op = t;
        if (op.empty()) {
          if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
            return template_error(src, i, std::string("unexpected character '") + c + "' in tag");
          op = c;
          if (c == '(' || c == '[' || c == '{') brackets.push_back(c);
          else if (c == ')' || c == ']' || c == '}') {
            const char want = c == ')' ? '(' : c == ']' ? '[' : '{';
            if (brackets.empty() || brackets.back() != want) return template_error(src, i, std::string("unexpected '") + c + "'");
            brackets.pop_back();
          }
        }
        out.push_back({tok::op, op, at});
        i += op.size();
      }
    }
    if (!closed) return template_error(src, tag, block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
  }
  out.push_back({tok::eof, {}, static_cast<std::uint32_t>(src.size())});
  return out;
}

}  // namespace edgelm::jinja
