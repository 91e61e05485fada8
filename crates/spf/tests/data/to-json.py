#!/usr/bin/env python3
"""Converts rfc7208-tests.yml (the openspf.org suite, release 2014.04, as shipped in pyspf 2.0.14)
to rfc7208-tests.json, which the gateway's conformance test reads (no YAML parser in the build).
TXT strings are kept as lists of byte values when they are not ASCII."""
import json, sys, yaml

def rr(value):
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return [rr(v) for v in value]
    return value

scenarios = []
with open("rfc7208-tests.yml", "rb") as f:
    for doc in yaml.safe_load_all(f):
        zone = {}
        for name, records in (doc.get("zonedata") or {}).items():
            zone[name] = []
            for r in records:
                if r == "TIMEOUT":
                    zone[name].append({"TIMEOUT": True})
                else:
                    zone[name].append({k: rr(v) for k, v in r.items()})
        scenarios.append({"description": doc["description"], "tests": doc["tests"], "zonedata": zone})
json.dump(scenarios, open("rfc7208-tests.json", "w"), indent=1, ensure_ascii=True)
print(len(scenarios), "scenarios,", sum(len(s["tests"]) for s in scenarios), "tests")
