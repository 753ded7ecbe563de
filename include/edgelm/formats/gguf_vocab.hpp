// edgelm/formats/gguf_vocab.hpp - a byte-level BPE tokenizer read from a tokenizer.json (bpe_source) as the GGUF
// vocabulary llama.cpp's convert_hf_to_gguf.py writes for it (tokenizer.ggml.model "gpt2"): the tokens by id in
// GPT-2's byte alphabet (ids the file leaves out, and rows the model pads its vocabulary to, as "[PADn]" of type
// unused), their types (control for special added tokens, user-defined for the other added ones), the merges in
// rank order, the pre-tokenizer by llama.cpp's name, BOS/EOS and the chat template.
//
// Only what a GGUF can say is converted: byte-level BPE whose pre-tokenizer is one llama.cpp names (gpt-2,
// llama-bpe, qwen2, smollm) and whose normalizer is none or NFC (qwen2; llama.cpp applies no normalizer, as the
// pre name implies). Anything else (SentencePiece-style BPE with byte fallback, Metaspace, other regexes) is
// errc::unsupported_architecture with the reason, so the caller can say what was left out.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../core/result.hpp"
#include "../tokenizer/bpe.hpp"
#include "model_file.hpp"

namespace edgelm {

inline result<tokenizer_data> gguf_vocab_of(const bpe_source& s, std::uint32_t model_vocab) {
  auto no = [](std::string why) { return make_error(errc::unsupported_architecture, "the tokenizer has no GGUF form: " + why); };
  if (!s.byte_level || !s.decoder.byte_level) return no("not byte-level BPE");
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

}  // namespace edgelm
