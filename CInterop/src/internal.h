// Helpers shared by the shim's translation units. C++ only; never included by Swift.
#ifndef CINTEROP_INTERNAL_H
#define CINTEROP_INTERNAL_H

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../include/CInterop.h"

namespace cinterop {

// Process-wide settings applied before the first server or channel exists.
void initialize_once();

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
struct FlatMessage {
    grpc::Slice slice;
    bool ok = false;
    explicit FlatMessage(grpc::ByteBuffer &buffer) { ok = buffer.DumpToSingleSlice(&slice).ok(); }
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

}  // namespace cinterop

#endif
