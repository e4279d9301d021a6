/*
 * test -- run policy test files (*.test) against the policy.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "readfile.h"
#include "exhook/eval.h"
#include "exhook/policytest.h"

static const char test_help[] =
    "usage: exhookctl test [--json] [PATH]\n"
    "\n"
    "Run the expectations in PATH (a *.test file, or every *.test file of a\n"
    "directory in name order) against the policy.  Each failure is printed with\n"
    "its file:line; the last line is 'N passed, N failed'.\n"
    "\n"
    "The policy is --policy / $EXHOOK_POLICY when given; otherwise the tests'\n"
    "own directory (policies sit beside their tests), and ./policies when PATH\n"
    "is absent too.\n"
    "\n"
    "An expectation with 'also emqx' runs twice (as written, then with QoS and\n"
    "retain unknown, as EMQX's hooks send it) and counts twice.\n"
    "\n"
    "  --json   one JSON object per failure (\"variant\":\"emqx\" on an EMQX run),\n"
    "           then {\"passed\":N,\"failed\":N}\n"
    "\n"
    "Exit status: 0 all passed, 1 some failed, 2 a test file or the policy is\n"
    "malformed.\n";

typedef struct run {
    const exh_policy *p;
    exh_evalctx *ctx;
    unsigned passed, failed;
    bool json;
} run;

static int one(const exh_expectation *e, void *user)
{
    run *r = user;
    exh_result res;
    exh_eval(r->p, &e->request, r->ctx, &res);
    if (res.decision == e->expected) {
        r->passed++;
        return 0;
    }
    r->failed++;
    char why[4096];
    describe_result(r->p, &res, why, sizeof(why), true);
    if (r->json) {
        char loc[600];
        snprintf(loc, sizeof(loc), "%s:%u", e->file, e->line);
        fputs("{\"test\":", stdout);
        json_put_string(stdout, loc, strlen(loc));
        printf(
            ",%s\"expected\":\"%s\",\"got\":\"%s\",\"by\":", e->emqx ? "\"variant\":\"emqx\"," : "",
            exh_decision_str(e->expected), exh_decision_str(res.decision));
        json_put_string(stdout, why, strlen(why));
        fputs("}\n", stdout);
    } else {
        printf("%s:%u: expected %s, got %s%s\n    decided by %s\n", e->file, e->line,
               exh_decision_str(e->expected), exh_decision_str(res.decision),
               e->emqx ? " as EMQX sends it (QoS and retain unknown)" : "", why);
    }
    return 0;
}

static int run_file(run *r, const char *path)
{
    char *text = NULL;
    size_t n = 0;
    exh_error err;
    /* Regular files only: a FIFO would hang. */
    if (exh_read_file(path, EXH_READ_REGULAR, EXH_TEXT_FILE_MAX, NULL, &text, &n, &err)) {
        print_error(&err);
        return -1;
    }
    exh_status st = exh_testfile_parse(path, text, n, one, r, &err);
    free(text);
    if (st) {
        print_error(&err);
        return -1;
    }
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.test files of a directory, in name order. */
static char **test_files(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 5 || strcmp(e->d_name + l - 5, ".test") || e->d_name[0] == '.') continue;
        char **nv = realloc(v, (n + 1) * sizeof(*nv));
        if (!nv) break;
        v = nv;
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/')
            dl--;
        v[n] = malloc(dl + l + 2);
        if (!v[n]) break;
        sprintf(v[n++], "%.*s/%s", (int)dl, dir, e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(v, n, sizeof(*v), cmp);
    *count = n;
    return v ? v : calloc(1, sizeof(char *));
}

int cmd_test(cli *c, int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(test_help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (argv[i][0] == '-' || path)
            return usage_error(c, "test", "unexpected argument '%s'", argv[i]);
        else
            path = argv[i];
    }
    const char *target = path ? path : c->policy;
    struct stat sb;
    if (stat(target, &sb) != 0) {
        fprintf(stderr, "%s: error: %s\n", target, strerror(errno));
        return EXIT_USAGE;
    }
    bool is_dir = S_ISDIR(sb.st_mode);
    /* Policies sit beside their tests. */
    char *policy_dir = NULL;
    const char *policy = c->policy;
    if (!c->policy_given && path) {
        if (is_dir) {
            policy = path;
        } else {
            policy_dir = strdup(path);
            char *slash = policy_dir ? strrchr(policy_dir, '/') : NULL;
            if (slash) *slash = '\0';
            policy = slash ? policy_dir : ".";
        }
    }
    exh_policy *p = load_policy(c, policy);
    free(policy_dir);
    if (!p) return EXIT_USAGE;
    run r = {.p = p, .ctx = exh_evalctx_new(), .json = json};
    if (!r.ctx) {
        exh_policy_free(p);
        return EXIT_USAGE;
    }
    int broken = 0;
    size_t n = 0;
    if (is_dir) {
        char **files = test_files(target, &n);
        if (!files) {
            fprintf(stderr, "%s: error: cannot read directory\n", target);
            broken = 1;
        }
        for (size_t i = 0; files && i < n; i++) {
            broken |= run_file(&r, files[i]) < 0;
            free(files[i]);
        }
        free(files);
        if (files && n == 0) {
            fprintf(stderr, "%s: error: no *.test files\n", target);
            broken = 1;
        }
    } else {
        broken |= run_file(&r, target) < 0;
    }
    if (json)
        printf("{\"passed\":%u,\"failed\":%u}\n", r.passed, r.failed);
    else
        printf("%u passed, %u failed\n", r.passed, r.failed);
    exh_evalctx_free(r.ctx);
    exh_policy_free(p);
    if (broken) return EXIT_USAGE;
    return r.failed ? EXIT_DENY : 0;
}
