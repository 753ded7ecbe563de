// edgelm/formats/hf_folder.hpp - a Hugging Face model folder on disk -> a bundle of its files (mapped, as
// file_storage does): config.json (required), generation_config.json, model.safetensors or
// model.safetensors.index.json and every shard it names, tokenizer.json, tokenizer_config.json. Files the folder
// lacks are simply not in the bundle (a folder without tokenizer files is a model for id-level use).
#pragma once
#include <string>
#include <string_view>
#include <system_error>

#if __has_include(<filesystem>)
#include <filesystem>
#endif

#include "../core/result.hpp"
#include "../storage/bundle.hpp"
#include "../storage/file_storage.hpp"
#include "hf_model.hpp"

namespace edgelm {

// Is `path` a directory? (false when it does not exist; never throws)
inline bool is_directory(const std::string& path) noexcept {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) && !ec;
}

inline result<bundle> open_hf_folder(const std::string& dir) {
  if (!is_directory(dir)) return make_error(errc::io_error, "not a folder", error::no_offset, dir);
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  auto exists = [&](const std::string& name) {
    std::error_code ec;
    return std::filesystem::is_regular_file(base + name, ec) && !ec;
  };
  bundle b;
  auto add = [&](const std::string& name) -> result<void> {
    auto fs = file_storage::open(base + name);
    if (!fs) return fs.error();
    b.add(name, std::move(*fs));
    return {};
  };
  if (!exists("config.json")) return make_error(errc::missing_key, "the folder has no config.json (not a Hugging Face model folder?)", error::no_offset, base + "config.json");
  for (const char* name : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"})
    if (exists(name)) EDGELM_TRY(add(name));
  if (exists("model.safetensors.index.json")) {
    EDGELM_TRY(add("model.safetensors.index.json"));
    auto ix = read_hf_index(b.text("model.safetensors.index.json"));
    if (!ix) return ix.error();
    for (const auto& shard : ix->shards) {
      if (!exists(shard)) return make_error(errc::io_error, "the index names this shard, which the folder lacks", error::no_offset, base + shard);
      EDGELM_TRY(add(shard));
    }
  } else if (exists("model.safetensors")) {
    EDGELM_TRY(add("model.safetensors"));
  } else {
    return make_error(errc::io_error, "the folder has neither model.safetensors nor model.safetensors.index.json", error::no_offset, base + "model.safetensors");
  }
  return b;
}

// A folder -> model_file (read_hf_model over open_hf_folder). The bundle's storages live on in mf.bytes.
inline result<model_file> read_hf_folder(const std::string& dir) {
  auto b = open_hf_folder(dir);
  if (!b) return b.error();
  return read_hf_model(*b);
}

}  // namespace edgelm
