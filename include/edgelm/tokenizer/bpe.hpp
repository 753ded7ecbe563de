// edgelm/tokenizer/bpe.hpp - BPE with ranked merges, as Hugging Face tokenizers runs a tokenizer.json
// "model": {"type": "BPE"}: byte-level (GPT-2, Llama-3, Qwen2, SmolLM: symbols are bytes) or over code points
// with byte fallback (Llama-2, Mistral, Gemma as converted from SentencePiece). Around the model: added tokens
// matched in the text first, normalizers (NFC, Prepend, Replace), pre-tokenizers (the hand-written patterns of
// pretokenizer.hpp, Digits, Metaspace, Split on a string), the post-processor's special tokens, the decoder.
//
// Memory (a 150k vocabulary with 280k merges): the vocabulary is one byte arena + offsets + an open-addressing
// index (~3 MB), the merges one open-addressing table of 16-byte slots (~8 MB); no per-token allocation.
// Merging runs a binary heap over a linked list of symbols per pre-token: O(n log n) in the pre-token's length.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/result.hpp"
#include "../formats/model_file.hpp"
#include "pretokenizer.hpp"
#include "unicode.hpp"

namespace edgelm {

// A token matched in the text before the model runs (tokenizer.json "added_tokens", GGUF control and
// user-defined tokens). Flags as in Hugging Face tokenizers' AddedToken.
struct added_token {
  std::string content;
  std::int32_t id = -1;
  bool special = false;      // a control token: skipped by decode(skip_special), matched only when parse_special
  bool lstrip = false;       // the match takes the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // matched only when not inside a word
  bool normalized = false;   // matched in the normalized text (its content normalized too), after the others
};

namespace detail {

// GPT-2's byte <-> printable code point alphabet (bytes_to_unicode in its encoder.py): printable Latin-1
// bytes stand for themselves, the other 68 bytes for U+0100 onwards, in byte order.
inline constexpr std::array<std::uint16_t, 256> make_byte_to_cp() {
  std::array<std::uint16_t, 256> t{};
  std::uint16_t extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[b] = printable ? static_cast<std::uint16_t>(b) : static_cast<std::uint16_t>(256 + extra++);
  }
  return t;
}
inline constexpr std::array<std::uint16_t, 256> byte_to_cp = make_byte_to_cp();
// code point (< 324) -> byte, or -1
inline constexpr std::array<std::int16_t, 324> make_cp_to_byte() {
  std::array<std::int16_t, 324> t{};
  for (auto& v : t) v = -1;
  for (int b = 0; b < 256; ++b) t[byte_to_cp[b]] = static_cast<std::int16_t>(b);
  return t;
}
inline constexpr std::array<std::int16_t, 324> cp_to_byte = make_cp_to_byte();

// Decode a byte-level vocabulary string (GPT-2 alphabet) into the bytes it stands for. A code point outside
// the alphabet is kept as its own UTF-8 (as Hugging Face's ByteLevel decoder does).
inline std::string byte_level_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const utf8_step st = utf8_next(s, i);
    if (st.cp < cp_to_byte.size() && cp_to_byte[st.cp] >= 0) out += static_cast<char>(cp_to_byte[st.cp]);
    else out.append(s.substr(i, st.len));
    i += st.len;
  }
  return out;
}

inline std::uint64_t hash_bytes(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

// Strings of one arena, found by content: open addressing over indices into the arena's table of offsets, each
// slot with 32 more bits of the hash so that a probe compares strings only when those agree. The arena is passed
// to every call (not kept), so the owner can be moved freely.
class string_index {
 public:
  using arena = std::pair<std::string_view, std::span<const std::uint32_t>>;
  void build(arena a, std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots_.assign(cap, slot{});
    for (std::size_t i = 0; i < n; ++i) {
      const std::string_view s = str(a, static_cast<std::int32_t>(i));
      if (s.empty()) continue;
      const std::uint64_t full = hash_bytes(s);
      const auto tag = static_cast<std::uint32_t>(full >> 32);
      std::size_t h = full & (cap - 1);
      while (slots_[h].id >= 0 && !(slots_[h].tag == tag && str(a, slots_[h].id) == s)) h = (h + 1) & (cap - 1);
      if (slots_[h].id < 0) slots_[h] = {static_cast<std::int32_t>(i), tag};  // the first id wins on duplicates
    }
  }
  std::int32_t find(arena a, std::string_view s) const noexcept {
    if (slots_.empty() || s.empty()) return -1;
    const std::size_t mask = slots_.size() - 1;
    const std::uint64_t full = hash_bytes(s);
    const auto tag = static_cast<std::uint32_t>(full >> 32);
    std::size_t h = full & mask;
    while (slots_[h].id >= 0) {
      if (slots_[h].tag == tag && str(a, slots_[h].id) == s) return slots_[h].id;
      h = (h + 1) & mask;
    }
    return -1;
  }

 private:
  struct slot {
    std::int32_t id = -1;
    std::uint32_t tag = 0;
  };
  static std::string_view str(arena a, std::int32_t i) noexcept {
    const auto k = static_cast<std::size_t>(i);
    return a.first.substr(a.second[k], a.second[k + 1] - a.second[k]);
  }
  std::vector<slot> slots_;
};

// (left id, right id) -> (rank, merged id), open addressing.
class merge_table {
 public:
  struct hit {
    std::uint32_t rank;
    std::int32_t merged;
  };
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n + n / 2 + 1) cap *= 2;
    slots_.assign(cap, slot{});
  }
  // false if the pair is already there (the first, lower rank wins, as in Hugging Face)
  bool insert(std::int32_t l, std::int32_t r, std::uint32_t rank, std::int32_t merged) noexcept {
    const std::uint64_t key = pack(l, r);
    std::size_t h = mix(key) & (slots_.size() - 1);
    while (slots_[h].merged >= 0) {
      if (slots_[h].key == key) return false;
      h = (h + 1) & (slots_.size() - 1);
    }
    slots_[h] = {key, rank, merged};
    return true;
  }
  std::optional<hit> find(std::int32_t l, std::int32_t r) const noexcept {
    if (slots_.empty()) return std::nullopt;
    const std::uint64_t key = pack(l, r);
    std::size_t h = mix(key) & (slots_.size() - 1);
    while (slots_[h].merged >= 0) {
      if (slots_[h].key == key) return hit{slots_[h].rank, slots_[h].merged};
      h = (h + 1) & (slots_.size() - 1);
    }
    return std::nullopt;
  }

 private:
  struct slot {
    std::uint64_t key = 0;
    std::uint32_t rank = 0;
    std::int32_t merged = -1;
  };
  static std::uint64_t pack(std::int32_t l, std::int32_t r) noexcept {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(l)) << 32 | static_cast<std::uint32_t>(r);
  }
  static std::size_t mix(std::uint64_t k) noexcept {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  std::vector<slot> slots_;
};

}  // namespace detail

// ---- configuration: what tokenizer.json (or a GGUF) describes -------------------------------------------
enum class normalizer_kind : std::uint8_t { nfc, prepend, replace };
struct normalizer_step {
  normalizer_kind kind;
  std::string a, b;  // prepend: a; replace: a -> b
  // nfc: the normaliser, reached through this pointer so that only code that makes an NFC step (make_nfc(): the
  // tokenizer.json reader) links detail::nfc and its ~38 KB of composition tables (GGUF vocabularies never need them)
  std::string (*fn)(std::string_view) = nullptr;
  static normalizer_step make_nfc() { return {normalizer_kind::nfc, {}, {}, &detail::nfc}; }
};

enum class split_behavior : std::uint8_t { isolated, removed, merged_with_previous, merged_with_next, contiguous };
enum class pretokenizer_kind : std::uint8_t { pattern, split_string, digits, metaspace, byte_level_prefix };
struct pretokenizer_step {
  pretokenizer_step(pretokenizer_kind k = pretokenizer_kind::pattern) : kind(k) {}  // NOLINT: implicit on purpose
  pretokenizer_kind kind;
  split_pattern pattern = split_pattern::gpt2;  // kind pattern
  std::string str;                              // split_string: the delimiter; metaspace: the replacement
  split_behavior behavior = split_behavior::isolated;
  bool individual_digits = false;               // digits
  std::uint8_t prepend_scheme = 1;              // metaspace: 0 never, 1 first, 2 always
  bool split = false;                           // metaspace: split on the replacement (merged with next)
};

// The decoded bytes of each token follow from the decoder: byte_level maps the GPT-2 alphabet back to bytes;
// otherwise `replace` pieces are replaced (U+2581 -> ' '), <0xHH> byte-fallback tokens become their byte, and
// strip_first leading spaces are removed from the first decoded piece (Strip / Metaspace decoders).
struct decoder_spec {
  bool byte_level = false;
  std::string replace_from, replace_to;
  bool byte_fallback = false;
  std::uint32_t strip_first = 0;
};

// Everything needed to build a bpe_tokenizer; vocabulary and merges in arenas (no per-string allocation).
struct bpe_source {
  bool byte_level = false;                 // symbols are bytes; vocabulary strings are in GPT-2's alphabet
  std::string vocab_arena;                 // the vocabulary strings, as in the file
  std::vector<std::uint32_t> vocab_off;    // vocab_off[i], vocab_off[i + 1]: the i-th string read
  std::vector<std::int32_t> vocab_id;      // its id
  std::string merge_arena;                 // left and right of each merge, in rank order
  std::vector<std::uint32_t> merge_off;    // 2 * merges + 1 offsets
  std::vector<added_token> added;
  std::vector<normalizer_step> normalizers;
  std::vector<pretokenizer_step> pretokenizers;
  decoder_spec decoder;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  std::string unk_token;
  std::vector<std::string> prefix, suffix;  // special tokens the post-processor puts around the text
  std::optional<std::string> bos_token, eos_token;
  std::optional<std::int32_t> bos_id, eos_id;  // (GGUF gives ids)
  std::optional<bool> add_bos, add_eos;        // tokenizer_config.json / GGUF flags
  std::string chat_template;
  bool saw_merges = false;                     // (reader) the file has a merges list, even an empty one

  void add_vocab(std::string_view s, std::int32_t id) {
    if (vocab_off.empty()) vocab_off.push_back(0);
    vocab_arena.append(s);
    vocab_off.push_back(static_cast<std::uint32_t>(vocab_arena.size()));
    vocab_id.push_back(id);
  }
  void add_merge(std::string_view l, std::string_view r) {
    if (merge_off.empty()) merge_off.push_back(0);
    merge_arena.append(l);
    merge_off.push_back(static_cast<std::uint32_t>(merge_arena.size()));
    merge_arena.append(r);
    merge_off.push_back(static_cast<std::uint32_t>(merge_arena.size()));
  }
};

class bpe_tokenizer {
 public:
  using token = std::int32_t;

  static result<bpe_tokenizer> build(bpe_source src);

  std::size_t vocab_size() const noexcept { return n_; }
  // Text -> ids. add_special: the post-processor's tokens (BOS...). parse_special: special added tokens in
  // the text become their ids (Hugging Face's default); off for untrusted text, where "<|im_end|>" must stay
  // text. Non-special added tokens are matched either way (they are ordinary vocabulary to HF too).
  void encode(std::string_view text, bool add_special, bool parse_special, std::vector<token>& out) const;
  // The bytes token id stands for ("" for an id out of range).
  std::string_view token_bytes(token id) const noexcept {
    if (id < 0 || static_cast<std::size_t>(id) >= n_) return {};
    return std::string_view(bytes_).substr(bytes_off_[id], bytes_off_[id + 1] - bytes_off_[id]);
  }
  // The bytes of id as the decoder emits them; first: this is the first piece of the decoded text (the decoder
  // may strip a leading space there, e.g. the one the Metaspace pre-tokenizer prepended).
  std::string_view decode_piece(token id, bool first) const noexcept {
    std::string_view p = token_bytes(id);
    if (first && !is_added(id))
      for (std::uint32_t k = 0; k < strip_first_ && !p.empty() && p[0] == ' '; ++k) p.remove_prefix(1);
    return p;
  }
  bool is_special(token id) const noexcept { return id >= 0 && static_cast<std::size_t>(id) < n_ && (flags_[id] & flag_special); }
  bool is_added(token id) const noexcept { return id >= 0 && static_cast<std::size_t>(id) < n_ && (flags_[id] & flag_added); }
  std::optional<token> bos() const noexcept { return bos_; }
  std::optional<token> eos() const noexcept { return eos_; }
  std::span<const token> prefix() const noexcept { return prefix_; }
  std::span<const token> suffix() const noexcept { return suffix_; }
  const std::string& chat_template() const noexcept { return chat_template_; }
  const std::vector<added_token>& added_tokens() const noexcept { return added_; }
  // The id whose content (added token) or vocabulary string equals s, if any.
  std::optional<token> find(std::string_view s) const noexcept {
    for (const auto& a : added_)
      if (a.content == s) return a.id;
    const token t = index_.find(raw_arena(), s);
    if (t >= 0) return t;
    return std::nullopt;
  }

 private:
  static constexpr std::uint8_t flag_special = 1, flag_added = 2, flag_byte = 4;
  struct segment {
    std::size_t begin, end;
    token added;  // >= 0: this segment is that added token
  };
  struct trie_node {
    std::vector<std::pair<std::uint8_t, std::uint32_t>> next;
    std::int32_t terminal = -1;
  };
  static void trie_insert(std::vector<trie_node>& trie, std::string_view s, std::int32_t terminal);
  void split_added(std::string_view text, bool parse_special, const std::vector<trie_node>& trie, std::vector<segment>& out) const;
  std::string normalize(std::string_view seg) const;
  void encode_normalized(std::string norm, bool at_start, std::vector<token>& out) const;
  void encode_word(std::string_view w, std::vector<token>& out) const;
  void encode_chars(std::string_view w, std::vector<token>& out) const;
  void merge_symbols(std::vector<token>& sy, std::vector<token>& out) const;

  detail::string_index::arena raw_arena() const noexcept { return {raw_, raw_off_}; }

  std::size_t n_ = 0;
  bool byte_level_ = false, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  token unk_ = -1;
  std::string raw_;                       // encoder-side strings by id (byte-level: decoded bytes)
  std::vector<std::uint32_t> raw_off_;
  std::string bytes_;                     // decoded bytes by id
  std::vector<std::uint32_t> bytes_off_;
  std::vector<std::uint8_t> flags_;
  detail::string_index index_;            // encoder-side string -> id
  detail::merge_table merges_;
  std::array<token, 256> byte_token_{};   // byte-level: the token of each byte; byte fallback: <0xHH>
  std::vector<added_token> added_;
  // added-token tries over bytes: node -> sorted edges; terminal index into added_ or -1. trie_: the tokens
  // matched in the raw text; ntrie_: the `normalized` ones, by their normalized content, in the normalized text
  std::vector<trie_node> trie_, ntrie_;
  std::string word_mark_;  // not empty: long pre-tokens may be merged word by word, split before this mark
  std::vector<std::pair<std::string, std::string>> crossing_;  // ... except where one of these merges fits
  std::vector<normalizer_step> normalizers_;
  std::vector<pretokenizer_step> pretokenizers_;
  std::uint32_t strip_first_ = 0;
  std::vector<token> prefix_, suffix_;
  std::optional<token> bos_, eos_;
  std::string chat_template_;
};

// ---- building ------------------------------------------------------------------------------------------
inline result<bpe_tokenizer> bpe_tokenizer::build(bpe_source src) {
  bpe_tokenizer t;
  const std::size_t n_read = src.vocab_id.size();
  if (n_read == 0) return make_error(errc::bad_tokenizer, "the vocabulary is empty", error::no_offset, "model.vocab");
  // ids: dense 0..n-1 over vocabulary and added tokens together (gaps are allowed and decode to "")
  std::int64_t max_id = -1;
  for (auto id : src.vocab_id) max_id = std::max<std::int64_t>(max_id, id);
  for (const auto& a : src.added) max_id = std::max<std::int64_t>(max_id, a.id);
  for (auto id : src.vocab_id)
    if (id < 0) return make_error(errc::bad_tokenizer, "negative token id", error::no_offset, "model.vocab");
  if (static_cast<std::uint64_t>(max_id) + 1 > limits::max_vocab)
    return make_error(errc::count_too_large, "token id " + std::to_string(max_id) + " is beyond EDGELM_MAX_VOCAB", error::no_offset, "model.vocab");
  if (static_cast<std::uint64_t>(max_id) + 1 > 4 * (n_read + src.added.size()) + 1024)
    return make_error(errc::bad_tokenizer, "token ids are too sparse (id " + std::to_string(max_id) + " among " + std::to_string(n_read) + " tokens)", error::no_offset, "model.vocab");
  const std::size_t n = static_cast<std::size_t>(max_id) + 1;
  t.n_ = n;
  // which entry holds each id
  std::vector<std::int32_t> entry(n, -1);
  for (std::size_t i = 0; i < n_read; ++i) {
    const auto id = static_cast<std::size_t>(src.vocab_id[i]);
    if (entry[id] >= 0) return make_error(errc::duplicate_name, "token id " + std::to_string(id) + " appears twice", error::no_offset, "model.vocab");
    entry[id] = static_cast<std::int32_t>(i);
  }
  auto read_str = [&](std::size_t i) {
    return std::string_view(src.vocab_arena).substr(src.vocab_off[i], src.vocab_off[i + 1] - src.vocab_off[i]);
  };
  std::vector<std::int32_t> added_at(n, -1);
  for (std::size_t k = 0; k < src.added.size(); ++k) {
    const auto& a = src.added[k];
    if (a.id < 0) return make_error(errc::bad_tokenizer, "added token with a negative id", error::no_offset, "added_tokens");
    if (a.content.empty()) return make_error(errc::bad_tokenizer, "added token " + std::to_string(a.id) + " is empty", error::no_offset, "added_tokens");
    if (a.content.size() > limits::max_token_bytes) return make_error(errc::bad_tokenizer, "added token " + std::to_string(a.id) + " is too long", error::no_offset, "added_tokens");
    added_at[static_cast<std::size_t>(a.id)] = static_cast<std::int32_t>(k);
  }
  // the encoder-side and decoded strings of every id
  t.byte_level_ = src.byte_level;
  t.flags_.assign(n, 0);
  t.bytes_off_.reserve(n + 1);
  t.bytes_off_.push_back(0);
  t.raw_off_.reserve(n + 1);
  t.raw_off_.push_back(0);
  t.byte_token_.fill(-1);
  std::string tmp;
  for (std::size_t id = 0; id < n; ++id) {
    std::string_view raw;
    if (added_at[id] >= 0) {
      raw = src.added[static_cast<std::size_t>(added_at[id])].content;
      t.flags_[id] |= flag_added;
      if (src.added[static_cast<std::size_t>(added_at[id])].special) t.flags_[id] |= flag_special;
    } else if (entry[id] >= 0) {
      raw = read_str(static_cast<std::size_t>(entry[id]));
    }
    if (raw.size() > limits::max_token_bytes) return make_error(errc::bad_tokenizer, "token " + std::to_string(id) + " is too long", error::no_offset, "model.vocab");
    // decoded bytes
    // Decoded bytes. Special tokens read as their text. Other added tokens that are vocabulary entries go
    // through the decoder like the model's tokens (Gemma's "\u2581\u2581" is two spaces); other added tokens
    // of a byte-level tokenizer read as their text (exact round trip; HF would byte-map their characters).
    const bool plain_added = (t.flags_[id] & flag_added) && !(t.flags_[id] & flag_special) && entry[id] >= 0;
    if ((t.flags_[id] & flag_added) && !(plain_added && !src.byte_level)) {
      t.bytes_.append(raw);
    } else if (src.byte_level) {
      t.bytes_ += detail::byte_level_decode(raw);
    } else {
      int b = -1;
      if ((src.decoder.byte_fallback || src.byte_fallback) && raw.size() == 6 && raw.substr(0, 3) == "<0x" && raw[5] == '>') {
        auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
        if (hex(raw[3]) >= 0 && hex(raw[4]) >= 0) b = hex(raw[3]) * 16 + hex(raw[4]);
      }
      if (b >= 0) {
        t.bytes_ += static_cast<char>(b);
        t.flags_[id] |= flag_byte;
        if (src.byte_fallback && t.byte_token_[static_cast<std::size_t>(b)] < 0) t.byte_token_[static_cast<std::size_t>(b)] = static_cast<token>(id);
      } else if (!src.decoder.replace_from.empty()) {
        tmp.clear();
        for (std::size_t i = 0; i < raw.size();) {
          if (raw.substr(i, src.decoder.replace_from.size()) == src.decoder.replace_from) { tmp += src.decoder.replace_to; i += src.decoder.replace_from.size(); }
          else tmp += raw[i++];
        }
        t.bytes_ += tmp;
      } else {
        t.bytes_.append(raw);
      }
    }
    if (t.bytes_.size() > 0xFFFFFFF0u) return make_error(errc::count_too_large, "the vocabulary is too large", error::no_offset, "model.vocab");
    t.bytes_off_.push_back(static_cast<std::uint32_t>(t.bytes_.size()));
    // The encoder's index holds the model vocabulary (added tokens that are also vocabulary entries
    // included, as merges may name them: Gemma's whitespace runs); byte-fallback tokens stay out so that
    // the text "<0x41>" is not that token. Byte-level: the decoded bytes; else the strings as in the file.
    if (entry[id] >= 0 && !(t.flags_[id] & flag_byte)) {
      const std::string_view v = read_str(static_cast<std::size_t>(entry[id]));
      if (src.byte_level) t.raw_ += detail::byte_level_decode(v);
      else t.raw_.append(v);
    }
    if (t.raw_.size() > 0xFFFFFFF0u) return make_error(errc::count_too_large, "the vocabulary is too large", error::no_offset, "model.vocab");
    t.raw_off_.push_back(static_cast<std::uint32_t>(t.raw_.size()));
  }
  src.vocab_arena = std::string();  // no longer needed: release before the tables are built
  t.index_.build(t.raw_arena(), n);
  if (src.byte_level) {
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      t.byte_token_[static_cast<std::size_t>(b)] = t.index_.find(t.raw_arena(), std::string_view(&c, 1));
    }
  }
  // merges: resolve names to ids
  const std::size_t n_merges = src.merge_off.empty() ? 0 : (src.merge_off.size() - 1) / 2;
  t.merges_.reserve(n_merges);
  std::string joined;
  auto side = [&](std::size_t k) {
    return std::string_view(src.merge_arena).substr(src.merge_off[k], src.merge_off[k + 1] - src.merge_off[k]);
  };
  auto lookup = [&](std::string_view s) -> token {
    if (!src.byte_level) return t.index_.find(t.raw_arena(), s);
    return t.index_.find(t.raw_arena(), detail::byte_level_decode(s));
  };
  for (std::size_t m = 0; m < n_merges; ++m) {
    const std::string_view l = side(2 * m), r = side(2 * m + 1);
    const token li = lookup(l), ri = lookup(r);
    if (li < 0 || ri < 0)
      return make_error(errc::bad_tokenizer, "merge " + std::to_string(m) + " names a token that is not in the vocabulary: '" + std::string(li < 0 ? l : r) + "'", error::no_offset, "model.merges");
    joined.assign(l);
    joined += r;
    const token mi = lookup(joined);
    if (mi < 0) return make_error(errc::bad_tokenizer, "merge " + std::to_string(m) + " makes '" + joined + "', which is not in the vocabulary", error::no_offset, "model.merges");
    if (src.byte_level && t.token_bytes(mi).size() != t.token_bytes(li).size() + t.token_bytes(ri).size())
      return make_error(errc::bad_tokenizer, "merge " + std::to_string(m) + " is not in the byte-level alphabet", error::no_offset, "model.merges");
    t.merges_.insert(li, ri, static_cast<std::uint32_t>(m), mi);
  }
  // the rest
  t.byte_fallback_ = src.byte_fallback;
  t.fuse_unk_ = src.fuse_unk;
  t.ignore_merges_ = src.ignore_merges;
  t.added_ = std::move(src.added);
  if (!src.unk_token.empty()) {
    auto u = t.find(src.unk_token);
    if (!u) return make_error(errc::bad_tokenizer, "unk_token '" + src.unk_token + "' is not in the vocabulary", error::no_offset, "model.unk_token");
    t.unk_ = *u;
  }
  t.normalizers_ = std::move(src.normalizers);
  t.trie_.emplace_back();
  t.ntrie_.emplace_back();
  for (std::size_t k = 0; k < t.added_.size(); ++k) {
    const added_token& a = t.added_[k];
    if (!a.normalized) trie_insert(t.trie_, a.content, static_cast<std::int32_t>(k));
    else trie_insert(t.ntrie_, t.normalize(a.content), static_cast<std::int32_t>(k));
  }
  // Word-by-word merging of long pre-tokens (a Prepend/Replace normalizer without a splitting pre-tokenizer makes
  // the whole text one pre-token). A point before a U+2581 that follows another character can be crossed only
  // by a merge of a left side that does not end with U+2581 and a right side that starts with it; the few such
  // merges are kept, and a point where one of them fits the text either side is not split (build order: the
  // merges' strings are still in src here).
  if (!t.byte_level_ && t.index_.find(t.raw_arena(), "\xe2\x96\x81") >= 0) {
    const std::string_view mark = "\xe2\x96\x81";
    bool usable = true;
    for (std::size_t m = 0; m < n_merges && usable; ++m) {
      const std::string_view l = side(2 * m), r = side(2 * m + 1);
      const bool l_mark = l.size() >= mark.size() && l.substr(l.size() - mark.size()) == mark;
      if (!l_mark && r.substr(0, std::min(r.size(), mark.size())) == mark) {
        t.crossing_.emplace_back(std::string(l), std::string(r));
        usable = t.crossing_.size() <= 64;
      }
    }
    if (usable) t.word_mark_ = mark;
    else t.crossing_.clear();
  }
  t.pretokenizers_ = std::move(src.pretokenizers);
  t.strip_first_ = src.decoder.strip_first;
  auto resolve = [&](const std::vector<std::string>& names, std::vector<token>& out, const char* where) -> result<void> {
    for (const auto& s : names) {
      auto id = t.find(s);
      if (!id) return make_error(errc::bad_tokenizer, "special token '" + s + "' is not in the vocabulary", error::no_offset, where);
      out.push_back(*id);
    }
    return {};
  };
  EDGELM_TRY(resolve(src.prefix, t.prefix_, "post_processor"));
  EDGELM_TRY(resolve(src.suffix, t.suffix_, "post_processor"));
  auto special_id = [&](const std::optional<std::string>& name, const std::optional<token>& id, const char* key) -> result<std::optional<token>> {
    if (id) {
      if (*id < 0 || static_cast<std::size_t>(*id) >= n) return make_error(errc::bad_tokenizer, "id outside the vocabulary", error::no_offset, key);
      return std::optional<token>(*id);
    }
    if (!name) return std::optional<token>();
    auto f = t.find(*name);
    if (!f) return make_error(errc::bad_tokenizer, "'" + *name + "' is not in the vocabulary", error::no_offset, key);
    return std::optional<token>(*f);
  };
  auto bos = special_id(src.bos_token, src.bos_id, "bos_token");
  if (!bos) return bos.error();
  auto eos = special_id(src.eos_token, src.eos_id, "eos_token");
  if (!eos) return eos.error();
  t.bos_ = *bos;
  t.eos_ = *eos;
  // tokenizer_config.json's add_bos_token / add_eos_token (and GGUF's flags) add what the post-processor lacks
  if (src.add_bos && *src.add_bos && t.bos_ && std::find(t.prefix_.begin(), t.prefix_.end(), *t.bos_) == t.prefix_.end())
    t.prefix_.insert(t.prefix_.begin(), *t.bos_);
  if (src.add_eos && *src.add_eos && t.eos_ && std::find(t.suffix_.begin(), t.suffix_.end(), *t.eos_) == t.suffix_.end())
    t.suffix_.push_back(*t.eos_);
  t.chat_template_ = std::move(src.chat_template);
  return t;
}

// ---- encoding ------------------------------------------------------------------------------------------

// Leftmost-longest matching of the added tokens (Hugging Face uses an Aho-Corasick automaton with that match
// kind): walk the trie from every position; the walk is bounded by the longest added token.
inline void bpe_tokenizer::trie_insert(std::vector<trie_node>& trie, std::string_view s, std::int32_t terminal) {
  if (s.empty()) return;  // (an empty content matches nothing, as in Hugging Face tokenizers)
  std::uint32_t node = 0;
  for (char ch : s) {
    const auto c = static_cast<std::uint8_t>(ch);
    auto& e = trie[node].next;
    auto it = std::lower_bound(e.begin(), e.end(), c, [](const auto& p, std::uint8_t v) { return p.first < v; });
    if (it != e.end() && it->first == c) { node = it->second; continue; }
    const auto fresh = static_cast<std::uint32_t>(trie.size());
    e.insert(it, {c, fresh});
    trie.emplace_back();
    node = fresh;
  }
  if (trie[node].terminal < 0) trie[node].terminal = terminal;
}

inline void bpe_tokenizer::split_added(std::string_view text, bool parse_special, const std::vector<trie_node>& trie, std::vector<segment>& out) const {
  std::size_t start = 0;  // start of the pending text segment
  // a word character for single_word: letters, numbers and '_' (checked against Hugging Face tokenizers 0.23.2)
  auto is_word = [](std::uint32_t cp) { return cp != detail::invalid_cp && (detail::is_letter(cp) || detail::is_number(cp) || cp == '_'); };
  std::size_t i = 0;
  while (i < text.size()) {
    std::uint32_t node = 0;
    std::int32_t best = -1;
    std::size_t best_end = 0;
    if (trie.size() > 1) {
      for (std::size_t j = i; j < text.size(); ++j) {
        const auto c = static_cast<std::uint8_t>(text[j]);
        const auto& e = trie[node].next;
        auto it = std::lower_bound(e.begin(), e.end(), c, [](const auto& p, std::uint8_t v) { return p.first < v; });
        if (it == e.end() || it->first != c) break;
        node = it->second;
        const std::int32_t term = trie[node].terminal;
        if (term >= 0 && (parse_special || !added_[static_cast<std::size_t>(term)].special)) { best = term; best_end = j + 1; }
      }
    }
    if (best >= 0) {
      const added_token& a = added_[static_cast<std::size_t>(best)];
      std::size_t b = i, e = best_end;
      if (a.single_word) {
        // not inside a word: the code points either side must not be word characters
        bool ok = true;
        if (b > 0) {
          std::size_t k = b - 1;
          while (k > 0 && (static_cast<std::uint8_t>(text[k]) & 0xC0) == 0x80) --k;
          ok &= !is_word(detail::utf8_next(text, k).cp);
        }
        if (e < text.size()) ok &= !is_word(detail::utf8_next(text, e).cp);
        if (!ok) { ++i; continue; }
      }
      // lstrip / rstrip take Unicode white space (Rust's char::is_whitespace), never past the previous match
      if (a.lstrip)
        while (b > start) {
          std::size_t k = b - 1;
          while (k > start && (static_cast<std::uint8_t>(text[k]) & 0xC0) == 0x80) --k;
          const detail::utf8_step st = detail::utf8_next(text, k);
          if (k + st.len != b || st.cp == detail::invalid_cp || !detail::is_space(st.cp)) break;
          b = k;
        }
      if (a.rstrip)
        while (e < text.size()) {
          const detail::utf8_step st = detail::utf8_next(text, e);
          if (st.cp == detail::invalid_cp || !detail::is_space(st.cp)) break;
          e += st.len;
        }
      if (b > start) out.push_back({start, b, -1});
      out.push_back({b, e, a.id});
      i = start = e;
      continue;
    }
    ++i;
  }
  if (start < text.size()) out.push_back({start, text.size(), -1});
}

inline void bpe_tokenizer::encode(std::string_view text, bool add_special, bool parse_special, std::vector<token>& out) const {
  if (add_special) out.insert(out.end(), prefix_.begin(), prefix_.end());
  // As Hugging Face tokenizers: the added tokens that are not `normalized` split the raw text; each other piece
  // is normalized and then split by the `normalized` ones (their contents normalized the same way).
  std::vector<segment> segs, nsegs;
  split_added(text, parse_special, trie_, segs);
  for (const segment& s : segs) {
    if (s.added >= 0) { out.push_back(s.added); continue; }
    std::string norm = normalize(text.substr(s.begin, s.end - s.begin));
    if (ntrie_.size() <= 1) { encode_normalized(std::move(norm), s.begin == 0, out); continue; }
    nsegs.clear();
    split_added(norm, parse_special, ntrie_, nsegs);
    for (const segment& n : nsegs) {
      if (n.added >= 0) out.push_back(n.added);
      else encode_normalized(norm.substr(n.begin, n.end - n.begin), s.begin == 0 && n.begin == 0, out);
    }
  }
  if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
}

inline std::string bpe_tokenizer::normalize(std::string_view seg) const {
  std::string norm(seg);
  for (const auto& n : normalizers_) {
    switch (n.kind) {
      case normalizer_kind::nfc:
        if (n.fn) norm = n.fn(norm);
        break;
      case normalizer_kind::prepend:
        if (!norm.empty()) norm.insert(0, n.a);
        break;
      case normalizer_kind::replace: {
        if (n.a.empty()) break;
        std::string r;
        r.reserve(norm.size());
        for (std::size_t i = 0; i < norm.size();) {
          if (norm.compare(i, n.a.size(), n.a) == 0) { r += n.b; i += n.a.size(); }
          else r += norm[i++];
        }
        norm = std::move(r);
        break;
      }
    }
  }
  return norm;
}

// A normalized piece through the pre-tokenizers and the model. at_start: it starts the text (Metaspace "first").
inline void bpe_tokenizer::encode_normalized(std::string norm, bool at_start, std::vector<token>& out) const {
  // pre-tokenizers: the ones that rewrite the text run first (they are only allowed first, see the reader),
  // then each split step refines the list of spans
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans, next;
  std::size_t k = 0;
  for (; k < pretokenizers_.size(); ++k) {
    const auto& p = pretokenizers_[k];
    if (p.kind == pretokenizer_kind::metaspace) {
      std::string r;
      r.reserve(norm.size() + p.str.size());
      for (char c : norm) {
        if (c == ' ') r += p.str;
        else r += c;
      }
      if ((p.prepend_scheme == 2 || (p.prepend_scheme == 1 && at_start)) && r.compare(0, p.str.size(), p.str) != 0) r.insert(0, p.str);
      norm = std::move(r);
      if (p.split) {
        // split on the replacement, each piece starting with it (MergedWithNext)
        std::size_t b = 0;
        for (std::size_t i = p.str.size(); i + p.str.size() <= norm.size();) {
          if (norm.compare(i, p.str.size(), p.str) == 0) {
            spans.emplace_back(static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(i - b));
            b = i;
            i += p.str.size();
          } else {
            ++i;
          }
        }
        if (b < norm.size()) spans.emplace_back(static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(norm.size() - b));
        ++k;
        break;
      }
    } else if (p.kind == pretokenizer_kind::byte_level_prefix) {
      if (!norm.empty() && norm[0] != ' ') norm.insert(0, 1, ' ');
    } else {
      break;
    }
  }
  if (norm.empty()) return;
  if (spans.empty()) spans.emplace_back(0u, static_cast<std::uint32_t>(norm.size()));
  const std::string_view text(norm);
  for (; k < pretokenizers_.size(); ++k) {
    const auto& p = pretokenizers_[k];
    next.clear();
    for (const auto& [b, len] : spans) {
      const std::string_view piece = text.substr(b, len);
      const std::size_t before = next.size();
      if (p.kind == pretokenizer_kind::pattern) {
        split_by_pattern(piece, p.pattern, next);
      } else if (p.kind == pretokenizer_kind::digits) {
        // runs of \p{N} (each digit alone when individual) and runs of everything else
        std::size_t i = 0, run_start = 0;
        int run_kind = -1;  // 0 other, 1 digits
        while (i < piece.size()) {
          const detail::utf8_step st = detail::utf8_next(piece, i);
          const int kind = st.cp != detail::invalid_cp && detail::is_number(st.cp) ? 1 : 0;
          if (i > run_start && (kind != run_kind || (kind == 1 && p.individual_digits))) {
            next.emplace_back(static_cast<std::uint32_t>(run_start), static_cast<std::uint32_t>(i - run_start));
            run_start = i;
          }
          run_kind = kind;
          i += st.len;
        }
        if (i > run_start) next.emplace_back(static_cast<std::uint32_t>(run_start), static_cast<std::uint32_t>(i - run_start));
      } else if (p.kind == pretokenizer_kind::split_string && !p.str.empty()) {
        // delimiter matches, then behaviour decides where they go
        std::size_t b0 = 0, i = 0;
        std::size_t pending_delim = SIZE_MAX;  // merged_with_next: start of a delimiter waiting for its text
        auto emit = [&](std::size_t s, std::size_t e) {
          if (e > s) next.emplace_back(static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(e - s));
        };
        while (i + p.str.size() <= piece.size()) {
          if (piece.compare(i, p.str.size(), p.str) != 0) { ++i; continue; }
          const std::size_t de = i + p.str.size();
          switch (p.behavior) {
            case split_behavior::isolated: emit(b0, i); emit(i, de); b0 = de; break;
            case split_behavior::removed: emit(b0, i); b0 = de; break;
            case split_behavior::merged_with_previous: emit(b0, de); b0 = de; break;
            case split_behavior::merged_with_next: emit(b0, i); b0 = i; break;
            case split_behavior::contiguous:
              if (pending_delim != i) { emit(b0, i); b0 = i; }
              pending_delim = de;
              if (de + p.str.size() > piece.size() || piece.compare(de, p.str.size(), p.str) != 0) { emit(b0, de); b0 = de; }
              break;
          }
          i = de;
        }
        emit(b0, piece.size());
      } else {
        next.emplace_back(0u, len);
      }
      for (std::size_t q = before; q < next.size(); ++q) next[q].first += b;
    }
    spans.swap(next);
  }
  for (const auto& [b, len] : spans) encode_word(text.substr(b, len), out);
}

// One pre-token through the model.
inline void bpe_tokenizer::encode_word(std::string_view w, std::vector<token>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    const token whole = index_.find(raw_arena(), w);
    if (whole >= 0) { out.push_back(whole); return; }
  }
  if (!word_mark_.empty() && w.size() > 256) {
    // a long pre-token: merged word by word (see build())
    const std::string_view mk = word_mark_;
    std::size_t b = 0;
    bool after_mark = false;  // the character before i is the mark
    for (std::size_t i = 0; i < w.size();) {
      if (w.compare(i, mk.size(), mk) == 0) {
        if (i > b && !after_mark) {
          bool cross = false;
          for (const auto& [l, r] : crossing_)
            cross |= i >= l.size() && w.compare(i - l.size(), l.size(), l) == 0 && w.compare(i, r.size(), r) == 0;
          if (!cross) { encode_chars(w.substr(b, i - b), out); b = i; }
        }
        after_mark = true;
        i += mk.size();
      } else {
        after_mark = false;
        ++i;
        while (i < w.size() && (static_cast<std::uint8_t>(w[i]) & 0xC0) == 0x80) ++i;  // whole code points
      }
    }
    encode_chars(w.substr(b), out);
    return;
  }
  encode_chars(w, out);
}

// One word's symbols (code points, byte fallback, unk) merged.
inline void bpe_tokenizer::encode_chars(std::string_view w, std::vector<token>& out) const {
  if (w.empty()) return;
  std::vector<token> sy;
  sy.reserve(w.size());
  if (byte_level_) {
    for (char c : w) {
      const token b = byte_token_[static_cast<std::uint8_t>(c)];
      if (b >= 0) sy.push_back(b);
      else if (unk_ >= 0) sy.push_back(unk_);  // a vocabulary without that byte (never in real files)
    }
  } else {
    for (std::size_t i = 0; i < w.size();) {
      const detail::utf8_step st = detail::utf8_next(w, i);
      const std::string_view ch = w.substr(i, st.len);
      const token id = index_.find(raw_arena(), ch);
      if (id >= 0) {
        sy.push_back(id);
      } else {
        bool all = byte_fallback_;
        if (all)
          for (char c : ch) all &= byte_token_[static_cast<std::uint8_t>(c)] >= 0;
        if (all) {
          for (char c : ch) sy.push_back(byte_token_[static_cast<std::uint8_t>(c)]);
        } else if (unk_ >= 0) {
          if (!(fuse_unk_ && !sy.empty() && sy.back() == unk_)) sy.push_back(unk_);
        }
      }
      i += st.len;
    }
  }
  merge_symbols(sy, out);
}

// Apply merges lowest rank first, leftmost first among equal ranks (a heap of candidate pairs over a linked
// list of symbols; stale candidates are recognised and dropped when popped).
inline void bpe_tokenizer::merge_symbols(std::vector<token>& sy, std::vector<token>& out) const {
  const auto n = static_cast<std::int32_t>(sy.size());
  if (n == 0) return;  // nothing encodable (a vocabulary without the bytes or characters, and no unk)
  if (n == 1) { out.push_back(sy[0]); return; }
  std::vector<std::int32_t> prev(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
  for (std::int32_t k = 0; k < n; ++k) {
    prev[static_cast<std::size_t>(k)] = k - 1;
    next[static_cast<std::size_t>(k)] = k + 1 < n ? k + 1 : -1;
  }
  struct cand {
    std::uint32_t rank;
    std::int32_t pos;
    token left, right;  // ids when queued, to detect stale entries
    token merged;
  };
  struct worse {
    bool operator()(const cand& a, const cand& b) const noexcept { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; }
  };
  std::vector<cand> storage;
  storage.reserve(static_cast<std::size_t>(n));
  std::priority_queue<cand, std::vector<cand>, worse> q(worse{}, std::move(storage));
  auto push = [&](std::int32_t l) {
    if (l < 0) return;
    const std::int32_t r = next[static_cast<std::size_t>(l)];
    if (r < 0) return;
    const token a = sy[static_cast<std::size_t>(l)], b = sy[static_cast<std::size_t>(r)];
    if (auto h = merges_.find(a, b)) q.push({h->rank, l, a, b, h->merged});
  };
  for (std::int32_t k = 0; k + 1 < n; ++k) push(k);
  while (!q.empty()) {
    const cand c = q.top();
    q.pop();
    const auto l = static_cast<std::size_t>(c.pos);
    if (sy[l] != c.left || next[l] < 0 || sy[static_cast<std::size_t>(next[l])] != c.right) continue;  // stale
    const auto r = static_cast<std::size_t>(next[l]);
    sy[l] = c.merged;
    next[l] = next[r];
    if (next[l] >= 0) prev[static_cast<std::size_t>(next[l])] = c.pos;
    sy[r] = -1;
    push(prev[l]);
    push(c.pos);
  }
  for (std::int32_t k = 0; k >= 0; k = next[static_cast<std::size_t>(k)]) out.push_back(sy[static_cast<std::size_t>(k)]);
}

}  // namespace edgelm
