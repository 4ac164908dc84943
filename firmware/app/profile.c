#include "profile.h"

#include "board.h"
#include "engine_model.h"

int profile_enabled;
static uint32_t profile_counts[ENGINE_MODEL_LAYERS];
static uint64_t profile_last;

void profile_begin(void)
{
    for (int i = 0; i < ENGINE_MODEL_LAYERS; ++i) {
        profile_counts[i] = 0;
    }
    profile_last = board_counter_read();
}

void profile_layer_done(int index)
{
    if (!profile_enabled) {
        return;
    }
    uint64_t now = board_counter_read();
    profile_counts[index] += (uint32_t)(now - profile_last);
    profile_last = now;
}

uint32_t profile_layer_count(int index)
{
    return profile_counts[index];
}
