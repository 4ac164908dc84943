/* Wire protocol constants (docs/protocol.md is the source of truth;
 * tests/host_tools/test_protocol_constants.py checks this header against host_tools/protocol.py).
 */
#ifndef PROTOCOL_DEFS_H
#define PROTOCOL_DEFS_H

#define PROTO_SYNC0 0xA5
#define PROTO_SYNC1 0x5A
#define PROTO_VERSION 4     /* the version the board speaks */
#define PROTO_VERSION_MIN 3 /* the oldest it still takes and answers in */
#define PROTO_HEADER_LEN 8
#define PROTO_CRC_LEN 4
#define PROTO_MAX_PAYLOAD 1024
#define PROTO_MAX_SAMPLES_PER_FRAME 125
#define PROTO_SAMPLE_BLOCK 5 /* SAMPLES frames start and end on multiples of this */
#define PROTO_N_CHANNELS 4
#define PROTO_EPOCH_SAMPLES 3000
#define PROTO_SAMPLE_RATE_HZ 100
#define PROTO_RESULTS_KEPT 4 /* the last RESULTs a board keeps for RESEND */

#define PROTO_MSG_HELLO 0x01
#define PROTO_MSG_SAMPLES 0x02
#define PROTO_MSG_RESET_STREAM 0x03
#define PROTO_MSG_PROFILE 0x04
#define PROTO_MSG_STATUS 0x05
#define PROTO_MSG_RESEND 0x06
#define PROTO_MSG_REBOOT 0x07
#define PROTO_MSG_SAMPLES_RICE 0x08 /* version 4 */
#define PROTO_MSG_INFO 0x81
#define PROTO_MSG_ACK 0x82
#define PROTO_MSG_RESULT 0x83
#define PROTO_MSG_ERROR 0x84
#define PROTO_MSG_LAYER_COUNTS 0x85
#define PROTO_MSG_STATUS_REPLY 0x86
#define PROTO_MSG_EVENT_COUNTS 0x87

#define PROTO_ERR_BAD_CRC 1
#define PROTO_ERR_BAD_VERSION 2
#define PROTO_ERR_UNKNOWN_TYPE 3
#define PROTO_ERR_TOO_LONG 4
#define PROTO_ERR_BAD_LENGTH 5
#define PROTO_ERR_OUT_OF_SEQUENCE 6
#define PROTO_ERR_ENGINE 7
#define PROTO_ERR_BUSY 8
#define PROTO_ERR_OVERRUN 9
#define PROTO_ERR_NO_RESULT 10
#define PROTO_ERR_NO_EVENTS 11  /* detail 0: no DWT events; 1: the events pass disagreed */
#define PROTO_ERR_BAD_CODING 12 /* detail: PROTO_CODING_OVERRUN, _RANGE or _TRAILING */

#define PROTO_COUNTER_INSTRUCTIONS 0
#define PROTO_COUNTER_CYCLES 1

/* PROFILE's payload */
#define PROTO_PROFILE_OFF 0
#define PROTO_PROFILE_COUNTS 1 /* LAYER_COUNTS before each RESULT */
#define PROTO_PROFILE_EVENTS 2 /* and EVENT_COUNTS (DWT events per layer) after it */

#define PROTO_EVENTS_PER_LAYER 5   /* CPI, EXC, SLEEP, LSU, FOLD */
#define PROTO_EVENT_COUNTS_HEAD 12 /* EVENT_COUNTS bytes before the rows */

#define PROTO_INFO_LEN 96
#define PROTO_INFO_LEN_V3 95 /* without the codings byte */
#define PROTO_RESULT_LEN 19
#define PROTO_STATUS_LEN 29
#define PROTO_STATUS_LEN_V3 21 /* without the receive figures */
#define PROTO_ACK_LEN 17
#define PROTO_SACK_BLOCKS 64 /* blocks reported in ACK and STATUS_REPLY */

/* Coded samples (SAMPLES_RICE, version 4) */
#define PROTO_CODING_RICE 0x01 /* INFO's codings bit: the board decodes SAMPLES_RICE */
#define PROTO_RICE_HEAD 16     /* payload bytes before the codes */
#define PROTO_RICE_MAX_K 15
/* BAD_CODING details */
#define PROTO_CODING_OVERRUN 1  /* the codes run past the payload */
#define PROTO_CODING_RANGE 2    /* a code's value does not fit 16 bits */
#define PROTO_CODING_TRAILING 3 /* bytes or non-zero bits after the last code */

#endif /* PROTOCOL_DEFS_H */
