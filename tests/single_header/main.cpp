// tests/single_header/main.cpp - the single-header contract: built against ONLY single_include/
// with -std=c++20 -Wall -Wextra -Werror -fno-exceptions (see tests/single_header/run.sh), it loads
// stories260K.gguf and must reproduce run.c's greedy text for "Once upon a time" byte for byte.
//
//   single_header_test MODELS_DIR     (MODELS_DIR = <shared>/models)
// Exit: 0 pass (or skip when MODELS_DIR is missing and EDGELM_REQUIRE_SHARED != 1), 1 failure.
#include <edgelm/edgelm.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace {

bool read_text(const std::string& path, std::string& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return true;
}

bool exists(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f) std::fclose(f);
  return f != nullptr;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "single_header: FAIL: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "../shared/models";
  const std::string model_path = dir + "/stories260K.gguf";
  const std::string golden_path = dir + "/golden/once_upon_a_time_n200.txt";
  std::string golden;
  if (!exists(model_path) || !read_text(golden_path, golden)) {
    const char* req = std::getenv("EDGELM_REQUIRE_SHARED");
    if (req && std::string_view(req) == "1") return fail("reference files missing in " + dir);
    std::printf("single_header: SKIP: %s not found\n", model_path.c_str());
    return 0;
  }

  auto file = edgelm::file_storage::open(model_path);
  if (!file) return fail("open: " + file.error().message());
  auto model = edgelm::load<edgelm::f32>(std::move(*file));
  if (!model) return fail("load: " + model.error().message());
  auto chat = edgelm::session<edgelm::model<edgelm::f32>>::create(*model, {});
  if (!chat) return fail("session: " + chat.error().message());

  // run.c prints the prompt, the generated pieces and a final newline; -n 200 counts the 5 prompt
  // positions (BOS + 4 tokens), so 196 new tokens.
  const std::string prompt = "Once upon a time";
  std::string text = prompt;
  edgelm::generate_options opt;
  opt.max_tokens = 196;
  opt.temperature = 0.0f;
  auto stats = chat->generate(prompt, opt, [&](std::string_view piece) {
    text.append(piece);
    return true;
  });
  if (!stats) return fail("generate: " + stats.error().message());
  text += "\n";
  if (text != golden) {
    std::fprintf(stderr, "got:\n%s\nexpected:\n%s\n", text.c_str(), golden.c_str());
    return fail("greedy text differs from run.c's");
  }
  std::printf("single_header: OK (%u prompt tokens, %u generated, %zu bytes of text)\n", stats->prompt_tokens,
              stats->generated_tokens, text.size());
  return 0;
}
