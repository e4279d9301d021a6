/*
 * fuzz_import.c -- libFuzzer target for the user import parsers.
 *
 * The first input byte chooses the format (mosquitto-passwd, emqx-csv,
 * emqx-json: (byte & 3) % 3) and the options (bit 2: EMQX SHA-512 instead of
 * SHA-256; bit 3: salt as suffix; bit 4: stop after the first record);
 * the rest is the file text, passed without a terminating NUL so ASan
 * sees any overread.  Every record handed out must have a name and a hash
 * string exh_hash_identify knows; a failure must come with a message.
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/error.h"
#include "exhook/hash.h"
#include "exhook/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_import: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

typedef struct seen {
    unsigned records, last_line;
    bool stop_first;
} seen;

static int on_record(const exh_import_record *rec, void *user)
{
    seen *s = user;
    CHECK(rec != NULL);
    CHECK(rec->name != NULL && rec->hash != NULL);
    CHECK(rec->name[0] != '\0');
    CHECK(strlen(rec->hash) < EXH_HASH_MAX);
    if (exh_hash_identify(rec->hash) == EXH_HASH_UNKNOWN) {
        fprintf(stderr, "fuzz_import: record for \"%s\" (line %u) has an unknown hash \"%s\"\n",
                rec->name, rec->line, rec->hash);
        __builtin_trap();
    }
    CHECK(rec->line >= 1);
    CHECK(rec->line >= s->last_line); /* records come in file order */
    s->last_line = rec->line;
    s->records++;
    return s->stop_first;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    static const exh_import_format fmts[] = {EXH_IMPORT_MOSQUITTO, EXH_IMPORT_EMQX_CSV,
                                             EXH_IMPORT_EMQX_JSON};
    uint8_t sel = data[0];
    exh_import_opts opts;
    exh_import_opts_default(&opts);
    if (sel & 4) opts.emqx_alg = EXH_HASH_EMQX_SHA512;
    if (sel & 8) opts.emqx_salt_prefix = false;
    seen s = {0, 0, (sel & 16) != 0};

    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    CHECK(text != NULL);
    if (len) memcpy(text, data + 1, len);

    exh_error err;
    memset(&err, 0xA5, sizeof(err)); /* every field read on failure must be written */
    exh_status st =
        exh_import_parse(fmts[(sel & 3) % 3], "fuzz.import", text, len, &opts, on_record, &s, &err);
    if (st != EXH_OK) {
        CHECK(err.status == st);
        CHECK(err.message[0] != '\0');
        CHECK(exh_status_str(st) != NULL);
        char buf[2048];
        size_t need = exh_error_format(&err, buf, sizeof(buf));
        CHECK(need > 0);
    }
    if (s.stop_first) CHECK(s.records <= 1);
    free(text);
    return 0;
}
