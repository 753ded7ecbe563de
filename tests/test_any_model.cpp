// tests/test_any_model.cpp - the runtime model (any_model.hpp): the file chooses the precision, the caller's list
// the kernels; an any_session generates what llama2.c's run.c generates (../shared/models/golden, greedy) for
// every instantiation it picks, and bad choices are errors.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <cstdio>
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

// ---------------------------------------------------------------------------------------------
// GGUFs split by llama.cpp's gguf-split (formats/gguf.hpp read_gguf_split,
// load.hpp read_model_path on the first part): the parts load as one model, zero copy, and generate what
// llama.cpp generates from the same parts (tests/data/split/README.md says how they and the reference text were
// made); a part alone, missing, repeated or out of order is a clear error.
namespace gsplit {
namespace {

using runtime = edgelm::basic_any_model<edgelm::backends::highway::kernels, edgelm::kernels::scalar>;

std::string part(int i) { return edgelm_test::source_dir() + "/tests/data/split/stories260K-q8_0-0000" + std::to_string(i) + "-of-00003.gguf"; }

std::shared_ptr<edgelm::detail::byte_owner> owner(const std::string& path) {
  const auto b = edgelm_test::read_all(path);
  REQUIRE_MESSAGE(!b.empty(), "missing fixture ", path);
  return edgelm::detail::own_bytes(edgelm::memory_storage::copy(std::as_bytes(std::span(b))));
}

std::string greedy_text(runtime& m, std::size_t n) {
  auto s = edgelm::any_session<runtime>::create(m, {.context = 128});
  REQUIRE(s);
  REQUIRE(s->prompt("Once upon a time"));
  edgelm::sampling_options g;
  g.temperature = 0.0f;
  s->reset_sampler(g);
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < n; ++i) {
    auto r = s->step();
    REQUIRE(r);
    ids.push_back(r->token);
    if (r->done) break;
  }
  return m.tokenizer().decode(ids);
}

// llama-completion's greedy 32 tokens on the same split parts (tests/data/split/README.md)
const std::string llama_cpp_text = ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw";

}  // namespace

TEST_CASE("gguf split: the first part's path loads all three parts; greedy text equals llama.cpp's on the same parts") {
  auto mf = edgelm::read_model_path(part(1));
  REQUIRE_MESSAGE(mf, (mf ? "" : mf.error().message()));
  CHECK(mf->tensors.size() == 48);
  CHECK(mf->config.vocab_size == 512);
  for (std::string kernels : {"highway", "scalar"}) {
    INFO(kernels);
    edgelm::any_load_options o;
    o.kernels = kernels;
    auto mf2 = edgelm::read_model_path(part(1));
    REQUIRE(mf2);
    auto m = edgelm::load_any<runtime>(std::move(*mf2), o);
    REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
    CHECK(m->precision() != "f32");  // the file's types in place in each part's bytes, not converted
    CHECK(greedy_text(*m, 32) == llama_cpp_text);
  }
  // the same from parts in memory
  auto mm = edgelm::read_gguf_split({owner(part(1)), owner(part(2)), owner(part(3))});
  REQUIRE_MESSAGE(mm, (mm ? "" : mm.error().message()));
  auto m = edgelm::load_any<runtime>(std::move(*mm));
  REQUIRE(m);
  CHECK(greedy_text(*m, 32) == llama_cpp_text);
}

TEST_CASE("gguf split: a part alone, a missing part, parts out of order or repeated are errors that say so") {
  auto code = [](const auto& r) { return r ? edgelm::errc::ok : r.error().code; };
  // one part as a whole file
  auto alone = edgelm::read_gguf(owner(part(1)));
  REQUIRE_FALSE(alone);
  CHECK(alone.error().code == edgelm::errc::missing_tensor);
  CHECK(alone.error().message().find("part 1 of a GGUF split into 3") != std::string::npos);
  auto second = edgelm::read_model_path(part(2));  // not the first part: read alone, refused
  REQUIRE_FALSE(second);
  CHECK(second.error().message().find("part 2 of a GGUF split into 3") != std::string::npos);
  // out of order, repeated, too few
  CHECK(code(edgelm::read_gguf_split({owner(part(1)), owner(part(3)), owner(part(2))})) == edgelm::errc::bad_value);
  CHECK(code(edgelm::read_gguf_split({owner(part(1)), owner(part(1)), owner(part(3))})) == edgelm::errc::bad_value);
  CHECK(code(edgelm::read_gguf_split({owner(part(1)), owner(part(2))})) == edgelm::errc::bad_value);
  CHECK(code(edgelm::read_gguf_split({})) == edgelm::errc::invalid_argument);
  CHECK(code(edgelm::read_gguf_split({owner(part(1)), nullptr, owner(part(3))})) == edgelm::errc::invalid_argument);
  // a part missing from the folder
  const auto dir = std::filesystem::temp_directory_path() / "edgelm_split_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (int i : {1, 2}) std::filesystem::copy_file(part(i), dir / std::filesystem::path(part(i)).filename());
  auto missing = edgelm::read_model_path((dir / "stories260K-q8_0-00001-of-00003.gguf").string());
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message().find("part 3 of 3") != std::string::npos);
  // a part that is not a GGUF
  {
    const auto bad = dir / "stories260K-q8_0-00003-of-00003.gguf";
    const std::string html = "<html>404</html>";
    FILE* f = std::fopen(bad.string().c_str(), "wb");
    REQUIRE(f);
    std::fwrite(html.data(), 1, html.size(), f);
    std::fclose(f);
  }
  auto notgguf = edgelm::read_model_path((dir / "stories260K-q8_0-00001-of-00003.gguf").string());
  REQUIRE_FALSE(notgguf);
  CHECK(notgguf.error().message().find("GGUF part 3") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gguf split: the parts end to end in one buffer (the browser's several URLs, or cat) read as one model") {
  auto cat = [](std::initializer_list<int> which) {
    std::vector<std::byte> all;
    for (int i : which) {
      const auto b = edgelm_test::read_all(part(i));
      REQUIRE(!b.empty());
      const auto s = std::as_bytes(std::span(b));
      all.insert(all.end(), s.begin(), s.end());
    }
    return edgelm::memory_storage(std::move(all));
  };
  auto mf = edgelm::read_model_file(cat({1, 2, 3}));
  REQUIRE_MESSAGE(mf, (mf ? "" : mf.error().message()));
  CHECK(mf->tensors.size() == 48);
  auto m = edgelm::load_any<runtime>(std::move(*mf));
  REQUIRE(m);
  CHECK(greedy_text(*m, 32) == llama_cpp_text);

  auto code = [](const auto& r) { return r ? edgelm::errc::ok : r.error().code; };
  CHECK(code(edgelm::read_model_file(cat({1, 3, 2}))) == edgelm::errc::bad_value);   // out of order
  CHECK(code(edgelm::read_model_file(cat({1, 2}))) != edgelm::errc::ok);             // a part short
  CHECK(code(edgelm::read_model_file(cat({1, 2, 3, 3}))) == edgelm::errc::bad_value); // bytes after the last part
  {  // the last part truncated
    const auto b1 = edgelm_test::read_all(part(1)), b2 = edgelm_test::read_all(part(2)), b3 = edgelm_test::read_all(part(3));
    std::vector<std::byte> all;
    for (const auto* b : {&b1, &b2, &b3}) {
      const auto s = std::as_bytes(std::span(*b));
      all.insert(all.end(), s.begin(), s.end());
    }
    all.resize(all.size() - 1000);
    CHECK(code(edgelm::read_model_file(edgelm::memory_storage(std::move(all)))) != edgelm::errc::ok);
  }
}
}  // namespace gsplit
