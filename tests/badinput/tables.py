#!/usr/bin/env python3
"""tables.py -- the exhookctl part of the bad-input suite: runs the tables
policy.tsv, cli.tsv, batch.tsv and import.tsv beside this file.

usage: tables.py EXHOOKCTL WORKDIR      (or: tables.py --dump DB)
(run by tests/badinput_test.sh, which made WORKDIR/exhook.db, WORKDIR/pol and
WORKDIR/fixtures).  Prints "ok    NAME" or "FAIL  NAME: why" per case and
"N passed, N failed" last; exit 1 on any failure.

Every case asserts three things: the outcome (exit status and a message
matching the row's regex, or the batch answer), that the process kept
serving (the batch's next line; the store still opens), and that nothing
stored changed: every row and the schema of the store, every byte of the policy
directory and the fixtures, and no file appeared where commands run.

Table fields (TAB-separated; '#' lines and blank lines are skipped):
  text fields  backslash escapes \\n \\t \\r \\0 \\xHH \\\\ (any other backslash
               is kept as written, so JSON's \\u0000 stays \\u0000), and
               @{rep N TEXT}  TEXT (escapes allowed, no '}') N times
               @{seq N TEXT}  TEXT N times, %d in it counting 1..N
               @{rand N SEED} N bytes of seeded pseudo-random noise
               @{db} @{pol} @{tmp} @{fix}  the store, policy dir, workdir,
                              fixtures dir;  @{empty}  an empty argument
  args         words split on spaces (write a space in a word as \\x20)
  regex        Python bytes regex, searched (re.M) in stderr, or in stdout
               with an "out:" prefix; @{file} @{db} @{pol} @{fix} @{tmp}
               stand for the escaped paths
"""
import hashlib
import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 120  # s for one command (ASan builds, 10 MB inputs)

if sys.argv[1] == "--dump":  # tables.py --dump DB: the store, for badinput_test.sh
    ctl, work = "exhookctl", os.path.dirname(os.path.abspath(sys.argv[2]))
else:
    ctl, work = sys.argv[1], os.path.abspath(sys.argv[2])
DB = os.path.join(work, "exhook.db")
POL = os.path.join(work, "pol")
FIX = os.path.join(work, "fixtures")
CWD = os.path.join(work, "cwd")  # commands run here; nothing may appear in it
PLACES = {"db": DB, "pol": POL, "tmp": work, "fix": FIX}

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok    " + name, flush=True)


def bad(name, why):
    global failed
    failed += 1
    print("FAIL  %s: %s" % (name, why), flush=True)


def short(b, n=300):
    s = b.decode("utf-8", "backslashreplace") if isinstance(b, bytes) else str(b)
    return s if len(s) <= n else s[:n] + "...(%d bytes)" % len(s)


# ---- the field language ---------------------------------------------------------

ESC = re.compile(rb"\\(x[0-9a-fA-F]{2}|[ntr0\\])")


def unescape(b):
    def one(m):
        c = m.group(1)
        if c[:1] == b"x":
            return bytes([int(c[1:], 16)])
        return {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"0": b"\0", b"\\": b"\\"}[c]

    return ESC.sub(one, b)


DIRECTIVE = re.compile(rb"@\{([^}]*)\}")


def expand(field, extra=None):
    """A table field as the bytes it stands for."""
    places = dict(PLACES, **(extra or {}))
    out, pos = [], 0
    b = field.encode()
    for m in DIRECTIVE.finditer(b):
        out.append(unescape(b[pos:m.start()]))
        words = m.group(1).split(b" ", 2)
        if words[0] == b"rep":
            out.append(unescape(words[2]) * int(words[1]))
        elif words[0] == b"seq":  # @{seq N TEXT}: TEXT N times, %d counting 1..N
            t = unescape(words[2])
            out.append(b"".join(t.replace(b"%d", b"%d" % i) for i in range(1, int(words[1]) + 1)))
        elif words[0] == b"rand":  # @{rand N SEED}: N bytes of seeded noise
            r = random.Random(int(words[2]))
            out.append(bytes(r.randrange(256) for _ in range(int(words[1]))))
        elif words[0] == b"empty":
            pass
        else:
            out.append(places[words[0].decode()].encode())
        pos = m.end()
    out.append(unescape(b[pos:]))
    return b"".join(out)


def split_args(field, extra=None):
    if field in ("", "-"):
        return []
    return [expand(w, extra) for w in re.findall(r"(?:@\{[^}]*\}|[^ ])+", field)]


def regex(field, extra=None):
    """(stream, compiled regex): stream is 'out' or 'err'."""
    stream = "err"
    if field.startswith("out:"):
        stream, field = "out", field[4:]
    places = dict(PLACES, **(extra or {}))
    b = field.encode()

    def sub(m):
        return re.escape(places[m.group(1).decode()].encode())

    return stream, re.compile(DIRECTIVE.sub(sub, b), re.M)


def rows(table, ncols):
    path = os.path.join(HERE, table)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != ncols:
                bad("%s:%d" % (table, lineno), "expected %d TAB-separated columns, found %d"
                    % (ncols, len(cols)))
                continue
            yield lineno, cols


# ---- running, and what must not change ----------------------------------------------

def run(args, stdin=b""):
    env = dict(os.environ)
    env.pop("EXHOOK_DB", None)
    env.pop("EXHOOK_POLICY", None)
    try:
        p = subprocess.run([ctl] + args, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=CWD, env=env, timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout after %d s" % TIMEOUT, e.stdout or b"", e.stderr or b""


def db_dump():
    try:
        import sqlite3
    except ImportError:  # python3 without its sqlite3 module: ask exhookctl
        st, out, err = run(["--db", DB, "list-users", "--json"])
        st2, out2, err2 = run(["--db", DB, "list-groups", "--json"])
        st3, out3, err3 = run(["--db", DB, "sessions", "--history", "--json"])
        return b"\n".join([out, out2, out3, err, err2, err3])
    # Every table's rows as bytes (a name need not be UTF-8: that is what
    # some cases try to store), the schema and the schema version.  The
    # lock-out counters' rows are left out: hostile logins that fail are
    # counted there, as they should be (their schema is still compared).
    con = sqlite3.connect("file:%s?mode=ro" % DB, uri=True)
    con.text_factory = bytes
    try:
        out = [repr(con.execute("PRAGMA user_version").fetchall())]
        for typ, name, sql in con.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall():
            out.append(repr((typ, name, sql)))
            if typ == b"table" and name != b"lockouts":
                rows = con.execute('SELECT * FROM "%s"' % name.decode()).fetchall()
                out.extend(sorted(repr(r) for r in rows))
        return "\n".join(out).encode()
    finally:
        con.close()


def tree(root):
    """Every file under root: path -> sha256 (or its kind, for a FIFO).  The
    editing commands' lock file (.exhookctl.lock, empty, flock(2)ed) may
    appear: it is how they exclude each other, not something stored."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            if n == ".exhookctl.lock" and os.path.getsize(p) == 0:
                continue
            if os.path.isdir(p) and not os.path.islink(p):
                out[p] = "dir"
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = "special"
    return out


def snapshot():
    return {"store": db_dump(), "policy": tree(POL), "fixtures": tree(FIX), "cwd": tree(CWD),
            "wal": sorted(n for n in os.listdir(work) if n.startswith("exhook.db"))}


BASELINE = None


def unchanged():
    """'' when nothing stored changed since the baseline, else what did."""
    global BASELINE
    now = snapshot()
    diffs = []
    for k in ("store", "policy", "fixtures", "cwd"):
        if now[k] != BASELINE[k]:
            if k == "store":
                a = set(BASELINE[k].split(b"\n"))
                b = set(now[k].split(b"\n"))
                diffs.append("the store changed: gone %s; new %s"
                             % (short(b"|".join(sorted(a - b)), 200),
                                short(b"|".join(sorted(b - a)), 200)))
            else:
                a, b = BASELINE[k], now[k]
                ch = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
                diffs.append("%s changed: %s" % (k, ", ".join(ch[:5])))
    if diffs:  # report a change once, at the case that made it
        BASELINE = now
    return "; ".join(diffs)


def sanitizer(err):
    return b"Sanitizer" in err or b"runtime error:" in err


# ---- policy.tsv: name, kind, text, exit, regex ----------------------------------------
#   kind file:  text is the whole policy file (case.policy)
#        dir:   text is files "NAME=TEXT" joined by "@@": a policy directory
#        path:  text is a path (may use @{fix}) given as --policy itself
#   Checked with `exhookctl --policy P check --action connect`: the exit
#   status, nothing on stdout, the error on stderr; a compile error that
#   names file:line:col also shows the line and a caret.

def policy_table():
    n = 0
    for lineno, (name, kind, text, want, rx) in rows("policy.tsv", 5):
        n += 1
        try:
            d = os.path.join(work, "policy-cases", "%03d" % n)
            os.makedirs(d)
            if kind == "file":
                target = os.path.join(d, "case.policy")
                with open(target, "wb") as f:
                    f.write(expand(text))
            elif kind == "dir":
                target = os.path.join(d, "p")
                os.mkdir(target)
                for part in text.split("@@"):
                    fname, _, body = part.partition("=")
                    with open(os.path.join(target, fname), "wb") as f:
                        f.write(expand(body))
            else:
                target = expand(text).decode()
            st, out, err = run(["--policy", target, "check", "--action", "connect"])
            _, r = regex(rx, {"file": target})
            why = []
            if str(st) != want:
                why.append("exit %s, want %s" % (st, want))
            if out:
                why.append("stdout not empty: %s" % short(out))
            if not r.search(err):
                why.append("stderr does not match /%s/" % short(r.pattern, 200))
            # the line and a caret under the column (a line too long to show
            # whole: a caret at the cut, naming the column)
            m = re.search(rb":(\d+):(\d+): error: .*\n(.*)\n( *)\^( \(column (\d+): past .*\))?$",
                          err, re.M)
            if re.search(rb":\d+:\d+: error:", err) and not m:
                why.append("no source line with a caret under the error")
            elif m and m.group(5) and m.group(6) != m.group(2):
                why.append("the caret names column %s, the error %s"
                           % (m.group(6).decode(), m.group(2).decode()))
            elif m and not m.group(5) and len(m.group(4)) + 1 != int(m.group(2)):
                why.append("caret at column %d, the error says %s"
                           % (len(m.group(4)) + 1, m.group(2).decode()))
            if sanitizer(err):
                why.append("sanitizer report")
            label = "policy %s" % name
            bad(label, "; ".join(why) + "; stderr: " + short(err)) if why else ok(label)
        except Exception as e:  # a broken case must not hide the rest
            bad("policy %s" % name, "the case crashed: %r" % e)
    return n


# ---- cli.tsv: name, stdin, args, exit, regex ---------------------------------------------

def cli_table():
    n = 0
    for lineno, (name, stdin, args, want, rx) in rows("cli.tsv", 5):
        n += 1
        try:
            st, out, err = run(split_args(args), b"" if stdin == "-" else expand(stdin))
            stream, r = regex(rx)
            why = []
            if str(st) != want:
                why.append("exit %s, want %s" % (st, want))
            if not r.search(out if stream == "out" else err):
                why.append("std%s does not match /%s/" % (stream, short(r.pattern, 200)))
            if sanitizer(err):
                why.append("sanitizer report")
            ch = unchanged()
            if ch:
                why.append(ch)
            label = "cli %s" % name
            if why:
                bad(label, "; ".join(why) + "; stdout: %s; stderr: %s" % (short(out), short(err)))
            else:
                ok(label)
        except Exception as e:  # a broken case must not hide the rest
            bad("cli %s" % name, "the case crashed: %r" % e)
    return n


# ---- batch.tsv: name, request line, answer regex ----------------------------------------
#   One `check --batch` run: each hostile line followed by a known-good line.
#   Each hostile line's answer is one JSON object that denies and matches the
#   regex; the good line after it is answered exactly right.

GOOD_REQ = b'{"action":"publish","username":"d-0a1b2c3d","clientid":"dev-0a1b2c3d","topic":"devices/0a1b2c3d/up/t"}'


def batch_table():
    # the good line's answer, alone: an allow by the devices rule
    st, good_ans, err = run(["--db", DB, "--policy", POL, "check", "--batch"], GOOD_REQ + b"\n")
    good_ans = good_ans.rstrip(b"\n")
    if st != 0 or not good_ans.startswith(b'{"decision":"allow","rule":"%s/20-devices.policy:'
                                          % POL.encode()):
        bad("batch: the good line alone is allowed by the devices rule", short(good_ans + err))
    cases = [(name, expand(line), rx) for _, (name, line, rx) in rows("batch.tsv", 3)]
    stdin = b"".join(line + b"\n" + GOOD_REQ + b"\n" for _, line, _ in cases)
    st, out, err = run(["--db", DB, "--policy", POL, "check", "--batch"], stdin)
    answers = out.split(b"\n")
    if answers and answers[-1] == b"":
        answers.pop()
    for i, (name, line, rx) in enumerate(cases):
        label = "batch %s" % name
        mine = answers[2 * i] if 2 * i < len(answers) else None
        good = answers[2 * i + 1] if 2 * i + 1 < len(answers) else None
        why = []
        try:
            j = json.loads(mine)
            if j.get("decision") != "deny":
                why.append("not a deny")
        except Exception:
            why.append("answer is not one JSON object")
        if mine is None or not regex(rx)[1].search(mine):
            why.append("answer does not match /%s/" % rx)
        if good != good_ans:
            why.append("the good line after it was answered %s" % short(good or b"nothing"))
        if why:
            bad(label, "; ".join(why) + "; answer: %s" % short(mine or b"none"))
        else:
            ok(label)
    label = "batch: %d answers for %d lines, exit status 2 (some lines invalid)" % (
        len(answers), 2 * len(cases))
    why = []
    if len(answers) != 2 * len(cases):
        why.append("%d answers" % len(answers))
    if st != 2:
        why.append("exit %s" % st)
    if sanitizer(err) or err.strip():
        why.append("stderr: %s" % short(err))
    ch = unchanged()
    if ch:
        why.append(ch)
    bad(label, "; ".join(why)) if why else ok(label)
    return len(cases)


# ---- import.tsv: name, format and options, file content, exit, regex ------------------------

def import_table():
    n = 0
    d = os.path.join(work, "import-cases")
    os.makedirs(d)
    for lineno, (name, fmt, content, want, rx) in rows("import.tsv", 5):
        n += 1
        try:
            words = fmt.split(" ")
            if content.startswith("path:"):
                path = expand(content[5:]).decode()
            else:
                ext = {"mosquitto-passwd": "txt", "emqx-csv": "csv"}.get(words[0], "json")
                path = os.path.join(d, "%03d.%s" % (n, ext))
                with open(path, "wb") as f:
                    f.write(expand(content))
            args = ["--db", DB, "import", words[0].encode(), path.encode()] + \
                [w.encode() for w in words[1:]]
            st, out, err = run(args)
            stream, r = regex(rx, {"file": path})
            why = []
            if str(st) != want:
                why.append("exit %s, want %s" % (st, want))
            if not r.search(out if stream == "out" else err):
                why.append("std%s does not match /%s/" % (stream, short(r.pattern, 200)))
            if sanitizer(err):
                why.append("sanitizer report")
            ch = unchanged()
            if ch:
                why.append(ch)
            label = "import %s" % name
            if why:
                bad(label, "; ".join(why) + "; stdout: %s; stderr: %s" % (short(out), short(err)))
            else:
                ok(label)
        except Exception as e:  # a broken case must not hide the rest
            bad("import %s" % name, "the case crashed: %r" % e)
    return n


def main():
    global BASELINE
    os.makedirs(CWD, exist_ok=True)
    BASELINE = snapshot()
    if b"CREATE TABLE" not in BASELINE["store"] or b"'acme:alice'" not in BASELINE["store"]:
        bad("baseline", "the store dump holds no users: %s" % short(BASELINE["store"]))
    counts = {}
    for cat, fn in (("policy", policy_table), ("cli", cli_table), ("batch", batch_table),
                    ("import", import_table)):
        try:
            counts[cat] = fn()
        except Exception as e:  # one broken table must not hide the others
            bad("%s table" % cat, "crashed: %r" % e)
    # still serving: the store opens and a good check answers as before
    st, out, err = run(["--db", DB, "--policy", POL, "check", "--action", "publish",
                        "--username", "acme:alice", "--topic", "tenants/acme/users/alice/todo"])
    label = "after every case: a good check is still allowed and the store reads"
    st2, out2, _ = run(["--db", DB, "show-user", "acme:alice"])
    if st == 0 and out.startswith(b"allow\n") and st2 == 0:
        ok(label)
    else:
        bad(label, "check: %s %s; show-user: %s" % (st, short(out + err), st2))
    print("# cases: " + ", ".join("%s %d" % kv for kv in counts.items()))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if sys.argv[1] == "--dump":
    DB = os.path.abspath(sys.argv[2])
    sys.stdout.buffer.write(db_dump() + b"\n")
else:
    main()
