// tests/test_hf_config.cpp - config.json / generation_config.json (formats/hf_config.hpp): real-looking configs of
// every family (the shapes of SmolLM2-135M, TinyLlama-1.1B, Llama-3.2-1B, Mistral-7B-v0.1, Qwen2.5-0.5B, GPT-2,
// GPT-Neo-125M, Pythia-70m, Phi-1.5, as their Hub config.json files spell them), the committed fixtures (written by
// transformers 5, with rope_parameters), and malformed ones: each error names its key.
#include <doctest/doctest.h>

#include <string>

#include <edgelm/formats/hf_config.hpp>

#include "test_util.hpp"

namespace {

using edgelm::errc;
using edgelm::hf_family;

edgelm::hf_config ok(std::string_view cfg, std::string_view gen = {}) {
  auto r = edgelm::read_hf_config(cfg, gen);
  REQUIRE_MESSAGE(r, (r ? std::string() : r.error().message()));
  return *r;
}
// The error code and the key it names.
std::pair<std::string, std::string> err(std::string_view cfg, std::string_view gen = {}) {
  auto r = edgelm::read_hf_config(cfg, gen);
  if (r) return {"ok", ""};
  return {std::string(edgelm::to_string(r.error().code)), r.error().where};
}
std::pair<std::string, std::string> want(errc c, std::string where) { return {std::string(edgelm::to_string(c)), std::move(where)}; }

constexpr const char* smollm2 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 0,
  "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
  "intermediate_size": 1536, "is_llama_config": true, "max_position_embeddings": 8192, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": true,
  "vocab_size": 49152})";
constexpr const char* tinyllama = R"({"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22,
  "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.35.0", "use_cache": true,
  "vocab_size": 32000})";
constexpr const char* llama32 = R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 128256})";
constexpr const char* mistral = R"({"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "vocab_size": 32000})";
constexpr const char* qwen25 = R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
  "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";
constexpr const char* gpt2 = R"({"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
  "resid_pdrop": 0.1, "summary_activation": null, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257})";
constexpr const char* gpt_neo = R"({"activation_function": "gelu_new", "architectures": ["GPTNeoForCausalLM"],
  "attention_dropout": 0, "attention_layers": ["global", "local", "global", "local", "global", "local", "global", "local",
  "global", "local", "global", "local"], "attention_types": [[["global", "local"], 6]], "bos_token_id": 50256,
  "embed_dropout": 0, "eos_token_id": 50256, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": null,
  "layer_norm_epsilon": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neo", "num_heads": 12,
  "num_layers": 12, "resid_dropout": 0, "vocab_size": 50257, "window_size": 256})";
constexpr const char* pythia = R"({"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
  "hidden_act": "gelu", "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 2048, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 8, "num_hidden_layers": 6,
  "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false, "torch_dtype": "float16",
  "use_cache": true, "use_parallel_residual": true, "vocab_size": 50304})";
constexpr const char* phi15 = R"({"architectures": ["PhiForCausalLM"], "attention_dropout": 0.0, "bos_token_id": null,
  "embd_pdrop": 0.0, "eos_token_id": null, "hidden_act": "gelu_new", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 8192, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "phi",
  "num_attention_heads": 32, "num_hidden_layers": 24, "num_key_value_heads": null, "partial_rotary_factor": 0.5,
  "qk_layernorm": false, "resid_pdrop": 0.0, "rope_scaling": null, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float16", "vocab_size": 51200})";

}  // namespace

TEST_CASE("hf_config: llama family (SmolLM2, TinyLlama, Llama 3.2, Mistral)") {
  auto s = ok(smollm2, R"({"_from_model_config": true, "bos_token_id": 0, "eos_token_id": 0, "transformers_version": "4.42.3"})");
  CHECK(s.family == hf_family::llama);
  CHECK(s.hidden_size == 576);
  CHECK(s.intermediate_size == 1536);
  CHECK(s.num_hidden_layers == 30);
  CHECK(s.num_attention_heads == 9);
  CHECK(s.num_key_value_heads == 3);
  CHECK(s.head_dim == 64);
  CHECK(s.vocab_size == 49152);
  CHECK(s.max_position_embeddings == 8192);
  CHECK(s.norm_eps == doctest::Approx(1e-5));
  CHECK(s.rms_norm);
  CHECK(s.rope_theta == 100000.0f);
  CHECK(!s.rope_scaling);
  CHECK(s.rotary_dim == 64);
  CHECK(s.hidden_act == "silu");
  CHECK(s.tie_word_embeddings);
  CHECK(!s.attention_bias);
  CHECK(s.torch_dtype == "bfloat16");
  CHECK(s.bos() == 0);
  CHECK(s.eos() == std::vector<std::int32_t>{0});
  CHECK(s.architectures == std::vector<std::string>{"LlamaForCausalLM"});

  auto t = ok(tinyllama);
  CHECK(t.num_key_value_heads == 4);
  CHECK(t.rope_theta == 10000.0f);  // the default
  CHECK(!t.tie_word_embeddings);

  auto l = ok(llama32, R"({"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9})");
  REQUIRE(l.rope_scaling);
  CHECK(l.rope_scaling->type == "llama3");
  CHECK(l.rope_scaling->factor == 32.0f);
  CHECK(l.rope_scaling->low_freq_factor == 1.0f);
  CHECK(l.rope_scaling->high_freq_factor == 4.0f);
  CHECK(l.rope_scaling->original_max_position_embeddings == 8192);
  CHECK(l.eos() == std::vector<std::int32_t>{128001, 128008, 128009});
  CHECK(*l.temperature == doctest::Approx(0.6));
  CHECK(*l.top_p == doctest::Approx(0.9));
  CHECK(l.max_position_embeddings == 131072);

  auto m = ok(mistral);
  CHECK(m.family == hf_family::mistral);
  CHECK(m.sliding_window == 4096);
  // generation_config's ids win over config.json's
  auto g = ok(tinyllama, R"({"bos_token_id": 5, "eos_token_id": [6, 7]})");
  CHECK(g.bos() == 5);
  CHECK(g.eos() == std::vector<std::int32_t>{6, 7});
}

TEST_CASE("hf_config: qwen2, gpt2, gpt_neo, gpt_neox, phi") {
  auto q = ok(qwen25);
  CHECK(q.family == hf_family::qwen2);
  CHECK(q.attention_bias);  // Qwen2 has q/k/v biases whatever the file says
  CHECK(q.sliding_window == 0);  // use_sliding_window false
  CHECK(q.norm_eps == doctest::Approx(1e-6));
  CHECK(q.rope_theta == 1000000.0f);
  CHECK(q.head_dim == 64);

  auto g = ok(gpt2);
  CHECK(g.family == hf_family::gpt2);
  CHECK(g.hidden_size == 768);
  CHECK(g.intermediate_size == 3072);  // n_inner absent: 4 x n_embd
  CHECK(g.num_hidden_layers == 12);
  CHECK(g.max_position_embeddings == 1024);
  CHECK(g.learned_positions);
  CHECK(!g.rms_norm);
  CHECK(g.rotary_dim == 0);
  CHECK(g.tie_word_embeddings);  // the gpt2 default
  CHECK(g.attention_bias);
  CHECK(g.mlp_bias);
  CHECK(g.hidden_act == "gelu_new");

  auto n = ok(gpt_neo);
  CHECK(n.family == hf_family::gpt_neo);
  CHECK(n.intermediate_size == 3072);  // null: 4 x hidden
  REQUIRE(n.attention_layers.size() == 12);
  CHECK(n.attention_layers[0] == "global");
  CHECK(n.attention_layers[1] == "local");
  CHECK(n.window_size == 256);
  CHECK(n.tie_word_embeddings);

  auto p = ok(pythia);
  CHECK(p.family == hf_family::gpt_neox);
  CHECK(p.use_parallel_residual);
  CHECK(p.partial_rotary_factor == 0.25f);
  CHECK(p.rotary_dim == 16);  // 0.25 x 64
  CHECK(p.rope_theta == 10000.0f);
  CHECK(p.hidden_act == "gelu");
  CHECK(p.attention_bias);

  auto f = ok(phi15);
  CHECK(f.family == hf_family::phi);
  CHECK(f.use_parallel_residual);
  CHECK(f.num_key_value_heads == 32);  // null: the query heads
  CHECK(f.rotary_dim == 32);
  CHECK(!f.bos());
  CHECK(f.eos().empty());
}

TEST_CASE("hf_config: the committed fixtures (transformers 5 rope_parameters)") {
  const std::string d = edgelm_test::source_dir() + "/tests/data/families/";
  auto text = [&](const std::string& f) {
    const auto b = edgelm_test::read_all(d + f);
    return std::string(b.begin(), b.end());
  };
  auto l = ok(text("llama/config.json"), text("llama/generation_config.json"));
  CHECK(l.rope_theta == 50000.0f);
  CHECK(l.num_key_value_heads == 1);
  CHECK(l.torch_dtype == "float32");  // written as "dtype"
  auto s = ok(text("llama3_scaled/config.json"));
  REQUIRE(s.rope_scaling);
  CHECK(s.rope_scaling->type == "llama3");
  CHECK(s.rope_scaling->factor == 8.0f);
  CHECK(s.rope_scaling->original_max_position_embeddings == 16);
  CHECK(s.rope_theta == 500000.0f);
  CHECK(s.head_dim == 12);
  auto x = ok(text("gpt_neox/config.json"));
  CHECK(x.rotary_dim == 4);
  CHECK(x.use_parallel_residual);
  auto p = ok(text("phi/config.json"));
  CHECK(p.rotary_dim == 4);
  auto n = ok(text("gpt_neo/config.json"));
  CHECK(n.attention_layers == std::vector<std::string>{"global", "local"});
  CHECK(n.window_size == 5);
  auto t = ok(text("llama_tied/config.json"), text("llama_tied/generation_config.json"));
  CHECK(t.eos() == std::vector<std::int32_t>{2, 3});
  CHECK(ok(text("qwen2/config.json")).rope_theta == 1000000.0f);
  CHECK(ok(text("gpt2/config.json")).intermediate_size == 72);
}

TEST_CASE("hf_config rejects: not a config") {
  CHECK(err("") == want(errc::bad_config, "config.json"));
  CHECK(err("<html>404</html>") == want(errc::bad_config, "config.json"));
  CHECK(err("[1, 2]") == want(errc::bad_config, "config.json"));
  CHECK(err(R"({"model_type": "llama")") == want(errc::bad_config, "config.json"));  // cut short
  CHECK(err(std::string(100, '[') + std::string(100, ']')) == want(errc::count_too_large, "config.json"));
  CHECK(err(R"({"hidden_size": 8})") == want(errc::missing_key, "model_type"));
  CHECK(err(R"({"model_type": "bert"})") == want(errc::unsupported_architecture, "model_type"));
  CHECK(err(R"({"model_type": 7})") == want(errc::bad_key_type, "model_type"));
  CHECK(err(tinyllama, "nope") == want(errc::bad_config, "generation_config.json"));
}

TEST_CASE("hf_config rejects: missing keys, wrong types, absurd sizes, inconsistent values") {
  // one key changed in TinyLlama's config at a time
  auto with = [](std::string key, std::string value) {
    std::string c = tinyllama;
    const auto at = c.find("\"" + key + "\"");
    if (at == std::string::npos) {
      c.insert(1, "\"" + key + "\": " + value + ", ");
    } else {
      const auto colon = c.find(':', at);
      std::size_t end = c.find_first_of(",}", colon);
      if (c[colon + 2] == '[' || c[colon + 2] == '{') end = c.find_first_of("]}", colon) + 1;
      c.replace(colon + 1, end - colon - 1, value.empty() ? " null" : " " + value);
    }
    return c;
  };
  auto without = [&](std::string key) { return with(key, ""); };
  for (const char* k : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"})
    CHECK(err(without(k)) == want(errc::missing_key, k));
  CHECK(err(with("hidden_size", "\"2048\"")) == want(errc::bad_key_type, "hidden_size"));
  CHECK(err(with("hidden_size", "2048.5")) == want(errc::bad_key_type, "hidden_size"));
  CHECK(err(with("hidden_size", "2048.0")).first == "ok");  // a whole number written as a float is fine
  CHECK(err(with("hidden_size", "-2048")) == want(errc::negative_size, "hidden_size"));
  CHECK(err(with("hidden_size", "0")) == want(errc::absurd_dimension, "hidden_size"));
  CHECK(err(with("hidden_size", "1000000000000")) == want(errc::absurd_dimension, "hidden_size"));
  CHECK(err(with("hidden_size", "1e300")) == want(errc::bad_key_type, "hidden_size"));
  CHECK(err(with("num_hidden_layers", "100000")) == want(errc::absurd_dimension, "num_hidden_layers"));
  CHECK(err(with("vocab_size", "4294967296")) == want(errc::absurd_dimension, "vocab_size"));
  CHECK(err(with("max_position_embeddings", "100000000000")) == want(errc::absurd_dimension, "max_position_embeddings"));
  CHECK(err(with("num_key_value_heads", "5")) == want(errc::bad_config, "num_key_value_heads"));
  CHECK(err(with("num_key_value_heads", "0")) == want(errc::bad_config, "num_key_value_heads"));
  CHECK(err(with("num_attention_heads", "36")) == want(errc::bad_config, "num_attention_heads"));  // 2048 % 36
  CHECK(err(with("head_dim", "100000")) == want(errc::absurd_dimension, "head_dim"));
  CHECK(err(with("head_dim", "3")) == want(errc::bad_config, "partial_rotary_factor"));  // odd rotary dims
  CHECK(err(with("rms_norm_eps", "\"small\"")) == want(errc::bad_key_type, "rms_norm_eps"));
  CHECK(err(with("rms_norm_eps", "-1e-5")) == want(errc::bad_value, "rms_norm_eps"));
  CHECK(err(with("rms_norm_eps", "2")) == want(errc::bad_value, "rms_norm_eps"));
  CHECK(err(with("rms_norm_eps", "1e-50")) == want(errc::bad_value, "rms_norm_eps"));  // 0 as a float (found by fuzz_hf_config)
  CHECK(err(with("rope_theta", "0")) == want(errc::bad_value, "rope_theta"));
  CHECK(err(with("rope_theta", "1e39")) == want(errc::bad_value, "rope_theta"));
  CHECK(err(with("tie_word_embeddings", "1")) == want(errc::bad_key_type, "tie_word_embeddings"));
  CHECK(err(with("hidden_act", "[]")) == want(errc::bad_key_type, "hidden_act"));
  CHECK(err(with("eos_token_id", "-1")) == want(errc::negative_size, "eos_token_id"));
  CHECK(err(with("eos_token_id", "[1, \"2\"]")) == want(errc::bad_key_type, "eos_token_id"));
  CHECK(err(with("bos_token_id", "[1, 2]")) == want(errc::bad_key_type, "bos_token_id"));
  CHECK(err(with("architectures", "\"Llama\"")) == want(errc::bad_key_type, "architectures"));
  CHECK(err(with("rope_scaling", "5")) == want(errc::bad_key_type, "rope_scaling"));
  CHECK(err(with("rope_scaling", R"({"type": "linear"})")) == want(errc::missing_key, "rope_scaling.factor"));
  CHECK(err(with("rope_scaling", R"({"type": "linear", "factor": "2"})")) == want(errc::bad_key_type, "rope_scaling.factor"));
  CHECK(err(with("rope_scaling", R"({"rope_type": "llama3", "factor": 8.0})")) == want(errc::bad_config, "rope_scaling"));
  CHECK(err(with("rope_parameters", "[]")) == want(errc::bad_key_type, "rope_parameters"));
  auto lin = ok(with("rope_scaling", R"({"type": "linear", "factor": 2.0})"));
  REQUIRE(lin.rope_scaling);
  CHECK(lin.rope_scaling->type == "linear");
  CHECK(!ok(with("rope_scaling", R"({"rope_type": "default"})")).rope_scaling);
  CHECK(err(tinyllama, R"({"eos_token_id": {"a": 1}})") == want(errc::bad_key_type, "eos_token_id"));
  CHECK(err(tinyllama, R"({"temperature": "hot"})") == want(errc::bad_key_type, "temperature"));
  CHECK(err(tinyllama, R"({"top_k": -3})") == want(errc::negative_size, "top_k"));
  // gpt_neo's layer kinds must add up to its layers
  std::string neo = gpt_neo;
  neo.replace(neo.find("\"num_layers\": 12"), 16, "\"num_layers\": 11");
  CHECK(err(neo) == want(errc::bad_config, "attention_types"));
  std::string neo2 = R"({"model_type": "gpt_neo", "hidden_size": 8, "num_layers": 2, "num_heads": 2, "vocab_size": 10, "attention_types": [[["global", "sideways"], 1]]})";
  CHECK(err(neo2) == want(errc::bad_key_type, "attention_types"));
  std::string neo3 = R"({"model_type": "gpt_neo", "hidden_size": 8, "num_layers": 2, "num_heads": 2, "vocab_size": 10, "attention_types": [[["global"], 100000]]})";
  CHECK(err(neo3) == want(errc::absurd_dimension, "attention_types"));
  // a partial rotary factor outside (0, 1]
  std::string px = pythia;
  px.replace(px.find("\"rotary_pct\": 0.25"), 18, "\"rotary_pct\": 1.50");
  CHECK(err(px) == want(errc::bad_value, "partial_rotary_factor"));
}
