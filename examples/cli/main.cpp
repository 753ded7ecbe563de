// edgelm - command-line front end: run, chat, tokenize, logits, inspect, bench, perplexity, quantize.
// Output of `run` matches llama2.c's run.c byte for byte (prompt + generation on stdout, status on stderr);
// `perplexity` prints what llama.cpp's llama-perplexity prints for the same file and text.
#include <edgelm/backends/highway.hpp>
#if defined(EDGELM_HAVE_XSIMD)
#include <edgelm/backends/xsimd.hpp>
#define EDGELM_CLI_KERNELS "scalar|highway|xsimd"
#else
#define EDGELM_CLI_KERNELS "scalar|highway"
#endif
#include <edgelm/core/thread_pool.hpp>
#include <edgelm/edgelm.hpp>
#include <edgelm/perplexity.hpp>
#include <edgelm/quantize.hpp>

#include "cmd_template.hpp"  // edgelm template

#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#if defined(__unix__) && !defined(__EMSCRIPTEN__)
#include <sys/resource.h>
#endif

namespace {

using clock_type = std::chrono::steady_clock;

int fail(const std::string& msg) {
  std::fprintf(stderr, "edgelm: error: %s\n", msg.c_str());
  return 1;
}

struct options {
  std::string command;
  std::string model, tokenizer, prompt, ids, kernels = "highway", precision = "auto";
  mutable std::optional<edgelm::model_file> parsed;  // the model file, when main() already parsed it
  bool has_prompt = false, print_ids = false, stats = false, verbose = false;
  bool no_special = false;             // tokenize: no BOS/EOS; detokenize: skip special tokens
  std::vector<std::string> id_args;    // detokenize: ids given as arguments
  long n = 256, reps = 3;
  long context = 0;
  long batch = 64;                 // prompt tokens per forward pass
  std::vector<long> threads{1};    // -t N (bench: -t 1,2,4)
  edgelm::kv_type kv = edgelm::kv_type::f32;
  long pp = 128;                   // bench: prompt tokens
  bool n_given = false, json = false;
  edgelm::generate_options gen;
  // perplexity
  std::string text_file;
  long chunks = 0;
  // quantize
  std::string in_file, out_file, type, fallback = "f16", name;
  bool pure = false, q4_0_reference = false;
  bool repack = true;  // --no-repack
  long logprobs = 0;   // run --logprobs N
  // chat
  std::string system, chat_template, chat_template_file;
  bool has_system = false;
};

// Options of every command that runs the model.
constexpr const char* engine_help =
    "-t, --threads N                 threads (default 1; results are identical for any N)\n"
    "--batch N                       prompt tokens per forward pass (default 64)\n"
    "--kv-type f32|f16               KV cache element type (default f32; f16 halves it)\n"
    "-c, --ctx N                     context (default min(trained context, 4096))\n"
    "--no-repack                     keep every weight matrix a view of the mapped file (default: the\n"
    "                                kernels repack q8_0/q4_0 into their own layout where that is faster)\n";
// --precision of run/chat/logits/bench/perplexity (the weights' precision in memory).
constexpr const char* precision_help =
    "--precision f32|q8_0|q4_0|mixed|auto  weight precision in memory. f32/q8_0/q4_0: every matrix in that\n"
    "                                type (others converted once at load); mixed: each matrix in its file type\n"
    "                                (F32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K run in place; F16/BF16\n"
    "                                become f32, other types q8_0). Default auto: q8_0/q4_0 when every matrix\n"
    "                                has that type, f32 when all are float, else mixed.\n";

std::string usage_text(const std::string& cmd) {
  if (cmd == "run")
    return std::string("usage: edgelm run -m MODEL [-z TOKENIZER] [-p PROMPT] [-n MAX_NEW_TOKENS] [--temp T] [--top-k K]\n"
           "                  [--top-p P] [--min-p P] [--repeat-penalty R] [--presence-penalty A] [--frequency-penalty F]\n"
           "                  [--logit-bias ID(+|-)BIAS]... [--logprobs N] [--seed S] [--context N]\n"
           "                  [--kernels " EDGELM_CLI_KERNELS "] [--precision P] [--print-ids] [--stats] [--verbose]\n"
           "Prints the prompt followed by the generated text (as llama2.c's run.c). MODEL is a .gguf (tokenizer\n"
           "inside) or a llama2.c .bin (then -z names its tokenizer.bin). Without -p generation starts from BOS.\n"
           "Defaults: -n 256, --temp 1.0, top-k/top-p/min-p off, --repeat-penalty 1.0, --seed from the clock.\n"
           "--print-ids prints the generated token ids instead of text; --stats prints one JSON line to stderr:\n"
           "load_s, prompt_tokens, prompt_tok_per_s, generated_tokens, gen_tok_per_s, peak_rss_mb (getrusage),\n"
           "kernels, precision, file_mb (model file size), kv_cache_mb and state_mb (KV cache + activations).\n"
           "--logprobs N prints one line per generated token to stderr: 'logprobs I: ID LOGPROB | ID:LOGPROB ...'\n"
           "(log-softmax of the model's logits, before penalties and temperature; the N most likely tokens).\n") +
           engine_help + precision_help;
  if (cmd == "chat")
    return std::string("usage: edgelm chat -m MODEL [-z TOKENIZER] [--system TEXT] [--chat-template NAME | --chat-template-file FILE]\n"
           "                   [-n MAX_NEW_TOKENS_PER_TURN] [sampling options as run] [--kernels " EDGELM_CLI_KERNELS "] [--precision P]\n"
           "Multi-turn chat: one user turn per line from stdin, the reply on stdout. The conversation is rendered\n"
           "with the model's chat template (GGUF tokenizer.chat_template; --chat-template NAME names a built-in,\n"
           "see edgelm template --list-templates) and each turn prefills only what the KV cache does not hold yet.\n"
           "A model without a template continues the text line by line (a base model). Per turn, stderr gets\n"
           "'[turn N: prompt P tokens, R reused, F prefilled, G generated, X tok/s]'; at the end a total.\n"
           "/reset starts the conversation over (the system prompt stays), /exit or end of input ends.\n"
           "A reply ends at the tokenizer's end-of-generation tokens (EOS, <|im_end|>, <|eot_id|>...) or -n.\n") +
           engine_help + precision_help;
  if (cmd == "tokenize")
    return "usage: edgelm tokenize (-m MODEL | -z TOKENIZER) (-p TEXT | -f FILE) [--no-special]\n"
           "Prints the token ids, space-separated, with the tokens the tokenizer adds (BOS...) unless --no-special\n"
           "(Hugging Face's add_special_tokens=False). Special tokens written in the text (<|im_end|>) are matched.\n"
           "TOKENIZER: a tokenizer.json (a tokenizer_config.json beside it is read too), a model folder holding\n"
           "tokenizer.json [+ tokenizer_config.json], a GGUF (its vocabulary) or a llama2.c tokenizer.bin.\n";
  if (cmd == "detokenize")
    return "usage: edgelm detokenize (-m MODEL | -z TOKENIZER) (ID... | -p \"ID ID ...\" | -f FILE) [--no-special]\n"
           "Writes the text of the token ids to stdout, byte-exact, with no newline added; --no-special leaves out\n"
           "special tokens (skip_special_tokens). TOKENIZER as for tokenize.\n";
  if (cmd == "logits")
    return std::string("usage: edgelm logits -m MODEL [-z TOKENIZER] --ids \"1 403 407 261\" [--kernels " EDGELM_CLI_KERNELS "] [--precision P]\n"
           "Prints one line per position: all vocabulary logits, space-separated, %.9g (the ids run as one batch,\n"
           "or --batch N at a time).\n") + engine_help + precision_help;
  if (cmd == "inspect") return "usage: edgelm inspect -m MODEL [-z TOKENIZER]\nPrints the config, the tensor table and a tokenizer summary.\n";
  if (cmd == "bench")
    return std::string("usage: edgelm bench -m MODEL [-z TOKENIZER] [-p PP] [-n TG] [-t T1,T2,...] [-r REPS] [--json]\n"
           "                    [--kernels " EDGELM_CLI_KERNELS "] [--precision P] [--batch N] [--kv-type f32|f16]\n"
           "Measures as llama-bench does: prefill of PP prompt tokens (default 128, in batches of --batch) and TG\n"
           "decode steps of one token (default 64), each the mean over REPS runs (default 3) after one warm-up, for\n"
           "each thread count. --json prints one line per thread count:\n"
           "{\"model\",\"threads\",\"pp\",\"pp_tok_s\",\"tg\",\"tg_tok_s\",\"load_ms\",\"peak_rss_mb\",\"kernels\",\"precision\",...}\n") +
           precision_help;
  if (cmd == "perplexity")
    return std::string("usage: edgelm perplexity -m MODEL [-z TOKENIZER] -f TEXT_FILE [--ctx N] [--chunks N]\n"
           "                         [--kernels " EDGELM_CLI_KERNELS "] [--precision P]\n"
           "Perplexity of the model on a text, computed as llama.cpp's llama-perplexity: the whole text is tokenized\n"
           "once (BOS first), cut into chunks of N tokens (default 512; at least 2*N tokens are needed), the first\n"
           "token of each chunk replaced by BOS, and the second half of every chunk scored. Prints the running\n"
           "estimate after each chunk ([1]12.3456,[2]...) and 'Final estimate: PPL = X +/- Y' on stdout.\n"
           "--chunks N evaluates at most N chunks. --ctx is also spelled -c, --ctx-size, --context.\n") + engine_help + precision_help;
  if (cmd == "quantize")
    return "usage: edgelm quantize IN OUT --type f32|f16|q8_0|q4_0 [-z TOKENIZER] [--pure] [--name NAME]\n"
           "                       [--fallback f16|f32] [--q4_0-reference]\n"
           "Writes OUT, a GGUF v3 file that llama.cpp loads, with every weight matrix in the given type. IN is a\n"
           "GGUF (its metadata is copied) or a llama2.c .bin with -z its tokenizer.bin (embedded in OUT as a llama\n"
           "tokenizer). Norms and other vectors stay as they are (F32). A matrix whose rows are not a multiple of\n"
           "32 falls back to F16 (as llama.cpp; --fallback f32 to keep it F32); each fallback is reported on stderr.\n"
           "Q4_0 uses a per-block scale search (lower error than ggml's); --q4_0-reference writes ggml's rounding,\n"
           "byte-identical to llama-quantize. Files are always uniform ('pure' in llama-quantize's terms: no\n"
           "mixture of types), so --pure is accepted for command-line compatibility and changes nothing.\n";
  return "usage: edgelm COMMAND [options]   (edgelm COMMAND --help for details)\n"
         "commands:\n"
         "  run       generate text from a prompt\n"
         "  chat      interactive continuation, one turn per line\n"
         "  tokenize  print the token ids of a text\n"
         "  detokenize  print the text of token ids\n"
         "  logits    print the logits for a sequence of token ids\n"
         "  inspect   print a model file's config, tensors and tokenizer\n"
         "  bench     measure prefill and decode speed\n"
         "  perplexity  perplexity on a text file (llama-perplexity's method)\n"
         "  quantize  convert a model to a GGUF of F32, F16, Q8_0 or Q4_0 weights\n"
         "  template  print the prompt a model's chat template renders for a conversation\n"
         "MODEL (-m): a GGUF, a llama2.c .bin, or a Hugging Face folder (config.json + model.safetensors or its\n"
         "index and shards; its tokenizer.json; llama / mistral architectures for now)\n";
}

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

// Returns an error message, or empty on success. --help prints usage and exits 0 (via help flag).
std::string parse(int argc, char** argv, options& o, bool& help) {
  if (argc < 2) return "no command given (try: edgelm --help)";
  o.command = argv[1];
  if (o.command == "--help" || o.command == "-h" || o.command == "help") { o.command.clear(); help = true; return {}; }
  static const char* cmds[] = {"run", "chat", "tokenize", "detokenize", "logits", "inspect", "bench", "perplexity", "quantize"};
  bool known = false;
  for (auto c : cmds) known |= o.command == c;
  if (!known) return "unknown command '" + o.command + "'";
  o.gen.temperature = 1.0f;  // run.c's default
  o.gen.seed = static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count());
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char*& v) -> bool {
      if (i + 1 >= argc) return false;
      v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    long l = 0;
    float f = 0;
    if (a == "--help" || a == "-h") { help = true; return {}; }
    else if (a == "--print-ids") o.print_ids = true;
    else if (a == "--stats") o.stats = true;
    else if (a == "--verbose" || a == "-v") o.verbose = true;
    else if (a == "-m" || a == "--model") { if (!val(v)) return a + " needs a value"; o.model = v; }
    else if (a == "-z" || a == "--tokenizer") { if (!val(v)) return a + " needs a value"; o.tokenizer = v; }
    else if (o.command == "bench" && (a == "-p" || a == "--n-prompt")) { if (!val(v) || !parse_long(v, 0, 1 << 20, o.pp)) return a + " needs an integer 0..1048576 (prompt tokens)"; }
    else if (a == "-p" || a == "-i" || a == "--prompt") { if (!val(v)) return a + " needs a value"; o.prompt = v; o.has_prompt = true; }
    else if (a == "--ids") { if (!val(v)) return a + " needs a value"; o.ids = v; }
    else if (a == "--kernels") {
      if (!val(v)) return a + " needs a value";
      o.kernels = v;
      if (o.kernels != "scalar" && o.kernels != "highway"
#if defined(EDGELM_HAVE_XSIMD)
          && o.kernels != "xsimd"
#endif
      )
        return "--kernels must be one of " EDGELM_CLI_KERNELS " (this build)";
    }
    else if (a == "--precision") {
      if (!val(v)) return a + " needs a value";
      o.precision = v;
      if (o.precision != "f32" && o.precision != "q8_0" && o.precision != "q4_0" && o.precision != "mixed" && o.precision != "auto")
        return "--precision must be f32, q8_0, q4_0, mixed or auto";
    }
    else if (a == "-f" || a == "--file") { if (!val(v)) return a + " needs a value"; o.text_file = v; }
    else if (a == "--chunks") { if (!val(v) || !parse_long(v, 1, 1 << 24, o.chunks)) return a + " needs a positive integer"; }
    else if (a == "--type") {
      if (!val(v)) return a + " needs a value";
      o.type = v;
      if (o.type != "f32" && o.type != "f16" && o.type != "q8_0" && o.type != "q4_0") return "--type must be f32, f16, q8_0 or q4_0";
    }
    else if (a == "--fallback") {
      if (!val(v)) return a + " needs a value";
      o.fallback = v;
      if (o.fallback != "f16" && o.fallback != "f32") return "--fallback must be f16 or f32";
    }
    else if (a == "--name") { if (!val(v)) return a + " needs a value"; o.name = v; }
    else if (a == "--pure") o.pure = true;
    else if ((o.command == "tokenize" || o.command == "detokenize") && a == "--no-special") o.no_special = true;
    else if (o.command == "chat" && a == "--system") { if (!val(v)) return a + " needs a value"; o.system = v; o.has_system = true; }
    else if (o.command == "chat" && a == "--chat-template") { if (!val(v)) return a + " needs a value"; o.chat_template = v; }
    else if (o.command == "chat" && a == "--chat-template-file") { if (!val(v)) return a + " needs a value"; o.chat_template_file = v; }
    else if (o.command == "detokenize" && !a.empty() && (std::isdigit(static_cast<unsigned char>(a[0])) != 0)) o.id_args.push_back(a);
    else if (a == "--q4_0-reference") o.q4_0_reference = true;
    else if (o.command == "quantize" && !a.empty() && a[0] != '-' && o.out_file.empty()) {
      (o.in_file.empty() ? o.in_file : o.out_file) = a;
    }
    else if (a == "-n" || a == "--n-predict" || a == "--n-gen") { if (!val(v) || !parse_long(v, 0, 1 << 24, o.n)) return a + " needs an integer 0..16777216"; o.n_given = true; }
    else if (a == "--reps" || a == "-r" || a == "--repetitions") { if (!val(v) || !parse_long(v, 1, 10000, o.reps)) return a + " needs an integer 1..10000"; }
    else if (a == "--json") o.json = true;
    else if (a == "--no-repack") o.repack = false;
    else if (a == "--logprobs") { if (!val(v) || !parse_long(v, 0, 1000, o.logprobs)) return a + " needs an integer 0..1000"; }
    else if (a == "-t" || a == "--threads") {
      if (!val(v)) return a + " needs a value";
      o.threads.clear();
      std::string list = v;
      std::size_t at = 0;
      while (at <= list.size()) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        long t = 0;
        if (!parse_long(list.substr(at, comma - at).c_str(), 1, edgelm::thread_pool::max_threads, t))
          return a + " needs thread counts 1.." + std::to_string(edgelm::thread_pool::max_threads) + (o.command == "bench" ? " (a comma-separated list)" : "");
        o.threads.push_back(t);
        at = comma + 1;
      }
      if (o.command != "bench" && o.threads.size() != 1) return a + " takes one thread count (lists are for bench)";
    }
    else if (a == "--batch" || a == "-b" || a == "-ub" || a == "--ubatch-size") { if (!val(v) || !parse_long(v, 1, 65536, o.batch)) return a + " needs an integer 1..65536"; }
    else if (a == "--kv-type" || a == "-ctk") {
      if (!val(v)) return a + " needs a value";
      const std::string k = v;
      if (k == "f32") o.kv = edgelm::kv_type::f32;
      else if (k == "f16") o.kv = edgelm::kv_type::f16;
      else return a + " must be f32 or f16";
    }
    else if (a == "--context" || a == "-c" || a == "--ctx" || a == "--ctx-size") { if (!val(v) || !parse_long(v, 1, 1 << 24, o.context)) return a + " needs a positive integer"; }
    else if (a == "--temp") { if (!val(v) || !parse_float(v, f) || f < 0) return a + " needs a number >= 0"; o.gen.temperature = f; }
    else if (a == "--top-k") { if (!val(v) || !parse_long(v, 0, 1 << 24, l)) return a + " needs an integer >= 0"; o.gen.top_k = static_cast<std::uint32_t>(l); }
    else if (a == "--top-p") { if (!val(v) || !parse_float(v, f) || !(f > 0 && f <= 1)) return a + " needs a number in (0, 1]"; o.gen.top_p = f; }
    else if (a == "--min-p") { if (!val(v) || !parse_float(v, f) || !(f >= 0 && f <= 1)) return a + " needs a number in [0, 1]"; o.gen.min_p = f; }
    else if (a == "--presence-penalty") { if (!val(v) || !parse_float(v, f) || !std::isfinite(f)) return a + " needs a number"; o.gen.presence_penalty = f; }
    else if (a == "--frequency-penalty") { if (!val(v) || !parse_float(v, f) || !std::isfinite(f)) return a + " needs a number"; o.gen.frequency_penalty = f; }
    else if (a == "--logit-bias" || a == "-l") {  // llama.cpp's spelling: TOKEN_ID(+|-)BIAS, e.g. 15043+1 or 2-inf
      if (!val(v)) return a + " needs TOKEN_ID(+|-)BIAS";
      const std::string b = v;
      const std::size_t at = b.find_first_of("+-", 1);
      long id = 0;
      float bias = 0;
      if (at == std::string::npos || !parse_long(b.substr(0, at).c_str(), 0, 1L << 30, id)) return a + " needs TOKEN_ID(+|-)BIAS";
      const std::string num = b.substr(at + 1);
      if (num == "inf" && b[at] == '-') bias = -std::numeric_limits<float>::infinity();
      else if (!parse_float(num.c_str(), bias) || !std::isfinite(bias)) return a + " needs TOKEN_ID(+|-)BIAS with a finite bias (or -inf)";
      else if (b[at] == '-') bias = -bias;
      o.gen.logit_bias.emplace_back(static_cast<std::int32_t>(id), bias);
    }
    else if (a == "--repeat-penalty") { if (!val(v) || !parse_float(v, f) || !(f > 0)) return a + " needs a number > 0"; o.gen.repeat_penalty = f; }
    else if (a == "--seed" || a == "-s") {
      if (!val(v)) return a + " needs a value";
      char* end = nullptr;
      errno = 0;
      unsigned long long s = std::strtoull(v, &end, 10);
      if (errno || end == v || *end) return a + " needs a non-negative integer";
      o.gen.seed = s;
    }
    else return "unknown option '" + a + "' for '" + o.command + "'";
  }
  if (o.command == "tokenize" || o.command == "detokenize") {
    if (o.model.empty() && o.tokenizer.empty()) return o.command + " needs -m MODEL or -z TOKENIZER";
    if (o.has_prompt + !o.text_file.empty() + !o.id_args.empty() != 1)
      return o.command == "tokenize" ? "tokenize needs one of -p TEXT or -f FILE" : "detokenize needs the ids: ID..., -p \"ID ...\" or -f FILE";
  } else if (o.command == "quantize") {
    if (o.in_file.empty() || o.out_file.empty()) return "quantize needs IN and OUT files";
    if (o.type.empty()) return "quantize needs --type f32|f16|q8_0|q4_0";
    return {};
  } else if (o.model.empty()) {
    return o.command + " needs -m MODEL";
  }
  if (o.command == "logits" && o.ids.empty()) return "logits needs --ids \"ID ID ...\"";
  if (o.command == "perplexity" && o.text_file.empty()) return "perplexity needs -f TEXT_FILE";
  return {};
}

// run.c's safe_printf: skip single bytes that are neither printable nor whitespace.
void safe_print(std::string_view piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    unsigned char c = static_cast<unsigned char>(piece[0]);
    if (!(std::isprint(c) || std::isspace(c))) return;
  }
  std::fwrite(piece.data(), 1, piece.size(), stdout);
}

// Peak resident memory: getrusage natively; in WebAssembly the size of linear memory (it only grows).
double peak_rss_mb() {
#if defined(__unix__) && !defined(__EMSCRIPTEN__)
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
#elif defined(__wasm__)
  return static_cast<double>(__builtin_wasm_memory_size(0)) * 65536.0 / (1024.0 * 1024.0);
#else
  return 0.0;
#endif
}

// Threads of one command: a pool (none for 1 thread) and its executor.
struct engine {
  std::unique_ptr<edgelm::thread_pool> pool;
  edgelm::executor exec;
};
edgelm::result<engine> make_engine(long threads) {
  engine e;
  if (threads > 1) {
    auto p = edgelm::thread_pool::create(static_cast<unsigned>(threads));
    if (!p) return p.error();
    e.pool = std::move(*p);
    e.exec = e.pool->get_executor();
  }
  return e;
}
edgelm::session_options session_opts(const options& o, const engine& e) {
  edgelm::session_options so;
  so.context = static_cast<std::uint32_t>(o.context);
  so.batch = static_cast<std::uint32_t>(o.batch);
  so.kv = o.kv;
  so.exec = e.exec;
  return so;
}

// Library log lines: the load summary (info) always, per-tensor detail (debug) with --verbose.
void log_to_stderr(void* verbose, edgelm::log_level level, std::string_view line) {
  if (level == edgelm::log_level::debug && !*static_cast<const bool*>(verbose)) return;
  std::fprintf(stderr, "edgelm: %.*s\n", static_cast<int>(line.size()), line.data());
}

template <class P, class K>
edgelm::result<edgelm::model<P, K>> load_model(const options& o) {
  edgelm::load_options lo;
  lo.repack = o.repack;
  lo.log.fn = log_to_stderr;
  lo.log.user = const_cast<bool*>(&o.verbose);
  // The file is parsed once: main() may already have (to pick the precision).
  edgelm::model_file mf;
  if (o.parsed) {
    mf = std::move(*o.parsed);
    o.parsed.reset();
  } else {
    auto r = edgelm::read_model_path(o.model);  // a model file or a Hugging Face folder
    if (!r) return r.error();
    mf = std::move(*r);
  }
  if (!o.tokenizer.empty()) {
    auto ts = edgelm::file_storage::open(o.tokenizer);
    if (!ts) return ts.error();
    return edgelm::load<P, K>(std::move(mf), *ts, lo);
  }
  if (edgelm::is_directory(o.model)) {  // the folder's tokenizer.json; `logits` runs on ids without one
    auto b = edgelm::open_hf_folder(o.model);
    if (!b) return b.error();
    if (!b->contains("tokenizer.json") && o.command == "logits") return edgelm::load<P, K>(std::move(mf), edgelm::text_tokenizer{}, lo);
    auto tok = edgelm::load_bundle_tokenizer(*b);
    if (!tok) return tok.error();
    return edgelm::load<P, K>(std::move(mf), std::move(*tok), lo);
  }
  return edgelm::load<P, K>(std::move(mf), lo);
}

std::string err_text(const edgelm::error& e) { return e.message(); }

template <class P, class K>
int cmd_run(const options& o) {
  const auto t0 = clock_type::now();
  auto m = load_model<P, K>(o);
  if (!m) return fail(err_text(m.error()));
  const auto t_load = clock_type::now();
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  auto s = edgelm::session<edgelm::model<P, K>>::create(*m, session_opts(o, *eng));
  if (!s) return fail(err_text(s.error()));
  auto sv = edgelm::validate(o.gen.sampling(), m->config().vocab_size);
  if (!sv) return fail(err_text(sv.error()));

  // Prompt: BOS + text (an empty prompt is BOS alone). Print it as run.c does, piece by piece.
  const auto t_prompt0 = clock_type::now();
  auto ids = m->tok.encode(o.prompt, true);
  if (ids.empty() && m->tok.bos()) ids.push_back(*m->tok.bos());
  auto pr = s->set_tokens(ids);
  if (!pr) return fail(err_text(pr.error()));
  const auto t_prompt = clock_type::now();
  if (!o.print_ids)
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (ids[i] != m->tok.bos_id()) safe_print(m->tok.decode_piece(ids[i], i == 0 || ids[i - 1] == m->tok.bos_id()));
  s->reset_sampler(o.gen.sampling());
  s->set_logprobs(static_cast<std::uint32_t>(o.logprobs));
  std::vector<std::int32_t> generated;
  for (long i = 0; i < o.n; ++i) {
    auto r = s->step();
    if (!r) return fail(err_text(r.error()));
    if (o.logprobs > 0) {  // one line per sampled token on stderr: id, logprob, then the top alternatives
      std::fprintf(stderr, "logprobs %ld: %d %.6f |", i, r->token, static_cast<double>(r->logprob));
      for (const auto& c : r->top) std::fprintf(stderr, " %d:%.6f", c.token, static_cast<double>(c.logprob));
      std::fprintf(stderr, "\n");
    }
    if (r->done && r->piece.empty()) break;  // BOS or an end-of-generation token: not text
    generated.push_back(r->token);
    if (o.print_ids) std::printf(generated.size() == 1 ? "%d" : " %d", r->token);
    else safe_print(r->piece);
    std::fflush(stdout);
    if (r->done) break;
  }
  std::printf("\n");
  const auto t_end = clock_type::now();
  const double load_s = std::chrono::duration<double>(t_load - t0).count();
  const double prompt_s = std::chrono::duration<double>(t_prompt - t_prompt0).count();
  const double gen_s = std::chrono::duration<double>(t_end - t_prompt).count();
  const double gen_tps = gen_s > 0 ? static_cast<double>(generated.size()) / gen_s : 0.0;
  std::fprintf(stderr, "achieved tok/s: %f\n", gen_tps);
  if (o.stats) {
    // The memory bar: peak RSS against the mapped file plus the KV cache (both float32 caches).
    const auto& c = m->config();
    (void)c;
    const double kv_mb = static_cast<double>(s->state().kv_bytes()) / (1024.0 * 1024.0);
    const double file_mb = static_cast<double>(m->net.file().bytes->bytes().size()) / (1024.0 * 1024.0);
    std::fprintf(stderr,
                 "{\"load_s\":%.6f,\"prompt_tokens\":%zu,\"prompt_tok_per_s\":%.2f,\"generated_tokens\":%zu,\"gen_tok_per_s\":%.2f,"
                 "\"peak_rss_mb\":%.2f,\"kernels\":\"%s\",\"precision\":\"%.*s\",\"file_mb\":%.2f,\"kv_cache_mb\":%.2f,"
                 "\"tensors_in_place\":%zu,\"tensors_converted\":%zu}\n",
                 load_s, ids.size(), prompt_s > 0 ? static_cast<double>(ids.size()) / prompt_s : 0.0, generated.size(), gen_tps, peak_rss_mb(),
                 K::name, static_cast<int>(P::name.size()), P::name.data(), file_mb, kv_mb, m->net.w().in_place, m->net.w().converted);
  }
  return 0;
}

std::optional<std::string> read_text_file(const std::string& path);  // (defined with perplexity below)

template <class P, class K>
int cmd_chat(const options& o) {
  auto m = load_model<P, K>(o);
  if (!m) return fail(err_text(m.error()));
  // The template: a named built-in, a file, or the model's own.
  std::optional<edgelm::chat_template> tpl;
  if (!o.chat_template.empty()) {
    auto t = edgelm::chat_template::builtin(o.chat_template);
    if (!t) return fail(err_text(t.error()));
    tpl = std::move(*t);
  } else if (!o.chat_template_file.empty()) {
    auto text = read_text_file(o.chat_template_file);
    if (!text) return fail("cannot read " + o.chat_template_file);
    auto t = edgelm::chat_template::parse(*text);
    if (!t) return fail(o.chat_template_file + ": " + err_text(t.error()));
    tpl = std::move(*t);
  } else if (!m->tok.chat_template().empty()) {
    auto t = edgelm::chat_template::parse(m->tok.chat_template());
    if (!t)
      return fail("the model's chat template is not supported: " + err_text(t.error()) + "; use --chat-template NAME (one of: " +
                  edgelm::chat_template::builtin_names() + ")");
    tpl = std::move(*t);
  }
  if (!tpl && o.has_system) return fail("--system needs a chat template: the model has none (use --chat-template NAME)");
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  auto s = edgelm::session<edgelm::model<P, K>>::create(*m, session_opts(o, *eng));
  if (!s) return fail(err_text(s.error()));
  edgelm::generate_options g = o.gen;
  g.max_tokens = static_cast<std::uint32_t>(o.n);
  auto sv = edgelm::validate(g.sampling(), m->config().vocab_size);
  if (!sv) return fail(err_text(sv.error()));
  edgelm::chat_options co;
  co.add_generation_prompt = true;
  if (m->tok.bos()) co.bos_token = m->tok.token_text(m->tok.bos());
  if (m->tok.eos()) co.eos_token = m->tok.token_text(m->tok.eos());

  std::vector<edgelm::chat_message> base, msgs;
  if (o.has_system) base.push_back({"system", o.system});
  msgs = base;
  std::string raw;  // no template: the text so far
  if (!tpl) std::fprintf(stderr, "edgelm chat: the model has no chat template: each line continues the text\n");
  std::fprintf(stderr, "edgelm chat: one turn per line; /reset starts over, /exit (or end of input) ends\n");
  std::uint64_t total_prompt = 0, total_prefilled = 0, total_generated = 0;
  std::string line;
  unsigned turn = 0;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit") break;
    if (line == "/reset") { msgs = base; raw.clear(); std::fprintf(stderr, "(conversation reset)\n"); continue; }
    if (line.empty()) continue;
    ++turn;
    std::string rendered;
    edgelm::result<void> pr;
    for (;;) {  // render; while the conversation does not fit the context, drop its oldest turns
      if (tpl) {
        msgs.push_back({"user", line});
        auto r = tpl->apply(msgs, co);
        msgs.pop_back();
        if (!r) return fail(r.error().where == "raise_exception" ? "the chat template refused the conversation: " + r.error().msg : err_text(r.error()));
        rendered = std::move(*r);
        pr = s->prompt_rendered(rendered);
      } else {
        rendered = raw + line;
        pr = s->prompt(rendered);
      }
      if (pr || pr.error().code != edgelm::errc::context_overflow) break;
      const std::size_t first = base.size();
      if (tpl && msgs.size() >= first + 2) {
        msgs.erase(msgs.begin() + static_cast<std::ptrdiff_t>(first), msgs.begin() + static_cast<std::ptrdiff_t>(first + 2));
      } else if (!tpl && !raw.empty()) {
        raw.clear();
      } else {
        break;
      }
      std::fprintf(stderr, "(context full: the oldest turn was dropped)\n");
    }
    if (!pr) {
      std::fprintf(stderr, "edgelm: error: %s\n", err_text(pr.error()).c_str());
      continue;
    }
    const auto prompt_tokens = static_cast<std::uint32_t>(s->tokens().size());
    const std::uint32_t reused = s->reused_tokens();
    const auto t0 = clock_type::now();
    std::string reply;
    auto r = s->continue_generation(g, [&](std::string_view p) { reply += p; safe_print(p); std::fflush(stdout); return true; });
    if (!r) return fail(err_text(r.error()));
    const double sec = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "[turn %u: prompt %u tokens, %u reused, %u prefilled, %u generated, %.1f tok/s]\n", turn, prompt_tokens, reused,
                 prompt_tokens - reused, r->generated_tokens, sec > 0 ? r->generated_tokens / sec : 0.0);
    total_prompt += prompt_tokens;
    total_prefilled += prompt_tokens - reused;
    total_generated += r->generated_tokens;
    if (tpl) {
      msgs.push_back({"user", line});
      msgs.push_back({"assistant", edgelm::utf8_replace_invalid(reply)});  // (templates take valid UTF-8 only)
    } else {
      raw = rendered + reply + "\n";
    }
  }
  if (turn > 0)
    std::fprintf(stderr, "[chat: %u turns, %" PRIu64 " prompt tokens, %" PRIu64 " prefilled (%.0f%% reused from the KV cache), %" PRIu64 " generated]\n",
                 turn, total_prompt, total_prefilled, total_prompt ? 100.0 * static_cast<double>(total_prompt - total_prefilled) / static_cast<double>(total_prompt) : 0.0,
                 total_generated);
  return 0;
}

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
  const char* p = list.c_str();
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
    if (!*p) break;
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(p, &end, 10);
    if (end == p || errno || v < 0 || static_cast<std::size_t>(v) >= tok->vocab_size())
      return fail("'" + std::string(p).substr(0, 20) + "' is not a token id of this tokenizer (0.." + std::to_string(tok->vocab_size() - 1) + ")");
    ids.push_back(static_cast<std::int32_t>(v));
    p = end;
  }
  const std::string text = tok->decode(ids, o.no_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

template <class P, class K>
int cmd_logits(const options& o) {
  auto m = load_model<P, K>(o);
  if (!m) return fail(err_text(m.error()));
  std::vector<std::int32_t> ids;
  const char* p = o.ids.c_str();
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t') ++p;
    if (!*p) break;
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v >= static_cast<long>(m->config().vocab_size)) return fail("--ids: '" + std::string(p) + "' is not a token id of this model");
    ids.push_back(static_cast<std::int32_t>(v));
    p = end;
  }
  if (ids.empty()) return fail("--ids is empty");
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  edgelm::state_options so;
  so.context = static_cast<std::uint32_t>(o.context);
  so.max_batch = static_cast<std::uint32_t>(o.batch);
  so.kv = o.kv;
  so.all_logits = true;
  so.exec = eng->exec;
  auto st = m->net.make_state(so);
  if (!st) return fail(err_text(st.error()));
  if (ids.size() > st->context) return fail("more ids than the context holds");
  const std::size_t vocab = m->config().vocab_size;
  for (std::size_t pos = 0; pos < ids.size();) {
    const std::size_t b = std::min<std::size_t>(st->max_batch, ids.size() - pos);
    auto logits = m->net.forward(*st, std::span<const std::int32_t>(ids.data() + pos, b), static_cast<std::uint32_t>(pos), edgelm::logits_for::all);
    for (std::size_t t = 0; t < b; ++t) {
      for (std::size_t i = 0; i < vocab; ++i) std::printf(i ? " %.9g" : "%.9g", static_cast<double>(logits[t * vocab + i]));
      std::printf("\n");
    }
    pos += b;
  }
  return 0;
}

int cmd_inspect(const options& o) {
  auto mf = edgelm::read_model_path(o.model);
  if (!mf) return fail(err_text(mf.error()));
  const auto& c = mf->config;
  std::printf("format: %s\n", mf->format == edgelm::file_format::gguf          ? "GGUF"
                               : mf->format == edgelm::file_format::safetensors ? "Hugging Face (safetensors)"
                                                                                : "llama2.c");
  std::printf("architecture: %s\ndim: %u\nhidden_dim: %u\nn_layers: %u\nn_heads: %u\nn_kv_heads: %u\nhead_dim: %u\nvocab_size: %u\n"
              "context_length: %u\nrope_theta: %g\nnorm_eps: %g\nshared_classifier: %s\n",
              c.arch.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size, c.seq_len, c.rope_theta, c.norm_eps,
              c.shared_classifier ? "yes" : "no");
  std::uint64_t total = 0, bytes = 0;
  std::map<std::string, std::size_t> by_type;
  std::printf("tensors: %zu\n", mf->tensors.size());
  for (const auto& t : mf->tensors) {
    std::printf("  %-28s %-6.*s [", t.name.c_str(), static_cast<int>(edgelm::ggml_type_name(t.type).size()), edgelm::ggml_type_name(t.type).data());
    for (std::uint32_t d = 0; d < t.n_dims; ++d) std::printf(d ? ", %" PRIu64 : "%" PRIu64, t.ne[d]);
    std::printf("]  offset %" PRIu64 "  %" PRIu64 " bytes\n", t.offset, t.n_bytes);
    total += t.n_elements();
    bytes += t.n_bytes;
    ++by_type[std::string(edgelm::ggml_type_name(t.type))];
  }
  std::printf("parameters: %" PRIu64 " (%" PRIu64 " bytes of tensor data)\n", total, bytes);
  for (auto& [k, v] : by_type) std::printf("  %zu tensors of type %s\n", v, k.c_str());
  edgelm::tokenizer_data td = mf->tokenizer;
  if (td.pieces.empty() && !o.tokenizer.empty()) {
    auto ts = edgelm::file_storage::open(o.tokenizer);
    if (!ts) return fail(err_text(ts.error()));
    auto t = edgelm::load_tokenizer(ts->bytes(), c.vocab_size);
    if (!t) return fail(err_text(t.error()));
    td = t->data();
  }
  if (td.pieces.empty()) {
    std::printf("tokenizer: none in the file (pass -z TOKENIZER)\n");
  } else {
    std::size_t counts[7] = {};
    for (auto ty : td.types) ++counts[static_cast<int>(ty)];
    const std::string kind = td.model == "gpt2" ? "byte-level BPE (" + std::to_string(td.merges.size()) + " merges, pre-tokenizer " +
                                                      (td.pre.empty() ? std::string("default") : td.pre) + ")"
                                                : std::string("SentencePiece BPE");
    std::printf("tokenizer: %s, %zu tokens (normal %zu, control %zu, byte %zu, unknown %zu, user %zu, unused %zu), "
                "bos %d eos %d unk %d, add_bos %s, max piece %u bytes%s\n",
                kind.c_str(), td.pieces.size(), counts[1], counts[3], counts[6], counts[2], counts[4], counts[5], td.bos_id, td.eos_id, td.unk_id,
                td.add_bos ? "yes" : "no", td.max_token_length, td.chat_template.empty() ? "" : ", chat template");
  }
  return 0;
}

// llama-bench's two tests: pp (a prompt of o.pp tokens from position 0, batched) and tg (o.n single-token
// steps from position 0), each the mean of o.reps timed runs after one untimed warm-up run.
template <class P, class K>
int cmd_bench(const options& o) {
  const auto t0 = clock_type::now();
  auto m = load_model<P, K>(o);
  if (!m) return fail(err_text(m.error()));
  const double load_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
  const long tg = o.n_given ? o.n : 64;
  const auto vocab = m->config().vocab_size;
  // The prompt: BOS, then fixed pseudo-random ids (llama-bench also uses random tokens).
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(o.pp));
  std::uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (std::size_t i = 0; i < prompt.size(); ++i) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    prompt[i] = i == 0 ? std::max(m->tok.bos_id(), 0) : static_cast<std::int32_t>((rng >> 33) % vocab);
  }
  for (long threads : o.threads) {
    auto eng = make_engine(threads);
    if (!eng) return fail(err_text(eng.error()));
    edgelm::state_options so;
    so.context = static_cast<std::uint32_t>(std::max<long>(o.context > 0 ? o.context : o.pp + tg, 1));
    so.max_batch = static_cast<std::uint32_t>(o.batch);
    so.kv = o.kv;
    so.exec = eng->exec;
    auto st = m->net.make_state(so);
    if (!st) return fail(err_text(st.error()));
    if (static_cast<std::size_t>(o.pp + tg) > st->context) return fail("-p + -n exceed the context");
    auto run_pp = [&] {
      for (std::size_t pos = 0; pos < prompt.size();) {
        const std::size_t b = std::min<std::size_t>(st->max_batch, prompt.size() - pos);
        const bool last = pos + b == prompt.size();
        m->net.forward(*st, std::span<const std::int32_t>(prompt.data() + pos, b), static_cast<std::uint32_t>(pos),
                       last ? edgelm::logits_for::last : edgelm::logits_for::none);
        pos += b;
      }
    };
    auto run_tg = [&] {
      std::int32_t tok = std::max(m->tok.bos_id(), 0);
      for (long pos = 0; pos < tg; ++pos) tok = edgelm::argmax(m->net.forward(*st, tok, static_cast<std::uint32_t>(pos)));
    };
    auto mean_s = [&](auto&& f) {
      f();  // warm-up
      double total = 0;
      for (long r = 0; r < o.reps; ++r) {
        const auto a = clock_type::now();
        f();
        total += std::chrono::duration<double>(clock_type::now() - a).count();
      }
      return total / static_cast<double>(o.reps);
    };
    const double pp_s = o.pp > 0 ? mean_s(run_pp) : 0.0;
    const double tg_s = tg > 0 ? mean_s(run_tg) : 0.0;
    const double pp_tps = pp_s > 0 ? static_cast<double>(o.pp) / pp_s : 0.0, tg_tps = tg_s > 0 ? static_cast<double>(tg) / tg_s : 0.0;
    std::string kern = K::name;
    if constexpr (requires { K::target(); }) kern += std::string("/") + K::target();
    if (o.json)
      std::printf("{\"model\":\"%s\",\"threads\":%ld,\"pp\":%ld,\"pp_tok_s\":%.2f,\"tg\":%ld,\"tg_tok_s\":%.2f,\"load_ms\":%.1f,\"peak_rss_mb\":%.1f,"
                  "\"kernels\":\"%s\",\"precision\":\"%.*s\",\"batch\":%u,\"kv_type\":\"%s\",\"state_mb\":%.1f}\n",
                  o.model.c_str(), threads, o.pp, pp_tps, tg, tg_tps, load_ms, peak_rss_mb(), kern.c_str(), static_cast<int>(P::name.size()), P::name.data(),
                  st->max_batch, o.kv == edgelm::kv_type::f16 ? "f16" : "f32", static_cast<double>(st->bytes()) / (1024.0 * 1024.0));
    else
      std::printf("%s  %.*s  %s  threads %ld:  pp%ld %.1f tok/s   tg%ld %.1f tok/s   (load %.0f ms, peak RSS %.1f MB)\n", o.model.c_str(),
                  static_cast<int>(P::name.size()), P::name.data(), kern.c_str(), threads, o.pp, pp_tps, tg, tg_tps, load_ms, peak_rss_mb());
    std::fflush(stdout);
  }
  return 0;
}

std::optional<std::string> read_text_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  std::string s;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) return std::nullopt;
  return s;
}

// llama-perplexity's output: "[1]12.3456,[2]..." then "Final estimate: PPL = X +/- Y" (stdout),
// progress and sizes on stderr.
template <class P, class K>
int cmd_perplexity(const options& o) {
  auto text = read_text_file(o.text_file);
  if (!text) return fail("cannot read '" + o.text_file + "'");
  auto m = load_model<P, K>(o);
  if (!m) return fail(err_text(m.error()));
  edgelm::perplexity_options po;
  po.context = o.context > 0 ? static_cast<std::uint32_t>(o.context) : 512;
  po.max_chunks = static_cast<std::uint32_t>(o.chunks);
  po.batch = static_cast<std::uint32_t>(o.batch);
  auto eng = make_engine(o.threads[0]);
  if (!eng) return fail(err_text(eng.error()));
  po.exec = eng->exec;
  if (po.context > m->config().seq_len)
    std::fprintf(stderr, "edgelm: warning: the model was trained on only %u context tokens (%u specified)\n", m->config().seq_len, po.context);
  const auto t0 = clock_type::now();
  const auto ids = m->tok.encode(*text, m->tok.add_bos());
  std::fprintf(stderr, "edgelm: perplexity: %zu tokens, n_ctx=%u, %s kernels, %.*s weights\n", ids.size(), po.context, K::name,
               static_cast<int>(P::name.size()), P::name.data());
  auto r = edgelm::perplexity(*m, std::span<const std::int32_t>(ids), po, [](std::uint32_t i, double running) {
    std::printf("[%u]%.4lf,", i + 1, running);
    std::fflush(stdout);
    return true;
  });
  if (!r) return fail(err_text(r.error()));
  std::printf("\n");
  if (r->ppl_stderr > 0) std::printf("Final estimate: PPL = %.4lf +/- %.5lf\n", r->ppl, r->ppl_stderr);
  else std::printf("Final estimate: PPL = %.4lf\n", r->ppl);
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::fprintf(stderr, "edgelm: perplexity: %u chunks, %" PRIu64 " tokens scored, %.2f s (%.1f tokens/s evaluated)\n", r->n_chunks, r->count, secs,
               secs > 0 ? static_cast<double>(r->n_chunks) * (po.context - 1) / secs : 0.0);
  return 0;
}

void log_always(void*, edgelm::log_level, std::string_view line) {
  std::fprintf(stderr, "edgelm: %.*s\n", static_cast<int>(line.size()), line.data());
}

int cmd_quantize(const options& o) {
  auto fs = edgelm::file_storage::open(o.in_file);
  if (!fs) return fail(err_text(fs.error()));
  auto mf = edgelm::read_model_file(std::move(*fs));
  if (!mf) return fail(err_text(mf.error()));
  if (!o.tokenizer.empty()) {
    if (mf->format != edgelm::file_format::llama2c) return fail("-z is for llama2.c inputs; a GGUF input keeps its own tokenizer");
    auto ts = edgelm::file_storage::open(o.tokenizer);
    if (!ts) return fail(err_text(ts.error()));
    auto td = edgelm::read_llama2c_tokenizer(ts->bytes(), mf->config.vocab_size);
    if (!td) return fail(err_text(td.error()));
    mf->tokenizer = std::move(*td);
  } else if (mf->format == edgelm::file_format::llama2c) {
    std::fprintf(stderr, "edgelm: warning: no -z TOKENIZER: the output has no tokenizer (llama.cpp will not load it)\n");
  }
  edgelm::quantize_options qo;
  qo.type = o.type == "f32" ? edgelm::ggml_type::f32 : o.type == "f16" ? edgelm::ggml_type::f16 : o.type == "q8_0" ? edgelm::ggml_type::q8_0 : edgelm::ggml_type::q4_0;
  qo.fallback_type = o.fallback == "f32" ? edgelm::ggml_type::f32 : edgelm::ggml_type::f16;
  qo.q4_0_reference = o.q4_0_reference;
  qo.name = o.name;
  qo.log.fn = log_always;  // fallbacks are always reported
  // Write to OUT.tmp and rename, so a failed run never leaves a truncated OUT behind.
  const std::string tmp = o.out_file + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return fail("cannot create '" + tmp + "'");
  const auto t0 = clock_type::now();
  auto r = edgelm::quantize_model(*mf, qo, [&](std::span<const std::byte> b) { return std::fwrite(b.data(), 1, b.size(), f) == b.size(); });
  const bool closed = std::fclose(f) == 0;
  if (!r || !closed) {
    std::remove(tmp.c_str());
    return fail(r ? "write error on '" + tmp + "'" : err_text(r.error()));
  }
  if (std::rename(tmp.c_str(), o.out_file.c_str()) != 0) {
    std::remove(tmp.c_str());
    return fail("cannot rename '" + tmp + "' to '" + o.out_file + "'");
  }
  std::fprintf(stderr, "edgelm: wrote %s: %" PRIu64 " bytes (%.2f MB, from %.2f MB of input tensors) in %.2f s\n", o.out_file.c_str(), r->bytes_out,
               static_cast<double>(r->bytes_out) / 1e6, static_cast<double>(r->bytes_in) / 1e6,
               std::chrono::duration<double>(clock_type::now() - t0).count());
  return 0;
}

// --precision auto: q8_0 / q4_0 when every weight matrix has that type (used in place, zero copy; one
// kernel instantiation), f32 when they are all float (llama2.c files, F32/F16/BF16 GGUFs), else mixed (each
// matrix in its file type: llama-quantize's Q4_K_M, a Q4_0 file whose classifier is Q6_K, ...).
inline std::string auto_precision(const edgelm::model_file& mf) {
  using edgelm::ggml_type;
  if (const auto t = edgelm::uniform_matrix_type(mf)) {
    if (*t == ggml_type::q8_0) return "q8_0";
    if (*t == ggml_type::q4_0) return "q4_0";
  }
  for (const auto& t : mf.tensors)
    if (t.n_dims >= 2 && t.type != ggml_type::f32 && t.type != ggml_type::f16 && t.type != ggml_type::bf16) return "mixed";
  return "f32";
}

template <class P, class K>
int dispatch(const options& o) {
  if (o.command == "run") return cmd_run<P, K>(o);
  if (o.command == "chat") return cmd_chat<P, K>(o);
  if (o.command == "logits") return cmd_logits<P, K>(o);
  if (o.command == "bench") return cmd_bench<P, K>(o);
  if (o.command == "perplexity") return cmd_perplexity<P, K>(o);
  return fail("unknown command");
}

template <class P>
int dispatch_kernels(const options& o) {
  if (o.kernels == "scalar") return dispatch<P, edgelm::kernels::scalar>(o);
#if defined(EDGELM_HAVE_XSIMD)
  if (o.kernels == "xsimd") return dispatch<P, edgelm::backends::xsimd::kernels>(o);
#endif
  return dispatch<P, edgelm::backends::highway::kernels>(o);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "template") return edgelm_cli::cmd_template(argc, argv);  // own options
  options o;
  bool help = false;
  std::string err = parse(argc, argv, o, help);
  if (help) {
    std::fputs(usage_text(o.command).c_str(), stdout);
    return 0;
  }
  if (!err.empty()) return fail(err);
  if (o.command == "tokenize") return cmd_tokenize(o);
  if (o.command == "detokenize") return cmd_detokenize(o);
  if (o.command == "inspect") return cmd_inspect(o);
  if (o.command == "quantize") return cmd_quantize(o);
  std::string precision = o.precision;
  if (precision == "auto") {
    auto mf = edgelm::read_model_path(o.model);
    if (!mf) return fail(err_text(mf.error()));
    precision = auto_precision(*mf);
    o.parsed = std::move(*mf);
  }
  if (precision == "q8_0") return dispatch_kernels<edgelm::q8_0>(o);
  if (precision == "q4_0") return dispatch_kernels<edgelm::q4_0>(o);
  if (precision == "mixed") return dispatch_kernels<edgelm::mixed>(o);
  return dispatch_kernels<edgelm::f32>(o);
}
