/*
 * policy.c -- loading a policy from files, all or nothing.
 */
#include "exhook/policy.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "parser.h"
#include "error_int.h"
#include "readfile.h"

void exh_policy_free(exh_policy *p)
{
    if (!p) return;
    for (uint32_t i = 0; i < p->nrules; i++)
        exh_rule_free(&p->rules[i]);
    free(p->rules);
    for (uint32_t i = 0; i < p->nfiles; i++)
        free(p->files[i]);
    free(p->files);
    exh_index_free(p);
    free(p->arena);
    free(p->texts);
    free(p);
}

static exh_status add_file_name(exh_policy *p, const char *name, char **out)
{
    char **nf = realloc(p->files, (p->nfiles + 1) * sizeof(*nf));
    if (!nf) return EXH_ENOMEM;
    p->files = nf;
    if (!(nf[p->nfiles] = strdup(name))) return EXH_ENOMEM;
    *out = nf[p->nfiles++];
    return EXH_OK;
}

static exh_status parse_into(exh_policy *p, policy_builder *b, const char *name, const char *text,
                             size_t len, exh_error *err)
{
    char *stored;
    if (add_file_name(p, name, &stored))
        return exh_error_set(err, EXH_ENOMEM, name, 0, 0, "%s", "out of memory");
    return parse_policy_text(b, stored, text, len, err);
}

/* Hand the builder's rules to the policy and build the index. */
static exh_status finish(exh_policy *p, policy_builder *b, exh_error *err)
{
    p->rules = b->rules;
    p->nrules = b->nrules;
    b->rules = NULL;
    b->nrules = 0;
    p->def = b->has_default ? b->def : EXH_DENY;
    p->def_file = b->def_file;
    p->def_line = b->def_line;
    p->def_col = b->def_col;
    if (exh_rules_pack(p) || exh_index_build(p))
        return exh_error_set(err, EXH_ENOMEM, NULL, 0, 0, "%s",
                             "out of memory building the rule index");
    return EXH_OK;
}

static void discard(policy_builder *b)
{
    for (uint32_t i = 0; i < b->nrules; i++)
        exh_rule_free(&b->rules[i]);
    free(b->rules);
}

exh_status exh_policy_parse(const char *name, const char *text, size_t len, exh_policy **out,
                            exh_error *err)
{
    exh_error scratch;
    if (!err) err = &scratch;
    exh_error_clear(err);
    *out = NULL;
    exh_policy *p = calloc(1, sizeof(*p));
    policy_builder b = {0};
    if (!p) return exh_error_set(err, EXH_ENOMEM, name, 0, 0, "%s", "out of memory");
    exh_status st = parse_into(p, &b, name, text, len, err);
    if (!st) st = finish(p, &b, err);
    if (st) {
        discard(&b);
        exh_policy_free(p);
        return st;
    }
    *out = p;
    return EXH_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.policy files of a directory in byte order of their names. */
static exh_status list_dir(const char *dir, char ***names, size_t *count, exh_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return exh_error_set(err, EXH_EIO, dir, 0, 0, "cannot open directory: %s", strerror(errno));
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    exh_status st = EXH_OK;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 7 || strcmp(e->d_name + l - 7, ".policy") != 0 || e->d_name[0] == '.') continue;
        char **nv = realloc(v, (n + 1) * sizeof(*nv));
        if (!nv || !(nv[n] = malloc(strlen(dir) + l + 2))) {
            v = nv ? nv : v;
            st = exh_error_set(err, EXH_ENOMEM, dir, 0, 0, "%s", "out of memory");
            break;
        }
        v = nv;
        sprintf(v[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (st) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return st;
    }
    if (n > 1) qsort(v, n, sizeof(*v), cmp_names);
    *names = v;
    *count = n;
    return EXH_OK;
}

static exh_status load(const char *path, const char *ofile, const char *otext, size_t olen,
                       exh_policy **out, exh_error *err);

exh_status exh_policy_load(const char *path, exh_policy **out, exh_error *err)
{
    return load(path, NULL, NULL, 0, out, err);
}

exh_status exh_policy_load_with(const char *path, const char *file, const char *text, size_t len,
                                exh_policy **out, exh_error *err)
{
    return load(path, file, text, len, out, err);
}

uint32_t exh_policy_file_count(const exh_policy *p)
{
    return p->nfiles;
}

const char *exh_policy_file(const exh_policy *p, uint32_t index)
{
    return index < p->nfiles ? p->files[index] : NULL;
}

/* Load path; the file named ofile (if any) is taken from otext. */
static exh_status load(const char *path, const char *ofile, const char *otext, size_t olen,
                       exh_policy **out, exh_error *err)
{
    exh_error scratch;
    if (!err) err = &scratch;
    exh_error_clear(err);
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return exh_error_set(err, EXH_EIO, path, 0, 0, "cannot read policy: %s", strerror(errno));
    char **names = NULL;
    size_t n = 0;
    char *dirbuf = NULL;
    exh_status st;
    if (S_ISDIR(sb.st_mode)) {
        /* Drop trailing slashes so file names read "policies/10-x.policy". */
        dirbuf = strdup(path);
        if (!dirbuf) return exh_error_set(err, EXH_ENOMEM, path, 0, 0, "%s", "out of memory");
        size_t l = strlen(dirbuf);
        while (l > 1 && dirbuf[l - 1] == '/')
            dirbuf[--l] = '\0';
        st = list_dir(dirbuf, &names, &n, err);
        free(dirbuf);
        if (st) return st;
        if (n == 0) {
            free(names);
            return exh_error_set(err, EXH_EIO, path, 0, 0, "%s",
                                 "no *.policy files in this directory");
        }
    } else {
        names = malloc(sizeof(*names));
        if (!names || !(names[0] = strdup(path))) {
            free(names);
            return exh_error_set(err, EXH_ENOMEM, path, 0, 0, "%s", "out of memory");
        }
        n = 1;
    }
    exh_policy *p = calloc(1, sizeof(*p));
    policy_builder b = {0};
    st = p ? EXH_OK : exh_error_set(err, EXH_ENOMEM, path, 0, 0, "%s", "out of memory");
    int used = 0;
    for (size_t i = 0; i < n && !st; i++) {
        char *text = NULL;
        size_t len = 0;
        if (ofile && !strcmp(ofile, names[i])) {
            used = 1;
            st = parse_into(p, &b, names[i], otext, olen, err);
            continue;
        }
        /* A pipe only when it was named itself (--policy <(...)).  A FIFO
         * among the *.policy files would wait forever for a writer,
         * stalling every command and a driver's reloads. */
        exh_read_kind kind = S_ISDIR(sb.st_mode) ? EXH_READ_REGULAR : EXH_READ_OR_FIFO;
        st = exh_read_file(names[i], kind, EXH_TEXT_FILE_MAX, "cannot read policy", &text, &len,
                           err);
        if (!st) st = parse_into(p, &b, names[i], text, len, err);
        free(text);
    }
    if (!st && ofile && !used)
        st = exh_error_set(err, EXH_EINVAL, ofile, 0, 0, "%s", "not one of the policy's files");
    if (!st) st = finish(p, &b, err);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (st) {
        discard(&b);
        exh_policy_free(p);
        return st;
    }
    *out = p;
    return EXH_OK;
}

void exh_policy_drop_texts(exh_policy *p)
{
    for (uint32_t i = 0; i < p->nrules; i++)
        p->rules[i].info.text = "";
    free(p->texts);
    p->texts = NULL;
}

uint32_t exh_policy_rule_count(const exh_policy *p)
{
    return p->nrules;
}

const exh_rule_info *exh_policy_rule(const exh_policy *p, uint32_t index)
{
    return index < p->nrules ? &p->rules[index].info : NULL;
}

exh_decision exh_policy_default(const exh_policy *p)
{
    return p->def;
}

const char *exh_policy_default_file(const exh_policy *p, uint32_t *line)
{
    if (line) *line = p->def_line;
    return p->def_file;
}

const char *exh_decision_str(exh_decision d)
{
    switch (d) {
    case EXH_ALLOW:
        return "allow";
    case EXH_DENY:
        return "deny";
    case EXH_IGNORE:
        return "ignore";
    }
    return "deny";
}

const char *exh_action_str(unsigned actions)
{
    switch (actions) {
    case EXH_PUBLISH:
        return "publish";
    case EXH_SUBSCRIBE:
        return "subscribe";
    case EXH_PUBLISH | EXH_SUBSCRIBE:
        return "pubsub";
    case EXH_CONNECT:
        return "connect";
    }
    return "?";
}

/* Compared with its length: a string may hold NUL ("publish\u0000x" from
 * JSON is not "publish"). */
bool exh_action_parse(const char *s, size_t n, exh_action *a)
{
    if (strnlen(s, n + 1) != n) return false;
    if (!strcmp(s, "publish"))
        *a = EXH_PUBLISH;
    else if (!strcmp(s, "subscribe"))
        *a = EXH_SUBSCRIBE;
    else if (!strcmp(s, "connect"))
        *a = EXH_CONNECT;
    else
        return false;
    return true;
}
