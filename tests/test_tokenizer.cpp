// Tests of include/edgelm/tokenizer: encode/decode against llama2.c's run.c reference vectors
// (../shared/models/golden, produced by llama2.c at commit 350e04fe) for tok512 and the Llama-2 32k vocab.
#include <doctest/doctest.h>

#include <edgelm/edgelm.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace edgelm;

namespace {

tokenizer load_tok(const std::string& path) {
  auto fs = file_storage::open(path);
  REQUIRE(fs);
  auto t = load_tokenizer(fs->bytes());
  REQUIRE_MESSAGE(t, (t ? "" : t.error().message()));
  return std::move(*t);
}

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> v;
  std::istringstream is(s);
  int x;
  while (is >> x) v.push_back(x);
  return v;
}

// Golden .ids.txt: "prompt_ids: ...", "prompt_pieces: ...", "generated_ids: ...".
std::string ids_line(const std::string& file, const std::string& key) {
  std::ifstream f(file);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  return {};
}

// llama2.c's encode() written naively (O(n^2) rescans) as an oracle for the heap-based merge.
std::vector<int> naive_encode(const tokenizer& t, const std::string& text) {
  const auto& d = t.data();
  auto lookup = [&](const std::string& s) -> int {
    for (std::size_t i = 0; i < d.pieces.size(); ++i)
      if ((d.types[i] == token_type::normal || d.types[i] == token_type::user_defined) && d.pieces[i] == s) return static_cast<int>(i);
    return -1;
  };
  std::vector<int> toks;
  if (!text.empty()) toks.push_back(lookup(" "));
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len = 1;
    while (i + len < text.size() && len < 4 && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
    int id = lookup(text.substr(i, len));
    if (id >= 0) toks.push_back(id);
    else
      for (std::size_t k = 0; k < len; ++k) toks.push_back(static_cast<unsigned char>(text[i + k]) + 3);
    i += len;
  }
  for (;;) {
    float best = -1e10f;
    int best_id = -1, best_idx = -1;
    for (std::size_t i = 0; i + 1 < toks.size(); ++i) {
      int id = lookup(d.pieces[toks[i]] + d.pieces[toks[i + 1]]);
      if (id != -1 && d.scores[id] > best) { best = d.scores[id]; best_id = id; best_idx = static_cast<int>(i); }
    }
    if (best_idx == -1) break;
    toks[best_idx] = best_id;
    toks.erase(toks.begin() + best_idx + 1);
  }
  toks.insert(toks.begin(), 1);
  return toks;
}

}  // namespace

TEST_CASE("tok512: golden prompts encode to run.c's ids, from tokenizer.bin and from the GGUF vocab") {
  EDGELM_SHARED_FILE(tokbin, "tok512.bin");
  EDGELM_SHARED_FILE(gguf, "stories260K.gguf");
  const tokenizer a = load_tok(tokbin);
  const tokenizer b = load_tok(gguf);
  struct { const char* file; const char* prompt; } cases[] = {
      {"once_upon_a_time_n200.ids.txt", "Once upon a time"},
      {"lily_and_tom_n200.ids.txt", "Lily and Tom went to the park"},
      {"the_little_dog_n200.ids.txt", "The little dog was sad because"},
      {"empty_prompt_n200.ids.txt", ""},
  };
  for (auto& c : cases) {
    const std::string f = edgelm_test::shared_models_dir() + "/golden/" + c.file;
    REQUIRE(edgelm_test::file_exists(f));
    const auto want = parse_ids(ids_line(f, "prompt_ids:"));
    REQUIRE_FALSE(want.empty());
    const auto got_a = a.encode(c.prompt, true);
    const auto got_b = b.encode(c.prompt, true);
    CHECK(std::vector<int>(got_a.begin(), got_a.end()) == want);
    CHECK(std::vector<int>(got_b.begin(), got_b.end()) == want);
  }
}

TEST_CASE("tok512: decoding run.c's token ids reproduces run.c's text") {
  EDGELM_SHARED_FILE(tokbin, "tok512.bin");
  const tokenizer t = load_tok(tokbin);
  const std::string dir = edgelm_test::shared_models_dir() + "/golden/";
  for (const char* c : {"once_upon_a_time_n200", "lily_and_tom_n200", "the_little_dog_n200", "empty_prompt_n200"}) {
    auto ids = parse_ids(ids_line(dir + c + ".ids.txt", "prompt_ids:"));
    auto gen = parse_ids(ids_line(dir + c + ".ids.txt", "generated_ids:"));
    ids.insert(ids.end(), gen.begin(), gen.end());
    std::string text;
    for (std::size_t i = 1; i < ids.size(); ++i) text += t.decode(ids[i - 1], ids[i]);
    text += "\n";
    const auto golden = edgelm_test::read_all(dir + c + ".txt");
    CHECK(text == std::string(golden.begin(), golden.end()));
  }
}

TEST_CASE("Llama-2 32k vocabulary: llama2.c test vectors incl. trailing space and byte fallback") {
  EDGELM_SHARED_FILE(tokbin, "tokenizer.bin");
  const tokenizer t = load_tok(tokbin);
  std::ifstream f(edgelm_test::shared_models_dir() + "/golden/llama2_32k_runc_encodings.tsv");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    const auto want = parse_ids(line.substr(tab + 1));
    const auto got = t.encode(line.substr(0, tab), true);
    CHECK_MESSAGE(std::vector<int>(got.begin(), got.end()) == want, line);
    ++n;
  }
  CHECK(n >= 5);
  // Vectors from llama2.c's test.c (Meta-derived).
  CHECK(t.encode("", true) == std::vector<tokenizer::token>{1});
  CHECK(t.encode("I believe the meaning of life is", true) == std::vector<tokenizer::token>{1, 306, 4658, 278, 6593, 310, 2834, 338});
  CHECK(t.encode("Simply put, the theory of relativity states that ", true) ==
        std::vector<tokenizer::token>{1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871});
  const auto llama = t.encode("\xF0\x9F\xA6\x99", false);  // 🦙: byte fallback
  CHECK(llama == std::vector<tokenizer::token>{29871, 243, 162, 169, 156});
  CHECK(t.decode(29871, 243) == "\xF0");
}

TEST_CASE("heap-based merging equals llama2.c's naive algorithm on varied text") {
  EDGELM_SHARED_FILE(tokbin, "tok512.bin");
  const tokenizer t = load_tok(tokbin);
  std::uint32_t s = 99;
  const char* words[] = {"the", " cat", "Lily", "  ", "!", "\n", "went", "é", "\xF0\x9F\x98\x80", "\xFF", "aa", "bbb", "park", "Tom"};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    for (int w = 0; w < 12; ++w) {
      s = s * 1664525u + 1013904223u;
      text += words[(s >> 16) % (sizeof words / sizeof *words)];
    }
    const auto got = t.encode(text, true);
    REQUIRE(std::vector<int>(got.begin(), got.end()) == naive_encode(t, text));
  }
}

TEST_CASE("long texts (merged word by word) equal llama2.c's naive algorithm") {
  // Above 256 symbols the encoder merges each word (a run of spaces + the characters up to the next space)
  // on its own when the vocabulary allows it; llama2.c's whole-text naive merge is the reference.
  const char* words[] = {"the", " cat", "Lily", "  ", "   ", "!", "\n", " went", "\xC3\xA9", " \xF0\x9F\x98\x80", "\xFF", " aa", "bbb", " park", " Tom", " ", ","};
  {
    EDGELM_SHARED_FILE(tokbin, "tok512.bin");  // (the naive reference scans the vocabulary per pair: 512 only)
    const tokenizer t = load_tok(tokbin);
    std::uint32_t s = 1234;
    for (int round = 0; round < 6; ++round) {
      std::string text;
      for (int w = 0; w < 160; ++w) {
        s = s * 1664525u + 1013904223u;
        text += words[(s >> 16) % (sizeof words / sizeof *words)];
      }
      REQUIRE(text.size() > 300);
      const auto got = t.encode(text, true);
      REQUIRE(std::vector<int>(got.begin(), got.end()) == naive_encode(t, text));
    }
  }
}

TEST_CASE("any bytes round-trip through encode/decode; hostile prompts are handled quickly") {
  EDGELM_SHARED_FILE(tokbin, "tok512.bin");
  const tokenizer t = load_tok(tokbin);
  std::string text;
  std::uint32_t s = 7;
  for (int i = 0; i < 200000; ++i) {
    s = s * 1664525u + 1013904223u;
    text += static_cast<char>(s >> 24);
  }
  const auto ids = t.encode(text, true);
  for (auto id : ids) REQUIRE((id >= 0 && id < 512));
  CHECK(t.decode(ids) == text);  // dummy-prefix space dropped after BOS
  const std::string spaces(300000, ' ');  // worst case for quadratic merging
  const auto sp = t.encode(spaces, false);
  CHECK(t.decode(sp) == " " + spaces);
}

TEST_CASE("tokenizer data validation") {
  tokenizer_data d;
  d.pieces = {"<unk>", "<s>", "</s>"};
  d.scores = {0, 0, 0};
  d.types = {token_type::unknown, token_type::control, token_type::control};
  CHECK(tokenizer::from_data(d));
  auto bad = d;
  bad.bos_id = 7;
  CHECK(tokenizer::from_data(bad).error().code == errc::bad_tokenizer);
  bad = d;
  bad.scores.pop_back();
  CHECK(tokenizer::from_data(bad).error().code == errc::bad_tokenizer);
  bad = d;
  bad.pieces.push_back("<0xZZ>");
  bad.scores.push_back(0);
  bad.types.push_back(token_type::byte);
  CHECK(tokenizer::from_data(bad).error().code == errc::bad_tokenizer);
  // Control tokens are never produced from text.
  auto t = tokenizer::from_data(d);
  REQUIRE(t);
  CHECK(t->encode("<s>", false).size() == 3);  // no pieces match: three unk tokens
}
