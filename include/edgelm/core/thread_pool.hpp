// edgelm/core/thread_pool.hpp - the default executor: a fixed pool of threads (std::thread natively,
// pthreads in WebAssembly builds with -pthread). The calling thread takes part (worker 0), so a pool of
// N threads starts N - 1. Workers spin briefly after each job (a forward pass hands out ~5 jobs per
// layer, microseconds apart) and then block on a condition variable, so an idle pool burns no core.
// Work is claimed in chunks, so a descheduled worker delays nothing it has not claimed.
// threads = 1 starts nothing and runs inline.
//
// Not copyable or movable (the workers hold its address). Create it once, before the session, and keep it
// alive while any state uses its executor().
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "executor.hpp"
#include "result.hpp"

namespace edgelm {

class thread_pool {
 public:
  static constexpr unsigned max_threads = 256;

  // A pool of `threads` threads in all (the caller included). Errors: invalid_argument for 0 or more than
  // max_threads; out_of_memory when the system cannot start a thread.
  static result<std::unique_ptr<thread_pool>> create(unsigned threads) {
    if (threads == 0 || threads > max_threads)
      return make_error(errc::invalid_argument, "thread count " + std::to_string(threads) + " is outside 1.." + std::to_string(max_threads));
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
    if (threads > 1)
      return make_error(errc::invalid_argument, "this WebAssembly build has no threads: use the pthreads build (-pthread) for more than 1");
#endif
    std::unique_ptr<thread_pool> p(new (std::nothrow) thread_pool());
    if (!p) return make_error(errc::out_of_memory, "cannot allocate the thread pool");
    p->n_ = threads;
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      for (unsigned w = 1; w < threads; ++w) p->workers_.emplace_back([q = p.get(), w] { q->loop(w); });
    } catch (...) {
      return make_error(errc::out_of_memory, "cannot start " + std::to_string(threads) + " threads");
    }
#else
    p->workers_.reserve(threads);
    for (unsigned w = 1; w < threads; ++w) p->workers_.emplace_back([q = p.get(), w] { q->loop(w); });
#endif
    return p;
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  ~thread_pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      gen_.fetch_add(2, std::memory_order_seq_cst);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  unsigned threads() const noexcept { return n_; }

  // The executor to put in state_options::exec (inline when threads() == 1).
  executor get_executor() noexcept {
    executor e;
    if (n_ > 1) {
      e.parallel_for = &thread_pool::dispatch;
      e.user = this;
    }
    e.concurrency = n_;
    return e;
  }

  // Run task over [0, n) and return when every item is done. [0, n) is cut into a few chunks per thread
  // (boundaries multiples of grain) that the calling thread and the workers claim one at a time, so a
  // worker the OS has not scheduled yet simply gets none: the caller never waits for a thread that has
  // not started (on a loaded machine the job degrades to one thread instead of stalling). One job at a
  // time: calls from several threads at once are serialised.
  void parallel_for(std::size_t n, std::size_t grain, executor::task_fn task, void* ctx) noexcept {
    std::lock_guard<std::mutex> job(job_m_);
    if (grain == 0) grain = 1;
    if (n_ == 1 || n <= grain) {
      task(ctx, 0, n, 0);
      return;
    }
    // Close the previous job (odd generation) and wait until no worker is still inside it; a worker that
    // joins after this point sees the odd generation and leaves without reading the fields below.
    const std::uint64_t g = gen_.load(std::memory_order_relaxed);
    gen_.store(g + 1, std::memory_order_seq_cst);
    for (unsigned i = 0; active_.load(std::memory_order_seq_cst) != 0; ++i) relax(i);
    const std::size_t units = (n + grain - 1) / grain;
    const std::size_t chunks = std::min<std::size_t>(units, std::size_t{4} * n_);
    n_items_ = n;
    grain_ = grain;
    units_ = units;
    chunks_ = chunks;
    task_ = task;
    ctx_ = ctx;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      gen_.store(g + 2, std::memory_order_seq_cst);  // publish (even generation)
    }
    if (sleepers_.load(std::memory_order_seq_cst) > 0) cv_.notify_all();
    run_chunks(0);
    // the chunks others claimed: spin, then yield
    for (unsigned i = 0; done_.load(std::memory_order_acquire) != chunks; ++i) relax(i);
  }

 private:
  // About 0.1-0.3 ms of spinning either way: x86's pause takes ~40-140 cycles, while WebAssembly has no pause and one
  // atomic load per iteration takes ~1 ns (2^14 of those, ~16 us, let the workers fall asleep between the jobs of
  // one decoded token: each wake-up then costs a futex round trip through the browser).
#if defined(__wasm__)
  static constexpr unsigned spin_iterations = 1u << 18;
#else
  static constexpr unsigned spin_iterations = 1u << 14;
#endif

  thread_pool() = default;

  static void dispatch(void* user, std::size_t n, std::size_t grain, executor::task_fn task, void* ctx) noexcept {
    static_cast<thread_pool*>(user)->parallel_for(n, grain, task, ctx);
  }

  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  static void relax(unsigned i) noexcept {
    if (i < spin_iterations) cpu_relax();
    else std::this_thread::yield();
  }

  // Claim and run chunks of the current job on worker w until none are left.
  void run_chunks(unsigned w) noexcept {
    for (;;) {
      const std::size_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks_) return;
      // chunk c covers units [c * units / chunks, (c + 1) * units / chunks)
      const std::size_t ub = c * units_ / chunks_, ue = (c + 1) * units_ / chunks_;
      const std::size_t b = ub * grain_, e = std::min(ue * grain_, n_items_);
      if (b < e) task_(ctx_, b, e, w);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void loop(unsigned w) {
    std::uint64_t seen = 0;
    for (;;) {
      // spin for a new (even) generation, then sleep
      std::uint64_t g = gen_.load(std::memory_order_acquire);
      for (unsigned i = 0; (g == seen || (g & 1)) && i < spin_iterations; ++i) {
        cpu_relax();
        g = gen_.load(std::memory_order_acquire);
      }
      if (g == seen || (g & 1)) {
        std::unique_lock<std::mutex> lk(m_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(lk, [&] {
          const std::uint64_t v = gen_.load(std::memory_order_acquire);
          return stop_ || (v != seen && !(v & 1));
        });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        if (stop_) return;
        continue;
      }
      if (stop_) return;
      // join the job of generation g, unless it was closed meanwhile
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (gen_.load(std::memory_order_seq_cst) == g) run_chunks(w);
      active_.fetch_sub(1, std::memory_order_seq_cst);
      seen = g;
    }
  }

  unsigned n_ = 1;
  std::vector<std::thread> workers_;
  std::mutex job_m_;  // one job at a time
  std::mutex m_;      // sleeping workers
  std::condition_variable cv_;
  std::atomic<std::uint64_t> gen_{0};   // even: a job is open; odd: it is being replaced
  std::atomic<unsigned> active_{0};     // workers inside the current job
  std::atomic<unsigned> sleepers_{0};
  std::atomic<std::size_t> next_{0};    // next chunk to claim
  std::atomic<std::size_t> done_{0};    // chunks finished
  std::atomic<bool> stop_{false};       // set under m_ (read by spinning workers too)
  // the current job (written while no worker is inside, read after the generation is seen)
  std::size_t n_items_ = 0, grain_ = 1, units_ = 0, chunks_ = 0;
  executor::task_fn task_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace edgelm
