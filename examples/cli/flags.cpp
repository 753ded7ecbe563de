// examples/cli/flags.cpp - the edgelm flag table: every option once, with the commands that take it, its value,
// its help line and what it sets. The parser and every command's --help are generated from it.
#include "cli.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace edgelm_cli {
namespace {

// Commands, as bits of a flag's mask.
enum : unsigned {
  RUN = 1u << 0, CHAT = 1u << 1, TOKENIZE = 1u << 2, DETOKENIZE = 1u << 3, LOGITS = 1u << 4,
  INSPECT = 1u << 5, BENCH = 1u << 6, PERPLEXITY = 1u << 7, QUANTIZE = 1u << 8,
  ENGINE = RUN | CHAT | LOGITS | BENCH | PERPLEXITY,  // the commands that run the model
  SAMPLING = RUN | CHAT,
};

struct command_info {
  const char* name;
  unsigned bit;
  const char* summary;   // one line for `edgelm --help`
  const char* synopsis;  // after "usage: edgelm NAME "
  const char* details;   // paragraphs before the option list
};

const command_info commands[] = {
    {"run", RUN, "generate text from a prompt", "-m MODEL [-z TOKENIZER] [-p PROMPT] [-n MAX_NEW_TOKENS] [options]",
     "Prints the prompt followed by the generated text (as llama2.c's run.c). Without -p generation starts from BOS.\n"
     "Defaults: -n 256, --temp 1.0, top-k/top-p/min-p off, --repeat-penalty 1.0, --seed from the clock.\n"},
    {"chat", CHAT, "interactive chat, one user turn per line", "-m MODEL [-z TOKENIZER] [--system TEXT] [options]",
     "Multi-turn chat: one user turn per line from stdin, the reply on stdout. The conversation is rendered\n"
     "with the model's chat template (GGUF tokenizer.chat_template; --chat-template NAME names a built-in,\n"
     "see edgelm template --list-templates) and each turn prefills only what the KV cache does not hold yet.\n"
     "A model without a template continues the text line by line (a base model). Per turn, stderr gets\n"
     "'[turn N: prompt P tokens, R reused, F prefilled, G generated, X tok/s]'; at the end a total.\n"
     "/reset starts the conversation over (the system prompt stays), /exit or end of input ends.\n"
     "A reply ends at the tokenizer's end-of-generation tokens (EOS, <|im_end|>, <|eot_id|>...) or -n.\n"},
    {"tokenize", TOKENIZE, "print the token ids of a text", "(-m MODEL | -z TOKENIZER) (-p TEXT | -f FILE) [--no-special]",
     "Prints the token ids, space-separated, with the tokens the tokenizer adds (BOS...) unless --no-special\n"
     "(Hugging Face's add_special_tokens=False). Special tokens written in the text (<|im_end|>) are matched.\n"
     "TOKENIZER: a tokenizer.json (a tokenizer_config.json beside it is read too), a model folder holding\n"
     "tokenizer.json [+ tokenizer_config.json], a GGUF (its vocabulary) or a llama2.c tokenizer.bin.\n"},
    {"detokenize", DETOKENIZE, "print the text of token ids", "(-m MODEL | -z TOKENIZER) (ID... | -p \"ID ID ...\" | -f FILE) [--no-special]",
     "Writes the text of the token ids to stdout, byte-exact, with no newline added; --no-special leaves out\n"
     "special tokens (skip_special_tokens). TOKENIZER as for tokenize.\n"},
    {"logits", LOGITS, "print the logits for a sequence of token ids", "-m MODEL [-z TOKENIZER] --ids \"1 403 407 261\" [options]",
     "Prints one line per position: all vocabulary logits, space-separated, %.9g (the ids run as one batch,\n"
     "or --batch N at a time). A model folder without tokenizer files loads for this command.\n"},
    {"inspect", INSPECT, "print a model file's config, tensors and tokenizer", "-m MODEL [-z TOKENIZER]",
     "Prints the config, the tensor table and a tokenizer summary.\n"},
    {"bench", BENCH, "measure prefill and decode speed", "-m MODEL [-z TOKENIZER] [-p PP] [-n TG] [-t T1,T2,...] [-r REPS] [--json] [options]",
     "Measures as llama-bench does: prefill of PP prompt tokens (default 128, in batches of --batch) and TG\n"
     "decode steps of one token (default 64), each the mean over REPS runs (default 3) after one warm-up, for\n"
     "each thread count. --json prints one line per thread count:\n"
     "{\"model\",\"threads\",\"pp\",\"pp_tok_s\",\"tg\",\"tg_tok_s\",\"load_ms\",\"peak_rss_mb\",\"kernels\",\"precision\",...}\n"},
    {"perplexity", PERPLEXITY, "perplexity on a text file (llama-perplexity's method)", "-m MODEL [-z TOKENIZER] -f TEXT_FILE [--ctx N] [--chunks N] [options]",
     "Perplexity of the model on a text, computed as llama.cpp's llama-perplexity: the whole text is tokenized\n"
     "once (BOS first), cut into chunks of N tokens (default 512; at least 2*N tokens are needed), the first\n"
     "token of each chunk replaced by BOS, and the second half of every chunk scored. Prints the running\n"
     "estimate after each chunk ([1]12.3456,[2]...) and 'Final estimate: PPL = X +/- Y' on stdout.\n"},
    {"quantize", QUANTIZE, "convert a model to a GGUF of F32, F16, Q8_0 or Q4_0 weights", "IN OUT --type f32|f16|q8_0|q4_0 [-z TOKENIZER] [options]",
     "Writes OUT, a GGUF v3 file that llama.cpp loads, with every weight matrix in the given type. IN is any\n"
     "model edgelm loads: a GGUF (its metadata is copied), a Hugging Face folder (config.json + safetensors;\n"
     "its tokenizer.json, when it has one, is embedded) or a llama2.c .bin with -z its tokenizer.bin (embedded\n"
     "as a llama tokenizer). Norms and other vectors stay F32. A matrix whose rows are not a multiple of 32\n"
     "falls back to F16 (as llama.cpp; --fallback f32 keeps it F32); each fallback is reported on stderr.\n"
     "Q4_0 uses a per-block scale search (lower error than ggml's); --q4_0-reference writes ggml's rounding,\n"
     "byte-identical to llama-quantize. Files are always uniform ('pure' in llama-quantize's terms).\n"},
};

bool parse_long(const char* s, long lo, long hi, long& out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  out = static_cast<long>(v);
  return true;
}
bool parse_float(const char* s, float& out) {
  char* end = nullptr;
  errno = 0;
  float v = std::strtof(s, &end);
  if (errno || end == s || *end || !std::isfinite(v)) return false;
  out = v;
  return true;
}

// One option. names: '|'-separated spellings; arg: the value's placeholder (nullptr: a switch); set: stores
// the value (nullptr for a switch) and returns an error message, or "" when the value is good.
struct flag {
  const char* names;
  unsigned commands;
  const char* arg;
  const char* help;
  std::string (*set)(options& o, const char* v);
};

std::string set_threads(options& o, const char* v) {
  o.threads.clear();
  const std::string list = v;
  std::size_t at = 0;
  while (at <= list.size()) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    long t = 0;
    if (!parse_long(list.substr(at, comma - at).c_str(), 1, edgelm::thread_pool::max_threads, t))
      return "needs thread counts 1.." + std::to_string(edgelm::thread_pool::max_threads) + (o.command == "bench" ? " (a comma-separated list)" : "");
    o.threads.push_back(t);
    at = comma + 1;
  }
  if (o.command != "bench" && o.threads.size() != 1) return "takes one thread count (lists are for bench)";
  return {};
}

std::string set_logit_bias(options& o, const char* v) {  // llama.cpp's spelling: TOKEN_ID(+|-)BIAS, e.g. 15043+1 or 2-inf
  const std::string b = v;
  const std::size_t at = b.find_first_of("+-", 1);
  long id = 0;
  float bias = 0;
  if (at == std::string::npos || !parse_long(b.substr(0, at).c_str(), 0, 1L << 30, id)) return "needs TOKEN_ID(+|-)BIAS";
  const std::string num = b.substr(at + 1);
  if (num == "inf" && b[at] == '-') bias = -std::numeric_limits<float>::infinity();
  else if (!parse_float(num.c_str(), bias) || !std::isfinite(bias)) return "needs TOKEN_ID(+|-)BIAS with a finite bias (or -inf)";
  else if (b[at] == '-') bias = -bias;
  o.gen.logit_bias.emplace_back(static_cast<std::int32_t>(id), bias);
  return {};
}

std::string set_kernels(options& o, const char* v) {
  if (!cli_model::has_kernels(v)) return "must be one of " + cli_model::kernel_names() + " (this build)";
  o.kernels = v;
  return {};
}

#define EDGELM_FLOAT_FLAG(field, cond, msg) \
  [](options& o, const char* v) -> std::string { float f = 0; if (!parse_float(v, f) || !(cond)) return msg; o.field = f; return {}; }

const flag flags[] = {
    {"-m|--model", ~QUANTIZE, "MODEL", "a GGUF, a llama2.c .bin, or a Hugging Face folder (config.json + safetensors)",
     [](options& o, const char* v) -> std::string { o.model = v; return {}; }},
    {"-z|--tokenizer", ~0u, "TOKENIZER", "a separate tokenizer: llama2.c tokenizer.bin, tokenizer.json or a GGUF's vocabulary",
     [](options& o, const char* v) -> std::string { o.tokenizer = v; return {}; }},
    {"-p|-i|--prompt", RUN | TOKENIZE | DETOKENIZE, "TEXT", "the prompt (run) / the text (tokenize) / the ids (detokenize)",
     [](options& o, const char* v) -> std::string { o.prompt = v; o.has_prompt = true; return {}; }},
    {"-p|--n-prompt", BENCH, "PP", "prompt tokens of the prefill test (default 128)",
     [](options& o, const char* v) -> std::string { return parse_long(v, 0, 1 << 20, o.pp) ? "" : "needs an integer 0..1048576 (prompt tokens)"; }},
    {"-f|--file", TOKENIZE | DETOKENIZE | PERPLEXITY, "FILE", "read the text (or the ids) from FILE",
     [](options& o, const char* v) -> std::string { o.text_file = v; return {}; }},
    {"--ids", LOGITS | RUN, "\"ID ID ...\"", "the token ids to run (run: the prompt as ids, no BOS added; a model without a tokenizer needs it and --print-ids)",
     [](options& o, const char* v) -> std::string { o.ids = v; return {}; }},
    {"-n|--n-predict|--n-gen", RUN | CHAT | BENCH, "N", "new tokens at most (run: 256; chat: per turn), decode steps (bench: 64)",
     [](options& o, const char* v) -> std::string { o.n_given = true; return parse_long(v, 0, 1 << 24, o.n) ? "" : "needs an integer 0..16777216"; }},
    // sampling
    {"--temp", SAMPLING, "T", "temperature (0: greedy; default 1.0)", EDGELM_FLOAT_FLAG(gen.temperature, f >= 0, "needs a number >= 0")},
    {"--top-k", SAMPLING, "K", "keep the K most likely tokens (0: off)",
     [](options& o, const char* v) -> std::string { long l = 0; if (!parse_long(v, 0, 1 << 24, l)) return "needs an integer >= 0"; o.gen.top_k = static_cast<std::uint32_t>(l); return {}; }},
    {"--top-p", SAMPLING, "P", "nucleus sampling: the smallest set of tokens with probability >= P (1: off)", EDGELM_FLOAT_FLAG(gen.top_p, f > 0 && f <= 1, "needs a number in (0, 1]")},
    {"--min-p", SAMPLING, "P", "drop tokens less likely than P times the most likely (0: off)", EDGELM_FLOAT_FLAG(gen.min_p, f >= 0 && f <= 1, "needs a number in [0, 1]")},
    {"--repeat-penalty", SAMPLING, "R", "divide the logits of tokens already seen by R (1: off)", EDGELM_FLOAT_FLAG(gen.repeat_penalty, f > 0, "needs a number > 0")},
    {"--presence-penalty", SAMPLING, "A", "subtract A from the logits of tokens already seen", EDGELM_FLOAT_FLAG(gen.presence_penalty, std::isfinite(f), "needs a number")},
    {"--frequency-penalty", SAMPLING, "F", "subtract F times the count of each token already seen", EDGELM_FLOAT_FLAG(gen.frequency_penalty, std::isfinite(f), "needs a number")},
    {"-l|--logit-bias", SAMPLING, "ID(+|-)BIAS", "add BIAS to token ID's logit (2-inf bans token 2); repeatable", set_logit_bias},
    {"-s|--seed", SAMPLING, "S", "sampling seed (default: from the clock)",
     [](options& o, const char* v) -> std::string {
       char* end = nullptr;
       errno = 0;
       const unsigned long long s = std::strtoull(v, &end, 10);
       if (errno || end == v || *end || *v == '-') return "needs a non-negative integer";
       o.gen.seed = s;
       return {};
     }},
    // run
    {"--print-ids", RUN, nullptr, "print the generated token ids instead of text",
     [](options& o, const char*) -> std::string { o.print_ids = true; return {}; }},
    {"--stats", RUN, nullptr, "one JSON line on stderr: load_s, prompt_tokens, prompt_tok_per_s, generated_tokens, gen_tok_per_s, peak_rss_mb, kernels, precision, file_mb, kv_cache_mb",
     [](options& o, const char*) -> std::string { o.stats = true; return {}; }},
    {"--logprobs", RUN, "N", "per generated token, a line on stderr 'logprobs I: ID LOGPROB | ID:LOGPROB ...' (log-softmax before penalties and temperature; the N most likely)",
     [](options& o, const char* v) -> std::string { return parse_long(v, 0, 1000, o.logprobs) ? "" : "needs an integer 0..1000"; }},
    // chat
    {"--system", CHAT, "TEXT", "the system prompt",
     [](options& o, const char* v) -> std::string { o.system = v; o.has_system = true; return {}; }},
    {"--chat-template", CHAT, "NAME", "a built-in chat template instead of the model's (edgelm template --list-templates)",
     [](options& o, const char* v) -> std::string { o.chat_template = v; return {}; }},
    {"--chat-template-file", CHAT, "FILE", "a Jinja chat template from FILE",
     [](options& o, const char* v) -> std::string { o.chat_template_file = v; return {}; }},
    // tokenize / detokenize
    {"--no-special", TOKENIZE | DETOKENIZE, nullptr, "tokenize: no BOS/EOS added; detokenize: leave out special tokens",
     [](options& o, const char*) -> std::string { o.no_special = true; return {}; }},
    // perplexity
    {"--chunks", PERPLEXITY, "N", "evaluate at most N chunks",
     [](options& o, const char* v) -> std::string { return parse_long(v, 1, 1 << 24, o.chunks) ? "" : "needs a positive integer"; }},
    // bench
    {"-r|--reps|--repetitions", BENCH, "REPS", "timed runs per test (default 3)",
     [](options& o, const char* v) -> std::string { return parse_long(v, 1, 10000, o.reps) ? "" : "needs an integer 1..10000"; }},
    {"--json", BENCH, nullptr, "one JSON line per thread count",
     [](options& o, const char*) -> std::string { o.json = true; return {}; }},
    // the engine
    {"-t|--threads", ENGINE, "N", "threads (default 1; results are identical for any N; bench: a list 1,2,4)", set_threads},
    {"-b|--batch|-ub|--ubatch-size", ENGINE, "N", "prompt tokens per forward pass (default 64)",
     [](options& o, const char* v) -> std::string { return parse_long(v, 1, 65536, o.batch) ? "" : "needs an integer 1..65536"; }},
    {"-ctk|--kv-type", ENGINE, "f32|f16", "KV cache element type (default f32; f16 halves it)",
     [](options& o, const char* v) -> std::string {
       const std::string k = v;
       if (k == "f32") o.kv = edgelm::kv_type::f32;
       else if (k == "f16") o.kv = edgelm::kv_type::f16;
       else return "must be f32 or f16";
       return {};
     }},
    {"-c|--ctx|--ctx-size|--context", ENGINE, "N", "context (default min(trained context, 4096); perplexity: the chunk size, default 512)",
     [](options& o, const char* v) -> std::string { return parse_long(v, 1, 1 << 24, o.context) ? "" : "needs a positive integer"; }},
    {"--kernels", ENGINE, "NAME", "kernels (default: the first of this build's list, chosen for the CPU at run time)", set_kernels},
    {"--precision", ENGINE, "P", "f32|q8_0|q4_0|mixed|auto: weights in memory. f32/q8_0/q4_0: every matrix in that type (others converted once at load); mixed: each matrix in its file type (F32 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K in place; F16/BF16 become f32, others q8_0). auto (default): q8_0/q4_0 when every matrix has that type, f32 when all are float, else mixed",
     [](options& o, const char* v) -> std::string {
       const std::string p = v;
       if (p != "f32" && p != "q8_0" && p != "q4_0" && p != "mixed" && p != "auto") return "must be f32, q8_0, q4_0, mixed or auto";
       o.precision = p;
       return {};
     }},
    {"--no-repack", ENGINE, nullptr, "keep every weight matrix a view of the mapped file (default: the kernels repack q8_0/q4_0 into their own layout where that is faster)",
     [](options& o, const char*) -> std::string { o.repack = false; return {}; }},
    {"-v|--verbose", ENGINE, nullptr, "log every tensor's load to stderr",
     [](options& o, const char*) -> std::string { o.verbose = true; return {}; }},
    // quantize
    {"--type", QUANTIZE, "f32|f16|q8_0|q4_0", "the weight matrices' type",
     [](options& o, const char* v) -> std::string {
       const std::string t = v;
       if (t != "f32" && t != "f16" && t != "q8_0" && t != "q4_0") return "must be f32, f16, q8_0 or q4_0";
       o.type = t;
       return {};
     }},
    {"--fallback", QUANTIZE, "f16|f32", "the type of matrices whose rows are not a multiple of 32 (default f16)",
     [](options& o, const char* v) -> std::string {
       const std::string t = v;
       if (t != "f16" && t != "f32") return "must be f16 or f32";
       o.fallback = t;
       return {};
     }},
    {"--name", QUANTIZE, "NAME", "general.name of the output",
     [](options& o, const char* v) -> std::string { o.name = v; return {}; }},
    {"--pure", QUANTIZE, nullptr, "accepted for llama-quantize compatibility (files are always uniform)",
     [](options& o, const char*) -> std::string { o.pure = true; return {}; }},
    {"--q4_0-reference", QUANTIZE, nullptr, "Q4_0 with ggml's rounding, byte-identical to llama-quantize",
     [](options& o, const char*) -> std::string { o.q4_0_reference = true; return {}; }},
};
#undef EDGELM_FLOAT_FLAG

bool has_name(const char* names, std::string_view a) {
  std::string_view n = names;
  while (!n.empty()) {
    const std::size_t bar = std::min(n.find('|'), n.size());
    if (n.substr(0, bar) == a) return true;
    n.remove_prefix(std::min(bar + 1, n.size()));
  }
  return false;
}

std::string names_text(const char* names) {
  std::string s;
  for (const char* c = names; *c; ++c) s += *c == '|' ? std::string(", ") : std::string(1, *c);
  return s;
}

const command_info* find_command(std::string_view name) {
  for (const auto& c : commands)
    if (name == c.name) return &c;
  return nullptr;
}

// Help lines wrapped at ~110 columns under a 34-column option column.
void append_option(std::string& out, const flag& f) {
  std::string left = "  " + names_text(f.names) + (f.arg ? std::string(" ") + f.arg : std::string());
  constexpr std::size_t col = 34, width = 112;
  if (left.size() + 1 > col) {
    out += left + "\n";
    left.clear();
  }
  left.resize(col, ' ');
  std::string_view h = f.help;
  bool first = true;
  while (!h.empty()) {
    std::size_t take = h.size();
    if (col + take > width) {
      take = h.rfind(' ', width - col);
      if (take == std::string_view::npos || take == 0) take = std::min(h.size(), width - col);
    }
    out += (first ? left : std::string(col, ' ')) + std::string(h.substr(0, take)) + "\n";
    h.remove_prefix(take);
    while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
    first = false;
  }
}

}  // namespace

std::string usage_text(const std::string& command) {
  const command_info* c = find_command(command);
  if (!c) {
    std::string s = "usage: edgelm COMMAND [options]   (edgelm COMMAND --help for details)\ncommands:\n";
    for (const auto& k : commands) {
      std::string name = k.name;
      name.resize(11, ' ');
      s += "  " + name + " " + k.summary + "\n";
    }
    s += "  template    print the prompt a model's chat template renders for a conversation\n"
         "MODEL (-m): a GGUF, a llama2.c .bin, or a Hugging Face folder (config.json + model.safetensors or its\n"
         "index and shards; tokenizer.json). Architectures: llama (Llama 2/3, TinyLlama, SmolLM, Mistral), qwen2,\n"
         "gpt2, gpt_neo, gpt_neox (Pythia), phi.\n";
    return s;
  }
  std::string s = std::string("usage: edgelm ") + c->name + " " + c->synopsis + "\n" + c->details + "options:\n";
  for (const auto& f : flags)
    if (f.commands & c->bit) append_option(s, f);
  s += "  -h, --help                      this text\n";
  return s;
}

std::string parse(int argc, char** argv, options& o, bool& help) {
  if (argc < 2) return "no command given (try: edgelm --help)";
  o.command = argv[1];
  if (o.command == "--help" || o.command == "-h" || o.command == "help") { o.command.clear(); help = true; return {}; }
  const command_info* c = find_command(o.command);
  if (!c) return "unknown command '" + o.command + "' (try: edgelm --help)";
  o.gen.temperature = 1.0f;  // run.c's default
  o.gen.seed = static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count());
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") { help = true; return {}; }
    const flag* f = nullptr;
    for (const auto& k : flags)
      if ((k.commands & c->bit) && has_name(k.names, a)) { f = &k; break; }
    if (f) {
      const char* v = nullptr;
      if (f->arg) {
        if (i + 1 >= argc) return a + " needs a value (" + f->arg + ")";
        v = argv[++i];
      }
      std::string e = f->set(o, v);
      if (!e.empty()) return a + " " + e;
      continue;
    }
    // positional arguments
    if (o.command == "detokenize" && !a.empty() && std::isdigit(static_cast<unsigned char>(a[0])) != 0) { o.id_args.push_back(a); continue; }
    if (o.command == "quantize" && !a.empty() && a[0] != '-' && o.out_file.empty()) { (o.in_file.empty() ? o.in_file : o.out_file) = a; continue; }
    return "unknown option '" + a + "' for '" + o.command + "' (edgelm " + o.command + " --help lists them)";
  }
  if (o.command == "tokenize" || o.command == "detokenize") {
    if (o.model.empty() && o.tokenizer.empty()) return o.command + " needs -m MODEL or -z TOKENIZER";
    if (o.has_prompt + !o.text_file.empty() + !o.id_args.empty() != 1)
      return o.command == "tokenize" ? "tokenize needs one of -p TEXT or -f FILE" : "detokenize needs the ids: ID..., -p \"ID ...\" or -f FILE";
  } else if (o.command == "quantize") {
    if (o.in_file.empty() || o.out_file.empty()) return "quantize needs IN and OUT files";
    if (o.type.empty()) return "quantize needs --type f32|f16|q8_0|q4_0";
  } else if (o.model.empty()) {
    return o.command + " needs -m MODEL";
  }
  if (o.command == "logits" && o.ids.empty()) return "logits needs --ids \"ID ID ...\"";
  if (o.command == "perplexity" && o.text_file.empty()) return "perplexity needs -f TEXT_FILE";
  return {};
}

}  // namespace edgelm_cli
