// tests/test_util.hpp - helpers shared by the doctest suites.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace edgelm_test {

// Folder of the third-party reference models (../shared/models beside the checkout).
// EDGELM_SHARED_DIR overrides it (used by the wasm build under node and by CI).
inline std::string shared_models_dir() {
  if (const char* e = std::getenv("EDGELM_SHARED_DIR")) return std::string(e) + "/models";
#ifdef EDGELM_SOURCE_DIR
  return std::string(EDGELM_SOURCE_DIR) + "/../shared/models";
#else
  return "../shared/models";
#endif
}
// The project's own files (models/, tests/data/).
inline std::string source_dir() {
  if (const char* e = std::getenv("EDGELM_SOURCE_DIR")) return e;
#ifdef EDGELM_SOURCE_DIR
  return EDGELM_SOURCE_DIR;
#else
  return ".";
#endif
}

inline bool file_exists(const std::string& p) {
  if (std::FILE* f = std::fopen(p.c_str(), "rb")) { std::fclose(f); return true; }
  return false;
}

inline bool require_shared() {
  const char* e = std::getenv("EDGELM_REQUIRE_SHARED");
  return e && std::string(e) == "1";
}

inline std::vector<unsigned char> read_all(const std::string& p) {
  std::vector<unsigned char> out;
  if (std::FILE* f = std::fopen(p.c_str(), "rb")) {
    unsigned char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
    std::fclose(f);
  }
  return out;
}

}  // namespace edgelm_test

// Path of a file under ../shared/models; if it is missing the test fails when EDGELM_REQUIRE_SHARED=1
// (CI) and is skipped with a message otherwise (a user's fresh clone without ../shared).
#define EDGELM_SHARED_FILE(var, name)                                                               \
  const std::string var = edgelm_test::shared_models_dir() + "/" + (name);                          \
  if (!edgelm_test::file_exists(var)) {                                                              \
    if (edgelm_test::require_shared()) { FAIL("missing shared reference file " << var); }            \
    MESSAGE("skipped: " << var << " not found (set EDGELM_REQUIRE_SHARED=1 to make this a failure)"); \
    return;                                                                                          \
  }
