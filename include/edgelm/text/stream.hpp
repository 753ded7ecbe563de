// edgelm/text/stream.hpp - turns the bytes of sampled tokens into text that is safe to show while it
// streams: only whole UTF-8 characters (a character split over two tokens, e.g. byte-fallback tokens or
// byte-level BPE pieces of an emoji, comes out once it is complete), and nothing that may still turn out
// to be the start of a stop string (held back until it is clearly not; a stop string found ends the
// stream, and neither it nor anything after it is released).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgelm {

// Length of the longest prefix of s that does not end inside an incomplete UTF-8 sequence: an
// incomplete but so-far valid lead + continuation tail (at most 3 bytes) is left out; anything else
// (complete characters, stray or invalid bytes) counts as complete, so invalid input is never held.
inline std::size_t utf8_complete_prefix(std::string_view s) noexcept {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back for its lead
    std::size_t need = 0;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    return need > back ? n - back : n;  // an incomplete sequence starts here: hold it
  }
  return n;
}

class text_stream {
 public:
  // Stop strings (empty ones are ignored). Resets the stream.
  void set_stops(std::vector<std::string> stops) {
    stops_.clear();
    for (auto& s : stops)
      if (!s.empty()) stops_.push_back(std::move(s));
    reset();
  }
  const std::vector<std::string>& stops() const noexcept { return stops_; }
  void reset() noexcept {
    held_.clear();
    stopped_ = false;
  }

  // Add a token's bytes; returns the text released now (valid until the next call).
  std::string_view push(std::string_view bytes) {
    out_.clear();
    if (stopped_) return out_;
    held_.append(bytes);
    // the earliest stop string in what is held ends the stream
    std::size_t at = std::string::npos;
    for (const auto& s : stops_) {
      const std::size_t p = held_.find(s);
      if (p < at) at = p;
    }
    if (at != std::string::npos) {
      out_.assign(held_, 0, at);
      held_.clear();
      stopped_ = true;
      return out_;
    }
    std::size_t release = utf8_complete_prefix(held_);
    // hold back the longest tail of the releasable part that is a proper prefix of a stop string
    std::size_t hold = 0;
    for (const auto& s : stops_) {
      const std::size_t max_k = std::min(s.size() - 1, release);
      for (std::size_t k = max_k; k > hold; --k)
        if (std::string_view(held_).substr(release - k, k) == std::string_view(s).substr(0, k)) {
          hold = k;
          break;
        }
    }
    release -= hold;
    out_.assign(held_, 0, release);
    held_.erase(0, release);
    return out_;
  }

  // End of generation: whatever is still held (an incomplete UTF-8 tail, a partial stop string).
  std::string_view flush() {
    out_.clear();
    if (!stopped_) out_.swap(held_);
    held_.clear();
    return out_;
  }

  // A stop string was found (the stream released the text before it and ended).
  bool stopped() const noexcept { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string out_;
  bool stopped_ = false;
};

}  // namespace edgelm
