/*
 * import -- bring users over from Mosquitto or EMQX with their hashes, so
 * their passwords keep working.
 */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exhook/import.h"

static const char import_help[] =
    "usage: exhookctl import FORMAT FILE [--emqx-hash sha256|sha512]\n"
    "                        [--emqx-salt prefix|suffix] [--replace]\n"
    "\n"
    "Import users with their password hashes, in one transaction: a malformed\n"
    "record is reported as FILE:LINE and nothing of the file is stored.\n"
    "\n"
    "FORMAT:\n"
    "  mosquitto-passwd  'user:hash' lines from mosquitto_passwd ($7$ and $6$\n"
    "                    hashes are kept as they are)\n"
    "  emqx-csv          EMQX built-in database export: a header naming user_id\n"
    "                    and password_hash (optionally salt, is_superuser)\n"
    "  emqx-json         the same as a JSON array of objects\n"
    "\n"
    "  --emqx-hash H     EMQX's password_hash_algorithm: sha256 (default) or sha512\n"
    "  --emqx-salt P     where EMQX put the salt: prefix (default) or suffix\n"
    "  --replace         replace existing users instead of failing on them\n"
    "\n"
    "Progress goes to stderr for large files.  Exit status: 0 imported, 1 a user\n"
    "exists (without --replace), 2 usage, malformed file or store error.\n";

typedef struct import_args {
    const char *format, *file;
    exh_import_format fmt;
    exh_import_opts opts;
    bool emqx_option; /* an --emqx-* option was given */
} import_args;

static int scan_emqx(cli *c, args *a, import_args *x, bool *bad)
{
    if (arg_value(a, "--emqx-hash", bad)) {
        if (*bad) return EXIT_USAGE;
        if (!strcmp(a->val, "sha256"))
            x->opts.emqx_alg = EXH_HASH_EMQX_SHA256;
        else if (!strcmp(a->val, "sha512"))
            x->opts.emqx_alg = EXH_HASH_EMQX_SHA512;
        else
            return usage_error(c, "import", "--emqx-hash takes sha256 or sha512, not '%s'", a->val);
    } else if (arg_value(a, "--emqx-salt", bad)) {
        if (*bad) return EXIT_USAGE;
        if (!strcmp(a->val, "prefix"))
            x->opts.emqx_salt_prefix = true;
        else if (!strcmp(a->val, "suffix"))
            x->opts.emqx_salt_prefix = false;
        else
            return usage_error(c, "import", "--emqx-salt takes prefix or suffix, not '%s'", a->val);
    } else {
        return 1;
    }
    x->emqx_option = true;
    return 0;
}

static int scan_import(cli *c, int argc, char **argv, import_args *x)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(import_help, stdout);
            return -1;
        }
        int rc = scan_emqx(c, &a, x, &bad);
        if (rc != 1) {
            if (rc) return rc;
        } else if (arg_flag(&a, "--replace")) {
            x->opts.replace = true;
        } else if (argv[a.i][0] == '-' && argv[a.i][1] != '\0') {
            return usage_error(c, "import", "unknown option '%s'", argv[a.i]);
        } else if (!x->format) {
            x->format = argv[a.i];
        } else if (!x->file) {
            x->file = argv[a.i];
        } else {
            return usage_error(c, "import", "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (!x->file) return usage_error(c, "import", "FORMAT and FILE are required");
    if (!exh_import_format_parse(x->format, &x->fmt))
        return usage_error(c, "import",
                           "unknown format '%s' (mosquitto-passwd, emqx-csv or emqx-json)",
                           x->format);
    if (x->emqx_option && x->fmt == EXH_IMPORT_MOSQUITTO)
        return usage_error(c, "import",
                           "--emqx-hash and --emqx-salt are for emqx-csv and "
                           "emqx-json");
    return 0;
}

/* Progress: rewritten in place on a terminal; in a log, a line per 10000
 * users so the log stays readable. */
typedef struct progress {
    bool tty, shown;
    size_t logged;
} progress;

static void show_progress(size_t done, void *user)
{
    progress *p = user;
    if (p->tty) {
        fprintf(stderr, "\rimported %zu users...", done);
        p->shown = true;
    } else if (done / 10000 > p->logged / 10000) {
        fprintf(stderr, "imported %zu users...\n", done);
        p->logged = done;
    }
}

int cmd_import(cli *c, int argc, char **argv)
{
    import_args x = {0};
    exh_import_opts_default(&x.opts);
    int rc = scan_import(c, argc, argv, &x);
    if (rc) return rc < 0 ? 0 : rc;
    exh_store *s = open_store(c, "import");
    if (!s) return EXIT_USAGE;
    progress p = {.tty = isatty(STDERR_FILENO) == 1};
    size_t imported = 0;
    exh_error err;
    exh_status st = exh_import_file(s, x.fmt, x.file, &x.opts, show_progress, &p, &imported, &err);
    if (p.shown) fputs("\r\033[K", stderr); /* clear the progress line */
    if (st) {
        print_error(&err);
        /* after "imported N users..." lines, say they were rolled back */
        if (p.logged || p.shown)
            fprintf(stderr, "%s: nothing was imported (an import is all or nothing)\n", x.file);
        rc = exit_for_status(st);
    } else {
        printf("imported %zu users from %s\n", imported, x.file);
    }
    exh_store_close(s);
    return rc;
}
