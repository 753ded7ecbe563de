// edgelm/storage/file_storage.hpp - a file's bytes: memory-mapped read-only on POSIX
// (so a model whose tensors are used in place costs page cache, not heap), read into memory elsewhere
// (Emscripten).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../core/result.hpp"
#include "storage.hpp"

#if !defined(__EMSCRIPTEN__) && (defined(__unix__) || defined(__APPLE__))
#define EDGELM_HAS_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define EDGELM_HAS_MMAP 0
#endif

namespace edgelm {

class file_storage {
 public:
  file_storage() = default;
  file_storage(const file_storage&) = delete;
  file_storage& operator=(const file_storage&) = delete;
  file_storage(file_storage&& o) noexcept { *this = std::move(o); }
  file_storage& operator=(file_storage&& o) noexcept {
    if (this != &o) {
      close();
      map_ = std::exchange(o.map_, nullptr);
      size_ = std::exchange(o.size_, 0);
      data_ = std::move(o.data_);
      mapped_ = std::exchange(o.mapped_, false);
    }
    return *this;
  }
  ~file_storage() { close(); }

  // Open and map (or read) `path`. io_error with the path and the OS reason on failure.
  static result<file_storage> open(const std::string& path) {
    file_storage fs;
#if EDGELM_HAS_MMAP
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(errc::io_error, "cannot open file", error::no_offset, path);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return make_error(errc::io_error, "not a regular file", error::no_offset, path);
    }
    fs.size_ = static_cast<std::size_t>(st.st_size);
    if (fs.size_ > 0) {
      void* p = ::mmap(nullptr, fs.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return make_error(errc::io_error, "cannot map file", error::no_offset, path);
      }
      fs.map_ = p;
      fs.mapped_ = true;
    }
    ::close(fd);
    return fs;
#else
    // No mmap (WebAssembly, non-POSIX): find the size, allocate it once on the heap (never the stack:
    // wasm has no guard page) and read straight into it, so the peak is the file size, not twice it.
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(errc::io_error, "cannot open file", error::no_offset, path);
    long end = -1;
    if (std::fseek(f, 0, SEEK_END) == 0) end = std::ftell(f);
    if (end < 0 || std::fseek(f, 0, SEEK_SET) != 0) {
      std::fclose(f);
      return make_error(errc::io_error, "cannot determine the file size", error::no_offset, path);
    }
    const std::size_t size = static_cast<std::size_t>(end);
    std::unique_ptr<std::byte[]> buf(size ? new (std::nothrow) std::byte[size] : nullptr);
    if (size && !buf) {
      std::fclose(f);
      return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(size) + " bytes for the file", error::no_offset, path);
    }
    std::size_t got = 0;
    while (got < size) {
      const std::size_t n = std::fread(buf.get() + got, 1, std::min<std::size_t>(size - got, std::size_t{1} << 24), f);
      if (n == 0) break;
      got += n;
    }
    const bool bad = std::ferror(f) != 0 || got != size;
    std::fclose(f);
    if (bad) return make_error(errc::io_error, "read error", error::no_offset, path);
    fs.data_ = std::move(buf);
    fs.size_ = size;
    return fs;
#endif
  }

  std::span<const std::byte> bytes() const noexcept {
    if (mapped_) return {static_cast<const std::byte*>(map_), size_};
    return {data_.get(), size_};
  }
  bool is_mapped() const noexcept { return mapped_; }

  // The pages wholly inside `part` (a range of bytes()) leave this process's resident memory; they stay
  // mapped and read back from the file when touched again. No effect without mmap.
  void release(std::span<const std::byte> part) const noexcept {
#if EDGELM_HAS_MMAP
    if (!mapped_ || part.empty()) return;
    const auto base = reinterpret_cast<std::uintptr_t>(map_);
    auto b = reinterpret_cast<std::uintptr_t>(part.data()), e = b + part.size();
    if (b < base || e > base + size_) return;
    const long ps = ::sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    const auto page = static_cast<std::uintptr_t>(ps);
    b = (b + page - 1) / page * page;
    e = e / page * page;
    if (b < e) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
#else
    (void)part;
#endif
  }

 private:
  void close() noexcept {
#if EDGELM_HAS_MMAP
    if (mapped_ && map_) ::munmap(map_, size_);
#endif
    map_ = nullptr;
    mapped_ = false;
    size_ = 0;
    data_.reset();
  }
  void* map_ = nullptr;
  std::size_t size_ = 0;
  std::unique_ptr<std::byte[]> data_;  // the file's bytes when not mapped
  bool mapped_ = false;
};

}  // namespace edgelm
