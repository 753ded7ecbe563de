// tests/test_batch.cpp - the batched forward (model/transformer.hpp), threads (core/executor.hpp,
// core/thread_pool.hpp), state sizing and the session's budgeted prefill:
//  - a batch gives bit-identical logits to the same tokens run one at a time, for every kernel set and
//    precision (f32, q8_0 and q4_0 in place, q8_0 converted with padded 172-wide rows);
//  - logits are bit-identical for 1, 2 and 4 threads and for an injected job system that runs chunks in
//    reverse order;
//  - state sizes are overflow-checked (also as on wasm32) and bounded by max_state_bytes, at session
//    creation, for hostile files too; invalid batch sizes, thread counts and budgets are errors.
// The reference for "identical" is the token-by-token path of phase 1, whose greedy output is checked
// against llama2.c's run.c in test_model.cpp and tests/cli/golden.sh.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <edgelm/backends/highway.hpp>
#include <edgelm/core/thread_pool.hpp>
#include <edgelm/edgelm.hpp>

#include "fuzz/model_builders.hpp"
#include "test_util.hpp"

// Threads: everywhere but a WebAssembly build without pthreads (there the reverse-order job system still
// exercises several workers and chunk orders).
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define EDGELM_TEST_HAVE_THREADS 0
#else
#define EDGELM_TEST_HAVE_THREADS 1
#endif

using namespace edgelm;
using hwy_kernels = edgelm::backends::highway::kernels;

namespace {

template <class P, class K>
model<P, K> load_file(const std::string& path) {
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto m = load<P, K>(std::move(*fs));
  REQUIRE_MESSAGE(m, (m ? "" : m.error().message()));
  return std::move(*m);
}

// A fixed token sequence of length n inside the vocabulary (BOS first).
std::vector<std::int32_t> sequence(std::size_t n, std::uint32_t vocab) {
  std::vector<std::int32_t> v(n);
  std::uint32_t s = 12345;
  for (std::size_t i = 0; i < n; ++i) {
    s = s * 1103515245u + 12345u;
    v[i] = i == 0 ? 1 : static_cast<std::int32_t>((s >> 8) % vocab);
  }
  return v;
}

// Logits of every position, one token per forward.
template <class M>
std::vector<float> one_by_one(const M& m, const std::vector<std::int32_t>& ids) {
  auto st = m.net.make_state(static_cast<std::uint32_t>(ids.size()));
  REQUIRE(st);
  std::vector<float> out;
  for (std::size_t p = 0; p < ids.size(); ++p) {
    auto l = m.net.forward(*st, ids[p], static_cast<std::uint32_t>(p));
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

// Logits of every position, in batches of `batch` with the given executor.
template <class M>
std::vector<float> batched(const M& m, const std::vector<std::int32_t>& ids, std::uint32_t batch, executor ex = {}, kv_type kv = kv_type::f32) {
  state_options o;
  o.context = static_cast<std::uint32_t>(ids.size());
  o.max_batch = batch;
  o.all_logits = true;
  o.exec = ex;
  o.kv = kv;
  auto st = m.net.make_state(o);
  REQUIRE(st);
  std::vector<float> out;
  for (std::size_t p = 0; p < ids.size();) {
    const std::size_t b = std::min<std::size_t>(batch, ids.size() - p);
    std::span<const std::int32_t> span(ids.data() + p, b);
    REQUIRE(m.net.check(*st, span, static_cast<std::uint32_t>(p), logits_for::all));
    auto l = m.net.forward(*st, span, static_cast<std::uint32_t>(p), logits_for::all);
    REQUIRE(l.size() == b * m.config().vocab_size);
    out.insert(out.end(), l.begin(), l.end());
    p += b;
  }
  return out;
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A stand-in for a game engine's job system: runs the chunks of a static partition in reverse order on
// the calling thread, each under its own worker index.
struct reverse_jobs {
  unsigned parts = 3;
  static void run(void* user, std::size_t n, std::size_t grain, executor::task_fn task, void* ctx) noexcept {
    const auto* self = static_cast<const reverse_jobs*>(user);
    for (unsigned w = self->parts; w-- > 0;) {
      const auto [b, e] = static_chunk(n, grain, self->parts, w);
      if (b < e) task(ctx, b, e, w);
    }
  }
  executor get() {
    executor e;
    e.parallel_for = &reverse_jobs::run;
    e.user = this;
    e.concurrency = parts;
    return e;
  }
};

template <class P, class K>
void check_model_file(const std::string& path) {
  INFO(path << " as " << std::string(P::name) << " with " << std::string(K::name) << " kernels");
  const auto m = load_file<P, K>(path);
  const auto ids = sequence(37, m.config().vocab_size);
  const auto ref = one_by_one(m, ids);
  CHECK(bit_identical(batched(m, ids, 37), ref));
  CHECK(bit_identical(batched(m, ids, 16), ref));  // 16 + 16 + 5: batches continue the cache
  CHECK(bit_identical(batched(m, ids, 1), ref));
#if EDGELM_TEST_HAVE_THREADS
  auto p2 = thread_pool::create(2);
  auto p4 = thread_pool::create(4);
  REQUIRE(p2);
  REQUIRE(p4);
  CHECK(bit_identical(batched(m, ids, 16, (*p2)->get_executor()), ref));
  CHECK(bit_identical(batched(m, ids, 7, (*p4)->get_executor()), ref));
#endif
  reverse_jobs rj;
  CHECK(bit_identical(batched(m, ids, 16, rj.get()), ref));
  // An f16 KV cache is close to the f32 one (keys and values rounded to 11 significant bits; measured worst: 2.1% of the largest logit on stories260K q8_0).
  const auto h = batched(m, ids, 16, {}, kv_type::f16);
  REQUIRE(h.size() == ref.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(h[i] - ref[i])));
    scale = std::max(scale, static_cast<double>(std::abs(ref[i])));
  }
  CHECK(worst <= 5e-2 * scale);  // named tolerance: 5% of the largest logit
  CHECK(worst > 0);  // it really ran in f16
}

}  // namespace

TEST_CASE("batch: weights repacked at load by the kernels give the same logits as the file's rows in place") {
  const std::string dir = edgelm_test::source_dir() + "/models/";
  auto both = [&]<class P>(const std::string& path) {
    INFO(path);
    auto fs = file_storage::open(path), fs2 = file_storage::open(path);
    REQUIRE(fs);
    REQUIRE(fs2);
    load_options off;
    off.repack = false;
    auto packed = load<P, hwy_kernels>(std::move(*fs));
    auto plain = load<P, hwy_kernels>(std::move(*fs2), off);
    REQUIRE(packed);
    REQUIRE(plain);
    CHECK(plain->net.w().packed == 0);
    const tensor_info* plain_norm = plain->net.file().find("blk.0.attn_norm.weight");
    REQUIRE(plain_norm);
    CHECK(static_cast<const void*>(plain->net.w().layers[0].attn_norm) == static_cast<const void*>(plain_norm->data));  // zero copy
    // packed on the paths that have a layout of their own (x86 AVX-512 VNNI), all matrices but the embedding
    if (hwy_kernels::packed_bytes(plain->net.w().layers[0].wq.template as<P>()) > 0) {
      const auto& c = packed->config();
      CHECK(packed->net.w().packed == 7 * c.n_layers + (c.shared_classifier ? 0 : 1));
      CHECK(packed->net.w().layers[0].w2.packed != nullptr);
      CHECK(packed->net.w().token_embd.packed == nullptr);
      // while matrices are repacked (their file pages released), the norms are copies: reading one from the
      // file would map its page again (a whole 2 MiB folio where the page cache uses large folios)
      const tensor_info* norm = packed->net.file().find("blk.0.attn_norm.weight");
      REQUIRE(norm);
      CHECK(static_cast<const void*>(packed->net.w().layers[0].attn_norm) != static_cast<const void*>(norm->data));
      CHECK(std::memcmp(packed->net.w().layers[0].attn_norm, norm->data, packed->config().dim * sizeof(float)) == 0);
    } else {
      CHECK(packed->net.w().packed == 0);
    }
    const auto ids = sequence(29, packed->config().vocab_size);
    const auto ref = one_by_one(*plain, ids);
    CHECK(bit_identical(one_by_one(*packed, ids), ref));
    CHECK(bit_identical(batched(*packed, ids, 29), ref));
    CHECK(bit_identical(batched(*packed, ids, 5), ref));
#if EDGELM_TEST_HAVE_THREADS
    auto p2 = thread_pool::create(2);
    REQUIRE(p2);
    CHECK(bit_identical(batched(*packed, ids, 8, (*p2)->get_executor()), ref));
#endif
  };
  both.template operator()<q8_0>(dir + "edgelm-student-q8_0.gguf");
  both.template operator()<q4_0>(dir + "edgelm-student-q4_0.gguf");
}

TEST_CASE_TEMPLATE("batch: batched forward equals token-by-token for any batch size and thread count", K, kernels::scalar, hwy_kernels) {
  const std::string dir = edgelm_test::source_dir() + "/models/";
  check_model_file<f32, K>(dir + "edgelm-student-f32.gguf");
  check_model_file<q8_0, K>(dir + "edgelm-student-q8_0.gguf");  // in place, GQA
  check_model_file<q4_0, K>(dir + "edgelm-student-q4_0.gguf");
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  check_model_file<f32, K>(gguf);
  check_model_file<q8_0, K>(gguf);  // converted: 172-wide rows padded to 192
}

TEST_CASE("batch: logits_for last / none, and check() rejects what forward() cannot take") {
  const auto m = load_file<q8_0, hwy_kernels>(edgelm_test::source_dir() + "/models/edgelm-student-q8_0.gguf");
  const auto ids = sequence(20, m.config().vocab_size);
  const auto ref = one_by_one(m, ids);
  state_options o;
  o.context = 24;
  o.max_batch = 8;
  auto st = m.net.make_state(o);
  REQUIRE(st);
  const std::size_t V = m.config().vocab_size;
  CHECK(m.net.forward(*st, std::span<const std::int32_t>(ids.data(), 8), 0, logits_for::none).empty());
  auto l = m.net.forward(*st, std::span<const std::int32_t>(ids.data() + 8, 8), 8, logits_for::last);
  REQUIRE(l.size() == V);
  CHECK(std::memcmp(l.data(), ref.data() + 15 * V, V * sizeof(float)) == 0);
  auto code = [&](std::span<const std::int32_t> t, std::uint32_t pos, logits_for w) {
    auto r = m.net.check(*st, t, pos, w);
    return r ? errc{} : r.error().code;
  };
  CHECK(code(std::span<const std::int32_t>(ids.data(), 9), 0, logits_for::last) == errc::invalid_argument);  // > max_batch
  CHECK(code(std::span<const std::int32_t>(ids.data(), 8), 17, logits_for::last) == errc::context_overflow);
  CHECK(code(std::span<const std::int32_t>(ids.data(), std::size_t{0}), 0, logits_for::last) == errc::invalid_argument);
  CHECK(code(std::span<const std::int32_t>(ids.data(), 2), 0, logits_for::all) == errc::invalid_argument);  // no all_logits
  const std::int32_t bad[] = {1, static_cast<std::int32_t>(V)};
  CHECK(code(bad, 0, logits_for::last) == errc::invalid_argument);
}

TEST_CASE("batch: state sizes are checked, also as on wasm32, and bounded by max_state_bytes") {
  model_config c;
  c.dim = 4096;
  c.hidden_dim = 11008;
  c.n_layers = 512;
  c.n_heads = 2048;
  c.n_kv_heads = 2048;
  c.head_dim = 2;
  c.vocab_size = 32000;
  c.seq_len = 1 << 20;
  state_options o;
  o.context = 1 << 20;
  // 512 layers x 2^20 positions x 4096 = 2^41 floats per cache: overflows a 32-bit size_t
  auto p32 = plan_state<34, 32>(c, o, 1, 0xFFFFFFFFull);
  REQUIRE_FALSE(p32);
  CHECK(p32.error().code == errc::out_of_memory);
  // natively it is representable but far above the limit
  auto p64 = plan_state<34, 32>(c, o, 1);
  REQUIRE_FALSE(p64);
  CHECK(p64.error().code == errc::out_of_memory);
  if (sizeof(std::size_t) == 8) CHECK(p64.error().message().find("max_state_bytes") != std::string::npos);
  // the default context is min(trained, 4096); a small model fits in both address spaces
  c.n_layers = 2;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_heads = c.n_kv_heads = 8;
  c.head_dim = 8;
  auto small = plan_state<34, 32>(c, state_options{}, 2, 0xFFFFFFFFull);
  REQUIRE(small);
  CHECK(small->context == 4096);
  CHECK(small->kv == std::uint64_t{2} * 4096 * 64);
  CHECK(small->att == 2 * 4096);
  state_options tiny;
  tiny.max_state_bytes = small->bytes - 1;
  CHECK_FALSE(plan_state<34, 32>(c, tiny, 2));
  state_options f16;
  f16.kv = kv_type::f16;
  auto h = plan_state<34, 32>(c, f16, 2);
  REQUIRE(h);
  CHECK(small->bytes - h->bytes == small->kv * 2 * 2);  // two caches, 2 bytes saved per element
  // invalid options
  state_options bad;
  bad.max_batch = 0;
  CHECK(plan_state<34, 32>(c, bad, 1).error().code == errc::invalid_argument);
  bad.max_batch = 70000;
  CHECK(plan_state<34, 32>(c, bad, 1).error().code == errc::invalid_argument);
  CHECK(plan_state<34, 32>(c, state_options{}, 0).error().code == errc::invalid_argument);
  state_options big;
  big.context = static_cast<std::uint32_t>(limits::max_context + 1);
  CHECK(plan_state<34, 32>(c, big, 1).error().code == errc::invalid_argument);
}

TEST_CASE("batch: a hostile file whose KV cache cannot fit is an error at session creation") {
  // 8 layers of kv_dim 512 and a claimed trained context of 2^20: a session over the whole context
  // needs 2 x 8 x 2^20 x 512 x 4 bytes = 32 GiB.
  edgelm_test::tiny_llama p;
  p.dim = 512;
  p.hidden = 64;
  p.layers = 8;
  p.heads = 2;
  p.kv_heads = 2;
  p.context = 1 << 20;
  p.type = 8;  // Q8_0
  auto bytes = edgelm_test::tiny_llama_gguf(p).build();
  auto m = load<q8_0, hwy_kernels>(memory_storage::copy(std::span<const std::byte>(bytes.data(), bytes.size())));
  REQUIRE(m);
  auto s = session<model<q8_0, hwy_kernels>>::create(*m, {.context = 1u << 20});
  REQUIRE_FALSE(s);
  CHECK(s.error().code == errc::out_of_memory);
  // the default context (min(trained, 4096)) works
  auto d = session<model<q8_0, hwy_kernels>>::create(*m);
  REQUIRE(d);
  CHECK(d->context() == 4096);
}

#if !EDGELM_TEST_HAVE_THREADS
TEST_CASE("batch: a WebAssembly build without pthreads says so instead of starting threads") {
  auto p = thread_pool::create(2);
  REQUIRE_FALSE(p);
  CHECK(p.error().code == errc::invalid_argument);
  auto one = thread_pool::create(1);
  REQUIRE(one);
  CHECK_FALSE(static_cast<bool>((*one)->get_executor().parallel_for));
}
#else
TEST_CASE("batch: thread pool and executor") {
  CHECK_FALSE(thread_pool::create(0));
  CHECK_FALSE(thread_pool::create(thread_pool::max_threads + 1));
  auto p = thread_pool::create(3);
  REQUIRE(p);
  CHECK((*p)->threads() == 3);
  // every item exactly once, chunk boundaries multiples of the grain, worker indices below concurrency
  for (std::size_t n : {0u, 1u, 5u, 16u, 17u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    std::atomic<bool> bad{false};
    const executor e = (*p)->get_executor();
    e.for_each(n, 4, [&](std::size_t b, std::size_t end, unsigned w) noexcept {
      if (b % 4 != 0 || w >= e.workers()) bad = true;
      for (std::size_t i = b; i < end; ++i) hits[i]++;
    });
    CHECK_FALSE(bad.load());
    for (auto& h : hits) CHECK(h.load() == 1);
  }
  // a one-thread pool runs inline
  auto one = thread_pool::create(1);
  REQUIRE(one);
  CHECK_FALSE(static_cast<bool>((*one)->get_executor().parallel_for));
}
#endif

TEST_CASE("batch: session prefill under a time budget gives the same tokens as one blocking prefill") {
  const auto m = load_file<q4_0, hwy_kernels>(edgelm_test::source_dir() + "/models/edgelm-student-q4_0.gguf");
  using S = session<model<q4_0, hwy_kernels>>;
  const auto ids = sequence(150, m.config().vocab_size);
  sampling_options greedy;
  greedy.temperature = 0;
  auto a = S::create(m, {.context = 200, .batch = 32});
  REQUIRE(a);
  REQUIRE(a->set_tokens(ids));
  a->reset_sampler(greedy);
  std::vector<std::int32_t> want;
  for (int i = 0; i < 20; ++i) {
    auto r = a->step();
    REQUIRE(r);
    want.push_back(r->token);
  }
  auto b = S::create(m, {.context = 200, .batch = 32});
  REQUIRE(b);
  REQUIRE(b->begin_tokens(ids));
  CHECK(b->pending() == ids.size());
  CHECK(b->logits().empty());
  b->reset_sampler(greedy);
  std::vector<std::int32_t> got;
  int prefill_calls = 0;
  while (got.size() < want.size()) {
    auto r = b->step(std::chrono::microseconds{200});
    REQUIRE(r);
    if (r->prefilling) {
      ++prefill_calls;
      REQUIRE(prefill_calls < 10000);
      continue;
    }
    got.push_back(r->token);
  }
  CHECK(got == want);
  CHECK(prefill_calls >= 2);  // 150 tokens did not fit one 200 us frame
  CHECK(b->prefill(std::chrono::microseconds{-1}).error().code == errc::invalid_argument);
}
