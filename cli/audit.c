/*
 * audit -- reading the decision audit log the front ends write (JSON
 * lines, one decision a line; the format is notes/audit_format.md), and
 * `exhookctl audit`, which prints the records that match a filter: "why
 * was client X denied at time T?".  `replay` (replay.c) reads the log
 * through the same reader.
 *
 * The reader streams: one line at a time, never the whole file, and a line
 * longer than AUDIT_LINE_MAX is skipped without being held.  A line that
 * is no record (not JSON, a key of the wrong type, a required key missing,
 * an unknown action...) is reported as FILE:LINE: why and skipped; the
 * rest of the file is still read, so one run reports every bad line, and
 * the command then exits 2: a damaged log must never pass for a clean one.
 * Keys the format does not know are ignored, so a log from a newer writer
 * with more keys still reads.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* jansson keeps NULs inside strings (a client id or topic with one is
 * replayed as the evaluator judges it) and refuses a key given twice
 * (which of two "decision"s counts would be a guess). */
#define LOAD_FLAGS (JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

/* The shape of a record's time: '0' stands for a digit.  Fixed width, so
 * text order is time order, and a prefix of it (--since 2026-12-03T07)
 * compares as text. */
static const char time_shape[] = "0000-00-00T00:00:00.000000Z";
#define TIME_LEN (sizeof(time_shape) - 1)

static bool time_prefix_ok(const char *s, size_t n)
{
    if (n > TIME_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (time_shape[i] == '0' ? s[i] < '0' || s[i] > '9' : s[i] != time_shape[i]) return false;
    return true;
}

/* ---- showing text ---- */

/* Bytes of valid UTF-8 (jansson checked it) that a terminal acts on
 * rather than shows: C1 controls (U+0080..U+009F) and the bidirectional
 * overrides (U+202A..U+202E, U+2066..U+2069).  Returns their length, 0
 * for anything else. */
static size_t unshowable(const unsigned char *s, size_t n)
{
    if (n >= 2 && s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) return 2;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9) return 3;
    return 0;
}

void put_shown(FILE *f, const char *s, size_t len)
{
    if (!s) {
        fputc('-', f);
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    /* Bare only when nobody could misread it: not empty, not "-" (absent),
     * no space (the columns' separator), quote, backslash or control. */
    bool bare = len > 0 && !(len == 1 && s[0] == '-');
    for (size_t i = 0; bare && i < len; i++)
        bare = u[i] > 0x20 && u[i] != 0x7f && u[i] != '"' && u[i] != '\\' &&
               !unshowable(u + i, len - i);
    if (bare) {
        fwrite(s, 1, len, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        size_t k = unshowable(u + i, len - i);
        if (k == 2) {
            fprintf(f, "\\u%04x", u[i + 1]);
            i++;
        } else if (k == 3) {
            fprintf(f, "\\u%04x", 0x2000 | ((u[i + 1] & 0x3f) << 6) | (u[i + 2] & 0x3f));
            i += 2;
        } else if (u[i] == '"' || u[i] == '\\') {
            fprintf(f, "\\%c", u[i]);
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            fprintf(f, "\\u%04x", u[i]);
        } else {
            fputc(u[i], f);
        }
    }
    fputc('"', f);
}

/* A message that may quote the input (jansson's "near '...'"): every byte
 * that is not printable ASCII as \xNN, since the line may be anything. */
static void put_message(FILE *f, const char *s)
{
    for (const unsigned char *u = (const unsigned char *)s; *u; u++)
        if (*u < 0x20 || *u >= 0x7f)
            fprintf(f, "\\x%02x", *u);
        else
            fputc(*u, f);
}

static const char *shown_path(const audit_reader *r)
{
    return strcmp(r->path, "-") ? r->path : "<stdin>";
}

/* PATH:LINE: message, for a line that is skipped. */
static void report(audit_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(audit_reader *r, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%lu: ", shown_path(r), r->lineno);
    put_message(stderr, msg);
    fputc('\n', stderr);
    r->unreadable++;
}

/* ---- reading lines ---- */

int audit_open(audit_reader *r, const cli *c, const char *cmd, const char *path)
{
    memset(r, 0, sizeof(*r));
    r->path = path;
    if (!strcmp(path, "-")) {
        r->f = stdin;
        return 0;
    }
    r->f = fopen(path, "r");
    struct stat st;
    if (!r->f || fstat(fileno(r->f), &st) != 0) {
        fprintf(stderr, "%s %s: cannot open %s: %s\n", c->prog, cmd, path, strerror(errno));
        if (r->f) fclose(r->f);
        r->f = NULL;
        return EXIT_USAGE;
    }
    /* fopen succeeds on a directory; its first read would fail with a less
     * helpful EISDIR.  A FIFO or /dev/stdin is fine: `--log <(zcat ...)`. */
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s %s: cannot read %s: is a directory\n", c->prog, cmd, path);
        fclose(r->f);
        r->f = NULL;
        return EXIT_USAGE;
    }
    return 0;
}

void audit_close(audit_reader *r)
{
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
    memset(r, 0, sizeof(*r));
}

/* The next line into r->line (NUL-terminated, the line ending dropped).
 * Returns 1, 0 at the end, -1 on a read error or no memory (errno says
 * which).  Past AUDIT_LINE_MAX the bytes are read and dropped and
 * *too_long set. */
static int read_line(audit_reader *r, bool *too_long)
{
    *too_long = false;
    r->len = 0;
    bool any = false;
    int ch;
    while ((ch = getc_unlocked(r->f)) != EOF) {
        any = true;
        if (ch == '\n') break;
        if (r->len >= AUDIT_LINE_MAX) {
            *too_long = true;
            continue;
        }
        if (r->len + 1 >= r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            if (cap > AUDIT_LINE_MAX + 1) cap = AUDIT_LINE_MAX + 1;
            char *p = realloc(r->line, cap);
            if (!p) {
                errno = ENOMEM;
                return -1;
            }
            r->line = p;
            r->cap = cap;
        }
        r->line[r->len++] = (char)ch;
    }
    if (ferror(r->f)) return -1;
    if (!any) return 0;
    r->lineno++;
    if (!r->line) { /* an empty line first: nothing was allocated yet */
        if (!(r->line = malloc(1))) {
            errno = ENOMEM;
            return -1;
        }
        r->cap = 1;
    }
    if (r->len && r->line[r->len - 1] == '\r') r->len--;
    r->line[r->len] = '\0';
    return 1;
}

/* ---- checking a record ---- */

/* Is rule a basis word the format allows, or FILE:LINE? */
static bool rule_ok(const char *s)
{
    static const char *const words[] = {"default",     "superuser",  "credentials",
                                        "anonymous",   "invalid",    "no login",
                                        "store fault", "unverified", "out of memory"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (!strcmp(s, words[i])) return true;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1]) return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

/* A string field.  NULs are refused unless nul_ok (the names and the
 * topic keep theirs for the evaluator to judge). */
static const char *get_string(json_t *v, const char *key, bool nul_ok, exh_str *out, char *why,
                              size_t n)
{
    if (!json_is_string(v)) {
        snprintf(why, n, "\"%s\" must be a string", key);
        return why;
    }
    out->ptr = json_string_value(v);
    out->len = json_string_length(v);
    if (!nul_ok && strlen(out->ptr) != out->len) {
        snprintf(why, n, "\"%s\" holds a NUL byte", key);
        return why;
    }
    return NULL;
}

static const char *get_bool(json_t *v, const char *key, bool *out, char *why, size_t n)
{
    if (!json_is_boolean(v)) {
        snprintf(why, n, "\"%s\" must be true or false", key);
        return why;
    }
    *out = json_is_true(v);
    return NULL;
}

static const char *get_groups(json_t *v, audit_record *rec)
{
    size_t i;
    json_t *g;
    if (!json_is_array(v)) return "\"groups\" must be an array of strings";
    json_array_foreach(v, i, g)
    {
        if (!json_is_string(g)) return "\"groups\" must be an array of strings";
    }
    rec->ngroups = json_array_size(v);
    if (!rec->ngroups) return NULL;
    if (!(rec->groups = calloc(rec->ngroups, sizeof(*rec->groups)))) return "out of memory";
    json_array_foreach(v, i, g)
    {
        rec->groups[i] = (exh_str){json_string_value(g), json_string_length(g)};
    }
    return NULL;
}

/* What the text keys say, each checked against the format's values. */
static const char *set_word(const char *key, const char *s, audit_record *rec)
{
    if (!strcmp(key, "front")) {
        if (strcmp(s, "grpc") && strcmp(s, "driver") && strcmp(s, "mosquitto"))
            return "\"front\" must be \"grpc\", \"driver\" or \"mosquitto\"";
        rec->front = s;
    } else if (!strcmp(key, "event")) {
        if (strcmp(s, "acl") && strcmp(s, "login") && strcmp(s, "dropped"))
            return "\"event\" must be \"acl\", \"login\" or \"dropped\"";
        rec->login = s[0] == 'l';
        rec->dropped = s[0] == 'd';
    } else if (!strcmp(key, "action")) {
        if (!exh_action_parse(s, strlen(s), &rec->action))
            return "\"action\" must be \"publish\", \"subscribe\" or \"connect\"";
    } else if (!strcmp(key, "decision")) {
        if (!strcmp(s, "allow"))
            rec->decision = EXH_ALLOW;
        else if (!strcmp(s, "deny"))
            rec->decision = EXH_DENY;
        else if (!strcmp(s, "ignore"))
            rec->decision = EXH_IGNORE;
        else
            return "\"decision\" must be \"allow\", \"deny\" or \"ignore\"";
    } else if (!strcmp(key, "rule")) {
        if (!rule_ok(s))
            return "\"rule\" must be FILE:LINE or default, superuser, credentials, anonymous, "
                   "invalid, no login, store fault, unverified or out of memory";
        rec->rule = s;
    } else if (!strcmp(key, "time") || !strcmp(key, "from") || !strcmp(key, "to")) {
        if (strlen(s) != TIME_LEN || !time_prefix_ok(s, TIME_LEN))
            return key[0] == 't' && key[1] == 'i'
                       ? "\"time\" must be UTC as 2026-12-03T07:09:43.123456Z"
                       : "\"from\" and \"to\" must be UTC as 2026-12-03T07:09:43.123456Z";
        *(key[0] == 'f' ? &rec->from : key[1] == 'o' ? &rec->to : &rec->time) = s;
    } else if (!strcmp(key, "node")) {
        rec->node = s;
    } else if (!strcmp(key, "reason")) {
        rec->reason = s;
    }
    return NULL;
}

/* check_key's marks for the counts of a "dropped" record; bits 0..9 are
 * its words[]. */
#define SEEN_ACL   (1u << 10)
#define SEEN_LOGIN (1u << 11)

/* One key of a record.  Unknown keys are ignored (a newer writer's). */
static const char *check_key(const char *key, json_t *v, audit_record *rec, unsigned *seen,
                             char *why, size_t n)
{
    static const char *const words[] = {"time",     "front", "node",   "event", "action",
                                        "decision", "rule",  "reason", "from",  "to"};
    const char *bad;
    exh_str s;
    bool b;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcmp(key, words[i])) continue;
        if ((bad = get_string(v, key, false, &s, why, n))) return bad;
        if ((bad = set_word(key, s.ptr, rec))) return bad;
        *seen |= 1u << i;
        return NULL;
    }
    if (!strcmp(key, "clientid")) return get_string(v, key, true, &rec->clientid, why, n);
    if (!strcmp(key, "username")) return get_string(v, key, true, &rec->username, why, n);
    if (!strcmp(key, "topic")) return get_string(v, key, true, &rec->topic, why, n);
    if (!strcmp(key, "peer")) {
        if ((bad = get_string(v, key, false, &s, why, n))) return bad;
        if (!exh_addr_parse(s.ptr, s.len, &rec->peer_addr))
            return "\"peer\" is not an IPv4 or IPv6 address";
        rec->peer = s.ptr;
    } else if (!strcmp(key, "groups")) {
        return get_groups(v, rec);
    } else if (!strcmp(key, "superuser")) {
        return get_bool(v, key, &rec->superuser, why, n);
    } else if (!strcmp(key, "delivery")) {
        return get_bool(v, key, &rec->delivery, why, n);
    } else if (!strcmp(key, "retain")) {
        if ((bad = get_bool(v, key, &b, why, n))) return bad;
        rec->retain = b;
    } else if (!strcmp(key, "qos")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2)
            return "\"qos\" must be 0, 1 or 2";
        rec->qos = (int)json_integer_value(v);
    } else if (!strcmp(key, "lossy")) {
        return get_bool(v, key, &rec->lossy, why, n);
    } else if (!strcmp(key, "acl") || !strcmp(key, "login")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(why, n, "\"%s\" must be a count (an integer, 0 or more)", key);
            return why;
        }
        *(key[0] == 'a' ? &rec->dropped_acl : &rec->dropped_login) =
            (unsigned long)json_integer_value(v);
        *seen |= key[0] == 'a' ? SEEN_ACL : SEEN_LOGIN;
    } else if (!strcmp(key, "gen")) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return "\"gen\" must be a positive integer";
    } else if (!strcmp(key, "sample")) {
        /* A floor, so 1/rate (what a sampled allow stands for) stays finite */
        if (!json_is_number(v) || !(json_number_value(v) >= 1e-9 && json_number_value(v) <= 1))
            return "\"sample\" must be a number from 1e-9 to 1";
        rec->sample = json_number_value(v);
    }
    return NULL;
}

/* The keys every record has, then what its event needs. */
static const char *check_record(json_t *o, audit_record *rec, char *why, size_t n)
{
    if (!json_is_object(o)) return "a record must be a JSON object";
    const char *key, *bad;
    size_t keylen;
    json_t *v;
    unsigned seen = 0;
    json_object_keylen_foreach(o, key, keylen, v)
    {
        /* "rule\u0000x" is not "rule" and must not pass for it */
        if (strlen(key) != keylen) return "a key holds a NUL byte";
        if ((bad = check_key(key, v, rec, &seen, why, n))) return bad;
    }
    /* bit i: check_key's words[i]; node (2) and reason (7) are optional */
    static const char *const required[] = {"time",   "front",    NULL,  "event",
                                           "action", "decision", "rule"};
    size_t nreq = sizeof(required) / sizeof(required[0]);
    /* The writer's note of records it had to drop (its queue was full):
     * no decision, only how many and when. */
    if ((seen & (1u << 3)) && rec->dropped) {
        nreq = 4;
        if (!(seen & SEEN_ACL) || !(seen & SEEN_LOGIN))
            return "a dropped record needs \"acl\" and \"login\" (counts)";
    }
    for (size_t i = 0; i < nreq; i++)
        if (required[i] && !(seen & (1u << i))) {
            snprintf(why, n, "\"%s\" is missing", required[i]);
            return why;
        }
    if (rec->dropped) return NULL;
    if (!rec->login && rec->action == EXH_CONNECT)
        return "an acl record's \"action\" must be \"publish\" or \"subscribe\"";
    if (rec->login && rec->action != EXH_CONNECT)
        return "a login record's \"action\" must be \"connect\"";
    if (!rec->login && !rec->topic.ptr) return "\"topic\" is missing";
    if (rec->login && !rec->reason) return "\"reason\" is missing (a login record has one)";
    if (rec->delivery && rec->action != EXH_SUBSCRIBE) return "\"delivery\" is only for subscribe";
    if (rec->sample > 0 && rec->decision != EXH_ALLOW)
        return "\"sample\" is only for allows (denies are always written)";
    if (!rec->clientid.ptr) rec->clientid = (exh_str){"", 0};
    return NULL;
}

void audit_record_clear(audit_record *rec)
{
    free(rec->groups);
    if (rec->root) json_decref(rec->root);
    memset(rec, 0, sizeof(*rec));
}

/* Parse and check the current line.  Returns true for a record. */
static bool parse_line(audit_reader *r, audit_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->qos = -1;
    rec->retain = -1;
    /* jansson would stop at a raw NUL and call it the end of the text */
    if (memchr(r->line, '\0', r->len)) {
        report(r, "holds a NUL byte: binary data, not a JSON text");
        return false;
    }
    json_error_t jerr;
    json_t *o = json_loadb(r->line, r->len, LOAD_FLAGS, &jerr);
    if (!o) {
        report(r, "invalid JSON at column %d: %.160s", jerr.column, jerr.text);
        return false;
    }
    rec->root = o;
    char why[160];
    const char *bad = check_record(o, rec, why, sizeof(why));
    if (bad) {
        report(r, "%s", bad);
        audit_record_clear(rec);
        return false;
    }
    return true;
}

int audit_next(audit_reader *r, audit_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    for (;;) {
        bool too_long;
        int got = read_line(r, &too_long);
        if (got < 0) {
            fprintf(stderr, "%s:%lu: cannot read: %s\n", shown_path(r), r->lineno + 1,
                    strerror(errno));
            return -1;
        }
        if (!got) return 0;
        if (too_long) {
            report(r, "line longer than %zu MiB (the limit): skipped", AUDIT_LINE_MAX >> 20);
            continue;
        }
        size_t k = 0;
        while (k < r->len && (r->line[k] == ' ' || r->line[k] == '\t'))
            k++;
        if (k == r->len) continue; /* blank: no writer makes one, and it holds nothing */
        if (parse_line(r, rec)) return 1;
    }
}

/* ---- exhookctl audit ---- */

static const char audit_help[] =
    "usage: exhookctl audit --log FILE [--log FILE]... [--clientid C] [--username U]\n"
    "                       [--decision allow|deny|ignore] [--event acl|login|dropped]\n"
    "                       [--action publish|subscribe|connect] [--topic T]\n"
    "                       [--since TIME] [--until TIME] [--json]\n"
    "\n"
    "Print the records of the decision audit log (the JSON lines the front ends\n"
    "write to their audit_log) that match every filter given, in the log's order,\n"
    "one a line: time, node, front, event, clientid, username, peer, action,\n"
    "topic, decision, rule, reason ('-' where the record has none; a value with\n"
    "spaces or control characters is shown as a JSON string).\n"
    "\n"
    "  --log FILE       the audit log ('-': stdin); repeat it for rotated files, in\n"
    "                   time order: --log audit.jsonl.1 --log audit.jsonl\n"
    "  --clientid C, --username U, --topic T\n"
    "                   exactly this client id, username, topic (text as the broker\n"
    "                   sent it, no wildcard matching)\n"
    "  --decision D, --event E, --action A\n"
    "                   only these decisions, events (acl, login, or dropped: the\n"
    "                   writer's notes of records it had to drop), actions\n"
    "  --since TIME     records at or after TIME\n"
    "  --until TIME     records up to TIME, TIME's whole span included:\n"
    "                   --until 2026-12-03T07 takes everything to 07:59:59.999999\n"
    "                   TIME is UTC (as the log is), in the log's own form or any\n"
    "                   leading part of it: 2026-12-03, 2026-12-03T07:00,\n"
    "                   2026-12-03T07:09:43.123456Z; no time zone offsets\n"
    "  --json           the matching lines as they are in the log\n"
    "\n"
    "Why was client X denied between 07:00 and 07:30?\n"
    "  exhookctl audit --log audit.jsonl --clientid X --decision deny \\\n"
    "      --since 2026-12-03T07:00 --until 2026-12-03T07:30\n"
    "\n"
    "Where the writer dropped records (its queue full) in the time asked about,\n"
    "a note on stderr says so.  A line that is no record is reported as\n"
    "FILE:LINE: why on stderr and the rest are still read.  Exit status: 0\n"
    "something matched, 1 nothing did, 2 usage error, an unreadable file, or\n"
    "any unreadable line.\n";

#define MAX_LOGS 64

typedef struct audit_filter {
    const char *logs[MAX_LOGS];
    size_t nlogs;
    const char *clientid, *username, *topic;
    const char *since, *until;
    size_t until_len;
    int decision, event, action; /* -1: any; event 1 = login */
    bool json;
} audit_filter;

/* A --since/--until value: a leading part of the log's time form.  A whole
 * second with its Z (07:09:43Z) is taken as that second. */
static bool time_arg(char *s)
{
    size_t n = strlen(s);
    if (n == 20 && s[19] == 'Z' && time_prefix_ok(s, 19)) s[19] = '\0';
    n = strlen(s);
    return n > 0 && time_prefix_ok(s, n);
}

/* v as an index into words (NULL-terminated); choices names them. */
static int scan_word(cli *c, const char *opt, const char *v, const char *const *words,
                     const char *choices, int *out)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(v, words[i])) {
            *out = i;
            return 0;
        }
    return usage_error(c, "audit", "%s takes %s, not '%s'", opt, choices, v);
}

static int scan_time(cli *c, const char *opt, const char *v, const char **out)
{
    if (!time_arg((char *)v))
        return usage_error(c, "audit",
                           "%s takes a UTC time such as 2026-12-03T07:00 or "
                           "2026-12-03T07:09:43.123456Z (or a leading part of one), not '%s'",
                           opt, v);
    *out = v;
    return 0;
}

static int scan_audit(cli *c, int argc, char **argv, audit_filter *f)
{
    static const char *const decisions[] = {"deny", "allow", "ignore", NULL}; /* exh_decision */
    static const char *const events[] = {"acl", "login", "dropped", NULL};
    static const char *const actions[] = {"publish", "subscribe", "connect", NULL};
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    int rc = 0;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(audit_help, stdout);
            return -1;
        }
        if (arg_flag(&a, "--json")) {
            f->json = true;
        } else if (arg_value(&a, "--log", &bad)) {
            if (f->nlogs == MAX_LOGS) return usage_error(c, "audit", "too many --log options");
            if (!bad) f->logs[f->nlogs++] = a.val;
        } else if (arg_value(&a, "--clientid", &bad)) {
            f->clientid = a.val;
        } else if (arg_value(&a, "--username", &bad)) {
            f->username = a.val;
        } else if (arg_value(&a, "--topic", &bad)) {
            f->topic = a.val;
        } else if (arg_value(&a, "--decision", &bad)) {
            if (!bad)
                rc = scan_word(c, "--decision", a.val, decisions, "allow, deny or ignore",
                               &f->decision);
        } else if (arg_value(&a, "--event", &bad)) {
            if (!bad)
                rc = scan_word(c, "--event", a.val, events, "acl, login or dropped", &f->event);
        } else if (arg_value(&a, "--action", &bad)) {
            if (!bad)
                rc = scan_word(c, "--action", a.val, actions, "publish, subscribe or connect",
                               &f->action);
            if (!bad && !rc) f->action = 1 << f->action; /* exh_action's bit */
        } else if (arg_value(&a, "--since", &bad)) {
            if (!bad) rc = scan_time(c, "--since", a.val, &f->since);
        } else if (arg_value(&a, "--until", &bad)) {
            if (!bad) rc = scan_time(c, "--until", a.val, &f->until);
        } else {
            return usage_error(c, "audit", "unknown argument '%s'", argv[a.i]);
        }
        if (bad) return EXIT_USAGE;
        if (rc) return rc;
    }
    if (!f->nlogs) return usage_error(c, "audit", "--log FILE is required");
    if (f->until) f->until_len = strlen(f->until);
    return 0;
}

static bool text_is(const char *want, exh_str s)
{
    return want && s.ptr && strlen(want) == s.len && !memcmp(want, s.ptr, s.len);
}

/* Does the filter ask about decisions (a client, a topic, ...)? */
static bool about_decisions(const audit_filter *f)
{
    return f->clientid || f->username || f->topic || f->decision >= 0 || f->action >= 0;
}

static bool in_window(const audit_filter *f, const char *from, const char *to)
{
    return (!f->since || strcmp(to, f->since) >= 0) &&
           (!f->until || strncmp(from, f->until, f->until_len) <= 0);
}

static bool matches(const audit_filter *f, const audit_record *r)
{
    /* A note of dropped records: listed with the decisions unless the
     * filter names something only a decision has. */
    if (r->dropped)
        return (f->event < 0 || f->event == 2) && !about_decisions(f) &&
               in_window(f, r->time, r->time);
    if (f->event == 2) return false;
    if (f->clientid && !text_is(f->clientid, r->clientid)) return false;
    if (f->username && !text_is(f->username, r->username)) return false;
    if (f->topic && !text_is(f->topic, r->topic)) return false;
    if (f->decision >= 0 && (int)r->decision != f->decision) return false;
    if (f->event >= 0 && r->login != (f->event == 1)) return false;
    if (f->action >= 0 && (int)r->action != f->action) return false;
    if (f->since && strcmp(r->time, f->since) < 0) return false;
    if (f->until && strncmp(r->time, f->until, f->until_len) > 0) return false;
    return true;
}

static void put_col(const char *s, size_t len)
{
    fputs("  ", stdout);
    put_shown(stdout, s, len);
}

static void put_col0(const char *s)
{
    put_col(s, s ? strlen(s) : 0);
}

/* One record a line, in the order of the format's keys. */
static void print_record(const audit_record *r)
{
    fputs(r->time, stdout);
    if (r->dropped) {
        put_col0(r->node);
        put_col0(r->front);
        printf("  dropped  %lu ACL and %lu login records, from %s to %s\n", r->dropped_acl,
               r->dropped_login, r->from ? r->from : "?", r->to ? r->to : r->time);
        return;
    }
    put_col0(r->node);
    put_col0(r->front);
    put_col0(r->login ? "login" : "acl");
    put_col(r->clientid.ptr, r->clientid.len);
    put_col(r->username.ptr, r->username.len);
    put_col0(r->peer);
    put_col0(exh_action_str(r->action));
    put_col(r->topic.ptr, r->topic.len);
    put_col0(exh_decision_str(r->decision));
    put_col0(r->rule);
    put_col0(r->reason);
    fputc('\n', stdout);
}

int cmd_audit(cli *c, int argc, char **argv)
{
    audit_filter f = {.decision = -1, .event = -1, .action = -1};
    int rc = scan_audit(c, argc, argv, &f);
    if (rc) return rc < 0 ? 0 : rc;
    unsigned long matched = 0;
    bool failed = false;
    for (size_t i = 0; i < f.nlogs; i++) {
        audit_reader rd;
        if (audit_open(&rd, c, "audit", f.logs[i])) {
            failed = true;
            continue;
        }
        audit_record rec;
        int got;
        while ((got = audit_next(&rd, &rec)) > 0) {
            /* Records the writer could not keep may be the ones asked for */
            if (rec.dropped && about_decisions(&f) &&
                in_window(&f, rec.from ? rec.from : rec.time, rec.to ? rec.to : rec.time))
                fprintf(stderr,
                        "%s audit: note: %s:%lu: the writer dropped %lu ACL and %lu login "
                        "records from %s to %s (its queue was full): matching ones may be "
                        "missing\n",
                        c->prog, shown_path(&rd), rd.lineno, rec.dropped_acl, rec.dropped_login,
                        rec.from ? rec.from : "?", rec.to ? rec.to : rec.time);
            if (matches(&f, &rec)) {
                matched++;
                if (f.json) {
                    fwrite(rd.line, 1, rd.len, stdout);
                    fputc('\n', stdout);
                } else {
                    print_record(&rec);
                }
            }
            audit_record_clear(&rec);
        }
        if (got < 0 || rd.unreadable) failed = true;
        if (rd.unreadable)
            fprintf(stderr, "%s audit: %s: %lu unreadable line%s skipped\n", c->prog,
                    shown_path(&rd), rd.unreadable, rd.unreadable == 1 ? "" : "s");
        audit_close(&rd);
    }
    if (fflush(stdout) != 0) failed = true;
    return failed ? EXIT_USAGE : matched ? EXIT_ALLOW : EXIT_DENY;
}
