// tests/test_stream.cpp - streamed text (whole UTF-8 characters, stop strings), stop tokens and
// per-token log-probabilities of session::step() / generate().
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <edgelm/backends/highway.hpp>
#include <edgelm/session.hpp>
#include <edgelm/storage/file_storage.hpp>
#include <edgelm/text/chat_template.hpp>
#include <edgelm/text/stream.hpp>

#include "test_util.hpp"

using namespace edgelm;

namespace {

std::string feed_all(text_stream& s, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += s.push(p);
  return out;
}

}  // namespace

TEST_CASE("stream: utf8_complete_prefix holds only a valid incomplete tail") {
  CHECK(utf8_complete_prefix("") == 0);
  CHECK(utf8_complete_prefix("abc") == 3);
  CHECK(utf8_complete_prefix("a\xC3") == 1);              // lead of a 2-byte character
  CHECK(utf8_complete_prefix("a\xC3\xA9") == 3);          // é complete
  CHECK(utf8_complete_prefix("\xF0\x9F\x98") == 0);       // 3 of the 4 bytes of an emoji
  CHECK(utf8_complete_prefix("x\xF0\x9F\x98\x80") == 5);  // the whole emoji
  CHECK(utf8_complete_prefix("\xE2\x82") == 0);           // 2 of 3 (€)
  CHECK(utf8_complete_prefix("\x80\x80") == 2);           // stray continuation bytes are not held
  CHECK(utf8_complete_prefix("a\xFF") == 2);              // invalid bytes are not held
  CHECK(utf8_complete_prefix("a\xC0") == 2);              // an overlong lead is invalid: not held
  CHECK(utf8_complete_prefix("\x80\x80\x80\x80") == 4);
}

TEST_CASE("stream: a character split over tokens comes out whole, once") {
  text_stream s;
  // "héllo 😀!" in byte-sized pieces, as byte-fallback / byte-level tokens deliver it
  const std::string text = "h\xC3\xA9llo \xF0\x9F\x98\x80!";
  std::vector<std::string> released;
  for (char c : text) {
    const auto r = s.push(std::string(1, c));
    if (!r.empty()) released.emplace_back(r);
  }
  std::string joined;
  for (const auto& r : released) {
    CHECK(utf8_complete_prefix(r) == r.size());  // every release ends on a character boundary
    joined += r;
  }
  CHECK(joined == text);
  CHECK(std::find(released.begin(), released.end(), "\xC3\xA9") != released.end());
  CHECK(std::find(released.begin(), released.end(), "\xF0\x9F\x98\x80") != released.end());
  CHECK(s.flush().empty());
  // an incomplete tail at the end is flushed as it is (nothing is lost)
  text_stream t;
  CHECK(t.push("ok\xE2\x82").size() == 2);
  CHECK(t.flush() == "\xE2\x82");
}

TEST_CASE("stream: stop strings end the text before them, across token boundaries") {
  text_stream s;
  s.set_stops({"</s>", "\n\nUser:"});
  CHECK(feed_all(s, {"Hello", " world", "<", "/", "s", ">", " never"}) == "Hello world");
  CHECK(s.stopped());
  CHECK(s.push("more").empty());
  CHECK(s.flush().empty());
  // a partial match that diverges is released in full
  s.set_stops({"</s>"});
  std::string out = feed_all(s, {"a </", "b> c"});
  CHECK_FALSE(s.stopped());
  out += s.flush();
  CHECK(out == "a </b> c");
  // the held prefix is released at the end when the generation stops for another reason
  s.set_stops({"\n\nUser:"});
  out = feed_all(s, {"fine.", "\n\nUs"});
  CHECK(out == "fine.");
  CHECK(s.flush() == "\n\nUs");
  // the earliest of several stops wins, also inside one piece
  s.set_stops({"END", "STOP"});
  CHECK(s.push("xx STOP yy END") == "xx ");
  CHECK(s.stopped());
  // a stop string inside a multi-byte character boundary case
  s.set_stops({"\xC3\xA9t\xC3\xA9"});
  CHECK(feed_all(s, {"l'", "\xC3", "\xA9", "t", "\xC3", "\xA9", " arrive"}) == "l'");
  CHECK(s.stopped());
}

TEST_CASE("stream: session generate() stops at a stop string and a stop token; step() log-probabilities") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto m = load<f32, backends::highway::kernels>(std::move(*fs));
  REQUIRE(m);
  using S = session<model<f32, backends::highway::kernels>>;
  auto s = S::create(*m, {.context = 256});
  REQUIRE(s);
  generate_options g;
  g.temperature = 0;
  g.max_tokens = 60;
  std::string full;
  auto st = s->generate("Once upon a time", g, [&](std::string_view p) { full += p; return true; });
  REQUIRE(st);
  REQUIRE(full.size() > 40);
  // stop at a string from the middle of the greedy text: the reply is what came before it
  const std::string stop = full.substr(full.size() / 2, 6);
  g.stop = {stop};
  std::string cut;
  REQUIRE(s->generate("Once upon a time", g, [&](std::string_view p) { cut += p; return true; }));
  CHECK(cut == full.substr(0, full.find(stop)));
  {
    // The token a stop string ended on is in the conversation but was never run: a prompt that continues
    // the conversation must not take its cache slot as computed. Logits equal a fresh session's.
    auto s2 = S::create(*m, {.context = 256});  // (s ran these positions before, with the same tokens)
    REQUIRE(s2);
    std::string cut2;
    REQUIRE(s2->generate("Once upon a time", g, [&](std::string_view p) { cut2 += p; return true; }));
    CHECK(cut2 == cut);
    std::vector<std::int32_t> more(s2->tokens().begin(), s2->tokens().end());
    const auto tail = m->tok.encode(" The end.", false);
    more.insert(more.end(), tail.begin(), tail.end());
    REQUIRE(s2->set_tokens(more));
    auto fresh = S::create(*m, {.context = 256});
    REQUIRE(fresh);
    REQUIRE(fresh->set_tokens(more));
    REQUIRE(s2->logits().size() == fresh->logits().size());
    CHECK(std::equal(s2->logits().begin(), s2->logits().end(), fresh->logits().begin()));
  }
  // a stop token: the greedy text up to (not including) that token's first occurrence
  g.stop.clear();
  auto ids = m->tok.encode("Once upon a time", true);
  REQUIRE(s->set_tokens(ids));
  sampling_options so;
  so.temperature = 0;
  s->reset_sampler(so);
  s->set_stops({}, {});
  s->set_logprobs(5);
  std::vector<std::int32_t> gen;
  for (int i = 0; i < 12; ++i) {
    auto r = s->step();
    REQUIRE(r);
    if (r->done) break;
    gen.push_back(r->token);
    // log-probabilities: computed here independently in double from the logits the token came from
    REQUIRE(r->top.size() == 5);
    CHECK(r->top[0].token == r->token);  // greedy picks the most likely
    for (std::size_t k = 1; k < r->top.size(); ++k) CHECK(r->top[k - 1].logprob >= r->top[k].logprob);
    CHECK(r->logprob <= 0.0f);
    CHECK(r->logprob == doctest::Approx(r->top[0].logprob));
  }
  REQUIRE(gen.size() >= 6);
  generate_options h;
  h.temperature = 0;
  h.max_tokens = 12;
  h.stop_tokens = {gen[5]};
  const std::size_t first = static_cast<std::size_t>(std::find(gen.begin(), gen.end(), gen[5]) - gen.begin());
  std::string expect;
  {
    std::int32_t prev = ids.back();
    for (std::size_t i = 0; i < first; ++i) {
      expect += m->tok.sentencepiece()->decode(prev, gen[i]);
      prev = gen[i];
    }
  }
  std::string got;
  auto st2 = s->generate("Once upon a time", h, [&](std::string_view p) { got += p; return true; });
  REQUIRE(st2);
  CHECK(got == expect);
  CHECK(st2->generated_tokens == first);
}

TEST_CASE("stream: step() log-probabilities equal a double-precision log-softmax of the logits") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto m = load<f32>(std::move(*fs));
  REQUIRE(m);
  auto s = session<model<f32>>::create(*m, {.context = 64});
  REQUIRE(s);
  REQUIRE(s->set_tokens(m->tok.encode("The dog", true)));
  sampling_options so;
  so.temperature = 1.0f;
  so.seed = 7;
  s->reset_sampler(so);
  s->set_logprobs(3);
  for (int i = 0; i < 5; ++i) {
    const auto lg = s->logits();
    std::vector<float> l(lg.begin(), lg.end());
    auto r = s->step();
    REQUIRE(r);
    if (r->done) break;
    double mx = l[0], sum = 0;
    for (float v : l) mx = std::max(mx, double(v));
    for (float v : l) sum += std::exp(double(v) - mx);
    const double lse = mx + std::log(sum);
    CHECK(r->logprob == doctest::Approx(double(l[r->token]) - lse).epsilon(1e-5));
    std::vector<int> idx(l.size());
    for (std::size_t j = 0; j < idx.size(); ++j) idx[j] = static_cast<int>(j);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return l[a] > l[b]; });
    REQUIRE(r->top.size() == 3);
    for (int k = 0; k < 3; ++k) {
      CHECK(r->top[k].token == idx[k]);
      CHECK(r->top[k].logprob == doctest::Approx(double(l[idx[k]]) - lse).epsilon(1e-5));
    }
  }
}

TEST_CASE("stream: a chat rendered turn by turn reuses the KV cache and replies exactly as a fresh session") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto m = load<f32, backends::highway::kernels>(std::move(*fs));
  REQUIRE(m);
  using S = session<model<f32, backends::highway::kernels>>;
  auto tpl = chat_template::builtin("chatml");
  REQUIRE(tpl);
  auto kept = S::create(*m, {.context = 512});
  REQUIRE(kept);
  generate_options g;
  g.temperature = 0;
  g.max_tokens = 20;
  std::vector<chat_message> msgs{{"system", "Tell short stories."}};
  std::uint32_t before = 0;
  for (const char* user : {"Once upon a time", "What happened next?", "And then?"}) {
    msgs.push_back({"user", user});
    auto text = tpl->apply(msgs, {});
    REQUIRE(text);
    REQUIRE(kept->prompt_rendered(*text));
    CHECK(kept->reused_tokens() == before);  // everything of the earlier turns, prompt and reply
    std::string a;
    auto st = kept->continue_generation(g, [&](std::string_view p) { a += p; return true; });
    REQUIRE(st);
    auto fresh = S::create(*m, {.context = 512});
    REQUIRE(fresh);
    REQUIRE(fresh->prompt_rendered(*text));
    CHECK(fresh->reused_tokens() == 0);
    std::string b;
    REQUIRE(fresh->continue_generation(g, [&](std::string_view p) { b += p; return true; }));
    CHECK(a == b);
    CHECK(kept->tokens() == fresh->tokens());
    before = static_cast<std::uint32_t>(kept->tokens().size());
    msgs.push_back({"assistant", a});
  }
}

TEST_CASE("stream: session clear() forgets the conversation: the next prompt reuses nothing and runs as in a fresh session") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto m = load<f32, backends::highway::kernels>(std::move(*fs));
  REQUIRE(m);
  using S = session<model<f32, backends::highway::kernels>>;
  generate_options g;
  g.temperature = 0;
  g.max_tokens = 24;
  auto s = S::create(*m, {.context = 256});
  REQUIRE(s);
  std::string warm;
  REQUIRE(s->generate("Once upon a time", g, [&](std::string_view p) { warm += p; return true; }));
  s->clear();
  CHECK(s->tokens().empty());
  CHECK(s->logits().empty());
  CHECK_FALSE(s->step());  // no prompt any more
  std::string a;
  REQUIRE(s->generate("Once upon a time", g, [&](std::string_view p) { a += p; return true; }));
  CHECK(s->reused_tokens() == 0);
  auto fresh = S::create(*m, {.context = 256});
  REQUIRE(fresh);
  std::string b;
  REQUIRE(fresh->generate("Once upon a time", g, [&](std::string_view p) { b += p; return true; }));
  CHECK(a == b);
  CHECK(a == warm);
  CHECK(s->tokens() == fresh->tokens());
}
