/*
 * rule.h -- the compiled form of a policy, shared by compile, eval, index
 * and lint.  Internal.
 *
 * Like pf, the compiler and the evaluator share one rule structure: the
 * compiler fills it once, the evaluator only reads it.
 */
#ifndef EXH_RULE_H
#define EXH_RULE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>

#include "exhook/addr.h"
#include "exhook/policy.h"
#include "strmap.h"

/* A rule may reference at most this many named captures, and a regex may
 * hold at most this many groups: the evaluator's scratch is fixed-size. */
#define EXH_MAX_SLOTS  16
#define EXH_MAX_GROUPS 32
/* Topic levels indexed in the trie; deeper literal levels are still
 * matched, just not indexed. */
#define EXH_INDEX_DEPTH 12

typedef enum cond_kind {
    COND_USERNAME, /* exact */
    COND_CLIENTID, /* exact */
    COND_USERNAME_RE,
    COND_CLIENTID_RE,
    COND_PEERHOST,
    COND_GROUP,
    COND_ANONYMOUS,
    /* Exact, with placeholders (`username "d-${serial}"`): the value is
     * only known per request, so these are kinds of their own -- the index
     * and lint, which key on the literal exact kinds, never mistake the
     * text for a name.  The compiler puts them after every regex condition
     * of their rule, so the captures they use are known when they run. */
    COND_USERNAME_PAT,
    COND_CLIENTID_PAT,
} cond_kind;

typedef struct slot_map {
    uint16_t group; /* PCRE2 group number */
    uint8_t slot;   /* capture slot of the rule */
} slot_map;

/* A regex of the form LITERAL or LITERAL CLASS QUANTIFIER (e.g.
 * "dev000042-[0-9]+", "svc-.*", "t42:[a-z]{2,8}") matched without PCRE2:
 * the literal is the cond's prefix_len bytes of str, then qmin..qmax bytes
 * all in the class.  Such patterns have no alternatives and no groups, so
 * one left-to-right check is exactly PCRE2's whole-string answer; the test
 * suite compares the two on random patterns and subjects.  PCRE2 counts
 * characters (UTF mode): compile.c takes only forms where bytes give the
 * same answer on a valid UTF-8 subject (see simple_form). */
typedef struct simple_re {
    uint32_t qmin, qmax; /* qmax UINT32_MAX: unbounded */
    uint8_t cls[32];     /* bit per byte value */
} simple_re;

/* Fields are ordered hot first: the evaluator reads the first ones, lint
 * and error reporting the rest. */
typedef struct exh_cond {
    uint8_t kind; /* cond_kind */
    bool negated;
    uint8_t nmap;
    uint8_t prefix_len; /* regex: bytes of str every match must start with */
    uint32_t len;
    char *str;      /* exact value, group name or regex source */
    pcre2_code *re; /* NULL for a simple regex (sre) once compiled */
    simple_re *sre; /* non-NULL: match with it, never calling PCRE2 */
    slot_map *map;  /* named groups this rule uses */
    exh_cidr cidr;
    bool jit;        /* re was JIT-compiled: call pcre2_jit_match directly */
    bool capture;    /* sre with one group: everything after the literal prefix */
    uint32_t col;    /* column of the condition (its `not` if negated) */
    uint32_t nparts; /* COND_*_PAT: literal runs and placeholders of str */
    struct exh_part *parts;
    const void *str_tok; /* parse-time only: the string token, for columns */
} exh_cond;

typedef enum part_kind { PART_LIT, PART_USERNAME, PART_CLIENTID, PART_SLOT } part_kind;

typedef struct exh_part {
    uint8_t kind; /* part_kind */
    uint8_t slot; /* PART_SLOT */
    uint32_t off; /* PART_LIT: bytes in spec->text (or cond->str) */
    uint32_t len;
} exh_part;

typedef enum level_kind { LVL_LIT, LVL_PLUS, LVL_HASH, LVL_PATTERN } level_kind;

typedef struct exh_level {
    uint8_t kind; /* level_kind */
    uint32_t off; /* LVL_LIT: bytes in spec->text; LVL_PATTERN: first part */
    uint32_t len; /* LVL_LIT: length; LVL_PATTERN: number of parts */
} exh_level;

typedef struct exh_spec {
    bool eq; /* `eq "text"`: byte-for-byte comparison */
    bool has_placeholder;
    uint32_t len;
    uint32_t nlevels;
    uint32_t nparts;
    char *text; /* the filter as written (decoded) */
    exh_level *levels;
    exh_part *parts;
    uint32_t line, col;
    const void *tok; /* parse-time only: the string token, for columns */
} exh_spec;

typedef struct exh_rule {
    /* hot: what the evaluator reads, in the first cache line */
    uint8_t effect;        /* EXH_ALLOW or EXH_DENY */
    uint8_t actions;       /* exh_action bits */
    int8_t qos_lo, qos_hi; /* -1: no qos option */
    int8_t retain;         /* -1: no retain option, else 0/1 */
    uint8_t nslots;
    uint16_t nconds;
    uint16_t nspecs;
    exh_cond *conds;
    exh_spec *specs;
    /* cold */
    exh_rule_info info;
    uint32_t qos_col, retain_col;
    bool packed;        /* conds/specs live in the policy's arena (see exh_rules_pack) */
    uint32_t blob;      /* offset of its blob in the arena, once packed */
    char **slot_names;  /* nslots names, allocated only for rules with captures */
    uint16_t slot_used; /* bit per slot: used by a placeholder */
} exh_rule;

/*
 * Candidates are named by "refs": EXH_NO_REF, a single rule (the offset
 * of its blob in exh_policy.arena), or EXH_REF_LIST | the offset of a list
 * in exh_policy.lists (its length n, then n blob offsets, ascending).
 * Blobs are laid out in policy order, so blob offsets order like rule
 * numbers and lists can be merged on them directly.
 */
#define EXH_NO_REF   UINT32_MAX
#define EXH_REF_LIST 0x80000000u

/* The start of each rule's blob: what the evaluator reads first. */
typedef struct rule_head {
    uint32_t index; /* 0-based rule index */
    uint8_t effect;
    uint8_t actions;
    int8_t qos_lo, qos_hi, retain;
    uint8_t lines; /* cache lines the blob spans (capped), for prefetching */
    uint16_t nconds, nspecs;
    exh_cond *conds; /* follow in the same blob */
    exh_spec *specs;
} rule_head;

/* One index per action: rules that can match are found by the exact
 * username, the exact clientid, or the literal leading topic levels
 * (a trie keyed by depth and the path's hash). */
typedef struct action_index {
    strmap users;     /* hash(username) -> v[0] ref, v[1] a second single rule or none */
    strmap clients;   /* hash(clientid) -> likewise */
    strmap trie;      /* hash(depth, leading levels) -> v[0] rules filed there,
                         v[1] (subscribe) deny rules filed strictly below */
    uint32_t root[2]; /* the same two refs for the root (no topic key) */
    uint32_t depth;   /* deepest trie node: the walk stops there */
} action_index;

#define EXH_IDX_PUB  0
#define EXH_IDX_SUB  1
#define EXH_IDX_CONN 2

struct exh_policy {
    exh_rule *rules;
    uint32_t nrules;
    exh_decision def;
    char *def_file;
    uint32_t def_line, def_col; /* where the `default` statement is (lint) */
    char **files;
    uint32_t nfiles;
    action_index idx[3];
    uint32_t *lists; /* every candidate list of more than two rules, back to back */
    char *arena;     /* every rule's blob (rule_head, conditions, filters), in policy order */
    char *texts;     /* every rule's info.text, back to back (cold: listings only) */
};

/* index.c */
exh_status exh_index_build(exh_policy *p);
void exh_index_free(exh_policy *p);
/* The literal leading levels of a spec that the trie can key on, and the
 * byte length of the first k of them (joined by '/'). */
uint32_t exh_spec_prefix(const exh_spec *s, uint32_t max);
size_t exh_spec_prefix_len(const exh_spec *s, uint32_t k);

/* Candidate ranges: a ref and where it is stored, as [p, end). */
typedef struct cand_range {
    const uint32_t *p, *end;
} cand_range;

/* Turn the ref stored at *where into a range; 0 when there is none. */
static inline int exh_ref_range(const exh_policy *p, const uint32_t *where, cand_range *out)
{
    uint32_t ref = *where;
    if (ref == EXH_NO_REF) return 0;
    if (ref & EXH_REF_LIST) {
        const uint32_t *l = p->lists + (ref & ~EXH_REF_LIST);
        out->p = l + 1;
        out->end = l + 1 + l[0];
    } else {
        out->p = where;
        out->end = where + 1;
    }
    return 1;
}

/* Ask for a whole blob at once: its lines are read one after another, and
 * on a cold request each would otherwise be a miss of its own. */
static inline void exh_blob_prefetch(const exh_policy *p, uint32_t off)
{
    const char *b = p->arena + off;
    __builtin_prefetch(b);
    for (unsigned i = 1; i < ((const rule_head *)b)->lines; i++)
        __builtin_prefetch(b + 64 * i);
}

static inline const rule_head *exh_blob(const exh_policy *p, uint32_t off)
{
    return (const rule_head *)(p->arena + off);
}

/* eval.c: the same decision without the index, trying every rule in
 * order.  The reference the index is tested against; never used to serve. */
struct exh_request;
struct exh_evalctx;
struct exh_result;
exh_decision exh_eval_linear(const exh_policy *p, const struct exh_request *req,
                             struct exh_evalctx *ctx, struct exh_result *res);

/* eval.c: a simple regex (cond->sre) against a subject. */
int exh_simple_match(const exh_cond *c, const char *subj, size_t len);

/* compile.c */
void exh_rule_free(exh_rule *r);
/* Move every rule's conditions, filters and strings into one arena in
 * policy order, so testing a rule reads a few adjacent cache lines instead
 * of chasing a dozen allocations. */
exh_status exh_rules_pack(exh_policy *p);

#endif
