// edgelm/tokenizer/sentencepiece.hpp - SentencePiece-style BPE over a scored vocabulary
// (Llama / TinyStories / llama2.c tokenizers): dummy-prefix space, greedy merges by score,
// byte fallback <0xHH>, control tokens never matched in text. Encoding equals llama2.c's encode()
// but runs in O(n log n) (a heap of candidate pairs) so hostile prompts cannot stall it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/result.hpp"
#include "../formats/model_file.hpp"

namespace edgelm {

namespace detail {
constexpr std::array<char, 256> make_byte_chars() {
  std::array<char, 256> a{};
  for (int i = 0; i < 256; ++i) a[i] = static_cast<char>(i);
  return a;
}
// One static char per byte value, so decode() can return a view of a byte token.
inline constexpr std::array<char, 256> byte_chars = make_byte_chars();
}  // namespace detail

class tokenizer {
 public:
  using token = std::int32_t;

  tokenizer() = default;

  // Validate tokenizer data and build the lookup tables.
  static result<tokenizer> from_data(tokenizer_data d) {
    if (d.model != "llama")
      return make_error(errc::bad_tokenizer, "tokenizer model '" + d.model + "' is byte-level BPE: load it with load_text_tokenizer (edgelm/tokenizer/text_tokenizer.hpp)");
    const std::size_t n = d.pieces.size();
    if (n < 3 || n > limits::max_vocab) return make_error(errc::bad_tokenizer, "vocabulary size " + std::to_string(n) + " out of range");
    if (d.scores.size() != n || d.types.size() != n) return make_error(errc::bad_tokenizer, "pieces, scores and types differ in count");
    auto in_range = [&](token t) { return t >= 0 && static_cast<std::size_t>(t) < n; };
    if (!in_range(d.bos_id) || !in_range(d.eos_id) || !in_range(d.unk_id)) return make_error(errc::bad_tokenizer, "bos/eos/unk id outside the vocabulary");
    tokenizer t;
    t.byte_id_.fill(-1);
    t.lookup_.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& p = d.pieces[i];
      if (p.size() > limits::max_token_bytes) return make_error(errc::bad_tokenizer, "token " + std::to_string(i) + " is too long");
      if (d.types[i] == token_type::byte) {
        int b = parse_byte_piece(p);
        if (b < 0) return make_error(errc::bad_tokenizer, "byte token " + std::to_string(i) + " is not of the form <0xHH>");
        if (t.byte_id_[b] < 0) t.byte_id_[b] = static_cast<token>(i);
        continue;
      }
      if (d.types[i] == token_type::normal || d.types[i] == token_type::user_defined) {
        if (p.empty()) continue;
        t.lookup_.emplace(p, static_cast<token>(i));  // first id wins on duplicates
      }
    }
    auto sp = t.lookup_.find(" ");
    t.space_id_ = sp == t.lookup_.end() ? -1 : sp->second;
    // Words merge independently when no piece has a space after a non-space character (SentencePiece's
    // split_by_whitespace, as Llama's and TinyStories' vocabularies; runs of spaces like "  " are fine):
    // no merge can then join a word's end to the spaces that start the next one.
    t.words_independent_ = t.space_id_ >= 0;
    for (const auto& kv : t.lookup_) {
      const std::string& p = kv.first;
      const std::size_t first_other = p.find_first_not_of(' ');
      if (first_other != std::string::npos && p.find(' ', first_other) != std::string::npos) {
        t.words_independent_ = false;
        break;
      }
    }
    t.d_ = std::move(d);
    return t;
  }

  std::size_t vocab_size() const noexcept { return d_.pieces.size(); }
  token bos() const noexcept { return d_.bos_id; }
  token eos() const noexcept { return d_.eos_id; }
  bool add_bos() const noexcept { return d_.add_bos; }
  const tokenizer_data& data() const noexcept { return d_; }
  std::string_view piece(token id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < d_.pieces.size() ? std::string_view(d_.pieces[id]) : std::string_view{};
  }

  // Text -> token ids. BOS first when add_bos. Any byte sequence is accepted (invalid UTF-8 falls back
  // to byte tokens); a byte with no token at all maps to unk.
  std::vector<token> encode(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    std::vector<token> out;
    if (add_bos) out.push_back(d_.bos_id);
    if (!text.empty()) {
      // Initial symbols: the dummy-prefix space, then one per UTF-8 code point (or per byte if unknown).
      std::vector<symbol> sy;
      sy.reserve(text.size() + 1);
      if (d_.add_space_prefix && space_id_ >= 0) sy.push_back({space_id_, 0, 0});
      std::size_t i = 0;
      while (i < text.size()) {
        std::size_t len = 1;
        // a code point: a lead byte plus continuation bytes (10xxxxxx), at most 4 bytes, as llama2.c
        while (i + len < text.size() && len < 4 && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
        if (d_.marker_is_space && space_id_ >= 0 && text.compare(i, len, "\xE2\x96\x81") == 0) {  // U+2581 = ' '
          sy.push_back({space_id_, 0, 0});
          i += len;
          continue;
        }
        auto it = lookup_.find(std::string(text.substr(i, len)));
        if (it != lookup_.end()) {
          sy.push_back({it->second, 0, 0});
        } else {
          for (std::size_t k = 0; k < len; ++k) {
            token b = byte_id_[static_cast<unsigned char>(text[i + k])];
            sy.push_back({b >= 0 ? b : d_.unk_id, 0, 0});
          }
        }
        i += len;
      }
      if (words_independent_ && sy.size() > word_split_min) {
        merge_words(sy, out);
      } else {
        merge(sy);
        for (const auto& s : sy)
          if (s.id >= 0) out.push_back(s.id);
      }
    }
    if (add_eos) out.push_back(d_.eos_id);
    return out;
  }

  // The bytes token `id` contributes when it follows `prev` (llama2.c decode()): the leading space of a
  // piece right after BOS is dropped, <0xHH> becomes that raw byte, control/unknown tokens give "".
  std::string_view decode(token prev, token id) const noexcept {
    if (id < 0 || static_cast<std::size_t>(id) >= d_.pieces.size()) return {};
    const token_type ty = d_.types[id];
    if (ty == token_type::byte) {
      int b = parse_byte_piece(d_.pieces[id]);
      return b >= 0 ? std::string_view(&detail::byte_chars[b], 1) : std::string_view{};
    }
    if (ty == token_type::control || ty == token_type::unused) return {};
    std::string_view p = d_.pieces[id];
    if (ty == token_type::unknown) return p;
    if (prev == d_.bos_id && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    return p;
  }

  // Concatenated decode of a token sequence (a leading BOS is skipped).
  std::string decode(const std::vector<token>& ids) const {
    std::string s;
    token prev = -1;
    for (token t : ids) {
      s += decode(prev, t);
      prev = t;
    }
    return s;
  }

 private:
  struct symbol {
    token id;
    std::int32_t prev, next;  // neighbours in the linked list (-1: none)
  };
  struct candidate {
    float score;
    std::int32_t left;      // index of the left symbol
    token left_id, right_id;  // ids when queued, to detect stale entries
    token merged;
  };
  struct worse {
    bool operator()(const candidate& a, const candidate& b) const noexcept {
      if (a.score != b.score) return a.score < b.score;  // higher score first
      return a.left > b.left;                             // then leftmost, as llama2.c's strict '>'
    }
  };

  void push_pair(std::priority_queue<candidate, std::vector<candidate>, worse>& q, const std::vector<symbol>& sy, std::int32_t l, std::string& buf) const {
    if (l < 0) return;
    const std::int32_t r = sy[l].next;
    if (r < 0) return;
    buf.assign(d_.pieces[sy[l].id]);
    buf += d_.pieces[sy[r].id];
    auto it = lookup_.find(buf);
    if (it == lookup_.end()) return;
    q.push({d_.scores[it->second], l, sy[l].id, sy[r].id, it->second});
  }

  // Long texts (MB-sized inputs) are merged word by word when words are independent (see from_data): the
  // same ids as one merge over the whole text (merges never cross a word boundary, and within a word their
  // order is unchanged), with a per-call cache of the words already seen.
  static constexpr std::size_t word_split_min = 256;
  void merge_words(const std::vector<symbol>& sy, std::vector<token>& out) const {
    std::unordered_map<std::string, std::vector<token>> cache;  // this call's words (no state kept)
    std::vector<symbol> w;
    std::string key;
    const std::size_t n = sy.size();
    for (std::size_t b = 0; b < n;) {
      // a word: a run of spaces, then everything up to the next space that follows a non-space symbol
      std::size_t e = b + 1;
      while (e < n && !(sy[e].id == space_id_ && sy[e - 1].id != space_id_)) ++e;
      const bool cacheable = e - b <= 64;
      if (cacheable) {
        key.clear();
        for (std::size_t k = b; k < e; ++k) key.append(reinterpret_cast<const char*>(&sy[k].id), sizeof(token));
        if (auto it = cache.find(key); it != cache.end()) {
          out.insert(out.end(), it->second.begin(), it->second.end());
          b = e;
          continue;
        }
      }
      w.assign(sy.begin() + static_cast<std::ptrdiff_t>(b), sy.begin() + static_cast<std::ptrdiff_t>(e));
      merge(w);
      const std::size_t at = out.size();
      for (const auto& s : w)
        if (s.id >= 0) out.push_back(s.id);
      if (cacheable && cache.size() < (std::size_t{1} << 16)) cache.emplace(key, std::vector<token>(out.begin() + static_cast<std::ptrdiff_t>(at), out.end()));
      b = e;
    }
  }

  void merge(std::vector<symbol>& sy) const {
    const auto n = static_cast<std::int32_t>(sy.size());
    for (std::int32_t k = 0; k < n; ++k) {
      sy[k].prev = k - 1;
      sy[k].next = k + 1 < n ? k + 1 : -1;
    }
    std::priority_queue<candidate, std::vector<candidate>, worse> q;
    std::string buf;
    for (std::int32_t k = 0; k + 1 < n; ++k) push_pair(q, sy, k, buf);
    while (!q.empty()) {
      candidate c = q.top();
      q.pop();
      symbol& l = sy[c.left];
      if (l.id != c.left_id || l.next < 0 || sy[l.next].id != c.right_id) continue;  // stale
      std::int32_t r = l.next;
      l.id = c.merged;
      l.next = sy[r].next;
      if (l.next >= 0) sy[l.next].prev = c.left;
      sy[r].id = -1;
      sy[r].prev = sy[r].next = -1;
      if (l.prev >= 0) push_pair(q, sy, l.prev, buf);
      push_pair(q, sy, c.left, buf);
    }
  }

  static int hexval(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte_piece(std::string_view p) noexcept {
    if (p.size() != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
    int h = hexval(p[3]), l = hexval(p[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }

  tokenizer_data d_;
  std::unordered_map<std::string, token> lookup_;
  std::array<token, 256> byte_id_{};
  token space_id_ = -1;
  bool words_independent_ = false;
};

}  // namespace edgelm
