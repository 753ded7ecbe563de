// edgelm - header-only C++20 inference for small decoder transformers (Llama family), natively and in
// WebAssembly. https://github.com/edgelm (this repository)
//
// QUICK START
//   #include <edgelm/edgelm.hpp>
//   auto file = edgelm::file_storage::open("model.gguf");                 // result<file_storage>
//   if (!file) { report(file.error().message()); return; }
//   auto model = edgelm::load<edgelm::f32>(std::move(*file));            // result<model<f32>>
//   if (!model) { report(model.error().message()); return; }
//   auto chat = edgelm::session<edgelm::model<edgelm::f32>>::create(*model, {.context = 512});
//   chat->generate("Once upon a time", {.max_tokens = 64, .temperature = 0.8f, .seed = 7},
//                  [](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), stdout); return true; });
//   // or one token per frame: chat->begin_prompt("..."); then each frame auto r = chat->step(budget);
//   // (r->prefilling while the prompt is still being run in budgeted batches, then r->piece, r->done)
//
// ONE RUNTIME MODEL (edgelm/any_model.hpp): the file picks the precision, the first kernels of the list run
//   using runtime = edgelm::basic_any_model<edgelm::backends::highway::kernels, edgelm::kernels::scalar>;
//   auto m = edgelm::load_any_path<runtime>("model.gguf");        // or load_any<runtime>(read_model_file(...))
//   auto s = edgelm::any_session<runtime>::create(*m, {.context = 512});   // the session calls, untyped
//   m->visit([](auto& typed) { /* edgelm::model<P, K>: forward, make_state, perplexity */ });
//
// TOKENIZERS (edgelm/tokenizer/text_tokenizer.hpp)
//   auto tok = edgelm::load_text_tokenizer(tokenizer_json_bytes, tokenizer_config_bytes);  // or GGUF / tokenizer.bin
//   auto ids = tok->encode("Hi <|im_end|>", /*add_special=*/true, /*parse_special=*/true);  // false: untrusted text
//   std::string text = tok->decode(ids);   // or tok->decode_piece(id, first) per token; is_special, bos, eos
//   tokenizer.json needs nlohmann/json.hpp on the include path (define EDGELM_NO_TOKENIZER_JSON to leave it out).
//
// HUGGING FACE FOLDERS (config.json + model.safetensors or its index and shards; needs nlohmann/json)
//   auto mf = edgelm::read_model_path("SmolLM2-135M/");    // a folder, or any model file (format found by content)
//   auto model = edgelm::load<edgelm::f32>(*edgelm::open_hf_folder("SmolLM2-135M/"));  // + its tokenizer.json
//   In the browser, fetch the files into an edgelm::bundle by name and call load(bundle). Architectures with a
//   forward in this build: llama, mistral (SmolLM/SmolLM2, TinyLlama, Llama 2); F32, F16 and BF16 tensors.
//
// THREADS
//   auto pool = edgelm::thread_pool::create(2);          // or bring your own job system: edgelm::executor
//   session_options{.exec = (*pool)->get_executor()}     // a parallel_for function pointer + user pointer
//   Results are bit-identical for any thread count; the default runs inline on the calling thread.
//
// POLICIES
//   precision: edgelm::f32, edgelm::q8_0 (8.5 bits/weight), edgelm::q4_0 (4.5 bits/weight; activations are
//   quantized to q8_0 on the fly). A GGUF tensor already in the model's precision is used in place (zero
//   copy); any other supported type (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K) is converted once at
//   load. kernels: edgelm::kernels::scalar (reference, default);
//   SIMD kernels live in backends/ (e.g. <edgelm/backends/highway.hpp>, edgelm::backends::highway::kernels),
//   chosen once by the model type: edgelm::load<edgelm::f32, edgelm::backends::highway::kernels>(...).
//
// CONFIGURATION MACROS (define before including; limits for hostile input)
//   EDGELM_MAX_TENSORS (65536)  EDGELM_MAX_METADATA (65536)  EDGELM_MAX_VOCAB (1048576)
//   EDGELM_MAX_LAYERS (512)     EDGELM_MAX_DIM (65536)       EDGELM_MAX_CONTEXT (1048576)
//   EDGELM_MAX_STRING (16 MiB)  EDGELM_MAX_TOKEN_BYTES (1024)  EDGELM_MAX_METADATA_VALUES (4 Mi)
//   EDGELM_MAX_STATE_BYTES (3 GiB: KV cache + activations of one state; also state_options::max_state_bytes)
//   EDGELM_DEFAULT_CONTEXT (4096: the context when none is given is min(trained context, this))
//
// SECURITY
//   Model and tokenizer files are untrusted. Every reader goes through a bounded reader; counts are checked
//   against the bytes left and against overflow before allocating; tensor offsets, sizes, types, alignment
//   and shapes are validated. Bad input yields an edgelm::error (code, byte offset or tensor name, message):
//   never a crash, abort, exception or out-of-bounds read. Prompts of any bytes are accepted; tokenizing is
//   O(n log n). The library throws nothing (works with -fno-exceptions), keeps no global mutable state and
//   prints nothing (pass a logger in load_options to receive log lines).
//   Chat templates (text/chat_template.hpp) are untrusted programs too: a bounded Jinja subset with no I/O,
//   nesting, output and work limits (jinja::limits); text/chat_json.hpp reads messages / tokenizer_config.json
//   and is not included here (it needs nlohmann/json).
#pragma once

#include "any_model.hpp"
#include "core/buffer.hpp"
#include "core/checked.hpp"
#include "core/executor.hpp"
#include "core/half.hpp"
#include "core/log.hpp"
#include "core/reader.hpp"
#include "core/result.hpp"
#include "core/thread_pool.hpp"
#include "formats/detect.hpp"
#include "formats/ggml_types.hpp"
#include "formats/gguf.hpp"
#include "formats/gguf_vocab.hpp"
#include "formats/gguf_writer.hpp"
#include "formats/llama2c.hpp"
#include "formats/model_file.hpp"
#include "kernels/scalar.hpp"
#include "load.hpp"
#include "model/transformer.hpp"
#include "model/weights.hpp"
#include "perplexity.hpp"
#include "precision/dequantize.hpp"
#include "precision/f32.hpp"
#include "quantize.hpp"
#include "precision/q4_0.hpp"
#include "precision/q8_0.hpp"
#include "sampling/sampler.hpp"
#include "session.hpp"
#include "storage/bundle.hpp"
#include "storage/file_storage.hpp"
#include "storage/storage.hpp"
#include "text/chat_template.hpp"
#include "tokenizer/sentencepiece.hpp"
#include "tokenizer/text_tokenizer.hpp"
