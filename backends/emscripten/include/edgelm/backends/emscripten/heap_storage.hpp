// edgelm/backends/emscripten/heap_storage.hpp - a model file's bytes in one buffer of the wasm heap that the
// caller (JS through the C ABI, or C++ through fetch.hpp) fills chunk by chunk as they arrive, so the file
// exists once in memory: the loader then uses the GGUF tensors in place (zero copy) from that buffer.
//
//   auto hs = edgelm::web::heap_storage::allocate(total_bytes);   // result<heap_storage>
//   std::memcpy(hs->data() + offset, chunk, n);                    // or write(offset, span)
//   auto model = edgelm::load<edgelm::q8_0, K>(std::move(*hs));    // the model keeps the buffer alive
//
// Not Emscripten-specific code (it builds natively too, for tests); it lives in backends/emscripten because
// that is where it is needed.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>

#include <edgelm/core/result.hpp>

namespace edgelm::web {

class heap_storage {
 public:
  static constexpr std::size_t alignment = 64;

  heap_storage() = default;

  // A buffer of n bytes (uninitialised; n may be 0). out_of_memory when the heap cannot grow that far.
  static result<heap_storage> allocate(std::size_t n) {
    const std::size_t rounded = (n + alignment - 1) / alignment * alignment;
    if (rounded < n) return make_error(errc::overflow, "buffer size overflows");
    void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
    if (!p) return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(n) + " bytes for the model file in the wasm heap");
    heap_storage h;
    h.buf_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
    h.size_ = n;
    return h;
  }

  // Take ownership of a buffer from std::aligned_alloc/malloc (freed with std::free).
  static heap_storage adopt(void* p, std::size_t n) {
    heap_storage h;
    h.buf_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
    h.size_ = n;
    return h;
  }

  std::byte* data() noexcept { return buf_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {buf_.get(), size_}; }

  // Copy a chunk in at offset (bounds-checked).
  result<void> write(std::size_t offset, std::span<const std::byte> chunk) {
    if (offset > size_ || chunk.size() > size_ - offset)
      return make_error(errc::offset_out_of_bounds, "chunk of " + std::to_string(chunk.size()) + " bytes at " + std::to_string(offset) +
                                                        " does not fit the buffer of " + std::to_string(size_));
    if (!chunk.empty()) std::memcpy(buf_.get() + offset, chunk.data(), chunk.size());
    return {};
  }

 private:
  std::shared_ptr<std::byte> buf_;
  std::size_t size_ = 0;
};

}  // namespace edgelm::web
