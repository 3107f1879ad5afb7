// libobjc stand-in: per-thread autorelease pools (kestrel_sim_objc.h).
#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "kestrel_sim_objc.h"

namespace {

struct Counters {
  std::atomic<uint64_t> pushes{0}, pops{0}, out_of_order_pops{0}, unknown_pops{0},
      autoreleased{0}, outside_pool{0}, left_open_at_exit{0};
};
Counters counters;

using Pending = std::pair<void*, void (*)(void*)>;

struct Pool {
  unsigned long token;
  std::vector<Pending> objects;
};

struct ThreadPools {
  std::vector<Pool> stack;
  ~ThreadPools() {
    if (!stack.empty()) counters.left_open_at_exit += stack.size();
  }
};
thread_local ThreadPools pools;
std::atomic<unsigned long> next_token{1};

void drain(Pool& pool) {
  for (auto it = pool.objects.rbegin(); it != pool.objects.rend(); ++it) it->second(it->first);
}

}  // namespace

extern "C" {

void* objc_autoreleasePoolPush(void) {
  ++counters.pushes;
  const unsigned long token = next_token.fetch_add(1);
  pools.stack.push_back(Pool{token, {}});
  return reinterpret_cast<void*>(token);
}

void objc_autoreleasePoolPop(void* token) {
  ++counters.pops;
  const auto wanted = reinterpret_cast<unsigned long>(token);
  auto& stack = pools.stack;
  std::size_t at = stack.size();
  while (at > 0 && stack[at - 1].token != wanted) --at;
  if (at == 0) {
    ++counters.unknown_pops;
    return;
  }
  if (at != stack.size()) ++counters.out_of_order_pops;
  while (stack.size() >= at) {
    Pool pool = std::move(stack.back());
    stack.pop_back();
    drain(pool);
  }
}

void kestrel_sim_objc_autorelease(void* object, void (*release)(void*)) {
  if (pools.stack.empty()) {
    ++counters.outside_pool;
    return;
  }
  ++counters.autoreleased;
  pools.stack.back().objects.emplace_back(object, release);
}

kestrel_sim_objc_counts kestrel_sim_objc_get_counts(void) {
  return kestrel_sim_objc_counts{counters.pushes,       counters.pops,
                                 counters.out_of_order_pops, counters.unknown_pops,
                                 counters.autoreleased, counters.outside_pool,
                                 counters.left_open_at_exit};
}

void kestrel_sim_objc_reset(void) {
  counters.pushes = counters.pops = counters.out_of_order_pops = counters.unknown_pops = 0;
  counters.autoreleased = counters.outside_pool = counters.left_open_at_exit = 0;
}

int kestrel_sim_objc_depth(void) { return static_cast<int>(pools.stack.size()); }

}  // extern "C"
