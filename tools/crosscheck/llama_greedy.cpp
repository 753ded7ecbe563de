// tools/crosscheck/llama_greedy.cpp - greedy decoding with llama.cpp's library on token ids (no tokenizer needed):
//   llama_greedy MODEL.gguf N ID ID ...   -> prints the N greedily chosen ids after the prompt ids, space-separated.
// Built and run by tools/crosscheck_llamacpp.sh against the llama.cpp that ../shared/bench/peers.sh builds; it is a
// measuring tool, not part of edgelm (it links llama.cpp, which edgelm never does).
#include <llama.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: llama_greedy MODEL.gguf N ID...\n");
    return 2;
  }
  const int n = std::atoi(argv[2]);
  std::vector<llama_token> ids;
  for (int i = 3; i < argc; ++i) ids.push_back(static_cast<llama_token>(std::atoi(argv[i])));
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) { std::fprintf(stderr, "llama_greedy: cannot load %s\n", argv[1]); return 1; }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(ids.size() + n + 8);
  cp.n_batch = cp.n_ctx;
  cp.n_threads = cp.n_threads_batch = 1;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) { std::fprintf(stderr, "llama_greedy: no context\n"); return 1; }
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));  // (a file without a vocabulary: its vocab_size)
  if (n_vocab <= 0) { std::fprintf(stderr, "llama_greedy: unknown vocabulary size\n"); return 1; }
  llama_batch b = llama_batch_get_one(ids.data(), static_cast<int32_t>(ids.size()));
  for (int step = 0; step < n; ++step) {
    if (llama_decode(ctx, b) != 0) { std::fprintf(stderr, "llama_greedy: decode failed\n"); return 1; }
    const float* l = llama_get_logits_ith(ctx, -1);
    int best = 0;
    for (int i = 1; i < n_vocab; ++i)
      if (l[i] > l[best]) best = i;
    std::printf(step ? " %d" : "%d", best);
    static llama_token t;
    t = best;
    b = llama_batch_get_one(&t, 1);
  }
  std::printf("\n");
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
