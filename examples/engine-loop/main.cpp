// engine-loop - frame-budgeted decoding in a game-style loop.
// A game hands edgelm bytes from its own asset system (memory_storage) and decodes one token per
// frame with session::step(), so a frame never stalls: the loop below runs at a fixed frame rate,
// spends at most a budget per frame on the model, and keeps "rendering" either way.
//
//   engine-loop MODEL.gguf ["prompt"] [frames] [budget_us]
#include <edgelm/backends/highway.hpp>
#include <edgelm/edgelm.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  using clk = std::chrono::steady_clock;
  if (argc < 2) {
    std::fprintf(stderr, "usage: engine-loop MODEL.gguf [\"prompt\"] [frames=120] [budget_us=2000]\n");
    return 1;
  }
  const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
  const int frames = argc > 3 ? std::atoi(argv[3]) : 120;
  const auto budget = std::chrono::microseconds(argc > 4 ? std::atoi(argv[4]) : 2000);
  const auto frame_time = std::chrono::microseconds(16667);  // 60 fps

  // The engine's asset system owns the bytes; here we read the file into memory ourselves.
  std::vector<std::byte> asset;
  if (std::FILE* f = std::fopen(argv[1], "rb")) {
    std::byte buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) asset.insert(asset.end(), buf, buf + n);
    std::fclose(f);
  } else {
    std::fprintf(stderr, "engine-loop: cannot open %s\n", argv[1]);
    return 1;
  }
  using kernels = edgelm::backends::highway::kernels;
  auto model = edgelm::load<edgelm::f32, kernels>(edgelm::memory_storage(std::move(asset)));
  if (!model) {
    std::fprintf(stderr, "engine-loop: %s\n", model.error().message().c_str());
    return 1;
  }
  auto chat = edgelm::session<edgelm::model<edgelm::f32, kernels>>::create(*model, {.context = 0});
  if (!chat) {
    std::fprintf(stderr, "engine-loop: %s\n", chat.error().message().c_str());
    return 1;
  }
  // Queued, not run: the frames below prefill it in budgeted slices (step(budget) returns prefilling = true
  // until the prompt is in), so even a long prompt never stalls a frame.
  if (auto p = chat->begin_prompt(prompt); !p) {
    std::fprintf(stderr, "engine-loop: %s\n", p.error().message().c_str());
    return 1;
  }
  edgelm::sampling_options so;
  so.temperature = 0.8f;
  so.top_p = 0.95f;
  so.seed = 7;
  chat->reset_sampler(so);
  std::printf("%s", prompt.c_str());

  bool done = false;
  int tokens = 0, over_budget = 0, prefill_frames = 0;
  clk::duration worst{};
  for (int frame = 0; frame < frames; ++frame) {
    const auto start = clk::now();
    // Model work: as many single-token steps as fit the budget (at least one per frame).
    while (!done) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(budget - (clk::now() - start));
      auto r = chat->step(std::max(left, std::chrono::microseconds{1}));
      if (!r) { std::fprintf(stderr, "\nengine-loop: %s\n", r.error().message().c_str()); return 1; }
      if (r->prefilling) { ++prefill_frames; break; }  // this frame's budget went to the prompt
      done = r->done;
      if (!done) { std::fwrite(r->piece.data(), 1, r->piece.size(), stdout); ++tokens; }
      if (clk::now() - start >= budget) break;
    }
    std::fflush(stdout);
    const auto spent = clk::now() - start;
    worst = std::max(worst, spent);
    if (spent > budget + std::chrono::microseconds(500)) ++over_budget;
    // ... the game updates and renders here ...
    std::this_thread::sleep_until(start + frame_time);
  }
  std::printf("\n");
  std::fprintf(stderr, "engine-loop: %d frames (%d on the prompt), %d tokens, worst model time per frame %.3f ms, %d frames over budget\n", frames,
               prefill_frames, tokens, std::chrono::duration<double, std::milli>(worst).count(), over_budget);
  return 0;
}
