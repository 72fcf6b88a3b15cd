// Helpers shared by the shim's translation units. C++ only; never included by Swift.
#ifndef CINTEROP_INTERNAL_H
#define CINTEROP_INTERNAL_H

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../include/CInterop.h"

namespace cinterop {

// Process-wide settings applied before the first server or channel exists.
void initialize_once();

// Drains a completion queue until it is shut down, handing every tag to `handle`. After each event it
// keeps polling without blocking for a short while (RAY_RPC_POLL_SPIN_US, default 1 ms) before it
// blocks in Next, if no other queue thread of the process is doing so: on a virtual machine, waking a
// thread whose vCPU went idle costs more than a whole RPC's work, and replies usually come within
// that window.
template <typename Handle>
void drain_queue(grpc::CompletionQueue *cq, Handle handle);

// gRPC's poll engine reads a connection's socket only when the completion queue it belongs to runs
// dry. A stream whose writes complete at once (into the socket buffer) keeps its queue busy with write
// completions, so the socket is never read: a peer's RST_STREAM or status would wait until the buffers
// fill. A completion-queue thread that has handed out many events in a row without finding its queue
// empty says so here; a stream then leaves its next write for after_next_poll.
bool queue_needs_poll();

// On a completion-queue thread: runs `work` on this thread once the queue has been found empty and
// its sockets read (or when it shuts down).
void after_next_poll(std::function<void()> work);

struct QueueThreadState {
    int events_since_poll = 0;
    std::vector<std::function<void()>> deferred;
};
QueueThreadState &queue_thread_state();
constexpr int kEventsBeforePoll = 16;

int poll_spin_microseconds();

// At most one completion-queue thread per process spins (polls without blocking after an event, see
// drain_queue) at a time: a process with many queues (an embedded cluster, a test process) would
// otherwise spin on several cores at once. The others block in Next right after their event.
bool try_acquire_spin_token();
void release_spin_token();

// Live-object counters behind cinterop_live_object_counts.
struct LiveCounters {
    std::atomic<int64_t> servers{0};
    std::atomic<int64_t> server_calls{0};
    std::atomic<int64_t> channels{0};
    std::atomic<int64_t> client_calls{0};
};
LiveCounters &live_counters();

// A heap copy for the caller to free with cinterop_free.
inline char *dup_string(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out == nullptr) return nullptr;
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

inline void set_error(char **err, const std::string &message) {
    if (err != nullptr) *err = dup_string(message);
}

// Copies len bytes into a ByteBuffer of one slice.
inline grpc::ByteBuffer make_buffer(const uint8_t *data, size_t len) {
    grpc::Slice slice(data == nullptr ? static_cast<const void *>("") : data, len);
    return grpc::ByteBuffer(&slice, 1);
}

// A flat view of a received message. Holds a reference to the slice, so the bytes stay valid as long
// as this object lives, whatever happens to the ByteBuffer it came from.
// A buffer that cannot be dumped (never initialised, as for a zero-length message) leaves the slice
// empty, which is what such a message is.
struct FlatMessage {
    grpc::Slice slice;
    explicit FlatMessage(grpc::ByteBuffer &buffer) { (void)buffer.DumpToSingleSlice(&slice); }
    const uint8_t *data() const { return slice.begin(); }
    size_t size() const { return slice.size(); }
};

// Metadata entries pointing into a multimap that outlives this vector.
template <typename Multimap>
std::vector<cinterop_metadata> metadata_view(const Multimap &map) {
    std::vector<cinterop_metadata> out;
    out.reserve(map.size());
    for (const auto &entry : map) {
        out.push_back(cinterop_metadata{entry.first.data(), entry.first.size(), entry.second.data(),
                                        entry.second.size()});
    }
    return out;
}

inline bool valid_status_code(int code) { return code >= 0 && code <= 16; }

template <typename Handle>
void drain_queue(grpc::CompletionQueue *cq, Handle handle) {
    const auto spin = std::chrono::microseconds(poll_spin_microseconds());
    QueueThreadState &state = queue_thread_state();
    auto run_deferred = [&state] {
        std::vector<std::function<void()>> work;
        work.swap(state.deferred);
        for (auto &item : work) item();
    };
    void *tag = nullptr;
    bool ok = false;
    auto last_event = std::chrono::steady_clock::now();
    bool spinning = false;  // this thread holds the process's spin token
    auto stop_spinning = [&spinning] {
        if (spinning) release_spin_token();
        spinning = false;
    };
    while (true) {
        // Spin after an event only with the token: one queue thread per process at a time.
        if (!spinning && spin.count() > 0 && std::chrono::steady_clock::now() - last_event < spin) {
            spinning = try_acquire_spin_token();
        }
        if (spinning || !state.deferred.empty()) {
            auto status = cq->AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
            if (status == grpc::CompletionQueue::GOT_EVENT) {
                stop_spinning();  // another queue's thread may spin while this one handles the event
                state.events_since_poll++;
                handle(tag, ok);
                last_event = std::chrono::steady_clock::now();
                continue;
            }
            if (status == grpc::CompletionQueue::SHUTDOWN) {
                stop_spinning();
                run_deferred();
                return;
            }
            // TIMEOUT: the queue was empty, so this call polled the sockets.
            state.events_since_poll = 0;
            if (!state.deferred.empty()) {
                run_deferred();
                last_event = std::chrono::steady_clock::now();
                continue;
            }
            if (spinning && std::chrono::steady_clock::now() - last_event < spin) {
                sched_yield();  // let runnable threads have the core while this one waits
                continue;
            }
        }
        stop_spinning();
        if (!cq->Next(&tag, &ok)) {
            run_deferred();
            return;
        }
        state.events_since_poll++;
        handle(tag, ok);
        last_event = std::chrono::steady_clock::now();
    }
}

}  // namespace cinterop

#endif
