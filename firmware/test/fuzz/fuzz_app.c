/* Coverage-guided fuzzing (libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer) of
 * the firmware's receive path compiled for the host: the frame parser, the frame handlers and
 * the epoch assembly with its preprocessing (app/main.c's app_service, app/proto.c,
 * app/preprocess.c, app/wire_coding.c: raw and coded SAMPLES). The board is replaced by the
 * functions below: received bytes come from the fuzz input; every reply must be a well-formed frame
 * (else abort(), a finding). No model runs here: a complete epoch stays in the receive buffer, as
 * on a board still scoring the previous one.
 *
 *   make -C firmware fuzz            a short run (part of make test)
 *   make -C firmware fuzz FUZZ_SECONDS=600   a long one (make bench-fuzz)
 *
 * Built with -DFUZZ_REPLAY (make -C firmware build/fuzz/replay) it is a replay tool instead:
 * stdin is received as one input, from the same known state, and each reply frame is printed
 * on stdout as a line of hex (tests/firmware/test_firmware_replay.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "engine_model.h"
#include "proto.h"

uint32_t _sdata, _ebss; /* the linker's symbols on the board: static RAM in INFO */
/* LAYER_COUNTS reports each layer's MACs; the engine itself is not part of this target. */
const uint32_t engine_model_layer_macs[ENGINE_MODEL_LAYERS];

static const uint8_t *input;
static size_t input_left;
static uint64_t replies, reply_bytes;

int board_uart_read(uint8_t *byte)
{
    if (input_left == 0) {
        return 0;
    }
    *byte = *input++;
    --input_left;
    return 1;
}

/* Each reply is one whole frame: sync, a version the board speaks, a length that matches (INFO
 * and STATUS_REPLY: their version's), a correct CRC. */
void board_uart_write(const uint8_t *data, size_t len)
{
    if (len < PROTO_HEADER_LEN + PROTO_CRC_LEN || data[0] != PROTO_SYNC0 ||
        data[1] != PROTO_SYNC1 || data[2] < PROTO_VERSION_MIN || data[2] > PROTO_VERSION) {
        abort();
    }
    size_t payload = (size_t)data[6] | ((size_t)data[7] << 8);
    if (payload > PROTO_MAX_PAYLOAD || len != PROTO_HEADER_LEN + payload + PROTO_CRC_LEN) {
        abort();
    }
    const int v4 = data[2] > PROTO_VERSION_MIN;
    if ((data[3] == PROTO_MSG_INFO && payload != (v4 ? PROTO_INFO_LEN : PROTO_INFO_LEN_V3)) ||
        (data[3] == PROTO_MSG_STATUS_REPLY &&
         payload != (v4 ? PROTO_STATUS_LEN : PROTO_STATUS_LEN_V3))) {
        abort();
    }
    uint32_t crc = proto_crc32(0, data + 2, PROTO_HEADER_LEN - 2 + payload);
    for (int i = 0; i < PROTO_CRC_LEN; ++i) {
        if (data[len - PROTO_CRC_LEN + i] != (uint8_t)(crc >> (8 * i))) {
            abort();
        }
    }
    ++replies;
    reply_bytes += len;
#ifdef FUZZ_REPLAY
    for (size_t i = 0; i < len; ++i) {
        printf("%02x", data[i]);
    }
    printf("\n");
#endif
}

int board_rx_overflowed(void)
{
    return 0;
}

void board_service_request(void)
{
}

void board_critical_begin(void)
{
}

void board_critical_end(void)
{
}

void board_counter_restart(void)
{
}

uint64_t board_counter_read(void)
{
    return 0;
}

void board_mark(board_mark_t *m)
{
    m->raw = 0;
    m->nested = 0;
}

uint32_t board_units_since_mark(const board_mark_t *m)
{
    (void)m;
    return 0;
}

board_counter_kind_t board_counter_kind(void)
{
    return BOARD_COUNTER_INSTRUCTIONS;
}

uint32_t board_core_clock_hz(void)
{
    return 1000000u;
}

const char *board_name(void)
{
    return "host-fuzz";
}

uint32_t board_stack_peak(void)
{
    return 0;
}

void board_reset(void)
{
}

/* Each input starts from the same state: the parser flushed (a frame's worth of zeros ends any
 * frame in progress) and the stream reset, in version 3 (the replies' version after a reset). */
static void known_state(void)
{
    static uint8_t prefix[PROTO_HEADER_LEN + PROTO_MAX_PAYLOAD + PROTO_CRC_LEN + 10];
    size_t n = sizeof(prefix) - (PROTO_HEADER_LEN + PROTO_CRC_LEN);
    memset(prefix, 0, n);
    n += proto_encode(prefix + n, PROTO_VERSION_MIN, PROTO_MSG_RESET_STREAM, 1, 0, 0);
    input = prefix;
    input_left = n;
    app_service();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    known_state();
    input = data;
    input_left = size;
    app_service();
    return 0;
}

#ifdef FUZZ_REPLAY
int main(void)
{
    static uint8_t data[1u << 20];
    size_t n = fread(data, 1, sizeof(data), stdin);
    if (!feof(stdin)) {
        fprintf(stderr, "replay: more than %zu bytes on stdin\n", sizeof(data));
        return 2;
    }
    LLVMFuzzerTestOneInput(data, n);
    return 0;
}
#endif
