// edgelm/core/thread_pool.hpp - the default executor: a fixed pool of threads (std::thread natively,
// pthreads in WebAssembly builds with -pthread). The calling thread takes part (worker 0), so a pool of
// N threads starts N - 1. Workers spin briefly after each job (a forward pass hands out ~5 jobs per
// layer, microseconds apart) and then block on a condition variable, so an idle pool burns no core.
// threads = 1 starts nothing and runs inline.
//
// Not copyable or movable (the workers hold its address). Create it once, before the session, and keep it
// alive while any state uses its executor().
#pragma once
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
      gen_.fetch_add(1, std::memory_order_release);
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

  // Run task over [0, n): worker w takes static_chunk(n, grain, threads(), w). Blocks until all are done.
  // One job at a time: calls from several threads at once are serialised.
  void parallel_for(std::size_t n, std::size_t grain, executor::task_fn task, void* ctx) noexcept {
    std::lock_guard<std::mutex> job(job_m_);
    if (n_ == 1 || n <= grain) {
      task(ctx, 0, n, 0);
      return;
    }
    n_items_ = n;
    grain_ = grain;
    task_ = task;
    ctx_ = ctx;
    pending_.store(n_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    run_chunk(0);
    // wait for the others: spin, then yield (chunks are short: a fraction of one matrix product)
    for (unsigned i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
      if (i < spin_iterations) cpu_relax();
      else std::this_thread::yield();
    }
  }

 private:
  static constexpr unsigned spin_iterations = 1u << 14;

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

  void run_chunk(unsigned w) noexcept {
    const auto [b, e] = static_chunk(n_items_, grain_, n_, w);
    if (b < e) task_(ctx_, b, e, w);
  }

  void loop(unsigned w) {
    std::uint64_t seen = 0;
    for (;;) {
      // spin for a new job, then sleep
      std::uint64_t g = gen_.load(std::memory_order_acquire);
      for (unsigned i = 0; g == seen && i < spin_iterations; ++i) {
        cpu_relax();
        g = gen_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(m_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        g = gen_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_) return;
      run_chunk(w);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  unsigned n_ = 1;
  std::vector<std::thread> workers_;
  std::mutex job_m_;  // one job at a time
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<std::uint64_t> gen_{0};
  std::atomic<unsigned> pending_{0};
  std::atomic<unsigned> sleepers_{0};
  bool stop_ = false;
  // the current job (written before gen_ is bumped, read after it is seen)
  std::size_t n_items_ = 0, grain_ = 1;
  executor::task_fn task_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace edgelm
