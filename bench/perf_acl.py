#!/usr/bin/env python3
"""Where a broker's ACL-check time goes, from a profile that
mosquitto_bench.sh PERF=PREFIX recorded:

    perf script -i PREFIX.exhook -F comm,tid,period,ip,sym,dso | bench/perf_acl.py
    perf script -i PREFIX.acl_file -F comm,tid,period,ip,sym,dso | bench/perf_acl.py '[unknown]'

Prints the share of all samples inside mosquitto_acl_check, split into
publish checks (called from handle__publish) and delivery checks (the
rest), the part of it inside the plugin's callback (on_acl_check, or the
frame named on the command line; the broker is stripped, so acl_file's own
functions show as [unknown]), and what that callback spends its time in:
its direct callees and the leaf functions."""
import collections
import sys


def samples(f):
    chain = []
    for line in f:
        line = line.rstrip("\n")
        if not line.strip():
            if chain:
                yield chain
            chain = []
        elif line.startswith(("\t", " ")):
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                chain.append(parts[1].rsplit(" (", 1)[0])  # leaf first
    if chain:
        yield chain


def main():
    cb = sys.argv[1] if len(sys.argv) > 1 else "on_acl_check"
    total = 0
    acl, plug = collections.Counter(), collections.Counter()
    below, leaf = collections.Counter(), collections.Counter()
    for ch in samples(sys.stdin):
        total += 1
        if "mosquitto_acl_check" not in ch:
            continue
        i = ch.index("mosquitto_acl_check")
        kind = "publish" if i + 1 < len(ch) and ch[i + 1] == "handle__publish" else "delivery"
        acl[kind] += 1
        if cb in ch[:i]:
            j = ch.index(cb)
            plug[kind] += 1
            below["(self)" if j == 0 else ch[j - 1]] += 1
            leaf[ch[0]] += 1
    if not total:
        sys.exit("no samples on stdin")

    def pct(n):
        return "%6.2f%%" % (100.0 * n / total)

    print("%d samples" % total)
    for k in ("publish", "delivery"):
        print("mosquitto_acl_check, %-8s checks %s   in %s %s" % (k, pct(acl[k]), cb, pct(plug[k])))
    print("%s calls:" % cb)
    for s, n in below.most_common(12):
        print("  %s  %s" % (pct(n), s))
    print("leaf functions under %s:" % cb)
    for s, n in leaf.most_common(12):
        print("  %s  %s" % (pct(n), s))


if __name__ == "__main__":
    main()
