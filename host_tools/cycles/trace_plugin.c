/* QEMU TCG plugin: the instruction stream an emulated board executes, summarised for the cycle
 * estimate (host_tools/cycles). Built on demand by host_tools/cycles/plugin.py with the host's C
 * compiler; loaded with `qemu-system-arm ... -plugin trace_plugin.so,cfg=FILE`.
 *
 * What it records. The board's own counter (SysTick under -icount) counts the instructions of
 * thread mode between two reads of the SysTick current-value register and leaves out every
 * exception handler (firmware/boards/common/irq.c). The plugin cuts the thread-mode stream at
 * the same places: a segment ends with each thread-mode instruction that accesses one of the
 * "boundary" addresses of the configuration (SYST_CVR), so a segment's instruction count is the
 * board's count of the same window. Per segment it writes, as text:
 *
 *   S <index> <instructions> <handler instructions> <boundary pc> <boundary is a store>
 *     <I-misses sequential> <I-misses non-sequential> <D-misses> <flash data accesses>
 *     <unaligned extra cycles> <stores into the watched range> <first such store's address>
 *   P <previous pc> <pc> <count>      consecutive thread-mode instruction pairs (timing of
 *                                     branches, load pipelining and load-use stalls)
 *   M <pc> <flash data accesses> <D-misses> <unaligned extra cycles>
 *
 * Handler mode is followed from the control flow: an exception is taken when execution arrives
 * at the first instruction of a handler (configured "handler LO HI" ranges, from the vector
 * table) from outside it; it returns when the handler, at its own call depth, executes a return
 * (BX LR, POP/LDM with PC). QEMU re-executes an instruction that touches a device register under
 * -icount (the translation block is cut before it): that second start of the same instruction is
 * not counted again.
 *
 * Unaligned accesses are recorded as the extra cycles the Cortex-M4 TRM (3.3.2) gives them: +1
 * for a halfword at an odd address or a word at a halfword boundary, +2 for a word at an odd one.
 *
 * The caches are the target's flash caches (the configuration gives their lines and line size
 * and which addresses are flash): fully associative, least recently used. They see the
 * thread-mode fetches and flash data accesses only: when a handler runs depends on the host's
 * timing of the serial link, so letting its accesses into the caches would make the misses,
 * unlike the instructions, differ from run to run. For the same reason (how long the main loop
 * polled before an epoch depends on the host) the caches start empty at each counter restart,
 * i.e. at the start of every measured window. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

PLUGIN_EXPORT int qemu_plugin_version = PLUGIN_API_VERSION;

enum { K_BRANCH = 1, K_CALL = 2, K_RETURN = 4 };

typedef struct {
    uint32_t pc;
    uint8_t size;
    uint8_t kind;
} insn_t;

/* ---- open-addressing tables keyed by 64-bit keys ---------------------------------------- */
typedef struct {
    uint64_t key; /* 0: empty (no instruction lives at address 0 twice over) */
    uint64_t v[3];
} slot_t;

typedef struct {
    slot_t *slots;
    size_t cap, used;
} table_t;

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static slot_t *table_get(table_t *t, uint64_t key);

static void table_grow(table_t *t)
{
    table_t bigger = {calloc(t->cap * 2, sizeof(slot_t)), t->cap * 2, 0};
    if (bigger.slots == NULL) {
        abort();
    }
    for (size_t i = 0; i < t->cap; ++i) {
        if (t->slots[i].key != 0) {
            slot_t *s = table_get(&bigger, t->slots[i].key);
            memcpy(s->v, t->slots[i].v, sizeof(s->v));
        }
    }
    free(t->slots);
    *t = bigger;
}

static slot_t *table_get(table_t *t, uint64_t key)
{
    if (t->slots == NULL) {
        t->cap = 1024;
        t->slots = calloc(t->cap, sizeof(slot_t));
        if (t->slots == NULL) {
            abort();
        }
    }
    if (2 * (t->used + 1) > t->cap) {
        table_grow(t);
    }
    size_t i = mix(key) & (t->cap - 1);
    while (t->slots[i].key != 0 && t->slots[i].key != key) {
        i = (i + 1) & (t->cap - 1);
    }
    if (t->slots[i].key == 0) {
        t->slots[i].key = key;
        t->used++;
    }
    return &t->slots[i];
}

static void table_clear(table_t *t)
{
    if (t->slots != NULL) {
        memset(t->slots, 0, t->cap * sizeof(slot_t));
    }
    t->used = 0;
}

/* ---- caches -------------------------------------------------------------------------- */
typedef struct {
    unsigned lines, shift;
    uint32_t tag[64];
    uint64_t used[64];
    uint64_t clock;
} cache_t;

/* 1 on a miss (the line is then loaded in place of the least recently used one). */
static int cache_access(cache_t *c, uint32_t addr)
{
    if (c->lines == 0) {
        return 1;
    }
    uint32_t tag = (addr >> c->shift) + 1; /* +1: 0 marks an empty line */
    unsigned victim = 0;
    c->clock++;
    for (unsigned i = 0; i < c->lines; ++i) {
        if (c->tag[i] == tag) {
            c->used[i] = c->clock;
            return 0;
        }
        if (c->used[i] < c->used[victim]) {
            victim = i;
        }
    }
    c->tag[victim] = tag;
    c->used[victim] = c->clock;
    return 1;
}

/* ---- configuration and state ---------------------------------------------------------- */
#define MAX_RANGES 64
typedef struct {
    uint32_t lo, hi; /* [lo, hi) */
} range_t;

static FILE *out;
static range_t handlers[MAX_RANGES];
static unsigned n_handlers;
static uint32_t boundary[8];
static unsigned n_boundary;
static range_t flash = {1, 0}; /* empty unless configured */
static range_t watch = {1, 0}; /* stores here are reported (the firmware's per-layer totals) */
static cache_t icache, dcache;
static table_t insns; /* pc -> insn_t* (interned: a retranslated block reuses its records) */

typedef struct {
    uint32_t lo, hi;
    int depth;
} frame_t;
static frame_t frames[32];
static int n_frames;

static const insn_t *last;      /* the last instruction started (any mode) */
static uint32_t last_thread_pc; /* the last thread-mode instruction */
static uint32_t fetch_line = UINT32_MAX;

static struct {
    uint64_t index, insns, handler_insns, imiss_seq, imiss_nonseq, dmiss, flash_data, unaligned;
    uint64_t watched;       /* thread-mode stores into the watched range */
    uint32_t first_watched; /* the address of the first of them */
    table_t pairs; /* (prev << 32 | pc) -> count */
    table_t mem;   /* pc -> flash data accesses, D-misses, unaligned extra cycles */
} seg;

static int in_flash(uint32_t a)
{
    return a >= flash.lo && a < flash.hi;
}

static void close_segment(uint32_t pc, int store)
{
    fprintf(out,
            "S %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 " %d %" PRIu64 " %" PRIu64 " %" PRIu64
            " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 "\n",
            seg.index, seg.insns, seg.handler_insns, pc, store, seg.imiss_seq, seg.imiss_nonseq,
            seg.dmiss, seg.flash_data, seg.unaligned, seg.watched, seg.first_watched);
    for (size_t i = 0; i < seg.pairs.cap; ++i) {
        const slot_t *s = &seg.pairs.slots[i];
        if (s->key != 0) {
            fprintf(out, "P %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", (uint32_t)(s->key >> 32),
                    (uint32_t)s->key, s->v[0]);
        }
    }
    for (size_t i = 0; i < seg.mem.cap; ++i) {
        const slot_t *s = &seg.mem.slots[i];
        if (s->key != 0) {
            fprintf(out, "M %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", (uint32_t)s->key,
                    s->v[0], s->v[1], s->v[2]);
        }
    }
    fflush(out);
    seg.index++;
    seg.insns = seg.handler_insns = seg.imiss_seq = seg.imiss_nonseq = 0;
    seg.dmiss = seg.flash_data = seg.unaligned = seg.watched = 0;
    seg.first_watched = 0;
    table_clear(&seg.pairs);
    table_clear(&seg.mem);
}

/* ---- decoding: only what the control flow needs (the estimate classifies with capstone) -- */
static uint8_t kind_of(const uint8_t *b, size_t size)
{
    uint16_t h1 = (uint16_t)(b[0] | b[1] << 8);
    if (size == 2) {
        if (h1 == 0x4770 || (h1 & 0xFF00) == 0xBD00) {
            return K_RETURN | K_BRANCH; /* BX LR; POP {..., PC} */
        }
        if ((h1 & 0xFF87) == 0x4780) {
            return K_CALL | K_BRANCH; /* BLX Rm */
        }
        if ((h1 & 0xF000) == 0xD000 && (h1 & 0x0E00) != 0x0E00) {
            return K_BRANCH; /* B<c> T1 (not UDF/SVC) */
        }
        if ((h1 & 0xF800) == 0xE000 || (h1 & 0xF500) == 0xB100 || (h1 & 0xFF87) == 0x4700 ||
            (h1 & 0xFF87) == 0x4687) {
            return K_BRANCH; /* B T2, CBZ/CBNZ, BX Rm, MOV PC, Rm */
        }
        return 0;
    }
    uint16_t h2 = (uint16_t)(b[2] | b[3] << 8);
    if ((h1 & 0xF800) == 0xF000 && (h2 & 0x8000)) {
        if ((h2 & 0xD000) == 0xD000) {
            return K_CALL | K_BRANCH; /* BL */
        }
        if ((h2 & 0xD000) == 0x9000) {
            return K_BRANCH; /* B.W T4 */
        }
        if ((h2 & 0xD000) == 0x8000 && (h1 & 0x0380) != 0x0380) {
            return K_BRANCH; /* B<c>.W T3 (cond 111x is MSR/MRS/hints) */
        }
        return 0;
    }
    if (h1 == 0xE8BD && (h2 & 0x8000)) {
        return K_RETURN | K_BRANCH; /* POP.W {..., PC} */
    }
    if (h1 == 0xF85D && h2 == 0xFB04) {
        return K_RETURN | K_BRANCH; /* LDR PC, [SP], #4 */
    }
    if ((h1 & 0xFFF0) == 0xE8D0 && (h2 & 0xFFE0) == 0xF000) {
        return K_BRANCH; /* TBB, TBH */
    }
    if ((h1 & 0xFFD0) == 0xE890 && (h2 & 0x8000)) {
        return K_BRANCH; /* LDM with PC */
    }
    if ((h1 & 0xFFF0) == 0xF8D0 && (h2 & 0xF000) == 0xF000) {
        return K_BRANCH; /* LDR.W PC, [Rn, #imm] */
    }
    return 0;
}

/* ---- execution ------------------------------------------------------------------------ */
static const range_t *handler_at(uint32_t pc)
{
    for (unsigned i = 0; i < n_handlers; ++i) {
        if (pc == handlers[i].lo) {
            return &handlers[i];
        }
    }
    return NULL;
}

static void on_insn(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    const insn_t *in = udata;
    if (last != NULL && last->pc == in->pc && !(in->kind & K_BRANCH)) {
        return; /* QEMU restarting a device access (see the top of the file) */
    }
    const insn_t *prev = last;
    last = in;
    int returned = 0; /* prev was an exception return */
    if (prev != NULL && n_frames > 0) {
        frame_t *f = &frames[n_frames - 1];
        if (prev->kind & K_CALL) {
            f->depth++;
        } else if (prev->kind & K_RETURN) {
            if (f->depth == 0) {
                n_frames--;
                returned = 1;
            } else {
                f->depth--;
            }
        }
    }
    /* an exception entry (or a tail-chained one), not a branch within the handler */
    const range_t *h = handler_at(in->pc);
    if (h != NULL && (returned || prev == NULL || prev->pc < h->lo || prev->pc >= h->hi) &&
        n_frames < (int)(sizeof(frames) / sizeof(frames[0]))) {
        frames[n_frames++] = (frame_t){h->lo, h->hi, 0};
    }
    if (n_frames > 0) {
        seg.handler_insns++;
        return;
    }
    uint32_t line = in->pc >> icache.shift;
    if (line != fetch_line) {
        if (in_flash(in->pc) && cache_access(&icache, in->pc)) {
            if (line == fetch_line + 1) {
                seg.imiss_seq++;
            } else {
                seg.imiss_nonseq++;
            }
        }
        fetch_line = line;
    }
    seg.insns++;
    table_get(&seg.pairs, (uint64_t)last_thread_pc << 32 | in->pc)->v[0]++;
    last_thread_pc = in->pc;
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    const insn_t *in = udata;
    if (n_frames > 0) {
        return;
    }
    uint32_t a = (uint32_t)vaddr;
    uint32_t size = 1u << qemu_plugin_mem_size_shift(info);
    int flash_access = in_flash(a);
    int miss = flash_access && cache_access(&dcache, a);
    int unaligned = size == 1 ? 0 : (a & (size - 1)) == 0 ? 0 : (size == 4 && (a & 1)) ? 2 : 1;
    if (flash_access || unaligned) {
        slot_t *s = table_get(&seg.mem, in->pc);
        s->v[0] += (uint64_t)flash_access;
        s->v[1] += (uint64_t)miss;
        s->v[2] += (uint64_t)unaligned;
        seg.flash_data += (uint64_t)flash_access;
        seg.dmiss += (uint64_t)miss;
        seg.unaligned += (uint64_t)unaligned;
    }
    int store = qemu_plugin_mem_is_store(info);
    if (store && a >= watch.lo && a < watch.hi) {
        if (seg.watched++ == 0) {
            seg.first_watched = a;
        }
    }
    for (unsigned i = 0; i < n_boundary; ++i) {
        if (a == boundary[i]) {
            close_segment(in->pc, store);
            if (store) { /* the counter restarts: the caches start empty (see the top) */
                memset(icache.tag, 0, sizeof(icache.tag));
                memset(dcache.tag, 0, sizeof(dcache.tag));
                fetch_line = UINT32_MAX;
            }
            break;
        }
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *qi = qemu_plugin_tb_get_insn(tb, i);
        uint32_t pc = (uint32_t)qemu_plugin_insn_vaddr(qi);
        slot_t *s = table_get(&insns, (uint64_t)pc + 1);
        insn_t *in = (insn_t *)(uintptr_t)s->v[0];
        if (in == NULL) {
            in = calloc(1, sizeof(*in));
            if (in == NULL) {
                abort();
            }
            size_t size = qemu_plugin_insn_size(qi);
            in->pc = pc;
            in->size = (uint8_t)size;
            in->kind = kind_of(qemu_plugin_insn_data(qi), size);
            s->v[0] = (uint64_t)(uintptr_t)in;
        }
        qemu_plugin_register_vcpu_insn_exec_cb(qi, on_insn, QEMU_PLUGIN_CB_NO_REGS, in);
        qemu_plugin_register_vcpu_mem_cb(qi, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW,
                                         in);
    }
}

static void on_exit_(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    if (out != NULL) {
        close_segment(0, 0); /* what ran after the last boundary */
        fprintf(out, "E\n");
        fclose(out);
        out = NULL;
    }
}

static unsigned log2u(unsigned v)
{
    unsigned s = 0;
    while ((1u << s) < v) {
        s++;
    }
    return s;
}

/* The configuration file: one setting per line (see plugin.py, which writes it). */
static int configure(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "trace_plugin: cannot read %s\n", path);
        return -1;
    }
    char line[512], text[400];
    unsigned a, b;
    int ok = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "out %399s", text) == 1) {
            out = fopen(text, "w");
            ok = out != NULL;
        } else if (sscanf(line, "handler %x %x", &a, &b) == 2 && n_handlers < MAX_RANGES) {
            handlers[n_handlers++] = (range_t){a, b};
        } else if (sscanf(line, "boundary %x", &a) == 1 && n_boundary < 8) {
            boundary[n_boundary++] = a;
        } else if (sscanf(line, "watch %x %x", &a, &b) == 2) {
            watch = (range_t){a, b};
        } else if (sscanf(line, "flash %x %x", &a, &b) == 2) {
            flash = (range_t){a, b};
        } else if (sscanf(line, "icache %u %u", &a, &b) == 2 && a <= 64) {
            icache.lines = a;
            icache.shift = log2u(b);
        } else if (sscanf(line, "dcache %u %u", &a, &b) == 2 && a <= 64) {
            dcache.lines = a;
            dcache.shift = log2u(b);
        }
    }
    fclose(f);
    if (!ok) {
        fprintf(stderr, "trace_plugin: %s names no writable 'out' file\n", path);
        return -1;
    }
    return 0;
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                      char **argv)
{
    (void)info;
    const char *cfg = NULL;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "cfg=", 4) == 0) {
            cfg = argv[i] + 4;
        }
    }
    if (cfg == NULL || configure(cfg) != 0) {
        fprintf(stderr, "trace_plugin: usage -plugin trace_plugin.so,cfg=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
