// edgelm/tokenizer/unicode.hpp - the little Unicode the tokenizers need: UTF-8 stepping that never fails
// (an invalid byte is one "code point" of its own), the major general category of a code point (the
// pre-tokenizer classes \p{L}, \p{N}, \s), and NFC normalisation (Qwen2's normalizer). The tables are
// generated (detail/unicode_tables.hpp, Unicode version in unicode_data::version) and searched by bisection.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/unicode_tables.hpp"

namespace edgelm::detail {

// Major general category classes (the order of the generated table).
enum class ucat : std::uint8_t { letter = 0, number = 1, punct = 2, symbol = 3, mark = 4, separator = 5, other = 6 };

// One step of UTF-8 decoding at s[i]. A well-formed sequence (no overlong forms, no surrogates, at most
// U+10FFFF) gives its code point and length; anything else gives cp = invalid_cp and length 1, so that every
// byte string can be walked, and the invalid byte is classed as "other" (a symbol, as far as patterns go).
inline constexpr std::uint32_t invalid_cp = 0xFFFFFFFFu;
struct utf8_step {
  std::uint32_t cp;
  std::uint32_t len;
};
inline utf8_step utf8_next(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  const std::uint8_t c = b(i);
  if (c < 0x80) return {c, 1};
  const std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k) { return k < left && (b(i + k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1)) return {(c & 0x1Fu) << 6 | (b(i + 1) & 0x3Fu), 2};
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    const std::uint32_t cp = (c & 0x0Fu) << 12 | (b(i + 1) & 0x3Fu) << 6 | (b(i + 2) & 0x3Fu);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) return {cp, 3};
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    const std::uint32_t cp = (c & 0x07u) << 18 | (b(i + 1) & 0x3Fu) << 12 | (b(i + 2) & 0x3Fu) << 6 | (b(i + 3) & 0x3Fu);
    if (cp >= 0x10000 && cp <= 0x10FFFF) return {cp, 4};
  }
  return {invalid_cp, 1};
}

inline void utf8_append(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) { out += static_cast<char>(0xC0 | cp >> 6); out += static_cast<char>(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12); out += static_cast<char>(0x80 | (cp >> 6 & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18); out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline ucat category(std::uint32_t cp) noexcept {
  if (cp < 0x80) {  // ASCII without the table: the hot path of English text and code
    if ((cp | 0x20) - 'a' < 26) return ucat::letter;
    if (cp - '0' < 10) return ucat::number;
    if (cp == ' ') return ucat::separator;
    if (cp < 0x20 || cp == 0x7F) return ucat::other;
    return (cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' || cp == '^' || cp == '`' || cp == '|' || cp == '~') ? ucat::symbol : ucat::punct;
  }
  if (cp > 0x10FFFF) return ucat::other;
  const auto& t = unicode_data::category_runs;
  // last run whose start <= cp
  const auto* it = std::upper_bound(std::begin(t), std::end(t), cp, [](std::uint32_t v, std::uint32_t run) { return v < (run >> 3); });
  return static_cast<ucat>(it[-1] & 7u);
}

// Unicode White_Space (what \s means in the Rust regex crate that Hugging Face tokenizers uses).
inline bool is_space(std::uint32_t cp) noexcept {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}
inline bool is_letter(std::uint32_t cp) noexcept { return category(cp) == ucat::letter; }
inline bool is_number(std::uint32_t cp) noexcept { return category(cp) == ucat::number; }

// ---- NFC ----------------------------------------------------------------------------------------------
inline std::uint8_t combining_class(std::uint32_t cp) noexcept {
  if (cp < 0x300) return 0;
  const auto& t = unicode_data::ccc_runs;
  const auto* it = std::upper_bound(std::begin(t), std::end(t), cp, [](std::uint32_t v, std::uint32_t run) { return v < (run >> 8); });
  return it == std::begin(t) ? 0 : static_cast<std::uint8_t>(it[-1] & 0xFFu);
}

namespace hangul {
inline constexpr std::uint32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
inline constexpr std::uint32_t l_count = 19, v_count = 21, t_count = 28, n_count = v_count * t_count, s_count = l_count * n_count;
}  // namespace hangul

// Full canonical decomposition of cp appended to out (recursive through the table, depth <= 4 in practice).
inline void decompose(std::uint32_t cp, std::vector<std::uint32_t>& out) {
  using namespace hangul;
  if (cp >= s_base && cp < s_base + s_count) {
    const std::uint32_t s = cp - s_base;
    out.push_back(l_base + s / n_count);
    out.push_back(v_base + (s % n_count) / t_count);
    if (s % t_count) out.push_back(t_base + s % t_count);
    return;
  }
  if (cp >= 0xC0) {
    const auto& t = unicode_data::decomp;
    const auto* it = std::lower_bound(std::begin(t), std::end(t), cp, [](const std::uint32_t (&e)[3], std::uint32_t v) { return e[0] < v; });
    if (it != std::end(t) && (*it)[0] == cp) {
      decompose((*it)[1], out);
      if ((*it)[2]) decompose((*it)[2], out);
      return;
    }
  }
  out.push_back(cp);
}

inline std::uint32_t compose_pair(std::uint32_t a, std::uint32_t b) noexcept {
  using namespace hangul;
  if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count)
    return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
  if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base && b < t_base + t_count) return a + (b - t_base);
  const auto& t = unicode_data::comp;
  const auto* it = std::lower_bound(std::begin(t), std::end(t), std::pair{a, b},
                                    [](const std::uint32_t (&e)[3], std::pair<std::uint32_t, std::uint32_t> v) { return e[0] < v.first || (e[0] == v.first && e[1] < v.second); });
  return it != std::end(t) && (*it)[0] == a && (*it)[1] == b ? (*it)[2] : 0;
}

// NFC of s (Unicode's algorithm: canonical decomposition, canonical ordering, canonical composition).
// Text below U+0300 is already NFC and is returned as it is; invalid UTF-8 bytes pass through unchanged.
inline std::string nfc(std::string_view s) {
  bool simple = true;
  for (char c : s)
    if (static_cast<std::uint8_t>(c) >= 0xCC) { simple = false; break; }  // lead bytes of U+0300 and above
  if (simple) return std::string(s);
  std::string out;
  out.reserve(s.size());
  std::vector<std::uint32_t> buf;  // the decomposed code points since the last invalid byte (one linear pass)
  auto flush = [&] {
    // canonical ordering: stable sort of each stretch of non-starters by combining class
    for (std::size_t i = 0; i < buf.size();) {
      if (combining_class(buf[i]) == 0) { ++i; continue; }
      std::size_t j = i;
      while (j < buf.size() && combining_class(buf[j]) != 0) ++j;
      std::stable_sort(buf.begin() + static_cast<std::ptrdiff_t>(i), buf.begin() + static_cast<std::ptrdiff_t>(j),
                       [](std::uint32_t x, std::uint32_t y) { return combining_class(x) < combining_class(y); });
      i = j;
    }
    // canonical composition
    std::size_t starter = buf.empty() || combining_class(buf[0]) != 0 ? SIZE_MAX : 0;
    std::size_t w = buf.empty() ? 0 : 1;
    int last_cc = starter == 0 ? 0 : -1;
    for (std::size_t i = 1; i < buf.size(); ++i) {
      const std::uint32_t c = buf[i];
      const int cc = combining_class(c);
      if (starter != SIZE_MAX && (last_cc < cc || (last_cc == 0 && w == starter + 1))) {
        if (std::uint32_t k = compose_pair(buf[starter], c)) { buf[starter] = k; continue; }
      }
      if (cc == 0) { starter = w; last_cc = 0; }
      else last_cc = cc;
      buf[w++] = c;
    }
    buf.resize(w);
    for (std::uint32_t c : buf) utf8_append(out, c);
    buf.clear();
  };
  std::vector<std::uint32_t> d;
  for (std::size_t i = 0; i < s.size();) {
    const utf8_step st = utf8_next(s, i);
    if (st.cp == invalid_cp) { flush(); out += s[i]; i += 1; continue; }
    d.clear();
    decompose(st.cp, d);
    for (std::uint32_t c : d) {
      buf.push_back(c);
    }
    i += st.len;
  }
  flush();
  return out;
}

}  // namespace edgelm::detail

namespace edgelm {
// s with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD (what a model's reply must
// become before a chat template, which takes only valid text, sees it again).
inline std::string utf8_replace_invalid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const detail::utf8_step st = detail::utf8_next(s, i);
    if (st.cp == detail::invalid_cp) out += "\xEF\xBF\xBD";
    else out.append(s.substr(i, st.len));
    i += st.len;
  }
  return out;
}
}  // namespace edgelm
