// tests/test_any_model.cpp - the runtime model (any_model.hpp): the file chooses the precision, the caller's list
// the kernels; an any_session generates what llama2.c's run.c generates (../shared/models/golden, greedy) for
// every instantiation it picks, and bad choices are errors.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include <edgelm/any_model.hpp>
#include <edgelm/backends/highway.hpp>
#include <edgelm/quantize.hpp>

#include "test_util.hpp"

namespace {

using runtime = edgelm::basic_any_model<edgelm::backends::highway::kernels, edgelm::kernels::scalar>;

// llama2.c's greedy ids for "Once upon a time" (golden/once_upon_a_time_n200.ids.txt: generated_ids).
std::vector<std::int32_t> golden_ids(const std::string& path) {
  const auto raw = edgelm_test::read_all(path);
  std::string text(raw.begin(), raw.end());
  const std::string key = "generated_ids:";
  const auto at = text.find(key);
  REQUIRE(at != std::string::npos);
  std::istringstream in(text.substr(at + key.size(), text.find('\n', at) - at - key.size()));
  std::vector<std::int32_t> ids;
  for (std::int32_t v; in >> v;) ids.push_back(v);
  return ids;
}

std::vector<std::int32_t> greedy(runtime& m, std::size_t n) {
  auto s = edgelm::any_session<runtime>::create(m, {.context = 256});
  REQUIRE(s);
  REQUIRE(s->prompt("Once upon a time"));
  edgelm::sampling_options greedy_sampling;
  greedy_sampling.temperature = 0.0f;
  s->reset_sampler(greedy_sampling);
  std::vector<std::int32_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto r = s->step();
    REQUIRE(r);
    out.push_back(r->token);
    if (r->done) break;
  }
  return out;
}

}  // namespace

TEST_CASE("any_model: precision from the file, kernels from the list; greedy output equals llama2.c's") {
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  EDGELM_SHARED_FILE(golden, "golden/once_upon_a_time_n200.ids.txt");
  const auto want = golden_ids(golden);
  REQUIRE(want.size() > 20);
  auto mf = [&] { return edgelm::read_model_file(*edgelm::file_storage::open(gguf)); };

  auto m = edgelm::load_any<runtime>(mf());
  REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
  CHECK(m->precision() == "f32");          // an F32 file
  CHECK(m->kernels() == "highway");        // the list's first
  CHECK(m->kernel_target().rfind("highway/", 0) == 0);
  CHECK(m->config().vocab_size == 512);
  CHECK(m->tokenizer().vocab_size() == 512);
  auto got = greedy(*m, want.size());
  CHECK(got == want);

  edgelm::any_load_options scalar;
  scalar.kernels = "scalar";
  auto ms = edgelm::load_any<runtime>(mf(), scalar);
  REQUIRE(ms);
  CHECK(ms->kernels() == "scalar");
  CHECK(greedy(*ms, want.size()) == want);

  // a uniform Q8_0 file runs as q8_0 in place; --precision mixed runs each matrix in its own type
  edgelm::quantize_options qo;
  qo.type = edgelm::ggml_type::q8_0;
  qo.fallback_type = edgelm::ggml_type::f32;
  auto f = mf();
  REQUIRE(f);
  auto q8 = edgelm::quantize_model_to_bytes(*f, qo);
  REQUIRE(q8);
  auto mq = edgelm::load_any<runtime>(edgelm::read_model_file(edgelm::memory_storage(*q8)));
  REQUIRE(mq);
  CHECK(mq->precision() == (edgelm::uniform_matrix_type(mq->file()) ? "q8_0" : "mixed"));
  CHECK(mq->tensors_converted() == 0);
  edgelm::any_load_options mixed;
  mixed.precision = "mixed";
  auto mm = edgelm::load_any<runtime>(edgelm::read_model_file(edgelm::memory_storage(*q8)), mixed);
  REQUIRE(mm);
  CHECK(mm->precision() == "mixed");
  const auto a = greedy(*mq, 40), b = greedy(*mm, 40);
  CHECK(a == b);  // the same q8_0 kernels either way
  // the typed visit reaches the instantiation
  const bool typed = mm->visit([](auto& model) { return std::is_same_v<typename std::decay_t<decltype(model.net)>::precision_type, edgelm::mixed>; });
  CHECK(typed);
}

TEST_CASE("any_model: unknown kernels or precision, and a missing tokenizer, are errors") {
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  auto mf = [&] { return edgelm::read_model_file(*edgelm::file_storage::open(gguf)); };
  edgelm::any_load_options o;
  o.kernels = "avx9000";
  auto m = edgelm::load_any<runtime>(mf(), o);
  REQUIRE(!m);
  CHECK(m.error().code == edgelm::errc::invalid_argument);
  CHECK(m.error().msg.find("highway|scalar") != std::string::npos);
  edgelm::any_load_options p;
  p.precision = "q3";
  auto n = edgelm::load_any<runtime>(mf(), p);
  REQUIRE(!n);
  CHECK(n.error().code == edgelm::errc::invalid_argument);
  auto bad = edgelm::load_any<runtime>(edgelm::read_model_file(edgelm::memory_storage(std::vector<std::byte>(64, std::byte{'<'}))));
  REQUIRE(!bad);
  CHECK(bad.error().code == edgelm::errc::bad_magic);
  // an id-level model (no tokenizer) still loads and runs ids through a session
  auto f = mf();
  REQUIRE(f);
  auto ids_only = edgelm::load_any<runtime>(std::move(*f), edgelm::text_tokenizer{});
  REQUIRE(ids_only);
  auto s = edgelm::any_session<runtime>::create(*ids_only, {.context = 16});
  REQUIRE(s);
  const std::int32_t prompt[] = {1, 403, 407};
  CHECK(s->set_tokens(prompt));
  CHECK(s->tokens().size() == 3);
  CHECK(s->logits().size() == 512);
}
