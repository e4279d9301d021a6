/*
 * fmt -- rewrite policy files in the one canonical layout (exh_format).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exhook/format.h"
#include "fileio.h"
#include "readfile.h"

static const char fmt_help[] =
    "usage: exhookctl fmt [--check] [PATH]\n"
    "\n"
    "Rewrite policy files in one canonical layout: single spaces, strings\n"
    "quoted one way, columns aligned within each block of consecutive one-line\n"
    "rules, continued rules on two lines.  Comments, blank lines and the order\n"
    "of everything are kept; formatting never changes a decision, and\n"
    "formatting a formatted file changes nothing.\n"
    "\n"
    "PATH is a policy file or a directory (its *.policy files); default\n"
    "--policy / $EXHOOK_POLICY / ./policies.  Changed files are replaced\n"
    "atomically under the directory's lock file .exhookctl.lock and listed.\n"
    "\n"
    "  --check   write nothing; list the files that would change\n"
    "\n"
    "A file that does not compile is reported and left as it is.  Exit status:\n"
    "0 done (or, with --check, nothing to change), 1 --check found files to\n"
    "change, 2 a file does not compile or cannot be read or written.\n";

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.policy files of dir in byte order, as the policy loader reads
 * them ("dir/name"). */
static int list_policy_files(const char *dir, char ***out, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: error: cannot open directory: %s\n", dir, strerror(errno));
        return -1;
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 7 || strcmp(e->d_name + l - 7, ".policy") != 0 || e->d_name[0] == '.') continue;
        char **nv = realloc(v, (n + 1) * sizeof(*nv));
        if (nv) v = nv;
        if (!nv || !(v[n] = malloc(dl + l + 2))) {
            rc = -1;
            break;
        }
        snprintf(v[n++], dl + l + 2, "%.*s/%s", (int)dl, dir, e->d_name);
    }
    closedir(d);
    if (rc) fprintf(stderr, "exhookctl: out of memory\n");
    if (n > 1) qsort(v, n, sizeof(*v), cmp_names);
    *out = v;
    *count = n;
    return rc;
}

/* Belt and braces: the formatted text must hold the same statements with
 * the same effects and actions before it replaces a file. */
static bool same_rules(const char *name, const char *a, size_t alen, const char *b, size_t blen)
{
    exh_policy *pa = NULL, *pb = NULL;
    bool same = !exh_policy_parse(name, a, alen, &pa, NULL) &&
                !exh_policy_parse(name, b, blen, &pb, NULL) &&
                exh_policy_rule_count(pa) == exh_policy_rule_count(pb) &&
                exh_policy_default(pa) == exh_policy_default(pb);
    for (uint32_t i = 0; same && i < exh_policy_rule_count(pa); i++) {
        const exh_rule_info *x = exh_policy_rule(pa, i), *y = exh_policy_rule(pb, i);
        same = x->effect == y->effect && x->actions == y->actions;
    }
    exh_policy_free(pa);
    exh_policy_free(pb);
    return same;
}

/* Format one file.  Returns 0 unchanged, 1 changed (written unless
 * check), 2 error. */
static int fmt_file(const char *path, bool check)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, outlen = 0;
    exh_error err;
    if (exh_read_file(path, EXH_READ_REGULAR, EXH_TEXT_FILE_MAX, NULL, &text, &len, &err)) {
        print_error(&err);
        return 2;
    }
    int rc = 0;
    if (exh_format(path, text, len, &out, &outlen, &err) != EXH_OK) {
        print_error(&err);
        rc = 2;
    } else if (outlen != len || memcmp(out, text, len) != 0) {
        rc = 1;
        if (!same_rules(path, text, len, out, outlen)) {
            fprintf(stderr,
                    "%s: internal error: formatting would change its rules; left as it is\n", path);
            rc = 2;
        } else if (!check && write_atomic(path, out, outlen) != 0) {
            rc = 2;
        }
    }
    if (rc == 1) printf("%s\n", path);
    free(text);
    free(out);
    return rc;
}

static int fmt_files(char **files, size_t n, bool check)
{
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = fmt_file(files[i], check);
        if (rc > worst) worst = rc;
    }
    if (worst == 1 && !check) worst = 0;
    return worst;
}

int cmd_fmt(cli *c, int argc, char **argv)
{
    const char *path = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(fmt_help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--check"))
            check = true;
        else if (argv[i][0] == '-' || path)
            return usage_error(c, "fmt", "unexpected argument '%s'", argv[i]);
        else
            path = argv[i];
    }
    if (!path) path = c->policy;
    char **files = NULL;
    size_t n = 0;
    char *one = NULL;
    bool ok = true;
    if (is_dir(path)) {
        ok = list_policy_files(path, &files, &n) == 0;
        if (ok && n == 0) {
            fprintf(stderr, "%s: error: no *.policy files in this directory\n", path);
            ok = false;
        }
    } else {
        one = (char *)path;
        files = &one;
        n = 1;
    }
    int rc = EXIT_USAGE;
    int lock = -1;
    if (ok && (check || (lock = edit_lock(path)) >= 0)) rc = fmt_files(files, n, check);
    edit_unlock(lock);
    if (!one) {
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        free(files);
    }
    return rc;
}
