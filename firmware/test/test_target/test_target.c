/* On-target unit tests: the engine (DSP paths included) against TFLite Micro's scores, the
 * integer preprocessing against the Python reference, the frame parser and encoder. Each check
 * prints one line, "PASS name" or "FAIL name: detail"; the last line is "ON-TARGET TESTS: <n>
 * passed, <m> failed" and is what the runners (firmware/Makefile `test`, PlatformIO's
 * test_custom_runner.py) look for. */
#include <stdint.h>
#include <string.h>

#include "../semihost.h"
#include "board.h"
#include "engine_model.h"
#include "model_norm.h"
#include "preprocess.h"
#include "proto.h"
#include "vectors.h"

static int passed, failed;
static char line[160];

static void put_uint(char **p, uint32_t v)
{
    char tmp[11];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) {
        *(*p)++ = tmp[--n];
    }
}

static void report(int ok, const char *name, const char *detail, uint32_t value)
{
    char *p = line;
    const char *head = ok ? "PASS " : "FAIL ";
    while (*head) {
        *p++ = *head++;
    }
    while (*name && p < line + 100) {
        *p++ = *name++;
    }
    if (!ok && detail) {
        *p++ = ':';
        *p++ = ' ';
        while (*detail && p < line + 140) {
            *p++ = *detail++;
        }
        put_uint(&p, value);
    }
    *p++ = '\n';
    *p = '\0';
    semihost_puts(line);
    ok ? ++passed : ++failed;
}

static uint32_t xorshift32(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static uint32_t fnv1a32(const uint8_t *d, size_t n)
{
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < n; ++i) {
        h = (h ^ d[i]) * 0x01000193u;
    }
    return h;
}

static int16_t epoch16[PROTO_N_CHANNELS * PROTO_EPOCH_SAMPLES];
static int8_t input8[PROTO_N_CHANNELS * PROTO_EPOCH_SAMPLES];
static preprocess_epoch_t received;

static void test_engine_and_preprocessing(void)
{
    report(memcmp(test_vectors_model_hash8, model_hash8, 8) == 0, "vectors are for this model",
           "regenerate: python -m converter vectors; hash mismatch ", 0);
    static const int16_t offset[PROTO_N_CHANNELS] = {300, -700, 0, 2500};
    for (int v = 0; v < TEST_VECTORS; ++v) {
        uint32_t x = test_vectors[v].seed;
        for (int i = 0; i < PROTO_N_CHANNELS * PROTO_EPOCH_SAMPLES; ++i) {
            input8[i] = (int8_t)(xorshift32(&x) >> 24);
        }
        int8_t scores[ENGINE_MODEL_OUTPUTS];
        engine_status_t st = engine_model_run_s8(input8, scores);
        int bad = -1;
        for (int k = 0; k < ENGINE_MODEL_OUTPUTS; ++k) {
            if (scores[k] != test_vectors[v].scores[k] && bad < 0) {
                bad = k;
            }
        }
        report(st == ENGINE_OK && bad < 0, "engine scores equal TFLite Micro",
               "first differing score index ", (uint32_t)bad);

        x = test_vectors[v].seed;
        for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
            for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) {
                epoch16[c * PROTO_EPOCH_SAMPLES + n] =
                    (int16_t)((int32_t)(xorshift32(&x) >> 19) - 4096 + offset[c]);
            }
        }
        for (int n = 0; n < PROTO_EPOCH_SAMPLES; ++n) { /* sample by sample, as received */
            int16_t s[PROTO_N_CHANNELS];
            for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
                s[c] = epoch16[c * PROTO_EPOCH_SAMPLES + n];
            }
            preprocess_store(&received, n, s);
        }
        preprocess_finish(&received, input8);
        uint32_t h = fnv1a32((const uint8_t *)input8, sizeof(input8));
        report(h == test_vectors[v].preprocess_fnv, "preprocessing equals the Python reference",
               "FNV-1a ", h);
    }
}

static proto_event_t feed(proto_parser_t *p, const uint8_t *d, size_t n, size_t *events)
{
    proto_event_t last = PROTO_NONE;
    *events = 0;
    for (size_t i = 0; i < n; ++i) {
        proto_event_t ev = proto_parser_push(p, d[i]);
        if (ev != PROTO_NONE) {
            last = ev;
            ++*events;
        }
    }
    return last;
}

static void test_parser(void)
{
    static uint8_t frame[PROTO_HEADER_LEN + PROTO_MAX_PAYLOAD + PROTO_CRC_LEN];
    static proto_parser_t parser;
    static const uint8_t check[] = "123456789";
    report(proto_crc32(0, check, 9) == 0xCBF43926u &&
               proto_crc32(proto_crc32(0, check, 4), check + 4, 5) == 0xCBF43926u,
           "CRC-32 check value (zlib's crc32), also chained", "crc ", proto_crc32(0, check, 9));

    uint8_t payload[6 + 8 * PROTO_SAMPLE_BLOCK] = {0, 0, 0, 0, PROTO_SAMPLE_BLOCK, 0};
    for (size_t i = 6; i < sizeof(payload); ++i) {
        payload[i] = (uint8_t)i;
    }
    size_t n = proto_encode(frame, PROTO_MSG_SAMPLES, 0x1234, payload, sizeof(payload));
    size_t events;

    proto_parser_init(&parser);
    proto_event_t ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && events == 1 && parser.frame.seq == 0x1234 &&
               parser.frame.len == sizeof(payload) &&
               memcmp(parser.frame.payload, payload, sizeof(payload)) == 0,
           "parser decodes an encoded frame", "events ", (uint32_t)events);

    frame[n - 1] ^= 0x01;
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_BAD_CRC, "a bad CRC is an error",
           "error ", parser.error);
    frame[n - 1] ^= 0x01;

    /* a length that is not whole 5-sample blocks is refused with the header */
    frame[6] = (uint8_t)(6 + 8 * 3);
    frame[7] = 0;
    ev = feed(&parser, frame, PROTO_HEADER_LEN, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_BAD_LENGTH,
           "a SAMPLES length of 3 samples is an error at the header", "error ", parser.error);
    frame[6] = (uint8_t)sizeof(payload);

    frame[2] = PROTO_VERSION + 1;
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_BAD_VERSION,
           "a wrong version is an error", "error ", parser.error);

    frame[2] = PROTO_VERSION;
    frame[6] = 0xFF;
    frame[7] = 0xFF;
    ev = feed(&parser, frame, PROTO_HEADER_LEN, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_TOO_LONG,
           "an oversized length is an error", "error ", parser.error);

    static const uint8_t junk[] = {0x00, 0xA5, 0x13, 0x5A, 0xA5};
    n = proto_encode(frame, PROTO_MSG_HELLO, 7, 0, 0);
    proto_parser_init(&parser);
    feed(&parser, junk, sizeof(junk), &events);
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && parser.frame.type == PROTO_MSG_HELLO && parser.frame.seq == 7,
           "the parser resynchronises after junk", "events ", (uint32_t)events);
}

int main(void)
{
    board_init();
    semihost_puts("on-target tests on ");
    semihost_puts(board_name());
    semihost_puts("\n");
    test_engine_and_preprocessing();
    test_parser();
    char *p = line;
    const char *s = "ON-TARGET TESTS: ";
    while (*s) {
        *p++ = *s++;
    }
    put_uint(&p, (uint32_t)passed);
    for (s = " passed, "; *s;) {
        *p++ = *s++;
    }
    put_uint(&p, (uint32_t)failed);
    for (s = " failed\n"; *s;) {
        *p++ = *s++;
    }
    *p = '\0';
    semihost_puts(line);
    semihost_exit(0); /* the runners read the last line (PlatformIO treats a non-zero exit as a
                         hang-up) */
}
