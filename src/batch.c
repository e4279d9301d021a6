/*
 * batch.c -- reading one `check --batch` request (DESIGN §3).
 *
 * Two steps: the JSON object is checked where jansson put it (the
 * messages name the first bad field in the object's order), and only a
 * request that passed is copied out into one allocation of its own, so
 * the caller never holds a jansson tree and freeing has one block to
 * wipe.
 */
#include "exhook/batch.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "exhook/addr.h"
#include "error_int.h"

/* jansson is told to keep NULs inside strings (the evaluator, not the
 * reader, judges a topic) and to refuse a key given twice. */
#define LOAD_FLAGS (JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

/* A request whose strings still point into jansson's tree. */
typedef struct draft {
    exh_request rq; /* rq.groups unset: see groups */
    json_t *groups; /* the "groups" array, NULL when absent */
    const char *password;
    size_t password_len;
    bool superuser_given;
} draft;

/*
 * Check one batch object and fill d.  Returns NULL, or why the request is
 * invalid (static text or written into why).
 */
static const char *check_request(json_t *o, draft *d, char *why, size_t whysize)
{
    if (!json_is_object(o)) return "a request must be a JSON object";
    json_t *v = json_object_get(o, "action");
    exh_action a;
    if (!json_is_string(v) || !exh_action_parse(json_string_value(v), json_string_length(v), &a))
        return "\"action\" must be \"publish\", \"subscribe\" or \"connect\"";
    memset(d, 0, sizeof(*d));
    exh_request_init(&d->rq, a);
    d->rq.qos = 0; /* DESIGN §2: in check, absent qos is 0 and absent retain false */
    d->rq.retain = 0;
    const char *key;
    size_t keylen;
    json_t *val;
    json_object_keylen_foreach(o, key, keylen, val)
    {
        /* "topic\u0000" is not "topic", and must not pass as a second one */
        if (strlen(key) != keylen) return "a key holds a NUL byte";
        if (!strcmp(key, "action")) continue;
        if (!strcmp(key, "username") || !strcmp(key, "clientid") || !strcmp(key, "topic") ||
            !strcmp(key, "peerhost")) {
            if (json_is_null(val) && strcmp(key, "topic") != 0) continue;
            if (!json_is_string(val)) {
                snprintf(why, whysize, "\"%s\" must be a string", key);
                return why;
            }
            const char *s = json_string_value(val);
            size_t n = json_string_length(val);
            if (key[0] == 'u') {
                d->rq.username = s;
                d->rq.username_len = n;
            } else if (key[0] == 'c') {
                d->rq.clientid = s;
                d->rq.clientid_len = n;
            } else if (key[0] == 't') {
                d->rq.topic = s;
                d->rq.topic_len = n;
            } else if (!exh_addr_parse(s, n, &d->rq.peerhost)) {
                return "\"peerhost\" is not an IPv4 or IPv6 address";
            }
        } else if (!strcmp(key, "qos")) {
            if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > 2)
                return "\"qos\" must be 0, 1 or 2";
            d->rq.qos = (int)json_integer_value(val);
        } else if (!strcmp(key, "retain") || !strcmp(key, "superuser")) {
            if (!json_is_boolean(val)) {
                snprintf(why, whysize, "\"%s\" must be true or false", key);
                return why;
            }
            if (key[0] == 'r') {
                d->rq.retain = json_is_true(val);
            } else {
                d->rq.superuser = json_is_true(val);
                d->superuser_given = true;
            }
        } else if (!strcmp(key, "groups")) {
            size_t i;
            json_t *g;
            if (!json_is_array(val)) return "\"groups\" must be an array of strings";
            if (json_array_size(val) > EXH_BATCH_MAX_GROUPS) return "too many groups (at most 256)";
            json_array_foreach(val, i, g)
            {
                if (!json_is_string(g)) return "\"groups\" must be an array of strings";
            }
            d->groups = val;
        } else if (!strcmp(key, "password")) {
            if (!json_is_string(val)) return "\"password\" must be a string";
            d->password = json_string_value(val);
            d->password_len = json_string_length(val);
        } else {
            /* Quoted back cut short: the reason must fit its buffer
             * whatever the client sent. */
            snprintf(why, whysize, "unknown field \"%.64s\"", key);
            return why;
        }
    }
    if (a != EXH_CONNECT && !d->rq.topic) return "\"topic\" is required for publish and subscribe";
    if (d->password && a != EXH_CONNECT) return "\"password\" is only for connect";
    if (d->password && !d->rq.username) return "\"password\" needs a \"username\"";
    return NULL;
}

/* Copy n bytes and a terminating NUL to *cur; returns where they went. */
static const char *put(char **cur, const char *s, size_t n)
{
    char *p = *cur;
    memcpy(p, s, n);
    p[n] = '\0';
    *cur = p + n + 1;
    return p;
}

/* A request as allocated: the public part first (the caller's pointer
 * is this block's), then the groups array, then every string. */
typedef struct owned_req {
    exh_batch_req pub;
    size_t size;      /* bytes in the whole block, all wiped when freed */
    exh_str groups[]; /* ngroups entries, then the strings */
} owned_req;

/*
 * Copy a checked draft into one new block: the groups array first (a
 * flexible array member, so aligned for it), then every string
 * NUL-terminated.  The decoded strings are no longer than the JSON text
 * they came from, so the sum cannot overflow.
 */
static exh_status own(const draft *d, exh_batch_req **out)
{
    size_t ngroups = d->groups ? json_array_size(d->groups) : 0;
    size_t size = sizeof(owned_req) + ngroups * sizeof(exh_str);
    if (d->rq.username) size += d->rq.username_len + 1;
    if (d->rq.clientid) size += d->rq.clientid_len + 1;
    if (d->rq.topic) size += d->rq.topic_len + 1;
    if (d->password) size += d->password_len + 1;
    for (size_t i = 0; i < ngroups; i++)
        size += json_string_length(json_array_get(d->groups, i)) + 1;
    owned_req *o = calloc(1, size);
    if (!o) return EXH_ENOMEM;
    o->size = size;

    exh_batch_req *b = &o->pub;
    char *cur = (char *)(o->groups + ngroups);
    b->req = d->rq;
    if (d->rq.username) b->req.username = put(&cur, d->rq.username, d->rq.username_len);
    if (d->rq.clientid) b->req.clientid = put(&cur, d->rq.clientid, d->rq.clientid_len);
    if (d->rq.topic) b->req.topic = put(&cur, d->rq.topic, d->rq.topic_len);
    for (size_t i = 0; i < ngroups; i++) {
        json_t *g = json_array_get(d->groups, i);
        o->groups[i].len = json_string_length(g);
        o->groups[i].ptr = put(&cur, json_string_value(g), o->groups[i].len);
    }
    /* Never NULL, even with no groups: the evaluator and the credential
     * check expect a valid (empty) array of a pointer. */
    b->req.groups = o->groups;
    b->req.ngroups = ngroups;
    if (d->password) {
        b->password = put(&cur, d->password, d->password_len);
        b->password_len = d->password_len;
    }
    b->groups_given = d->groups != NULL;
    b->superuser_given = d->superuser_given;
    *out = b;
    return EXH_OK;
}

/*
 * The tree's copy of the password is about to go back to jansson's
 * allocator, which need not wipe: wipe it here.  jansson hands out its
 * strings as const, but they are its own heap copies, so writing over the
 * bytes before the tree is freed is safe.
 */
static void wipe_tree_password(json_t *o)
{
    json_t *pw = json_is_object(o) ? json_object_get(o, "password") : NULL;
    if (json_is_string(pw)) OPENSSL_cleanse((char *)json_string_value(pw), json_string_length(pw));
}

exh_status exh_batch_parse(const char *text, size_t len, exh_batch_req **out, exh_error *err)
{
    *out = NULL;
    if (err) exh_error_clear(err);
    json_error_t jerr;
    json_t *o = json_loadb(text ? text : "", text ? len : 0, LOAD_FLAGS, &jerr);
    if (!o) {
        exh_status st =
            json_error_code(&jerr) == json_error_out_of_memory ? EXH_ENOMEM : EXH_ESYNTAX;
        if (st == EXH_ENOMEM) {
            exh_error_nomem(err);
        } else {
            /* jansson quotes the input near the error ("... near
             * '\"s3cret'"), which may be part of a password: drop it,
             * except for a duplicate key, where the quote is the key. */
            char *near = strstr(jerr.text, " near '");
            if (near && strncmp(jerr.text, "duplicate object key", 20) != 0) *near = '\0';
            exh_error_set(err, st, NULL, 0, 0, "%s", jerr.text);
            if (err) {
                err->line = jerr.line > 0 ? (unsigned)jerr.line : 0;
                err->col = jerr.column > 0 ? (unsigned)jerr.column : 0;
            }
        }
        /* jansson quotes the text near the error, perhaps part of a
         * password: its copy is ours to wipe, err's the caller's. */
        OPENSSL_cleanse(&jerr, sizeof(jerr));
        return st;
    }
    draft d;
    char why[128];
    exh_status st = EXH_OK;
    const char *bad = check_request(o, &d, why, sizeof(why));
    if (bad)
        st = exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "%s", bad);
    else if ((st = own(&d, out)) != EXH_OK)
        exh_error_nomem(err);
    wipe_tree_password(o);
    json_decref(o);
    return st;
}

void exh_batch_req_free(exh_batch_req *b)
{
    if (!b) return;
    owned_req *o = (owned_req *)(void *)b; /* pub is its first member */
    OPENSSL_cleanse(o, o->size);
    free(o);
}
