/* On-target unit tests: the engine (DSP paths included) against TFLite Micro's scores, the
 * integer preprocessing against the Python reference, the frame parser and encoder, and the
 * SAMPLES_RICE decoder (hand-made frames, round trips, every fault; its count per frame). Each
 * check prints one line, "PASS name" or "FAIL name: detail"; the last line is "ON-TARGET TESTS: <n>
 * passed, <m> failed" and is what the runners (firmware/Makefile `test`, PlatformIO's
 * test_custom_runner.py) look for. */
#include <stdint.h>
#include <string.h>

#include "../fuzz/rice_encoder.h"
#include "../semihost.h"
#include "board.h"
#include "engine_model.h"
#include "model_norm.h"
#include "preprocess.h"
#include "proto.h"
#include "vectors.h"
#include "wire_coding.h"

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
    size_t n =
        proto_encode(frame, PROTO_VERSION, PROTO_MSG_SAMPLES, 0x1234, payload, sizeof(payload));
    size_t events;

    proto_parser_init(&parser);
    proto_event_t ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && events == 1 && parser.frame.seq == 0x1234 &&
               parser.frame.version == PROTO_VERSION && parser.frame.len == sizeof(payload) &&
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
           "a version above the board's is an error", "error ", parser.error);
    frame[2] = PROTO_VERSION_MIN - 1;
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_BAD_VERSION,
           "a version below the oldest taken is an error", "error ", parser.error);

    n = proto_encode(frame, PROTO_VERSION_MIN, PROTO_MSG_SAMPLES, 0x1234, payload, sizeof(payload));
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && parser.frame.version == PROTO_VERSION_MIN,
           "a version-3 frame is taken, its version recorded", "version ", parser.frame.version);

    /* SAMPLES_RICE: 18 .. 1024 bytes at the header */
    n = proto_encode(frame, PROTO_VERSION, PROTO_MSG_SAMPLES_RICE, 9, payload, 18);
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && parser.frame.type == PROTO_MSG_SAMPLES_RICE,
           "a SAMPLES_RICE frame of 18 bytes is taken", "events ", (uint32_t)events);
    frame[6] = 17;
    ev = feed(&parser, frame, PROTO_HEADER_LEN, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_BAD_LENGTH,
           "a SAMPLES_RICE length of 17 is an error at the header", "error ", parser.error);

    frame[2] = PROTO_VERSION;
    frame[6] = 0xFF;
    frame[7] = 0xFF;
    ev = feed(&parser, frame, PROTO_HEADER_LEN, &events);
    report(ev == PROTO_ERROR && parser.error == PROTO_ERR_TOO_LONG,
           "an oversized length is an error", "error ", parser.error);

    static const uint8_t junk[] = {0x00, 0xA5, 0x13, 0x5A, 0xA5};
    n = proto_encode(frame, PROTO_VERSION, PROTO_MSG_HELLO, 7, 0, 0);
    proto_parser_init(&parser);
    feed(&parser, junk, sizeof(junk), &events);
    ev = feed(&parser, frame, n, &events);
    report(ev == PROTO_FRAME && parser.frame.type == PROTO_MSG_HELLO && parser.frame.seq == 7,
           "the parser resynchronises after junk", "events ", (uint32_t)events);
}

/* Decodes a SAMPLES_RICE payload from offset 6 (len bytes, n samples) into x as app/main.c
 * does (sample by sample, then the end check); returns 0 or the BAD_CODING detail. */
static int rice_decode(const uint8_t *coded, uint16_t len, int n, int16_t (*x)[PROTO_N_CHANNELS])
{
    wire_rice_t d;
    int fault = wire_rice_begin(&d, coded, len);
    for (int t = 0; t < n && !fault; ++t) {
        if (t == 0 || (fault = wire_rice_next(&d)) == 0) {
            memcpy(x[t], d.x, sizeof(d.x));
        }
    }
    return fault ? fault : wire_rice_end(&d);
}

static int16_t rice_x[PROTO_MAX_SAMPLES_PER_FRAME][PROTO_N_CHANNELS];
static int16_t rice_y[PROTO_MAX_SAMPLES_PER_FRAME][PROTO_N_CHANNELS];
static uint8_t rice_buf[PROTO_MAX_PAYLOAD];

/* Frames written by hand from the spec (bits checked with host_tools.samples too): k = 0 with
 * differences -2 .. 3 and a wrap at channel 3 (32767 + 1 = -32768); k = 15 with the widest
 * differences (-32768: u = 65535, q = 1) and wraps. Then the faults, each with its detail. */
static void test_rice_frames(void)
{
    static const uint8_t k0[] = {0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0xFB, 0xFF,
                                 0xFF, 0x7F, 0x23, 0x2F, 0xCA, 0x10, 0x2C};
    static const int16_t k0_x[5][PROTO_N_CHANNELS] = {{0, 100, -5, 32767},
                                                      {1, 98, -5, -32768},
                                                      {0, 98, -5, -32768},
                                                      {0, 98, -4, 32767},
                                                      {2, 101, -5, 32767}};
    static const uint8_t k15[] = {0xFF, 0xFF, 0x00, 0x80, 0x00, 0x00, 0x39, 0x30, 0xFF, 0xFF, 0x80,
                                  0x01, 0x4E, 0x20, 0x3F, 0xFF, 0xE0, 0x00, 0x9F, 0xFF, 0xC9, 0xC3,
                                  0xF7, 0xFF, 0xF3, 0xFF, 0xFD, 0xFF, 0xFF, 0x00, 0x05, 0x00, 0x01,
                                  0xC0, 0xE5, 0x00, 0x15, 0x00, 0x03, 0x01, 0x91, 0xC0, 0xE2};
    static const int16_t k15_x[5][PROTO_N_CHANNELS] = {{-32768, 0, 12345, -1},
                                                       {32767, 20000, -20423, 0},
                                                       {-2, 0, 12344, -32768},
                                                       {32766, 1, 12344, -20423},
                                                       {-32765, 0, 12444, -32768}};
    int fault = rice_decode(k0, sizeof(k0), 5, rice_y);
    report(fault == 0 && memcmp(rice_y, k0_x, sizeof(k0_x)) == 0,
           "SAMPLES_RICE k = 0, n = 5: small, negative and wrapping differences", "fault ",
           (uint32_t)fault);
    fault = rice_decode(k15, sizeof(k15), 5, rice_y);
    report(fault == 0 && memcmp(rice_y, k15_x, sizeof(k15_x)) == 0,
           "SAMPLES_RICE k = 15, n = 5: the widest differences, wrapping", "fault ",
           (uint32_t)fault);

    fault = rice_decode(k0, sizeof(k0) - 1, 5, rice_y);
    report(fault == PROTO_CODING_OVERRUN, "SAMPLES_RICE codes past the payload: OVERRUN", "fault ",
           (uint32_t)fault);
    fault = rice_decode(k0, 9, 5, rice_y);
    report(fault == PROTO_CODING_OVERRUN, "SAMPLES_RICE head cut short: OVERRUN", "fault ",
           (uint32_t)fault);
    static const uint8_t range[] = {0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x00, 0x00};
    fault = rice_decode(range, sizeof(range), 5, rice_y);
    report(fault == PROTO_CODING_RANGE, "SAMPLES_RICE q = 2 at k = 15: RANGE", "fault ",
           (uint32_t)fault);
    static const uint8_t zeros[] = {0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00};
    fault = rice_decode(zeros, sizeof(zeros), 5, rice_y);
    report(fault == PROTO_CODING_RANGE, "SAMPLES_RICE zeros past q's limit, then the end: RANGE",
           "fault ", (uint32_t)fault);
    memcpy(rice_buf, k0, sizeof(k0));
    rice_buf[sizeof(k0) - 1] |= 0x01u; /* (the last 2 bits are padding) */
    fault = rice_decode(rice_buf, sizeof(k0), 5, rice_y);
    report(fault == PROTO_CODING_TRAILING, "SAMPLES_RICE non-zero padding: TRAILING", "fault ",
           (uint32_t)fault);
    memcpy(rice_buf, k0, sizeof(k0));
    rice_buf[sizeof(k0)] = 0;
    fault = rice_decode(rice_buf, sizeof(k0) + 1, 5, rice_y);
    report(fault == PROTO_CODING_TRAILING, "SAMPLES_RICE an extra zero byte: TRAILING", "fault ",
           (uint32_t)fault);
}

/* n = 125 samples of random walks whose steps fit k (and a channel of full-range noise at
 * k = 15, wrapping), through the reference encoder and back. */
static void test_rice_round_trip(void)
{
    static const uint8_t k[PROTO_N_CHANNELS] = {0, 5, 9, 15};
    uint32_t seed = 12345;
    for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
        rice_x[0][c] = (int16_t)(xorshift32(&seed) >> 16);
    }
    for (int t = 1; t < PROTO_MAX_SAMPLES_PER_FRAME; ++t) {
        for (int c = 0; c < 3; ++c) {
            int32_t step = (int32_t)(xorshift32(&seed) % (2u << k[c] | 1u)) - (1 << k[c]);
            rice_x[t][c] =
                (int16_t)(uint16_t)((uint32_t)(uint16_t)rice_x[t - 1][c] + (uint32_t)step);
        }
        rice_x[t][3] = (int16_t)(xorshift32(&seed) >> 16);
    }
    size_t len = rice_encode((const int16_t(*)[PROTO_N_CHANNELS])rice_x,
                             PROTO_MAX_SAMPLES_PER_FRAME, k, rice_buf, PROTO_MAX_PAYLOAD - 6);
    int fault =
        len ? rice_decode(rice_buf, (uint16_t)len, PROTO_MAX_SAMPLES_PER_FRAME, rice_y) : -1;
    report(fault == 0 && memcmp(rice_x, rice_y, sizeof(rice_x)) == 0,
           "SAMPLES_RICE n = 125, k = 0, 5, 9, 15: round trip", "fault ", (uint32_t)fault);
}

static void put_str(char **p, const char *s)
{
    while (*s) {
        *(*p)++ = *s++;
    }
}

/* The decoder's count for a 125-sample frame of EEG-like walks (k = 4 .. 7), alone and with
 * the receive path's preprocess_store per sample; beside it, a raw SAMPLES frame's store. */
static void bench_rice(void)
{
    static const uint8_t k[PROTO_N_CHANNELS] = {5, 6, 4, 7};
    uint32_t seed = 777;
    for (int t = 0; t < PROTO_MAX_SAMPLES_PER_FRAME; ++t) {
        for (int c = 0; c < PROTO_N_CHANNELS; ++c) {
            int32_t step = (int32_t)(xorshift32(&seed) % (2u << k[c] | 1u)) - (1 << k[c]);
            rice_x[t][c] = (int16_t)(t ? rice_x[t - 1][c] + step : 100 * c);
        }
    }
    size_t len = rice_encode((const int16_t(*)[PROTO_N_CHANNELS])rice_x,
                             PROTO_MAX_SAMPLES_PER_FRAME, k, rice_buf, PROTO_MAX_PAYLOAD - 6);
    board_counter_restart();
    int fault = rice_decode(rice_buf, (uint16_t)len, PROTO_MAX_SAMPLES_PER_FRAME, rice_y);
    uint32_t decode = (uint32_t)board_counter_read();

    board_counter_restart();
    wire_rice_t d;
    fault |= wire_rice_begin(&d, rice_buf, (uint16_t)len);
    for (int t = 0; t < PROTO_MAX_SAMPLES_PER_FRAME && !fault; ++t) {
        if (t == 0 || (fault = wire_rice_next(&d)) == 0) {
            preprocess_store(&received, t, d.x);
        }
    }
    fault |= wire_rice_end(&d);
    uint32_t coded_store = (uint32_t)board_counter_read();

    board_counter_restart();
    for (int t = 0; t < PROTO_MAX_SAMPLES_PER_FRAME; ++t) {
        preprocess_store(&received, t, rice_x[t]);
    }
    uint32_t raw_store = (uint32_t)board_counter_read();
    report(fault == 0 && memcmp(rice_x, rice_y, sizeof(rice_x)) == 0,
           "SAMPLES_RICE benchmark frame decodes", "fault ", (uint32_t)fault);

    char *p = line;
    put_str(&p, "BENCH SAMPLES_RICE 125 samples, k = 5 6 4 7, ");
    put_uint(&p, (uint32_t)(6 + len));
    put_str(&p, " B (raw 1006 B): decode ");
    put_uint(&p, decode);
    put_str(&p, ", decode + store ");
    put_uint(&p, coded_store);
    put_str(&p, ", raw store ");
    put_uint(&p, raw_store);
    put_str(&p,
            board_counter_kind() == BOARD_COUNTER_INSTRUCTIONS ? " instructions\n" : " cycles\n");
    *p = '\0';
    semihost_puts(line);
}

int main(void)
{
    board_init();
    semihost_puts("on-target tests on ");
    semihost_puts(board_name());
    semihost_puts("\n");
    test_engine_and_preprocessing();
    test_parser();
    test_rice_frames();
    test_rice_round_trip();
    bench_rice();
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
