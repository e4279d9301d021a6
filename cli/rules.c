/*
 * rules -- list-rules, add-rule, del-rule: reading and editing the rules
 * of a policy kept in files (usually in git).
 *
 * An edit changes only the lines of the rule added or removed; every other
 * byte of the file stays as it was, so a reviewer's diff shows just that.
 * Nothing is written unless the whole policy compiles with the edit, and
 * the file is replaced atomically under the directory's edit lock.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exhook/format.h"
#include "exhook/lint.h"
#include "error_int.h"
#include "fileio.h"
#include "readfile.h"

static const char list_help[] =
    "usage: exhookctl list-rules [--json] [PATH]\n"
    "\n"
    "List every rule of the policy (PATH, else --policy / $EXHOOK_POLICY /\n"
    "./policies) in policy order, one a line: its position number (what\n"
    "add-rule --before/--after and del-rule --position take), file:line, and\n"
    "its text with continuations joined and comments dropped.\n"
    "\n"
    "  --json   {\"rules\":[{\"number\":N,\"file\":...,\"line\":N,\"end_line\":N,\n"
    "           \"text\":...}],\"default\":\"deny\"}\n"
    "\n"
    "Exit status: 0, or 2 when the policy does not compile.\n";

static const char add_help[] =
    "usage: exhookctl add-rule [--file F] [--before N | --after N] [--dry-run] RULE-TEXT\n"
    "\n"
    "Check RULE-TEXT on its own (one rule, no 'default'; errors point into it as\n"
    "<rule>:1:COL), then insert it, in canonical layout, as one new line:\n"
    "  --before N   before rule number N (see list-rules)\n"
    "  --after N    after rule number N (and its continuation lines)\n"
    "  --file F     at the end of F, one of the policy's files (default: the\n"
    "               policy's last file); with --before/--after, F must be the\n"
    "               file of rule N\n"
    "Every other byte of the file is kept.  The whole policy is compiled with\n"
    "the edit first; if it fails, nothing is written.  The file is replaced\n"
    "atomically (mode and owner kept) under the directory's lock file\n"
    ".exhookctl.lock, so concurrent edits all land.  Warns (stderr) when the new\n"
    "rule is shadowed by an earlier rule or shadows a later one, as lint does.\n"
    "\n"
    "  --dry-run    print the unified diff instead of writing\n"
    "\n"
    "Exit status: 0 added, 2 bad RULE-TEXT, the edit would not compile, or a\n"
    "usage or I/O error.\n";

static const char del_help[] =
    "usage: exhookctl del-rule [--dry-run] FILE:LINE\n"
    "       exhookctl del-rule [--dry-run] --position N\n"
    "\n"
    "Remove one rule: the one with a line (its first, or any continuation line)\n"
    "at FILE:LINE, or rule number N (see list-rules).  Exactly its lines go,\n"
    "comments above it stay.  The policy is compiled with the edit before the\n"
    "file is replaced atomically under the directory's lock, as for add-rule.\n"
    "\n"
    "  --dry-run    print the unified diff instead of writing\n"
    "\n"
    "Exit status: 0 removed, 1 no such rule, 2 usage, input or I/O error.\n";

/* ---- shared ---- */

static int out_of_memory(void)
{
    fprintf(stderr, "exhookctl: out of memory\n");
    return EXIT_USAGE;
}

/* A 1-based number: digits only, no sign, fits in uint32. */
static bool parse_number(const char *s, uint32_t *out)
{
    if (*s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v == 0 || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

/* Index of the policy's file that `name` names (as the policy spells it,
 * or another path to the same file), or -1. */
/* parse_number for an option value; prints the usage error. */
static bool rule_number(const cli *c, const char *cmd, const char *s, uint32_t *out)
{
    if (parse_number(s, out)) return true;
    usage_error(c, cmd, "'%s' is not a rule number (1, 2, ...: see list-rules)", s);
    return false;
}

static int find_file(const exh_policy *p, const char *name)
{
    uint32_t n = exh_policy_file_count(p);
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(exh_policy_file(p, i), name)) return (int)i;
    for (uint32_t i = 0; i < n; i++)
        if (same_file(exh_policy_file(p, i), name)) return (int)i;
    return -1;
}

static int file_index_of(const exh_policy *p, const exh_rule_info *r)
{
    return find_file(p, r->file);
}

/* An edit of one policy file: its text before and after. */
typedef struct edit {
    const char *file; /* as the policy names it */
    char *old;
    size_t oldlen;
    char *new;
    size_t newlen;
} edit;

static void edit_free(edit *e)
{
    free(e->old);
    free(e->new);
}

static int read_policy_file(edit *e)
{
    exh_error err;
    if (!exh_read_file(e->file, EXH_READ_REGULAR, EXH_TEXT_FILE_MAX, NULL, &e->old, &e->oldlen,
                       &err))
        return 0;
    print_error(&err);
    return EXIT_USAGE;
}

/* new = old with [from, to) replaced by ins. */
static int splice(edit *e, size_t from, size_t to, const char *ins, size_t inslen)
{
    e->newlen = e->oldlen - (to - from) + inslen;
    e->new = malloc(e->newlen + 1);
    if (!e->new) return out_of_memory();
    memcpy(e->new, e->old, from);
    memcpy(e->new + from, ins, inslen);
    memcpy(e->new + from + inslen, e->old + to, e->oldlen - to);
    e->new[e->newlen] = '\0';
    return 0;
}

/* Compile the policy as it would be after the edit. */
static exh_policy *compile_edit(const cli *c, const edit *e)
{
    exh_policy *p = NULL;
    exh_error err;
    if (exh_policy_load_with(c->policy, e->file, e->new, e->newlen, &p, &err) != EXH_OK) {
        print_error(&err);
        fprintf(stderr, "exhookctl: the policy would not compile with this edit; %s is unchanged\n",
                e->file);
        return NULL;
    }
    return p;
}

/* The diff (dry run) or the atomic write. */
static int apply_edit(const edit *e, bool dry_run)
{
    if (dry_run) {
        unified_diff(stdout, e->file, e->old, e->oldlen, e->new, e->newlen);
        return 0;
    }
    return write_atomic(e->file, e->new, e->newlen) == 0 ? 0 : EXIT_USAGE;
}

/* The lock for a writing command; -1 and no lock for a dry run.  Returns
 * false when the lock could not be taken. */
static bool lock_unless(const cli *c, bool dry_run, int *fd)
{
    *fd = -1;
    if (dry_run) return true;
    *fd = edit_lock(c->policy);
    return *fd >= 0;
}

/* ---- list-rules ---- */

static void list_json(const exh_policy *p)
{
    fputs("{\"rules\":[", stdout);
    for (uint32_t i = 0; i < exh_policy_rule_count(p); i++) {
        const exh_rule_info *r = exh_policy_rule(p, i);
        printf("%s{\"number\":%u,\"file\":", i ? "," : "", r->number);
        json_put_string(stdout, r->file, strlen(r->file));
        printf(",\"line\":%u,\"end_line\":%u,\"text\":", r->line, r->end_line);
        json_put_string(stdout, r->text, strlen(r->text));
        fputs("}", stdout);
    }
    printf("],\"default\":\"%s\"}\n", exh_decision_str(exh_policy_default(p)));
}

static void list_text(const exh_policy *p)
{
    uint32_t n = exh_policy_rule_count(p);
    int width = snprintf(NULL, 0, "%u", n);
    for (uint32_t i = 0; i < n; i++) {
        const exh_rule_info *r = exh_policy_rule(p, i);
        printf("%*u  %s:%u: %s\n", width, r->number, r->file, r->line, r->text);
    }
}

int cmd_list_rules(cli *c, int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(list_help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (argv[i][0] == '-' || path)
            return usage_error(c, "list-rules", "unexpected argument '%s'", argv[i]);
        else
            path = argv[i];
    }
    exh_policy *p = load_policy(c, path);
    if (!p) return EXIT_USAGE;
    json ? list_json(p) : list_text(p);
    exh_policy_free(p);
    return 0;
}

/* ---- add-rule ---- */

typedef struct add_opts {
    const char *file;
    uint32_t before, after; /* rule numbers; 0 = not given */
    bool dry_run;
    const char *text;
} add_opts;

static int add_args(cli *c, int argc, char **argv, add_opts *o)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(add_help, stdout);
            return -1;
        }
        if (arg_flag(&a, "--dry-run")) {
            o->dry_run = true;
        } else if (arg_value(&a, "--file", &bad)) {
            o->file = a.val;
        } else if (arg_value(&a, "--before", &bad)) {
            if (!bad && !rule_number(c, "add-rule", a.val, &o->before)) return EXIT_USAGE;
        } else if (arg_value(&a, "--after", &bad)) {
            if (!bad && !rule_number(c, "add-rule", a.val, &o->after)) return EXIT_USAGE;
        } else if (!strcmp(a.argv[a.i], "--")) {
            if (a.i + 2 != argc) return usage_error(c, "add-rule", "expected one RULE-TEXT");
            o->text = argv[++a.i];
        } else if (a.argv[a.i][0] == '-' && a.argv[a.i][1]) {
            return usage_error(c, "add-rule", "unknown option '%s'", a.argv[a.i]);
        } else if (o->text) {
            return usage_error(c, "add-rule",
                               "expected one RULE-TEXT (quote the whole rule as one argument)");
        } else {
            o->text = a.argv[a.i];
        }
        if (bad) return EXIT_USAGE;
    }
    if (!o->text) return usage_error(c, "add-rule", "missing RULE-TEXT");
    if (o->before && o->after)
        return usage_error(c, "add-rule", "--before and --after exclude each other");
    return 0;
}

/* An error about RULE-TEXT itself, pointing into it like a compile error. */
static int rule_text_error(const char *text, unsigned col, const char *msg)
{
    exh_error err;
    exh_error_set(&err, EXH_ESYNTAX, "<rule>", 1, col, "%s", msg);
    snprintf(err.source, sizeof(err.source), "%s", text);
    print_error(&err);
    return EXIT_USAGE;
}

/* RULE-TEXT compiled on its own: it must be exactly one rule. */
static int check_rule_text(const char *text)
{
    size_t nl = strcspn(text, "\r\n");
    if (text[nl])
        return rule_text_error(text, (unsigned)nl + 1,
                               "RULE-TEXT must be one line (no line breaks)");
    exh_policy *p;
    exh_error err;
    if (exh_policy_parse("<rule>", text, strlen(text), &p, &err) != EXH_OK) {
        print_error(&err);
        return EXIT_USAGE;
    }
    uint32_t def_line, n = exh_policy_rule_count(p);
    exh_policy_default_file(p, &def_line);
    exh_policy_free(p);
    unsigned col = (unsigned)strspn(text, " \t") + 1;
    if (def_line)
        return rule_text_error(text, col,
                               "expected a rule, found a 'default' statement (add-rule adds "
                               "rules; edit the file to change the default)");
    if (n != 1) return rule_text_error(text, col, "expected a rule (allow|deny ACTION ...)");
    return 0;
}

/* The rule as add-rule writes it: exh_format's layout of RULE-TEXT as a
 * one-line file, ending in eol. */
static int canonical_line(const char *text, const char *eol, char **out, size_t *outlen)
{
    size_t n = strlen(text);
    char *src = malloc(n + 2);
    if (!src) return out_of_memory();
    memcpy(src, text, n);
    memcpy(src + n, "\n", 2);
    char *fmt = NULL;
    size_t flen = 0;
    exh_error err;
    exh_status st = exh_format("<rule>", src, n + 1, &fmt, &flen, &err);
    free(src);
    if (st != EXH_OK) {
        print_error(&err);
        return EXIT_USAGE;
    }
    if (flen < 2 || fmt[flen - 1] != '\n' || memchr(fmt, '\n', flen - 1)) {
        fprintf(stderr, "exhookctl: internal error: the canonical form of RULE-TEXT is not one "
                        "line\n");
        free(fmt);
        return EXIT_USAGE;
    }
    size_t el = strlen(eol);
    char *line = realloc(fmt, flen - 1 + el + 1);
    if (!line) {
        free(fmt);
        return out_of_memory();
    }
    memcpy(line + flen - 1, eol, el + 1);
    *out = line;
    *outlen = flen - 1 + el;
    return 0;
}

/* Where the new rule goes: the file, the line, and the rule number it
 * will have. */
typedef struct place {
    int file;        /* index among the policy's files */
    unsigned line;   /* insert before this line; 0 = at the end */
    unsigned after;  /* or after this (last) line of a rule; 0 = not */
    uint32_t number; /* the new rule's number */
} place;

static int place_rule(cli *c, const exh_policy *p, const add_opts *o, place *pl)
{
    uint32_t n = exh_policy_rule_count(p), k = o->before ? o->before : o->after;
    int forced = -1;
    if (o->file && (forced = find_file(p, o->file)) < 0) {
        fprintf(stderr, "%s: error: not one of the policy's files (see list-rules)\n", o->file);
        return EXIT_USAGE;
    }
    memset(pl, 0, sizeof(*pl));
    if (k) {
        if (k > n) return usage_error(c, "add-rule", "no rule %u: the policy has %u rules", k, n);
        const exh_rule_info *r = exh_policy_rule(p, k - 1);
        pl->file = file_index_of(p, r);
        if (forced >= 0 && forced != pl->file)
            return usage_error(c, "add-rule", "rule %u is in %s, not in %s", k, r->file, o->file);
        pl->line = o->before ? r->line : 0;
        pl->after = o->after ? r->end_line : 0;
        pl->number = o->before ? k : k + 1;
        return 0;
    }
    pl->file = forced >= 0 ? forced : (int)exh_policy_file_count(p) - 1;
    pl->number = 1;
    for (uint32_t i = 0; i < n; i++)
        if (file_index_of(p, exh_policy_rule(p, i)) <= pl->file) pl->number = i + 2;
    return 0;
}

/* The line ending the file already uses, so a CRLF file stays CRLF. */
static const char *eol_of(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    return nl && nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
}

/* Build e->new: the canonical line inserted at the place; a last line
 * without a newline gets one first. */
static int insert_rule(edit *e, const place *pl, const char *text, size_t *at)
{
    const char *eol = eol_of(e->old, e->oldlen);
    size_t off = pl->line    ? line_offset(e->old, e->oldlen, pl->line)
                 : pl->after ? line_offset(e->old, e->oldlen, pl->after + 1)
                             : e->oldlen;
    char *line;
    size_t linelen;
    int rc = canonical_line(text, eol, &line, &linelen);
    if (rc) return rc;
    size_t el = strlen(eol);
    bool need_eol = off > 0 && e->old[off - 1] != '\n';
    char *ins = malloc(linelen + el + 1);
    if (!ins) {
        free(line);
        return out_of_memory();
    }
    size_t n = 0;
    if (need_eol) memcpy(ins, eol, el), n = el;
    memcpy(ins + n, line, linelen);
    free(line);
    rc = splice(e, off, off, ins, n + linelen);
    free(ins);
    *at = off + n;
    return rc;
}

typedef struct shadow_ctx {
    const exh_policy *p;
    uint32_t idx; /* the new rule */
} shadow_ctx;

/* Lint's shadowing findings that involve the new rule, printed as lint
 * prints them. */
static void shadow_warn(const exh_lint_diag *d, void *user)
{
    const shadow_ctx *x = user;
    if (d->kind != EXH_LINT_SHADOWED || (d->rule != x->idx && d->other != x->idx)) return;
    const exh_rule_info *r = exh_policy_rule(x->p, d->rule);
    unsigned col = d->col ? d->col : r->col;
    if (d->rule == x->idx) {
        fprintf(stderr, "%s:%u:%u: warning: the new %s\n    %s\n", r->file, r->line, col,
                d->message, r->text);
        return;
    }
    const exh_rule_info *n = exh_policy_rule(x->p, x->idx);
    fprintf(stderr,
            "%s:%u:%u: warning: rule %u is shadowed by the new rule %u at %s:%u, which decides "
            "every request it could match\n    %s\n",
            r->file, r->line, col, r->number, n->number, n->file, n->line, r->text);
}

/* Compile the edited policy, check the rule landed where meant, warn
 * about shadowing. */
static int verify_added(const cli *c, const edit *e, size_t at, uint32_t number)
{
    exh_policy *np = compile_edit(c, e);
    if (!np) return EXIT_USAGE;
    unsigned line = line_at(e->new, at);
    const exh_rule_info *r = exh_policy_rule(np, number - 1);
    /* A rule can only merge with its neighbour through a continuation
     * '\' on the line before; then it is not a rule of its own. */
    if (!r || strcmp(r->file, e->file) != 0 || r->line != line) {
        fprintf(stderr,
                "%s:%u: error: the new rule would not stand on its own there (does the line "
                "before it end in a continuation '\\'?); %s is unchanged\n",
                e->file, line, e->file);
        exh_policy_free(np);
        return EXIT_USAGE;
    }
    shadow_ctx x = {.p = np, .idx = number - 1};
    exh_lint(np, shadow_warn, &x);
    exh_policy_free(np);
    return 0;
}

static int add_locked(cli *c, const add_opts *o)
{
    exh_policy *p = load_policy(c, NULL);
    if (!p) return EXIT_USAGE;
    place pl;
    int rc = place_rule(c, p, o, &pl);
    edit e = {0};
    if (!rc) {
        e.file = exh_policy_file(p, (uint32_t)pl.file);
        rc = read_policy_file(&e);
    }
    size_t at = 0;
    if (!rc) rc = insert_rule(&e, &pl, o->text, &at);
    if (!rc) rc = verify_added(c, &e, at, pl.number);
    if (!rc) rc = apply_edit(&e, o->dry_run);
    if (!rc && !o->dry_run)
        printf("added rule %u at %s:%u\n", pl.number, e.file, line_at(e.new, at));
    edit_free(&e);
    exh_policy_free(p);
    return rc;
}

int cmd_add_rule(cli *c, int argc, char **argv)
{
    add_opts o = {0};
    int rc = add_args(c, argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = check_rule_text(o.text))) return rc;
    int lock;
    if (!lock_unless(c, o.dry_run, &lock)) return EXIT_USAGE;
    rc = add_locked(c, &o);
    edit_unlock(lock);
    return rc;
}

/* ---- del-rule ---- */

typedef struct del_opts {
    const char *at; /* FILE:LINE */
    uint32_t position;
    bool dry_run;
} del_opts;

static int del_args(cli *c, int argc, char **argv, del_opts *o)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(del_help, stdout);
            return -1;
        }
        if (arg_flag(&a, "--dry-run")) {
            o->dry_run = true;
        } else if (arg_value(&a, "--position", &bad)) {
            if (!bad && !rule_number(c, "del-rule", a.val, &o->position)) return EXIT_USAGE;
        } else if (a.argv[a.i][0] == '-') {
            return usage_error(c, "del-rule", "unknown option '%s'", a.argv[a.i]);
        } else if (o->at) {
            return usage_error(c, "del-rule", "unexpected argument '%s'", a.argv[a.i]);
        } else {
            o->at = a.argv[a.i];
        }
        if (bad) return EXIT_USAGE;
    }
    if (!o->at == !o->position)
        return usage_error(c, "del-rule", "give either FILE:LINE or --position N");
    /* Checked here too, so a typo never waits for (or creates) the lock. */
    uint32_t line;
    const char *colon = o->at ? strrchr(o->at, ':') : NULL;
    if (o->at && (!colon || colon == o->at || !parse_number(colon + 1, &line)))
        return usage_error(c, "del-rule", "expected FILE:LINE, found '%s'", o->at);
    return 0;
}

/* The rule o names: 0 with *idx set, 1 when there is none, 2 on bad
 * input. */
static int find_rule(const exh_policy *p, const del_opts *o, uint32_t *idx)
{
    uint32_t n = exh_policy_rule_count(p);
    if (o->position) {
        *idx = o->position - 1;
        if (o->position <= n) return 0;
        fprintf(stderr, "exhookctl del-rule: no rule %u: the policy has %u rules\n", o->position,
                n);
        return EXIT_DENY;
    }
    const char *colon = strrchr(o->at, ':'); /* del_args checked the form */
    uint32_t line = 0;
    parse_number(colon + 1, &line);
    char *file = strndup(o->at, (size_t)(colon - o->at));
    int fi = file ? find_file(p, file) : -1;
    if (fi < 0)
        fprintf(stderr, "%.*s: error: not one of the policy's files (see list-rules)\n",
                (int)(colon - o->at), o->at);
    free(file);
    if (fi < 0) return EXIT_USAGE;
    for (uint32_t i = 0; i < n; i++) {
        const exh_rule_info *r = exh_policy_rule(p, i);
        if (r->line <= line && line <= r->end_line && file_index_of(p, r) == fi) {
            *idx = i;
            return 0;
        }
    }
    fprintf(stderr, "exhookctl del-rule: no rule at %s\n", o->at);
    return EXIT_DENY;
}

static int del_locked(cli *c, const del_opts *o)
{
    exh_policy *p = load_policy(c, NULL);
    if (!p) return EXIT_USAGE;
    uint32_t idx = 0;
    int rc = find_rule(p, o, &idx);
    const exh_rule_info *r = rc ? NULL : exh_policy_rule(p, idx);
    edit e = {.file = r ? r->file : NULL};
    if (!rc) rc = read_policy_file(&e);
    if (!rc) {
        size_t from = line_offset(e.old, e.oldlen, r->line);
        size_t to = line_offset(e.old, e.oldlen, r->end_line + 1);
        rc = splice(&e, from, to, "", 0);
    }
    exh_policy *np = rc ? NULL : compile_edit(c, &e);
    if (!rc && !np) rc = EXIT_USAGE;
    if (np && exh_policy_rule_count(np) + 1 != exh_policy_rule_count(p)) {
        fprintf(stderr,
                "exhookctl: internal error: removing lines %u-%u of %s would not remove "
                "exactly one rule; unchanged\n",
                r->line, r->end_line, e.file);
        rc = EXIT_USAGE;
    }
    exh_policy_free(np);
    if (!rc) rc = apply_edit(&e, o->dry_run);
    if (!rc && !o->dry_run)
        printf("deleted rule %u at %s:%u: %s\n", r->number, r->file, r->line, r->text);
    edit_free(&e);
    exh_policy_free(p);
    return rc;
}

int cmd_del_rule(cli *c, int argc, char **argv)
{
    del_opts o = {0};
    int rc = del_args(c, argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    int lock;
    if (!lock_unless(c, o.dry_run, &lock)) return EXIT_USAGE;
    rc = del_locked(c, &o);
    edit_unlock(lock);
    return rc;
}
