// tests/fuzz/make_corpus.cpp - writes the fuzz seed corpora (tests/fuzz/corpus/<target>/) from the same
// builders the unit tests use. Every seed is generated here: no bytes of third-party model files.
//   g++ -std=c++20 -I include -I tests tests/fuzz/make_corpus.cpp -o /tmp/make_corpus && /tmp/make_corpus tests/fuzz/corpus
#include <cctype>
#include <cstdio>
#include <string>

#include "model_builders.hpp"

namespace {
using namespace edgelm_test;

int failures = 0;
void write(const std::string& dir, const std::string& name, const bytes& b) {
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(b.data(), 1, b.size(), f) != b.size()) {
    std::fprintf(stderr, "cannot write %s (does the folder exist?)\n", path.c_str());
    ++failures;
  }
  if (f) std::fclose(f);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus root with fuzz_gguf/ fuzz_llama2c/ fuzz_llama2c_tokenizer/ fuzz_tokenizer_encode/ fuzz_dequantize/>\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];

  const std::string g = root + "/fuzz_gguf";
  write(g, "tiny_f32.gguf", tiny_llama_gguf().build());
  write(g, "tiny_shared_no_tokenizer.gguf", tiny_llama_gguf({.with_output = false, .with_tokenizer = false}).build());
  write(g, "tiny_q8_0_gqa.gguf", tiny_llama_gguf({.dim = 32, .hidden = 64, .layers = 1, .heads = 4, .kv_heads = 2, .type = 8}).build());
  // Weights the f32 loader converts: F16, BF16, Q4_0, Q5_1 (block 32, so dim 32).
  for (auto [type, name] : {std::pair{1u, "f16"}, std::pair{30u, "bf16"}, std::pair{2u, "q4_0"}, std::pair{7u, "q5_1"}})
    write(g, std::string("tiny_") + name + ".gguf",
          tiny_llama_gguf({.dim = 32, .hidden = 32, .layers = 1, .heads = 4, .kv_heads = 4, .type = type}).build());
  auto v2 = tiny_llama_gguf({.layers = 2, .kv_heads = 2});
  v2.version = 2;
  v2.set("general.alignment", g_u32(64));
  v2.alignment = 64;
  write(g, "tiny_v2_align64.gguf", v2.build());
  auto tok_only = tiny_llama_gguf();
  tok_only.tensors.clear();
  tok_only.erase("general.architecture");
  write(g, "tokenizer_only.gguf", tok_only.build());
  gguf_spec empty;
  write(g, "empty.gguf", empty.build());
  gguf_spec types;  // one key of every value type, no tensors
  types.set("u8", g_u8(1)).set("i8", g_i8(-1)).set("u16", g_u16(2)).set("i16", g_i16(-2)).set("u32", g_u32(3));
  types.set("i32", g_i32(-3)).set("f32", g_f32(0.5f)).set("bool", g_bool(1)).set("str", g_str("s")).set("u64", g_u64(4));
  types.set("i64", g_i64(-4)).set("f64", g_f64(0.25)).set("arr", g_arr(gt::array, {g_arr(gt::string, {g_str("x")})}));
  types.tensors.push_back({"t", {2, 2}, 1, std::nullopt});
  write(g, "all_value_types.gguf", types.build());

  const std::string l = root + "/fuzz_llama2c";
  write(l, "tiny_shared.bin", llama2c_checkpoint(llama2c_header{}));
  write(l, "tiny_unshared.bin", llama2c_checkpoint(llama2c_header{8, 16, 1, 2, 1, -8, 16}));
  write(l, "two_layers_mha.bin", llama2c_checkpoint(llama2c_header{16, 40, 2, 4, 4, 10, 8}));

  const std::string t = root + "/fuzz_llama2c_tokenizer";
  write(t, "tiny.bin", llama2c_tokenizer(6, tiny_llama2c_pieces()));
  std::vector<llama2c_piece> bytes_vocab = {{0, "<unk>"}, {0, "\n<s>\n"}, {0, "\n</s>\n"}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    bytes_vocab.push_back({0, buf});
  }
  for (const char* p : {" ", "a", "b", " a", "ab", " ab", "abc", "\xC3\xA9", " the", "the", "th", "he"})
    bytes_vocab.push_back({-static_cast<float>(bytes_vocab.size()), p});
  write(t, "byte_fallback.bin", llama2c_tokenizer(6, bytes_vocab));

  // One short row per type the loader can convert: the type id byte, then small-valued blocks.
  const std::string d = root + "/fuzz_dequantize";
  for (std::uint32_t id : {0u, 1u, 30u, 2u, 3u, 6u, 7u, 8u, 10u, 11u, 12u, 13u, 14u}) {
    const auto& info = edgelm::ggml_type_table[id];
    const std::size_t n = info.type_size * (info.type_size > 4 ? 2 : 16);
    bytes row{std::byte(static_cast<unsigned char>(id))};
    for (std::size_t k = 0; k < n; ++k) row.push_back(std::byte(static_cast<unsigned char>((k * 13 + id) & 0x3F)));
    std::string name(info.name);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    write(d, name + ".bin", row);
  }

  const std::string e = root + "/fuzz_tokenizer_encode";
  write(e, "ascii.txt", to_bytes("Once upon a time, there was a little girl named Lily and the abc abab."));
  write(e, "utf8.txt", to_bytes("caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x96\x81x  \n\n<s></s>"));
  write(e, "invalid_utf8.txt", to_bytes("\xFF\xFE\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80\x80\x80\x80\x80 a"));
  write(e, "repeats.txt", to_bytes(std::string(300, 's') + std::string(200, 'o') + std::string(64, ' ')));

  // safetensors: the fixed tiny llama fuzz_safetensors pairs with its config.json, in each dtype, plus small
  // headers with the optional parts (metadata, unknown fields, a scalar, an empty tensor)
  const std::string st = root + "/fuzz_safetensors";
  for (const char* dt : {"F32", "F16", "BF16"}) {
    tiny_hf p;
    p.dtype = dt;
    write(st, std::string("tiny_llama_") + dt + ".safetensors", safetensors_file(tiny_hf_tensors(p)));
  }
  write(st, "no_metadata.safetensors", safetensors_file({{"a", "F32", {2, 2}, st_values("F32", 4, [](auto i) { return float(i); })}}, ""));
  write(st, "extras.safetensors",
        safetensors_raw(R"({"__metadata__": {"format": "pt", "k": "v"}, "s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2], "x": [1, {"y": null}]},)"
                        R"( "z": {"shape": [0, 3], "dtype": "F16", "data_offsets": [2, 2]}})",
                        bytes(2, std::byte{0x3f})));

  // config.json seeds: the tiny llama in each model type the reader knows (the committed fixtures' configs are
  // copied in as well: see README.md), one with a generation_config.json after the separator, and an index
  const std::string hc = root + "/fuzz_hf_config";
  for (const char* mt : {"llama", "mistral", "qwen2", "gpt2", "gpt_neo", "gpt_neox", "phi"}) {
    tiny_hf p;
    p.model_type = mt;
    write(hc, std::string("tiny_") + mt + ".json", to_bytes(tiny_hf_config(p)));
  }
  write(hc, "with_generation_config", to_bytes(tiny_hf_config({}) + "\n\x01\n" +
                                                   R"({"bos_token_id": 1, "eos_token_id": [2, 3], "temperature": 0.7, "top_k": 40, "top_p": 0.9})"));
  write(hc, "index.json", to_bytes(R"({"metadata": {"total_size": 64}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",)"
                                   R"( "lm_head.weight": "model-00002-of-00002.safetensors"}})"));
  return failures ? 1 : 0;
}
