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
  explicit text_tokenizer(tokenizer spm) : kind_(kind::sentencepiece), spm_(std::move(spm)) {}
  explicit text_tokenizer(bpe_tokenizer bpe) : kind_(kind::bpe), bpe_(std::move(bpe)) {}

  kind type() const noexcept { return kind_; }
  std::size_t vocab_size() const noexcept { return kind_ == kind::bpe ? bpe_.vocab_size() : spm_.vocab_size(); }

  // Text -> ids. add_special: what the tokenizer adds around a text (BOS for Llama, nothing for GPT-2 / Qwen2;
  // Hugging Face's add_special_tokens). parse_special: special tokens written in the text ("<|im_end|>") become
  // their ids, as Hugging Face does by default; pass false for untrusted user text. (The SentencePiece-style
  // tokenizer never matches control tokens in text, whatever parse_special says.) Any bytes are accepted.
  std::vector<token> encode(std::string_view text, bool add_special = true, bool parse_special = true) const {
    if (kind_ == kind::sentencepiece) return spm_.encode(text, add_special && spm_.add_bos(), false);
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
  // tokenizer_config.json's chat_template ("" when none was given).
  const std::string& chat_template() const noexcept { return kind_ == kind::bpe ? bpe_.chat_template() : empty_; }

  const tokenizer* sentencepiece() const noexcept { return kind_ == kind::sentencepiece ? &spm_ : nullptr; }
  const bpe_tokenizer* bpe() const noexcept { return kind_ == kind::bpe ? &bpe_ : nullptr; }

 private:
  kind kind_ = kind::sentencepiece;
  tokenizer spm_;
  bpe_tokenizer bpe_;
  std::string empty_;
};

namespace detail {
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
  else if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "smaug-bpe") st.pattern = split_pattern::llama3;
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

// A tokenizer from its files' bytes: a tokenizer.json (first non-blank byte '{', with config the optional
// tokenizer_config.json), a GGUF (its embedded vocabulary, "llama" or "gpt2") or a llama2.c tokenizer.bin.
inline result<text_tokenizer> load_text_tokenizer(std::span<const std::byte> bytes, std::span<const std::byte> config = {}) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) ++i;
  if (i < text.size() && text[i] == '{') {
#if defined(EDGELM_HAVE_TOKENIZER_JSON)
    auto src = read_tokenizer_json(text, std::string_view(reinterpret_cast<const char*>(config.data()), config.size()));
    if (!src) return src.error();
    auto t = bpe_tokenizer::build(std::move(*src));
    if (!t) return t.error();
    return text_tokenizer(std::move(*t));
#else
    (void)config;
    return make_error(errc::bad_tokenizer, "this build reads no tokenizer.json (nlohmann/json.hpp was not found or EDGELM_NO_TOKENIZER_JSON)");
#endif
  }
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    auto td = read_gguf_tokenizer(bytes);
    if (!td) return td.error();
    if (td->model == "gpt2") {
      auto src = detail::bpe_source_from_gguf(*td);
      if (!src) return src.error();
      auto t = bpe_tokenizer::build(std::move(*src));
      if (!t) return t.error();
      return text_tokenizer(std::move(*t));
    }
    auto t = tokenizer::from_data(std::move(*td));
    if (!t) return t.error();
    return text_tokenizer(std::move(*t));
  }
  auto td = read_llama2c_tokenizer(bytes, 0);
  if (!td) return td.error();
  auto t = tokenizer::from_data(std::move(*td));
  if (!t) return t.error();
  return text_tokenizer(std::move(*t));
}

}  // namespace edgelm
