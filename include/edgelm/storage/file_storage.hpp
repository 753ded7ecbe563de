// edgelm/storage/file_storage.hpp - a file's bytes: memory-mapped read-only on POSIX
// (so a model whose tensors are used in place costs page cache, not heap), read into memory elsewhere
// (Emscripten).
#pragma once
#include <cstdio>
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
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(errc::io_error, "cannot open file", error::no_offset, path);
    std::vector<std::byte> buf;
    std::byte chunk[1 << 16];
    for (;;) {
      std::size_t n = std::fread(chunk, 1, sizeof chunk, f);
      buf.insert(buf.end(), chunk, chunk + n);
      if (n < sizeof chunk) break;
    }
    bool bad = std::ferror(f) != 0;
    std::fclose(f);
    if (bad) return make_error(errc::io_error, "read error", error::no_offset, path);
    fs.data_ = std::move(buf);
    fs.size_ = fs.data_.size();
    return fs;
#endif
  }

  std::span<const std::byte> bytes() const noexcept {
    if (mapped_) return {static_cast<const std::byte*>(map_), size_};
    return {data_.data(), data_.size()};
  }
  bool is_mapped() const noexcept { return mapped_; }

 private:
  void close() noexcept {
#if EDGELM_HAS_MMAP
    if (mapped_ && map_) ::munmap(map_, size_);
#endif
    map_ = nullptr;
    mapped_ = false;
    size_ = 0;
    data_.clear();
  }
  void* map_ = nullptr;
  std::size_t size_ = 0;
  std::vector<std::byte> data_;
  bool mapped_ = false;
};

}  // namespace edgelm
