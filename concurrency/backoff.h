// How a thread waits for another to get on: for a lock's holder, or for a
// purge that has a bucket's blocks or regions off its lists.
//
//   Wait() #  1 ..  64   CPU pause          (the other is running)
//            65 .. 128   sched_yield
//           129 ..       sleep 1 µs, doubling to about 1 ms
//
// A yield gives the CPU only to threads of the same or a higher priority,
// so a real-time waiter that only yielded would keep a preempted ordinary
// thread off its CPU for good; a sleep does not. Never allocates.
#ifndef RULLOC_CONCURRENCY_BACKOFF_H_
#define RULLOC_CONCURRENCY_BACKOFF_H_

#include <cstdint>

namespace rulloc {

class Backoff {
 public:
  void Wait();
  // The other thread got on: the next wait starts with spinning again.
  void Reset() { waits_ = 0; }

 private:
  uint32_t waits_ = 0;  // saturates: a long wait keeps sleeping
};

}  // namespace rulloc

#endif  // RULLOC_CONCURRENCY_BACKOFF_H_
