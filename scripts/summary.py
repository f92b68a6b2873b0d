#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' from meson test logs, counting test
cases, not test programs: the cases of every cmocka program and of every
pytest run inside a meson test are counted one by one. Every skip is listed
with its reason. With CI=true a skip is a promise not kept: the summary then
exits 1 (the counts stay as they are).

Usage: summary.py TESTLOG.json|NAME=EXIT [...]
Each file is meson's testlog.json (one JSON object per test). With several
files the counts are added, so CI can sum the normal and sanitizer runs.
NAME=EXIT counts a run outside meson (the soak, the fuzzers) as one test:
passed when EXIT is 0, failed otherwise; a failed one is named.
"""
import json
import os
import re
import sys

CMOCKA = re.compile(r"^\[  (PASSED|FAILED|SKIPPED) \] (\d+) test\(s\)", re.M)
PYTEST_LAST = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", re.M)
PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")
PYTEST_SKIP = re.compile(r"^SKIPPED \[\d+\] (.*)$", re.M)


def cases(test):
    """(passed, failed, skipped, skip reasons) of one meson test."""
    out = test.get("stdout") or ""
    result = test.get("result")
    name = test.get("name", "?")
    passed = failed = skipped = 0
    reasons = []
    found = False
    for kind, n in CMOCKA.findall(out):
        found = True
        if kind == "PASSED":
            passed += int(n)
        elif kind == "FAILED":
            failed += int(n)
        else:
            skipped += int(n)
            reasons.append("%s: %s cmocka case(s) skipped" % (name, n))
    if not found:
        last = PYTEST_LAST.findall(out)
        if last:
            found = True
            for n, kind in PYTEST_COUNT.findall(last[-1]):
                if kind == "passed" or kind == "xfailed":
                    passed += int(n)
                elif kind == "skipped":
                    skipped += int(n)
                elif kind != "deselected":
                    failed += int(n)
            reasons += ["%s: %s" % (name, r) for r in PYTEST_SKIP.findall(out)]
            if skipped > len(reasons):
                reasons.append("%s: %d case(s) skipped (run pytest with -rs for why)"
                               % (name, skipped - len(reasons)))
    if not found:
        if result in ("OK", "EXPECTEDFAIL"):
            passed = 1
        elif result == "SKIP":
            skipped = 1
            tail = out.strip().splitlines()[-1:] or ["no reason printed"]
            reasons.append("%s: %s" % (name, tail[0]))
        else:
            failed = 1
    # A program that failed after its cases (a sanitizer at exit, a crash)
    # still failed.
    if result not in ("OK", "EXPECTEDFAIL", "SKIP") and failed == 0:
        failed = 1
    return passed, failed, skipped, reasons


def main(args):
    passed = failed = skipped = 0
    reasons = []
    for path in args:
        name, eq, code = path.partition("=")
        if eq and code.lstrip("-").isdigit():
            if int(code) == 0:
                passed += 1
            else:
                failed += 1
                print(f"summary: {name} failed (exit {code})", file=sys.stderr)
            continue
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line for line in f if line.strip()]
        except OSError as e:
            print(f"summary: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        for line in lines:
            p, f_, s, r = cases(json.loads(line))
            passed += p
            failed += f_
            skipped += s
            reasons += r
    strict = os.environ.get("CI") == "true"
    for r in reasons:
        print(("skipped in CI, which fails the run: " if strict else "skipped: ") + r)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if strict and skipped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
