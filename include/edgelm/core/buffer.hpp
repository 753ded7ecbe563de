// edgelm/core/buffer.hpp - an owning, 64-byte aligned (or page-aligned), zero-initialised (or not) array that
// never throws.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "result.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace edgelm {

template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "aligned_buffer holds plain data only");

 public:
  static constexpr std::size_t alignment = 64;  // a cache line; enough for AVX-512 loads

  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  aligned_buffer(aligned_buffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), align_(std::exchange(o.align_, alignment)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
      align_ = std::exchange(o.align_, alignment);
    }
    return *this;
  }
  ~aligned_buffer() { release(); }

  // n elements, zeroed. out_of_memory instead of throwing.
  static result<aligned_buffer> make(std::size_t n) { return make_impl(n, true); }
  // n elements left uninitialised (pages are only touched when written: the KV cache, whose positions are
  // always written before attention reads them).
  static result<aligned_buffer> make_uninitialized(std::size_t n) { return make_impl(n, false); }
  // n elements left uninitialised, 2 MiB aligned, and on Linux marked for transparent huge pages
  // (madvise; a hint the kernel may ignore): for large arrays read in full again and again (weights
  // repacked at load), where 4 KiB pages cost a TLB miss every 4 KiB of the stream.
  static result<aligned_buffer> make_pages(std::size_t n) {
    constexpr std::size_t huge = std::size_t{2} << 20;
    auto b = make_impl(n, false, huge);
#if defined(__linux__)
    if (b && b->p_) ::madvise(b->p_, (n * sizeof(T) + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    return b;
  }

  T* data() noexcept { return p_; }
  const T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) noexcept { return p_[i]; }
  const T& operator[](std::size_t i) const noexcept { return p_[i]; }
  std::span<T> span() noexcept { return {p_, n_}; }
  std::span<const T> span() const noexcept { return {p_, n_}; }

 private:
  static result<aligned_buffer> make_impl(std::size_t n, bool zero, std::size_t align = alignment) {
    aligned_buffer b;
    if (n == 0) return b;
    if (n > (~std::size_t{0} - align) / sizeof(T))
      return make_error(errc::out_of_memory, "buffer size overflows size_t");
    std::size_t bytes = (n * sizeof(T) + align - 1) / align * align;
    void* p = ::operator new(bytes, std::align_val_t{align}, std::nothrow);
    if (!p) return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(bytes) + " bytes");
    if (zero) std::memset(p, 0, bytes);
    b.p_ = static_cast<T*>(p);
    b.n_ = n;
    b.align_ = align;
    return b;
  }
  void release() noexcept {
    if (p_) ::operator delete(static_cast<void*>(p_), std::align_val_t{align_});
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
  std::size_t align_ = alignment;
};

}  // namespace edgelm
