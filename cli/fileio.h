/*
 * fileio.h -- editing policy files safely (whole-file reads are the
 * library's exh_read_file, src/readfile.h): atomic replacement, a per-directory edit lock and
 * unified diffs.
 *
 * Policy files are read by running front ends at any moment and edited by
 * people and scripts at the same time, so an edit is always: take the
 * directory's lock, read, change in memory, compile, write a temporary
 * file beside the original and rename it over.  A reader sees the old file
 * or the new one, never a mixture.
 */
#ifndef EXH_CLI_FILEIO_H
#define EXH_CLI_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Replace path with text atomically: a temporary file in the same
 * directory (named ".<name>.XXXXXX"), written, fsync'd, given the
 * original's mode and owner, renamed over the original, then the directory
 * fsync'd.  A symlink is followed: its target is replaced.  Returns 0, or
 * -1 after printing why (nothing is changed then). */
int write_atomic(const char *path, const char *text, size_t len);

/* Take the exclusive edit lock of the directory holding the policy `path`
 * (the directory itself when path is one): flock(2) on `.exhookctl.lock`
 * there, waiting for another exhookctl to finish.  Returns the descriptor
 * to pass to edit_unlock, or -1 after printing why. */
int edit_lock(const char *path);
void edit_unlock(int fd);

/* Is path a directory? */
bool is_dir(const char *path);

/* Do both paths name the same existing file (symlinks followed)? */
bool same_file(const char *a, const char *b);

/* Print a unified diff (3 lines of context) turning a into b, with `name`
 * on the ---/+++ lines; nothing when they are equal.  The changed lines
 * form one hunk (every edit here changes one region). */
void unified_diff(FILE *out, const char *name, const char *a, size_t alen, const char *b,
                  size_t blen);

/* Byte offset where 1-based line `line` starts; len when the text has
 * fewer lines. */
size_t line_offset(const char *text, size_t len, unsigned line);

/* 1-based line number of byte offset off. */
unsigned line_at(const char *text, size_t off);

#endif
