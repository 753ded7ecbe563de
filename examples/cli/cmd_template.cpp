// examples/cli/cmd_template.cpp - `edgelm template`: print the prompt a model's own chat template
// renders for a conversation (what HF's tokenizer.apply_chat_template(messages, tokenize=False)
// returns). It parses its own options.
#include "cli.hpp"

#include <edgelm/formats/gguf.hpp>
#include <edgelm/storage/file_storage.hpp>
#include <edgelm/text/chat_json.hpp>
#include <edgelm/text/chat_template.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/stat.h>

namespace edgelm_cli {

inline const char* template_usage =
    "usage: edgelm template (-m MODEL | -z TOKENIZER_CONFIG | --chat-template NAME) --messages FILE.json\n"
    "                       [--no-generation-prompt] [--chat-template NAME | --chat-template-file FILE]\n"
    "                       [--tools FILE.json] [--list-templates]\n"
    "Prints the prompt (no newline added) that the model's own chat template renders for the conversation,\n"
    "byte for byte what Hugging Face's apply_chat_template(messages, tokenize=False) returns.\n"
    "MODEL is a .gguf (tokenizer.chat_template; bos/eos from its vocabulary), a model folder or a\n"
    "tokenizer_config.json (chat_template, bos_token, eos_token); -z names the tokenizer_config.json.\n"
    "FILE.json is a list of {\"role\": ..., \"content\": ...} objects ('-' reads stdin); other keys (tool_calls,\n"
    "...) are passed to the template. --tools passes a list of tool schemas as `tools`.\n"
    "--no-generation-prompt: do not end with the assistant's header (add_generation_prompt=False).\n"
    "--chat-template NAME uses a built-in template instead of the model's (--list-templates lists them);\n"
    "--chat-template-file FILE uses FILE's Jinja text. A template this build cannot run is an error.\n";

inline bool read_whole(const std::string& path, std::string& out) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool ok = !std::ferror(f);
  if (f != stdin) std::fclose(f);
  return ok;
}

inline bool is_dir(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// MODEL (GGUF, folder or tokenizer_config.json) -> its template and special tokens.
inline edgelm::result<edgelm::chat_template_info> model_chat_info(const std::string& path) {
  const std::string file = is_dir(path) ? path + "/tokenizer_config.json" : path;
  auto fs = edgelm::file_storage::open(file);
  if (!fs) return fs.error();
  const auto bytes = fs->bytes();
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    auto g = edgelm::parse_gguf(bytes);
    if (!g) return g.error();
    return edgelm::gguf_chat_template(*g);
  }
  return edgelm::tokenizer_config_chat_template(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

inline int template_fail(const std::string& msg) {
  std::fprintf(stderr, "edgelm: error: %s\n", msg.c_str());
  return 1;
}

int cmd_template(int argc, char** argv) {
  std::string model, config, messages_file, tools_file, builtin, template_file;
  bool agp = true;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&](std::string& dst) {
      if (i + 1 >= argc) return false;
      dst = argv[++i];
      return true;
    };
    if (a == "-h" || a == "--help") { std::fputs(template_usage, stdout); return 0; }
    if (a == "--list-templates") {
      for (const auto& b : edgelm::builtin_chat_templates) std::printf("%-15s %.*s\n", std::string(b.name).c_str(), static_cast<int>(b.model.size()), b.model.data());
      return 0;
    }
    bool ok = true;
    if (a == "-m" || a == "--model") ok = val(model);
    else if (a == "-z" || a == "--tokenizer-config") ok = val(config);
    else if (a == "--messages") ok = val(messages_file);
    else if (a == "--tools") ok = val(tools_file);
    else if (a == "--chat-template") ok = val(builtin);
    else if (a == "--chat-template-file") ok = val(template_file);
    else if (a == "--no-generation-prompt") agp = false;
    else return template_fail("unknown option '" + a + "' for 'template' (see edgelm template --help)");
    if (!ok) return template_fail(a + " needs a value");
  }
  if (messages_file.empty()) return template_fail("template needs --messages FILE.json");
  if (model.empty() && config.empty() && builtin.empty() && template_file.empty())
    return template_fail("template needs -m MODEL, -z TOKENIZER_CONFIG or --chat-template NAME");

  edgelm::chat_template_info info;
  if (!model.empty() || !config.empty()) {
    auto r = model_chat_info(!config.empty() ? config : model);
    if (!r) return template_fail((!config.empty() ? config : model) + ": " + r.error().message());
    info = std::move(*r);
  }
  edgelm::result<edgelm::chat_template> tpl = edgelm::make_error(edgelm::errc::missing_key, "no template");
  if (!template_file.empty()) {
    std::string text;
    if (!read_whole(template_file, text)) return template_fail("cannot read " + template_file);
    tpl = edgelm::chat_template::parse(text);
    if (!tpl) return template_fail(template_file + ": " + tpl.error().message());
  } else if (!builtin.empty()) {
    tpl = edgelm::chat_template::builtin(builtin);
    if (!tpl) return template_fail(tpl.error().message());
    if (model.empty() && config.empty()) {  // no model: the family's usual special tokens
      const auto* b = tpl->recognised();
      if (b && !b->bos_token.empty()) info.bos_token = std::string(b->bos_token);
      if (b && !b->eos_token.empty()) info.eos_token = std::string(b->eos_token);
    }
  } else {
    if (info.chat_template.empty())
      return template_fail("the model has no chat template; name a built-in with --chat-template NAME (one of: " +
                           edgelm::chat_template::builtin_names() + ")");
    tpl = edgelm::chat_template::parse(info.chat_template);
    if (!tpl)
      return template_fail("the model's chat template is not supported: " + tpl.error().message() +
                           "; use --chat-template NAME to render with a built-in (" + edgelm::chat_template::builtin_names() + ")");
  }

  std::string text;
  if (!read_whole(messages_file, text)) return template_fail("cannot read " + messages_file);
  auto msgs = edgelm::parse_messages_json(text);
  if (!msgs) return template_fail(messages_file + ": " + msgs.error().message());
  edgelm::chat_options o;
  o.add_generation_prompt = agp;
  o.bos_token = info.bos_token;
  o.eos_token = info.eos_token;
  o.other_tokens = info.other_tokens;
  if (!tools_file.empty()) {
    std::string t;
    if (!read_whole(tools_file, t)) return template_fail("cannot read " + tools_file);
    auto tools = edgelm::parse_tools_json(t);
    if (!tools) return template_fail(tools_file + ": " + tools.error().message());
    o.tools = *tools;
  }
  auto out = tpl->apply(*msgs, o);
  if (!out) {
    if (out.error().where == "raise_exception") return template_fail("the chat template refused the conversation: " + out.error().msg);
    return template_fail(out.error().message());
  }
  std::fwrite(out->data(), 1, out->size(), stdout);
  return 0;
}

}  // namespace edgelm_cli
