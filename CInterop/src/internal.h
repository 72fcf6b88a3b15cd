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
#include <map>
#include <string>
#include <vector>

#include "../include/CInterop.h"

namespace cinterop {

// Process-wide settings applied before the first server or channel exists.
void initialize_once();

// Drains a completion queue until it is shut down, handing every tag to `handle`. After each event it
// keeps polling without blocking for a short while (RAY_RPC_POLL_SPIN_US, default below) before it
// blocks in Next: on a virtual machine, waking a thread whose vCPU went idle costs more than a whole
// RPC's work, and replies usually come within that window.
template <typename Handle>
void drain_queue(grpc::CompletionQueue *cq, Handle handle);

int poll_spin_microseconds();

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
    void *tag = nullptr;
    bool ok = false;
    auto last_event = std::chrono::steady_clock::now();
    while (true) {
        if (spin.count() > 0) {
            auto status = cq->AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
            if (status == grpc::CompletionQueue::GOT_EVENT) {
                handle(tag, ok);
                last_event = std::chrono::steady_clock::now();
                continue;
            }
            if (status == grpc::CompletionQueue::SHUTDOWN) return;
            if (std::chrono::steady_clock::now() - last_event < spin) {
                sched_yield();  // let runnable threads have the core while this one waits
                continue;
            }
        }
        if (!cq->Next(&tag, &ok)) return;
        handle(tag, ok);
        last_event = std::chrono::steady_clock::now();
    }
}

}  // namespace cinterop

#endif
