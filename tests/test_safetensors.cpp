// tests/test_safetensors.cpp - format detection by content (formats/detect.hpp, read_model_file) and the
// safetensors reader (formats/safetensors.hpp): valid files, then one hostile file per failure class.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <edgelm/formats/detect.hpp>
#include <edgelm/formats/safetensors.hpp>
#include <edgelm/load.hpp>

#include "fuzz/model_builders.hpp"
#include "test_util.hpp"

namespace {

using edgelm::errc;
using namespace edgelm_test;

std::span<const std::byte> view(const bytes& b) { return {b.data(), b.size()}; }

template <class T>
std::string outcome(const edgelm::result<T>& r) {
  return r ? std::string("ok") : r.error().message();
}
template <class T>
errc code(const edgelm::result<T>& r) {
  return r ? errc::ok : r.error().code;
}

edgelm::result<edgelm::safetensors_file> parse(const bytes& b) { return edgelm::parse_safetensors(view(b)); }
edgelm::result<edgelm::safetensors_file> parse_header(std::string_view header, std::size_t data_bytes = 0) {
  return edgelm::parse_safetensors(view(safetensors_raw(header, bytes(data_bytes, std::byte{0}))));
}

}  // namespace

#define CHECK_CODE(expr, expected)                                                                                     \
  do {                                                                                                                 \
    const auto& code_r_ = (expr);                                                                                      \
    INFO("got: " << outcome(code_r_));                                                                                 \
    CHECK(std::string(edgelm::to_string(code(code_r_))) == std::string(edgelm::to_string(expected)));                  \
  } while (0)

// =============================================================================================
// detection

TEST_CASE("detect: GGUF, safetensors, llama2.c by content; anything else is bad_magic") {
  using edgelm::file_format;
  const bytes gguf = tiny_llama_gguf().build();
  const bytes st = safetensors_file({{"w", "F32", {2}, st_values("F32", 2, [](auto i) { return float(i); })}});
  const bytes l2c = llama2c_checkpoint(llama2c_header{});
  CHECK(*edgelm::detect_format(view(gguf)) == file_format::gguf);
  CHECK(*edgelm::detect_format(view(st)) == file_format::safetensors);
  CHECK(*edgelm::detect_format(view(l2c)) == file_format::llama2c);
  // a llama2.c header cut short, or with one field out of range, is no longer recognised
  CHECK_CODE(edgelm::detect_format(view(bytes(l2c.begin(), l2c.begin() + 27))), errc::bad_magic);
  bytes l2c_bad = l2c;
  poke<std::int32_t>(l2c_bad, 0, 0x3c21444f);  // "<!DO" as a dim
  CHECK_CODE(edgelm::detect_format(view(l2c_bad)), errc::bad_magic);

  const bytes html = to_bytes("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n");
  const bytes json = to_bytes(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 576, "model_type": "llama"})");
  bytes random_bytes(4096);
  std::mt19937 rng(7);
  for (auto& b : random_bytes) b = std::byte(static_cast<unsigned char>(rng()));
  for (const bytes* b : {&html, &json, static_cast<const bytes*>(&random_bytes)}) {
    auto r = edgelm::detect_format(view(*b));
    CHECK_CODE(r, errc::bad_magic);
  }
  CHECK(edgelm::detect_format(view(html)).error().msg.find("<!DOCTYPE html>") != std::string::npos);
  CHECK_CODE(edgelm::detect_format({}), errc::bad_magic);
  // header length that does not fit the file: not safetensors (and not anything else)
  bytes st_big = st;
  poke<std::uint64_t>(st_big, 0, st.size());
  CHECK_CODE(edgelm::detect_format(view(st_big)), errc::bad_magic);
}

TEST_CASE("read_model_file: unknown bytes are bad_magic, a lone safetensors file asks for its config.json") {
  const bytes html = to_bytes("<html><body>502 Bad Gateway</body></html>");
  CHECK_CODE(edgelm::read_model_file(edgelm::memory_storage(html)), errc::bad_magic);
  CHECK_CODE(edgelm::read_model_file(edgelm::memory_storage(bytes{})), errc::bad_magic);
  const bytes st = safetensors_file(tiny_hf_tensors({}));
  auto r = edgelm::read_model_file(edgelm::memory_storage(st));
  CHECK_CODE(r, errc::missing_key);
  CHECK(r.error().where == "config.json");
  // GGUF and llama2.c still go to their readers (their own errors, not bad_magic)
  CHECK(edgelm::read_model_file(edgelm::memory_storage(tiny_llama_gguf().build())));
  CHECK(edgelm::read_model_file(edgelm::memory_storage(llama2c_checkpoint(llama2c_header{}))));
  const bytes l2c = llama2c_checkpoint(llama2c_header{});
  CHECK_CODE(edgelm::read_model_file(edgelm::memory_storage(bytes(l2c.begin(), l2c.begin() + 100))), errc::truncated);
}

// =============================================================================================
// safetensors: valid files

TEST_CASE("safetensors: F32 / F16 / BF16 tensors become views with GGUF-order shapes") {
  const bytes f = safetensors_file({{"a.weight", "F32", {3, 2}, st_values("F32", 6, [](auto i) { return float(i) + 0.5f; })},
                                    {"b", "F16", {4}, st_values("F16", 4, [](auto i) { return float(i + 1); })},
                                    {"c", "BF16", {2, 1, 3}, st_values("BF16", 6, [](auto i) { return -float(i + 1); })},
                                    {"scalar", "F32", {}, st_values("F32", 1, [](auto) { return 7.0f; })}},
                                   R"({"format": "pt", "note": "caf\u00e9"})");
  auto r = parse(f);
  REQUIRE_MESSAGE(r, outcome(r));
  REQUIRE(r->tensors.size() == 4);
  const auto& a = r->tensors[0];
  CHECK(a.name == "a.weight");
  CHECK(a.type == edgelm::ggml_type::f32);
  CHECK(a.n_dims == 2);
  CHECK(a.ne[0] == 2);  // columns: the contiguous dimension
  CHECK(a.ne[1] == 3);
  CHECK(a.n_bytes == 24);
  CHECK(a.offset == r->data_offset);
  CHECK(a.data == f.data() + a.offset);
  float v;
  std::memcpy(&v, a.data + 4 * 3, 4);  // row 1, column 1 -> element 3
  CHECK(v == 3.5f);
  CHECK(r->tensors[1].type == edgelm::ggml_type::f16);
  CHECK(r->tensors[1].offset == a.offset + 24);
  const auto& c = r->tensors[2];
  CHECK(c.type == edgelm::ggml_type::bf16);
  CHECK(c.n_dims == 3);
  CHECK(c.ne[0] == 3);
  CHECK(c.ne[1] == 1);
  CHECK(c.ne[2] == 2);
  CHECK(r->tensors[3].n_dims == 0);
  CHECK(r->tensors[3].n_elements() == 1);
  REQUIRE(r->metadata.size() == 2);
  CHECK(r->metadata[1].second == "caf\xC3\xA9");
  CHECK(r->data_offset % 8 == 0);

  // no __metadata__, unknown fields skipped, keys in any order, an empty model
  auto r2 = parse_header(R"({"t": {"data_offsets": [0, 8], "extra": {"x": [1, [2, {}]]}, "shape": [2], "dtype": "F32"}})", 8);
  REQUIRE_MESSAGE(r2, outcome(r2));
  CHECK(r2->tensors[0].ne[0] == 2);
  auto empty = parse_header("{}");
  REQUIRE(empty);
  CHECK(empty->tensors.empty());
  // a tensor with a zero dimension has no bytes (allowed by the format)
  auto zero = parse_header(R"({"z": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
  REQUIRE_MESSAGE(zero, outcome(zero));
  CHECK(zero->tensors[0].n_bytes == 0);
}

TEST_CASE("safetensors: the committed fixtures parse") {
  for (const char* fam : {"llama", "qwen2", "gpt2", "gpt_neo", "gpt_neox", "phi"}) {
    const auto raw = read_all(source_dir() + "/tests/data/families/" + fam + "/model.safetensors");
    REQUIRE(!raw.empty());
    const bytes b(reinterpret_cast<const std::byte*>(raw.data()), reinterpret_cast<const std::byte*>(raw.data()) + raw.size());
    auto r = parse(b);
    INFO(fam);
    REQUIRE_MESSAGE(r, outcome(r));
    CHECK(r->tensors.size() > 10);
  }
}

// =============================================================================================
// safetensors: hostile files, one per failure class

TEST_CASE("safetensors rejects: header length") {
  bytes f = safetensors_file({{"w", "F32", {2}, st_values("F32", 2, [](auto) { return 1.0f; })}});
  CHECK_CODE(parse(bytes(f.begin(), f.begin() + 7)), errc::truncated);
  for (std::uint64_t n : {std::uint64_t{f.size()}, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    bytes g = f;
    poke<std::uint64_t>(g, 0, n);
    CHECK_CODE(parse(g), n > edgelm::safetensors_max_header ? errc::count_too_large : errc::truncated);
  }
  CHECK_CODE(parse(safetensors_raw("", {})), errc::bad_magic);
  CHECK_CODE(parse(safetensors_raw("[]", {})), errc::bad_magic);
  CHECK_CODE(parse(safetensors_raw(" {}", {})), errc::bad_magic);
}

TEST_CASE("safetensors rejects: JSON that is not a header") {
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 4), errc::truncated);  // cut short
  CHECK_CODE(parse_header(R"({"a": nonsense})"), errc::bad_magic);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}} trailing)"), errc::bad_magic);
  CHECK_CODE(parse_header("{\"\xFF\xFE\": {}}"), errc::invalid_utf8);  // a name that is not UTF-8
  // wrong types
  CHECK_CODE(parse_header(R"({"a": 1})"), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": [1]})"), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": {"b": 0}}})", 4), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"__metadata__": {"k": 1}})"), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"__metadata__": "x"})"), errc::bad_key_type);
  CHECK_CODE(parse_header(R"({"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4), errc::bad_key_type);
  // missing fields, duplicates
  CHECK_CODE(parse_header(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4), errc::missing_key);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), errc::missing_key);
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "shape": [1]}})", 4), errc::missing_key);
  auto dup = parse_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  CHECK_CODE(dup, errc::duplicate_name);
  CHECK(dup.error().where == "a");
  CHECK_CODE(parse_header(R"({"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}})", 4), errc::duplicate_name);
  // deeply nested junk in an unknown field
  CHECK_CODE(parse_header("{\"a\": {\"x\": " + std::string(100, '[') + std::string(100, ']') + "}}"), errc::count_too_large);
}

TEST_CASE("safetensors rejects: dtypes, shapes and byte ranges") {
  auto one = [](std::string dtype, std::string shape, std::string offsets, std::size_t data) {
    return parse_header("{\"t\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": " + offsets + "}}", data);
  };
  auto unk = one("Q4", "[2]", "[0, 2]", 2);
  CHECK_CODE(unk, errc::unknown_tensor_type);
  CHECK(unk.error().where == "t");
  for (const char* dt : {"I8", "I32", "F64", "BOOL", "F8_E4M3", "U8"}) {
    auto r = one(dt, "[4]", "[0, 4]", 32);
    CHECK_CODE(r, errc::unsupported_tensor_type);
    CHECK(r.error().msg.find(dt) != std::string::npos);
  }
  CHECK_CODE(one("F32", "[1, 1, 1, 1, 1]", "[0, 4]", 4), errc::absurd_dimension);
  CHECK_CODE(one("F32", "[-1]", "[0, 4]", 4), errc::negative_size);
  CHECK_CODE(one("F32", "[4294967296, 4294967296]", "[0, 4]", 4), errc::overflow);
  CHECK_CODE(one("F32", "[4611686018427387904]", "[0, 4]", 4), errc::overflow);  // 2^62 elements x 4 bytes
  CHECK_CODE(one("F32", "[2]", "[0, 4]", 4), errc::shape_mismatch);
  CHECK_CODE(one("F16", "[2]", "[0, 8]", 8), errc::shape_mismatch);
  CHECK_CODE(one("F32", "[1]", "[8, 4]", 8), errc::negative_size);                // reversed
  CHECK_CODE(one("F32", "[1]", "[0, -4]", 8), errc::negative_size);
  CHECK_CODE(one("F32", "[1]", "[4, 8]", 4), errc::offset_out_of_bounds);        // past the data
  CHECK_CODE(one("F32", "[2]", "[18446744073709551608, 0]", 8), errc::negative_size);
  CHECK_CODE(one("F32", "[1]", "[0, 4]", 8), errc::offset_out_of_bounds);        // bytes after the last tensor
  CHECK_CODE(one("F32", "[1]", "[4, 8]", 8), errc::offset_out_of_bounds);        // a gap before it
  auto two = [](std::string a, std::string b, std::size_t data) {
    return parse_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": )" + a + R"(}, "b": {"dtype": "F32", "shape": [2], "data_offsets": )" + b + "}}",
                        data);
  };
  CHECK(two("[0, 8]", "[8, 16]", 16));
  CHECK(two("[8, 16]", "[0, 8]", 16));  // order in the header does not matter
  auto overlap = two("[0, 8]", "[4, 12]", 16);
  CHECK_CODE(overlap, errc::offset_out_of_bounds);
  CHECK(overlap.error().msg.find("overlap") != std::string::npos);
  CHECK_CODE(two("[0, 8]", "[0, 8]", 8), errc::offset_out_of_bounds);          // two tensors on one range
  auto gap = two("[0, 8]", "[12, 20]", 20);
  CHECK_CODE(gap, errc::offset_out_of_bounds);
  CHECK(gap.error().msg.find("gap") != std::string::npos);
}

TEST_CASE("safetensors rejects: too many tensors, names and metadata over the limits") {
  std::string h = "{";
  for (std::uint64_t i = 0; i <= edgelm::limits::max_tensors; ++i) h += (i ? ",\"" : "\"") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
  h += "}";
  CHECK_CODE(parse_header(h), errc::count_too_large);
  CHECK_CODE(parse_header("{\"" + std::string(2000, 'n') + "\": {}}"), errc::count_too_large);
  // every prefix of a valid file fails cleanly
  const bytes f = safetensors_file(tiny_hf_tensors({}));
  for (std::size_t n = 0; n < f.size(); n += 7) CHECK(!parse(bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n))));
}
