/* Application: frames in, 30-s epochs assembled, preprocessed, scored, results out
 * (docs/protocol.md).
 *
 * Two contexts (board.h):
 *   - app_service(), run by the board at low interrupt priority whenever bytes arrive: parses
 *     frames, stores SAMPLES and SAMPLES_RICE (decoded) into the receive buffer, answers
 *     HELLO/PROFILE/RESET_STREAM, and sends what the inference produced. It is the only
 *     sender, in the version of the last valid frame.
 *   - main(), thread mode: when the receive buffer holds a complete epoch, converts it to the
 *     model input (freeing the receive buffer for the next epoch), then runs the model (twice
 *     when the host asked for DWT events: once counted, once sampled, see run_epoch).
 * So reception of epoch n+1 overlaps inference of epoch n (double buffering: a receive buffer
 * and the int8 model input). The ACK of the frame that completes an epoch is sent when
 * the receive buffer is free again; samples of the following epoch sent before that ACK get
 * ERROR BUSY. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "engine_model.h"
#include "model_norm.h"
#include "preprocess.h"
#include "profile.h"
#include "proto.h"
#include "wire_coding.h"

#ifndef FW_VERSION
#define FW_VERSION "0.2.0"
#endif
#ifndef FW_BUILD_HASH
#define FW_BUILD_HASH 0u
#endif

/* The receive buffer's states; only the owner named in each comment changes it. */
enum {
    RX_FILLING = 0, /* service stores samples */
    RX_FULL = 1,    /* service completed an epoch; main takes it when idle */
    RX_TAKING = 2,  /* main converts it to the model input, then sets RX_FILLING */
};

/* Receive buffer (preprocess.h: int16 for mean-removed channels, int8 for the others). SAMPLES
 * frames of the epoch being received may arrive in any order (selective repeat): each is
 * stored at its index and its 5-sample blocks are marked in app_rx_have. */
#define APP_BLOCKS (PROTO_EPOCH_SAMPLES / PROTO_SAMPLE_BLOCK)
_Static_assert(PROTO_EPOCH_SAMPLES % PROTO_SAMPLE_BLOCK == 0, "epochs are whole blocks");
static preprocess_epoch_t app_rx;
static volatile uint8_t app_rx_state;
static uint8_t app_rx_have[(APP_BLOCKS + 7) / 8]; /* blocks of the epoch being received */
static uint32_t app_rx_base;         /* its first sample index (the next epoch's once full) */
static uint32_t app_rx_epoch;        /* epoch index of the complete epoch in app_rx */
static uint16_t app_rx_last_seq;     /* frame that completed it: ACKed again when it is taken */
static volatile uint8_t app_ack_due; /* set by main: send that ACK */
static uint32_t app_next_index;      /* next expected sample index: all before it are stored */
/* Receive figures (STATUS_REPLY, version 4), since the last RESET_STREAM or reset: samples
 * stored from SAMPLES and SAMPLES_RICE frames, and the counter units spent storing them. */
static uint32_t app_rx_samples, app_rx_units;

/* The last inference, written by main and sent by the service. */
static struct {
    uint32_t epoch;
    uint16_t seq;
    int8_t scores[ENGINE_MODEL_OUTPUTS];
    engine_status_t status;
    uint32_t preprocess_count;
    uint32_t inference_count;
    uint8_t profile;      /* PROTO_PROFILE_* the inference ran with */
    uint8_t events_agree; /* events pass: its scores were the first pass's */
} app_result;

static volatile uint8_t app_result_due;
static volatile uint8_t app_layers_due; /* set by main: send LAYER_COUNTS now */

static volatile uint8_t app_profile; /* PROTO_PROFILE_*, as the host asked (0 at reset) */
static uint8_t app_events_supported; /* the board's, read once by main() */

/* The last RESULT payloads, for RESEND (a reply lost on the link), epoch e's at e % KEPT; each
 * begins with its epoch index. Bit i of app_kept_valid: app_kept[i] holds a RESULT. */
static uint8_t app_kept[PROTO_RESULTS_KEPT][PROTO_RESULT_LEN];
static uint8_t app_kept_valid;
_Static_assert(PROTO_RESULTS_KEPT <= 8, "app_kept_valid has 8 bits");

static uint32_t app_results_sent;     /* RESULTs since the last RESET_STREAM (or reset) */
static volatile uint8_t app_announce; /* send INFO unasked (after reset) */
/* Every reply is in the version of the last valid frame (docs/protocol.md, Versions):
 * PROTO_VERSION_MIN from main()'s start (set there, not initialised: .data costs RAM). */
static uint8_t app_version;

static proto_parser_t app_parser;
/* Frames are built here, their payloads in place (TX_PAYLOAD: no copy on the stack, whose
 * deepest use counts against the RAM budget); EVENT_COUNTS in profile_events_frame(). */
static uint8_t app_tx[PROTO_HEADER_LEN + 1 + 8 * ENGINE_MODEL_LAYERS + PROTO_CRC_LEN];
_Static_assert(sizeof(app_tx) >= PROTO_HEADER_LEN + PROTO_INFO_LEN + PROTO_CRC_LEN,
               "app_tx is too small for INFO");

#define TX_PAYLOAD (&app_tx[PROTO_HEADER_LEN])

extern uint32_t _sdata, _ebss;

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void send(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len)
{
    board_uart_write(app_tx, proto_encode(app_tx, app_version, type, seq, payload, len));
}

/* Copies a string into a zero-padded field of `size` bytes (truncating, no terminator needed). */
static void put_str(uint8_t *p, const char *s, size_t size)
{
    for (size_t i = 0; i < size && s[i] != '\0'; ++i) {
        p[i] = (uint8_t)s[i];
    }
}

static void send_error(uint8_t code, uint8_t detail, uint16_t seq)
{
    uint8_t *p = TX_PAYLOAD;
    p[0] = code;
    p[1] = detail;
    put_u16(&p[2], seq);
    send(PROTO_MSG_ERROR, seq, p, 4);
}

static int have_block(uint32_t block)
{
    return block < APP_BLOCKS && ((app_rx_have[block >> 3] >> (block & 7u)) & 1u);
}

/* The receive state in ACK and STATUS_REPLY: u32 next expected index, u8 1 if a complete
 * epoch waits for the model, u32 `from` and a u64 of which PROTO_SACK_BLOCKS blocks from there
 * on are stored (bit i: the block starting at from + 5 i), so the host resends only what is
 * missing. `from` is the block after the next expected one, or for the ACK of a SAMPLES frame
 * ending further on, 64 blocks before that frame's end: the frames sent just before it. */
static void put_rx_state(uint8_t *p, uint32_t from)
{
    put_u32(p, app_next_index);
    p[4] = app_rx_state == RX_FILLING ? 0u : 1u;
    if (from < app_next_index + PROTO_SAMPLE_BLOCK) {
        from = app_next_index + PROTO_SAMPLE_BLOCK;
    }
    put_u32(&p[5], from);
    uint8_t *sack = &p[9];
    memset(sack, 0, PROTO_SACK_BLOCKS / 8);
    for (uint32_t i = 0; i < PROTO_SACK_BLOCKS; ++i) {
        uint32_t t = from + PROTO_SAMPLE_BLOCK * i; /* (>= app_rx_base: from > next index) */
        if (have_block((t - app_rx_base) / PROTO_SAMPLE_BLOCK)) {
            sack[i >> 3] |= (uint8_t)(1u << (i & 7u));
        }
    }
}

static void send_ack_from(uint16_t seq, uint32_t from)
{
    put_rx_state(TX_PAYLOAD, from);
    send(PROTO_MSG_ACK, seq, TX_PAYLOAD, PROTO_ACK_LEN);
}

static void send_ack(uint16_t seq)
{
    send_ack_from(seq, 0);
}

/* The wire code of the board's counter kind (INFO and RESULT). The protocol numbers the kinds
 * as board.h does, so the mapping is the identity, checked at compile time. */
_Static_assert(PROTO_COUNTER_INSTRUCTIONS == BOARD_COUNTER_INSTRUCTIONS,
               "protocol counter code differs from board.h");
_Static_assert(PROTO_COUNTER_CYCLES == BOARD_COUNTER_CYCLES,
               "protocol counter code differs from board.h");

static uint8_t counter_kind_code(void)
{
    return (uint8_t)board_counter_kind();
}

static void send_info(uint16_t seq)
{
    uint8_t *p = TX_PAYLOAD;
    memset(p, 0, PROTO_INFO_LEN);
    put_str(&p[0], FW_VERSION, 16);
    put_u32(&p[16], FW_BUILD_HASH);
    p[20] = app_version;
    memcpy(&p[21], model_hash8, 8);
    p[29] = PROTO_N_CHANNELS;
    put_u16(&p[30], PROTO_SAMPLE_RATE_HZ);
    put_u16(&p[32], PROTO_EPOCH_SAMPLES);
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        uint8_t *n = &p[34 + 8 * c];
        n[0] = model_norm_remove_dc[c];
        n[1] = model_norm_shift[c];
        put_u16(&n[2], (uint16_t)model_norm_offset[c]);
        put_u32(&n[4], (uint32_t)model_norm_multiplier[c]);
    }
    put_u32(&p[66], (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata));
    p[70] = counter_kind_code();
    put_u32(&p[71], board_core_clock_hz());
    put_str(&p[75], board_name(), 16);
    put_u32(&p[91], board_stack_peak());
    p[95] = PROTO_CODING_RICE; /* (not sent in version 3) */
    send(PROTO_MSG_INFO, seq, p,
         app_version > PROTO_VERSION_MIN ? PROTO_INFO_LEN : PROTO_INFO_LEN_V3);
}

static void send_layer_counts(void)
{
    uint8_t *layers = TX_PAYLOAD;
    layers[0] = ENGINE_MODEL_LAYERS;
    for (int i = 0; i < ENGINE_MODEL_LAYERS; ++i) {
        put_u32(&layers[1 + 8 * i], profile_layer_count(i));
        put_u32(&layers[5 + 8 * i], engine_model_layer_macs[i]);
    }
    send(PROTO_MSG_LAYER_COUNTS, app_result.seq, layers, 1 + 8 * ENGINE_MODEL_LAYERS);
}

/* After an events pass: its counts, or ERROR NO_EVENTS (detail 1) when its scores were not the
 * first pass's (the board is then not deterministic: no events of that epoch are trusted). */
static void send_event_counts(void)
{
    if (!app_result.events_agree) {
        send_error(PROTO_ERR_NO_EVENTS, 1, app_result.seq);
        return;
    }
    uint8_t *frame = profile_events_frame();
    board_uart_write(frame, proto_encode(frame, app_version, PROTO_MSG_EVENT_COUNTS, app_result.seq,
                                         &frame[PROTO_HEADER_LEN], PROFILE_EVENTS_PAYLOAD));
}

static void send_result(void)
{
    if (app_result.status != ENGINE_OK) {
        send_error(PROTO_ERR_ENGINE, (uint8_t)app_result.status, app_result.seq);
        return;
    }
    if (app_result.profile == PROTO_PROFILE_COUNTS) {
        send_layer_counts();
    } else if (app_result.profile == PROTO_PROFILE_EVENTS) {
        send_event_counts(); /* its LAYER_COUNTS went out before the events pass */
    }
    uint8_t stage = 0;
    for (uint8_t k = 1; k < ENGINE_MODEL_OUTPUTS; ++k) {
        if (app_result.scores[k] > app_result.scores[stage]) {
            stage = k;
        }
    }
    uint8_t *p = app_kept[app_result.epoch % PROTO_RESULTS_KEPT];
    app_kept_valid |= (uint8_t)(1u << (app_result.epoch % PROTO_RESULTS_KEPT));
    put_u32(&p[0], app_result.epoch);
    p[4] = stage;
    memcpy(&p[5], app_result.scores, ENGINE_MODEL_OUTPUTS);
    put_u32(&p[10], app_result.preprocess_count);
    put_u32(&p[14], app_result.inference_count);
    p[18] = counter_kind_code();
    send(PROTO_MSG_RESULT, app_result.seq, p, PROTO_RESULT_LEN);
    app_results_sent++;
}

static void on_resend(const proto_frame_t *f)
{
    if (f->len != 4) {
        send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
        return;
    }
    uint32_t epoch = get_u32(f->payload);
    const uint8_t *kept = app_kept[epoch % PROTO_RESULTS_KEPT];
    if (((app_kept_valid >> (epoch % PROTO_RESULTS_KEPT)) & 1u) && get_u32(kept) == epoch) {
        send(PROTO_MSG_RESULT, f->seq, kept, PROTO_RESULT_LEN);
    } else {
        send_error(PROTO_ERR_NO_RESULT, 0, f->seq);
    }
}

static void send_status(uint16_t seq)
{
    uint8_t *p = TX_PAYLOAD;
    put_rx_state(p, 0);
    put_u32(&p[17], app_results_sent);
    put_u32(&p[21], app_rx_samples); /* (version 4) */
    put_u32(&p[25], app_rx_units);
    send(PROTO_MSG_STATUS_REPLY, seq, p,
         app_version > PROTO_VERSION_MIN ? PROTO_STATUS_LEN : PROTO_STATUS_LEN_V3);
}

static void mark_blocks(uint32_t t0, uint16_t n, int stored)
{
    for (uint32_t k = t0 / PROTO_SAMPLE_BLOCK; k < (t0 + n) / PROTO_SAMPLE_BLOCK; ++k) {
        if (stored) {
            app_rx_have[k >> 3] |= (uint8_t)(1u << (k & 7u));
        } else {
            app_rx_have[k >> 3] &= (uint8_t) ~(1u << (k & 7u));
        }
    }
}

/* SAMPLES (raw int16) and SAMPLES_RICE (coded, docs/protocol.md "Coded samples"): the same
 * head (u32 first index, u16 n), the same checks in the same order, then the samples go
 * straight into the receive buffer, decoded on the way when coded. */
static void on_samples(const proto_frame_t *f)
{
    const int coded = f->type == PROTO_MSG_SAMPLES_RICE;
    if (f->len < 6) {
        send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
        return;
    }
    uint32_t first = get_u32(f->payload);
    uint16_t n = (uint16_t)(f->payload[4] | (f->payload[5] << 8));
    if (n < PROTO_SAMPLE_BLOCK || n > PROTO_MAX_SAMPLES_PER_FRAME || n % PROTO_SAMPLE_BLOCK ||
        first % PROTO_SAMPLE_BLOCK || (!coded && f->len != 6u + 8u * n)) {
        send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
        return;
    }
    const uint64_t end = (uint64_t)first + n, base = app_rx_base;
    if (end <= base && (uint64_t)first + PROTO_EPOCH_SAMPLES >= base) {
        /* a resent frame (its ACK was lost) of the last epoch: stored already */
        send_ack(f->seq);
        return;
    }
    if (first < base || first >= base + PROTO_EPOCH_SAMPLES) {
        send_error(PROTO_ERR_OUT_OF_SEQUENCE, 0, f->seq);
        send_ack(f->seq);
        return;
    }
    if (app_rx_state != RX_FILLING) { /* the host did not wait for the epoch's last ACK */
        send_error(PROTO_ERR_BUSY, 0, f->seq);
        return;
    }
    if (end > base + PROTO_EPOCH_SAMPLES) { /* an epoch must end at a frame boundary */
        send_error(PROTO_ERR_BAD_LENGTH, 1, f->seq);
        send_ack(f->seq);
        return;
    }
    /* Stored at its place whatever the order (a resend stores the same samples again). */
    const uint32_t t0 = first - app_rx_base;
    board_mark_t mark;
    board_mark(&mark);
    if (coded) {
        wire_rice_t d;
        int fault = wire_rice_begin(&d, &f->payload[6], (uint16_t)(f->len - 6u));
        for (uint32_t t = 0; t < n && !fault; ++t) { /* (the decoder calls nothing: shallow) */
            if (t == 0 || (fault = wire_rice_next(&d)) == 0) {
                preprocess_store(&app_rx, (int)(t0 + t), d.x);
            }
        }
        if (fault || (fault = wire_rice_end(&d)) != 0) {
            /* The samples before the fault overwrote the frame's blocks: missing until resent. */
            mark_blocks(t0, n, 0);
            if (app_next_index > first) {
                app_next_index = first;
            }
            send_error(PROTO_ERR_BAD_CODING, (uint8_t)fault, f->seq);
            send_ack(f->seq);
            return;
        }
    } else {
        const uint8_t *b = &f->payload[6];
        for (uint32_t t = t0; t < t0 + n; ++t) {
            int16_t s[PROTO_N_CHANNELS];
            for (int c = 0; c < PROTO_N_CHANNELS; ++c, b += 2) {
                s[c] = (int16_t)(b[0] | (b[1] << 8));
            }
            preprocess_store(&app_rx, (int)t, s);
        }
    }
    app_rx_units += board_units_since_mark(&mark);
    app_rx_samples += n;
    mark_blocks(t0, n, 1);
    while (app_next_index < app_rx_base + PROTO_EPOCH_SAMPLES &&
           have_block((app_next_index - app_rx_base) / PROTO_SAMPLE_BLOCK)) {
        app_next_index += PROTO_SAMPLE_BLOCK;
    }
    if (app_next_index == app_rx_base + PROTO_EPOCH_SAMPLES) {
        /* complete: ACKed now (waiting for the model) and again once main has taken it */
        app_rx_epoch = app_rx_base / PROTO_EPOCH_SAMPLES;
        app_rx_last_seq = f->seq;
        memset(app_rx_have, 0, sizeof(app_rx_have));
        app_rx_base = app_next_index;
        app_rx_state = RX_FULL;
    }
    uint32_t window = PROTO_SACK_BLOCKS * PROTO_SAMPLE_BLOCK;
    send_ack_from(f->seq, first + n > window ? first + n - window : 0);
}

static void on_frame(const proto_frame_t *f)
{
    app_version = f->version;
    switch (f->type) {
    case PROTO_MSG_HELLO:
        send_info(f->seq);
        break;
    case PROTO_MSG_SAMPLES:
    case PROTO_MSG_SAMPLES_RICE:
        on_samples(f);
        break;
    case PROTO_MSG_PROFILE:
        if (f->len != 1) {
            send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
            break;
        }
        if (f->payload[0] == PROTO_PROFILE_EVENTS && !app_events_supported) {
            send_error(PROTO_ERR_NO_EVENTS, 0, f->seq); /* and profiling stays as it was */
            break;
        }
        /* (any other nonzero value: counts, as before events existed) */
        app_profile = f->payload[0] == PROTO_PROFILE_EVENTS ? PROTO_PROFILE_EVENTS
                      : f->payload[0]                       ? PROTO_PROFILE_COUNTS
                                                            : PROTO_PROFILE_OFF;
        send_ack(f->seq);
        break;
    case PROTO_MSG_RESET_STREAM:
        /* A complete epoch not yet taken is dropped; one already taken is still scored. */
        if (app_rx_state == RX_FULL) {
            app_rx_state = RX_FILLING;
        }
        app_next_index = 0;
        app_rx_base = 0;
        memset(app_rx_have, 0, sizeof(app_rx_have));
        app_results_sent = 0;
        app_rx_samples = 0;
        app_rx_units = 0;
        app_kept_valid = 0;
        send_ack(f->seq);
        break;
    case PROTO_MSG_STATUS:
        send_status(f->seq);
        break;
    case PROTO_MSG_RESEND:
        on_resend(f);
        break;
    case PROTO_MSG_REBOOT: /* answered, then the board resets (and announces itself) */
        send_ack(f->seq);
        board_reset();
        break;
    default:
        send_error(PROTO_ERR_UNKNOWN_TYPE, f->type, f->seq);
        break;
    }
}

void app_service(void)
{
    if (app_announce) {
        app_announce = 0;
        send_info(0);
    }
    if (app_layers_due) {
        send_layer_counts();
        app_layers_due = 0;
    }
    if (app_result_due) {
        send_result();
        app_result_due = 0;
    }
    if (app_ack_due) {
        app_ack_due = 0;
        send_ack(app_rx_last_seq);
    }
    if (board_rx_overflowed()) {
        proto_parser_init(&app_parser);
        send_error(PROTO_ERR_OVERRUN, 0, 0);
    }
    uint8_t byte;
    while (board_uart_read(&byte)) {
        proto_event_t ev = proto_parser_push(&app_parser, byte);
        if (ev == PROTO_FRAME) {
            on_frame(&app_parser.frame);
        } else if (ev == PROTO_ERROR) {
            send_error(app_parser.error, 0, app_parser.error_seq);
        }
    }
}

#ifndef PIO_UNIT_TESTING /* test programs (firmware/test) bring their own main() */
/* Model input: int8 [channel][sample], owned by main. */
static int8_t app_input[PROTO_N_CHANNELS * PROTO_EPOCH_SAMPLES];
static uint8_t app_run_profile; /* PROTO_PROFILE_* of the epoch being scored */

/* The events pass (PROFILE 2): the same input again with the board's event sampler on (it
 * perturbs the cycle counts, so the first pass stays unperturbed). Its LAYER_COUNTS are sent
 * first: the events reuse their buffer. The pass must reproduce the first pass's scores. */
static void run_events_pass(int8_t *scores)
{
    app_layers_due = 1;
    board_service_request();
    while (app_layers_due) { /* sent (the service ran at once) */
    }
    profile_events_begin();
    engine_status_t status = engine_model_run_s8(app_input, scores);
    profile_events_end();
    app_result.events_agree =
        status == ENGINE_OK && memcmp(scores, app_result.scores, ENGINE_MODEL_OUTPUTS) == 0;
}

/* Takes the complete epoch out of the receive buffer and scores it. */
static void run_epoch(void)
{
    uint32_t epoch = app_rx_epoch;
    uint16_t seq = app_rx_last_seq;
    board_counter_restart();
    preprocess_finish(&app_rx, app_input);
    uint32_t preprocess_count = (uint32_t)board_counter_read();
    app_rx_state = RX_FILLING;
    app_ack_due = 1;
    board_service_request(); /* the host may send the next epoch now */

    int8_t scores[ENGINE_MODEL_OUTPUTS];
    /* The previous epoch's frames are out (the service ran at once when they were due): the
     * per-layer buffer they were sent from is free. */
    while (app_result_due) {
    }
    app_run_profile = app_profile; /* (a static: main's frame is under the deepest stack) */
    board_counter_restart();
    profile_begin(app_run_profile != PROTO_PROFILE_OFF);
    engine_status_t status = engine_model_run_s8(app_input, scores);
    uint32_t inference_count = (uint32_t)board_counter_read();

    app_result.epoch = epoch;
    app_result.seq = seq;
    memcpy(app_result.scores, scores, sizeof(scores));
    app_result.status = status;
    app_result.preprocess_count = preprocess_count;
    app_result.inference_count = inference_count;
    app_result.profile = app_run_profile;
    if (app_run_profile == PROTO_PROFILE_EVENTS && status == ENGINE_OK) {
        run_events_pass(scores);
    }
    app_result_due = 1;
    board_service_request();
}

int main(void)
{
    board_init();
    app_events_supported = (uint8_t)board_events_supported();
    proto_parser_init(&app_parser);
    app_version = PROTO_VERSION_MIN;
    app_announce = 1; /* INFO with sequence number 0: a host streaming to us sees a restart */
    board_rx_start();
    board_service_request();
    for (;;) {
        board_critical_begin(); /* FULL -> TAKING, not interleaved with a RESET_STREAM */
        int full = app_rx_state == RX_FULL;
        if (full) {
            app_rx_state = RX_TAKING;
        } else {
            board_idle(); /* until an interrupt: the host's bytes or a service request */
        }
        board_critical_end();
        if (full) {
            run_epoch();
        }
    }
}
#endif
