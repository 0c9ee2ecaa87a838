// A bounded, closable queue between threads, for the producer/consumer
// benchmarks and tests: Push blocks while it is full, Pop blocks until an
// item arrives or the queue is closed and drained.
#ifndef RULLOC_BENCH_BATCH_QUEUE_H_
#define RULLOC_BENCH_BATCH_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace rulloc::bench {

template <class T>
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}

  void Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(std::move(item));
    changed_.notify_all();
  }
  // False once the queue is closed and empty.
  bool Pop(T* item) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    *item = std::move(items_.front());
    items_.pop_front();
    changed_.notify_all();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    changed_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace rulloc::bench

#endif  // RULLOC_BENCH_BATCH_QUEUE_H_
