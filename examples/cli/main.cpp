// edgelm - command-line front end: run, chat, tokenize, detokenize, logits, inspect, bench, perplexity, quantize,
// template. One file per command (cmd_<name>.cpp) over one runtime model (cli.hpp: edgelm::basic_any_model, the
// instantiation chosen at load from the file and the CPU); the options and every --help come from one flag table
// (flags.cpp). Output of `run` matches llama2.c's run.c byte for byte (prompt + generation on stdout, status on
// stderr); `perplexity` prints what llama.cpp's llama-perplexity prints for the same file and text.
#include "cli.hpp"

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
  using namespace edgelm_cli;
  if (argc >= 2 && std::string_view(argv[1]) == "template") return cmd_template(argc, argv);  // own options
  options o;
  bool help = false;
  const std::string err = parse(argc, argv, o, help);
  if (help) {
    std::fputs(usage_text(o.command).c_str(), stdout);
    return 0;
  }
  if (!err.empty()) return fail(err);
  struct entry {
    const char* name;
    int (*run)(const options&);
  };
  static constexpr entry table[] = {{"run", cmd_run},         {"chat", cmd_chat},       {"tokenize", cmd_tokenize},
                                    {"detokenize", cmd_detokenize}, {"logits", cmd_logits}, {"inspect", cmd_inspect},
                                    {"bench", cmd_bench},     {"perplexity", cmd_perplexity}, {"quantize", cmd_quantize}};
  for (const auto& e : table)
    if (o.command == e.name) return e.run(o);
  return fail("unknown command '" + o.command + "'");
}
