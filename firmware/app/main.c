/* Application: frames in, 30-s epochs assembled, preprocessed, scored, results out
 * (docs/protocol.md). Stop-and-wait: every SAMPLES frame is answered with an ACK once stored;
 * a frame that completes an epoch gets the RESULT first. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "engine_model.h"
#include "model_norm.h"
#include "preprocess.h"
#include "profile.h"
#include "proto.h"

#ifndef FW_VERSION
#define FW_VERSION "0.1.0"
#endif
#ifndef FW_BUILD_HASH
#define FW_BUILD_HASH 0u
#endif

/* int16 [channel][sample]; converted to int8 in place before inference. */
static int16_t app_epoch[PROTO_N_CHANNELS * PROTO_EPOCH_SAMPLES];
static uint32_t app_next_index;    /* next expected sample index */
static proto_parser_t app_parser;
static uint8_t app_tx[PROTO_HEADER_LEN + 1 + 8 * ENGINE_MODEL_LAYERS + PROTO_CRC_LEN];
extern int profile_enabled;
_Static_assert(sizeof(app_tx) >= PROTO_HEADER_LEN + PROTO_INFO_LEN + PROTO_CRC_LEN,
               "app_tx is too small for INFO");

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

static void send(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len)
{
    board_uart_write(app_tx, proto_encode(app_tx, type, seq, payload, len));
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
    uint8_t p[4] = {code, detail, 0, 0};
    put_u16(&p[2], seq);
    send(PROTO_MSG_ERROR, seq, p, sizeof(p));
}

static void send_info(uint16_t seq)
{
    uint8_t p[PROTO_INFO_LEN];
    memset(p, 0, sizeof(p));
    put_str(&p[0], FW_VERSION, 16);
    put_u32(&p[16], FW_BUILD_HASH);
    p[20] = PROTO_VERSION;
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
    p[70] = board_counter_kind();
    put_u32(&p[71], board_core_clock_hz());
    put_str(&p[75], board_name(), 16);
    send(PROTO_MSG_INFO, seq, p, sizeof(p));
}

static void run_epoch(uint16_t seq)
{
    int8_t *input = (int8_t *)app_epoch;
    int8_t scores[ENGINE_MODEL_OUTPUTS];
    board_counter_restart();
    preprocess_epoch_s16_to_s8(app_epoch, input);
    uint64_t preprocess_count = board_counter_read();
    board_counter_restart();
    profile_begin();
    engine_status_t status = engine_model_run_s8(input, scores);
    uint64_t inference_count = board_counter_read();
    if (status != ENGINE_OK) {
        send_error(PROTO_ERR_ENGINE, (uint8_t)status, seq);
        return;
    }
    if (profile_enabled) {
        static uint8_t layers[1 + 8 * ENGINE_MODEL_LAYERS];
        layers[0] = ENGINE_MODEL_LAYERS;
        for (int i = 0; i < ENGINE_MODEL_LAYERS; ++i) {
            put_u32(&layers[1 + 8 * i], profile_layer_count(i));
            put_u32(&layers[5 + 8 * i], engine_model_layer_macs[i]);
        }
        send(PROTO_MSG_LAYER_COUNTS, seq, layers, sizeof(layers));
    }
    uint8_t stage = 0;
    for (uint8_t k = 1; k < ENGINE_MODEL_OUTPUTS; ++k) {
        if (scores[k] > scores[stage]) {
            stage = k;
        }
    }
    uint8_t p[PROTO_RESULT_LEN];
    put_u32(&p[0], app_next_index / PROTO_EPOCH_SAMPLES - 1u);
    p[4] = stage;
    memcpy(&p[5], scores, ENGINE_MODEL_OUTPUTS);
    put_u32(&p[10], (uint32_t)preprocess_count);
    put_u32(&p[14], (uint32_t)inference_count);
    p[18] = board_counter_kind();
    send(PROTO_MSG_RESULT, seq, p, sizeof(p));
}

static void on_samples(const proto_frame_t *f)
{
    if (f->len < 6) {
        send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
        return;
    }
    uint32_t first = (uint32_t)f->payload[0] | ((uint32_t)f->payload[1] << 8) |
                     ((uint32_t)f->payload[2] << 16) | ((uint32_t)f->payload[3] << 24);
    uint16_t n = (uint16_t)(f->payload[4] | (f->payload[5] << 8));
    if (n < 1 || n > PROTO_MAX_SAMPLES_PER_FRAME || f->len != 6u + 8u * n) {
        send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
        return;
    }
    if (first != app_next_index) {
        send_error(PROTO_ERR_OUT_OF_SEQUENCE, 0, f->seq);
    } else {
        const uint8_t *b = &f->payload[6];
        for (uint16_t i = 0; i < n; ++i) {
            uint32_t t = app_next_index % PROTO_EPOCH_SAMPLES;
            for (int c = 0; c < PROTO_N_CHANNELS; ++c, b += 2) {
                app_epoch[c * PROTO_EPOCH_SAMPLES + t] = (int16_t)(b[0] | (b[1] << 8));
            }
            app_next_index++;
            if (app_next_index % PROTO_EPOCH_SAMPLES == 0) {
                if (i + 1u != n) { /* an epoch must end at a frame boundary */
                    app_next_index -= (uint32_t)(i + 1u);
                    send_error(PROTO_ERR_BAD_LENGTH, 1, f->seq);
                    return;
                }
                run_epoch(f->seq);
            }
        }
    }
    uint8_t ack[4];
    put_u32(ack, app_next_index);
    send(PROTO_MSG_ACK, f->seq, ack, sizeof(ack));
}

static void on_frame(const proto_frame_t *f)
{
    switch (f->type) {
    case PROTO_MSG_HELLO:
        send_info(f->seq);
        break;
    case PROTO_MSG_SAMPLES:
        on_samples(f);
        break;
    case PROTO_MSG_PROFILE:
        if (f->len != 1) {
            send_error(PROTO_ERR_BAD_LENGTH, 0, f->seq);
            break;
        }
        profile_enabled = f->payload[0] != 0;
        {
            uint8_t ack[4];
            put_u32(ack, app_next_index);
            send(PROTO_MSG_ACK, f->seq, ack, sizeof(ack));
        }
        break;
    case PROTO_MSG_RESET_STREAM:
        app_next_index = 0;
        {
            uint8_t ack[4] = {0, 0, 0, 0};
            send(PROTO_MSG_ACK, f->seq, ack, sizeof(ack));
        }
        break;
    default:
        send_error(PROTO_ERR_UNKNOWN_TYPE, f->type, f->seq);
        break;
    }
}

int main(void)
{
    board_init();
    proto_parser_init(&app_parser);
    for (;;) {
        uint8_t byte;
        if (!board_uart_read(&byte)) {
            continue;
        }
        proto_event_t ev = proto_parser_push(&app_parser, byte);
        if (ev == PROTO_FRAME) {
            on_frame(&app_parser.frame);
        } else if (ev == PROTO_ERROR) {
            send_error(app_parser.error, 0, app_parser.error_seq);
        }
    }
}
