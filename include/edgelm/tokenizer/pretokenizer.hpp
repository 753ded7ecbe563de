// edgelm/tokenizer/pretokenizer.hpp - the regex pre-tokenizers of byte-level BPE tokenizers, written by hand
// (no std::regex: it is slow, can recurse deeply, and costs wasm size). Each pattern is a function that, at a
// position, returns the length of the match the Rust regex crate (which Hugging Face tokenizers uses) would
// find there with its leftmost-first alternation; the three patterns cover every code point, so the matches
// tile the text and splitting is one linear pass. The patterns, as tokenizer.json files spell them:
//   gpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2  the llama3 pattern with \p{N} in place of \p{N}{1,3}
// Bytes that are not UTF-8 count as one code point each of class "other" (neither \s, \p{L} nor \p{N}).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "unicode.hpp"

namespace edgelm {

enum class split_pattern : std::uint8_t { gpt2, llama3, qwen2 };

namespace detail {

// Character classes of the patterns, computed once per code point.
enum class pclass : std::uint8_t { letter, number, space, other };

class pattern_scanner {
 public:
  explicit pattern_scanner(std::string_view s) noexcept : s_(s) {}

  struct cp_info {
    std::uint32_t cp;
    std::uint32_t len;
    pclass cls;
  };
  cp_info at(std::size_t i) const noexcept {
    const utf8_step st = utf8_next(s_, i);
    pclass c = pclass::other;
    if (st.cp != invalid_cp) {
      if (is_space(st.cp)) c = pclass::space;
      else {
        const ucat k = category(st.cp);
        c = k == ucat::letter ? pclass::letter : k == ucat::number ? pclass::number : pclass::other;
      }
    }
    return {st.cp, st.len, c};
  }
  // End of the run of code points of class c starting at i (at most max_n of them).
  std::size_t run(std::size_t i, pclass c, std::size_t max_n = SIZE_MAX) const noexcept {
    std::size_t n = 0;
    while (i < s_.size() && n < max_n) {
      const cp_info k = at(i);
      if (k.cls != c) break;
      i += k.len;
      ++n;
    }
    return i;
  }
  std::size_t size() const noexcept { return s_.size(); }
  char byte(std::size_t i) const noexcept { return i < s_.size() ? s_[i] : '\0'; }

  // 's 't 're 've 'm 'll 'd at i (case-insensitively when ci): the match length, or 0.
  std::size_t contraction(std::size_t i, bool ci) const noexcept {
    if (byte(i) != '\'') return 0;
    auto lower = [&](std::size_t k) -> char {
      const char c = byte(k);
      return ci && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
    };
    const char a = lower(i + 1), b = lower(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S)|\s+ at i, where i starts a whitespace run: the whole run when it ends the text or when it is
  // one code point long, else the run less its last code point (which then leads the next match).
  std::size_t spaces(std::size_t i) const noexcept {
    std::size_t last = i, j = i;
    while (j < s_.size()) {
      const cp_info k = at(j);
      if (k.cls != pclass::space) break;
      last = j;
      j += k.len;
    }
    if (j == s_.size() || last == i) return j - i;
    return last - i;
  }

  std::size_t match_gpt2(std::size_t i) const noexcept {
    if (std::size_t n = contraction(i, false)) return n;
    const cp_info c = at(i);
    std::size_t j = i;  // after an optional leading ' '
    pclass cls = c.cls;
    if (c.cp == ' ' && i + 1 < s_.size()) {
      const cp_info d = at(i + 1);
      if (d.cls != pclass::space) { j = i + 1; cls = d.cls; }
    }
    if (cls != pclass::space) return run(j, cls) - i;  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    return spaces(i);
  }

  // llama3 (digits = 3) and qwen2 (digits = 1)
  std::size_t match_llama3(std::size_t i, std::size_t digits) const noexcept {
    if (std::size_t n = contraction(i, true)) return n;
    const cp_info c = at(i);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c.cls == pclass::letter) return run(i, pclass::letter) - i;
    if (c.cls != pclass::number && c.cp != '\r' && c.cp != '\n' && i + c.len < s_.size() && at(i + c.len).cls == pclass::letter)
      return run(i + c.len, pclass::letter) - i;
    // \p{N}{1,3}
    if (c.cls == pclass::number) return run(i, pclass::number, digits) - i;
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    std::size_t j = SIZE_MAX;
    if (c.cls == pclass::other) j = i;
    else if (c.cp == ' ' && i + 1 < s_.size() && at(i + 1).cls == pclass::other) j = i + 1;
    if (j != SIZE_MAX) {
      std::size_t e = run(j, pclass::other);
      while (e < s_.size() && (s_[e] == '\r' || s_[e] == '\n')) ++e;
      return e - i;
    }
    // here c is whitespace. \s*[\r\n]+ : up to and including the last \r or \n of the whitespace run
    std::size_t j2 = i, last_nl = SIZE_MAX;
    while (j2 < s_.size()) {
      const cp_info k = at(j2);
      if (k.cls != pclass::space) break;
      if (k.cp == '\r' || k.cp == '\n') last_nl = j2;
      j2 += k.len;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1 - i;
    return spaces(i);
  }

  std::size_t match(split_pattern p, std::size_t i) const noexcept {
    switch (p) {
      case split_pattern::gpt2: return match_gpt2(i);
      case split_pattern::llama3: return match_llama3(i, 3);
      case split_pattern::qwen2: return match_llama3(i, 1);
    }
    return 1;
  }

 private:
  std::string_view s_;
};

}  // namespace detail

// Split s into the pre-tokens of pattern p: appends (offset, length) pairs, relative to s, that tile s.
// Linear in s.size() (each match is found by scanning forward once). Never fails.
inline void split_by_pattern(std::string_view s, split_pattern p, std::vector<std::pair<std::uint32_t, std::uint32_t>>& out) {
  detail::pattern_scanner sc(s);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t n = sc.match(p, i);
    if (n == 0) n = 1;  // cannot happen (every code point starts a match); keeps the loop finite regardless
    out.emplace_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(n));
    i += n;
  }
}

}  // namespace edgelm
