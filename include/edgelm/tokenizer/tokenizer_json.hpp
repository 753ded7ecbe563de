// edgelm/tokenizer/tokenizer_json.hpp - Hugging Face tokenizer.json (+ tokenizer_config.json) -> bpe_source.
// Parsed with nlohmann::json's SAX interface: model.vocab and model.merges stream straight into arenas
// (a 150k vocabulary never becomes a DOM); everything else (normalizer, pre-tokenizer, post-processor, decoder,
// added tokens: small) is collected into a DOM and read through type-checked accessors, so nothing throws and
// -fno-exceptions works. Supported: "model" BPE (byte-level or with byte fallback); normalizers NFC, Prepend,
// Replace (string), Sequence; pre-tokenizers ByteLevel, Split (the gpt2 / llama3 / qwen2 patterns, or a string),
// Digits, Metaspace, Sequence; post-processors TemplateProcessing, ByteLevel, Roberta/Bert, Sequence; decoders
// ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence. Anything else is errc::bad_tokenizer naming it.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/result.hpp"
#include "../detail/json.hpp"
#include "bpe.hpp"

namespace edgelm {

namespace detail {

// Limits of the reader (hostile files): nesting depth of the JSON, number of merges.
inline constexpr std::size_t tokenizer_json_max_depth = 64;
inline constexpr std::size_t tokenizer_json_max_merges = 4 * limits::max_vocab;

// SAX handler: a DOM of everything but model.vocab / model.merges (streamed into `src`) and the subtree under
// the top-level key `skip` (discarded: tokenizer_config.json's large added_tokens_decoder).
class tokenizer_json_sax {
 public:
  using json = nlohmann::json;
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  tokenizer_json_sax(bpe_source* src, std::string_view skip) : src_(src), skip_(skip) {}

  json root;
  std::optional<error> err;

  bool null() { return value(json(nullptr)); }
  bool boolean(bool v) { return value(json(v)); }
  bool number_integer(number_integer_t v) {
    if (mode_ == mode::vocab) return vocab_id(v < 0 ? -1 : static_cast<std::uint64_t>(v));
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) {
    if (mode_ == mode::vocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) { return value(json(v)); }
  bool binary(binary_t&) { return fail(errc::bad_tokenizer, "binary value"); }
  bool string(string_t& s) {
    if (mode_ == mode::merges) {
      const auto sp = s.find(' ');
      if (sp == string_t::npos || s.find(' ', sp + 1) != string_t::npos) return fail(errc::bad_tokenizer, "merge '" + s.substr(0, 64) + "' is not two tokens separated by one space", "model.merges");
      return merge(std::string_view(s).substr(0, sp), std::string_view(s).substr(sp + 1));
    }
    if (mode_ == mode::merge_pair) {
      if (pair_n_ >= 2) return fail(errc::bad_tokenizer, "a merge has more than two tokens", "model.merges");
      pair_[pair_n_++] = s;
      return true;
    }
    if (mode_ == mode::vocab) return fail(errc::bad_tokenizer, "token '" + s.substr(0, 64) + "' has a string for an id", "model.vocab");
    return value(json(std::move(s)));
  }
  bool key(string_t& k) {
    if (mode_ == mode::vocab) {
      if (k.size() > limits::max_token_bytes) return fail(errc::bad_tokenizer, "a vocabulary token is longer than EDGELM_MAX_TOKEN_BYTES", "model.vocab");
      key_ = std::move(k);
      return true;
    }
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) {
    if (++depth_ > tokenizer_json_max_depth) return fail(errc::bad_tokenizer, "JSON nested too deeply");
    if (mode_ == mode::skip) return true;
    if (mode_ != mode::dom) return fail(errc::bad_tokenizer, "unexpected object", mode_ == mode::vocab ? "model.vocab" : "model.merges");
    if (depth_ == 2 && key_ == skip_ && !skip_.empty()) { mode_ = mode::skip; skip_depth_ = depth_; return true; }
    if (depth_ == 3 && in_model() && key_ == "vocab") { mode_ = mode::vocab; return true; }
    return open(json::object());
  }
  bool end_object() {
    --depth_;
    if (mode_ == mode::skip) {
      if (depth_ + 1 == skip_depth_) mode_ = mode::dom;
      return true;
    }
    if (mode_ == mode::vocab) { mode_ = mode::dom; return true; }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    if (++depth_ > tokenizer_json_max_depth) return fail(errc::bad_tokenizer, "JSON nested too deeply");
    if (mode_ == mode::skip) return true;
    if (mode_ == mode::merges) { mode_ = mode::merge_pair; pair_n_ = 0; return true; }
    if (mode_ == mode::vocab) return fail(errc::bad_tokenizer, "a vocabulary id is an array", "model.vocab");
    if (mode_ == mode::merge_pair) return fail(errc::bad_tokenizer, "a merge nests an array", "model.merges");
    if (depth_ == 2 && key_ == skip_ && !skip_.empty()) { mode_ = mode::skip; skip_depth_ = depth_; return true; }
    if (depth_ == 3 && in_model() && key_ == "merges") { mode_ = mode::merges; src_->saw_merges = true; return true; }
    if (depth_ == 3 && in_model() && key_ == "vocab") return fail(errc::bad_tokenizer, "model.vocab is an array (a Unigram model?); only BPE is supported", "model.vocab");
    return open(json::array());
  }
  bool end_array() {
    --depth_;
    if (mode_ == mode::skip) {
      if (depth_ + 1 == skip_depth_) mode_ = mode::dom;
      return true;
    }
    if (mode_ == mode::merge_pair) {
      if (pair_n_ != 2) return fail(errc::bad_tokenizer, "a merge is not a pair of tokens", "model.merges");
      mode_ = mode::merges;
      return merge(pair_[0], pair_[1]);
    }
    if (mode_ == mode::merges) { mode_ = mode::dom; return true; }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t pos, const std::string& last, const nlohmann::detail::exception& ex) {
    // nlohmann says "unexpected end of input" when the text stops inside a value
    const bool early = std::string_view(ex.what()).find("end of input") != std::string_view::npos;
    err = make_error(early ? errc::truncated : errc::bad_tokenizer,
                     early ? "the JSON ends early" : "invalid JSON near '" + last.substr(0, 32) + "'", pos);
    return false;
  }
  std::size_t input_size_ = 0;

 private:
  enum class mode { dom, vocab, merges, merge_pair, skip };
  bool in_model() const { return stack_.size() == 2 && top_key_ == "model"; }
  bool fail(errc c, std::string msg, std::string where = {}) {
    if (!err) err = make_error(c, std::move(msg), error::no_offset, std::move(where));
    return false;
  }
  bool vocab_id(std::uint64_t id) {
    if (id >= limits::max_vocab) return fail(errc::count_too_large, "token '" + key_.substr(0, 64) + "' has id " + std::to_string(static_cast<std::int64_t>(id)) + ", beyond EDGELM_MAX_VOCAB", "model.vocab");
    if (src_->vocab_id.size() >= limits::max_vocab) return fail(errc::count_too_large, "more tokens than EDGELM_MAX_VOCAB", "model.vocab");
    src_->add_vocab(key_, static_cast<std::int32_t>(id));
    return true;
  }
  bool merge(std::string_view l, std::string_view r) {
    if (src_->merge_off.size() / 2 >= tokenizer_json_max_merges) return fail(errc::count_too_large, "too many merges", "model.merges");
    if (l.empty() || r.empty() || l.size() + r.size() > limits::max_token_bytes) return fail(errc::bad_tokenizer, "a merge has an empty or oversized side", "model.merges");
    src_->add_merge(l, r);
    return true;
  }
  bool value(json v) {
    if (mode_ == mode::skip) return true;
    if (mode_ != mode::dom) return fail(errc::bad_tokenizer, "wrong type of value", mode_ == mode::vocab ? "model.vocab" : "model.merges");
    if (stack_.empty()) return fail(errc::bad_tokenizer, "the file is not a JSON object");
    json* top = stack_.back();
    if (top->is_object()) (*top)[key_] = std::move(v);
    else top->push_back(std::move(v));
    return true;
  }
  bool open(json v) {
    if (stack_.empty()) {
      if (!v.is_object()) return fail(errc::bad_tokenizer, "the file is not a JSON object");
      root = std::move(v);
      stack_.push_back(&root);
      return true;
    }
    json* top = stack_.back();
    json* child = nullptr;
    if (top->is_object()) {
      if (stack_.size() == 1) top_key_ = key_;
      child = &((*top)[key_] = std::move(v));
    } else {
      top->push_back(std::move(v));
      child = &top->back();
    }
    stack_.push_back(child);
    return true;
  }

  bpe_source* src_;
  std::string skip_;
  mode mode_ = mode::dom;
  std::size_t depth_ = 0, skip_depth_ = 0;
  std::vector<json*> stack_;
  std::string key_, top_key_;
  std::string pair_[2];
  int pair_n_ = 0;
};

using json = nlohmann::json;

// Type-checked accessors (member(): detail/json.hpp): a missing key is the default; a present key of the
// wrong type is an error.
inline result<bool> get_bool(const json& j, const char* k, bool dflt, const std::string& where) {
  const json* v = member(j, k);
  if (!v) return dflt;
  if (!v->is_boolean()) return make_error(errc::bad_tokenizer, std::string("'") + k + "' must be true or false", error::no_offset, where);
  return v->get<bool>();
}
inline result<std::string> get_string(const json& j, const char* k, const std::string& where, bool required = false) {
  const json* v = member(j, k);
  if (!v) {
    if (required) return make_error(errc::bad_tokenizer, std::string("'") + k + "' is missing", error::no_offset, where);
    return std::string();
  }
  if (!v->is_string()) return make_error(errc::bad_tokenizer, std::string("'") + k + "' must be a string", error::no_offset, where);
  return v->get_ref<const std::string&>();
}
// A token named by a string or by {"content": "..."} (tokenizer_config.json's bos_token and friends).
inline result<std::optional<std::string>> get_token_name(const json& j, const char* k) {
  const json* v = member(j, k);
  if (!v) return std::optional<std::string>();
  if (v->is_string()) return std::optional<std::string>(v->get_ref<const std::string&>());
  if (v->is_object()) {
    auto c = get_string(*v, "content", k, true);
    if (!c) return c.error();
    return std::optional<std::string>(*c);
  }
  return make_error(errc::bad_tokenizer, "must be a string or an object with 'content'", error::no_offset, k);
}

inline result<void> read_normalizer(const json& n, bpe_source& s, int depth = 0) {
  if (n.is_null()) return {};
  if (!n.is_object() || depth > 4) return make_error(errc::bad_tokenizer, "must be an object", error::no_offset, "normalizer");
  auto type = get_string(n, "type", "normalizer", true);
  if (!type) return type.error();
  if (*type == "Sequence") {
    const json* list = member(n, "normalizers");
    if (!list || !list->is_array()) return make_error(errc::bad_tokenizer, "Sequence needs a 'normalizers' array", error::no_offset, "normalizer");
    for (const auto& e : *list) EDGELM_TRY(read_normalizer(e, s, depth + 1));
    return {};
  }
  if (*type == "NFC") { s.normalizers.push_back(normalizer_step::make_nfc()); return {}; }
  if (*type == "Prepend") {
    auto p = get_string(n, "prepend", "normalizer", true);
    if (!p) return p.error();
    s.normalizers.push_back({normalizer_kind::prepend, *p, {}});
    return {};
  }
  if (*type == "Replace") {
    const json* pat = member(n, "pattern");
    auto content = get_string(n, "content", "normalizer", true);
    if (!content) return content.error();
    if (!pat || !member(*pat, "String")) return make_error(errc::bad_tokenizer, "Replace normalizer: only a String pattern is supported", error::no_offset, "normalizer");
    auto from = get_string(*pat, "String", "normalizer", true);
    if (!from) return from.error();
    s.normalizers.push_back({normalizer_kind::replace, *from, *content});
    return {};
  }
  return make_error(errc::bad_tokenizer, "normalizer '" + *type + "' is not supported", error::no_offset, "normalizer");
}

// The regex patterns edgelm implements by hand, exactly as tokenizer.json files spell them.
inline std::optional<split_pattern> known_pattern(std::string_view re) {
  static constexpr std::string_view gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (re == gpt2) return split_pattern::gpt2;
  if (re == llama3) return split_pattern::llama3;
  if (re == qwen2) return split_pattern::qwen2;
  return std::nullopt;
}

inline result<void> read_pretokenizer(const json& p, bpe_source& s, bool& byte_level, int depth = 0) {
  if (p.is_null()) return {};
  const std::string where = "pre_tokenizer";
  if (!p.is_object() || depth > 4) return make_error(errc::bad_tokenizer, "must be an object", error::no_offset, where);
  auto type = get_string(p, "type", where, true);
  if (!type) return type.error();
  auto only_first = [&](const char* what) -> result<void> {
    for (const auto& q : s.pretokenizers)
      if (q.kind != pretokenizer_kind::metaspace && q.kind != pretokenizer_kind::byte_level_prefix)
        return make_error(errc::bad_tokenizer, std::string(what) + " after a splitting pre-tokenizer is not supported", error::no_offset, where);
    return {};
  };
  if (*type == "Sequence") {
    const json* list = member(p, "pretokenizers");
    if (!list || !list->is_array()) return make_error(errc::bad_tokenizer, "Sequence needs a 'pretokenizers' array", error::no_offset, where);
    for (const auto& e : *list) EDGELM_TRY(read_pretokenizer(e, s, byte_level, depth + 1));
    return {};
  }
  if (*type == "ByteLevel") {
    byte_level = true;
    auto prefix = get_bool(p, "add_prefix_space", true, where);
    if (!prefix) return prefix.error();
    auto regex = get_bool(p, "use_regex", true, where);
    if (!regex) return regex.error();
    if (*prefix) {
      EDGELM_TRY(only_first("ByteLevel with add_prefix_space"));
      s.pretokenizers.push_back({pretokenizer_kind::byte_level_prefix});
    }
    if (*regex) {
      pretokenizer_step st{pretokenizer_kind::pattern};
      st.pattern = split_pattern::gpt2;
      s.pretokenizers.push_back(st);
    }
    return {};
  }
  if (*type == "Split") {
    const json* pat = member(p, "pattern");
    if (!pat || !pat->is_object()) return make_error(errc::bad_tokenizer, "Split needs a pattern", error::no_offset, where);
    auto behavior = get_string(p, "behavior", where, true);
    if (!behavior) return behavior.error();
    auto invert = get_bool(p, "invert", false, where);
    if (!invert) return invert.error();
    if (*invert) return make_error(errc::bad_tokenizer, "Split with invert is not supported", error::no_offset, where);
    if (member(*pat, "Regex")) {
      auto re = get_string(*pat, "Regex", where, true);
      if (!re) return re.error();
      auto k = known_pattern(*re);
      if (!k) return make_error(errc::bad_tokenizer, "Split regex is not one edgelm implements: " + re->substr(0, 200), error::no_offset, where);
      if (*behavior != "Isolated") return make_error(errc::bad_tokenizer, "Split regex with behavior " + *behavior + " is not supported", error::no_offset, where);
      pretokenizer_step st{pretokenizer_kind::pattern};
      st.pattern = *k;
      s.pretokenizers.push_back(st);
      return {};
    }
    auto str = get_string(*pat, "String", where, true);
    if (!str) return str.error();
    pretokenizer_step st{pretokenizer_kind::split_string};
    st.str = *str;
    if (*behavior == "Isolated") st.behavior = split_behavior::isolated;
    else if (*behavior == "Removed") st.behavior = split_behavior::removed;
    else if (*behavior == "MergedWithPrevious") st.behavior = split_behavior::merged_with_previous;
    else if (*behavior == "MergedWithNext") st.behavior = split_behavior::merged_with_next;
    else if (*behavior == "Contiguous") st.behavior = split_behavior::contiguous;
    else return make_error(errc::bad_tokenizer, "unknown Split behavior " + *behavior, error::no_offset, where);
    s.pretokenizers.push_back(st);
    return {};
  }
  if (*type == "Digits") {
    auto ind = get_bool(p, "individual_digits", false, where);
    if (!ind) return ind.error();
    pretokenizer_step st{pretokenizer_kind::digits};
    st.individual_digits = *ind;
    s.pretokenizers.push_back(st);
    return {};
  }
  if (*type == "Metaspace") {
    EDGELM_TRY(only_first("Metaspace"));
    pretokenizer_step st{pretokenizer_kind::metaspace};
    auto rep = get_string(p, "replacement", where);
    if (!rep) return rep.error();
    st.str = rep->empty() ? "\xE2\x96\x81" : *rep;
    auto scheme = get_string(p, "prepend_scheme", where);
    if (!scheme) return scheme.error();
    if (scheme->empty()) {  // the older form: add_prefix_space
      auto aps = get_bool(p, "add_prefix_space", true, where);
      if (!aps) return aps.error();
      st.prepend_scheme = *aps ? 2 : 0;
    } else if (*scheme == "always") st.prepend_scheme = 2;
    else if (*scheme == "first") st.prepend_scheme = 1;
    else if (*scheme == "never") st.prepend_scheme = 0;
    else return make_error(errc::bad_tokenizer, "unknown prepend_scheme " + *scheme, error::no_offset, where);
    auto split = get_bool(p, "split", true, where);
    if (!split) return split.error();
    st.split = *split;
    s.pretokenizers.push_back(st);
    return {};
  }
  return make_error(errc::bad_tokenizer, "pre-tokenizer '" + *type + "' is not supported", error::no_offset, where);
}

inline result<void> read_post_processor(const json& p, bpe_source& s, int depth = 0) {
  if (p.is_null()) return {};
  const std::string where = "post_processor";
  if (!p.is_object() || depth > 4) return make_error(errc::bad_tokenizer, "must be an object", error::no_offset, where);
  auto type = get_string(p, "type", where, true);
  if (!type) return type.error();
  if (*type == "ByteLevel") return {};
  if (*type == "Sequence") {
    const json* list = member(p, "processors");
    if (!list || !list->is_array()) return make_error(errc::bad_tokenizer, "Sequence needs a 'processors' array", error::no_offset, where);
    for (const auto& e : *list) EDGELM_TRY(read_post_processor(e, s, depth + 1));
    return {};
  }
  if (*type == "RobertaProcessing" || *type == "BertProcessing") {
    auto name = [&](const char* k) -> result<std::string> {
      const json* v = member(p, k);
      if (!v || !v->is_array() || v->empty() || !(*v)[0].is_string()) return make_error(errc::bad_tokenizer, std::string("'") + k + "' must be [token, id]", error::no_offset, where);
      return (*v)[0].get_ref<const std::string&>();
    };
    auto cls = name("cls");
    if (!cls) return cls.error();
    auto sep = name("sep");
    if (!sep) return sep.error();
    s.prefix = {*cls};
    s.suffix = {*sep};
    return {};
  }
  if (*type == "TemplateProcessing") {
    const json* single = member(p, "single");
    if (!single || !single->is_array()) return make_error(errc::bad_tokenizer, "TemplateProcessing needs a 'single' array", error::no_offset, where);
    s.prefix.clear();
    s.suffix.clear();
    bool seen_a = false;
    for (const auto& item : *single) {
      if (const json* sp = member(item, "SpecialToken")) {
        auto id = get_string(*sp, "id", where, true);
        if (!id) return id.error();
        // the special_tokens map may give several ids for one name; the name itself is the usual case
        std::vector<std::string> names{*id};
        if (const json* st = member(p, "special_tokens"); st && member(*st, id->c_str())) {
          const json* toks = member(*member(*st, id->c_str()), "tokens");
          if (toks && toks->is_array() && !toks->empty()) {
            names.clear();
            for (const auto& t : *toks) {
              if (!t.is_string()) return make_error(errc::bad_tokenizer, "special_tokens tokens must be strings", error::no_offset, where);
              names.push_back(t.get_ref<const std::string&>());
            }
          }
        }
        auto& dst = seen_a ? s.suffix : s.prefix;
        dst.insert(dst.end(), names.begin(), names.end());
      } else if (member(item, "Sequence")) {
        seen_a = true;
      } else {
        return make_error(errc::bad_tokenizer, "TemplateProcessing item is neither SpecialToken nor Sequence", error::no_offset, where);
      }
    }
    return {};
  }
  return make_error(errc::bad_tokenizer, "post-processor '" + *type + "' is not supported", error::no_offset, where);
}

inline result<void> read_decoder(const json& d, bpe_source& s, int depth = 0) {
  if (d.is_null()) return {};
  const std::string where = "decoder";
  if (!d.is_object() || depth > 4) return make_error(errc::bad_tokenizer, "must be an object", error::no_offset, where);
  auto type = get_string(d, "type", where, true);
  if (!type) return type.error();
  if (*type == "Sequence") {
    const json* list = member(d, "decoders");
    if (!list || !list->is_array()) return make_error(errc::bad_tokenizer, "Sequence needs a 'decoders' array", error::no_offset, where);
    for (const auto& e : *list) EDGELM_TRY(read_decoder(e, s, depth + 1));
    return {};
  }
  if (*type == "ByteLevel") { s.decoder.byte_level = true; return {}; }
  if (*type == "ByteFallback") { s.decoder.byte_fallback = true; return {}; }
  if (*type == "Fuse") return {};
  if (*type == "Replace") {
    const json* pat = member(d, "pattern");
    if (!pat || !member(*pat, "String")) return make_error(errc::bad_tokenizer, "Replace decoder: only a String pattern is supported", error::no_offset, where);
    auto from = get_string(*pat, "String", where, true);
    if (!from) return from.error();
    auto to = get_string(d, "content", where, true);
    if (!to) return to.error();
    s.decoder.replace_from = *from;
    s.decoder.replace_to = *to;
    return {};
  }
  if (*type == "Strip") {
    auto c = get_string(d, "content", where);
    if (!c) return c.error();
    const json* start = member(d, "start");
    const json* stop = member(d, "stop");
    if ((start && !start->is_number_unsigned()) || (stop && !stop->is_number_unsigned()))
      return make_error(errc::bad_tokenizer, "Strip start/stop must be counts", error::no_offset, where);
    if (stop && stop->get<std::uint64_t>() != 0) return make_error(errc::bad_tokenizer, "Strip with stop > 0 is not supported", error::no_offset, where);
    if (*c != " ") return make_error(errc::bad_tokenizer, "Strip of other than ' ' is not supported", error::no_offset, where);
    s.decoder.strip_first = start ? static_cast<std::uint32_t>(std::min<std::uint64_t>(start->get<std::uint64_t>(), 16)) : 0;
    return {};
  }
  if (*type == "Metaspace") {
    auto rep = get_string(d, "replacement", where);
    if (!rep) return rep.error();
    s.decoder.replace_from = rep->empty() ? "\xE2\x96\x81" : *rep;
    s.decoder.replace_to = " ";
    auto scheme = get_string(d, "prepend_scheme", where);
    if (!scheme) return scheme.error();
    bool strip = *scheme != "never";
    if (scheme->empty()) {
      auto aps = get_bool(d, "add_prefix_space", true, where);
      if (!aps) return aps.error();
      strip = *aps;
    }
    s.decoder.strip_first = strip ? 1 : 0;
    return {};
  }
  return make_error(errc::bad_tokenizer, "decoder '" + *type + "' is not supported", error::no_offset, where);
}

inline result<json> sax_parse_into(std::string_view text, bpe_source* src, std::string_view skip) {
  tokenizer_json_sax h(src, skip);
  h.input_size_ = text.size();
  const bool ok = json::sax_parse(text.begin(), text.end(), &h, json::input_format_t::json, true);
  if (!ok || h.err) return h.err ? *h.err : make_error(errc::bad_tokenizer, "invalid JSON");
  if (!h.root.is_object()) return make_error(errc::bad_tokenizer, "the file is not a JSON object");
  return std::move(h.root);
}

}  // namespace detail

// Read tokenizer.json (and, when config is not empty, tokenizer_config.json) into a bpe_source. The inputs
// are untrusted: every malformed structure gives errc::bad_tokenizer (truncated JSON: errc::truncated, ids
// beyond EDGELM_MAX_VOCAB: errc::count_too_large) naming the key.
inline result<bpe_source> read_tokenizer_json(std::string_view tokenizer_json, std::string_view config = {}) {
  using detail::json;
  bpe_source s;
  auto root = detail::sax_parse_into(tokenizer_json, &s, {});
  if (!root) return root.error();
  const json* model = detail::member(*root, "model");
  if (!model || !model->is_object()) return make_error(errc::bad_tokenizer, "no 'model' object", error::no_offset, "model");
  auto type = detail::get_string(*model, "type", "model");
  if (!type) return type.error();
  if (!type->empty() && *type != "BPE") return make_error(errc::bad_tokenizer, "model type '" + *type + "' is not supported (only BPE)", error::no_offset, "model.type");
  if (s.vocab_id.empty()) return make_error(errc::bad_tokenizer, "model.vocab is missing or empty", error::no_offset, "model.vocab");
  if (!s.saw_merges) return make_error(errc::bad_tokenizer, "model.merges is missing", error::no_offset, "model.merges");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto v = detail::get_string(*model, k, "model");
    if (!v) return v.error();
    if (!v->empty()) return make_error(errc::bad_tokenizer, std::string(k) + " is not supported", error::no_offset, "model");
  }
  if (const json* drop = detail::member(*model, "dropout"); drop && !(drop->is_number() && drop->get<double>() == 0.0))
    return make_error(errc::bad_tokenizer, "BPE dropout is not supported", error::no_offset, "model.dropout");
  auto bf = detail::get_bool(*model, "byte_fallback", false, "model");
  if (!bf) return bf.error();
  auto fu = detail::get_bool(*model, "fuse_unk", false, "model");
  if (!fu) return fu.error();
  auto im = detail::get_bool(*model, "ignore_merges", false, "model");
  if (!im) return im.error();
  auto unk = detail::get_string(*model, "unk_token", "model");
  if (!unk) return unk.error();
  s.byte_fallback = *bf;
  s.fuse_unk = *fu;
  s.ignore_merges = *im;
  s.unk_token = *unk;
  if (const json* added = detail::member(*root, "added_tokens")) {
    if (!added->is_array()) return make_error(errc::bad_tokenizer, "must be an array", error::no_offset, "added_tokens");
    if (added->size() > limits::max_vocab) return make_error(errc::count_too_large, "too many added tokens", error::no_offset, "added_tokens");
    for (const auto& a : *added) {
      added_token t;
      const json* id = detail::member(a, "id");
      if (!id || !id->is_number_unsigned() || id->get<std::uint64_t>() >= limits::max_vocab)
        return make_error(errc::bad_tokenizer, "an added token has no valid id", error::no_offset, "added_tokens");
      t.id = static_cast<std::int32_t>(id->get<std::uint64_t>());
      auto c = detail::get_string(a, "content", "added_tokens", true);
      if (!c) return c.error();
      t.content = *c;
      auto flag = [&](const char* k, bool& dst, bool dflt) -> result<void> {
        auto v = detail::get_bool(a, k, dflt, "added_tokens");
        if (!v) return v.error();
        dst = *v;
        return {};
      };
      EDGELM_TRY(flag("special", t.special, false));
      EDGELM_TRY(flag("lstrip", t.lstrip, false));
      EDGELM_TRY(flag("rstrip", t.rstrip, false));
      EDGELM_TRY(flag("single_word", t.single_word, false));
      EDGELM_TRY(flag("normalized", t.normalized, !t.special));
      s.added.push_back(std::move(t));
    }
  }
  static const json null_json;
  auto sub = [&](const char* k) -> const json& { const json* v = detail::member(*root, k); return v ? *v : null_json; };
  EDGELM_TRY(detail::read_normalizer(sub("normalizer"), s));
  bool byte_level = false;
  EDGELM_TRY(detail::read_pretokenizer(sub("pre_tokenizer"), s, byte_level));
  EDGELM_TRY(detail::read_post_processor(sub("post_processor"), s));
  EDGELM_TRY(detail::read_decoder(sub("decoder"), s));
  s.byte_level = byte_level || s.decoder.byte_level;
  if (s.byte_level && s.byte_fallback) return make_error(errc::bad_tokenizer, "byte-level BPE with byte_fallback is not supported", error::no_offset, "model.byte_fallback");

  if (!config.empty()) {
    bpe_source dummy;
    auto cfg = detail::sax_parse_into(config, &dummy, "added_tokens_decoder");
    if (!cfg) {
      auto e = cfg.error();
      e.where = "tokenizer_config.json";
      return e;
    }
    auto bos = detail::get_token_name(*cfg, "bos_token");
    if (!bos) return bos.error();
    auto eos = detail::get_token_name(*cfg, "eos_token");
    if (!eos) return eos.error();
    s.bos_token = *bos;
    s.eos_token = *eos;
    for (auto [k, dst] : {std::pair{"add_bos_token", &s.add_bos}, std::pair{"add_eos_token", &s.add_eos}}) {
      if (const json* v = detail::member(*cfg, k)) {
        if (!v->is_boolean()) return make_error(errc::bad_tokenizer, "must be true or false", error::no_offset, k);
        *dst = v->get<bool>();
      }
    }
    if (const json* tpl = detail::member(*cfg, "chat_template")) {
      if (tpl->is_string()) s.chat_template = tpl->get_ref<const std::string&>();
      else if (tpl->is_array()) {
        // [{"name": ..., "template": ...}]: the "default" one, else the first
        for (const auto& e : *tpl) {
          auto name = detail::get_string(e, "name", "chat_template");
          auto body = detail::get_string(e, "template", "chat_template");
          if (!name || !body) return make_error(errc::bad_tokenizer, "entries must have string name and template", error::no_offset, "chat_template");
          if (s.chat_template.empty() || *name == "default") s.chat_template = *body;
          if (*name == "default") break;
        }
      } else {
        return make_error(errc::bad_tokenizer, "must be a string or a list of named templates", error::no_offset, "chat_template");
      }
    }
  }
  return s;
}

}  // namespace edgelm
