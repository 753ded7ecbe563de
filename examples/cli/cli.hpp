// examples/cli/cli.hpp - what the edgelm commands share: the options every flag of the table (flags.cpp) writes,
// the runtime model type (one edgelm::basic_any_model over the kernels compiled in), and small helpers.
// One file per command: cmd_<name>.cpp defines edgelm_cli::cmd_<name>.
#pragma once
#include <edgelm/any_model.hpp>
#include <edgelm/backends/highway.hpp>
#if defined(EDGELM_HAVE_XSIMD)
#include <edgelm/backends/xsimd.hpp>
#endif
#include <edgelm/core/thread_pool.hpp>
#include <edgelm/edgelm.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgelm_cli {

using clock_type = std::chrono::steady_clock;

// The model of every command that runs one: the precision comes from the file (--precision), the kernels
// from the CPU through the first policy (--kernels names another).
using cli_model = edgelm::basic_any_model<edgelm::backends::highway::kernels,
#if defined(EDGELM_HAVE_XSIMD)
                                          edgelm::backends::xsimd::kernels,
#endif
                                          edgelm::kernels::scalar>;
using cli_session = edgelm::any_session<cli_model>;

// Each instantiation is compiled once, in instances_<precision>.cpp, not in every command that visits the model
// (extern template): four files that build in parallel instead of the whole engine in every command's file.
#define EDGELM_CLI_FOR_KERNELS_SCALAR(X, P) X(P, edgelm::kernels::scalar)
#define EDGELM_CLI_FOR_KERNELS_HWY(X, P) X(P, edgelm::backends::highway::kernels)
#if defined(EDGELM_HAVE_XSIMD)
#define EDGELM_CLI_FOR_KERNELS(X, P) EDGELM_CLI_FOR_KERNELS_HWY(X, P) X(P, edgelm::backends::xsimd::kernels) EDGELM_CLI_FOR_KERNELS_SCALAR(X, P)
#else
#define EDGELM_CLI_FOR_KERNELS(X, P) EDGELM_CLI_FOR_KERNELS_HWY(X, P) EDGELM_CLI_FOR_KERNELS_SCALAR(X, P)
#endif
#define EDGELM_CLI_EXTERN(P, K)                          \
  extern template class edgelm::transformer<P, K>;      \
  extern template class edgelm::session<edgelm::model<P, K>>;
#define EDGELM_CLI_INSTANTIATE(P, K)              \
  template class edgelm::transformer<P, K>;      \
  template class edgelm::session<edgelm::model<P, K>>;
}  // namespace edgelm_cli
#if !defined(EDGELM_CLI_INSTANCES)
EDGELM_CLI_FOR_KERNELS(EDGELM_CLI_EXTERN, edgelm::f32)
EDGELM_CLI_FOR_KERNELS(EDGELM_CLI_EXTERN, edgelm::q8_0)
EDGELM_CLI_FOR_KERNELS(EDGELM_CLI_EXTERN, edgelm::q4_0)
EDGELM_CLI_FOR_KERNELS(EDGELM_CLI_EXTERN, edgelm::mixed)
#endif
namespace edgelm_cli {

struct options {
  std::string command;
  std::string model, tokenizer, prompt, ids, kernels, precision = "auto";
  bool has_prompt = false, print_ids = false, stats = false, verbose = false;
  bool no_special = false;             // tokenize: no BOS/EOS; detokenize: skip special tokens
  std::vector<std::string> id_args;    // detokenize: ids given as arguments
  long n = 256, reps = 3;
  bool n_given = false, json = false;
  long context = 0;
  long batch = 64;                 // prompt tokens per forward pass
  std::vector<long> threads{1};    // -t N (bench: -t 1,2,4)
  edgelm::kv_type kv = edgelm::kv_type::f32;
  long pp = 128;                   // bench: prompt tokens
  edgelm::generate_options gen;
  std::string text_file;           // -f
  long chunks = 0;                 // perplexity
  // quantize
  std::string in_file, out_file, type, fallback = "f16", name;
  bool pure = false, q4_0_reference = false;
  bool repack = true;  // --no-repack
  long logprobs = 0;   // run --logprobs N
  // chat
  std::string system, chat_template, chat_template_file;
  bool has_system = false;
};

// flags.cpp: the flag table, the parser and the --help text generated from it.
// Returns an error message, or empty on success (help: --help was given; command may then be empty).
std::string parse(int argc, char** argv, options& o, bool& help);
std::string usage_text(const std::string& command);

// common.cpp
int fail(const std::string& msg);
void safe_print(std::string_view piece);  // run.c's safe_printf
double peak_rss_mb();
std::optional<std::string> read_text_file(const std::string& path);
std::string err_text(const edgelm::error& e);
// Token ids separated by spaces, commas, tabs or newlines, each < vocab, appended to ids; an error message, or empty.
std::string parse_ids(const std::string& text, std::size_t vocab, std::vector<std::int32_t>& ids);

// Threads of one command: a pool (none for 1 thread) and its executor.
struct engine {
  std::unique_ptr<edgelm::thread_pool> pool;
  edgelm::executor exec;
};
edgelm::result<engine> make_engine(long threads);
edgelm::session_options session_opts(const options& o, const engine& e);
edgelm::state_options state_opts(const options& o, const engine& e);
// The model of -m (a file or a Hugging Face folder) with -z or its own tokenizer; logs the load summary
// (and per-tensor detail with --verbose) to stderr. A folder without tokenizer.json loads for `logits`.
edgelm::result<cli_model> load_model(const options& o);
void log_always(void*, edgelm::log_level, std::string_view line);

// The commands (cmd_<name>.cpp).
int cmd_run(const options& o);
int cmd_chat(const options& o);
int cmd_tokenize(const options& o);
int cmd_detokenize(const options& o);
int cmd_logits(const options& o);
int cmd_inspect(const options& o);
int cmd_bench(const options& o);
int cmd_perplexity(const options& o);
int cmd_quantize(const options& o);
int cmd_template(int argc, char** argv);  // parses its own options

}  // namespace edgelm_cli
