#include "backend/cpu/dnnl_ctx.h"

#include <dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "robustcv/error.h"

int rcv_dnnl_check(dnnl_status_t st, const char *what) {
    if (st == dnnl_success) return 0;
    return rcv_fail("oneDNN error %d in %s", (int)st, what);
}

void *rcv_cpu_ctx_new(int threads) {
    (void)threads; // oneDNN follows OpenMP's thread count (omp_set_num_threads by the caller)
    rcv_cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (RCV_DNNL(dnnl_engine_create(&c->engine, dnnl_cpu, 0)) ||
        RCV_DNNL(dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags))) {
        free(c);
        return NULL;
    }
    return c;
}

void rcv_cpu_ctx_free(void *ctx) {
    rcv_cpu_ctx *c = ctx;
    if (!c) return;
    dnnl_stream_destroy(c->stream);
    dnnl_engine_destroy(c->engine);
    free(c);
}

int rcv_dnnl_attr(dnnl_primitive_attr_t *attr, float sum_beta) {
    if (RCV_DNNL(dnnl_primitive_attr_create(attr))) return -1;
    if (RCV_DNNL(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user))) goto fail;
    if (sum_beta != 0) {
        dnnl_post_ops_t po;
        if (RCV_DNNL(dnnl_post_ops_create(&po))) goto fail;
        int bad = RCV_DNNL(dnnl_post_ops_append_sum(po, sum_beta)) ||
                  RCV_DNNL(dnnl_primitive_attr_set_post_ops(*attr, po));
        dnnl_post_ops_destroy(po);
        if (bad) goto fail;
    }
    return 0;
fail:
    dnnl_primitive_attr_destroy(*attr);
    *attr = NULL;
    return -1;
}

int rcv_dnnl_prim_init(rcv_graph *g, rcv_dnnl_prim *p, const_dnnl_primitive_desc_t pd, const int *arg_ids,
                       int nargs) {
    rcv_cpu_ctx *c = rcv_cpu(g);
    memset(p, 0, sizeof *p);
    if (nargs > RCV_DNNL_MAX_ARGS) return rcv_fail("rcv_dnnl_prim_init: %d arguments, at most %d", nargs,
                                                   RCV_DNNL_MAX_ARGS);
    for (int i = 0; i < nargs; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg_ids[i]);
        if (!md) return rcv_fail("oneDNN: no memory descriptor for argument %d", arg_ids[i]);
        p->arg[i] = arg_ids[i];
        if (RCV_DNNL(dnnl_memory_create(&p->mem[i], md, c->engine, DNNL_MEMORY_NONE))) goto fail;
        p->nargs = i + 1;
    }
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratchpad_bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (p->scratchpad_bytes &&
        RCV_DNNL(dnnl_memory_create(&p->mem[nargs], sp, c->engine, DNNL_MEMORY_NONE)))
        goto fail;
    if (RCV_DNNL(dnnl_primitive_create(&p->prim, pd))) goto fail;
    return 0;
fail:
    rcv_dnnl_prim_free(p);
    return -1;
}

int rcv_dnnl_reorder_init(rcv_graph *g, rcv_dnnl_prim *p, const dnnl_memory_desc_t *src_md,
                          const dnnl_memory_desc_t *dst_md, float beta) {
    rcv_cpu_ctx *c = rcv_cpu(g);
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd;
    if (rcv_dnnl_attr(&attr, beta)) return -1;
    int bad = RCV_DNNL(dnnl_reorder_primitive_desc_create(&pd, src_md, c->engine, dst_md, c->engine, attr));
    dnnl_primitive_attr_destroy(attr);
    if (bad) return -1;
    int ids[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    bad = rcv_dnnl_prim_init(g, p, pd, ids, 2);
    dnnl_primitive_desc_destroy(pd);
    return bad;
}

void rcv_dnnl_run(rcv_graph *g, rcv_dnnl_prim *p, void *const *ptr, void *scratchpad) {
    dnnl_exec_arg_t args[RCV_DNNL_MAX_ARGS + 1];
    int na = 0;
    int bad = 0;
    for (int i = 0; i < p->nargs; i++) {
        bad |= RCV_DNNL(dnnl_memory_set_data_handle(p->mem[i], ptr[i]));
        args[na++] = (dnnl_exec_arg_t){p->arg[i], p->mem[i]};
    }
    if (p->scratchpad_bytes) {
        bad |= RCV_DNNL(dnnl_memory_set_data_handle(p->mem[p->nargs], scratchpad));
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->mem[p->nargs]};
    }
    if (!bad) bad = RCV_DNNL(dnnl_primitive_execute(p->prim, rcv_cpu(g)->stream, na, args));
    if (bad) fprintf(stderr, "robustcv cpu backend: %s\n", rcv_error());
}

void rcv_dnnl_prim_free(rcv_dnnl_prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    for (int i = 0; i <= RCV_DNNL_MAX_ARGS; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    memset(p, 0, sizeof *p);
}

int rcv_dnnl_md_nhwc(dnnl_memory_desc_t *md, rcv_shape s) { return rcv_dnnl_md_act(md, s, 0); }

int rcv_dnnl_md_act(dnnl_memory_desc_t *md, rcv_shape s, int blocked) {
    dnnl_dims_t d = {s.n, s.c, s.h, s.w};
    dnnl_format_tag_t tag = blocked == 16 ? dnnl_nChw16c : blocked == 8 ? dnnl_nChw8c : dnnl_nhwc;
    return RCV_DNNL(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag));
}

// Whether oneDNN runs at least the x86 tier `want` (the CPU's, capped by ONEDNN_MAX_CPU_ISA).
// The x86 tiers are nested bit sets; other CPUs report values of their own (aarch64: SIMD and
// SVE widths) that must not be read as x86 tiers, so there it is always 0.
static int isa_at_least(dnnl_cpu_isa_t want) {
#if defined(__x86_64__)
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)want) == (unsigned)want;
#else
    (void)want;
    return 0;
#endif
}

// oneDNN's fp32 jit convolutions block channels by the vector width of the ISA they run at:
// 16 on AVX-512, 8 on AVX2 (its AVX2 kernels given nChw16c fell to reference code: one
// batch-128 3x3 conv took 60 s). Below AVX2, and off x86, NHWC only.
int rcv_cpu_block(void) {
    static int blk = -1;
    if (blk < 0) blk = isa_at_least(dnnl_cpu_isa_avx512_core) ? 16 : isa_at_least(dnnl_cpu_isa_avx2) ? 8 : 0;
    return blk;
}

int rcv_cpu_simd(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static int w = -1;
    if (w < 0) {
        // oneDNN's tier alone is not enough: its AVX2 needs neither FMA nor BMI2, which our
        // kernels are compiled with.
        int b = rcv_cpu_block();
        w = b == 16 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                ? 16
            : b >= 8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi2")
                ? 8
                : 0;
    }
    return w;
#else
    return 0;
#endif
}

int rcv_dnnl_md_vec(dnnl_memory_desc_t *md, int len) {
    dnnl_dims_t d = {len};
    return RCV_DNNL(dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_a));
}

void rcv_cpu_add_to(float *restrict dst, const float *restrict src, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

int rcv_cpu_has_bf16(void) { return isa_at_least(dnnl_cpu_isa_avx512_core_bf16); }

const char *rcv_cpu_isa(void) {
    const char *s = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()); // "cpu_isa_avx2"
    return strncmp(s, "cpu_isa_", 8) ? s : s + 8;
}

int rcv_dnnl_md_nhwc_bf16(dnnl_memory_desc_t *md, rcv_shape s) {
    dnnl_dims_t d = {s.n, s.c, s.h, s.w};
    return RCV_DNNL(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_bf16, dnnl_nhwc));
}
