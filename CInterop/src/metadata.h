#ifndef CINTEROP_METADATA_H
#define CINTEROP_METADATA_H

#include <string>

#include "../include/CInterop.h"

namespace cinterop {

// True when gRPC will accept the entry: a lowercase key of [0-9a-z_.-] not starting with "grpc-",
// and a printable ASCII value unless the key ends in "-bin".
bool valid_metadata_entry(const cinterop_metadata &entry);
bool valid_metadata(const cinterop_metadata *entries, size_t count);

inline std::string key_string(const cinterop_metadata &entry) { return std::string(entry.key, entry.key_len); }
inline std::string value_string(const cinterop_metadata &entry) {
    return entry.value_len == 0 ? std::string() : std::string(entry.value, entry.value_len);
}

}  // namespace cinterop

#endif
