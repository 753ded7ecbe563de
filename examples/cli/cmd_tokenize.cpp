// examples/cli/cmd_tokenize.cpp - `edgelm tokenize` and `edgelm detokenize`: text <-> ids with a tokenizer file
// or a model's vocabulary (no weights are read).
#include "cli.hpp"

#include <cstdio>
#include <filesystem>

namespace edgelm_cli {
namespace {

// The tokenizer of tokenize / detokenize: -z TOKENIZER (a tokenizer.json, a folder holding one, a GGUF or a
// llama2.c tokenizer.bin), else the vocabulary of the -m MODEL file (GGUF). Reads the bytes; no model weights.
edgelm::result<edgelm::text_tokenizer> cli_tokenizer(const options& o) {
  std::string path = o.tokenizer.empty() ? o.model : o.tokenizer;
  std::string config;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    config = path + "/tokenizer_config.json";
    path += "/tokenizer.json";
  } else if (std::filesystem::path(path).extension() == ".json") {
    config = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
  }
  auto ts = edgelm::file_storage::open(path);
  if (!ts) return ts.error();
  if (o.tokenizer.empty() && !edgelm::is_gguf(ts->bytes()) && !edgelm::is_directory(o.model))
    return edgelm::make_error(edgelm::errc::bad_tokenizer, "the model file carries no tokenizer: pass -z TOKENIZER", edgelm::error::no_offset, path);
  std::optional<edgelm::file_storage> cs;
  if (!config.empty() && std::filesystem::is_regular_file(config, ec)) {
    auto c = edgelm::file_storage::open(config);
    if (!c) return c.error();
    cs = std::move(*c);
  }
  auto t = edgelm::load_text_tokenizer(ts->bytes(), cs ? cs->bytes() : std::span<const std::byte>{});
  if (!t) {
    auto e = t.error();
    if (e.where.empty()) e.where = path;
    return e;
  }
  return t;
}

}  // namespace

int cmd_tokenize(const options& o) {
  auto tok = cli_tokenizer(o);
  if (!tok) return fail(err_text(tok.error()));
  std::string text = o.prompt;
  if (!o.text_file.empty()) {
    auto t = read_text_file(o.text_file);
    if (!t) return fail("cannot read " + o.text_file);
    text = std::move(*t);
  }
  const auto ids = tok->encode(text, !o.no_special);
  std::string out;
  out.reserve(ids.size() * 7);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int cmd_detokenize(const options& o) {
  auto tok = cli_tokenizer(o);
  if (!tok) return fail(err_text(tok.error()));
  std::string list = o.prompt;
  if (!o.text_file.empty()) {
    auto t = read_text_file(o.text_file);
    if (!t) return fail("cannot read " + o.text_file);
    list = std::move(*t);
  }
  for (const auto& a : o.id_args) list += " " + a;
  std::vector<std::int32_t> ids;
  if (auto e = parse_ids(list, tok->vocab_size(), ids); !e.empty()) return fail(e + " of this tokenizer");
  const std::string text = tok->decode(ids, o.no_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace edgelm_cli
