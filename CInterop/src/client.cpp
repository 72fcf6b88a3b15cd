// The generic gRPC client, on grpc++'s callback API (no completion-queue thread of ours).
//
// A call object is shared by gRPC and Swift through a reference count of two: gRPC drops its reference
// after the DONE event, Swift through grpcshim_call_release. A streaming call holds two gRPC "holds"
// (one for the read flow, one for the write flow) because Swift starts reads and writes from outside
// gRPC's reactions; each hold is removed exactly once, when its flow can start nothing more. An
// operation is started outside our mutex (gRPC may run a reaction inline), by the one thread that
// claimed it under the mutex; a hold is never removed while its flow has an operation being started.
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_callback.h>

#include "internal.h"
#include "metadata.h"

namespace {
constexpr int kDefaultMessageLimit = 4 * 1024 * 1024;
}

struct grpcshim_channel {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<grpc::GenericStub> stub;
};

struct grpcshim_call : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
    std::atomic<int> refs{2};
    grpc::ClientContext context;
    grpcshim_call_event_cb callback;
    void *ctx;

    // Unary calls.
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;

    // Streaming calls; guarded by mu.
    std::mutex mu;
    bool read_claimed = false;     // a read is being started or is in flight
    bool read_closed = false;      // no read will start again
    bool read_hold_held = false;
    bool write_claimed = false;    // a write or writes-done is being started or is in flight
    bool write_closed = false;     // no write will start again
    bool write_hold_held = false;
    bool writes_done_requested = false;
    bool writes_done_started = false;
    bool released = false;
    std::deque<grpc::ByteBuffer> write_queue;
    grpc::ByteBuffer read_buffer;
    grpc::ByteBuffer writing_buffer;
    size_t writing_bytes = 0;

    grpcshim_call(grpcshim_call_event_cb cb, void *c) : callback(cb), ctx(c) {}

    void unref() {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    void deliver_done(const grpc::Status &status, const uint8_t *data, size_t len, bool has_message) {
        auto trailing = cinterop::metadata_view(context.GetServerTrailingMetadata());
        const std::string &message = status.error_message();
        cinterop_event event{};
        event.kind = CINTEROP_EVENT_DONE;
        event.status_code = static_cast<int>(status.error_code());
        event.status_message = message.data();
        event.status_message_len = message.size();
        event.metadata = trailing.data();
        event.metadata_count = trailing.size();
        event.data = data;
        event.len = len;
        event.has_message = has_message ? 1 : 0;
        event.ok = status.ok() ? 1 : 0;
        callback(ctx, &event);
    }

    // ---- streaming ----

    // Requires mu. Claims the next write-flow operation; the caller starts it after unlocking.
    enum class WriteStep { none, write, writes_done, remove_hold };
    WriteStep claim_write_step() {
        if (write_claimed || !write_hold_held) return WriteStep::none;
        if (released) write_closed = true;
        if (!write_closed && !write_queue.empty()) {
            writing_buffer = std::move(write_queue.front());
            write_queue.pop_front();
            writing_bytes = writing_buffer.Length();
            write_claimed = true;
            return WriteStep::write;
        }
        if (!write_closed && writes_done_requested && !writes_done_started) {
            writes_done_started = true;
            write_closed = true;
            write_claimed = true;
            return WriteStep::writes_done;
        }
        if (write_closed) {
            write_queue.clear();
            write_hold_held = false;
            return WriteStep::remove_hold;
        }
        return WriteStep::none;
    }

    void run_write_step(WriteStep step) {
        switch (step) {
        case WriteStep::none:
            return;
        case WriteStep::write:
            StartWrite(&writing_buffer);
            return;
        case WriteStep::writes_done:
            StartWritesDone();
            return;
        case WriteStep::remove_hold:
            RemoveHold();
            return;
        }
    }

    // Requires mu. Removes the read hold when the read flow can start nothing more.
    bool claim_read_hold_removal() {
        if (read_claimed || !read_hold_held) return false;
        if (read_closed || released) {
            read_closed = true;
            read_hold_held = false;
            return true;
        }
        return false;
    }

    void OnReadDone(bool ok) override {
        std::unique_ptr<cinterop::FlatMessage> message;
        if (ok) message = std::make_unique<cinterop::FlatMessage>(read_buffer);
        bool remove_hold;
        WriteStep step = WriteStep::none;
        {
            std::lock_guard<std::mutex> lock(mu);
            read_claimed = false;
            if (!ok) {
                // No more messages means the call is over (status in): nothing more may be written.
                read_closed = true;
                write_closed = true;
                step = claim_write_step();
            }
            remove_hold = claim_read_hold_removal();
        }
        cinterop_event event{};
        event.ok = 1;
        if (ok) {
            event.kind = CINTEROP_EVENT_MESSAGE;
            event.data = message->data();
            event.len = message->size();
            event.has_message = 1;
        } else {
            event.kind = CINTEROP_EVENT_END_OF_MESSAGES;
        }
        callback(ctx, &event);
        run_write_step(step);
        if (remove_hold) RemoveHold();
    }

    void OnWriteDone(bool ok) override {
        size_t bytes;
        WriteStep step;
        {
            std::lock_guard<std::mutex> lock(mu);
            write_claimed = false;
            bytes = writing_bytes;
            writing_buffer.Clear();
            if (!ok) {
                write_closed = true;
                write_queue.clear();
            }
            step = claim_write_step();
        }
        cinterop_event event{};
        event.kind = CINTEROP_EVENT_WRITE_DONE;
        event.ok = ok ? 1 : 0;
        event.bytes = bytes;
        callback(ctx, &event);
        run_write_step(step);
    }

    void OnWritesDoneDone(bool /*ok*/) override {
        WriteStep step;
        {
            std::lock_guard<std::mutex> lock(mu);
            write_claimed = false;
            step = claim_write_step();
        }
        run_write_step(step);
    }

    void OnDone(const grpc::Status &status) override {
        deliver_done(status, nullptr, 0, false);
        unref();
    }
};

namespace {

void apply_options(grpcshim_call *call, const grpcshim_call_options *options) {
    if (options == nullptr) return;
    for (size_t i = 0; i < options->metadata_count; i++) {
        call->context.AddMetadata(cinterop::key_string(options->metadata[i]),
                                  cinterop::value_string(options->metadata[i]));
    }
    if (options->timeout_ms > 0) {
        call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options->timeout_ms));
    }
    if (options->wait_for_ready) call->context.set_wait_for_ready(true);
}

bool options_valid(const grpcshim_call_options *options) {
    return options == nullptr || cinterop::valid_metadata(options->metadata, options->metadata_count);
}

}  // namespace

extern "C" {

grpcshim_channel *grpcshim_channel_create(const grpcshim_channel_options *options, char **err) {
    if (options == nullptr || options->target == nullptr || options->target[0] == '\0') {
        cinterop::set_error(err, "missing channel target");
        return nullptr;
    }
    cinterop::initialize_once();
    bool has_cert = options->tls_client_cert_pem != nullptr;
    bool has_key = options->tls_client_key_pem != nullptr;
    if (has_cert != has_key) {
        cinterop::set_error(err, "a TLS client certificate needs its private key and vice versa");
        return nullptr;
    }
    if (has_cert && options->tls_root_ca_pem == nullptr) {
        cinterop::set_error(err, "a TLS client certificate needs a root CA");
        return nullptr;
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (options->tls_root_ca_pem != nullptr) {
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = options->tls_root_ca_pem;
        if (has_cert) {
            ssl.pem_cert_chain = options->tls_client_cert_pem;
            ssl.pem_private_key = options->tls_client_key_pem;
        }
        credentials = grpc::SslCredentials(ssl);
    } else {
        credentials = grpc::InsecureChannelCredentials();
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options->max_receive_message_bytes > 0 ? options->max_receive_message_bytes
                                                                        : kDefaultMessageLimit);
    args.SetMaxSendMessageSize(options->max_send_message_bytes > 0 ? options->max_send_message_bytes
                                                                  : kDefaultMessageLimit);
    int min_backoff = options->reconnect_backoff_min_ms > 0 ? options->reconnect_backoff_min_ms : 100;
    int max_backoff = options->reconnect_backoff_max_ms > 0 ? options->reconnect_backoff_max_ms : 2000;
    if (max_backoff < min_backoff) max_backoff = min_backoff;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, min_backoff);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, min_backoff);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff);
    // Each channel gets its own connection, so independent clients do not share one TCP stream.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, 64 * 1024);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 * 1024 * 1024);  // see server.cpp
    if (options->tls_server_name != nullptr) args.SetSslTargetNameOverride(options->tls_server_name);
    auto *ch = new grpcshim_channel();
    ch->channel = grpc::CreateCustomChannel(options->target, credentials, args);
    if (ch->channel == nullptr) {
        delete ch;
        cinterop::set_error(err, std::string("could not create a channel to ") + options->target);
        return nullptr;
    }
    ch->stub = std::make_unique<grpc::GenericStub>(ch->channel);
    return ch;
}

void grpcshim_channel_destroy(grpcshim_channel *ch) { delete ch; }

grpcshim_call *grpcshim_unary_call(grpcshim_channel *ch, const char *method, size_t method_len, const uint8_t *data,
                                   size_t len, const grpcshim_call_options *options, grpcshim_call_event_cb callback,
                                   void *ctx) {
    if (ch == nullptr || method == nullptr || callback == nullptr || !options_valid(options)) return nullptr;
    auto *call = new grpcshim_call(callback, ctx);
    call->request = cinterop::make_buffer(data, len);
    apply_options(call, options);
    ch->stub->UnaryCall(&call->context, std::string(method, method_len), grpc::StubOptions(), &call->request,
                        &call->response, [call](grpc::Status status) {
                            if (status.ok()) {
                                cinterop::FlatMessage message(call->response);
                                call->deliver_done(status, message.data(), message.size(), true);
                            } else {
                                call->deliver_done(status, nullptr, 0, false);
                            }
                            call->unref();
                        });
    return call;
}

grpcshim_call *grpcshim_stream_call(grpcshim_channel *ch, const char *method, size_t method_len,
                                    const grpcshim_call_options *options, grpcshim_call_event_cb callback, void *ctx) {
    if (ch == nullptr || method == nullptr || callback == nullptr || !options_valid(options)) return nullptr;
    auto *call = new grpcshim_call(callback, ctx);
    apply_options(call, options);
    ch->stub->PrepareBidiStreamingCall(&call->context, std::string(method, method_len), grpc::StubOptions(), call);
    call->read_hold_held = true;
    call->write_hold_held = true;
    call->AddMultipleHolds(2);
    call->StartCall();
    return call;
}

int grpcshim_call_read(grpcshim_call *call) {
    {
        std::lock_guard<std::mutex> lock(call->mu);
        if (call->read_claimed || call->read_closed || !call->read_hold_held || call->released) return -1;
        call->read_claimed = true;
    }
    call->StartRead(&call->read_buffer);
    return 0;
}

int grpcshim_call_write(grpcshim_call *call, const uint8_t *data, size_t len) {
    grpc::ByteBuffer buffer = cinterop::make_buffer(data, len);
    grpcshim_call::WriteStep step;
    {
        std::lock_guard<std::mutex> lock(call->mu);
        if (call->write_closed || call->writes_done_requested || call->released) return -1;
        call->write_queue.push_back(std::move(buffer));
        step = call->claim_write_step();
    }
    call->run_write_step(step);
    return 0;
}

int grpcshim_call_writes_done(grpcshim_call *call) {
    grpcshim_call::WriteStep step;
    {
        std::lock_guard<std::mutex> lock(call->mu);
        if (call->writes_done_requested || call->released) return -1;
        call->writes_done_requested = true;
        step = call->claim_write_step();
    }
    call->run_write_step(step);
    return 0;
}

void grpcshim_call_cancel(grpcshim_call *call) { call->context.TryCancel(); }

void grpcshim_call_ref(grpcshim_call *call) { call->refs.fetch_add(1, std::memory_order_relaxed); }

void grpcshim_call_unref(grpcshim_call *call) { call->unref(); }

void grpcshim_call_release(grpcshim_call *call) {
    bool remove_read = false;
    grpcshim_call::WriteStep step = grpcshim_call::WriteStep::none;
    {
        std::lock_guard<std::mutex> lock(call->mu);
        call->released = true;
        remove_read = call->claim_read_hold_removal();
        step = call->claim_write_step();
    }
    // A call released before its end is abandoned: cancel it so the server stops too. TryCancel after
    // the call completed is a no-op.
    call->context.TryCancel();
    if (remove_read) call->RemoveHold();
    call->run_write_step(step);
    call->unref();
}

}  // extern "C"
