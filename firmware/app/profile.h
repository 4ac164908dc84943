/* Per-layer counts. Force-included into every file of every build (-include app/profile.h:
 * firmware/Makefile, platformio.ini), because the generated engine_model.c cannot include it:
 * there, ENGINE_LAYER_DONE(index) adds the work since the previous layer to that layer's total
 * (rows accumulate). */
#ifndef PROFILE_H
#define PROFILE_H

#include <stdint.h>

/* Nonzero while the host asked for per-layer counts (PROFILE frame); 0 at reset. */
extern int profile_enabled;

void profile_begin(void);
void profile_layer_done(int index);
/* Count of layer `index` in the last inference (0 when profiling is off). */
uint32_t profile_layer_count(int index);

#define ENGINE_LAYER_DONE(index) profile_layer_done(index)

#endif /* PROFILE_H */
