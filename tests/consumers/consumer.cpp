// tests/consumers/consumer.cpp - what a downstream project writes: load a GGUF with the Highway
// kernels and generate a few tokens greedily. Shared by the find_package, add_subdirectory and
// FetchContent consumer projects (tests/consumers/*/CMakeLists.txt, driven by tests/consumers/run.sh).
//   consumer MODEL.gguf      (missing model: skip, or failure when EDGELM_REQUIRE_SHARED=1)
#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: consumer MODEL.gguf\n");
    return 2;
  }
  if (std::FILE* f = std::fopen(argv[1], "rb")) {
    std::fclose(f);
  } else {
    const char* req = std::getenv("EDGELM_REQUIRE_SHARED");
    if (req && std::string_view(req) == "1") {
      std::fprintf(stderr, "consumer: FAIL: %s not found\n", argv[1]);
      return 1;
    }
    std::printf("consumer: SKIP: %s not found\n", argv[1]);
    return 0;
  }
  using kernels = edgelm::backends::highway::kernels;
  auto file = edgelm::file_storage::open(argv[1]);
  if (!file) return std::fprintf(stderr, "consumer: %s\n", file.error().message().c_str()), 1;
  auto model = edgelm::load<edgelm::f32, kernels>(std::move(*file));
  if (!model) return std::fprintf(stderr, "consumer: %s\n", model.error().message().c_str()), 1;
  auto chat = edgelm::session<edgelm::model<edgelm::f32, kernels>>::create(*model, {});
  if (!chat) return std::fprintf(stderr, "consumer: %s\n", chat.error().message().c_str()), 1;
  edgelm::generate_options opt;
  opt.max_tokens = 12;
  opt.temperature = 0.0f;
  std::string text = "Once upon a time";
  auto st = chat->generate(text, opt, [&](std::string_view piece) {
    text.append(piece);
    return true;
  });
  if (!st) return std::fprintf(stderr, "consumer: %s\n", st.error().message().c_str()), 1;
  // run.c's greedy continuation (golden/once_upon_a_time_n200.txt) starts like this.
  const std::string_view expected = "Once upon a time, there was a little girl named Lily.";
  if (std::string_view(text).substr(0, expected.size()) != expected) {
    std::fprintf(stderr, "consumer: FAIL: got \"%s\"\n", text.c_str());
    return 1;
  }
  std::printf("consumer: OK: %s\n", text.c_str());
  return 0;
}
