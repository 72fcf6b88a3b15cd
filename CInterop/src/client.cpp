// The generic gRPC client, on grpc++'s asynchronous API with one process-wide completion queue polled
// by a thread of ours. (grpc++ 1.51's callback API hands every completion to extra "nexting" threads
// on Linux; measured on 2 cores, the completion queue made 1.4x the sequential and 1.9x the
// concurrent unary calls.) All events of a call are delivered on that one thread, in order.
//
// A call object is shared by the completion queue and Swift through a reference count: one for Swift
// (dropped by grpcshim_call_release), one per operation in flight. Operations are posted under the
// call's mutex; the asynchronous API never completes one inline, so no callback runs under it.
//
// A streaming call reads the server's initial metadata first (Read and Finish would both ask for it
// while it is outstanding, which gRPC refuses), then posts Finish at once, so its status arrives
// whatever Swift does. Its DONE event waits until the status is in, no operation is in flight, and the
// read flow is over (a read returned no message, or Swift released the call), so no message is
// dropped before Swift asked for it.
#include <atomic>
#include <pthread.h>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>

#include "internal.h"
#include "metadata.h"

namespace {

constexpr int kDefaultMessageLimit = 4 * 1024 * 1024;

struct ClientTag {
    virtual void complete(bool ok) = 0;
    virtual ~ClientTag() = default;
};

// The process-wide client completion queues, each polled by one thread of ours (RAY_RPC_CLIENT_THREADS,
// default 1); calls are spread over them round-robin, and every event of one call comes from its
// queue's thread. Never destroyed: calls may complete until the process exits, and static destruction
// order must not matter.
struct ClientQueues {
    std::vector<grpc::CompletionQueue *> queues;
    std::atomic<size_t> next{0};
};

ClientQueues &client_queues() {
    static ClientQueues *all = [] {
        auto *q = new ClientQueues();
        const char *text = std::getenv("RAY_RPC_CLIENT_THREADS");
        long count = text == nullptr ? 1 : std::strtol(text, nullptr, 10);
        if (count < 1) count = 1;
        if (count > 16) count = 16;
        for (long i = 0; i < count; i++) {
            auto *cq = new grpc::CompletionQueue();
            q->queues.push_back(cq);
            std::thread([cq] {
                pthread_setname_np(pthread_self(), "rpc-client-cq");
                cinterop::drain_queue(cq, [](void *tag, bool ok) { static_cast<ClientTag *>(tag)->complete(ok); });
            }).detach();
        }
        return q;
    }();
    return *all;
}

grpc::CompletionQueue *client_queue() {
    ClientQueues &all = client_queues();
    if (all.queues.size() == 1) return all.queues[0];
    return all.queues[all.next.fetch_add(1, std::memory_order_relaxed) % all.queues.size()];
}

}  // namespace

struct grpcshim_channel {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<grpc::GenericStub> stub;
    std::shared_ptr<std::atomic<int64_t>> live_calls = std::make_shared<std::atomic<int64_t>>(0);
    grpcshim_channel() { cinterop::live_counters().channels++; }
    ~grpcshim_channel() { cinterop::live_counters().channels--; }
};

struct grpcshim_call {
    std::atomic<int> refs{1};  // Swift's handle
    grpc::ClientContext context;
    grpcshim_call_event_cb callback;
    void *ctx;
    std::mutex mu;
    bool released = false;

    std::shared_ptr<std::atomic<int64_t>> channel_live_calls;

    grpcshim_call(grpcshim_call_event_cb cb, void *c) : callback(cb), ctx(c) { cinterop::live_counters().client_calls++; }
    virtual ~grpcshim_call() {
        cinterop::live_counters().client_calls--;
        if (channel_live_calls) (*channel_live_calls)--;
    }
    void count_in(grpcshim_channel *ch) {
        channel_live_calls = ch->live_calls;
        (*channel_live_calls)++;
    }

    void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
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

    virtual int read() { return -1; }
    virtual int write(grpc::ByteBuffer) { return -1; }
    virtual int writes_done() { return -1; }
    virtual void release() {
        {
            std::lock_guard<std::mutex> lock(mu);
            released = true;
        }
        context.TryCancel();  // a no-op once the call is over
        unref();
    }
};

namespace {

struct UnaryCall final : grpcshim_call, ClientTag {
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
    grpc::Status status;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;

    using grpcshim_call::grpcshim_call;

    void complete(bool /*ok*/) override {
        if (status.ok()) {
            cinterop::FlatMessage message(response);
            deliver_done(status, message.data(), message.size(), true);
        } else {
            deliver_done(status, nullptr, 0, false);
        }
        unref();
    }
};

struct StreamCall;

// One kind of operation on a stream; the tag the completion queue hands back for it.
struct StreamOp final : ClientTag {
    enum Kind { start, metadata, read, write, writes_done, finish };
    StreamCall *call;
    Kind kind;
    StreamOp(StreamCall *c, Kind k) : call(c), kind(k) {}
    void complete(bool ok) override;
};

struct StreamCall final : grpcshim_call {
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream;
    StreamOp start_op{this, StreamOp::start};
    StreamOp metadata_op{this, StreamOp::metadata};
    StreamOp read_op{this, StreamOp::read};
    StreamOp write_op{this, StreamOp::write};
    StreamOp writes_done_op{this, StreamOp::writes_done};
    StreamOp finish_op{this, StreamOp::finish};
    grpc::Status status;

    // Guarded by mu.
    bool started = false;          // the start operation completed
    bool metadata_in = false;      // the initial metadata operation completed
    bool read_wanted = false;      // Swift asked for a read before the call started
    bool reading = false;
    bool read_closed = false;      // a read returned no message, or Swift released the call
    bool writing = false;
    bool write_deferred = false;   // the next write waits for the queue to read its sockets
    bool write_closed = false;     // writes done sent, a write failed, or the call is over
    bool writes_done_requested = false;
    bool writes_done_posted = false;
    bool finished = false;         // the status is in
    bool done_delivered = false;
    int in_flight = 0;             // start, metadata, read, write, writes-done (not Finish: `finished`)
    std::deque<grpc::ByteBuffer> write_queue;
    grpc::ByteBuffer read_buffer;
    grpc::ByteBuffer writing_buffer;
    size_t writing_bytes = 0;

    using grpcshim_call::grpcshim_call;

    // Requires mu. Posts what the call's state allows: the next write, the half-close, a wanted read.
    void pump() {
        if (!started) return;
        if (write_closed) write_queue.clear();
        if (write_deferred) {
            // the next write waits for the queue to read its sockets (see defer_writes)
        } else if (!writing && !write_closed && !write_queue.empty()) {
            writing_buffer = std::move(write_queue.front());
            write_queue.pop_front();
            writing_bytes = writing_buffer.Length();
            writing = true;
            in_flight++;
            ref();
            stream->Write(writing_buffer, &write_op);
        } else if (!writing && !write_closed && writes_done_requested && !writes_done_posted) {
            writes_done_posted = true;
            write_closed = true;
            in_flight++;
            ref();
            stream->WritesDone(&writes_done_op);
        }
        if (read_wanted && metadata_in && !reading && !read_closed) {
            read_wanted = false;
            reading = true;
            in_flight++;
            ref();
            stream->Read(&read_buffer, &read_op);
        }
    }

    // Requires mu, on the queue thread. Writes resume once the queue has read its sockets, so a server
    // that ended the call is noticed even while every write completes at once (see queue_needs_poll).
    void defer_writes() {
        write_deferred = true;
        ref();
        cinterop::after_next_poll([this] {
            std::unique_lock<std::mutex> lock(mu);
            write_deferred = false;
            pump();
            maybe_done(lock);
            unref();
        });
    }

    // Requires the lock held by `lock`: delivers DONE once everything is over. Drops the lock.
    void maybe_done(std::unique_lock<std::mutex> &lock) {
        bool deliver = finished && in_flight == 0 && read_closed && !done_delivered;
        if (deliver) done_delivered = true;
        lock.unlock();
        if (deliver) deliver_done(status, nullptr, 0, false);
    }

    void on_complete(StreamOp::Kind kind, bool ok) {
        std::unique_lock<std::mutex> lock(mu);
        switch (kind) {
        case StreamOp::start:
            in_flight--;
            started = true;
            if (!ok) {  // the call could not start; Finish reports why
                write_closed = true;
                read_closed = true;
            }
            pump();
            maybe_done(lock);
            break;
        case StreamOp::metadata:
            in_flight--;
            metadata_in = true;
            ref();
            stream->Finish(&status, &finish_op);
            pump();
            maybe_done(lock);
            break;
        case StreamOp::read: {
            in_flight--;
            reading = false;
            if (!ok) {
                // No more messages: the call is over, nothing more can be written.
                read_closed = true;
                write_closed = true;
            }
            std::unique_ptr<cinterop::FlatMessage> message;
            if (ok) message = std::make_unique<cinterop::FlatMessage>(read_buffer);
            bool tell = !done_delivered;
            pump();
            lock.unlock();
            if (tell) {
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
            }
            lock.lock();
            maybe_done(lock);
            break;
        }
        case StreamOp::write: {
            in_flight--;
            writing = false;
            size_t bytes = writing_bytes;
            writing_buffer.Clear();
            if (!ok) write_closed = true;
            if (ok && cinterop::queue_needs_poll()) {
                defer_writes();
            } else {
                pump();
            }
            lock.unlock();
            cinterop_event event{};
            event.kind = CINTEROP_EVENT_WRITE_DONE;
            event.ok = ok ? 1 : 0;
            event.bytes = bytes;
            callback(ctx, &event);
            lock.lock();
            maybe_done(lock);
            break;
        }
        case StreamOp::writes_done:
            in_flight--;
            maybe_done(lock);
            break;
        case StreamOp::finish:
            finished = true;
            write_closed = true;
            write_queue.clear();
            maybe_done(lock);
            break;
        }
    }

    int read() override {
        std::lock_guard<std::mutex> lock(mu);
        if (released || read_closed || reading || read_wanted || done_delivered) return -1;
        read_wanted = true;
        pump();
        return 0;
    }

    int write(grpc::ByteBuffer buffer) override {
        std::lock_guard<std::mutex> lock(mu);
        if (released || write_closed || writes_done_requested) return -1;
        write_queue.push_back(std::move(buffer));
        pump();
        return 0;
    }

    int writes_done() override {
        std::lock_guard<std::mutex> lock(mu);
        if (released || writes_done_requested || write_closed) return -1;
        writes_done_requested = true;
        pump();
        return 0;
    }

    void release() override {
        {
            std::unique_lock<std::mutex> lock(mu);
            released = true;
            read_closed = true;  // Swift will ask for nothing more
            read_wanted = false;
            write_closed = true;
            write_queue.clear();
            maybe_done(lock);
        }
        context.TryCancel();
        unref();
    }
};

void StreamOp::complete(bool ok) {
    StreamCall *c = call;
    c->on_complete(kind, ok);
    c->unref();
}

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
    cinterop::initialize_once();
    if (options == nullptr || options->target == nullptr || options->target[0] == '\0') {
        cinterop::set_error(err, "missing channel target");
        return nullptr;
    }
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
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff);
    // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: grpc++ 1.51 uses it as the minimum *connect timeout*, so
    // 100 ms there failed connections whose handshake took longer on a busy machine ("connection
    // attempt timed out before receiving SETTINGS frame"). gRPC's default (20 s) bounds a connect;
    // every call's own deadline still applies.
    // Each channel gets its own connection, so independent clients do not share one TCP stream.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, 64 * 1024);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 * 1024 * 1024);  // see server.cpp
    // Callers retry by their own rules (Ray's retry policies); gRPC's transparent retries would buffer
    // every request for a replay that never comes.
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    if (options->tls_server_name != nullptr) args.SetSslTargetNameOverride(options->tls_server_name);
    auto *ch = new grpcshim_channel();
    ch->channel = grpc::CreateCustomChannel(options->target, credentials, args);
    if (ch->channel == nullptr) {
        delete ch;
        cinterop::set_error(err, std::string("could not create a channel to ") + options->target);
        return nullptr;
    }
    ch->stub = std::make_unique<grpc::GenericStub>(ch->channel);
    client_queue();
    return ch;
}

void grpcshim_channel_destroy(grpcshim_channel *ch) { delete ch; }

int64_t grpcshim_channel_live_calls(grpcshim_channel *ch) { return ch->live_calls->load(); }

grpcshim_call *grpcshim_unary_call(grpcshim_channel *ch, const char *method, size_t method_len, const uint8_t *data,
                                   size_t len, const grpcshim_call_options *options, grpcshim_call_event_cb callback,
                                   void *ctx) {
    if (ch == nullptr || method == nullptr || callback == nullptr || !options_valid(options)) return nullptr;
    auto *call = new UnaryCall(callback, ctx);
    call->count_in(ch);
    call->request = cinterop::make_buffer(data, len);
    apply_options(call, options);
    call->reader = ch->stub->PrepareUnaryCall(&call->context, std::string(method, method_len), call->request,
                                              client_queue());
    call->ref();  // for the completion
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, static_cast<ClientTag *>(call));
    return call;
}

grpcshim_call *grpcshim_stream_call(grpcshim_channel *ch, const char *method, size_t method_len,
                                    const grpcshim_call_options *options, grpcshim_call_event_cb callback, void *ctx) {
    if (ch == nullptr || method == nullptr || callback == nullptr || !options_valid(options)) return nullptr;
    auto *call = new StreamCall(callback, ctx);
    call->count_in(ch);
    apply_options(call, options);
    call->stream = ch->stub->PrepareCall(&call->context, std::string(method, method_len), client_queue());
    std::lock_guard<std::mutex> lock(call->mu);
    call->in_flight++;
    call->ref();
    call->stream->StartCall(&call->start_op);
    call->in_flight++;
    call->ref();
    call->stream->ReadInitialMetadata(&call->metadata_op);
    return call;
}

int grpcshim_call_read(grpcshim_call *call) { return call->read(); }

int grpcshim_call_write(grpcshim_call *call, const uint8_t *data, size_t len) {
    return call->write(cinterop::make_buffer(data, len));
}

int grpcshim_call_writes_done(grpcshim_call *call) { return call->writes_done(); }

void grpcshim_call_cancel(grpcshim_call *call) { call->context.TryCancel(); }

void grpcshim_call_ref(grpcshim_call *call) { call->ref(); }

void grpcshim_call_unref(grpcshim_call *call) { call->unref(); }

void grpcshim_call_release(grpcshim_call *call) { call->release(); }

}  // extern "C"
