#!/usr/bin/python3
"""promcheck -- a Prometheus text exposition (format 0.0.4) checked line by
line, then parsed with Debian's python3-prometheus-client.

As a module: check(text) -> (samples, errors); samples maps
'name{label="v",...}' (labels sorted) to a float.
As a program: promcheck.py FILE [QUERY...] prints each QUERY's value (or
'missing'), one a line; exit status 1 with the errors on stderr when the
text breaks the format.

The line grammar (https://prometheus.io/docs/instrumenting/exposition_formats/):
  # HELP name docstring          (at most once per family, before its samples)
  # TYPE name counter|gauge|histogram|summary|untyped   (once, before its samples)
  name{label="value",...} value [timestamp]
Label values escape \\, \" and \\n; values are floats, +Inf, -Inf or NaN.  A
histogram's _bucket samples are cumulative, end with le="+Inf", and that
bucket equals _count.
"""
import re
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r'(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)|[+-]Inf|NaN)'
SAMPLE = re.compile(rf'^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?,?\}})? ({VALUE})(?: -?[0-9]+)?$')
HELP = re.compile(rf'^# HELP ({NAME}) (.*)$')
TYPE = re.compile(rf'^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def key(name, labels):
    return name + '{' + ','.join(f'{k}="{v}"' for k, v in sorted(labels.items())) + '}'


def family_of(name, types):
    for suffix in ('_bucket', '_sum', '_count'):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
            return name[:-len(suffix)]
    return name


def check(text):
    errors, samples, types, helps, seen = [], {}, {}, set(), set()
    if not text.endswith('\n'):
        errors.append('the text does not end with a newline')
    buckets = {}
    for n, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('#'):
            m = HELP.match(line) or TYPE.match(line)
            if not m:
                if line.startswith('# HELP') or line.startswith('# TYPE'):
                    errors.append(f'line {n}: malformed: {line!r}')
                continue
            fam = m.group(1)
            if fam in seen:
                errors.append(f'line {n}: {line.split()[1]} for {fam} after its samples')
            if line.startswith('# TYPE'):
                if fam in types:
                    errors.append(f'line {n}: a second TYPE for {fam}')
                types[fam] = m.group(2)
            else:
                if fam in helps:
                    errors.append(f'line {n}: a second HELP for {fam}')
                helps.add(fam)
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append(f'line {n}: not a sample: {line!r}')
            continue
        name, labels = m.group(1), dict(LABEL_RE.findall(m.group(2) or ''))
        fam = family_of(name, types)
        if fam not in types:
            errors.append(f'line {n}: {name} has no TYPE before it')
        seen.add(fam)
        k = key(name, labels)
        if k in samples:
            errors.append(f'line {n}: {k} given twice')
        samples[k] = float(m.group(3))
        if types.get(fam) == 'counter' and samples[k] < 0:
            errors.append(f'line {n}: a negative counter')
        if name.endswith('_bucket') and types.get(fam) == 'histogram':
            rest = {a: b for a, b in labels.items() if a != 'le'}
            buckets.setdefault(key(fam, rest), []).append((labels.get('le'), samples[k]))
    for fk, bs in buckets.items():
        counts = [c for _, c in bs]
        if counts != sorted(counts):
            errors.append(f'{fk}: buckets not cumulative: {bs}')
        if bs[-1][0] != '+Inf':
            errors.append(f'{fk}: the last bucket is not le="+Inf"')
        fam, _, rest = fk.partition('{')
        cnt = samples.get(fam + '_count{' + rest)
        if cnt is None or cnt != bs[-1][1]:
            errors.append(f'{fk}: +Inf bucket {bs[-1][1]} != _count {cnt}')
    # The reference parser must agree on every sample.
    try:
        from prometheus_client.parser import text_string_to_metric_families
        parsed = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                parsed[key(s.name, s.labels)] = s.value
        if parsed != samples:
            diff = set(parsed.items()) ^ set(samples.items())
            errors.append(f'prometheus_client reads it otherwise: {sorted(diff)[:5]}')
    except ImportError:
        errors.append('python3-prometheus-client is not installed')
    except Exception as e:  # the reference parser refused the text
        errors.append(f'prometheus_client: {e}')
    return samples, errors


def main():
    text = open(sys.argv[1], encoding='utf-8').read()
    samples, errors = check(text)
    for e in errors:
        print(e, file=sys.stderr)
    for q in sys.argv[2:]:
        v = samples.get(q)
        print('missing' if v is None else (int(v) if v == int(v) else v))
    sys.exit(1 if errors else 0)


if __name__ == '__main__':
    main()
