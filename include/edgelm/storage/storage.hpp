// edgelm/storage/storage.hpp - where model bytes come from. A storage owns (or maps) a byte range
// that stays valid and unchanged as long as the storage lives.
#pragma once
#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "../core/result.hpp"

namespace edgelm {

// Anything with a stable `bytes()` view can feed a loader.
template <class S>
concept storage = std::movable<S> && requires(const S& s) {
  { s.bytes() } -> std::convertible_to<std::span<const std::byte>>;
};

// Bytes owned by (or borrowed from) the caller's memory: asset systems, fetch results, tests.
class memory_storage {
 public:
  memory_storage() = default;
  // Copy the bytes in.
  static memory_storage copy(std::span<const std::byte> b) {
    memory_storage m;
    m.owned_ = std::make_shared<std::vector<std::byte>>(b.begin(), b.end());
    m.view_ = *m.owned_;
    return m;
  }
  // Take ownership of a vector.
  explicit memory_storage(std::vector<std::byte> v)
      : owned_(std::make_shared<std::vector<std::byte>>(std::move(v))), view_(*owned_) {}
  // Borrow: the caller keeps the bytes alive for as long as any model loaded from them.
  static memory_storage borrow(std::span<const std::byte> b) {
    memory_storage m;
    m.view_ = b;
    return m;
  }
  std::span<const std::byte> bytes() const noexcept { return view_; }

 private:
  std::shared_ptr<std::vector<std::byte>> owned_;
  std::span<const std::byte> view_;
};

namespace detail {
// Type-erased owner that keeps a storage alive behind a model (so the model type does not
// depend on where its bytes came from).
struct byte_owner {
  virtual ~byte_owner() = default;
  virtual std::span<const std::byte> bytes() const noexcept = 0;
  // A hint that part of bytes() will not be read for a while (e.g. weights repacked at load): a mapped
  // file gives the pages back (they stay readable and come back from the file if read).
  virtual void release(std::span<const std::byte> part) const noexcept { (void)part; }
};
template <class S>
struct byte_owner_of final : byte_owner {
  S s;
  explicit byte_owner_of(S&& x) : s(std::move(x)) {}
  std::span<const std::byte> bytes() const noexcept override { return s.bytes(); }
  void release(std::span<const std::byte> part) const noexcept override {
    if constexpr (requires { s.release(part); }) s.release(part);
  }
};
template <storage S>
std::shared_ptr<byte_owner> own_bytes(S s) {
  return std::make_shared<byte_owner_of<S>>(std::move(s));
}
}  // namespace detail

}  // namespace edgelm
