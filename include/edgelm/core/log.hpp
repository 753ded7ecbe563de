// edgelm/core/log.hpp - the library never prints; it hands log lines to a callback the caller owns.
#pragma once
#include <string_view>

namespace edgelm {

enum class log_level { debug, info, warn };

// A plain function pointer + user pointer: no allocation, no global state.
struct logger {
  void (*fn)(void* user, log_level level, std::string_view line) = nullptr;
  void* user = nullptr;
  void operator()(log_level lv, std::string_view line) const {
    if (fn) fn(user, lv, line);
  }
};

}  // namespace edgelm
