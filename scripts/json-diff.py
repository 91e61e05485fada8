#!/usr/bin/env python3
"""Prints the paths where two JSON documents differ (for scripts/interface-snapshot.sh output)."""
import json, sys

def walk(a, b, path, out):
    if type(a) is not type(b):
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")
    elif isinstance(a, dict):
        if list(a) != list(b) and set(a) == set(b):
            out.append(f"{path}: key order {list(a)[:8]} -> {list(b)[:8]}")
        for k in sorted(set(a) | set(b)):
            walk(a.get(k), b.get(k), f"{path}/{k}", out)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items -> {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")

out = []
walk(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), "", out)
print("\n".join(out) or "identical")
sys.exit(1 if out else 0)
