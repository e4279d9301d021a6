/*
 * import.c -- users from Mosquitto password files and EMQX exports
 * (DESIGN §3 `import`, §4).
 *
 * Parsing is separate from storing: exh_import_parse turns a file's text
 * into records (name, self-describing hash, superuser) and checks
 * everything that can be checked without a store, including duplicate
 * names within the file, so a dry run finds every problem a real import
 * would find in the file itself.  exh_import_file then stores the records
 * in one transaction.
 *
 * Error messages never quote a password hash or a source line: a
 * "password file" that was never run through `mosquitto_passwd -U` holds
 * plain-text passwords, and DESIGN §4 says passwords are never echoed.
 * User names are quoted once they are known to be printable UTF-8.
 */
#include "exhook/import.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error_int.h"
#include "readfile.h"

/* An import file larger than this is refused before it is read: every
 * format is parsed from memory, and a bigger file is more likely a mistake
 * (the wrong file) than a user base. */
#define IMPORT_MAX_BYTES ((size_t)1 << 30)
#define PROGRESS_EVERY   1000
#define NAME_MAX_BYTES   65535 /* an MQTT UTF-8 string's limit */

bool exh_import_format_parse(const char *name, exh_import_format *out)
{
    static const struct {
        const char *name;
        exh_import_format fmt;
    } names[] = {
        {"mosquitto-passwd", EXH_IMPORT_MOSQUITTO},
        {"emqx-csv", EXH_IMPORT_EMQX_CSV},
        {"emqx-json", EXH_IMPORT_EMQX_JSON},
    };
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(name, names[i].name)) {
            *out = names[i].fmt;
            return true;
        }
    }
    return false;
}

void exh_import_opts_default(exh_import_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->emqx_alg = EXH_HASH_EMQX_SHA256;
    o->emqx_salt_prefix = true;
    o->replace = false;
}

/* ---- names seen so far: duplicates within one file ----------------------- */

/* Open addressing over owned copies of the names; the line is kept so the
 * error can point at both occurrences. */
typedef struct seen_slot {
    char *name;
    size_t len;
    unsigned line;
} seen_slot;

typedef struct seen_set {
    seen_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} seen_set;

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static seen_slot *seen_probe(seen_slot *slots, size_t cap, const char *s, size_t n)
{
    size_t mask = cap - 1;
    for (size_t i = name_hash(s, n) & mask;; i = (i + 1) & mask) {
        seen_slot *e = &slots[i];
        if (!e->name || (e->len == n && !memcmp(e->name, s, n))) return e;
    }
}

/* 1: added; 0: already there (*first = its line); -1: out of memory. */
static int seen_add(seen_set *set, const char *s, size_t n, unsigned line, unsigned *first)
{
    if ((set->count + 1) * 2 > set->cap) { /* keep the load under 1/2 */
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        seen_slot *ns = calloc(ncap, sizeof(*ns));
        if (!ns) return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slots[i].name)
                *seen_probe(ns, ncap, set->slots[i].name, set->slots[i].len) = set->slots[i];
        free(set->slots);
        set->slots = ns;
        set->cap = ncap;
    }
    seen_slot *e = seen_probe(set->slots, set->cap, s, n);
    if (e->name) {
        *first = e->line;
        return 0;
    }
    if (!(e->name = malloc(n + 1))) return -1;
    memcpy(e->name, s, n);
    e->name[n] = '\0';
    e->len = n;
    e->line = line;
    set->count++;
    return 1;
}

static void seen_free(seen_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i].name);
    free(set->slots);
    memset(set, 0, sizeof(*set));
}

/* ---- the parser's state and its errors ----------------------------------- */

typedef struct field {
    size_t off, len; /* into parser.buf, NUL-terminated there */
    unsigned col;    /* 1-based byte column where the field starts */
} field;

typedef struct parser {
    const char *name; /* for errors */
    exh_import_opts opts;
    exh_import_fn fn;
    void *user;
    exh_error *err;
    int stopped; /* fn asked to stop */
    seen_set seen;
    char *buf; /* scratch: NUL-terminated copies of the current line's fields */
    size_t bufcap;
    field *fields;
    size_t nfields, fieldcap;
} parser;

static exh_status perr(parser *p, exh_status st, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static exh_status perr(parser *p, exh_status st, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    exh_error_vset(p->err, st, p->name, line, col, fmt, ap);
    va_end(ap);
    return st;
}

static exh_status nomem(parser *p, unsigned line)
{
    return perr(p, EXH_ENOMEM, line, 0, "out of memory");
}

static int reserve_buf(parser *p, size_t n)
{
    if (n <= p->bufcap) return 0;
    size_t cap = p->bufcap ? p->bufcap : 256;
    while (cap < n)
        cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb) return -1;
    p->buf = nb;
    p->bufcap = cap;
    return 0;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Mosquitto trims with isspace(); the same set, locale-independent. */
static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF
 * (MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4): a client could never send such a name. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

/* The checks the store would make, made here so the error names the line;
 * plus UTF-8, which MQTT requires of a user name. */
static exh_status check_user_name(parser *p, unsigned line, unsigned col, const char *s, size_t n)
{
    if (n == 0) return perr(p, EXH_ESYNTAX, line, col, "empty user name");
    if (n > NAME_MAX_BYTES)
        return perr(p, EXH_ESYNTAX, line, col, "user name is %zu bytes; at most %d are allowed", n,
                    NAME_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return perr(p, EXH_ESYNTAX, line, col + (unsigned)i,
                        "user name holds a control character (byte 0x%02x)", c);
    }
    if (!utf8_valid((const unsigned char *)s, n))
        return perr(p, EXH_ESYNTAX, line, col, "user name is not valid UTF-8");
    return EXH_OK;
}

/* Hand one record to the caller, after the checks every format shares.
 * name must be NUL-terminated at name[namelen]. */
static exh_status emit(parser *p, unsigned line, unsigned col, const char *name, size_t namelen,
                       const char *hash, bool superuser)
{
    unsigned first = 0;
    int r = seen_add(&p->seen, name, namelen, line, &first);
    if (r < 0) return nomem(p, line);
    if (r == 0)
        return perr(p, EXH_ESYNTAX, line, col, "duplicate user '%s' (first on line %u)", name,
                    first);
    exh_import_record rec = {.name = name, .hash = hash, .superuser = superuser, .line = line};
    if (p->fn && p->fn(&rec, p->user)) p->stopped = 1;
    return EXH_OK;
}

/* ---- mosquitto_passwd ----------------------------------------------------- */

/* The line starting at *pos (without its '\n'); *pos moves past it. */
static const char *next_line(const char *text, size_t len, size_t *pos, size_t *n)
{
    const char *s = text + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    *n = end - *pos;
    *pos = nl ? end + 1 : len;
    return s;
}

/*
 * Read the way the broker reads a password file (Mosquitto 2.0,
 * src/password_file.c / security_default.c): a line whose first byte is
 * '#' is a comment; the user name is everything before the first ':'
 * (mosquitto_passwd refuses names with ':'), the hash what follows; both
 * are trimmed of white space, which also drops the '\r' of a CRLF file.
 * Where the broker silently skips a line (no ':', empty name) or ignores
 * text after a second ':', an import stops with an error instead: a
 * migration should not lose a user quietly.
 */
static exh_status parse_mosquitto(parser *p, const char *text, size_t len)
{
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len && !p->stopped) {
        size_t n;
        const char *s = next_line(text, len, &pos, &n);
        lineno++;

        size_t a = 0, b = n;
        while (a < b && is_space((unsigned char)s[a]))
            a++;
        if (a == b || s[0] == '#') continue; /* blank or comment */
        if (memchr(s, '\0', n))
            return perr(p, EXH_ESYNTAX, lineno,
                        (unsigned)((const char *)memchr(s, '\0', n) - s) + 1,
                        "NUL byte in the line");
        const char *colon = memchr(s, ':', n);
        if (!colon)
            return perr(p, EXH_ESYNTAX, lineno, (unsigned)a + 1,
                        "expected 'user:hash', but the line has no ':'");
        size_t c = (size_t)(colon - s);

        /* name = s[a, ne), hash = s[hs, b) */
        size_t ne = c;
        while (ne > a && is_space((unsigned char)s[ne - 1]))
            ne--;
        size_t hs = c + 1;
        while (b > hs && is_space((unsigned char)s[b - 1]))
            b--;
        while (hs < b && is_space((unsigned char)s[hs]))
            hs++;

        if (reserve_buf(p, (ne - a) + (b - hs) + 2)) return nomem(p, lineno);
        char *name = p->buf;
        memcpy(name, s + a, ne - a);
        name[ne - a] = '\0';
        char *hash = name + (ne - a) + 1;
        memcpy(hash, s + hs, b - hs);
        hash[b - hs] = '\0';

        exh_status st = check_user_name(p, lineno, (unsigned)a + 1, name, ne - a);
        if (st) return st;
        unsigned hcol = (unsigned)hs + 1;
        if (b == hs)
            return perr(p, EXH_ESYNTAX, lineno, hcol, "user '%s' has no password hash after ':'",
                        name);
        if (memchr(hash, ':', b - hs))
            return perr(p, EXH_ESYNTAX, lineno,
                        (unsigned)((const char *)memchr(s + hs, ':', b - hs) - s) + 1,
                        "user '%s': a second ':' (neither names nor hashes contain ':')", name);
        if (b - hs >= EXH_HASH_MAX)
            return perr(p, EXH_ESYNTAX, lineno, hcol, "user '%s': the password hash is too long",
                        name);
        if (exh_hash_identify(hash) == EXH_HASH_UNKNOWN)
            return perr(p, EXH_ESYNTAX, lineno, hcol,
                        "user '%s': not a password hash exhook knows ($7$, $6$, argon2id, bcrypt, "
                        "pbkdf2); a file of plain-text passwords must first be hashed with "
                        "'mosquitto_passwd -U'",
                        name);
        if ((st = emit(p, lineno, (unsigned)a + 1, name, ne - a, hash, false))) return st;
    }
    return EXH_OK;
}

/* ---- EMQX records, shared by CSV and JSON -------------------------------- */

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* What a string field said about is_superuser: 1, 0, or -1 for neither.
 * EMQX takes exactly "true" as true and anything else as false; here any
 * case of true/false is taken (a spreadsheet writes TRUE), and anything
 * else ("yes", "1") is refused rather than silently demoting an
 * administrator. */
static int parse_bool_text(const char *s, size_t n)
{
    if (n == 0) return 0; /* an empty cell: EMQX's default */
    if (n == 4 && !strncasecmp(s, "true", 4)) return 1;
    if (n == 5 && !strncasecmp(s, "false", 5)) return 0;
    return -1;
}

/*
 * One EMQX user.  password_hash is either a self-describing string EMQX
 * also stores (bcrypt "$2b$...": kept, salt ignored since bcrypt carries
 * its own) or the hex digest of salt and password, which becomes
 * "$emqx-<alg>$<prefix|suffix>$<salt>$<hex>" with the digest and salt
 * position the caller configured: EMQX keeps those in its configuration,
 * not with the user.  The salt is used as the bytes of the string, as
 * EMQX does (emqx_passwd: hash(Alg, <<Salt/binary, Password/binary>>)).
 * name and hash must be NUL-terminated at their lengths.
 */
static exh_status emqx_record(parser *p, unsigned line, unsigned namecol, unsigned hashcol,
                              const char *name, size_t namelen, const char *hash, size_t hashlen,
                              const char *salt, size_t saltlen, bool superuser)
{
    exh_status st = check_user_name(p, line, namecol, name, namelen);
    if (st) return st;
    if (hashlen == 0)
        return perr(p, EXH_ESYNTAX, line, hashcol, "user '%s': empty password_hash", name);
    if (hashlen >= EXH_HASH_MAX || memchr(hash, '\0', hashlen))
        return perr(p, EXH_ESYNTAX, line, hashcol, "user '%s': password_hash is not a hash", name);
    if (exh_hash_identify(hash) != EXH_HASH_UNKNOWN)
        return emit(p, line, namecol, name, namelen, hash, superuser);

    if (!is_hex(hash, hashlen))
        return perr(p, EXH_ESYNTAX, line, hashcol,
                    "user '%s': password_hash is neither a hex digest nor a hash string exhook "
                    "knows",
                    name);
    size_t want = p->opts.emqx_alg == EXH_HASH_EMQX_SHA512 ? 128 : 64;
    if (hashlen != want)
        return perr(p, EXH_ESYNTAX, line, hashcol,
                    "user '%s': password_hash has %zu hex digits, but %s digests have %zu (is the "
                    "EMQX hash algorithm set right?)",
                    name, hashlen, want == 128 ? "SHA-512" : "SHA-256", want);
    char hex[129];
    for (size_t i = 0; i < hashlen; i++) /* EMQX compares hex case-insensitively */
        hex[i] = (char)tolower((unsigned char)hash[i]);
    hex[hashlen] = '\0';
    char out[EXH_HASH_MAX];
    exh_error herr;
    exh_error_clear(&herr);
    if ((st = exh_hash_emqx(p->opts.emqx_alg, p->opts.emqx_salt_prefix, (const unsigned char *)salt,
                            saltlen, hex, out, sizeof(out), &herr)))
        return perr(p, st == EXH_ENOMEM ? st : EXH_ESYNTAX, line, hashcol, "user '%s': %s", name,
                    herr.message[0] ? herr.message : exh_status_str(st));
    return emit(p, line, namecol, name, namelen, out, superuser);
}

/* ---- EMQX CSV -------------------------------------------------------------- */

/*
 * Split one CSV line into fields, each copied NUL-terminated into p->buf.
 *
 * Quoting: RFC 4180 double quotes are supported within a line: a field
 * that starts with '"' (after blanks) runs to the matching '"', with "" for
 * a literal quote.  A quoted field cannot span lines: no user name or hash
 * holds a line break, so an unterminated quote is an error (not a reason
 * to swallow the rest of the file).  A '"' inside an unquoted field is an
 * error too, since RFC 4180 says such a field must be quoted.  Unquoted
 * fields are trimmed of blanks (EMQX itself splits on blanks as well as
 * commas, so a name with a blank does not survive EMQX's own reader either).
 */
static exh_status csv_split(parser *p, unsigned lineno, const char *s, size_t n)
{
    p->nfields = 0;
    if (reserve_buf(p, n + n / 2 + 2)) /* every field adds at most a NUL */
        return nomem(p, lineno);
    size_t i = 0, out = 0;
    for (;;) {
        while (i < n && is_blank((unsigned char)s[i]))
            i++;
        field f = {.off = out, .col = (unsigned)i + 1};
        if (i < n && s[i] == '"') {
            size_t q = i++;
            for (;;) {
                if (i >= n)
                    return perr(p, EXH_ESYNTAX, lineno, (unsigned)q + 1,
                                "unterminated quoted field (a quoted field must end on its line)");
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        p->buf[out++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                p->buf[out++] = s[i++];
            }
            while (i < n && is_blank((unsigned char)s[i]))
                i++;
            if (i < n && s[i] != ',')
                return perr(p, EXH_ESYNTAX, lineno, (unsigned)i + 1,
                            "unexpected text after the closing quote of a field");
        } else {
            size_t start = i;
            while (i < n && s[i] != ',') {
                if (s[i] == '"')
                    return perr(p, EXH_ESYNTAX, lineno, (unsigned)i + 1,
                                "a '\"' inside an unquoted field (quote the whole field and "
                                "double the '\"')");
                i++;
            }
            size_t e = i;
            while (e > start && is_blank((unsigned char)s[e - 1]))
                e--;
            memcpy(p->buf + out, s + start, e - start);
            out += e - start;
        }
        f.len = out - f.off;
        p->buf[out++] = '\0';
        if (p->nfields == p->fieldcap) {
            size_t cap = p->fieldcap ? p->fieldcap * 2 : 8;
            field *nf = realloc(p->fields, cap * sizeof(*nf));
            if (!nf) return nomem(p, lineno);
            p->fields = nf;
            p->fieldcap = cap;
        }
        p->fields[p->nfields++] = f;
        if (i >= n) return EXH_OK;
        i++; /* the ',' */
    }
}

enum { COL_USER, COL_HASH, COL_SALT, COL_SUPER, NCOLS };

/*
 * EMQX 5's built-in database import (docs: "Use HTTP API to Manage User
 * Data", Import Users): a header line, then one user a line;
 * user_id and password_hash are required, salt (default empty) and
 * is_superuser (default false) optional.  Columns are found by the header,
 * in any order; columns we do not know are ignored, as EMQX ignores them.
 * Blank lines are skipped; there are no comments (EMQX has none, and '#'
 * can start a user name).
 */
static exh_status parse_csv(parser *p, const char *text, size_t len)
{
    static const char *const colnames[NCOLS] = {"user_id", "password_hash", "salt", "is_superuser"};
    size_t col[NCOLS] = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX}; /* set by the header */
    size_t ncols = 0;
    unsigned header_line = 0;
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len && !p->stopped) {
        size_t n;
        const char *s = next_line(text, len, &pos, &n);
        lineno++;
        if (n && s[n - 1] == '\r') n--;
        size_t a = 0;
        while (a < n && is_space((unsigned char)s[a]))
            a++;
        if (a == n) continue;
        if (memchr(s, '\0', n))
            return perr(p, EXH_ESYNTAX, lineno,
                        (unsigned)((const char *)memchr(s, '\0', n) - s) + 1,
                        "NUL byte in the line");
        exh_status st = csv_split(p, lineno, s, n);
        if (st) return st;

        if (!header_line) {
            header_line = lineno;
            ncols = p->nfields;
            for (int k = 0; k < NCOLS; k++)
                col[k] = SIZE_MAX;
            for (size_t f = 0; f < p->nfields; f++) {
                const char *h = p->buf + p->fields[f].off;
                if (!p->fields[f].len)
                    return perr(p, EXH_ESYNTAX, lineno, p->fields[f].col,
                                "header column %zu has no name", f + 1);
                for (int k = 0; k < NCOLS; k++) {
                    if (strcmp(h, colnames[k])) continue;
                    if (col[k] != SIZE_MAX)
                        return perr(p, EXH_ESYNTAX, lineno, p->fields[f].col,
                                    "the header names column '%s' twice", colnames[k]);
                    col[k] = f;
                }
            }
            if (col[COL_USER] == SIZE_MAX || col[COL_HASH] == SIZE_MAX)
                return perr(p, EXH_ESYNTAX, lineno, 1,
                            "the header must name the columns user_id and password_hash "
                            "(optionally salt and is_superuser), e.g. "
                            "'user_id,password_hash,salt,is_superuser'");
            continue;
        }

        if (p->nfields != ncols)
            return perr(p, EXH_ESYNTAX, lineno, 1,
                        "expected %zu fields as in the header on line %u, found %zu", ncols,
                        header_line, p->nfields);
        const field *fu = &p->fields[col[COL_USER]], *fh = &p->fields[col[COL_HASH]];
        const char *salt = "";
        size_t saltlen = 0;
        if (col[COL_SALT] != SIZE_MAX) {
            salt = p->buf + p->fields[col[COL_SALT]].off;
            saltlen = p->fields[col[COL_SALT]].len;
        }
        int super = 0;
        if (col[COL_SUPER] != SIZE_MAX) {
            const field *fs = &p->fields[col[COL_SUPER]];
            super = parse_bool_text(p->buf + fs->off, fs->len);
            if (super < 0)
                return perr(p, EXH_ESYNTAX, lineno, fs->col,
                            "is_superuser must be true or false (or empty for false)");
        }
        if ((st = emqx_record(p, lineno, fu->col, fh->col, p->buf + fu->off, fu->len,
                              p->buf + fh->off, fh->len, salt, saltlen, super == 1)))
            return st;
    }
    if (!header_line)
        return perr(p, EXH_ESYNTAX, lineno ? lineno : 1, 1,
                    "no header line: expected 'user_id,password_hash,salt,is_superuser' or "
                    "another header naming at least user_id and password_hash");
    return EXH_OK;
}

/* ---- EMQX JSON ------------------------------------------------------------- */

/*
 * The line each element of the top-level array starts on.  Jansson keeps
 * no positions, so this walks the text Jansson has already accepted; it
 * only has to follow strings (and their escapes) and nesting.
 */
static void json_element_lines(const char *s, size_t n, unsigned *lines, size_t count)
{
    unsigned line = 1;
    int depth = 0, in_str = 0, esc = 0, between = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && k < count; i++) {
        char c = s[i];
        if (c == '\n') line++;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (depth == 1 && c == ',') {
            between = 1;
            continue;
        }
        if (depth == 1 && between && c != ']') {
            lines[k++] = line;
            between = 0;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth == 1) between = 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    for (; k < count; k++) /* cannot happen on text Jansson accepted */
        lines[k] = 1;
}

static exh_status json_string_field(parser *p, unsigned line, json_t *obj, const char *key,
                                    const char **out, size_t *outlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return EXH_ENOTFOUND;
    if (!json_is_string(v)) return perr(p, EXH_ESYNTAX, line, 0, "%s must be a string", key);
    *out = json_string_value(v);
    *outlen = json_string_length(v);
    return EXH_OK;
}

/*
 * A JSON array of objects with the CSV's keys (same docs page): user_id
 * and password_hash strings, salt a string, is_superuser a boolean (EMQX
 * also takes the string "true", so "true"/"false" strings are accepted).
 * Other keys are ignored.  Duplicate keys in an object are an error: which
 * one would win is not something to guess about a password.
 */
static exh_status parse_json(parser *p, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return perr(p, EXH_ESYNTAX, jerr.line > 0 ? (unsigned)jerr.line : 1,
                    jerr.column > 0 ? (unsigned)jerr.column : 0, "invalid JSON: %s", jerr.text);
    exh_status st = EXH_OK;
    unsigned *lines = NULL;
    if (!json_is_array(root)) {
        st = perr(p, EXH_ESYNTAX, 1, 0, "expected a JSON array of user objects");
        goto out;
    }
    size_t count = json_array_size(root);
    if (count && !(lines = malloc(count * sizeof(*lines)))) {
        st = nomem(p, 0);
        goto out;
    }
    json_element_lines(text, len, lines, count);
    for (size_t i = 0; i < count && !p->stopped; i++) {
        json_t *o = json_array_get(root, i);
        unsigned line = lines[i];
        if (!json_is_object(o)) {
            st = perr(p, EXH_ESYNTAX, line, 0, "array element %zu is not an object", i + 1);
            goto out;
        }
        const char *name = NULL, *hash = NULL, *salt = "";
        size_t namelen = 0, hashlen = 0, saltlen = 0;
        st = json_string_field(p, line, o, "user_id", &name, &namelen);
        if (st == EXH_ENOTFOUND) st = perr(p, EXH_ESYNTAX, line, 0, "missing user_id");
        if (st) goto out;
        if ((st = check_user_name(p, line, 0, name, namelen))) goto out;
        st = json_string_field(p, line, o, "password_hash", &hash, &hashlen);
        if (st == EXH_ENOTFOUND)
            st = perr(p, EXH_ESYNTAX, line, 0,
                      json_object_get(o, "password")
                          ? "user '%s': missing password_hash (plain-text 'password' entries are "
                            "not imported: hash them, or add the user with exhookctl add-user)"
                          : "user '%s': missing password_hash",
                      name);
        if (st) goto out;
        st = json_string_field(p, line, o, "salt", &salt, &saltlen);
        if (st == EXH_ENOTFOUND) st = EXH_OK;
        if (st) goto out;
        json_t *su = json_object_get(o, "is_superuser");
        int super = 0;
        if (json_is_boolean(su))
            super = json_is_true(su);
        else if (json_is_string(su))
            super = parse_bool_text(json_string_value(su), json_string_length(su));
        else if (su && !json_is_null(su))
            super = -1;
        if (super < 0) {
            st = perr(p, EXH_ESYNTAX, line, 0, "user '%s': is_superuser must be true or false",
                      name);
            goto out;
        }
        if ((st = emqx_record(p, line, 0, 0, name, namelen, hash, hashlen, salt, saltlen,
                              super == 1)))
            goto out;
    }
out:
    free(lines);
    json_decref(root);
    return st;
}

/* ---- entry points ----------------------------------------------------------- */

exh_status exh_import_parse(exh_import_format fmt, const char *name, const char *text, size_t len,
                            const exh_import_opts *opts, exh_import_fn fn, void *user,
                            exh_error *err)
{
    parser p = {.name = name ? name : "<input>", .fn = fn, .user = user, .err = err};
    if (err) exh_error_clear(err);
    if (opts)
        p.opts = *opts;
    else
        exh_import_opts_default(&p.opts);
    if (p.opts.emqx_alg == EXH_HASH_UNKNOWN) /* a zeroed opts struct means the default */
        p.opts.emqx_alg = EXH_HASH_EMQX_SHA256;
    if (p.opts.emqx_alg != EXH_HASH_EMQX_SHA256 && p.opts.emqx_alg != EXH_HASH_EMQX_SHA512)
        return perr(&p, EXH_EINVAL, 0, 0, "the EMQX hash algorithm must be sha256 or sha512");
    if (!text && len) return perr(&p, EXH_EINVAL, 0, 0, "no text to import");
    /* A UTF-8 byte order mark, as spreadsheet programs write it. */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
        text += 3;
        len -= 3;
    }
    exh_status st;
    switch (fmt) {
    case EXH_IMPORT_MOSQUITTO:
        st = parse_mosquitto(&p, text ? text : "", len);
        break;
    case EXH_IMPORT_EMQX_CSV:
        st = parse_csv(&p, text ? text : "", len);
        break;
    case EXH_IMPORT_EMQX_JSON:
        st = parse_json(&p, text ? text : "", len);
        break;
    default:
        st = perr(&p, EXH_EINVAL, 0, 0, "unknown import format");
        break;
    }
    seen_free(&p.seen);
    free(p.buf);
    free(p.fields);
    return st;
}

typedef struct import_ctx {
    exh_store *s;
    const char *path;
    bool replace;
    exh_import_progress_fn progress;
    void *user;
    size_t done;
    exh_status st;
    exh_error *err;
} import_ctx;

/* Store one record; on failure keep the status and stop the parse. */
static int import_one(const exh_import_record *rec, void *vctx)
{
    import_ctx *c = vctx;
    exh_error e;
    exh_error_clear(&e);
    exh_status st = EXH_OK;
    if (c->replace) {
        st = exh_store_del_user(c->s, rec->name, &e);
        if (st == EXH_ENOTFOUND) st = EXH_OK;
    }
    if (!st) {
        exh_new_user u = {.name = rec->name, .hash = rec->hash, .superuser = rec->superuser};
        st = exh_store_add_user(c->s, &u, &e);
    }
    if (st) {
        c->st = st;
        if (st == EXH_EEXIST)
            exh_error_set(c->err, st, c->path, rec->line, 0,
                          "user '%s' already exists in the store (replace existing users to "
                          "overwrite it)",
                          rec->name);
        else
            exh_error_set(c->err, st, c->path, rec->line, 0, "storing user '%.200s': %.280s",
                          rec->name, e.message[0] ? e.message : exh_status_str(st));
        return 1;
    }
    if (++c->done % PROGRESS_EVERY == 0 && c->progress) c->progress(c->done, c->user);
    return 0;
}

exh_status exh_import_file(exh_store *s, exh_import_format fmt, const char *path,
                           const exh_import_opts *opts, exh_import_progress_fn progress, void *user,
                           size_t *imported, exh_error *err)
{
    if (imported) *imported = 0;
    char *text;
    size_t len;
    /* Any file but a directory: an import may come through a pipe
     * (/dev/stdin), and the cap bounds one that never ends. */
    exh_status st =
        exh_read_file(path, EXH_READ_ANY, IMPORT_MAX_BYTES, "cannot import", &text, &len, err);
    if (st) return st;
    exh_import_opts o;
    if (opts)
        o = *opts;
    else
        exh_import_opts_default(&o);
    /* One transaction for the whole file: an error, or a kill, leaves the
     * store exactly as it was (SQLite's WAL drops uncommitted frames). */
    if ((st = exh_store_begin(s, err))) {
        free(text);
        return st;
    }
    import_ctx c = {
        .s = s, .path = path, .replace = o.replace, .progress = progress, .user = user, .err = err};
    st = exh_import_parse(fmt, path, text, len, &o, import_one, &c, err);
    free(text);
    if (!st) st = c.st;
    if (!st) st = exh_store_commit(s, err);
    if (st) {
        exh_store_rollback(s);
        return st;
    }
    if (progress) progress(c.done, user);
    if (imported) *imported = c.done;
    return EXH_OK;
}
