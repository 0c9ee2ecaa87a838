// A small multithreaded "server": worker threads parse synthetic requests
// into maps and strings, build responses, and hand them to a writer thread
// that checksums and frees them, so most memory is freed on another thread
// than the one that allocated it. Its allocator is Rulloc, through
// cc_binary(malloc = "@rulloc//:malloc").
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"

namespace {

struct Response {
  std::string body;
  std::vector<std::string> headers;
};

class Outbox {
 public:
  void Push(std::unique_ptr<Response> r) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(r));
    ready_.notify_one();
  }
  std::unique_ptr<Response> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return nullptr;
    auto r = std::move(queue_.front());
    queue_.pop_front();
    return r;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    ready_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<Response>> queue_;
  bool closed_ = false;
};

std::unique_ptr<Response> Handle(int worker, int n) {
  std::string request = "GET /items/" + std::to_string(n) + " HTTP/1.1\r\n";
  for (int h = 0; h < 8; ++h) {
    request += "X-Header-" + std::to_string(h) + ": " + std::string(n % 50 + h, 'v') + "\r\n";
  }
  std::map<std::string, std::string> headers;
  size_t start = request.find("\r\n") + 2;
  while (start < request.size()) {
    const size_t end = request.find("\r\n", start);
    const std::string line = request.substr(start, end - start);
    const size_t colon = line.find(':');
    headers[line.substr(0, colon)] = line.substr(colon + 2);
    start = end + 2;
  }
  auto response = std::make_unique<Response>();
  for (const auto& [name, value] : headers) {
    response->headers.push_back(name + "=" + std::to_string(value.size()));
  }
  response->body.assign(static_cast<size_t>(100 + (n * 7919 + worker) % 20000), 'a' + n % 26);
  return response;
}

}  // namespace

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::strcmp(argv[1], "--check-rulloc") == 0;
  constexpr int kWorkers = 4;
  constexpr int kRequestsPerWorker = 50000;
  Outbox outbox;
  unsigned long long checksum = 0;
  long responses = 0;
  std::thread writer([&] {
    while (auto r = outbox.Pop()) {
      for (const auto& h : r->headers) checksum += h.size();
      checksum += r->body.size() * static_cast<unsigned char>(r->body[0]);
      ++responses;
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&outbox, w] {
      for (int n = 0; n < kRequestsPerWorker; ++n) outbox.Push(Handle(w, n));
    });
  }
  for (auto& t : workers) t.join();
  outbox.Close();
  writer.join();
  std::printf("served %ld responses, checksum %llu\n", responses, checksum);

  if (check) {
    void* probe = std::malloc(100);
    const bool owned = rulloc::DefaultAllocator().owns(probe);
    std::free(probe);
    const rulloc::ProcessStats stats = rulloc::GetProcessStats();
    std::printf("allocations served by rulloc: %s (%zu refills, %zu flushes)\n",
                owned ? "yes" : "no", stats.refills, stats.flushes);
    if (!owned || stats.refills == 0 || responses != kWorkers * kRequestsPerWorker) return 1;
  }
  return 0;
}
