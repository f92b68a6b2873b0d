#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' from meson test logs.

Usage: summary.py TESTLOG.json [TESTLOG.json ...]
Each file is meson's testlog.json (one JSON object per test). With several
files the counts are added, so CI can sum the normal and sanitizer runs.
"""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
    except OSError as e:
        print(f"summary: {path}: {e}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        result = json.loads(line).get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
