// edgelm/tokenizer/text_tokenizer.hpp - one tokenizer facade over the encoders: SentencePiece-style BPE
// by scores (llama2.c tokenizer.bin, GGUF "llama"; sentencepiece.hpp) and BPE by ranked merges (tokenizer.json,
// GGUF "gpt2"; bpe.hpp). What a session needs: encode(text, add_special) -> ids, decode piece by piece,
// token_to_bytes, bos/eos/special ids, is_special, and the chat template string when the files carry one.
//
//   auto tok = edgelm::load_text_tokenizer(json_bytes, config_bytes);   // or GGUF / tokenizer.bin bytes
//   auto ids = tok->encode("Hello", /*add_special=*/true);
//   std::string text = tok->decode(ids);
//
// Lossless round trip: decode(encode(x, false)) == x for every byte string x with a byte-level tokenizer
// (bytes that are not UTF-8 are tokenized as bytes, like any other; Hugging Face's decode would turn them
// into U+FFFD, edgelm returns the bytes), and for every text whose characters the vocabulary or its byte
// fallback covers with the SentencePiece-style ones (NFC normalisation is the exception: it is lossy by design).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/result.hpp"
#include "../formats/gguf.hpp"
#include "../formats/llama2c.hpp"
#include "bpe.hpp"
#include "sentencepiece.hpp"
// tokenizer.json needs nlohmann/json (header-only); without it (or with EDGELM_NO_TOKENIZER_JSON) the facade
// still reads GGUF and llama2.c vocabularies, and a tokenizer.json input is an error.
#if !defined(EDGELM_NO_TOKENIZER_JSON) && __has_include(<nlohmann/json.hpp>)
#define EDGELM_HAVE_TOKENIZER_JSON 1
#include "tokenizer_json.hpp"
#endif

namespace edgelm {

class text_tokenizer {
 public:
  using token = std::int32_t;
  enum class kind : std::uint8_t { sentencepiece, bpe };

  text_tokenizer() = default;
  explicit text_tokenizer(tokenizer spm) : kind_(kind::sentencepiece), spm_(std::move(spm)) { finish_setup({}, {}); }
  explicit text_tokenizer(bpe_tokenizer bpe) : kind_(kind::bpe), bpe_(std::move(bpe)) { finish_setup({}, {}); }

  kind type() const noexcept { return kind_; }
  std::size_t vocab_size() const noexcept { return kind_ == kind::bpe ? bpe_.vocab_size() : spm_.vocab_size(); }

  // Text -> ids. add_special: what the tokenizer adds around a text (BOS for Llama, nothing for GPT-2 / Qwen2;
  // Hugging Face's add_special_tokens). parse_special: special tokens written in the text ("<|im_end|>", "<s>")
  // become their ids, as Hugging Face and llama.cpp do by default; pass false for untrusted user text. Any bytes
  // are accepted. SentencePiece-style vocabularies match their control and unknown tokens when parse_special and
  // their user-defined tokens always, and each run of text between them is encoded with the dummy prefix
  // (llama.cpp's partition; Hugging Face's Llama tokenizer.json behaves the same through its Prepend normalizer).
  std::vector<token> encode(std::string_view text, bool add_special = true, bool parse_special = true) const {
    if (kind_ == kind::sentencepiece) return encode_spm(text, add_special && spm_.add_bos(), parse_special);
    std::vector<token> out;
    out.reserve(text.size() / 3 + 4);
    bpe_.encode(text, add_special, parse_special, out);
    return out;
  }

  // The bytes a token stands for, as stored ("" for an id outside the vocabulary). For a byte-fallback
  // token <0xHH> it is that one byte; pieces may be partial UTF-8 characters.
  std::string_view token_to_bytes(token id) const noexcept {
    if (kind_ == kind::bpe) return bpe_.token_bytes(id);
    return spm_.decode(-1, id);
  }
  // The bytes token id contributes to decoded text; first: it is the first token decoded (then a leading
  // space the tokenizer itself added, SentencePiece's dummy prefix, is dropped). skip_special: control tokens
  // give "". A view into the tokenizer (valid while it lives).
  std::string_view decode_piece(token id, bool first, bool skip_special = false) const noexcept {
    if (skip_special && is_special(id)) return {};
    if (kind_ == kind::bpe) return bpe_.decode_piece(id, first);
    return spm_.decode(first ? spm_.bos() : -1, id);
  }
  // Ids -> text: the concatenation of decode_piece, the first emitted piece with first = true.
  std::string decode(std::span<const token> ids, bool skip_special = false) const {
    std::string s;
    bool first = true;
    for (token t : ids) {
      if (skip_special && is_special(t)) continue;
      if (kind_ == kind::sentencepiece && t == spm_.bos()) { first = true; continue; }  // llama2.c: BOS decodes to ""
      s += decode_piece(t, first);
      first = false;
    }
    return s;
  }

  std::optional<token> bos() const noexcept {
    if (kind_ == kind::bpe) return bpe_.bos();
    return spm_.bos();
  }
  std::optional<token> eos() const noexcept {
    if (kind_ == kind::bpe) return bpe_.eos();
    return spm_.eos();
  }
  token bos_id() const noexcept { return bos().value_or(-1); }  // -1: none
  token eos_id() const noexcept { return eos().value_or(-1); }
  // encode(text, true) starts with BOS (SentencePiece add_bos; the post-processor's first token for BPE).
  bool add_bos() const noexcept {
    if (kind_ == kind::sentencepiece) return spm_.add_bos();
    return bpe_.bos() && !bpe_.prefix().empty() && bpe_.prefix()[0] == *bpe_.bos();
  }
  // The tokens that end a generation: EOS, the files' end-of-turn ids (GGUF eot / eom), and the special tokens
  // the chat formats end a turn with (<|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, <|endoftext|>...), as
  // llama.cpp's end-of-generation set. Sorted, no duplicates.
  std::span<const token> stop_tokens() const noexcept { return stops_; }
  bool is_stop(token id) const noexcept { return std::binary_search(stops_.begin(), stops_.end(), id); }

  // Control tokens: BOS/EOS and the added tokens marked special (<|im_start|>, <|eot_id|>...).
  bool is_special(token id) const noexcept {
    if (kind_ == kind::bpe) return bpe_.is_special(id);
    if (id < 0 || static_cast<std::size_t>(id) >= spm_.vocab_size()) return false;
    return spm_.data().types[static_cast<std::size_t>(id)] == token_type::control;
  }
  // The id of a token by its text ("<|im_end|>"), if there is one.
  std::optional<token> find(std::string_view piece) const noexcept {
    if (kind_ == kind::bpe) return bpe_.find(piece);
    for (std::size_t i = 0; i < spm_.vocab_size(); ++i)
      if (spm_.piece(static_cast<token>(i)) == piece) return static_cast<token>(i);
    return std::nullopt;
  }
  // The chat template the files carry: tokenizer_config.json's chat_template or GGUF tokenizer.chat_template
  // ("" when none was given).
  const std::string& chat_template() const noexcept {
    return kind_ == kind::bpe && !bpe_.chat_template().empty() ? bpe_.chat_template() : template_;
  }
  // The token's text as the chat template sees it (bos_token / eos_token strings), "" for none.
  std::string token_text(std::optional<token> id) const {
    if (!id) return {};
    if (kind_ == kind::bpe) {
      const std::string_view b = bpe_.token_bytes(*id);
      return std::string(b);
    }
    return std::string(spm_.piece(*id));
  }

  // From a vocabulary as read from a file (GGUF "llama" or "gpt2", llama2.c): the encoder it names, the
  // end-of-generation ids and the chat template it carries.
  static result<text_tokenizer> from_data(tokenizer_data td);

  const tokenizer* sentencepiece() const noexcept { return kind_ == kind::sentencepiece ? &spm_ : nullptr; }
  const bpe_tokenizer* bpe() const noexcept { return kind_ == kind::bpe ? &bpe_ : nullptr; }

 private:
  kind kind_ = kind::sentencepiece;
  std::vector<token> encode_spm(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<token> out;
    if (add_bos) out.push_back(spm_.bos());
    std::size_t start = 0, i = 0;
    auto flush = [&](std::size_t end) {
      if (end <= start) return;
      const auto part = spm_.encode(text.substr(start, end - start), false);
      out.insert(out.end(), part.begin(), part.end());
    };
    while (i < text.size()) {
      token hit = -1;
      std::size_t len = 0;
      const auto c = static_cast<unsigned char>(text[i]);
      for (std::uint32_t k = by_first_[c]; k < by_first_[c + 1u]; ++k) {  // the pieces starting with this byte
        const auto& [piece, id] = specials_[k];
        if (!parse_special && spm_.data().types[static_cast<std::size_t>(id)] != token_type::user_defined) continue;
        if (piece.size() > len && text.substr(i, piece.size()) == piece) { hit = id; len = piece.size(); }
      }
      if (hit < 0) { ++i; continue; }
      flush(i);
      out.push_back(hit);
      i += len;
      start = i;
    }
    flush(text.size());
    return out;
  }
  void set_specials(std::vector<std::pair<std::string, token>> sp) {
    std::sort(sp.begin(), sp.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    specials_ = std::move(sp);
    by_first_.fill(0);
    for (const auto& e : specials_) ++by_first_[static_cast<unsigned char>(e.first[0]) + 1u];
    for (std::size_t b = 1; b < by_first_.size(); ++b) by_first_[b] += by_first_[b - 1];
  }
  void finish_setup(std::span<const token> eog_ids, std::string chat_template) {
    stops_.clear();
    auto add_stop = [&](std::optional<token> t) {
      if (t && *t >= 0 && static_cast<std::size_t>(*t) < vocab_size()) stops_.push_back(*t);
    };
    add_stop(eos());
    for (auto t : eog_ids) add_stop(t);
    static constexpr std::string_view end_of_turn[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                                       "<|eom_id|>", "<|end_of_text|>", "<EOT>", "<|END_OF_TURN_TOKEN|>"};
    auto end_of_turn_name = [&](std::string_view p) { return std::find(std::begin(end_of_turn), std::end(end_of_turn), p) != std::end(end_of_turn); };
    if (kind_ == kind::bpe) {
      for (auto name : end_of_turn)
        if (auto t = bpe_.find(name); t && bpe_.is_special(*t)) add_stop(t);
    } else {  // only the special pieces can be control tokens: no scan of the vocabulary
      for (const auto& [piece, id] : specials_)
        if (is_special(id) && end_of_turn_name(piece)) add_stop(id);
    }
    std::sort(stops_.begin(), stops_.end());
    stops_.erase(std::unique(stops_.begin(), stops_.end()), stops_.end());
    template_ = std::move(chat_template);
  }

  tokenizer spm_;
  bpe_tokenizer bpe_;
  std::vector<std::pair<std::string, token>> specials_;  // SentencePiece: control / unknown / user-defined pieces, by text
  std::array<std::uint32_t, 257> by_first_{};            // specials_[by_first_[b] .. by_first_[b + 1]) start with byte b
  std::vector<token> stops_;
  std::string template_;
};

namespace detail {
// The first byte that is not JSON whitespace is '{' (a tokenizer.json).
inline bool starts_json_object(std::span<const std::byte> bytes) noexcept {
  std::size_t i = 0;
  while (i < bytes.size() && (bytes[i] == std::byte{' '} || bytes[i] == std::byte{'\n'} || bytes[i] == std::byte{'\r'} || bytes[i] == std::byte{'\t'})) ++i;
  return i < bytes.size() && bytes[i] == std::byte{'{'};
}

// A GGUF "gpt2" vocabulary -> bpe_source. tokenizer.ggml.pre names the pattern as llama.cpp does.
inline result<bpe_source> bpe_source_from_gguf(const tokenizer_data& td) {
  bpe_source s;
  s.byte_level = true;
  s.decoder.byte_level = true;
  for (std::size_t i = 0; i < td.pieces.size(); ++i) {
    const token_type ty = td.types[i];
    if (ty == token_type::control || ty == token_type::user_defined) {
      added_token a;
      a.content = td.pieces[i];
      a.id = static_cast<std::int32_t>(i);
      a.special = ty == token_type::control;
      s.added.push_back(std::move(a));
    }
    s.add_vocab(td.pieces[i], static_cast<std::int32_t>(i));
  }
  for (std::size_t m = 0; m < td.merges.size(); ++m) {
    const std::string& mg = td.merges[m];
    const auto sp = mg.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= mg.size())
      return make_error(errc::bad_tokenizer, "merge " + std::to_string(m) + " is not two tokens separated by a space", error::no_offset, "tokenizer.ggml.merges");
    s.add_merge(std::string_view(mg).substr(0, sp), std::string_view(mg).substr(sp + 1));
  }
  s.saw_merges = true;
  pretokenizer_step st{pretokenizer_kind::pattern};
  const std::string& pre = td.pre;
  if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "gpt-2" || pre == "starcoder" || pre == "refact") st.pattern = split_pattern::gpt2;
  else if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "smaug-bpe") {
    st.pattern = split_pattern::llama3;
    s.ignore_merges = true;  // as llama.cpp runs its LLAMA3 pre-type (and Llama-3's tokenizer.json says)
  }
  else if (pre == "qwen2" || pre == "deepseek-r1-qwen") st.pattern = split_pattern::qwen2;
  else if (pre == "smollm") {
    pretokenizer_step d{pretokenizer_kind::digits};
    d.individual_digits = true;
    s.pretokenizers.push_back(d);
    st.pattern = split_pattern::gpt2;
  } else {
    return make_error(errc::bad_tokenizer, "pre-tokenizer '" + pre + "' is not supported (gpt2, llama-bpe, qwen2, smollm)", error::no_offset, "tokenizer.ggml.pre");
  }
  s.pretokenizers.push_back(st);
  s.bos_id = td.bos_id;
  s.eos_id = td.eos_id;
  s.add_bos = td.add_bos;
  if (td.add_bos) s.prefix.push_back(td.pieces[static_cast<std::size_t>(td.bos_id)]);
  return s;
}
}  // namespace detail

inline result<text_tokenizer> text_tokenizer::from_data(tokenizer_data td) {
  text_tokenizer out;
  std::vector<token> eog = std::move(td.eog_ids);
  std::string tpl = std::move(td.chat_template);
  if (td.model == "gpt2") {
    auto src = detail::bpe_source_from_gguf(td);
    if (!src) return src.error();
    auto t = bpe_tokenizer::build(std::move(*src));
    if (!t) return t.error();
    out = text_tokenizer(std::move(*t));
  } else {
    std::vector<std::pair<std::string, token>> specials;
    for (std::size_t i = 0; i < td.pieces.size() && i < td.types.size(); ++i) {
      const token_type ty = td.types[i];
      if ((ty == token_type::control || ty == token_type::unknown || ty == token_type::user_defined) && !td.pieces[i].empty())
        specials.emplace_back(td.pieces[i], static_cast<token>(i));
    }
    auto t = tokenizer::from_data(std::move(td));
    if (!t) return t.error();
    out = text_tokenizer(std::move(*t));
    out.set_specials(std::move(specials));
  }
  out.finish_setup(eog, std::move(tpl));
  return out;
}

// A tokenizer from its files' bytes: a tokenizer.json (first non-blank byte '{', with config the optional
// tokenizer_config.json), a GGUF (its embedded vocabulary, "llama" or "gpt2") or a llama2.c tokenizer.bin.
inline result<text_tokenizer> load_text_tokenizer(std::span<const std::byte> bytes, std::span<const std::byte> config = {}) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (detail::starts_json_object(bytes)) {
#if defined(EDGELM_HAVE_TOKENIZER_JSON)
    auto src = read_tokenizer_json(text, std::string_view(reinterpret_cast<const char*>(config.data()), config.size()));
    if (!src) return src.error();
    auto t = bpe_tokenizer::build(std::move(*src));
    if (!t) return t.error();
    return text_tokenizer(std::move(*t));
#else
    (void)config;
    (void)text;
    return make_error(errc::bad_tokenizer, "this build reads no tokenizer.json (nlohmann/json.hpp was not found or EDGELM_NO_TOKENIZER_JSON)");
#endif
  }
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    auto td = read_gguf_tokenizer(bytes);
    if (!td) return td.error();
    return text_tokenizer::from_data(std::move(*td));
  }
  auto td = read_llama2c_tokenizer(bytes, 0);
  if (!td) return td.error();
  return text_tokenizer::from_data(std::move(*td));
}

}  // namespace edgelm
