// tests/test_formats.cpp - the format readers (formats/gguf.hpp, formats/llama2c.hpp) and the loader's
// tensor checks against valid and hostile input. After llama.cpp's tests/test-gguf.cpp: a tiny valid
// model is built byte by byte (tests/fuzz/model_builders.hpp, shared with the fuzz seed generator),
// then one handcrafted malformed file per failure class asserts its *specific* error code; real
// files, every truncation of a real header and a deterministic mutation sweep must never crash
// (run this under the ASan/UBSan preset; tests/fuzz/ has the libFuzzer targets).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <edgelm/formats/gguf.hpp>
#include <edgelm/formats/llama2c.hpp>
#include <edgelm/load.hpp>
#include <edgelm/precision/q8_0.hpp>
#include <edgelm/storage/storage.hpp>

#include "fuzz/model_builders.hpp"
#include "test_util.hpp"

namespace {

using edgelm::errc;
using namespace edgelm_test;

std::span<const std::byte> sp(const bytes& b) { return {b.data(), b.size()}; }
bytes prefix(const bytes& b, std::size_t n) { return bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)); }

edgelm::result<edgelm::model_file> load_gguf(const bytes& b) {
  return edgelm::read_gguf(edgelm::detail::own_bytes(edgelm::memory_storage::copy(sp(b))));
}
edgelm::result<edgelm::model_file> load_gguf(const gguf_spec& s) { return load_gguf(s.build()); }
edgelm::result<edgelm::model_file> load_llama2c(const bytes& b) {
  return edgelm::read_llama2c(edgelm::detail::own_bytes(edgelm::memory_storage::copy(sp(b))));
}

template <class T>
errc code_of(const edgelm::result<T>& r) {
  return r ? errc::ok : r.error().code;
}
template <class T>
std::string describe(const edgelm::result<T>& r) {
  return r ? std::string("ok") : r.error().message();
}

// Every tensor of a successful parse lies inside the file and points at its own bytes; touching
// the first and last byte lets ASan catch a view that does not.
bool tensors_inside(const std::vector<edgelm::tensor_info>& ts, std::span<const std::byte> file) {
  for (const auto& t : ts) {
    if (t.offset > file.size() || t.n_bytes == 0 || t.n_bytes > file.size() - t.offset) return false;
    if (t.data != file.data() + t.offset) return false;
    volatile std::byte first = t.data[0], last = t.data[t.n_bytes - 1];
    (void)first;
    (void)last;
  }
  return true;
}
// What a successful read_gguf/read_llama2c promises to its loader.
bool model_file_sane(const edgelm::model_file& mf) {
  const auto& c = mf.config;
  if (!tensors_inside(mf.tensors, mf.bytes->bytes())) return false;
  if (c.dim == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.n_layers == 0 || c.vocab_size == 0 || c.seq_len == 0) return false;
  if (c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim * c.n_heads != c.dim) return false;
  if (c.dim > edgelm::limits::max_dim || c.n_layers > edgelm::limits::max_layers || c.vocab_size > edgelm::limits::max_vocab ||
      c.seq_len > edgelm::limits::max_context)
    return false;
  const auto& t = mf.tokenizer;
  if (!t.pieces.empty()) {
    const auto n = static_cast<std::int64_t>(t.pieces.size());
    if (t.pieces.size() != c.vocab_size || t.scores.size() != t.pieces.size() || t.types.size() != t.pieces.size()) return false;
    for (auto id : {t.bos_id, t.eos_id, t.unk_id})
      if (id < 0 || id >= n) return false;
  }
  return true;
}

}  // namespace

// Check that `expr` (a result<T>) failed with exactly `expected`; on mismatch print its message.
#define CHECK_ERRC(expr, expected)                                                  \
  do {                                                                              \
    const auto& errc_r_ = (expr);                                                   \
    INFO("got: " << describe(errc_r_));                                             \
    CHECK(std::string(edgelm::to_string(code_of(errc_r_))) == std::string(edgelm::to_string(expected))); \
  } while (0)
// The same for a GGUF built from a spec, through the full model reader.
#define CHECK_GGUF(spec, expected) CHECK_ERRC(load_gguf(spec), expected)

// =============================================================================================
// GGUF: the valid tiny model

TEST_CASE("gguf: the tiny llama builder makes a valid file that parses completely") {
  const gguf_layout L = tiny_llama_gguf().layout();
  auto g = edgelm::parse_gguf(sp(L.file));
  INFO(describe(g));
  REQUIRE(g);
  CHECK(g->version == 3);
  CHECK(g->alignment == 32);
  CHECK(g->data_offset == L.data_offset);
  CHECK(g->data_offset % 32 == 0);
  REQUIRE(g->tensors.size() == 12);
  CHECK(tensors_inside(g->tensors, sp(L.file)));
  for (std::size_t i = 0; i < g->tensors.size(); ++i) CHECK(g->tensors[i].offset == L.tensor_data_at[i]);

  // Every metadata value type round-trips.
  using edgelm::gguf_type;
  REQUIRE(g->find("general.architecture"));
  CHECK(g->find("general.architecture")->s == "llama");
  CHECK(g->find("llama.attention.head_count_kv")->type == gguf_type::u8);
  CHECK(g->find("llama.attention.head_count_kv")->u == 1);
  CHECK(g->find("test.i8")->i == -3);
  CHECK(g->find("llama.attention.head_count")->u == 2);
  CHECK(g->find("test.i16")->i == -300);
  CHECK(g->find("llama.context_length")->u == 16);
  CHECK(g->find("llama.block_count")->i == 1);
  CHECK(g->find("llama.rope.freq_base")->f == 10000.0);
  CHECK(g->find("test.bool")->u == 1);
  CHECK(g->find("llama.feed_forward_length")->u == 16);
  CHECK(g->find("test.i64")->i == -5000000000LL);
  CHECK(g->find("llama.attention.layer_norm_rms_epsilon")->f == 1e-5);
  CHECK(g->find("test.empty")->size() == 0);
  CHECK(g->find("test.empty")->elem_type == gguf_type::u32);
  const auto* nested = g->find("test.nested");
  REQUIRE(nested);
  REQUIRE(nested->arr.size() == 3);
  CHECK(nested->elem_type == gguf_type::array);
  CHECK(nested->arr[0].size() == 2);
  CHECK(nested->arr[0].at(1).u == 2);
  CHECK(nested->arr[1].arr[0].s == "x");
  CHECK(nested->arr[2].arr[0].at(0).i == -1);
  CHECK(g->find("test.utf8 key \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK(g->find("tokenizer.ggml.tokens")->arr.size() == 8);
}

TEST_CASE("gguf: the tiny llama reads into a model_file") {
  auto mf = load_gguf(tiny_llama_gguf());
  INFO(describe(mf));
  REQUIRE(mf);
  const auto& c = mf->config;
  CHECK(mf->format == edgelm::file_format::gguf);
  CHECK(c.arch == "llama");
  CHECK(c.dim == 8);
  CHECK(c.hidden_dim == 16);
  CHECK(c.n_layers == 1);
  CHECK(c.n_heads == 2);
  CHECK(c.n_kv_heads == 1);
  CHECK(c.head_dim == 4);
  CHECK(c.kv_dim() == 4);
  CHECK(c.vocab_size == 8);
  CHECK(c.seq_len == 16);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.norm_eps == doctest::Approx(1e-5f));
  CHECK_FALSE(c.shared_classifier);
  CHECK(model_file_sane(*mf));
  const auto* q = mf->find("blk.0.attn_k.weight");
  REQUIRE(q);
  CHECK(q->ne[0] == 8);
  CHECK(q->ne[1] == 4);
  CHECK(q->n_bytes == 8 * 4 * 4);
  float w0 = 0;
  std::memcpy(&w0, mf->find("token_embd.weight")->data, 4);
  CHECK(w0 == 0.01f * -8);  // the builder's first weight

  const auto& t = mf->tokenizer;
  REQUIRE(t.pieces.size() == 8);
  CHECK(t.pieces[3] == " a");  // U+2581 became a space
  CHECK(t.pieces[6] == " ab");
  CHECK(t.scores[5] == -5.0f);
  CHECK(t.types[0] == edgelm::token_type::unknown);
  CHECK(t.types[1] == edgelm::token_type::control);
  CHECK(t.types[7] == edgelm::token_type::byte);
  CHECK(t.bos_id == 1);
  CHECK(t.eos_id == 2);
  CHECK(t.unk_id == 0);
  CHECK(t.add_bos);
  CHECK(t.max_token_length == 6);

  auto tok = edgelm::read_gguf_tokenizer(sp(tiny_llama_gguf().build()));
  REQUIRE(tok);
  CHECK(tok->pieces == t.pieces);
}

TEST_CASE("gguf: valid variants") {
  SUBCASE("shared classifier (no output.weight)") {
    auto mf = load_gguf(tiny_llama_gguf({.with_output = false}));
    REQUIRE(mf);
    CHECK(mf->config.shared_classifier);
    CHECK(mf->tensors.size() == 11);
  }
  SUBCASE("no tokenizer") {
    auto s = tiny_llama_gguf({.with_tokenizer = false});
    auto mf = load_gguf(s);
    REQUIRE(mf);
    CHECK(mf->tokenizer.pieces.empty());
    CHECK_ERRC(edgelm::read_gguf_tokenizer(sp(s.build())), errc::bad_tokenizer);
  }
  SUBCASE("GGUF version 2") {
    auto s = tiny_llama_gguf();
    s.version = 2;
    CHECK_GGUF(s, errc::ok);
  }
  SUBCASE("no general.alignment key: default 32") {
    auto s = tiny_llama_gguf();
    s.erase("general.alignment");
    CHECK_GGUF(s, errc::ok);
  }
  SUBCASE("alignment 64, 1 and 1 MiB") {
    for (std::uint32_t a : {64u, 1u, 1u << 20}) {
      auto s = tiny_llama_gguf();
      s.set("general.alignment", g_u32(a));
      s.alignment = a;
      auto mf = load_gguf(s);
      INFO("alignment " << a << ": " << describe(mf));
      REQUIRE(mf);
      for (const auto& t : mf->tensors) CHECK(t.offset % a == 0);
    }
  }
  SUBCASE("alignment as u64 and u8") {
    auto s = tiny_llama_gguf();
    s.set("general.alignment", g_u64(32));
    CHECK_GGUF(s, errc::ok);
    s.set("general.alignment", g_u8(32));
    CHECK_GGUF(s, errc::ok);
  }
  SUBCASE("Q8_0 weights, GQA 4:2, two layers") {
    auto s = tiny_llama_gguf({.dim = 32, .hidden = 64, .layers = 2, .heads = 4, .kv_heads = 2, .type = 8});
    auto mf = load_gguf(s);
    INFO(describe(mf));
    REQUIRE(mf);
    CHECK(mf->tensors.size() == 21);
    const auto* q = mf->find("blk.1.attn_q.weight");
    REQUIRE(q);
    CHECK(q->type == edgelm::ggml_type::q8_0);
    CHECK(q->n_bytes == 32 * 32 / 32 * 34);
    CHECK(model_file_sane(*mf));
  }
  SUBCASE("valid UTF-8 edge code points in keys and tensor names") {
    for (const char* k : {"\xED\x9F\xBF", "\xEE\x80\x80", "\xF4\x8F\xBF\xBF", "\xC2\x80", "\xEF\xBF\xBF"}) {
      auto s = tiny_llama_gguf();
      s.set(std::string("k") + k, g_u8(0));
      s.tensors.push_back({std::string("t") + k, {4}, 0, std::nullopt});
      CHECK_GGUF(s, errc::ok);
    }
  }
  SUBCASE("optional keys absent: head_count_kv, rope, eps, tokenizer ids") {
    auto s = tiny_llama_gguf({.kv_heads = 2});
    for (const char* k : {"llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
                          "llama.rope.dimension_count", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"})
      s.erase(k);
    auto mf = load_gguf(s);
    INFO(describe(mf));
    REQUIRE(mf);
    CHECK(mf->config.n_kv_heads == 2);
    CHECK(mf->tokenizer.bos_id == 1);
  }
  SUBCASE("tokenizer-only GGUF (no architecture, no tensors)") {
    gguf_spec s = tiny_llama_gguf();
    s.tensors.clear();
    s.erase("general.architecture");
    auto tok = edgelm::read_gguf_tokenizer(sp(s.build()));
    INFO(describe(tok));
    REQUIRE(tok);
    CHECK(tok->pieces.size() == 8);
    CHECK_GGUF(s, errc::missing_key);  // but it is not a model
  }
}

// =============================================================================================
// GGUF: one malformed file per error class

TEST_CASE("gguf rejects: bad_magic") {
  for (const char* m : {"GGML", "gguf", "FUGG", "GGJT", "\0\0\0\0"}) {
    auto s = tiny_llama_gguf();
    s.magic = std::string(m, 4);
    auto r = edgelm::parse_gguf(sp(s.build()));
    CHECK_ERRC(r, errc::bad_magic);
    if (!r) CHECK(r.error().offset == 0);
    CHECK_GGUF(s, errc::bad_magic);
  }
}

TEST_CASE("gguf rejects: unsupported_version") {
  for (std::uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    auto s = tiny_llama_gguf();
    s.version = v;
    auto r = edgelm::parse_gguf(sp(s.build()));
    INFO("version " << v);
    CHECK_ERRC(r, errc::unsupported_version);
    if (!r) CHECK(r.error().offset == 4);
  }
}

TEST_CASE("gguf rejects: truncated") {
  const gguf_layout L = tiny_llama_gguf().layout();
  SUBCASE("header: every prefix shorter than the 24-byte header") {
    for (std::size_t n = 0; n < 24; ++n) {
      INFO("prefix " << n);
      CHECK_ERRC(edgelm::parse_gguf(sp(prefix(L.file, n))), errc::truncated);
    }
  }
  SUBCASE("metadata: a scalar value, a type id, a key length, a string length inside an array") {
    // (The cuts leave enough bytes that the header's counts still look plausible.)
    gguf_spec s;
    s.set(std::string(40, 'a'), g_u32(7));
    s.set("b.key", g_u32(7));
    const gguf_layout l = s.layout();
    const bytes& f = l.file;
    CHECK_ERRC(edgelm::parse_gguf(sp(f)), errc::ok);
    // (The builder pads a file to the alignment even without tensors, so cut relative to the fields.)
    for (std::uint64_t n : {l.kv_type_at[1] + 2, l.kv_type_at[1] + 4, l.kv_type_at[1] + 6}) {  // type id, value
      INFO("prefix " << n);
      CHECK_ERRC(edgelm::parse_gguf(sp(prefix(f, n))), errc::truncated);
    }
    CHECK_ERRC(edgelm::parse_gguf(sp(prefix(f, l.kv_at[1] + 3))), errc::truncated);  // inside the key's length
    gguf_spec a;
    a.set("strings", g_strs({"abcdefghijklmnopqrstuvwxyz", "de"}));
    const gguf_layout la = a.layout();
    // Cut inside the second string's length field: the array count still fits the bytes left.
    auto r = edgelm::parse_gguf(sp(prefix(la.file, la.kv_type_at[0] + 4 + 12 + 8 + 26 + 3)));
    CHECK_ERRC(r, errc::truncated);
    if (!r) CHECK(r.error().where == "strings");
  }
  SUBCASE("tensor info: shape, type and offset fields") {
    gguf_spec s;
    const std::string name(40, 'w');
    s.tensors.push_back({name, {4, 2}, 0, std::nullopt});
    const bytes f = s.build();
    REQUIRE(edgelm::parse_gguf(sp(f)));
    const std::size_t info = 24, name_end = info + 8 + name.size();
    for (std::size_t n : {name_end + 2, name_end + 4 + 3, name_end + 4 + 16 + 1, name_end + 4 + 16 + 4 + 7}) {
      INFO("prefix " << n);
      auto r = edgelm::parse_gguf(sp(prefix(f, n)));
      CHECK_ERRC(r, errc::truncated);
      if (!r && n > name_end + 4) CHECK(r.error().where == name);
    }
  }
  SUBCASE("file ends between the tensor infos and the data section") {
    // Vary the name until the infos do not end on the alignment, so there is padding to cut into.
    bool tested = false;
    for (int pad = 0; pad < 32 && !tested; ++pad) {
      auto s = tiny_llama_gguf();
      s.set("general.name", g_str(std::string(static_cast<std::size_t>(pad), 'n')));
      const gguf_layout l = s.layout();
      const std::uint64_t infos_end = l.tensor_offset_at.back() + 8;
      if (infos_end == l.data_offset) continue;
      auto r = edgelm::parse_gguf(sp(prefix(l.file, infos_end)));
      CHECK_ERRC(r, errc::truncated);
      tested = true;
    }
    CHECK(tested);
  }
  SUBCASE("tensor data runs past the end of the file") {
    auto r = edgelm::parse_gguf(sp(prefix(L.file, L.file.size() - 4)));
    CHECK_ERRC(r, errc::truncated);
    if (!r) {
      CHECK(r.error().where == "output.weight");
      CHECK(r.error().offset == L.tensor_data_at.back());
    }
    CHECK_ERRC(load_gguf(prefix(L.file, L.file.size() - 1)), errc::truncated);
  }
}

TEST_CASE("gguf rejects: count_too_large") {
  SUBCASE("tensor count larger than the file") {
    for (std::uint64_t n : {std::uint64_t{1000}, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
      auto s = tiny_llama_gguf();
      s.n_tensors = n;
      auto r = edgelm::parse_gguf(sp(s.build()));
      CHECK_ERRC(r, errc::count_too_large);
      if (!r) CHECK(r.error().offset == 8);
    }
  }
  SUBCASE("metadata count larger than the file") {
    for (std::uint64_t n : {std::uint64_t{1} << 32, ~std::uint64_t{0}}) {
      auto s = tiny_llama_gguf();
      s.n_kv = n;
      auto r = edgelm::parse_gguf(sp(s.build()));
      CHECK_ERRC(r, errc::count_too_large);
      if (!r) CHECK(r.error().offset == 16);
    }
  }
  SUBCASE("array count larger than the bytes left, and count x element size overflowing") {
    for (auto case_ : std::vector<std::pair<std::uint32_t, std::uint64_t>>{
             {gt::u32, 1u << 20}, {gt::u64, ~std::uint64_t{0} / 4}, {gt::string, std::uint64_t{1} << 61},
             {gt::array, std::uint64_t{1} << 62}, {gt::u8, ~std::uint64_t{0}}, {gt::f32, 100000}}) {
      // No structured bindings in these loops: clang 14 (em++) cannot capture them in INFO's lambda.
      const auto& et = case_.first;
      const auto& n = case_.second;
      auto s = tiny_llama_gguf();
      s.set("tokenizer.ggml.scores", g_arr_raw(et, n, {}));
      INFO("elem type " << et << " count " << n);
      auto r = edgelm::parse_gguf(sp(s.build()));
      CHECK_ERRC(r, errc::count_too_large);
      if (!r) CHECK(r.error().where == "tokenizer.ggml.scores");
    }
  }
  SUBCASE("key length, string value length, tensor name length larger than the file") {
    for (std::uint64_t len : {std::uint64_t{1} << 20, std::uint64_t{1} << 62, ~std::uint64_t{0}}) {
      const gguf_layout L = tiny_llama_gguf().layout();
      bytes f = L.file;
      poke(f, L.kv_at[3], len);  // a key's length
      auto r = edgelm::parse_gguf(sp(f));
      CHECK_ERRC(r, errc::count_too_large);
      if (!r) CHECK(r.error().offset == L.kv_at[3]);
      f = L.file;
      poke(f, L.kv_type_at[1] + 4, len);  // general.name's string length
      CHECK_ERRC(edgelm::parse_gguf(sp(f)), errc::count_too_large);
      f = L.file;
      poke(f, L.tensor_at[5], len);  // a tensor name's length
      r = edgelm::parse_gguf(sp(f));
      CHECK_ERRC(r, errc::count_too_large);
      if (!r) CHECK(r.error().offset == L.tensor_at[5]);
    }
  }
  SUBCASE("arrays nested deeper than the limit") {
    gval v = g_arr(gt::u8, {g_u8(1)});
    for (int d = 0; d < 8; ++d) v = g_arr(gt::array, {v});  // 9 levels
    auto s = tiny_llama_gguf();
    s.set("test.deep", v);
    CHECK_GGUF(s, errc::count_too_large);
    gval ok = g_arr(gt::u8, {g_u8(1)});
    for (int d = 0; d < 7; ++d) ok = g_arr(gt::array, {ok});  // 8 levels: allowed
    s.set("test.deep", ok);
    CHECK_GGUF(s, errc::ok);
  }
  SUBCASE("tensor name empty or longer than 256 bytes") {
    auto s = tiny_llama_gguf();
    s.tensors.push_back({std::string(257, 't'), {4}, 0, std::nullopt});
    CHECK_GGUF(s, errc::count_too_large);
    s.tensors.back().name = std::string(256, 't');
    CHECK_GGUF(s, errc::ok);
    s.tensors.back().name = "";
    CHECK_GGUF(s, errc::count_too_large);
  }
}

TEST_CASE("gguf rejects: absurd_dimension") {
  SUBCASE("n_dims 0 and 5") {
    for (std::vector<std::int64_t> ne : {std::vector<std::int64_t>{}, std::vector<std::int64_t>{8, 8, 1, 1, 1}}) {
      auto s = tiny_llama_gguf();
      s.tensor("blk.0.attn_q.weight").ne = ne;
      const gguf_layout L = s.layout();
      auto r = edgelm::parse_gguf(sp(L.file));
      CHECK_ERRC(r, errc::absurd_dimension);
      if (!r) {
        CHECK(r.error().where == "blk.0.attn_q.weight");
        CHECK(r.error().offset == L.tensor_at[2] + 8 + 19);  // its n_dims field
      }
    }
  }
  SUBCASE("a zero dimension") {
    for (std::vector<std::int64_t> ne : {std::vector<std::int64_t>{8, 0}, std::vector<std::int64_t>{0, 8}, std::vector<std::int64_t>{8, 8, 1, 0}}) {
      auto s = tiny_llama_gguf();
      s.tensor("blk.0.attn_q.weight").ne = ne;
      CHECK_GGUF(s, errc::absurd_dimension);
    }
  }
  SUBCASE("hyper-parameters over the named limits") {
    const std::vector<std::pair<const char*, gval>> cases = {
        {"llama.block_count", g_i32(static_cast<std::int32_t>(edgelm::limits::max_layers + 1))},
        {"llama.embedding_length", g_u32(static_cast<std::uint32_t>(edgelm::limits::max_dim + 1))},
        {"llama.feed_forward_length", g_u64(4 * edgelm::limits::max_dim + 1)},
        {"llama.attention.head_count", g_u64(~std::uint64_t{0})},
        {"llama.attention.head_count_kv", g_u32(0xFFFFFFFFu)},
        {"llama.context_length", g_u64(edgelm::limits::max_context + 1)},
        {"llama.rope.dimension_count", g_u64(std::uint64_t{1} << 40)},
    };
    for (const auto& case_ : cases) {
      const auto& k = case_.first;
      const auto& v = case_.second;
      auto s = tiny_llama_gguf();
      s.set(k, v);
      auto r = load_gguf(s);
      INFO(k);
      CHECK_ERRC(r, errc::absurd_dimension);
      if (!r) CHECK(r.error().where == k);
    }
  }
  SUBCASE("vocabulary (token_embd rows) over EDGELM_MAX_VOCAB") {
    auto s = tiny_llama_gguf({.with_tokenizer = false});
    s.tensor("token_embd.weight") = {"token_embd.weight", {1, static_cast<std::int64_t>(edgelm::limits::max_vocab + 1)}, 24, std::nullopt};
    CHECK_GGUF(s, errc::absurd_dimension);
  }
}

TEST_CASE("gguf rejects: negative_size") {
  SUBCASE("negative tensor dimension") {
    for (std::int64_t ne : {std::int64_t{-1}, std::int64_t{-8}, std::numeric_limits<std::int64_t>::min()}) {
      auto s = tiny_llama_gguf();
      s.tensor("blk.0.ffn_up.weight").ne = {8, ne};
      const gguf_layout L = s.layout();
      auto r = edgelm::parse_gguf(sp(L.file));
      CHECK_ERRC(r, errc::negative_size);
      if (!r) {
        CHECK(r.error().where == "blk.0.ffn_up.weight");
        CHECK(r.error().offset == L.tensor_at[9] + 8 + 19 + 4 + 8);  // its ne[1]
      }
    }
  }
  SUBCASE("signed metadata that is a count") {
    for (const char* k : {"llama.block_count", "llama.embedding_length", "llama.context_length", "llama.attention.head_count",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
      for (const gval& v : {g_i32(-1), g_i8(-2), g_i64(std::numeric_limits<std::int64_t>::min())}) {
        auto s = tiny_llama_gguf();
        s.set(k, v);
        auto r = load_gguf(s);
        INFO(k);
        CHECK_ERRC(r, errc::negative_size);
        if (!r) CHECK(r.error().where == k);
      }
    }
  }
}

TEST_CASE("gguf rejects: overflow") {
  // Element count over 2^62 / overflowing 64 bits, and a byte size overflowing 64 bits.
  for (std::vector<std::int64_t> ne : {std::vector<std::int64_t>{std::int64_t{1} << 40, std::int64_t{1} << 40},
                                       std::vector<std::int64_t>{std::int64_t{1} << 31, std::int64_t{1} << 31, 2},
                                       std::vector<std::int64_t>{std::int64_t{1} << 31, std::int64_t{1} << 31},  // 2^62 x 4 B
                                       std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max(), 2},
                                       std::vector<std::int64_t>{65536, 65536, 65536, 65536}}) {
    auto s = tiny_llama_gguf();
    s.tensor("blk.0.attn_v.weight").ne = ne;
    auto r = edgelm::parse_gguf(sp(s.build()));
    CHECK_ERRC(r, errc::overflow);
    if (!r) CHECK(r.error().where == "blk.0.attn_v.weight");
  }
}

TEST_CASE("gguf rejects: unknown_value_type") {
  for (std::uint32_t t : {13u, 14u, 255u, 0x80000009u, 0xFFFFFFFFu}) {
    auto s = tiny_llama_gguf();
    s.set("test.bool", gval{t, {}});
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    INFO("type " << t);
    CHECK_ERRC(r, errc::unknown_value_type);
    if (!r) {
      CHECK(r.error().where == "test.bool");
      CHECK(r.error().offset == L.kv_type_at[15]);
    }
    // The same id as an array's element type.
    s.set("test.bool", g_arr_raw(t, 1, bytes(8)));
    CHECK_ERRC(edgelm::parse_gguf(sp(s.build())), errc::unknown_value_type);
  }
}

TEST_CASE("gguf rejects: unknown_tensor_type") {
  for (std::uint32_t t : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u, 0xFFFFFFFFu}) {
    auto s = tiny_llama_gguf();
    s.tensor("output_norm.weight").type = t;
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    INFO("type " << t);
    CHECK_ERRC(r, errc::unknown_tensor_type);
    if (!r) {
      CHECK(r.error().where == "output_norm.weight");
      CHECK(r.error().offset == L.tensor_offset_at[10] - 4);
    }
  }
}

TEST_CASE("gguf rejects: bad_value") {
  SUBCASE("bool that is neither 0 nor 1") {
    for (std::uint8_t b : {std::uint8_t{2}, std::uint8_t{0x80}, std::uint8_t{0xFF}}) {
      auto s = tiny_llama_gguf();
      s.set("test.bool", g_bool(b));
      auto r = edgelm::parse_gguf(sp(s.build()));
      CHECK_ERRC(r, errc::bad_value);
      if (!r) CHECK(r.error().where == "test.bool");
      s.set("test.bool", g_arr(gt::boolean, {g_bool(0), g_bool(b)}));  // also inside arrays
      CHECK_ERRC(edgelm::parse_gguf(sp(s.build())), errc::bad_value);
    }
  }
  SUBCASE("non-finite token score") {
    for (float f : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
      auto s = tiny_llama_gguf();
      s.set("tokenizer.ggml.scores", g_f32s({0, 0, 0, 0, f, 0, 0, 0}));
      CHECK_GGUF(s, errc::bad_value);
      CHECK_ERRC(edgelm::read_gguf_tokenizer(sp(s.build())), errc::bad_value);
    }
  }
  SUBCASE("non-finite or non-positive rope base / norm epsilon") {
    for (const char* k : {"llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"}) {
      for (const gval& v : {g_f32(std::numeric_limits<float>::quiet_NaN()), g_f64(1e300), g_f32(0.0f), g_f64(-1e-5)}) {
        auto s = tiny_llama_gguf();
        s.set(k, v);
        INFO(k);
        CHECK_GGUF(s, errc::bad_value);
      }
    }
  }
}

TEST_CASE("gguf rejects: offset_out_of_bounds") {
  for (std::uint64_t off : {std::uint64_t{1} << 40, ~std::uint64_t{31}, std::uint64_t{4096}}) {
    auto s = tiny_llama_gguf();
    s.tensor("blk.0.attn_norm.weight").offset = off;
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    CHECK_ERRC(r, errc::offset_out_of_bounds);
    if (!r) CHECK(r.error().where == "blk.0.attn_norm.weight");
  }
  // Exactly at the end of the data section.
  auto s = tiny_llama_gguf();
  gguf_layout L = s.layout();
  s.tensor("output.weight").offset = L.file.size() - L.data_offset;  // data ends on a 32-byte boundary? make it so
  if ((L.file.size() - L.data_offset) % 32 == 0) CHECK_ERRC(edgelm::parse_gguf(sp(s.build())), errc::offset_out_of_bounds);
}

TEST_CASE("gguf rejects: misaligned") {
  for (std::uint64_t off : {std::uint64_t{4}, std::uint64_t{33}, std::uint64_t{1}}) {
    auto s = tiny_llama_gguf();
    s.tensor("blk.0.attn_q.weight").offset = off;
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    CHECK_ERRC(r, errc::misaligned);
    if (!r) {
      CHECK(r.error().where == "blk.0.attn_q.weight");
      CHECK(r.error().offset == L.tensor_offset_at[2]);
    }
  }
  // Aligned for 32 but not for a declared 64.
  auto s = tiny_llama_gguf();
  s.set("general.alignment", g_u32(64));
  s.tensor("token_embd.weight").offset = 32;
  CHECK_GGUF(s, errc::misaligned);
}

TEST_CASE("gguf rejects: bad_alignment") {
  for (std::uint64_t a : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{48}, std::uint64_t{1} << 21, ~std::uint64_t{0},
                          std::uint64_t{1} << 63}) {
    auto s = tiny_llama_gguf();
    s.set("general.alignment", g_u64(a));
    auto r = edgelm::parse_gguf(sp(s.build()));
    INFO("alignment " << a);
    CHECK_ERRC(r, errc::bad_alignment);
    if (!r) CHECK(r.error().where == "general.alignment");
  }
}

TEST_CASE("gguf rejects: duplicate_name") {
  SUBCASE("duplicate metadata key") {
    auto s = tiny_llama_gguf();
    s.kv.emplace_back("llama.embedding_length", g_u32(8));  // same value, still a duplicate
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    CHECK_ERRC(r, errc::duplicate_name);
    if (!r) {
      CHECK(r.error().where == "llama.embedding_length");
      CHECK(r.error().offset == L.kv_at.back());
    }
  }
  SUBCASE("duplicate tensor name") {
    auto s = tiny_llama_gguf();
    s.tensors.push_back(s.tensors[3]);
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    CHECK_ERRC(r, errc::duplicate_name);
    if (!r) {
      CHECK(r.error().where == s.tensors[3].name);
      CHECK(r.error().offset == L.tensor_at.back());
    }
  }
}

TEST_CASE("gguf rejects: invalid_utf8 in keys and tensor names") {
  const std::vector<std::string> bad = {
      std::string("\xC0\x80", 2),     // overlong NUL
      "\xC1\xBF",                     // overlong 2-byte
      "\xE0\x80\xAF",                 // overlong '/'
      "\xF0\x82\x82\xAC",             // overlong euro sign
      "\xED\xA0\x80",                 // surrogate U+D800
      "\xED\xBF\xBF",                 // surrogate U+DFFF
      "\xF4\x90\x80\x80",             // U+110000
      "\xF8\x88\x80\x80\x80",         // 5-byte form
      "\xFF",  "\xFE", "\x80",        // never valid / lone continuation
      "ok\xE2\x82",                   // sequence cut at the end
      "\xE2\x28\xA1",                 // bad continuation byte
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const std::string& b = bad[i];
    INFO("case " << i);
    auto s = tiny_llama_gguf();
    s.set("test." + b, g_u8(0));
    const gguf_layout L = s.layout();
    auto r = edgelm::parse_gguf(sp(L.file));
    CHECK_ERRC(r, errc::invalid_utf8);
    if (!r) CHECK(r.error().offset == L.kv_at.back());

    auto t = tiny_llama_gguf();
    t.tensors.push_back({"blk." + b + ".weight", {4}, 0, std::nullopt});
    const gguf_layout T = t.layout();
    r = edgelm::parse_gguf(sp(T.file));
    CHECK_ERRC(r, errc::invalid_utf8);
    if (!r) CHECK(r.error().offset == T.tensor_at.back());
  }
}

TEST_CASE("gguf rejects: bad_key_type") {
  const std::vector<std::pair<const char*, gval>> cases = {
      {"llama.embedding_length", g_str("8")},
      {"llama.block_count", g_f32(1.0f)},
      {"llama.context_length", g_bool(1)},
      {"llama.attention.head_count", g_arr(gt::u32, {g_u32(2)})},
      {"general.architecture", g_u32(0)},
      {"general.alignment", g_i32(32)},
      {"general.alignment", g_str("32")},
      {"llama.rope.freq_base", g_u32(10000)},
      {"tokenizer.ggml.model", g_u32(1)},
      {"tokenizer.ggml.tokens", g_arr(gt::u32, {g_u32(1), g_u32(2), g_u32(3)})},
      {"tokenizer.ggml.tokens", g_str("abc")},
      {"tokenizer.ggml.scores", g_arr(gt::f64, {g_f64(0), g_f64(0), g_f64(0), g_f64(0), g_f64(0), g_f64(0), g_f64(0), g_f64(0)})},
      {"tokenizer.ggml.token_type", g_strs({"1", "1", "1", "1", "1", "1", "1", "1"})},
      {"tokenizer.ggml.add_bos_token", g_u8(1)},
      {"tokenizer.ggml.bos_token_id", g_f32(1)},
  };
  for (const auto& case_ : cases) {
    const auto& k = case_.first;
    const auto& v = case_.second;
    auto s = tiny_llama_gguf();
    s.set(k, v);
    auto r = load_gguf(s);
    INFO(k);
    CHECK_ERRC(r, errc::bad_key_type);
    if (!r) CHECK(r.error().where == k);
  }
}

TEST_CASE("gguf rejects: missing_key") {
  for (const char* k : {"general.architecture", "llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                        "llama.attention.head_count", "llama.context_length", "tokenizer.ggml.tokens"}) {
    auto s = tiny_llama_gguf();
    s.erase(k);
    auto r = load_gguf(s);
    INFO(k);
    CHECK_ERRC(r, errc::missing_key);
    if (!r) CHECK(r.error().where == k);
  }
  auto s = tiny_llama_gguf();
  s.set("", g_u8(0));  // an empty key
  CHECK_ERRC(edgelm::parse_gguf(sp(s.build())), errc::missing_key);
}

TEST_CASE("gguf rejects: missing_tensor") {
  auto s = tiny_llama_gguf();
  s.erase_tensor("token_embd.weight");
  auto r = load_gguf(s);
  CHECK_ERRC(r, errc::missing_tensor);
  if (!r) CHECK(r.error().where == "token_embd.weight");
}

TEST_CASE("gguf rejects: shape_mismatch") {
  SUBCASE("row not a whole number of quantisation blocks") {
    for (auto case_ : std::vector<std::pair<std::uint32_t, std::int64_t>>{{8, 8}, {2, 48}, {12, 32}, {14, 255}, {39, 31}}) {
      const auto& type = case_.first;
      const auto& ne0 = case_.second;
      auto s = tiny_llama_gguf();
      s.tensor("blk.0.attn_q.weight") = {"blk.0.attn_q.weight", {ne0, 8}, type, std::nullopt};
      const gguf_layout L = s.layout();
      auto r = edgelm::parse_gguf(sp(L.file));
      INFO("type " << type << " ne0 " << ne0);
      CHECK_ERRC(r, errc::shape_mismatch);
      if (!r) {
        CHECK(r.error().where == "blk.0.attn_q.weight");
        CHECK(r.error().offset == L.tensor_at[2]);
      }
    }
  }
  SUBCASE("token embedding not 2-D, vocab_size disagreeing with it") {
    auto s = tiny_llama_gguf();
    s.tensor("token_embd.weight").ne = {8, 8, 1};
    CHECK_GGUF(s, errc::shape_mismatch);
    s.tensor("token_embd.weight").ne = {64};
    CHECK_GGUF(s, errc::shape_mismatch);
    auto v = tiny_llama_gguf();
    v.set("llama.vocab_size", g_u32(9));
    CHECK_GGUF(v, errc::shape_mismatch);
    v.set("llama.vocab_size", g_u32(8));
    CHECK_GGUF(v, errc::ok);
  }
}

TEST_CASE("gguf rejects: bad_config") {
  const std::vector<std::pair<const char*, gval>> cases = {
      {"llama.attention.head_count", g_u32(3)},         // 8 % 3
      {"llama.attention.head_count_kv", g_u32(3)},      // 2 % 3
      {"llama.attention.head_count", g_u32(8)},         // head_dim 1: odd, no RoPE pairs
      {"llama.context_length", g_u32(0)},
      {"llama.attention.head_count_kv", g_u32(0)},
      {"llama.rope.dimension_count", g_u32(2)},
      {"llama.attention.key_length", g_u32(8)},
  };
  for (const auto& case_ : cases) {
    const auto& k = case_.first;
    const auto& v = case_.second;
    auto s = tiny_llama_gguf();
    s.set(k, v);
    INFO(k);
    CHECK_GGUF(s, errc::bad_config);
  }
}

TEST_CASE("gguf rejects: unsupported_architecture") {
  for (const char* a : {"gpt_neox", "falcon", "LLAMA", "llama ", ""}) {
    auto s = tiny_llama_gguf();
    s.set("general.architecture", g_str(a));
    auto r = load_gguf(s);
    CHECK_ERRC(r, errc::unsupported_architecture);
    if (!r) CHECK(r.error().where == "general.architecture");
  }
}

TEST_CASE("gguf rejects: bad_tokenizer") {
  auto tokens = [](std::size_t n) {
    std::vector<std::string> v = tiny_vocab();
    v.resize(n, "x");
    for (std::size_t k = 8; k < n; ++k) v[k] += std::to_string(k);
    return v;
  };
  const std::vector<std::pair<const char*, gval>> cases = {
      {"tokenizer.ggml.tokens", g_strs(tokens(7))},               // 7 tokens, 8-row embedding
      {"tokenizer.ggml.tokens", g_strs(tokens(9))},
      {"tokenizer.ggml.tokens", g_strs(tokens(2))},               // fewer than 3
      {"tokenizer.ggml.scores", g_f32s({0, 0, 0, 0, 0, 0, 0})},   // 7 scores
      {"tokenizer.ggml.token_type", g_i32s({1, 1, 1, 1, 1, 1, 1, 1, 1})},
      {"tokenizer.ggml.token_type", g_i32s({1, 1, 1, 1, 1, 1, 1, 7})},  // unknown token type
      {"tokenizer.ggml.token_type", g_i32s({1, 1, 1, 0, 1, 1, 1, 1})},
      {"tokenizer.ggml.bos_token_id", g_u32(8)},                  // == vocab: out of range
      {"tokenizer.ggml.eos_token_id", g_u64(~std::uint64_t{0})},
      {"tokenizer.ggml.unknown_token_id", g_i32(1000)},
      {"tokenizer.ggml.model", g_str("gpt2")},
      {"tokenizer.ggml.model", g_str("bert")},
  };
  for (const auto& case_ : cases) {
    const auto& k = case_.first;
    const auto& v = case_.second;
    auto s = tiny_llama_gguf();
    s.set(k, v);
    auto r = load_gguf(s);
    INFO(k);
    CHECK_ERRC(r, errc::bad_tokenizer);
    if (!r) CHECK(r.error().where.rfind("tokenizer.ggml.", 0) == 0);
  }
  SUBCASE("a token longer than EDGELM_MAX_TOKEN_BYTES") {
    auto v = tiny_vocab();
    v[5] = std::string(edgelm::limits::max_token_bytes + 1, 'z');
    auto s = tiny_llama_gguf();
    s.set("tokenizer.ggml.tokens", g_strs(v));
    CHECK_GGUF(s, errc::bad_tokenizer);
    CHECK_ERRC(edgelm::read_gguf_tokenizer(sp(s.build())), errc::bad_tokenizer);
    v[5] = std::string(edgelm::limits::max_token_bytes, 'z');
    s.set("tokenizer.ggml.tokens", g_strs(v));
    CHECK_GGUF(s, errc::ok);
  }
}

// =============================================================================================
// llama2.c checkpoints

TEST_CASE("llama2c: valid tiny checkpoints") {
  SUBCASE("shared classifier") {
    const llama2c_header h;
    const bytes f = llama2c_checkpoint(h);
    auto mf = load_llama2c(f);
    INFO(describe(mf));
    REQUIRE(mf);
    const auto& c = mf->config;
    CHECK(mf->format == edgelm::file_format::llama2c);
    CHECK(c.dim == 8);
    CHECK(c.hidden_dim == 16);
    CHECK(c.n_layers == 1);
    CHECK(c.n_heads == 2);
    CHECK(c.n_kv_heads == 1);
    CHECK(c.vocab_size == 8);
    CHECK(c.seq_len == 16);
    CHECK(c.head_dim == 4);
    CHECK(c.shared_classifier);
    CHECK(mf->tensors.size() == 11);
    CHECK_FALSE(mf->find("output.weight"));
    CHECK(model_file_sane(*mf));
    const auto* e = mf->find("token_embd.weight");
    REQUIRE(e);
    CHECK(e->offset == 28);
    CHECK(e->n_bytes == 8 * 8 * 4);
    const auto* k = mf->find("blk.0.attn_k.weight");
    REQUIRE(k);
    CHECK(k->ne[0] == 8);
    CHECK(k->ne[1] == 4);
    // wk follows token_embd, rms_att and wq.
    CHECK(k->offset == 28 + 4 * (64 + 8 + 64));
    const auto* fn = mf->find("output_norm.weight");
    REQUIRE(fn);
    CHECK(fn->offset + fn->n_bytes + 4 * 16 * 4 == f.size());  // then freq_cis (seq x head_size)
  }
  SUBCASE("unshared classifier (negative vocab)") {
    llama2c_header h;
    h.vocab = -8;
    const bytes f = llama2c_checkpoint(h);
    auto mf = load_llama2c(f);
    INFO(describe(mf));
    REQUIRE(mf);
    CHECK_FALSE(mf->config.shared_classifier);
    CHECK(mf->config.vocab_size == 8);
    CHECK(mf->tensors.size() == 12);
    const auto* o = mf->find("output.weight");
    REQUIRE(o);
    CHECK(o->offset + o->n_bytes == f.size());
    CHECK(o->n_bytes == 8 * 8 * 4);
    CHECK(model_file_sane(*mf));
  }
  SUBCASE("two layers, multi-head attention, trailing bytes ignored") {
    const llama2c_header h{16, 40, 2, 4, 4, 10, 8};
    bytes f = llama2c_checkpoint(h);
    f.resize(f.size() + 5);
    auto mf = load_llama2c(f);
    INFO(describe(mf));
    REQUIRE(mf);
    CHECK(mf->tensors.size() == 20);
    CHECK(mf->find("blk.1.ffn_down.weight")->ne[0] == 40);
    CHECK(model_file_sane(*mf));
  }
}

TEST_CASE("llama2c rejects: truncated") {
  const llama2c_header h;
  const bytes f = llama2c_checkpoint(h);
  for (std::size_t n = 0; n < 28; ++n) {
    INFO("prefix " << n);
    CHECK_ERRC(load_llama2c(prefix(f, n)), errc::truncated);
  }
  for (std::size_t n : {std::size_t{28}, std::size_t{32}, f.size() / 2, f.size() - 4, f.size() - 1}) {
    INFO("prefix " << n);
    auto r = load_llama2c(prefix(f, n));
    CHECK_ERRC(r, errc::truncated);
    if (!r) CHECK(r.error().offset == n);
  }
  // Unshared: the classifier itself is missing.
  llama2c_header u;
  u.vocab = -8;
  CHECK_ERRC(load_llama2c(llama2c_checkpoint(u, llama2c_n_floats(h))), errc::truncated);
  // The largest header the limits allow, over a 28-byte file: an error, not a huge allocation.
  const llama2c_header big{65536, 262144, 512, 256, 256, 1048576, 1048576};
  CHECK_ERRC(load_llama2c(llama2c_checkpoint(big, 0)), errc::truncated);
}

TEST_CASE("llama2c rejects: negative_size, absurd_dimension (each header field)") {
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int k = 0; k < 7; ++k) {
    INFO("field " << names[k]);
    for (std::int32_t v : {-1, std::numeric_limits<std::int32_t>::min(), 0, std::numeric_limits<std::int32_t>::max()}) {
      bytes f = llama2c_checkpoint(llama2c_header{});
      poke(f, 4u * k, v);
      const errc want = v > 0 ? errc::absurd_dimension
                        : v == 0 ? errc::absurd_dimension
                        : k == 5 ? errc::absurd_dimension  // -vocab is the unshared flag; INT32_MIN is too large
                                 : errc::negative_size;
      if (k == 5 && v == -1) continue;  // vocab -1 is a valid (unshared) 1-token header
      INFO("value " << v);
      auto r = load_llama2c(f);
      CHECK_ERRC(r, want);
      if (!r) {
        CHECK(r.error().offset == 4u * k);
        CHECK(r.error().where == names[k]);
      }
    }
  }
  // Just over each named limit.
  const std::int32_t over[7] = {65537, 4 * 65536 + 1, 513, 65537, 65537, 1048577, 1048577};
  for (int k = 0; k < 7; ++k) {
    bytes f = llama2c_checkpoint(llama2c_header{});
    poke(f, 4u * k, over[k]);
    INFO("field " << names[k]);
    CHECK_ERRC(load_llama2c(f), errc::absurd_dimension);
  }
}

TEST_CASE("llama2c rejects: bad_config") {
  for (const llama2c_header& h : {llama2c_header{8, 16, 1, 3, 3, 8, 16},    // 8 % 3
                                  llama2c_header{8, 16, 1, 2, 4, 8, 16},    // kv > heads
                                  llama2c_header{8, 16, 1, 4, 3, 8, 16},    // 4 % 3
                                  llama2c_header{6, 16, 1, 2, 2, 8, 16}}) { // head_dim 3: odd
    CHECK_ERRC(load_llama2c(llama2c_checkpoint(h, 0)), errc::bad_config);
  }
}

// =============================================================================================
// llama2.c tokenizer files

TEST_CASE("llama2c tokenizer: valid tiny file") {
  const bytes f = llama2c_tokenizer(6, tiny_llama2c_pieces());
  for (std::uint32_t expected : {0u, 8u}) {
    auto t = edgelm::read_llama2c_tokenizer(sp(f), expected);
    INFO(describe(t));
    REQUIRE(t);
    REQUIRE(t->pieces.size() == 8);
    CHECK(t->max_token_length == 6);
    CHECK(t->pieces[1] == "\n<s>\n");
    CHECK(t->pieces[4] == " a");
    CHECK(t->scores[6] == -3.0f);
    CHECK(t->types[0] == edgelm::token_type::unknown);
    CHECK(t->types[1] == edgelm::token_type::control);
    CHECK(t->types[2] == edgelm::token_type::control);
    CHECK(t->types[3] == edgelm::token_type::byte);
    CHECK(t->types[4] == edgelm::token_type::normal);
    CHECK(t->bos_id == 1);
    CHECK(t->eos_id == 2);
    CHECK(t->unk_id == 0);
  }
  // A model with a smaller vocabulary reads only its tokens (as run.c does).
  auto t = edgelm::read_llama2c_tokenizer(sp(f), 5);
  REQUIRE(t);
  CHECK(t->pieces.size() == 5);
}

TEST_CASE("llama2c tokenizer rejects malformed files") {
  const auto pieces = tiny_llama2c_pieces();
  const bytes f = llama2c_tokenizer(6, pieces);
  SUBCASE("truncated header") {
    for (std::size_t n = 0; n < 4; ++n) CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(prefix(f, n))), errc::truncated);
  }
  SUBCASE("max_token_length negative, zero, over the limit") {
    for (std::int32_t m : {-1, std::numeric_limits<std::int32_t>::min(), 0, 1025, std::numeric_limits<std::int32_t>::max()}) {
      bytes b = f;
      poke(b, 0, m);
      auto r = edgelm::read_llama2c_tokenizer(sp(b));
      INFO("max_token_length " << m);
      CHECK_ERRC(r, m < 0 ? errc::negative_size : errc::bad_tokenizer);
      if (!r) CHECK(r.error().offset == 0);
    }
  }
  SUBCASE("truncated entry: inside the score, the length, the piece") {
    // The last entry " ab" starts at f.size() - 11.
    for (std::size_t cut : {std::size_t{1}, std::size_t{3}, std::size_t{5}, std::size_t{9}, std::size_t{10}}) {
      auto r = edgelm::read_llama2c_tokenizer(sp(prefix(f, f.size() - cut)));
      INFO("cut " << cut);
      CHECK_ERRC(r, errc::truncated);
      if (!r) CHECK(r.error().where == "token 7");
    }
    for (std::size_t n = 4; n < f.size(); ++n)  // every proper prefix fails when the count is known
      CHECK(code_of(edgelm::read_llama2c_tokenizer(sp(prefix(f, n)), 8)) != errc::ok);
  }
  SUBCASE("negative, zero, oversized piece length") {
    const std::uint64_t len_at = f.size() - 11 + 4;
    for (std::int32_t len : {-1, std::numeric_limits<std::int32_t>::min(), 0, 7, 1 << 30}) {
      bytes b = f;
      poke(b, len_at, len);
      auto r = edgelm::read_llama2c_tokenizer(sp(b));
      INFO("len " << len);
      CHECK_ERRC(r, len < 0 ? errc::negative_size : errc::bad_tokenizer);
      if (!r) {
        CHECK(r.error().offset == len_at);
        CHECK(r.error().where == "token 7");
      }
    }
  }
  SUBCASE("non-finite score") {
    for (float s : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
      auto p = pieces;
      p[5].score = s;
      CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(llama2c_tokenizer(6, p))), errc::bad_value);
    }
  }
  SUBCASE("count mismatch with the model's vocabulary") {
    CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(f), 9), errc::bad_tokenizer);
    CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(f), 512), errc::bad_tokenizer);
    CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(llama2c_tokenizer(6, {pieces[0], pieces[1]}))), errc::bad_tokenizer);
    CHECK_ERRC(edgelm::read_llama2c_tokenizer(sp(llama2c_tokenizer(6, {}))), errc::bad_tokenizer);
  }
}

// =============================================================================================
// The loader: read_gguf/read_llama2c check the file; binding the weights checks every tensor's
// shape and type against the config (load.hpp, model/weights.hpp).

TEST_CASE("loader: the tiny models load and run; shapes and types are checked against the config") {
  auto load_f32 = [](const gguf_spec& s) { return edgelm::load<edgelm::f32>(edgelm::memory_storage(s.build())); };
  SUBCASE("tiny GGUF, F32 and Q8_0, runs one position") {
    auto m = load_f32(tiny_llama_gguf());
    INFO(describe(m));
    REQUIRE(m);
    auto st = m->net.make_state(4);
    REQUIRE(st);
    auto logits = m->net.forward(*st, m->tok.bos_id(), 0);
    REQUIRE(logits.size() == 8);
    for (float x : logits) CHECK(std::isfinite(x));
    CHECK(m->tok.encode("b", true) == std::vector<edgelm::tokenizer::token>{1, 4});
    CHECK(m->tok.encode("A", true) == std::vector<edgelm::tokenizer::token>{1, 7});  // byte fallback <0x41>
    const auto q = tiny_llama_gguf({.dim = 32, .hidden = 64, .heads = 4, .kv_heads = 2, .type = 8});
    CHECK_ERRC(load_f32(q), errc::ok);  // converted
    auto mq = edgelm::load<edgelm::q8_0>(edgelm::memory_storage(q.build()));
    INFO(describe(mq));
    REQUIRE(mq);
    CHECK(mq->net.w().converted == 0);  // used in place
  }
  SUBCASE("a tensor whose shape disagrees with the config: shape_mismatch") {
    const std::vector<std::pair<const char*, std::vector<std::int64_t>>> cases = {
        {"blk.0.attn_q.weight", {8, 4}},      {"blk.0.ffn_down.weight", {8, 16}}, {"blk.0.attn_norm.weight", {8, 2}},
        {"token_embd.weight", {16, 8}},       {"output.weight", {8, 9}},          {"output_norm.weight", {4}},
        {"blk.0.attn_k.weight", {8, 8}},      {"blk.0.ffn_up.weight", {8, 16, 2}},
    };
    for (const auto& case_ : cases) {
      const auto& name = case_.first;
      const auto& ne = case_.second;
      auto s = tiny_llama_gguf();
      s.tensor(name).ne = ne;
      INFO(name);
      auto r = load_f32(s);
      CHECK_ERRC(r, errc::shape_mismatch);
      if (!r) CHECK(r.error().where == name);
    }
  }
  SUBCASE("a tensor the config needs is absent: missing_tensor") {
    for (const char* name : {"blk.0.ffn_up.weight", "output_norm.weight", "blk.0.attn_norm.weight"}) {
      auto s = tiny_llama_gguf();
      s.erase_tensor(name);
      auto r = load_f32(s);
      INFO(name);
      CHECK_ERRC(r, errc::missing_tensor);
      if (!r) CHECK(r.error().where == name);
    }
    auto s = tiny_llama_gguf();
    s.set("llama.block_count", g_u32(2));  // metadata promises a layer the file lacks
    CHECK_ERRC(load_f32(s), errc::missing_tensor);
  }
  SUBCASE("a real ggml type this build cannot convert: unsupported_tensor_type") {
    for (std::uint32_t type : {24u, 25u, 26u, 27u, 28u}) {  // I8, I16, I32, I64, F64
      auto s = tiny_llama_gguf();
      s.tensor("blk.0.attn_q.weight").type = type;
      INFO("type " << type);
      CHECK_ERRC(load_f32(s), errc::unsupported_tensor_type);
    }
  }
  SUBCASE("a quantized block with a NaN/Inf scale: bad_value") {
    auto s = tiny_llama_gguf({.dim = 32, .hidden = 64, .heads = 4, .kv_heads = 2, .type = 8});
    const gguf_layout L = s.layout();
    for (std::uint16_t d : {std::uint16_t{0x7E00}, std::uint16_t{0x7C00}, std::uint16_t{0xFC00}}) {
      bytes f = L.file;
      poke(f, L.tensor_data_at[2] + 34, d);  // attn_q's second block scale
      CHECK_ERRC(edgelm::load<edgelm::f32>(edgelm::memory_storage(f)), errc::bad_value);
    }
  }
  SUBCASE("llama2.c checkpoint + tokenizer file") {
    const bytes ck = llama2c_checkpoint(llama2c_header{});
    const bytes tk = llama2c_tokenizer(6, tiny_llama2c_pieces());
    auto m = edgelm::load<edgelm::f32>(edgelm::memory_storage(ck), edgelm::memory_storage(tk));
    INFO(describe(m));
    REQUIRE(m);
    CHECK(m->config().vocab_size == 8);
    CHECK_ERRC(edgelm::load<edgelm::f32>(edgelm::memory_storage(ck)), errc::bad_tokenizer);  // no tokenizer inside
    auto few = tiny_llama2c_pieces();
    few.pop_back();
    CHECK_ERRC(edgelm::load<edgelm::f32>(edgelm::memory_storage(ck), edgelm::memory_storage(llama2c_tokenizer(6, few))),
               errc::bad_tokenizer);
  }
}

// =============================================================================================
// Real files (../shared/models; skipped when absent unless EDGELM_REQUIRE_SHARED=1)

namespace {
bytes read_file(const std::string& path) {
  auto v = edgelm_test::read_all(path);
  bytes b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size());
  return b;
}
void check_stories260k_config(const edgelm::model_config& c) {
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.seq_len == 512);
  CHECK(c.head_dim == 8);
  CHECK(c.kv_dim() == 32);
}
}  // namespace

TEST_CASE("real files: stories260K.gguf") {
  EDGELM_SHARED_FILE(path, "stories260K.gguf");
  const bytes f = read_file(path);
  auto g = edgelm::parse_gguf(sp(f));
  INFO(describe(g));
  REQUIRE(g);
  CHECK(g->version == 3);
  CHECK(g->tensors.size() == 48);
  auto mf = load_gguf(f);
  INFO(describe(mf));
  REQUIRE(mf);
  check_stories260k_config(mf->config);
  CHECK(mf->config.rope_theta == 10000.0f);
  CHECK(mf->config.norm_eps == doctest::Approx(1e-5f));
  CHECK(model_file_sane(*mf));
  CHECK(mf->tokenizer.pieces.size() == 512);
  CHECK(mf->tokenizer.bos_id == 1);
  CHECK(mf->tokenizer.eos_id == 2);
  CHECK(mf->tokenizer.types[3] == edgelm::token_type::byte);
  auto tok = edgelm::read_gguf_tokenizer(sp(f));
  REQUIRE(tok);
  CHECK(tok->pieces == mf->tokenizer.pieces);
}

TEST_CASE("real files: stories260K.bin, tok512.bin, tokenizer.bin") {
  EDGELM_SHARED_FILE(bin, "stories260K.bin");
  EDGELM_SHARED_FILE(tok512, "tok512.bin");
  EDGELM_SHARED_FILE(tok32k, "tokenizer.bin");
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  const bytes f = read_file(bin);
  auto mf = load_llama2c(f);
  INFO(describe(mf));
  REQUIRE(mf);
  check_stories260k_config(mf->config);
  CHECK(mf->config.shared_classifier);
  CHECK(mf->tensors.size() == 47);
  CHECK(model_file_sane(*mf));
  CHECK(f.size() == std::size_t{28} + 264128 * 4);

  // The GGUF conversion holds the same weights, tensor for tensor.
  auto gm = load_gguf(read_file(gguf));
  REQUIRE(gm);
  for (const auto& t : mf->tensors) {
    const auto* o = gm->find(t.name);
    INFO(t.name);
    REQUIRE(o);
    CHECK(o->ne == t.ne);
    REQUIRE(o->n_bytes == t.n_bytes);
    CHECK(std::memcmp(o->data, t.data, t.n_bytes) == 0);
  }

  const bytes t5 = read_file(tok512);
  auto t = edgelm::read_llama2c_tokenizer(sp(t5), 512);
  INFO(describe(t));
  REQUIRE(t);
  CHECK(t->pieces.size() == 512);
  CHECK(t->max_token_length == 7);
  CHECK(t->pieces[1] == "\n<s>\n");
  CHECK(t->pieces[3] == "<0x00>");
  CHECK(t->types[258] == edgelm::token_type::byte);
  CHECK(t->types[259] == edgelm::token_type::normal);
  auto t0 = edgelm::read_llama2c_tokenizer(sp(t5));
  REQUIRE(t0);
  CHECK(t0->pieces.size() == 512);
  // Same pieces as the GGUF's embedded vocabulary, apart from the control tokens' spelling.
  for (std::size_t k = 3; k < 512; ++k) CHECK(t->pieces[k] == gm->tokenizer.pieces[k]);

  const bytes t32 = read_file(tok32k);
  auto big = edgelm::read_llama2c_tokenizer(sp(t32), 32000);
  INFO(describe(big));
  REQUIRE(big);
  CHECK(big->pieces.size() == 32000);
  CHECK(big->max_token_length == 27);
  auto big0 = edgelm::read_llama2c_tokenizer(sp(t32));
  REQUIRE(big0);
  CHECK(big0->pieces.size() == 32000);
}

TEST_CASE("real files: every truncation fails cleanly") {
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  EDGELM_SHARED_FILE(bin, "stories260K.bin");
  EDGELM_SHARED_FILE(tok512, "tok512.bin");
  const bytes f = read_file(gguf);
  auto g = edgelm::parse_gguf(sp(f));
  REQUIRE(g);
  const std::set<errc> allowed = {errc::truncated, errc::count_too_large, errc::offset_out_of_bounds};
  std::vector<std::size_t> cuts;
  for (std::size_t n = 0; n <= 4096 && n < f.size(); ++n) cuts.push_back(n);
  // Inside the metadata beyond 4 KiB, around and inside the data section.
  const std::size_t d = g->data_offset;
  for (std::size_t n : {std::size_t{6000}, std::size_t{9000}, d - 40, d - 1, d, d + 1, d + 4, d + 1000,
                        static_cast<std::size_t>(g->tensors[1].offset), f.size() / 2, f.size() - 4, f.size() - 1})
    if (n < f.size()) cuts.push_back(n);
  int bad = 0;
  for (std::size_t n : cuts) {
    auto p = prefix(f, n);
    auto r = load_gguf(p);
    auto q = edgelm::read_gguf_tokenizer(sp(p));
    if (r || q || !allowed.count(r.error().code) || !allowed.count(q.error().code)) {
      ++bad;
      FAIL_CHECK("prefix " << n << ": " << describe(r) << " / " << describe(q));
    }
  }
  CHECK(bad == 0);

  const bytes b = read_file(bin);
  for (std::size_t n = 0; n <= 4096; ++n) {
    auto r = load_llama2c(prefix(b, n));
    if (code_of(r) != errc::truncated) FAIL_CHECK("llama2c prefix " << n << ": " << describe(r));
  }
  CHECK_ERRC(load_llama2c(prefix(b, b.size() - 1)), errc::truncated);

  const bytes t = read_file(tok512);
  for (std::size_t n = 0; n < t.size(); ++n) {
    auto r = edgelm::read_llama2c_tokenizer(sp(prefix(t, n)), 512);
    if (r) FAIL_CHECK("tokenizer prefix " << n << " read as a whole 512-token vocabulary");
  }
}

// =============================================================================================
// Mutation sweep: no input may crash (errors and successes are both fine). Run under ASan/UBSan.

namespace {
struct xorshift {
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

// Parse `f` every way it can be read; report whether any reader accepted it.
struct sweep_stats {
  int accepted = 0, rejected = 0, insane = 0, loaded = 0;
};
void try_all_gguf(const bytes& f, sweep_stats& st) {
  auto g = edgelm::parse_gguf(sp(f));
  if (g && !tensors_inside(g->tensors, sp(f))) ++st.insane;
  auto mf = load_gguf(f);
  if (mf && !model_file_sane(*mf)) ++st.insane;
  auto tok = edgelm::read_gguf_tokenizer(sp(f));
  if (tok && (tok->pieces.size() < 3 || tok->bos_id < 0 || static_cast<std::size_t>(tok->bos_id) >= tok->pieces.size())) ++st.insane;
  (mf ? st.accepted : st.rejected)++;
  if (!mf) return;
  // The whole pipeline: bind the weights, build the tokenizer, run one position.
  if (auto m = edgelm::load<edgelm::f32>(edgelm::memory_storage::borrow(sp(f)))) {
    ++st.loaded;
    auto ids = m->tok.encode("ab c", true);
    for (auto id : ids)
      if (id < 0 || static_cast<std::size_t>(id) >= m->config().vocab_size) ++st.insane;
    if (auto s = m->net.make_state(2)) {
      if (m->net.forward(*s, ids[0], 0).size() != m->config().vocab_size) ++st.insane;
    }
  }
}
}  // namespace

TEST_CASE("mutation sweep: tiny GGUF, every header byte x several values, random multi-byte edits") {
  const gguf_layout L = tiny_llama_gguf().layout();
  const bytes& base = L.file;
  sweep_stats st;
  for (std::size_t p = 0; p < base.size(); ++p) {
    const auto b = static_cast<unsigned char>(base[p]);
    const bool header = p < L.data_offset;
    if (!header && p % 7 != 0) continue;  // the weights: a sample is enough
    for (unsigned v : {0x00u, 0x01u, 0x7Fu, 0x80u, 0xFFu, b ^ 0x01u, b ^ 0x80u, (b + 1) & 0xFFu, (b + 0xFFu) & 0xFFu}) {
      if (v == b) continue;
      bytes f = base;
      f[p] = std::byte(static_cast<unsigned char>(v));
      try_all_gguf(f, st);
    }
  }
  // Several bytes at once, 64-bit interesting values over counts/lengths/offsets, and truncation.
  xorshift rng;
  const std::uint64_t interesting[] = {0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, std::uint64_t{1} << 32,
                                       std::uint64_t{1} << 62, std::uint64_t{1} << 63, ~std::uint64_t{0}, ~std::uint64_t{0} - 31};
  for (int it = 0; it < 4000; ++it) {
    bytes f = base;
    const int edits = 1 + static_cast<int>(rng.below(4));
    for (int e = 0; e < edits; ++e) {
      const std::size_t p = rng.below(L.data_offset);
      if (rng.below(2) && p + 8 <= f.size()) poke(f, p, interesting[rng.below(std::size(interesting))] >> (8 * rng.below(4)));
      else f[p] = std::byte(static_cast<unsigned char>(rng.next()));
    }
    if (rng.below(4) == 0) f.resize(rng.below(f.size() + 1));
    try_all_gguf(f, st);
  }
  MESSAGE("gguf mutations: " << st.accepted << " accepted (" << st.loaded << " loaded and ran), " << st.rejected << " rejected");
  CHECK(st.insane == 0);
  CHECK(st.rejected > 0);
  CHECK(st.accepted > 0);  // many edits (weights, names, scores) are harmless
}

TEST_CASE("mutation sweep: llama2.c checkpoint header and tokenizer") {
  int accepted = 0, insane = 0;
  const bytes ck = llama2c_checkpoint(llama2c_header{16, 40, 2, 4, 2, -10, 8});
  for (std::size_t p = 0; p < 28; ++p) {
    for (unsigned v = 0; v < 256; ++v) {
      bytes f = ck;
      f[p] = std::byte(static_cast<unsigned char>(v));
      auto r = load_llama2c(f);
      if (r) {
        ++accepted;
        if (!model_file_sane(*r)) ++insane;
      }
    }
  }
  CHECK(accepted > 0);
  const bytes tk = llama2c_tokenizer(6, tiny_llama2c_pieces());
  for (std::size_t p = 0; p < tk.size(); ++p) {
    for (unsigned v : {0x00u, 0x01u, 0x06u, 0x7Fu, 0x80u, 0xFFu, static_cast<unsigned>(tk[p]) ^ 0x40u}) {
      bytes f = tk;
      f[p] = std::byte(static_cast<unsigned char>(v));
      for (std::uint32_t expected : {0u, 8u}) {
        auto r = edgelm::read_llama2c_tokenizer(sp(f), expected);
        if (r && (r->pieces.size() < 3 || r->pieces.size() != r->scores.size() || r->pieces.size() != r->types.size() ||
                  (expected && r->pieces.size() != expected)))
          ++insane;
        if (r)
          for (const auto& piece : r->pieces)
            if (piece.empty() || piece.size() > r->max_token_length) ++insane;
      }
    }
  }
  CHECK(insane == 0);
}

TEST_CASE("gguf: metadata arrays beyond EDGELM_MAX_METADATA_VALUES are refused before allocating") {
  // One key holding a u8 array of max_metadata_values + 1 elements: every byte is present, but the
  // parsed values would take ~100x the file's size in memory.
  std::vector<std::byte> f;
  auto put = [&](const void* p, std::size_t n) { auto b = static_cast<const std::byte*>(p); f.insert(f.end(), b, b + n); };
  auto u32 = [&](std::uint32_t v) { put(&v, 4); };
  auto u64 = [&](std::uint64_t v) { put(&v, 8); };
  put("GGUF", 4);
  u32(3);
  u64(0);  // tensors
  u64(1);  // kv
  const std::string key = "x.big";
  u64(key.size());
  put(key.data(), key.size());
  u32(9);  // array
  u32(0);  // of u8
  const std::uint64_t n = edgelm::limits::max_metadata_values + 1;
  u64(n);
  f.resize(f.size() + n, std::byte{1});
  auto r = edgelm::parse_gguf(f);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == edgelm::errc::count_too_large);
  CHECK(r.error().where == "x.big");
}

TEST_CASE("llama2c: a vocabulary of fewer than 3 tokens is refused (fuzz finding: accepted, then unloadable)") {
  for (std::int32_t vocab : {1, 2, -1, -2}) {
    CAPTURE(vocab);
    const std::int32_t h[7] = {8, 16, 1, 2, 1, vocab, 16};
    std::vector<std::byte> f(reinterpret_cast<const std::byte*>(h), reinterpret_cast<const std::byte*>(h) + sizeof h);
    f.resize(f.size() + 65536, std::byte{0});
    auto r = edgelm::read_llama2c(edgelm::detail::own_bytes(edgelm::memory_storage(std::move(f))));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == edgelm::errc::absurd_dimension);
    CHECK(r.error().where == "vocab_size");
  }
}
