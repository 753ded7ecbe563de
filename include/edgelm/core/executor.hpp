// edgelm/core/executor.hpp - how the engine runs work on several threads: an injected parallel_for.
//
// The library never creates threads by itself. A caller hands an `executor` to the state (see
// state_options::exec): a function pointer plus a user pointer, so a game engine can plug in its own job
// system; edgelm::thread_pool (core/thread_pool.hpp) is the default implementation. A default-constructed
// executor runs everything inline on the calling thread, with no overhead.
//
// Determinism: the engine only hands out work whose items are independent (matrix rows, attention
// heads), and every backend computes an item the same way wherever it falls in a chunk, so results are
// bit-identical for any thread count and any partition an executor chooses.
#pragma once
#include <cstddef>
#include <utility>

namespace edgelm {

struct executor {
  // One piece of work: items [begin, end) on worker `worker` (0 <= worker < concurrency). Must not throw.
  using task_fn = void (*)(void* ctx, std::size_t begin, std::size_t end, unsigned worker) noexcept;
  // Run task over a partition of [0, n) into chunks (whose boundaries are multiples of `grain`, except
  // the last end = n) and return when every chunk is done. Chunks may run on any worker, in any order;
  // two chunks running at the same time must have different worker indices.
  using parallel_for_fn = void (*)(void* user, std::size_t n, std::size_t grain, task_fn task, void* ctx) noexcept;

  parallel_for_fn parallel_for = nullptr;  // nullptr: inline, one chunk [0, n) on worker 0
  void* user = nullptr;
  unsigned concurrency = 1;  // the number of distinct worker indices parallel_for uses (>= 1)

  unsigned workers() const noexcept { return parallel_for && concurrency > 0 ? concurrency : 1; }

  void run(std::size_t n, std::size_t grain, task_fn task, void* ctx) const noexcept {
    if (n == 0) return;
    if (!parallel_for || concurrency <= 1) {
      task(ctx, 0, n, 0);
      return;
    }
    parallel_for(user, n, grain == 0 ? 1 : grain, task, ctx);
  }

  // f(begin, end, worker) over a partition of [0, n); f is any callable (a lambda with captures).
  template <class F>
  void for_each(std::size_t n, std::size_t grain, F&& f) const noexcept {
    using Fn = std::remove_reference_t<F>;
    run(n, grain, [](void* c, std::size_t b, std::size_t e, unsigned w) noexcept { (*static_cast<Fn*>(c))(b, e, w); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }
};

// The chunk of worker w when [0, n) is split into `parts` contiguous chunks whose boundaries are multiples
// of grain (a static partition: the same for every call with the same arguments).
inline std::pair<std::size_t, std::size_t> static_chunk(std::size_t n, std::size_t grain, unsigned parts, unsigned w) noexcept {
  if (grain == 0) grain = 1;
  const std::size_t units = (n + grain - 1) / grain;
  const std::size_t per = units / parts, extra = units % parts;
  const std::size_t ub = w * per + (w < extra ? w : extra);
  const std::size_t ue = ub + per + (w < extra ? 1 : 0);
  const std::size_t b = ub * grain < n ? ub * grain : n;
  const std::size_t e = ue * grain < n ? ue * grain : n;
  return {b, e};
}

}  // namespace edgelm
