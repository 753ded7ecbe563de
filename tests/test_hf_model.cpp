// tests/test_hf_model.cpp - Hugging Face folders -> model_file (formats/hf_model.hpp, hf_folder.hpp, load.hpp):
// the llama-family fixtures of tests/data/families against transformers' float32 logits (made by
// tools/fixtures/make_family_fixtures.py with transformers 5.17 / torch 2.11 on the CPU), the same weights as BF16
// and as shards, the q/k row permutation, and hostile bundles (missing files and tensors, a lying index).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <edgelm/core/thread_pool.hpp>
#include <edgelm/formats/hf_folder.hpp>
#include <edgelm/formats/hf_model.hpp>
#include <edgelm/load.hpp>
#include <edgelm/model/transformer.hpp>
#include <edgelm/quantize.hpp>

#include "fuzz/model_builders.hpp"
#include "test_util.hpp"

namespace {

using edgelm::errc;
using namespace edgelm_test;

std::string families() { return source_dir() + "/tests/data/families/"; }

template <class T>
std::string outcome(const edgelm::result<T>& r) {
  return r ? std::string("ok") : r.error().message();
}
template <class T>
std::pair<std::string, std::string> err(const edgelm::result<T>& r) {
  if (r) return {"ok", ""};
  return {std::string(edgelm::to_string(r.error().code)), r.error().where};
}
std::pair<std::string, std::string> want(errc c, std::string where) { return {std::string(edgelm::to_string(c)), std::move(where)}; }

bytes file_bytes(const std::string& path) {
  const auto raw = read_all(path);
  return bytes(reinterpret_cast<const std::byte*>(raw.data()), reinterpret_cast<const std::byte*>(raw.data()) + raw.size());
}

struct reference {
  std::vector<std::int32_t> ids;
  std::vector<float> logits;  // (positions, vocab)
  std::size_t vocab = 0;
};
reference read_reference(const std::string& dir) {
  reference r;
  const auto js = read_all(dir + "/reference.json");
  auto j = nlohmann::json::parse(js.begin(), js.end(), nullptr, false);
  REQUIRE(j.is_object());
  for (const auto& id : j["ids"]) r.ids.push_back(id.get<std::int32_t>());
  r.vocab = j["vocab_size"].get<std::size_t>();
  const auto lb = read_all(dir + "/logits.f32");
  REQUIRE(lb.size() == r.ids.size() * r.vocab * 4);
  r.logits.resize(r.ids.size() * r.vocab);
  std::memcpy(r.logits.data(), lb.data(), lb.size());
  return r;
}

// edgelm's logits for every position: the ids as one batch, or one at a time.
std::vector<float> run(const edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>& net, const std::vector<std::int32_t>& ids, bool batched) {
  edgelm::state_options so;
  so.context = 32;
  so.max_batch = batched ? static_cast<std::uint32_t>(ids.size()) : 1;
  so.all_logits = batched;
  auto st = net.make_state(so);
  REQUIRE(st);
  std::vector<float> out;
  if (batched) {
    auto l = net.forward(*st, std::span<const std::int32_t>(ids), 0, edgelm::logits_for::all);
    out.assign(l.begin(), l.end());
  } else {
    for (std::uint32_t p = 0; p < ids.size(); ++p) {
      auto l = net.forward(*st, ids[p], p);
      out.insert(out.end(), l.begin(), l.end());
    }
  }
  return out;
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
    m = std::max(m, std::fabs(static_cast<double>(b[i])));
  }
  return d / m;
}

// A fixture folder as an in-memory bundle, its weights rewritten by `rewrite` (dtype change, sharding).
edgelm::bundle fixture_bundle(const std::string& fam) {
  edgelm::bundle b;
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) b.add(f, edgelm::memory_storage(file_bytes(families() + fam + "/" + f)));
  return b;
}
// The fixture's tensors as builder tensors (values converted to `dtype`).
std::vector<st_tensor> fixture_tensors(const std::string& fam, const std::string& dtype) {
  const bytes f = file_bytes(families() + fam + "/model.safetensors");
  auto st = edgelm::parse_safetensors({f.data(), f.size()});
  REQUIRE(st);
  std::vector<st_tensor> out;
  for (const auto& t : st->tensors) {
    std::vector<std::uint64_t> shape;
    for (std::uint32_t d = t.n_dims; d-- > 0;) shape.push_back(t.ne[d]);
    const float* v = reinterpret_cast<const float*>(t.data);
    out.push_back({t.name, dtype, shape, st_values(dtype, t.n_elements(), [&](std::uint64_t i) { return v[i]; })});
  }
  return out;
}

edgelm::bundle tiny_bundle(const tiny_hf& p, std::vector<st_tensor> ts = {}) {
  if (ts.empty()) ts = tiny_hf_tensors(p);
  edgelm::bundle b;
  b.add("config.json", edgelm::memory_storage(to_bytes(tiny_hf_config(p))));
  b.add("model.safetensors", edgelm::memory_storage(safetensors_file(ts)));
  return b;
}

}  // namespace

TEST_CASE("hf folder: llama fixtures match transformers' float32 logits (within 1e-4 of the largest)") {
  for (const std::string fam : {"llama", "llama_tied"}) {
    INFO(fam);
    const std::string dir = families() + fam;
    const reference ref = read_reference(dir);
    auto mf = edgelm::read_model_path(dir);
    REQUIRE_MESSAGE(mf, outcome(mf));
    CHECK(mf->format == edgelm::file_format::safetensors);
    CHECK(mf->config.vocab_size == ref.vocab);
    CHECK(mf->config.shared_classifier == (fam == "llama_tied"));
    auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
    REQUIRE_MESSAGE(net, outcome(net));
    CHECK(net->w().converted == 0);  // f32 in place, the permuted q/k included (a copy owned by the model_file)
    for (bool batched : {true, false}) {
      const double d = rel_diff(run(*net, ref.ids, batched), ref.logits);
      MESSAGE(fam << (batched ? " batched" : " one by one") << ": max |edgelm - transformers| / max |logit| = " << d);
      CHECK(d < 1e-4);
    }
    // without the q/k permutation the logits are far off: the test can see a wrong rotary order
    auto b = fixture_bundle(fam);
    auto plain = edgelm::read_hf_model(b);
    REQUIRE(plain);
    for (auto& t : plain->tensors)
      if (t.name.find("attn_q") != std::string::npos || t.name.find("attn_k") != std::string::npos) {
        auto orig = edgelm::parse_safetensors(b.find("model.safetensors")->bytes());
        const std::string layer = t.name.substr(4, t.name.find('.', 4) - 4);
        const std::string hf = "model.layers." + layer + ".self_attn." + (t.name.find("attn_q") != std::string::npos ? "q_proj" : "k_proj") + ".weight";
        for (const auto& o : orig->tensors)
          if (o.name == hf) t.data = o.data;
      }
    auto wrong = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*plain));
    REQUIRE(wrong);
    CHECK(rel_diff(run(*wrong, ref.ids, true), ref.logits) > 1e-2);
  }
}

TEST_CASE("hf folder: the other families' fixtures match transformers' float32 logits (within 1e-4 of the largest)") {
  for (const std::string fam : {"qwen2", "gpt2", "gpt_neox", "phi", "gpt_neo", "llama3_scaled"}) {
    INFO(fam);
    const std::string dir = families() + fam;
    const reference ref = read_reference(dir);
    auto mf = edgelm::read_model_path(dir);
    REQUIRE_MESSAGE(mf, outcome(mf));
    CHECK(mf->config.vocab_size == ref.vocab);
    CHECK(!mf->config.is_llama());
    auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
    REQUIRE_MESSAGE(net, outcome(net));
    CHECK(net->w().converted == 0);
    const auto batched = run(*net, ref.ids, true);
    const double d = rel_diff(batched, ref.logits);
    MESSAGE(fam << ": max |edgelm - transformers| / max |logit| = " << d);
    CHECK(d < 1e-4);
    CHECK(run(*net, ref.ids, false) == batched);  // a batch is the same tokens one by one, bit for bit
#if !defined(__EMSCRIPTEN__) || defined(__EMSCRIPTEN_PTHREADS__)  // a wasm build without pthreads has no pool
    // any thread count: the same bits
    auto pool = edgelm::thread_pool::create(3);
    REQUIRE(pool);
    edgelm::state_options so;
    so.context = 32;
    so.max_batch = static_cast<std::uint32_t>(ref.ids.size());
    so.all_logits = true;
    so.exec = (*pool)->get_executor();
    auto st = net->make_state(so);
    REQUIRE(st);
    auto l = net->forward(*st, std::span<const std::int32_t>(ref.ids), 0, edgelm::logits_for::all);
    CHECK(std::vector<float>(l.begin(), l.end()) == batched);
#endif
  }
  // 16-bit weights: the Conv1D transpose and the fused q/k/v split in the file's dtype (2-byte elements)
  for (const std::string fam : {"gpt2", "gpt_neox", "phi"})
    for (const std::string dt : {"BF16", "F16"}) {
      INFO(fam << " " << dt);
      edgelm::bundle b = fixture_bundle(fam);
      b.add("model.safetensors", edgelm::memory_storage(safetensors_file(fixture_tensors(fam, dt))));
      auto mf16 = edgelm::read_hf_model(b);
      REQUIRE_MESSAGE(mf16, outcome(mf16));
      auto net16 = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf16));
      REQUIRE_MESSAGE(net16, outcome(net16));
      const double d = rel_diff(run(*net16, read_reference(families() + fam).ids, true), read_reference(families() + fam).logits);
      MESSAGE(fam << " " << dt << ": " << d);
      CHECK(d < (dt == "BF16" ? 5e-2 : 5e-3));
    }
  // an f16 KV cache through the local-attention layers of gpt_neo: close to the f32 cache
  {
    const reference ref = read_reference(families() + "gpt_neo");
    auto mfn = edgelm::read_model_path(families() + "gpt_neo");
    REQUIRE(mfn);
    auto neo = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mfn));
    REQUIRE(neo);
    edgelm::state_options so;
    so.context = 32;
    so.max_batch = static_cast<std::uint32_t>(ref.ids.size());
    so.all_logits = true;
    so.kv = edgelm::kv_type::f16;
    auto st = neo->make_state(so);
    REQUIRE(st);
    auto l = neo->forward(*st, std::span<const std::int32_t>(ref.ids), 0, edgelm::logits_for::all);
    const double d = rel_diff(std::vector<float>(l.begin(), l.end()), ref.logits);
    MESSAGE("gpt_neo, f16 KV cache: " << d);
    CHECK(d < 1e-2);
  }
  // learned positions bound the context
  auto mf = edgelm::read_model_path(families() + "gpt2");
  REQUIRE(mf);
  auto net = edgelm::transformer<edgelm::f32>::from_file(std::move(*mf));
  REQUIRE(net);
  CHECK(err(net->make_state(65)).first == "invalid_argument");
  CHECK(net->make_state(64));
}

TEST_CASE("hf families reject: misshapen fused q/k/v, short position tables, missing biases, foreign tensors") {
  // the fixture with one tensor reshaped (or dropped, or one added), through the reader and the binder
  auto load = [](const std::string& fam, std::vector<st_tensor> ts) -> std::pair<std::string, std::string> {
    edgelm::bundle b = fixture_bundle(fam);
    b.add("model.safetensors", edgelm::memory_storage(safetensors_file(ts)));
    auto mf = edgelm::read_hf_model(b);
    if (!mf) return err(mf);
    return err(edgelm::transformer<edgelm::f32>::from_file(std::move(*mf)));
  };
  auto reshaped = [&](const std::string& fam, const std::string& name, std::vector<std::uint64_t> shape) {
    auto ts = fixture_tensors(fam, "F32");
    for (auto& t : ts)
      if (t.name == name) {
        std::uint64_t n = 1;
        for (auto d : shape) n *= d;
        t.shape = shape;
        t.data.resize(n * 4);
      }
    return load(fam, ts);
  };
  auto without = [&](const std::string& fam, const std::string& name) {
    auto ts = fixture_tensors(fam, "F32");
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const st_tensor& t) { return t.name == name; }), ts.end());
    return load(fam, ts);
  };
  for (const std::string fam : {"qwen2", "gpt2", "gpt_neox", "phi", "gpt_neo"}) CHECK(load(fam, fixture_tensors(fam, "F32")).first == "ok");
  CHECK(reshaped("gpt2", "transformer.h.0.attn.c_attn.weight", {32, 95}) == want(errc::shape_mismatch, "transformer.h.0.attn.c_attn.weight"));
  CHECK(reshaped("gpt2", "transformer.h.0.attn.c_attn.weight", {32, 96, 1}).first == "shape_mismatch");
  CHECK(reshaped("gpt2", "transformer.h.1.attn.c_attn.bias", {97}) == want(errc::shape_mismatch, "transformer.h.1.attn.c_attn.bias"));
  CHECK(reshaped("gpt2", "transformer.h.0.mlp.c_fc.weight", {72, 32}).first == "shape_mismatch");  // a Linear where a Conv1D belongs
  CHECK(reshaped("gpt2", "transformer.wpe.weight", {63, 32}) == want(errc::shape_mismatch, "position_embd.weight"));
  CHECK(reshaped("gpt_neox", "gpt_neox.layers.0.attention.query_key_value.weight", {96, 31}).first == "shape_mismatch");
  CHECK(reshaped("phi", "lm_head.bias", {130}) == want(errc::shape_mismatch, "output.bias"));
  CHECK(without("qwen2", "model.layers.1.self_attn.v_proj.bias") == want(errc::missing_tensor, "blk.1.attn_v.bias"));
  CHECK(without("gpt_neo", "transformer.ln_f.bias") == want(errc::missing_tensor, "output_norm.bias"));
  CHECK(without("gpt2", "transformer.wpe.weight") == want(errc::missing_tensor, "position_embd.weight"));
  auto ts = fixture_tensors("phi", "F32");
  ts.push_back({"model.layers.0.self_attn.o_proj.weight", "F32", {32, 32}, st_values("F32", 32 * 32, [](auto) { return 0.0f; })});
  CHECK(load("phi", ts) == want(errc::unsupported_architecture, "model.layers.0.self_attn.o_proj.weight"));
  // a config the family forwards do not run
  for (auto [fam, key, value, where] : {std::tuple{"gpt2", "\"gelu_new\"", "\"relu\"", "hidden_act"},
                                        std::tuple{"gpt2", "\"scale_attn_by_inverse_layer_idx\": false", "\"scale_attn_by_inverse_layer_idx\": true", "scale_attn_by_inverse_layer_idx"},
                                        std::tuple{"phi", "\"rope_type\": \"default\"", "\"rope_type\": \"linear\", \"factor\": 2.0", "rope_scaling"}}) {
    const auto raw = read_all(families() + fam + "/config.json");
    std::string cfg(raw.begin(), raw.end());
    REQUIRE(cfg.find(key) != std::string::npos);
    cfg.replace(cfg.find(key), std::strlen(key), value);
    edgelm::bundle b = fixture_bundle(fam);
    b.add("config.json", edgelm::memory_storage(to_bytes(cfg)));
    CHECK(err(edgelm::read_hf_model(b)) == want(errc::unsupported_architecture, where));
  }
  {  // gpt2 without scaled attention scores: read (unscaled, as gpt_neo), far from the scaled fixture
    const auto raw = read_all(families() + "gpt2/config.json");
    std::string cfg(raw.begin(), raw.end());
    const std::string key = "\"scale_attn_weights\": true";
    REQUIRE(cfg.find(key) != std::string::npos);
    cfg.replace(cfg.find(key), key.size(), "\"scale_attn_weights\": false");
    edgelm::bundle b = fixture_bundle("gpt2");
    b.add("config.json", edgelm::memory_storage(to_bytes(cfg)));
    auto mfu = edgelm::read_hf_model(b);
    REQUIRE(mfu);
    CHECK(!mfu->config.scaled_attention);
    auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mfu));
    REQUIRE(net);
    const reference ref = read_reference(families() + "gpt2");
    CHECK(rel_diff(run(*net, ref.ids, true), ref.logits) > 1e-3);
  }
  {  // ... and a config no GGUF architecture expresses is not written as one (llama.cpp's gpt2 scales the scores)
    const auto raw = read_all(families() + "gpt2/config.json");
    std::string cfg(raw.begin(), raw.end());
    const std::string key = "\"scale_attn_weights\": true";
    cfg.replace(cfg.find(key), key.size(), "\"scale_attn_weights\": false");
    edgelm::bundle b = fixture_bundle("gpt2");
    b.add("config.json", edgelm::memory_storage(to_bytes(cfg)));
    auto mfu = edgelm::read_hf_model(b);
    REQUIRE(mfu);
    edgelm::quantize_options qo;
    qo.type = edgelm::ggml_type::f32;
    CHECK(err(edgelm::plan_quantized_gguf(*mfu, qo)).first == "unsupported_architecture");
  }
}

// A family folder written as a GGUF by quantize, read back.
static edgelm::result<edgelm::model_file> quantized(const std::string& fam, edgelm::ggml_type type, bytes& keep) {
  auto mf = edgelm::read_model_path(families() + fam);
  if (!mf) return mf.error();
  edgelm::quantize_options qo;
  qo.type = type;
  auto out = edgelm::quantize_model_to_bytes(*mf, qo);
  if (!out) return out.error();
  keep = std::move(*out);
  return edgelm::read_model_file(edgelm::memory_storage(keep));
}

TEST_CASE("quantize: every family's Hugging Face folder -> GGUF -> transformers' logits (f32 within 1e-4; q8_0 close)") {
  const std::pair<const char*, const char*> fams[] = {{"llama", "llama"}, {"llama_tied", "llama"}, {"qwen2", "qwen2"}, {"gpt2", "gpt2"},
                                                       {"gpt_neo", "gptneo"}, {"gpt_neox", "gptneox"}, {"phi", "phi2"}};
  for (const auto& fa : fams) {
    const std::string fam = fa.first, arch = fa.second;
    INFO(fam);
    const reference ref = read_reference(families() + fam);
    for (const auto type : {edgelm::ggml_type::f32, edgelm::ggml_type::q8_0}) {
      bytes keep;
      auto mf = quantized(fam, type, keep);
      REQUIRE_MESSAGE(mf, outcome(mf));
      CHECK(mf->config.arch == arch);
      CHECK(mf->tokenizer.pieces.empty());  // (no vocabulary: "none")
      auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
      REQUIRE_MESSAGE(net, outcome(net));
      const double d = rel_diff(run(*net, ref.ids, true), ref.logits);
      MESSAGE(fam << " -> GGUF " << edgelm::ggml_type_name(type) << ": max |edgelm - transformers| / max |logit| = " << d);
      CHECK(d < (type == edgelm::ggml_type::f32 ? 1e-4 : 0.1));  // (q8_0 of tiny random weights: a sanity bound)
    }
  }
  bytes keep;  // RoPE scaling is not written (refused, not dropped)
  CHECK(err(quantized("llama3_scaled", edgelm::ggml_type::f32, keep)).first == "unsupported_architecture");
}

TEST_CASE("quantize: qwen2, gpt2 and phi2 GGUFs have the tensors and hyper-parameters of llama.cpp's converter's files") {
  for (const std::string fam : {"qwen2", "gpt2", "phi"}) {
    INFO(fam);
    bytes keep;
    auto ours = quantized(fam, edgelm::ggml_type::f32, keep);
    REQUIRE_MESSAGE(ours, outcome(ours));
    const bytes ref_bytes = file_bytes(families() + "gguf/" + fam + ".gguf");  // by convert_hf_to_gguf.py
    auto theirs = edgelm::parse_gguf({ref_bytes.data(), ref_bytes.size()});
    auto mine = edgelm::parse_gguf({keep.data(), keep.size()});
    REQUIRE(theirs);
    REQUIRE(mine);
    std::vector<std::string> a, b;
    auto shape = [](const edgelm::tensor_info& t) {
      std::string s = t.name;
      for (std::uint32_t d = 0; d < t.n_dims; ++d) s += " " + std::to_string(t.ne[d]);
      return s;
    };
    for (const auto& t : theirs->tensors) a.push_back(shape(t));
    for (const auto& t : mine->tensors) b.push_back(shape(t));
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
    // every hyper-parameter key of the architecture that llama.cpp's file has, with the same value
    const std::string arch = fam == "phi" ? "phi2" : fam;
    for (const auto& kv : theirs->metadata) {
      if (kv.key.rfind(arch + ".", 0) != 0) continue;
      // (the converter writes 4 x dim for gpt2 / phi2 whatever the config's n_inner, 72 here: a width llama.cpp's
      // loader then refuses against the tensors; quantize writes the tensors' width)
      if (kv.key == arch + ".feed_forward_length") continue;
      INFO(kv.key);
      const edgelm::gguf_value* v = mine->find(kv.key);
      REQUIRE(v != nullptr);
      if (kv.value.is_integer()) CHECK(v->u == kv.value.u);
      else if (kv.value.type == edgelm::gguf_type::f32) CHECK(v->f == doctest::Approx(kv.value.f).epsilon(1e-6));
      else if (kv.value.type == edgelm::gguf_type::boolean) CHECK(v->u == kv.value.u);
    }
  }
}

TEST_CASE("hf folder: BF16 and F16 weights, and shards, give the same model") {
  const std::string fam = "llama";
  const reference ref = read_reference(families() + fam);
  auto load_bundle = [](const edgelm::bundle& b) {
    auto mf = edgelm::read_hf_model(b);
    REQUIRE_MESSAGE(mf, outcome(mf));
    auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
    REQUIRE_MESSAGE(net, outcome(net));
    return std::move(*net);
  };
  const auto f32 = run(load_bundle(fixture_bundle(fam)), ref.ids, true);
  for (const std::string dt : {"BF16", "F16"}) {
    edgelm::bundle b = fixture_bundle(fam);
    b.add("model.safetensors", edgelm::memory_storage(safetensors_file(fixture_tensors(fam, dt))));
    auto net = load_bundle(b);
    CHECK(net.w().converted > 0);
    const double d = rel_diff(run(net, ref.ids, true), ref.logits);
    MESSAGE(dt << ": max |edgelm - transformers f32| / max |logit| = " << d);
    CHECK(d < (dt == "BF16" ? 5e-2 : 5e-3));
    CHECK(d > 0);
  }
  // two shards + index: bit-identical to the single file
  auto ts = fixture_tensors(fam, "F32");
  std::vector<st_tensor> a(ts.begin(), ts.begin() + static_cast<std::ptrdiff_t>(ts.size() / 2)), c(ts.begin() + static_cast<std::ptrdiff_t>(ts.size() / 2), ts.end());
  std::string index = R"({"metadata": {"total_size": 1}, "weight_map": {)";
  for (std::size_t i = 0; i < ts.size(); ++i)
    index += (i ? "," : "") + ("\"" + ts[i].name + "\": \"model-0000" + (i < a.size() ? "1" : "2") + "-of-00002.safetensors\"");
  index += "}}";
  edgelm::bundle sh;
  sh.add("config.json", edgelm::memory_storage(file_bytes(families() + fam + "/config.json")));
  sh.add("model.safetensors.index.json", edgelm::memory_storage(to_bytes(index)));
  sh.add("model-00001-of-00002.safetensors", edgelm::memory_storage(safetensors_file(a)));
  sh.add("model-00002-of-00002.safetensors", edgelm::memory_storage(safetensors_file(c)));
  CHECK(run(load_bundle(sh), ref.ids, true) == f32);
  // the index lies: a tensor it puts in the wrong shard, a shard the bundle lacks, a duplicate across shards
  auto lie = [&](std::string idx, bool drop2, bool dup) {
    edgelm::bundle x;
    x.add("config.json", edgelm::memory_storage(file_bytes(families() + fam + "/config.json")));
    x.add("model.safetensors.index.json", edgelm::memory_storage(to_bytes(idx)));
    x.add("model-00001-of-00002.safetensors", edgelm::memory_storage(safetensors_file(dup ? ts : a)));
    if (!drop2) x.add("model-00002-of-00002.safetensors", edgelm::memory_storage(safetensors_file(c)));
    return err(edgelm::read_hf_model(x));
  };
  std::string swapped = index;
  const auto at = swapped.find("00001-of");
  swapped.replace(at, 5, "00002");
  CHECK(lie(swapped, false, false).first == "missing_tensor");
  CHECK(lie(index, true, false) == want(errc::io_error, "model-00002-of-00002.safetensors"));
  CHECK(lie(index, false, true).first == "duplicate_name");
  CHECK(lie(R"({"weight_map": {"a": "../../etc/passwd"}})", false, false).first == "bad_config");
  CHECK(lie(R"({"weight_map": {"a": 5}})", false, false).first == "bad_key_type");
  CHECK(lie(R"({"weight_map": []})", false, false).first == "bad_key_type");
  CHECK(lie(R"({"metadata": {}})", false, false) == want(errc::missing_key, "weight_map"));
  CHECK(lie("{not json", false, false).first == "bad_config");
}

TEST_CASE("hf model: q/k rows are interleaved back per head (llama.cpp's permute), v and the rest untouched") {
  const tiny_hf p{.dim = 8, .hidden = 12, .layers = 1, .heads = 2, .kv_heads = 1, .vocab = 10};
  const auto ts = tiny_hf_tensors(p);
  const edgelm::bundle b = tiny_bundle(p, ts);
  auto mf = edgelm::read_hf_model(b);
  REQUIRE_MESSAGE(mf, outcome(mf));
  auto rows_of = [&](const std::string& hf) -> const st_tensor& {
    for (const auto& t : ts)
      if (t.name == hf) return t;
    FAIL("no " << hf);
    return ts[0];
  };
  const std::uint32_t hd = 4, row_bytes = 8 * 4;
  for (auto [gguf, hf, heads] : {std::tuple{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 2u},
                                 std::tuple{"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", 1u}}) {
    const auto* t = mf->find(gguf);
    REQUIRE(t);
    const st_tensor& src = rows_of(hf);
    for (std::uint32_t h = 0; h < heads; ++h)
      for (std::uint32_t i = 0; i < hd / 2; ++i)
        for (std::uint32_t j = 0; j < 2; ++j)
          CHECK(std::memcmp(t->data + (h * hd + 2 * i + j) * row_bytes, src.data.data() + (h * hd + j * hd / 2 + i) * row_bytes, row_bytes) == 0);
  }
  const auto* v = mf->find("blk.0.attn_v.weight");
  REQUIRE(v);
  CHECK(std::memcmp(v->data, rows_of("model.layers.0.self_attn.v_proj.weight").data.data(), v->n_bytes) == 0);
  CHECK(b.find("model.safetensors")->bytes().data() <= v->data);  // a view, not a copy
  CHECK(mf->config.n_kv_heads == 1);
  CHECK(mf->config.head_dim == 4);
  CHECK(mf->tensors.size() == ts.size());
  // the model_file keeps the bundle's storage alive
  edgelm::model_file keep = std::move(*mf);
  CHECK(keep.bytes->bytes().size() == b.find("model.safetensors")->bytes().size());
}

TEST_CASE("hf model: loading (tokenizer from the bundle, or none for id-level use)") {
  const tiny_hf p{.vocab = 10, .tied = true};
  auto b = tiny_bundle(p);
  auto m = edgelm::load<edgelm::f32>(b);
  CHECK(err(m) == want(errc::bad_tokenizer, "tokenizer.json"));
  auto mf = edgelm::read_hf_model(b);
  REQUIRE(mf);
  CHECK(mf->config.shared_classifier);
  CHECK(!mf->find("output.weight"));
  auto m2 = edgelm::load<edgelm::f32>(std::move(*mf), edgelm::text_tokenizer{});
  REQUIRE_MESSAGE(m2, outcome(m2));
  CHECK(m2->tok.vocab_size() == 0);
  auto st = m2->net.make_state(8);
  REQUIRE(st);
  auto l = m2->net.forward(*st, 3, 0);
  CHECK(l.size() == 10);
  for (float x : l) CHECK(std::isfinite(x));
  // q8_0 converts the f32 rows (dim 8: one zero-padded block a row) and runs
  auto mq = edgelm::read_hf_model(b);
  REQUIRE(mq);
  CHECK(edgelm::load<edgelm::q8_0>(std::move(*mq), edgelm::text_tokenizer{}));
}

TEST_CASE("hf model: load(bundle) takes the folder's tokenizer.json + tokenizer_config.json") {
  const tiny_hf p{.vocab = 7720, .tied = true};  // tests/data/tokenizers/llama2-mini has 7720 tokens
  auto b = tiny_bundle(p);
  const std::string t = source_dir() + "/tests/data/tokenizers/llama2-mini/";
  b.add("tokenizer.json", edgelm::memory_storage(file_bytes(t + "tokenizer.json")));
  b.add("tokenizer_config.json", edgelm::memory_storage(file_bytes(t + "tokenizer_config.json")));
  auto m = edgelm::load<edgelm::f32>(b);
  REQUIRE_MESSAGE(m, outcome(m));
  CHECK(m->tok.vocab_size() == 7720);
  const auto ids = m->tok.encode("Hello world", true);
  REQUIRE(ids.size() >= 2);
  CHECK(ids[0] == m->tok.bos_id());
  auto st = m->net.make_state(16);
  REQUIRE(st);
  for (std::uint32_t i = 0; i < ids.size(); ++i) {
    auto l = m->net.forward(*st, ids[i], i);
    REQUIRE(l.size() == 7720);
    CHECK(std::isfinite(l[100]));
  }
  // a model vocabulary padded past the tokenizer's (as Qwen2.5's, Phi's, Pythia's) loads; the padding ids decode to ""
  {
    const tiny_hf pad{.vocab = 7808, .tied = true};
    auto bp = tiny_bundle(pad);
    bp.add("tokenizer.json", edgelm::memory_storage(file_bytes(t + "tokenizer.json")));
    auto mp = edgelm::load<edgelm::f32>(bp);
    REQUIRE_MESSAGE(mp, outcome(mp));
    CHECK(mp->tok.vocab_size() == 7720);
    CHECK(mp->net.config().vocab_size == 7808);
    CHECK(mp->tok.encode("Hello world", false) == m->tok.encode("Hello world", false));
    const std::int32_t padding[] = {7800};
    CHECK(mp->tok.decode(padding).empty());
  }
  // a tokenizer with more tokens than the model's vocabulary is refused
  const tiny_hf q{.vocab = 7000};
  auto b2 = tiny_bundle(q);
  b2.add("tokenizer.json", edgelm::memory_storage(file_bytes(t + "tokenizer.json")));
  CHECK(err(edgelm::load<edgelm::f32>(b2)).first == "bad_tokenizer");
}

TEST_CASE("hf model rejects: missing files, foreign architectures, missing / extra / misshapen tensors") {
  const tiny_hf p{};
  auto base = tiny_hf_tensors(p);
  CHECK(err(edgelm::read_hf_model(edgelm::bundle{})) == want(errc::missing_key, "config.json"));
  {
    edgelm::bundle b;
    b.add("config.json", edgelm::memory_storage(to_bytes(tiny_hf_config(p))));
    CHECK(err(edgelm::read_hf_model(b)) == want(errc::io_error, "model.safetensors"));
  }
  {  // llama tensors under another family's model_type: qwen2 reads them but lacks its q/k/v biases; phi has no o_proj
    tiny_hf q = p;
    q.model_type = "qwen2";
    auto r = edgelm::read_hf_model(tiny_bundle(q));
    REQUIRE_MESSAGE(r, outcome(r));
    CHECK(err(edgelm::transformer<edgelm::f32>::from_file(std::move(*r))) == want(errc::missing_tensor, "blk.0.attn_q.bias"));
    q.model_type = "phi";
    CHECK(err(edgelm::read_hf_model(tiny_bundle(q))).first == "unsupported_architecture");
  }
  // a configuration the llama forward would run differently
  for (auto [key, value, where] : {std::tuple{"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act"},
                                   std::tuple{"\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2.0}", "rope_scaling"},
                                   std::tuple{"\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"attention_bias\": true", "attention_bias"},
                                   std::tuple{"\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"head_dim\": 2", "head_dim"}}) {
    std::string cfg = tiny_hf_config(p);
    cfg.replace(cfg.find(key), std::strlen(key), value);
    edgelm::bundle b = tiny_bundle(p);
    b.add("config.json", edgelm::memory_storage(to_bytes(cfg)));
    CHECK(err(edgelm::read_hf_model(b)) == want(errc::unsupported_architecture, where));
  }
  auto without = [&](const std::string& name) {
    auto ts = base;
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const st_tensor& t) { return t.name == name; }), ts.end());
    return err(edgelm::read_hf_model(tiny_bundle(p, ts)));
  };
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.1.mlp.down_proj.weight",
                        "model.layers.0.self_attn.k_proj.weight"})
    CHECK(without(n) == want(errc::missing_tensor, n));
  auto with_extra = [&](st_tensor t) {
    auto ts = base;
    ts.push_back(std::move(t));
    return err(edgelm::read_hf_model(tiny_bundle(p, ts)));
  };
  CHECK(with_extra({"model.layers.0.self_attn.q_proj.bias", "F32", {8}, st_values("F32", 8, [](auto) { return 0.0f; })}) ==
        want(errc::unsupported_architecture, "model.layers.0.self_attn.q_proj.bias"));
  CHECK(with_extra({"model.layers.2.mlp.up_proj.weight", "F32", {1}, st_values("F32", 1, [](auto) { return 0.0f; })}).first == "unsupported_architecture");
  CHECK(with_extra({"model.layers.00.mlp.up_proj.weight", "F32", {1}, st_values("F32", 1, [](auto) { return 0.0f; })}).first == "unsupported_architecture");
  // an old checkpoint's rotary buffer is ignored
  CHECK(with_extra({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {2}, st_values("F32", 2, [](auto) { return 1.0f; })}).first == "ok");
  // misshapen: q rows that do not split into heads, an embedding of the wrong vocabulary
  {
    auto ts = base;
    for (auto& t : ts)
      if (t.name == "model.layers.0.self_attn.q_proj.weight") { t.shape = {7, 8}; t.data.resize(7 * 8 * 4); }
    CHECK(err(edgelm::read_hf_model(tiny_bundle(p, ts))) == want(errc::shape_mismatch, "model.layers.0.self_attn.q_proj.weight"));
    for (auto shape : {std::vector<std::uint64_t>{0, 8}, std::vector<std::uint64_t>{8, 0}, std::vector<std::uint64_t>{64}}) {
      auto tz = base;
      for (auto& t : tz)
        if (t.name == "model.layers.0.self_attn.k_proj.weight") { t.shape = shape; t.data.resize(shape.size() == 1 ? 64 * 4 : 0); }
      CHECK(err(edgelm::read_hf_model(tiny_bundle(p, tz))) == want(errc::shape_mismatch, "model.layers.0.self_attn.k_proj.weight"));
    }
    auto ts2 = base;
    for (auto& t : ts2)
      if (t.name == "model.embed_tokens.weight") { t.shape = {9, 8}; t.data.resize(9 * 8 * 4); }
    CHECK(err(edgelm::read_hf_model(tiny_bundle(p, ts2))) == want(errc::shape_mismatch, "model.embed_tokens.weight"));
    // a wrong matrix shape the binder finds (GGUF name: the binder's message)
    auto ts3 = base;
    for (auto& t : ts3)
      if (t.name == "model.layers.0.mlp.up_proj.weight") { t.shape = {12, 4}; t.data.resize(12 * 4 * 4); }
    auto mf = edgelm::read_hf_model(tiny_bundle(p, ts3));
    REQUIRE(mf);
    CHECK(err(edgelm::transformer<edgelm::f32>::from_file(std::move(*mf))).first == "shape_mismatch");
  }
  // an unsupported dtype names the tensor
  {
    auto ts = base;
    ts[3].dtype = "I8";
    ts[3].data.resize(ts[3].data.size() / 4);
    CHECK(err(edgelm::read_hf_model(tiny_bundle(p, ts))) == want(errc::unsupported_tensor_type, ts[3].name));
  }
}

TEST_CASE("hf folder: from disk (the fixtures), and what a folder lacks") {
  auto b = edgelm::open_hf_folder(families() + "gpt2");
  REQUIRE_MESSAGE(b, outcome(b));
  CHECK(b->contains("config.json"));
  CHECK(b->contains("generation_config.json"));
  CHECK(b->contains("model.safetensors"));
  CHECK(!b->contains("tokenizer.json"));
  CHECK(edgelm::read_hf_model(*b));
  CHECK(err(edgelm::open_hf_folder(families() + "does-not-exist")).first == "io_error");
  CHECK(err(edgelm::open_hf_folder(source_dir() + "/tests/data")) == want(errc::missing_key, source_dir() + "/tests/data/config.json"));
  CHECK(err(edgelm::read_model_path(families() + "llama/config.json")).first == "bad_magic");  // a JSON file is no model file
  CHECK(edgelm::read_model_path(families() + "llama/"));
}

// A GGUF made here from a fixture's tensors as llama.cpp's converter lays out a Llama-3 file: the llama keys, the
// base frequency, and rope_freqs.weight = the factors that divide each base frequency (or none). Not made by
// edgelm quantize (which writes unscaled llama GGUFs only).
namespace {
std::vector<std::byte> llama_gguf_of(const edgelm::model_file& mf, const std::vector<float>* factors, float linear = 0.0f) {
  const auto& c = mf.config;
  edgelm::gguf_writer w;
  REQUIRE(w.set_string("general.architecture", "llama"));
  REQUIRE(w.set_u32("llama.embedding_length", c.dim));
  REQUIRE(w.set_u32("llama.feed_forward_length", c.hidden_dim));
  REQUIRE(w.set_u32("llama.block_count", c.n_layers));
  REQUIRE(w.set_u32("llama.attention.head_count", c.n_heads));
  REQUIRE(w.set_u32("llama.attention.head_count_kv", c.n_kv_heads));
  REQUIRE(w.set_u32("llama.context_length", c.seq_len));
  REQUIRE(w.set_f32("llama.rope.freq_base", c.rope_theta));
  REQUIRE(w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps));
  if (linear != 0.0f) {
    REQUIRE(w.set_string("llama.rope.scaling.type", "linear"));
    REQUIRE(w.set_f32("llama.rope.scaling.factor", linear));
  }
  for (const auto& t : mf.tensors)
    REQUIRE(w.add_tensor(t.name, t.type, std::span<const std::uint64_t>(t.ne.data(), t.n_dims), std::span<const std::byte>(t.data, t.n_bytes)));
  if (factors) {
    const std::uint64_t ne[1] = {factors->size()};
    REQUIRE(w.add_tensor("rope_freqs.weight", edgelm::ggml_type::f32, ne, std::as_bytes(std::span<const float>(*factors))));
  }
  auto b = w.to_bytes();
  REQUIRE(b);
  return std::move(*b);
}
edgelm::transformer<edgelm::f32, edgelm::kernels::scalar> net_of_gguf(const std::vector<std::byte>& bytes) {
  auto mf = edgelm::read_gguf(edgelm::detail::own_bytes(edgelm::memory_storage::copy(bytes)));
  REQUIRE_MESSAGE(mf, outcome(mf));
  auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
  REQUIRE_MESSAGE(net, outcome(net));
  return std::move(*net);
}
}  // namespace

TEST_CASE("gguf: Llama-3 RoPE scaling from rope_freqs.weight (as llama.cpp stores it) matches transformers' logits") {
  const std::string dir = families() + "llama3_scaled";
  const reference ref = read_reference(dir);
  auto mf = edgelm::read_model_path(dir);
  REQUIRE_MESSAGE(mf, outcome(mf));
  const auto& c = mf->config;
  REQUIRE(c.rope_freqs.size() == c.head_dim / 2);
  std::vector<float> factors(c.head_dim / 2);
  for (std::size_t i = 0; i < factors.size(); ++i)
    factors[i] = static_cast<float>(std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / c.head_dim) / c.rope_freqs[i]);
  CHECK(*std::max_element(factors.begin(), factors.end()) > 2.0f);  // the scaling is not a no-op here
  const auto scaled = net_of_gguf(llama_gguf_of(*mf, &factors));
  CHECK(scaled.config().rope_freqs.size() == factors.size());
  const double d = rel_diff(run(scaled, ref.ids, true), ref.logits);
  MESSAGE("llama3_scaled as a GGUF with rope_freqs.weight: max |edgelm - transformers| / max |logit| = " << d);
  CHECK(d < 1e-4);
  CHECK(run(scaled, ref.ids, false) == run(scaled, ref.ids, true));
  // without the factors the same weights are a different model
  CHECK(rel_diff(run(net_of_gguf(llama_gguf_of(*mf, nullptr)), ref.ids, true), ref.logits) > 1e-3);
  // linear scaling by 4 = every factor 4
  const std::vector<float> fours(c.head_dim / 2, 4.0f);
  CHECK(run(net_of_gguf(llama_gguf_of(*mf, nullptr, 4.0f)), ref.ids, true) == run(net_of_gguf(llama_gguf_of(*mf, &fours)), ref.ids, true));
}

TEST_CASE("gguf: malformed RoPE scaling is refused with a clear error") {
  auto mf = edgelm::read_model_path(families() + "llama3_scaled");
  REQUIRE_MESSAGE(mf, outcome(mf));
  auto read = [](const std::vector<std::byte>& b) { return edgelm::read_gguf(edgelm::detail::own_bytes(edgelm::memory_storage::copy(b))); };
  const std::vector<float> short_f(3, 1.0f);
  auto r1 = read(llama_gguf_of(*mf, &short_f));
  REQUIRE_FALSE(r1);
  CHECK(r1.error().code == edgelm::errc::shape_mismatch);
  std::vector<float> neg(mf->config.head_dim / 2, 1.0f);
  neg[1] = -1.0f;
  auto r2 = read(llama_gguf_of(*mf, &neg));
  REQUIRE_FALSE(r2);
  CHECK(r2.error().code == edgelm::errc::bad_value);
  auto r3 = read(llama_gguf_of(*mf, nullptr, -2.0f));
  REQUIRE_FALSE(r3);
  CHECK(r3.error().code == edgelm::errc::bad_value);
}

// tests/data/families/gguf: the qwen2 / gpt2 / phi fixtures written by llama.cpp's own converter
// (tools/fixtures/make_family_ggufs.py, convert_hf_to_gguf.py at llama.cpp 80fb11a, no vocabulary): edgelm reads
// llama.cpp's layout for those architectures (NeoX rotary on the file's q/k order, fused q/k/v split, learned
// positions, partial rotary, classifier bias) and gives transformers' logits.
TEST_CASE("gguf: qwen2, gpt2 and phi2 files written by llama.cpp's converter match transformers' logits") {
  for (const auto& fa : {std::pair<std::string, std::string>{"qwen2", "qwen2"}, {"gpt2", "gpt2"}, {"phi", "phi2"}}) {
    const std::string fam = fa.first, arch = fa.second;  // (no structured binding in INFO: clang 14)
    INFO(fam);
    const reference ref = read_reference(families() + fam);
    auto fs = edgelm::file_storage::open(families() + "gguf/" + fam + ".gguf");
    REQUIRE_MESSAGE(fs, outcome(fs));
    auto mf = edgelm::read_model_file(std::move(*fs));
    REQUIRE_MESSAGE(mf, outcome(mf));
    CHECK(mf->config.arch == arch);
    CHECK(mf->config.vocab_size == ref.vocab);
    auto net = edgelm::transformer<edgelm::f32, edgelm::kernels::scalar>::from_file(std::move(*mf));
    REQUIRE_MESSAGE(net, outcome(net));
    const auto batched = run(*net, ref.ids, true);
    const double d = rel_diff(batched, ref.logits);
    MESSAGE(fam << " GGUF (llama.cpp's converter): max |edgelm - transformers| / max |logit| = " << d);
    CHECK(d < 1e-4);
    CHECK(run(*net, ref.ids, false) == batched);
  }
}

TEST_CASE("gguf: a fused q/k/v tensor of the wrong size, or next to separate ones, is refused") {
  auto fs = edgelm::file_storage::open(families() + "gguf/gpt2.gguf");
  REQUIRE(fs);
  auto mf = edgelm::read_model_file(std::move(*fs));
  REQUIRE(mf);
  // rebuild gpt2.gguf with changes, from its own (split) tensors
  auto rebuild = [&](bool cut_qkv, bool add_separate_q) {
    edgelm::gguf_writer w;
    const auto& c = mf->config;
    REQUIRE(w.set_string("general.architecture", "gpt2"));
    REQUIRE(w.set_u32("gpt2.embedding_length", c.dim));
    REQUIRE(w.set_u32("gpt2.feed_forward_length", c.hidden_dim));
    REQUIRE(w.set_u32("gpt2.block_count", c.n_layers));
    REQUIRE(w.set_u32("gpt2.attention.head_count", c.n_heads));
    REQUIRE(w.set_u32("gpt2.context_length", c.seq_len));
    for (const auto& t : mf->tensors) {
      const bool q = t.name.find(".attn_q.") != std::string::npos, k = t.name.find(".attn_k.") != std::string::npos, v = t.name.find(".attn_v.") != std::string::npos;
      if (q || k || v) {
        if (!q) continue;  // q's view starts the fused rows: write all three as one tensor again
        edgelm::tensor_info f = t;
        std::string n = t.name;
        n.replace(n.find(".attn_q."), 8, ".attn_qkv.");
        const std::uint64_t rows = (f.n_dims == 1 ? f.ne[0] : f.ne[1]) * 3 - (cut_qkv ? 1 : 0);
        std::vector<std::uint64_t> ne(f.ne.begin(), f.ne.begin() + f.n_dims);
        ne.back() = rows;
        REQUIRE(w.add_tensor(n, f.type, ne, std::span<const std::byte>(f.data, f.n_bytes / (f.n_dims == 1 ? f.ne[0] : f.ne[1]) * rows)));
        if (add_separate_q) REQUIRE(w.add_tensor(t.name, t.type, std::span<const std::uint64_t>(t.ne.data(), t.n_dims), std::span<const std::byte>(t.data, t.n_bytes)));
        continue;
      }
      REQUIRE(w.add_tensor(t.name, t.type, std::span<const std::uint64_t>(t.ne.data(), t.n_dims), std::span<const std::byte>(t.data, t.n_bytes)));
    }
    auto b = w.to_bytes();
    REQUIRE(b);
    return edgelm::read_gguf(edgelm::detail::own_bytes(edgelm::memory_storage::copy(*b)));
  };
  CHECK(rebuild(false, false));
  auto cut = rebuild(true, false);
  REQUIRE_FALSE(cut);
  CHECK(cut.error().code == edgelm::errc::shape_mismatch);
  auto both = rebuild(false, true);
  REQUIRE_FALSE(both);
  CHECK(both.error().code == edgelm::errc::duplicate_name);
}

// The same GGUF with one metadata key replaced (or removed when v is nullopt).
static std::vector<std::byte> with_key(const std::vector<std::byte>& file, const std::string& key, std::optional<edgelm::gguf_value> v) {
  auto g = edgelm::parse_gguf({file.data(), file.size()});
  REQUIRE(g);
  edgelm::gguf_writer w;
  for (auto& kv : g->metadata)
    if (kv.key != key) REQUIRE(w.set(kv.key, kv.value));
  if (v) REQUIRE(w.set(key, *v));
  for (const auto& t : g->tensors) REQUIRE(w.add_tensor(t.name, t.type, std::span<const std::uint64_t>(t.ne.data(), t.n_dims), {t.data, static_cast<std::size_t>(t.n_bytes)}));
  std::vector<std::byte> out;
  REQUIRE(w.write([&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); return true; }));
  return out;
}

TEST_CASE("gguf: gptneox and gptneo hyper-parameters are checked (windows, parallel residual)") {
  bytes neo, neox;
  REQUIRE(quantized("gpt_neo", edgelm::ggml_type::f32, neo));
  REQUIRE(quantized("gpt_neox", edgelm::ggml_type::f32, neox));
  auto read = [](const std::vector<std::byte>& b) { return edgelm::read_model_file(edgelm::memory_storage(b)); };
  auto good = read(neo);
  REQUIRE(good);
  CHECK(good->config.window.size() == good->config.n_layers);
  CHECK(std::count_if(good->config.window.begin(), good->config.window.end(), [](std::uint32_t w) { return w > 0; }) > 0);  // the fixture has local layers
  using edgelm::gguf_type;
  const std::string w = "gptneo.attention.windows";
  CHECK(err(read(with_key(neo, w, edgelm::gguf_u32(4)))) == want(errc::bad_key_type, w));
  CHECK(err(read(with_key(neo, w, edgelm::gguf_array(gguf_type::u32, {edgelm::gguf_u32(0)})))) == want(errc::bad_key_type, w));
  std::vector<edgelm::gguf_value> huge(good->config.n_layers, edgelm::gguf_u32(1u << 30));
  CHECK(err(read(with_key(neo, w, edgelm::gguf_array(gguf_type::u32, huge)))) == want(errc::bad_value, w));
  std::vector<edgelm::gguf_value> neg(good->config.n_layers, edgelm::gguf_int(gguf_type::i32, -1));
  CHECK(err(read(with_key(neo, w, edgelm::gguf_array(gguf_type::i32, neg)))) == want(errc::bad_value, w));
  auto global = read(with_key(neo, w, std::nullopt));  // no windows: every layer global
  REQUIRE(global);
  CHECK(global->config.window.empty());
  const std::string pr = "gptneox.use_parallel_residual";
  CHECK(err(read(with_key(neox, pr, edgelm::gguf_u32(1)))) == want(errc::bad_key_type, pr));
  auto seq = read(with_key(neox, pr, edgelm::gguf_bool(false)));
  REQUIRE(seq);
  CHECK(seq->config.residual == edgelm::residual_kind::sequential);
  CHECK(read(neox)->config.residual == edgelm::residual_kind::parallel);
}

TEST_CASE("families: family_of takes each architecture to its forward and refuses a config whose block that forward does not compute") {
  using edgelm::arch_family;
  using edgelm::errc;
  auto cfg = [](const char* arch) {
    edgelm::model_config c;
    c.arch = arch;
    return c;
  };
  auto llama = cfg("llama");
  REQUIRE(edgelm::family_of(llama));
  CHECK(*edgelm::family_of(llama) == arch_family::llama);

  auto qwen2 = cfg("qwen2");
  qwen2.rope = edgelm::rope_style::half_split;
  REQUIRE(edgelm::family_of(qwen2));
  CHECK(*edgelm::family_of(qwen2) == arch_family::qwen2);
  auto qwen2_ln = qwen2;
  qwen2_ln.norm = edgelm::norm_kind::layer;  // qwen2's forward has RMSNorm only
  CHECK(edgelm::family_of(qwen2_ln).error().code == errc::unsupported_architecture);

  auto neox = cfg("gptneox");
  neox.rope = edgelm::rope_style::half_split;
  neox.norm = edgelm::norm_kind::layer;
  neox.ffn = edgelm::ffn_kind::gelu_erf;
  REQUIRE(edgelm::family_of(neox));
  CHECK(*edgelm::family_of(neox) == arch_family::gpt_neox);
  auto neox_learned = neox;
  neox_learned.learned_positions = true;  // rotary family: no position table
  CHECK(edgelm::family_of(neox_learned).error().code == errc::unsupported_architecture);

  auto gpt2 = cfg("gpt2");
  gpt2.learned_positions = true;
  gpt2.norm = edgelm::norm_kind::layer;
  gpt2.ffn = edgelm::ffn_kind::gelu_tanh;
  REQUIRE(edgelm::family_of(gpt2));
  CHECK(*edgelm::family_of(gpt2) == arch_family::gpt2);
  auto gpt2_rms = gpt2;
  gpt2_rms.norm = edgelm::norm_kind::rms;
  CHECK(edgelm::family_of(gpt2_rms).error().code == errc::unsupported_architecture);

  CHECK(edgelm::family_of(cfg("mamba")).error().code == errc::unsupported_architecture);
  CHECK(edgelm::family_of(cfg("")).error().code == errc::unsupported_architecture);
}
