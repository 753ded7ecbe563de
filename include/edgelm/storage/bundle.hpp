// edgelm/storage/bundle.hpp - a bundle: named storages that together are one model, e.g. a Hugging Face folder
// (config.json, generation_config.json, model.safetensors or model.safetensors.index.json + its shards,
// tokenizer.json, tokenizer_config.json). Natively formats/hf_folder.hpp fills one from a folder; in the browser
// the page fetches the files and adds them by name (what an HF repository calls them). Each storage is kept
// alive by shared ownership, so tensor views into any of them stay valid while a model holds the bundle.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage.hpp"

namespace edgelm {

class bundle {
 public:
  // Add (or replace) the file `name` (a bare file name, as in the folder).
  template <storage S>
  bundle& add(std::string name, S s) {
    auto owner = detail::own_bytes(std::move(s));
    for (auto& f : files_)
      if (f.first == name) {
        f.second = std::move(owner);
        return *this;
      }
    files_.emplace_back(std::move(name), std::move(owner));
    return *this;
  }
  // The file `name`, or null.
  std::shared_ptr<detail::byte_owner> find(std::string_view name) const noexcept {
    for (const auto& f : files_)
      if (f.first == name) return f.second;
    return nullptr;
  }
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
  // Its bytes as text ("" when absent).
  std::string_view text(std::string_view name) const noexcept {
    auto f = find(name);
    if (!f) return {};
    const auto b = f->bytes();
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  const std::vector<std::pair<std::string, std::shared_ptr<detail::byte_owner>>>& files() const noexcept { return files_; }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<detail::byte_owner>>> files_;
};

}  // namespace edgelm
