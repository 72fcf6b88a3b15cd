// Metadata validation and the one free function. gRPC core asserts (aborts the process) when an
// operation carries metadata it considers invalid, so the shim checks every key and value first.
#include "metadata.h"
#include "internal.h"

#include <cstdlib>
#include <mutex>

#include <malloc.h>

#include <absl/synchronization/mutex.h>

extern "C" void cinterop_free(void *p) { std::free(p); }

extern "C" cinterop_live_objects cinterop_live_object_counts(void) {
    auto &c = cinterop::live_counters();
    return cinterop_live_objects{c.servers.load(), c.server_calls.load(), c.channels.load(), c.client_calls.load()};
}

namespace cinterop {

// 1 ms: a task's round trip between two processes is ~250 us here, so at 200 us both sides' threads
// had gone to sleep by the time the next message came; alternating A/B runs of sync tasks gave
// 3.8k-4.3k/s at 1000 against 3.4k-3.5k at 200 (5000 was worse again). An idle process still spins
// only after an event.
constexpr int kDefaultPollSpinMicroseconds = 1000;

QueueThreadState &queue_thread_state() {
    static thread_local QueueThreadState state;
    return state;
}

bool queue_needs_poll() { return queue_thread_state().events_since_poll >= kEventsBeforePoll; }

void after_next_poll(std::function<void()> work) { queue_thread_state().deferred.push_back(std::move(work)); }

namespace {
std::atomic<bool> spin_token{false};
}

bool try_acquire_spin_token() {
    if (spin_token.load(std::memory_order_relaxed)) return false;
    bool expected = false;
    return spin_token.compare_exchange_strong(expected, true, std::memory_order_acquire, std::memory_order_relaxed);
}

void release_spin_token() { spin_token.store(false, std::memory_order_release); }

int poll_spin_microseconds() {
    static const int value = [] {
        const char *text = std::getenv("RAY_RPC_POLL_SPIN_US");
        if (text == nullptr || *text == '\0') return kDefaultPollSpinMicroseconds;
        long parsed = std::strtol(text, nullptr, 10);
        return parsed < 0 ? 0 : static_cast<int>(parsed > 100000 ? 100000 : parsed);
    }();
    return value;
}

LiveCounters &live_counters() {
    static LiveCounters *counters = new LiveCounters();  // never destroyed: used until exit
    return *counters;
}

void initialize_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // Debian builds abseil without NDEBUG, which turns on absl::Mutex deadlock detection: a global
        // lock-order graph updated on every lock gRPC takes (measured at several percent of an RPC).
        absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
        // Messages of a MiB or more are glibc "large" allocations, each mmap'd and unmapped again, so
        // every copy of one page-faults on fresh zeroed pages (measured: 1 MiB echoes ran at 40% of
        // the speed they reach without). Keep such blocks in the heap instead, unless the user tuned
        // malloc through its own environment variables.
        if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr && std::getenv("RAY_KEEP_MALLOC_DEFAULTS") == nullptr) {
            mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
            mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
        }
        // gRPC's poll() engine instead of epoll1 (gRPC reads this when it first initializes, after
        // this). With epoll1 one thread at a time polls every socket of the process and hands each
        // event to the queue it belongs to; with poll each queue's thread reads its own sockets. On 2
        // cores, alternating A/B runs of a task round trip between two processes (docs/benchmarks.md):
        // 3.6k-4.5k sync tasks/s against 3.0k-3.1k with epoll1. Streams need queue_needs_poll here.
        // The user's setting wins.
        setenv("GRPC_POLL_STRATEGY", "poll", /*overwrite=*/0);
    });
}

bool valid_metadata_entry(const cinterop_metadata &entry) {
    if (entry.key == nullptr || entry.key_len == 0) return false;
    for (size_t i = 0; i < entry.key_len; i++) {
        char c = entry.key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) return false;
    }
    // Reserved by gRPC itself.
    if (entry.key_len >= 5 && std::string(entry.key, 5) == "grpc-") return false;
    bool binary = entry.key_len > 4 && std::string(entry.key + entry.key_len - 4, 4) == "-bin";
    if (binary) return entry.value != nullptr || entry.value_len == 0;
    for (size_t i = 0; i < entry.value_len; i++) {
        unsigned char c = static_cast<unsigned char>(entry.value[i]);
        if (c < 0x20 || c > 0x7e) return false;
    }
    return true;
}

bool valid_metadata(const cinterop_metadata *entries, size_t count) {
    if (count > 0 && entries == nullptr) return false;
    for (size_t i = 0; i < count; i++) {
        if (!valid_metadata_entry(entries[i])) return false;
    }
    return true;
}

}  // namespace cinterop
