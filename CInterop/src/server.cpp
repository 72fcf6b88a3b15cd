// The generic gRPC server: grpc::AsyncGenericService on completion queues, each polled by one thread,
// so every event of a call is delivered in order, one at a time.
//
// Stand-in pollers: the Swift callback may keep a queue thread for long (a handler's first synchronous
// part runs on it, and with CompletionQueueExecutor a whole actor method may). The queue's other calls
// would wait meanwhile: a borrower registering, an object's status, a cancel. A watchdog gives a queue
// whose every poller has been inside one event for kStuckAfter a stand-in thread that polls the same
// queue until one of them is free again. An event of a call that a poller is in the middle of handling
// goes to that poller, which handles it next: a call's events are still handled one at a time.
//
// A call is addressed from Swift by a 64-bit id held in a map, never by pointer. Every operation start
// (from a completion-queue thread or a Swift thread) happens under the server mutex after checking the
// call is alive and the queues are not shut down: gRPC asserts if an operation starts after
// CompletionQueue::Shutdown. The mutex is never held while the Swift callback runs.
#include <algorithm>
#include <atomic>
#include <pthread.h>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <grpc/support/time.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "internal.h"
#include "metadata.h"

namespace {

constexpr int kRequestsPerQueue = 32;
constexpr int kDefaultMessageLimit = 4 * 1024 * 1024;
constexpr int kMaxMetadataBytes = 64 * 1024;
constexpr int kStreamLookaheadBytes = 8 * 1024 * 1024;
constexpr int kShutdownLingerMs = 50;

enum class TagKind { request, read, write, finish, done };

struct ServerCall;

struct Tag {
    ServerCall *call;
    TagKind kind;
};

struct ServerCall {
    grpcshim_server *server;
    size_t queue_index;
    uint64_t id = 0;
    grpc::GenericServerContext context;
    grpc::GenericServerAsyncReaderWriter stream{&context};
    Tag request_tag{this, TagKind::request};
    Tag read_tag{this, TagKind::read};
    Tag write_tag{this, TagKind::write};
    Tag finish_tag{this, TagKind::finish};
    Tag done_tag{this, TagKind::done};

    grpc::ByteBuffer read_buffer;
    std::deque<grpc::ByteBuffer> write_queue;
    grpc::ByteBuffer writing_buffer;
    size_t writing_bytes = 0;

    int outstanding = 0;         // operations posted and not yet completed
    bool registered = false;     // in the id map
    bool notified = false;       // the CALL event was delivered
    bool reading = false;
    bool read_ended = false;
    bool writing = false;
    bool write_deferred = false; // the next write waits for the queue to read its sockets
    bool write_failed = false;
    bool finish_requested = false;
    bool finish_posted = false;
    bool done = false;           // the done tag completed: the call is over
    grpc::Status status;

    ServerCall(grpcshim_server *s, size_t index) : server(s), queue_index(index) {}
    ~ServerCall();
};

constexpr int64_t kStuckAfterNs = 50'000'000;
constexpr auto kWatchTick = std::chrono::milliseconds(20);

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// One thread polling a queue.
struct Poller {
    std::atomic<int64_t> busy_since_ns{0};  // while it handles an event: when it started; else 0
};

// A call whose event a poller is handling, and the events of that call other pollers took meanwhile.
struct Claim {
    ServerCall *call;
    std::vector<std::pair<Tag *, bool>> deferred;
};

struct QueuePollers {
    std::mutex mu;
    std::vector<Poller *> pollers;
    std::vector<Claim> claims;
    int stand_ins = 0;  // live stand-in threads
    std::condition_variable stand_ins_done;
};

}  // namespace

struct grpcshim_server {
    std::mutex mu;
    std::mutex shutdown_mu;
    bool shutting_down = false;
    bool draining = false;       // new calls are answered UNAVAILABLE while calls in flight finish
    bool queues_shut = false;
    bool shut_complete = false;
    grpc::AsyncGenericService service;
    std::unique_ptr<grpc::Server> server;
    std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
    std::vector<std::thread> threads;
    std::unordered_map<uint64_t, ServerCall *> calls;
    uint64_t next_id = 1;
    grpcshim_server_event_cb callback = nullptr;
    void *ctx = nullptr;

    std::vector<std::unique_ptr<QueuePollers>> pollers;  // one per queue
    std::thread watchdog;
    std::mutex watch_mu;
    std::condition_variable watch_cv;
    bool watch_stop = false;
    std::atomic<bool> watch_idle{false};  // the watchdog sleeps until a poller takes an event

    std::atomic<int64_t> live_calls{0};  // registered calls not yet deleted

    grpcshim_server() { cinterop::live_counters().servers++; }
    ~grpcshim_server() { cinterop::live_counters().servers--; }
};

ServerCall::~ServerCall() {
    if (registered) {
        cinterop::live_counters().server_calls--;
        server->live_calls--;
    }
}

namespace {

// Requires s->mu. Posts a fresh RequestCall on queue `index`.
void post_request(grpcshim_server *s, size_t index) {
    auto *call = new ServerCall(s, index);
    call->context.AsyncNotifyWhenDone(&call->done_tag);
    call->outstanding = 1;
    grpc::ServerCompletionQueue *cq = s->queues[index].get();
    s->service.RequestCall(&call->context, &call->stream, cq, cq, &call->request_tag);
}

bool can_post(grpcshim_server *s) { return !s->queues_shut; }

// Requires s->mu. Starts the next queued write, or the pending finish once the queue is empty.
void pump_writes(ServerCall *c) {
    grpcshim_server *s = c->server;
    if (c->writing || c->write_deferred || c->done || !can_post(s)) return;
    if (!c->write_queue.empty() && !c->write_failed) {
        c->writing_buffer = std::move(c->write_queue.front());
        c->write_queue.pop_front();
        c->writing_bytes = c->writing_buffer.Length();
        c->writing = true;
        c->outstanding++;
        c->stream.Write(c->writing_buffer, &c->write_tag);
        return;
    }
    if (c->finish_requested && !c->finish_posted) {
        c->finish_posted = true;
        c->outstanding++;
        c->stream.Finish(c->status, &c->finish_tag);
    }
}

void deliver(grpcshim_server *s, uint64_t id, const cinterop_event &event) { s->callback(s->ctx, s, id, &event); }

void release_if_idle(ServerCall *c, std::unique_lock<std::mutex> &lock);

// Requires s->mu, on the call's queue thread. Writes resume once the queue has read its sockets, so a
// client that left is noticed even while every write completes at once (see queue_needs_poll).
void defer_writes(ServerCall *c) {
    c->write_deferred = true;
    c->outstanding++;
    cinterop::after_next_poll([c] {
        grpcshim_server *s = c->server;
        std::unique_lock<std::mutex> lock(s->mu);
        c->outstanding--;
        c->write_deferred = false;
        pump_writes(c);
        release_if_idle(c, lock);
    });
}

// Requires the lock held by `lock`. Frees the call once it is over and idle, delivering DONE last.
void release_if_idle(ServerCall *c, std::unique_lock<std::mutex> &lock) {
    if (c->outstanding > 0 || !c->done) return;
    grpcshim_server *s = c->server;
    s->calls.erase(c->id);
    bool notify = c->notified;
    uint64_t id = c->id;
    bool cancelled = c->context.IsCancelled();
    lock.unlock();
    if (notify) {
        cinterop_event event{};
        event.kind = CINTEROP_EVENT_DONE;
        event.cancelled = cancelled ? 1 : 0;
        event.ok = cancelled ? 0 : 1;
        deliver(s, id, event);
    }
    delete c;
    lock.lock();
}

int64_t deadline_ms(const grpc::ServerContext &context) {
    gpr_timespec raw = context.raw_deadline();
    if (gpr_time_cmp(raw, gpr_inf_future(raw.clock_type)) == 0) return -1;
    gpr_timespec left = gpr_time_sub(gpr_convert_clock_type(raw, GPR_CLOCK_MONOTONIC), gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t ms = gpr_time_to_millis(left);
    return ms < 0 ? 0 : ms;
}

void handle(Tag *tag, bool ok) {
    ServerCall *c = tag->call;
    grpcshim_server *s = c->server;
    std::unique_lock<std::mutex> lock(s->mu);
    c->outstanding--;
    switch (tag->kind) {
    case TagKind::request: {
        if (!ok) {  // the server is shutting down; the call never started and has no done tag
            lock.unlock();
            delete c;
            return;
        }
        c->id = s->next_id++;
        c->registered = true;
        cinterop::live_counters().server_calls++;
        s->live_calls++;
        s->calls[c->id] = c;
        c->outstanding++;  // the done tag is armed once the call started
        if (!s->shutting_down && can_post(s)) post_request(s, c->queue_index);
        if (s->draining && can_post(s)) {
            // Shutting down gracefully: answer at once, without bothering Swift.
            c->finish_requested = true;
            c->finish_posted = true;
            c->status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
            c->outstanding++;
            c->stream.Finish(c->status, &c->finish_tag);
            return;
        }
        if (can_post(s)) {
            c->reading = true;
            c->outstanding++;
            c->stream.Read(&c->read_buffer, &c->read_tag);
        }
        return;
    }
    case TagKind::read: {
        c->reading = false;
        if (!ok) c->read_ended = true;
        bool first = !c->notified;
        if (first && c->done) {  // over before Swift heard of it: nothing to tell
            release_if_idle(c, lock);
            return;
        }
        c->notified = true;
        uint64_t id = c->id;
        cinterop_event event{};
        std::unique_ptr<cinterop::FlatMessage> message;
        if (ok) {
            // Taken under the lock: once it is released Swift may post the next read into read_buffer.
            message = std::make_unique<cinterop::FlatMessage>(c->read_buffer);
            event.data = message->data();
            event.len = message->size();
        }
        lock.unlock();
        if (first) {
            const std::string &method = c->context.method();
            auto metadata = cinterop::metadata_view(c->context.client_metadata());
            event.kind = CINTEROP_EVENT_CALL;
            event.method = method.data();
            event.method_len = method.size();
            event.metadata = metadata.data();
            event.metadata_count = metadata.size();
            event.has_message = ok ? 1 : 0;
            event.deadline_ms = deadline_ms(c->context);
            event.ok = 1;
            deliver(s, id, event);
        } else {
            event.kind = ok ? CINTEROP_EVENT_MESSAGE : CINTEROP_EVENT_END_OF_MESSAGES;
            event.has_message = ok ? 1 : 0;
            event.ok = 1;
            deliver(s, id, event);
        }
        lock.lock();
        release_if_idle(c, lock);
        return;
    }
    case TagKind::write: {
        c->writing = false;
        size_t bytes = c->writing_bytes;
        c->writing_buffer.Clear();
        if (!ok) {
            c->write_failed = true;
            c->write_queue.clear();
        }
        if (ok && cinterop::queue_needs_poll()) {
            defer_writes(c);
        } else {
            pump_writes(c);
        }
        uint64_t id = c->id;
        lock.unlock();
        cinterop_event event{};
        event.kind = CINTEROP_EVENT_WRITE_DONE;
        event.ok = ok ? 1 : 0;
        event.bytes = bytes;
        deliver(s, id, event);
        lock.lock();
        release_if_idle(c, lock);
        return;
    }
    case TagKind::finish:
        release_if_idle(c, lock);
        return;
    case TagKind::done:
        c->done = true;
        c->write_queue.clear();
        release_if_idle(c, lock);
        return;
    }
}

// Handles one event taken from queue `index` by `me`, unless a poller is inside an event of the same
// call: then that poller handles it after its own. Handles the events others left for it meanwhile.
void process(grpcshim_server *s, size_t index, Poller *me, Tag *tag, bool ok) {
    QueuePollers &q = *s->pollers[index];
    ServerCall *c = tag->call;  // only compared: it may be freed by the event, never before
    {
        std::lock_guard<std::mutex> lock(q.mu);
        for (auto &claim : q.claims) {
            if (claim.call == c) {
                claim.deferred.emplace_back(tag, ok);
                return;
            }
        }
        q.claims.push_back(Claim{c, {}});
    }
    me->busy_since_ns.store(now_ns());
    if (s->watch_idle.load() && s->watch_idle.exchange(false)) {
        std::lock_guard<std::mutex> lock(s->watch_mu);
        s->watch_cv.notify_one();
    }
    while (true) {
        handle(tag, ok);
        std::lock_guard<std::mutex> lock(q.mu);
        auto it = std::find_if(q.claims.begin(), q.claims.end(), [c](const Claim &claim) { return claim.call == c; });
        if (it->deferred.empty()) {
            if (it != q.claims.end() - 1) *it = std::move(q.claims.back());
            q.claims.pop_back();
            break;
        }
        tag = it->deferred.front().first;
        ok = it->deferred.front().second;
        it->deferred.erase(it->deferred.begin());
    }
    me->busy_since_ns.store(0);
}

// Requires q.mu. True when one of the first `count` pollers is free or has been busy for less than
// kStuckAfter.
bool poller_free(QueuePollers &q, size_t count, int64_t now) {
    for (size_t i = 0; i < count && i < q.pollers.size(); i++) {
        int64_t since = q.pollers[i]->busy_since_ns.load();
        if (since == 0 || now - since < kStuckAfterNs) return true;
    }
    return false;
}

// Polls queue `index` while every poller that came before it (the queue's thread first) is stuck in an
// event, then leaves; `me` was registered by the watchdog and is freed here.
void stand_in(grpcshim_server *s, size_t index, Poller *me) {
    pthread_setname_np(pthread_self(), "rpc-server-aux");
    QueuePollers &q = *s->pollers[index];
    grpc::CompletionQueue *cq = s->queues[index].get();
    cinterop::QueueThreadState &state = cinterop::queue_thread_state();
    auto run_deferred = [&state] {
        std::vector<std::function<void()>> work;
        work.swap(state.deferred);
        for (auto &item : work) item();
    };
    while (true) {
        void *tag = nullptr;
        bool ok = false;
        auto status = cq->AsyncNext(&tag, &ok, std::chrono::system_clock::now() + kWatchTick);
        if (status == grpc::CompletionQueue::SHUTDOWN) break;
        if (status == grpc::CompletionQueue::GOT_EVENT) {
            state.events_since_poll++;
            process(s, index, me, static_cast<Tag *>(tag), ok);
        } else {
            state.events_since_poll = 0;
            run_deferred();
        }
        std::lock_guard<std::mutex> lock(q.mu);
        size_t mine = std::find(q.pollers.begin(), q.pollers.end(), me) - q.pollers.begin();
        if (poller_free(q, mine, now_ns())) break;
    }
    run_deferred();
    std::lock_guard<std::mutex> lock(q.mu);
    q.pollers.erase(std::find(q.pollers.begin(), q.pollers.end(), me));
    delete me;
    q.stand_ins--;
    q.stand_ins_done.notify_all();
}

// Every kWatchTick while events are being handled (asleep otherwise): a queue whose every poller has
// been inside one event for kStuckAfter gets a stand-in.
void watch(grpcshim_server *s) {
    pthread_setname_np(pthread_self(), "rpc-server-wd");  // at most 15 characters, or the name is refused
    auto any_busy = [s] {
        for (auto &q : s->pollers) {
            std::lock_guard<std::mutex> lock(q->mu);
            for (const Poller *p : q->pollers) {
                if (p->busy_since_ns.load() != 0) return true;
            }
        }
        return false;
    };
    std::unique_lock<std::mutex> lock(s->watch_mu);
    while (!s->watch_stop) {
        s->watch_cv.wait_for(lock, kWatchTick, [s] { return s->watch_stop; });
        if (s->watch_stop) break;
        int64_t now = now_ns();
        for (size_t i = 0; i < s->pollers.size(); i++) {
            QueuePollers &q = *s->pollers[i];
            std::lock_guard<std::mutex> queue_lock(q.mu);
            if (q.pollers.empty() || poller_free(q, q.pollers.size(), now)) continue;
            auto *poller = new Poller();
            q.pollers.push_back(poller);
            q.stand_ins++;
            try {
                std::thread(stand_in, s, i, poller).detach();
            } catch (const std::system_error &) {  // no thread to be had: try again next tick
                q.pollers.pop_back();
                delete poller;
                q.stand_ins--;
            }
        }
        if (any_busy()) continue;
        // Sleep until a poller takes an event. One that took it after the check above either sees
        // watch_idle and wakes this thread, or is seen busy by the second check.
        s->watch_idle.store(true);
        if (any_busy()) {
            s->watch_idle.store(false);
            continue;
        }
        s->watch_cv.wait(lock, [s] { return s->watch_stop || !s->watch_idle.load(); });
    }
}

void run_queue(grpcshim_server *s, size_t index) {
    pthread_setname_np(pthread_self(), "rpc-server-cq");
    Poller me;
    QueuePollers &q = *s->pollers[index];
    {
        std::lock_guard<std::mutex> lock(q.mu);
        q.pollers.push_back(&me);
    }
    cinterop::drain_queue(s->queues[index].get(),
                          [s, index, &me](void *tag, bool ok) { process(s, index, &me, static_cast<Tag *>(tag), ok); });
    std::lock_guard<std::mutex> lock(q.mu);
    q.pollers.erase(std::find(q.pollers.begin(), q.pollers.end(), &me));
}

// Requires s->mu. The live call with this id, or nullptr.
ServerCall *find_call(grpcshim_server *s, uint64_t id) {
    auto it = s->calls.find(id);
    if (it == s->calls.end()) return nullptr;
    ServerCall *c = it->second;
    if (c->done || !can_post(s)) return nullptr;
    return c;
}

bool add_trailing(ServerCall *c, const cinterop_metadata *trailing, size_t count) {
    if (!cinterop::valid_metadata(trailing, count)) return false;
    for (size_t i = 0; i < count; i++) {
        c->context.AddTrailingMetadata(cinterop::key_string(trailing[i]), cinterop::value_string(trailing[i]));
    }
    return true;
}

}  // namespace

extern "C" {

grpcshim_server *grpcshim_server_start(const grpcshim_server_options *options, grpcshim_server_event_cb callback,
                                       void *ctx, int *out_port, char **err) {
    if (options == nullptr || options->address == nullptr || callback == nullptr) {
        cinterop::set_error(err, "missing server options, address or callback");
        return nullptr;
    }
    cinterop::initialize_once();
    std::shared_ptr<grpc::ServerCredentials> credentials;
    bool has_cert = options->tls_cert_chain_pem != nullptr;
    bool has_key = options->tls_private_key_pem != nullptr;
    if (has_cert != has_key) {
        cinterop::set_error(err, "TLS needs both a certificate chain and a private key");
        return nullptr;
    }
    if (has_cert) {
        grpc::SslServerCredentialsOptions ssl;
        ssl.pem_key_cert_pairs.push_back({options->tls_private_key_pem, options->tls_cert_chain_pem});
        if (options->tls_client_ca_pem != nullptr) {
            ssl.pem_root_certs = options->tls_client_ca_pem;
            ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
        }
        credentials = grpc::SslServerCredentials(ssl);
    } else {
        credentials = grpc::InsecureServerCredentials();
    }

    auto *s = new grpcshim_server();
    s->callback = callback;
    s->ctx = ctx;
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options->address, credentials, &port);
    int local_port = 0;
    if (options->local_address != nullptr && options->local_address[0] != '\0') {
        builder.AddListeningPort(options->local_address, credentials, &local_port);
    }
    builder.RegisterAsyncGenericService(&s->service);
    builder.SetMaxReceiveMessageSize(options->max_receive_message_bytes > 0 ? options->max_receive_message_bytes
                                                                           : kDefaultMessageLimit);
    builder.SetMaxSendMessageSize(options->max_send_message_bytes > 0 ? options->max_send_message_bytes
                                                                     : kDefaultMessageLimit);
    // Two servers must never share a port silently (gRPC allows SO_REUSEPORT by default on Linux).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Room for long status messages and metadata (gRPC's default is 8 KiB of headers).
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
    // Let a stream start with a large flow-control window: a 1 MiB request then needs no window
    // updates round trip (gRPC's default read-ahead is 64 KiB per stream).
    builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamLookaheadBytes);
    int queue_count = options->completion_queues > 0 ? options->completion_queues : 1;
    for (int i = 0; i < queue_count; i++) s->queues.push_back(builder.AddCompletionQueue());
    s->server = builder.BuildAndStart();
    bool wants_local = options->local_address != nullptr && options->local_address[0] != '\0';
    if (s->server == nullptr || port == 0 || (wants_local && local_port == 0)) {
        cinterop::set_error(err, std::string("could not listen on ") + options->address +
                                     (wants_local ? std::string(" and ") + options->local_address : std::string()));
        if (s->server != nullptr) s->server->Shutdown();
        for (auto &q : s->queues) {
            q->Shutdown();
            void *tag;
            bool ok;
            while (q->Next(&tag, &ok)) {
            }
        }
        delete s;
        return nullptr;
    }
    {
        std::lock_guard<std::mutex> lock(s->mu);
        for (size_t q = 0; q < s->queues.size(); q++) {
            for (int i = 0; i < kRequestsPerQueue; i++) post_request(s, q);
        }
    }
    for (size_t q = 0; q < s->queues.size(); q++) s->pollers.push_back(std::make_unique<QueuePollers>());
    for (size_t q = 0; q < s->queues.size(); q++) s->threads.emplace_back(run_queue, s, q);
    s->watchdog = std::thread(watch, s);
    if (out_port != nullptr) *out_port = port;
    return s;
}

int grpcshim_server_read(grpcshim_server *s, uint64_t call_id) {
    std::lock_guard<std::mutex> lock(s->mu);
    ServerCall *c = find_call(s, call_id);
    if (c == nullptr || c->reading || c->read_ended) return -1;
    c->reading = true;
    c->outstanding++;
    c->stream.Read(&c->read_buffer, &c->read_tag);
    return 0;
}

int grpcshim_server_write(grpcshim_server *s, uint64_t call_id, const uint8_t *data, size_t len) {
    grpc::ByteBuffer buffer = cinterop::make_buffer(data, len);  // copy outside the lock
    std::lock_guard<std::mutex> lock(s->mu);
    ServerCall *c = find_call(s, call_id);
    if (c == nullptr || c->finish_requested || c->write_failed) return -1;
    c->write_queue.push_back(std::move(buffer));
    pump_writes(c);
    return 0;
}

int grpcshim_server_reply(grpcshim_server *s, uint64_t call_id, const uint8_t *data, size_t len,
                          const cinterop_metadata *trailing, size_t trailing_count) {
    grpc::ByteBuffer buffer = cinterop::make_buffer(data, len);
    std::lock_guard<std::mutex> lock(s->mu);
    ServerCall *c = find_call(s, call_id);
    if (c == nullptr || c->finish_requested) return -1;
    if (!add_trailing(c, trailing, trailing_count)) return -2;
    c->finish_requested = true;
    c->status = grpc::Status::OK;
    if (!c->writing && c->write_queue.empty()) {
        c->finish_posted = true;
        c->outstanding++;
        c->stream.WriteAndFinish(buffer, grpc::WriteOptions(), grpc::Status::OK, &c->finish_tag);
    } else {
        c->write_queue.push_back(std::move(buffer));
        pump_writes(c);
    }
    return 0;
}

int grpcshim_server_finish(grpcshim_server *s, uint64_t call_id, int status_code, const char *message,
                           size_t message_len, const cinterop_metadata *trailing, size_t trailing_count) {
    std::lock_guard<std::mutex> lock(s->mu);
    ServerCall *c = find_call(s, call_id);
    if (c == nullptr || c->finish_requested) return -1;
    if (!add_trailing(c, trailing, trailing_count)) return -2;
    int code = cinterop::valid_status_code(status_code) ? status_code : GRPC_STATUS_UNKNOWN;
    std::string text = message == nullptr ? std::string() : std::string(message, message_len);
    c->status = grpc::Status(static_cast<grpc::StatusCode>(code), text);
    c->finish_requested = true;
    pump_writes(c);
    return 0;
}

int64_t grpcshim_server_live_calls(grpcshim_server *s) { return s->live_calls.load(); }

void grpcshim_server_shutdown(grpcshim_server *s, int grace_ms) {
    std::lock_guard<std::mutex> guard(s->shutdown_mu);
    if (s->shut_complete) return;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms < 0 ? 0 : grace_ms);
    {
        std::lock_guard<std::mutex> lock(s->mu);
        s->draining = true;
    }
    // Drain first: let the calls Swift is answering finish while the connections stay open, then
    // linger a moment so clients read the last replies. grpc::Server::Shutdown closes connections as
    // soon as no call is left, and a close with bytes still unread sends a TCP reset that can destroy
    // a reply the client had not read yet (seen as UNAVAILABLE "Connection reset by peer").
    bool drained = false;
    while (std::chrono::steady_clock::now() < deadline) {
        {
            std::lock_guard<std::mutex> lock(s->mu);
            drained = true;
            for (auto &entry : s->calls) {
                if (entry.second->notified) {
                    drained = false;
                    break;
                }
            }
        }
        if (drained) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (drained) {
        auto linger = std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(kShutdownLingerMs),
                                                                  deadline - std::chrono::steady_clock::now());
        if (linger.count() > 0) std::this_thread::sleep_for(linger);
    }
    {
        std::lock_guard<std::mutex> lock(s->mu);
        s->shutting_down = true;
    }
    auto remaining = deadline - std::chrono::steady_clock::now();
    if (remaining.count() < 0) remaining = std::chrono::steady_clock::duration::zero();
    s->server->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(remaining));
    {
        std::lock_guard<std::mutex> lock(s->mu);
        s->queues_shut = true;
    }
    {
        std::lock_guard<std::mutex> lock(s->watch_mu);
        s->watch_stop = true;
        s->watch_cv.notify_one();
    }
    if (s->watchdog.joinable()) s->watchdog.join();
    for (auto &q : s->queues) q->Shutdown();
    for (auto &t : s->threads) t.join();
    s->threads.clear();
    for (auto &q : s->pollers) {  // stand-ins leave when their queue reports shutdown
        std::unique_lock<std::mutex> lock(q->mu);
        q->stand_ins_done.wait(lock, [&q] { return q->stand_ins == 0; });
    }
    s->shut_complete = true;
}

void grpcshim_server_destroy(grpcshim_server *s) {
    if (s == nullptr) return;
    grpcshim_server_shutdown(s, 0);
    for (auto &entry : s->calls) delete entry.second;  // none expected: every call ended in the drain
    s->calls.clear();
    s->server.reset();
    s->queues.clear();
    delete s;
}

}  // extern "C"
