/*
 * CInterop: a plain-C face over Debian's grpc++ and yaml-cpp.
 *
 * The shim knows method paths and byte buffers, nothing about Ray. Swift imports this header as an
 * ordinary C module (no C++ interoperability mode).
 *
 * OWNERSHIP (every buffer that crosses this boundary):
 *  - Pointers passed INTO a shim function are borrowed for the duration of that call only. The shim
 *    copies whatever it needs before returning; the caller may free or reuse them at once.
 *  - Pointers handed OUT through a callback (an event's bytes, method, metadata, status message) are
 *    borrowed for the duration of that callback only. The callee copies what it needs.
 *  - Strings returned through `char **err` out-parameters and the result of cinterop_yaml_to_json are
 *    heap memory owned by the caller, freed with cinterop_free().
 *  - Handles (grpcshim_server, grpcshim_channel, grpcshim_call) are owned by the caller until the
 *    matching destroy / release function is called.
 *
 * THREADS: callbacks run on gRPC's threads (server completion-queue threads and their stand-ins; client
 * callback threads). They should not block. They may call back into the shim (read, write, reply,
 * finish, cancel).
 */
#ifndef CINTEROP_H
#define CINTEROP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frees memory the shim returned to the caller (error strings, YAML results). NULL is a no-op. */
void cinterop_free(void *p);

/* One metadata entry. Keys ending in "-bin" carry arbitrary bytes; other values are ASCII text. */
typedef struct cinterop_metadata {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} cinterop_metadata;

typedef enum cinterop_event_kind {
    /* Server only: a new call. `method`, `metadata` (request metadata), `deadline_ms`, and the first
       request message when `has_message` is 1 (0: the client half-closed without sending one). */
    CINTEROP_EVENT_CALL = 1,
    /* One message, answering one read request. */
    CINTEROP_EVENT_MESSAGE = 2,
    /* Answers a read request when the peer will send no more messages (half-close or end of call). */
    CINTEROP_EVENT_END_OF_MESSAGES = 3,
    /* One queued outbound message left the queue: `bytes` is its size, `ok` is 0 if it failed. */
    CINTEROP_EVENT_WRITE_DONE = 4,
    /* The call is over; always the last event of a call and always delivered exactly once.
       Client: `status_code`, `status_message`, `metadata` (trailing metadata) and, for a unary call
       that succeeded, the reply in `data`/`len` with `has_message` = 1.
       Server: `cancelled` is 1 when the call ended without a status sent by the handler (the client
       cancelled, its deadline passed, or the server shut down). */
    CINTEROP_EVENT_DONE = 5
} cinterop_event_kind;

typedef struct cinterop_event {
    int kind;
    const uint8_t *data;
    size_t len;
    int has_message;
    const char *method;
    size_t method_len;
    const cinterop_metadata *metadata;
    size_t metadata_count;
    int status_code;
    const char *status_message;
    size_t status_message_len;
    int cancelled;
    int ok;
    size_t bytes;
    int64_t deadline_ms; /* CALL: milliseconds until the client's deadline, -1 when it set none */
} cinterop_event;

/* ---------------------------------------------------------------------------------------------- */
/* Server                                                                                          */

typedef struct grpcshim_server grpcshim_server;

/* Every event of a call arrives with its call id, in order and one at a time, on a thread polling the
   call's completion queue: the queue's own thread, or a stand-in the shim starts while every poller of
   the queue has been inside one callback for 50 ms (so a callback that holds its thread does not stop
   the server's other calls). After a DONE event the id is dead: operations on it return -1. `server` is
   the handle grpcshim_server_start returns (the first events may arrive before it returned). */
typedef void (*grpcshim_server_event_cb)(void *ctx, grpcshim_server *server, uint64_t call_id,
                                         const cinterop_event *event);

typedef struct grpcshim_server_options {
    const char *address;              /* "host:port"; port 0 picks a free port */
    int max_receive_message_bytes;    /* <= 0: 4 MiB */
    int max_send_message_bytes;       /* <= 0: 4 MiB */
    int completion_queues;            /* each polled by one thread; <= 0: 1 */
    const char *tls_cert_chain_pem;   /* with tls_private_key_pem: serve TLS; both NULL: plaintext */
    const char *tls_private_key_pem;
    const char *tls_client_ca_pem;    /* optional: require client certificates signed by this CA */
    const char *local_address;        /* optional second listener for peers on this machine, e.g.
                                         "unix-abstract:name" (faster than TCP over loopback) */
} grpcshim_server_options;

/* Starts serving. Returns NULL and sets *err (free with cinterop_free) when it cannot bind. The
   callback and ctx are used until grpcshim_server_shutdown returns. *out_port gets the bound port. */
grpcshim_server *grpcshim_server_start(const grpcshim_server_options *options,
                                       grpcshim_server_event_cb callback, void *ctx,
                                       int *out_port, char **err);

/* Each returns 0 when the operation was queued, -1 when the call is unknown, already finished, or the
   server is shutting down (then nothing happens). */

/* Asks for the next request message: answered by one MESSAGE or END_OF_MESSAGES event. */
int grpcshim_server_read(grpcshim_server *server, uint64_t call_id);
/* Queues one reply message (copied); a WRITE_DONE event follows when it left the queue. */
int grpcshim_server_write(grpcshim_server *server, uint64_t call_id, const uint8_t *data, size_t len);
/* Sends one reply message and status OK with trailing metadata: the whole answer to a unary call. */
int grpcshim_server_reply(grpcshim_server *server, uint64_t call_id, const uint8_t *data, size_t len,
                          const cinterop_metadata *trailing, size_t trailing_count);
/* Ends the call with a status (after the queued writes went out) and trailing metadata. */
int grpcshim_server_finish(grpcshim_server *server, uint64_t call_id, int status_code,
                           const char *message, size_t message_len,
                           const cinterop_metadata *trailing, size_t trailing_count);

/* Answers new calls UNAVAILABLE, lets calls in flight finish for up to grace_ms (and lingers 50 ms
   after the last so clients read their replies), then stops listening, cancels the rest, delivers
   every outstanding DONE event and joins the completion-queue threads. Blocking and idempotent. Must
   not be called from a callback. */
void grpcshim_server_shutdown(grpcshim_server *server, int grace_ms);
/* Shuts down (grace 0) if still running, then frees the server. */
void grpcshim_server_destroy(grpcshim_server *server);

/* ---------------------------------------------------------------------------------------------- */
/* Client                                                                                          */

typedef struct grpcshim_channel grpcshim_channel;
typedef struct grpcshim_call grpcshim_call;

typedef struct grpcshim_channel_options {
    const char *target;                 /* "host:port" */
    int max_receive_message_bytes;      /* <= 0: 4 MiB */
    int max_send_message_bytes;         /* <= 0: 4 MiB */
    const char *tls_root_ca_pem;        /* non-NULL: TLS, trusting this CA */
    const char *tls_client_cert_pem;    /* optional client certificate and key for mutual TLS */
    const char *tls_client_key_pem;
    const char *tls_server_name;        /* optional: the name to verify instead of the target host */
    int reconnect_backoff_min_ms;       /* <= 0: 100 */
    int reconnect_backoff_max_ms;       /* <= 0: 2000 */
} grpcshim_channel_options;

/* Creates a channel (connects lazily, reconnects with backoff after failures). NULL + *err on bad
   options. Destroying a channel does not end calls already in flight. */
grpcshim_channel *grpcshim_channel_create(const grpcshim_channel_options *options, char **err);
void grpcshim_channel_destroy(grpcshim_channel *channel);

typedef void (*grpcshim_call_event_cb)(void *ctx, const cinterop_event *event);

typedef struct grpcshim_call_options {
    const cinterop_metadata *metadata;  /* request metadata */
    size_t metadata_count;
    int64_t timeout_ms;                 /* <= 0: no deadline */
    int wait_for_ready;                 /* 1: wait for the channel to connect instead of failing fast */
} grpcshim_call_options;

/* Starts a unary call. Exactly one DONE event follows (possibly before this returns). The returned
   handle serves grpcshim_call_cancel and must be released with grpcshim_call_release. */
grpcshim_call *grpcshim_unary_call(grpcshim_channel *channel, const char *method, size_t method_len,
                                   const uint8_t *data, size_t len,
                                   const grpcshim_call_options *options,
                                   grpcshim_call_event_cb callback, void *ctx);

/* Starts a streaming call (server, client or bidirectional streaming on the wire alike). Events:
   MESSAGE / END_OF_MESSAGES answering grpcshim_call_read, WRITE_DONE for each write, then DONE; they
   arrive in order on one client completion-queue thread. */
grpcshim_call *grpcshim_stream_call(grpcshim_channel *channel, const char *method, size_t method_len,
                                    const grpcshim_call_options *options,
                                    grpcshim_call_event_cb callback, void *ctx);
/* Asks for the next message. Returns -1 if reading has ended (then no event follows). */
int grpcshim_call_read(grpcshim_call *call);
/* Queues one message (copied). Returns -1 after writes_done, a failed write, or release. */
int grpcshim_call_write(grpcshim_call *call, const uint8_t *data, size_t len);
/* Half-closes after the queued writes went out. */
int grpcshim_call_writes_done(grpcshim_call *call);
/* Cancels the call on both sides; its DONE event reports CANCELLED. Safe at any time before release. */
void grpcshim_call_cancel(grpcshim_call *call);
/* Takes and drops an extra reference, so an operation may run outside the caller's locks while another
   thread releases the handle (operations after release return -1; memory stays valid until unref). */
void grpcshim_call_ref(grpcshim_call *call);
void grpcshim_call_unref(grpcshim_call *call);
/* Drops the caller's handle. A call not yet done is cancelled. Events may still arrive until DONE
   (which this function itself may deliver, on the calling thread, when the call is otherwise over). */
void grpcshim_call_release(grpcshim_call *call);

/* ---------------------------------------------------------------------------------------------- */
/* Accounting                                                                                      */

/* How many of the shim's objects are alive right now, for leak checks in tests. */
typedef struct cinterop_live_objects {
    int64_t servers;
    int64_t server_calls;   /* calls a server accepted (pre-posted, unanswered requests not counted) */
    int64_t channels;
    int64_t client_calls;
} cinterop_live_objects;
cinterop_live_objects cinterop_live_object_counts(void);
/* Calls of this server, or started on this channel, whose memory is still held. */
int64_t grpcshim_server_live_calls(grpcshim_server *server);
int64_t grpcshim_channel_live_calls(grpcshim_channel *channel);

/* ---------------------------------------------------------------------------------------------- */
/* YAML                                                                                            */

/* Converts YAML text to JSON text. With all_documents = 0 the input must hold at most one document
   (none gives "null"); with 1 the result is a JSON array of every document. Plain scalars resolve as
   in YAML 1.2's core schema (null, booleans, integers, floats); quoted scalars stay strings.
   Returns malloc'd JSON, or NULL with *err, *err_line and *err_column (1-based) set. */
char *cinterop_yaml_to_json(const char *yaml, size_t len, int all_documents,
                            char **err, int *err_line, int *err_column);

#ifdef __cplusplus
}
#endif

#endif /* CINTEROP_H */
