/*
 * test_readfile.c -- the one whole-file reader (src/readfile.c): what it
 * reads, what it refuses, and that every refusal names the file and says
 * why in the caller's words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "readfile.h"

static char dir[] = "/tmp/exh_readfile_XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static const char *write_file(const char *name, const char *data, size_t n)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return p;
}

static void test_reads_whole_file_with_nul(void **state)
{
    (void)state;
    const char *p = write_file("a", "ab\0cd", 5);
    char *text;
    size_t len;
    exh_error err;
    assert_int_equal(exh_read_file(p, EXH_READ_REGULAR, 100, NULL, &text, &len, &err), EXH_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(text, "ab\0cd", 6); /* NUL-terminated */
    free(text);
}

static void test_empty_file(void **state)
{
    (void)state;
    const char *p = write_file("empty", "", 0);
    char *text;
    size_t len = 99;
    assert_int_equal(exh_read_file(p, EXH_READ_REGULAR, 100, NULL, &text, &len, NULL), EXH_OK);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
}

static void test_missing_file_names_path_and_errno(void **state)
{
    (void)state;
    const char *p = path_of("no-such-file");
    char *text = (char *)"x";
    size_t len;
    exh_error err;
    assert_int_equal(exh_read_file(p, EXH_READ_ANY, 100, "cannot import", &text, &len, &err),
                     EXH_EIO);
    assert_null(text);
    assert_int_equal(err.status, EXH_EIO);
    assert_string_equal(err.file, p);
    assert_string_equal(err.message, "cannot import: No such file or directory");
}

static void test_directory_refused(void **state)
{
    (void)state;
    char *text;
    size_t len;
    exh_error err;
    assert_int_equal(exh_read_file(dir, EXH_READ_ANY, 100, NULL, &text, &len, &err), EXH_EIO);
    assert_string_equal(err.file, dir);
    assert_string_equal(err.message, "cannot read: is a directory");
}

/* At the cap is fine, one byte over is refused unread. */
static void test_size_cap(void **state)
{
    (void)state;
    const char *p = write_file("ten", "0123456789", 10);
    char *text;
    size_t len;
    exh_error err;
    assert_int_equal(exh_read_file(p, EXH_READ_REGULAR, 10, NULL, &text, &len, &err), EXH_OK);
    assert_int_equal(len, 10);
    free(text);
    assert_int_equal(exh_read_file(p, EXH_READ_REGULAR, 9, "cannot read policy", &text, &len, &err),
                     EXH_EINVAL);
    assert_null(text);
    assert_string_equal(err.message, "cannot read policy: larger than 9 bytes (the limit)");
    assert_int_equal(exh_read_file(p, EXH_READ_REGULAR, (size_t)1 << 20, NULL, &text, &len, &err),
                     EXH_OK);
    free(text);
}

/* A device that never ends is bounded by the cap when devices are allowed,
 * and refused outright when only a regular file will do. */
static void test_endless_device(void **state)
{
    (void)state;
    char *text;
    size_t len;
    exh_error err;
    assert_int_equal(
        exh_read_file("/dev/zero", EXH_READ_ANY, (size_t)1 << 20, NULL, &text, &len, &err),
        EXH_EINVAL);
    assert_null(text);
    assert_string_equal(err.message, "cannot read: larger than 1 MiB (the limit)");
    assert_int_equal(exh_read_file("/dev/zero", EXH_READ_REGULAR, 100, NULL, &text, &len, &err),
                     EXH_EIO);
    assert_string_equal(err.message, "cannot read: not a regular file");
    assert_int_equal(exh_read_file("/dev/zero", EXH_READ_OR_FIFO, 100, NULL, &text, &len, &err),
                     EXH_EIO);
    assert_string_equal(err.message, "cannot read: not a regular file");
}

/* A FIFO without a writer: refused at once (no hang) for a regular-only
 * read; read to EOF when FIFOs are wanted. */
static void test_fifo(void **state)
{
    (void)state;
    const char *p = path_of("fifo");
    char fifo[256];
    snprintf(fifo, sizeof(fifo), "%s", p);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char *text;
    size_t len;
    exh_error err;
    assert_int_equal(exh_read_file(fifo, EXH_READ_REGULAR, 100, NULL, &text, &len, &err), EXH_EIO);
    assert_string_equal(err.message, "cannot read: not a regular file");

    /* Longer than the 64 KiB a pipe's buffer starts at, so it grows. */
    enum { N = 200000 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = fopen(fifo, "wb");
        if (!f) _exit(1);
        for (int i = 0; i < N; i++)
            fputc('a' + i % 26, f);
        _exit(fclose(f) == 0 ? 0 : 1);
    }
    exh_status st = exh_read_file(fifo, EXH_READ_OR_FIFO, 1 << 20, NULL, &text, &len, &err);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_int_equal(st, EXH_OK);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(len, N);
    for (size_t i = 0; i < len; i++)
        if (text[i] != 'a' + (char)(i % 26)) fail_msg("byte %zu differs", i);
    assert_int_equal(text[len], '\0');
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_whole_file_with_nul),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_missing_file_names_path_and_errno),
        cmocka_unit_test(test_directory_refused),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_endless_device),
        cmocka_unit_test(test_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
