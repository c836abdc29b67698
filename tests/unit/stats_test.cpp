// Unit tests of the per-process counters (stats.hpp) and the allocation counter
// (alloc_counter.cpp): sums over live and exited threads, gauges that go down, the /stats JSON
// line, and operator new being counted.
#include <gtest/gtest.h>

#include <cstdint>
#include <latch>
#include <map>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "stats.hpp"

namespace iolab {
namespace {

// A small strict JSON reader: validates one value and flattens object members into
// "outer.inner" -> raw text of the scalar value.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  bool parse(std::map<std::string, std::string>& out) {
    skip_ws();
    if (!value("", out)) return false;
    skip_ws();
    return i_ == s_.size();
  }

 private:
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool string(std::string& out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i_ >= s_.size()) return false;
        if (std::string_view("\"\\/bfnrtu").find(s_[i_]) == std::string_view::npos) return false;
      }
      out.push_back(s_[i_++]);
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool number() {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    const std::size_t digits = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    if (i_ == digits) return false;
    if (s_[digits] == '0' && i_ - digits > 1) return false;  // no leading zeros
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      const std::size_t frac = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == frac) return false;
    }
    return i_ > start;
  }
  bool value(const std::string& path, std::map<std::string, std::string>& out) {
    skip_ws();
    if (i_ >= s_.size()) return false;
    const std::size_t start = i_;
    if (s_[i_] == '{') {
      ++i_;
      out[path] = "{object}";
      if (eat('}')) return true;
      do {
        skip_ws();
        std::string key;
        if (!string(key) || !eat(':')) return false;
        const std::string member = path.empty() ? key : path + "." + key;
        if (out.count(member)) return false;  // duplicate key
        if (!value(member, out)) return false;
      } while (eat(','));
      return eat('}');
    }
    if (s_[i_] == '[') {
      ++i_;
      out[path] = "[array]";
      if (eat(']')) return true;
      int index = 0;
      do {
        if (!value(path + "[" + std::to_string(index++) + "]", out)) return false;
      } while (eat(','));
      return eat(']');
    }
    if (s_[i_] == '"') {
      std::string text;
      if (!string(text)) return false;
      out[path] = text;
      return true;
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        out[path] = std::string(word);
        return true;
      }
    }
    if (!number()) return false;
    out[path] = std::string(s_.substr(start, i_ - start));
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

TEST(JsonReaderTest, AcceptsAndRejects) {
  std::map<std::string, std::string> m;
  EXPECT_TRUE(JsonReader(R"({"a":1,"b":{"c":"x"},"d":[1,2]})").parse(m));
  EXPECT_EQ(m["b.c"], "x");
  for (std::string_view bad : {R"({"a":1,})", R"({"a":01})", R"({"a":1}{)", R"({"a" 1})",
                               R"({"a":1,"a":2})", R"({"a":"x)"}) {
    std::map<std::string, std::string> ignored;
    EXPECT_FALSE(JsonReader(bad).parse(ignored)) << bad;
  }
}

TEST(StatsTest, CountersFromManyThreadsSumWhileAliveAndAfterExit) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10000;
  const std::uint64_t before = counter_total(Counter::kSteals);
  std::latch counted(kThreads);
  std::latch may_exit(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) count(Counter::kSteals);
      count(Counter::kSteals, 5);
      counted.count_down();
      may_exit.wait();
    });
  }
  counted.wait();
  const std::uint64_t expected = kThreads * (kPerThread + 5);
  EXPECT_EQ(counter_total(Counter::kSteals) - before, expected) << "summed over live threads";
  may_exit.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter_total(Counter::kSteals) - before, expected) << "exited threads are kept";
  // And again, with new threads counting after the others have gone.
  std::thread([] { count(Counter::kSteals, 7); }).join();
  EXPECT_EQ(counter_total(Counter::kSteals) - before, expected + 7);
}

TEST(StatsTest, CountersOfDifferentKindsStayApart) {
  const std::uint64_t parks = counter_total(Counter::kParks);
  const std::uint64_t sqes = counter_total(Counter::kSqesSubmitted);
  std::thread([] {
    count(Counter::kParks, 3);
    count(Counter::kSqesSubmitted, 11);
  }).join();
  EXPECT_EQ(counter_total(Counter::kParks) - parks, 3u);
  EXPECT_EQ(counter_total(Counter::kSqesSubmitted) - sqes, 11u);
}

TEST(StatsTest, GaugesGoDownAcrossThreads) {
  const std::uint64_t before = counter_total(Counter::kPoolReservedBytes);
  std::thread([] { count(Counter::kPoolReservedBytes, 1000); }).join();
  std::thread([] { count_down(Counter::kPoolReservedBytes, 400); }).join();
  EXPECT_EQ(counter_total(Counter::kPoolReservedBytes) - before, 600u);
  count_down(Counter::kPoolReservedBytes, 600);
  EXPECT_EQ(counter_total(Counter::kPoolReservedBytes), before);
}

// A thread_local whose destructor counts after the thread's counter block has been retired.
struct CountsAtThreadExit {
  ~CountsAtThreadExit() { count(Counter::kCqesReaped, 13); }
};

TEST(StatsTest, CountsDuringThreadExitAreKept) {
  const std::uint64_t before = counter_total(Counter::kCqesReaped);
  std::thread([] {
    thread_local CountsAtThreadExit late;  // constructed before the counter block: destroyed after
    static_cast<void>(&late);
    count(Counter::kCqesReaped, 2);
  }).join();
  EXPECT_EQ(counter_total(Counter::kCqesReaped) - before, 15u);
}

TEST(StatsTest, CounterNamesAreUniqueAndMatchTheJson) {
  std::set<std::string_view> names;
  for (unsigned i = 0; i < kCounterCount; ++i) {
    const std::string_view name = counter_name(static_cast<Counter>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
  }
  EXPECT_EQ(counter_name(Counter::kRequests), "requests");
  EXPECT_EQ(counter_name(Counter::kSysRead), "read");
  EXPECT_EQ(counter_name(Counter::kSysEpollWait), "epoll_wait");
  EXPECT_EQ(counter_name(Counter::kPoolHits), "pool_hits");
}

TEST(StatsTest, StatsJsonIsOneLineWithTheDesignKeys) {
  count(Counter::kConnectionsAccepted, 3);
  count(Counter::kConnectionsClosed, 1);
  const std::string json = stats_json("test");
  EXPECT_EQ(json.find('\n'), std::string::npos) << "one line";
  std::map<std::string, std::string> m;
  ASSERT_TRUE(JsonReader(json).parse(m)) << json;
  EXPECT_EQ(m[""], "{object}");
  EXPECT_EQ(m["model"], "test");
  // The /stats counters every server reports (servers/core/http/stats.hpp and stats.cpp).
  for (const char* key :
       {"pid", "requests", "stats_requests", "connections_accepted", "connections_open",
        "connections_refused", "bytes_in", "bytes_out", "allocations", "allocated_bytes",
        "cpu_user_us", "cpu_sys_us", "cpu_clock_us", "voluntary_context_switches",
        "involuntary_context_switches", "rss_kb", "fd_soft_limit", "fd_hard_limit",
        "syscalls.read", "syscalls.write", "syscalls.accept", "syscalls.epoll_wait",
        "syscalls.epoll_ctl", "syscalls.select", "syscalls.io_uring_enter",
        "model_counters.pool_hits", "model_counters.pool_misses",
        "model_counters.pool_reserved_bytes", "model_counters.steals", "model_counters.parks",
        "model_counters.sqes_submitted"}) {
    ASSERT_TRUE(m.count(key)) << "missing " << key << " in " << json;
    EXPECT_NE(m[key].find_first_of("0123456789"), std::string::npos) << key << " is a number";
  }
  // Every counter appears once, at the top level or in its group.
  for (unsigned i = 0; i < kCounterCount; ++i) {
    const std::string name(counter_name(static_cast<Counter>(i)));
    const int found = static_cast<int>(m.count(name) + m.count("syscalls." + name) +
                                       m.count("model_counters." + name));
    EXPECT_EQ(found, 1) << name;
  }
  EXPECT_GT(std::stoull(m["rss_kb"]), 0u);
  EXPECT_GT(std::stoull(m["fd_hard_limit"]), 0u);
  EXPECT_GE(std::stoull(m["connections_accepted"]), 3u);
}

TEST(StatsTest, StatsJsonReportsTheTotals) {
  std::thread([] { count(Counter::kConnectionsRefused, 4); }).join();
  const std::uint64_t refused = counter_total(Counter::kConnectionsRefused);
  const std::uint64_t open = counter_total(Counter::kConnectionsAccepted) -
                             counter_total(Counter::kConnectionsClosed);
  std::map<std::string, std::string> m;
  ASSERT_TRUE(JsonReader(stats_json("x")).parse(m));
  EXPECT_EQ(m["connections_refused"], std::to_string(refused));
  EXPECT_EQ(m["connections_open"], std::to_string(open));
}

// Escapes the optimizer: a pointer stored here is observable, so the allocation must happen.
void* volatile g_sink = nullptr;

struct alignas(128) OverAligned {
  char bytes[256];
};

TEST(AllocCounterTest, CountsNew) {
  const std::uint64_t allocations = counter_total(Counter::kAllocations);
  const std::uint64_t bytes = counter_total(Counter::kAllocatedBytes);
  char* p = new char[48];
  g_sink = p;
  EXPECT_EQ(counter_total(Counter::kAllocations) - allocations, 1u);
  EXPECT_EQ(counter_total(Counter::kAllocatedBytes) - bytes, 48u);
  delete[] p;
  EXPECT_EQ(counter_total(Counter::kAllocations) - allocations, 1u) << "frees are not counted";
}

TEST(AllocCounterTest, CountsAlignedAndNothrowNew) {
  const std::uint64_t allocations = counter_total(Counter::kAllocations);
  auto* a = new OverAligned;
  g_sink = a;
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 128, 0u);
  auto* b = new (std::nothrow) int(7);
  g_sink = b;
  EXPECT_EQ(counter_total(Counter::kAllocations) - allocations, 2u);
  delete a;
  delete b;
}

TEST(AllocCounterTest, CountsNewInOtherThreads) {
  const std::uint64_t allocations = counter_total(Counter::kAllocations);
  std::latch started(1);
  std::thread t([&] {
    // Thread start-up itself may allocate; count only what happens after the latch is read.
    started.wait();
    for (int i = 0; i < 10; ++i) {
      int* p = new int(i);
      g_sink = p;
      delete p;
    }
  });
  const std::uint64_t after_start = counter_total(Counter::kAllocations);
  started.count_down();
  t.join();
  EXPECT_GE(counter_total(Counter::kAllocations) - allocations, 10u);
  EXPECT_GE(counter_total(Counter::kAllocations) - after_start, 10u);
}

}  // namespace
}  // namespace iolab
