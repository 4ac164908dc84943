/* Coverage-guided fuzzing (libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer) of
 * the SAMPLES_RICE decoder alone (app/wire_coding.c), driven as app/main.c drives it. The input
 * is u16 n' (n = 1 + n' % 2048 samples), then the coded bytes (a payload from offset 6 on), in
 * a heap buffer of exactly their length; the samples go into a heap buffer of exactly n x 4
 * int16, so ASan reports any read or write outside either. Every result is checked:
 *   - a fault is one of the three BAD_CODING details;
 *   - a frame that decodes is exactly the reference encoding (rice_encoder.h) of the samples it
 *     decoded to with its k (the code is a bijection: any other bytes must be refused).
 *
 *   make -C firmware fuzz            a short run of this and fuzz_app (part of make test)
 *   make -C firmware fuzz FUZZ_SECONDS=600   a long one (make bench-fuzz) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rice_encoder.h"
#include "wire_coding.h"

#define MAX_N 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > UINT16_MAX) {
        return 0;
    }
    const int n = 1 + (int)((data[0] | (data[1] << 8)) % MAX_N);
    const uint16_t len = (uint16_t)(size - 2);
    uint8_t *coded = malloc(len ? len : 1);
    int16_t(*x)[PROTO_N_CHANNELS] = malloc(sizeof(*x) * (size_t)n);
    if (!coded || !x) {
        abort();
    }
    memcpy(coded, data + 2, len);

    wire_rice_t d;
    int fault = wire_rice_begin(&d, coded, len);
    for (int t = 0; t < n && !fault; ++t) {
        if (t == 0 || (fault = wire_rice_next(&d)) == 0) {
            memcpy(x[t], d.x, sizeof(d.x));
        }
    }
    if (!fault) {
        fault = wire_rice_end(&d);
    }
    if (fault != 0 && fault != PROTO_CODING_OVERRUN && fault != PROTO_CODING_RANGE &&
        fault != PROTO_CODING_TRAILING) {
        abort();
    }
    if (fault == 0) {
        const uint8_t k[PROTO_N_CHANNELS] = {(uint8_t)(coded[0] & 15u), (uint8_t)(coded[0] >> 4),
                                             (uint8_t)(coded[1] & 15u), (uint8_t)(coded[1] >> 4)};
        uint8_t *again = malloc(len);
        if (!again || rice_encode((const int16_t(*)[PROTO_N_CHANNELS])x, n, k, again, len) != len ||
            memcmp(again, coded, len) != 0) {
            abort();
        }
        free(again);
    }
    free(x);
    free(coded);
    return 0;
}
