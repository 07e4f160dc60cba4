"""prom.py - checks a Prometheus text exposition and prints its samples.

Usage: python3 tests/prom.py FILE PREFIX [NAME...]
Every sample has a # TYPE (histograms through their _bucket, _sum and
_count), every value is a number, every name starts with PREFIX, each
NAME has a # TYPE, and every histogram's buckets never fall and end
(le="+Inf") with its count. Prints name{labels}=value lines; exits
non-zero (an assertion) when the exposition breaks a rule.
"""
import re
import sys

path, prefix, required = sys.argv[1], sys.argv[2], sys.argv[3:]
types, samples = {}, {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        assert kind in ("counter", "gauge", "histogram"), line
        assert name not in types, "two # TYPE lines for " + name
        types[name] = kind
        continue
    if line.startswith("# HELP ") or not line:
        continue
    m = sample.match(line)
    assert m, "not a sample: " + line
    name, labels, value = m.groups()
    base = re.sub(r'_(bucket|sum|count)$', '', name)
    assert name in types or (base in types and types[base] == "histogram"), \
        "no # TYPE for " + line
    assert name.startswith(prefix), line
    samples[name + (labels or "")] = float(value)
    print("%s%s=%s" % (name, labels or "", value))
for name in required:
    assert name in types, "missing " + name
# Histograms: per label set (le left out), buckets never fall and +Inf
# is the count.
for name, kind in types.items():
    if kind != "histogram":
        continue
    prev = {}
    for key, v in samples.items():
        m = re.match(re.escape(name) + r'_bucket\{(.*)\}$', key)
        if not m:
            continue
        rest = ",".join(p for p in m.group(1).split(",") if not p.startswith("le="))
        assert v >= prev.get(rest, 0), "buckets fall: " + key
        prev[rest] = v
        if 'le="+Inf"' in m.group(1):
            count = name + "_count" + ("{" + rest + "}" if rest else "")
            assert samples.get(count) == v, "+Inf is not the count: " + key
