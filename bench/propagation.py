#!/usr/bin/env python3
"""How long a directory change made on one node takes to be enforced on another.

Two gateway processes on one fresh PostgreSQL database (127.0.0.1:5432, trust auth). Each round
turns reject direct send on or off through node A's admin API, then probes node B over SMTP
(MAIL FROM:<ceo@contoso.com>, RCPT TO:<bob@contoso.com>, RSET on one connection, as fast as
they answer) until B answers as the new setting says. The time from A's answer to B's first
answer under the new setting is one sample; min/median/max are printed.

Usage: bench/propagation.py [-n ROUNDS] [--bin PATH]
       (default binary: target/release/portcullis, else target/debug/portcullis)
"""

import argparse
import os
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = "postgres://postgres@127.0.0.1:5432"


def binary(given):
    if given:
        return given
    for kind in ("release", "debug"):
        path = os.path.join(ROOT, "target", kind, "portcullis")
        if os.path.exists(path):
            return path
    sys.exit("no portcullis binary: cargo build --release first")


def start(bin_path, workdir, name, db):
    data = os.path.join(workdir, name)
    os.makedirs(data)
    config = os.path.join(workdir, f"{name}.toml")
    with open(config, "w") as f:
        f.write(f'[storage]\nurl = "{PG}/{db}"\n[node]\nname = "{name}"\n[auth]\nenabled = false\n')
    proc = subprocess.Popen(
        [bin_path, "--data-dir", data, "serve", "--config", config,
         "--smtp-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"SMTP on ([\d.]+):(\d+), admin API on (http://[\d.:]+)", line)
    if not m:
        proc.kill()
        sys.exit(f"{name} did not start: {line!r}")
    return proc, (m.group(1), int(m.group(2))), m.group(3), data


def cli(bin_path, server, data, *args):
    subprocess.run([bin_path, "--server", server, "--data-dir", data, *args],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--bin")
    a = ap.parse_args()
    bin_path = binary(a.bin)
    db = f"portcullis_propagation{os.getpid()}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {db}"],
                   check=True, stdout=subprocess.DEVNULL)
    workdir = tempfile.mkdtemp()
    procs = []
    try:
        pa, _, api_a, data_a = start(bin_path, workdir, "node-a", db)
        procs.append(pa)
        pb, smtp_b, _, _ = start(bin_path, workdir, "node-b", db)
        procs.append(pb)
        cli(bin_path, api_a, data_a, "tenant", "add", "contoso")
        cli(bin_path, api_a, data_a, "domain", "add", "contoso.com", "--tenant", "contoso")
        probe = smtplib.SMTP(*smtp_b)
        probe.ehlo("bench.example")

        def refused():
            probe.mail("ceo@contoso.com")
            code, _ = probe.rcpt("bob@contoso.com")
            probe.rset()
            return code == 550

        samples = []
        for i in range(a.n):
            mode = "on" if i % 2 == 0 else "off"
            cli(bin_path, api_a, data_a, "org", "set", "--tenant", "contoso",
                "--reject-direct-send", mode)
            answered = time.perf_counter()
            while refused() != (mode == "on"):
                if time.perf_counter() - answered > 5:
                    sys.exit(f"round {i}: node B did not apply {mode} within 5 s")
            samples.append((time.perf_counter() - answered) * 1000)
        probe.quit()
        print(f"binary: {bin_path}")
        print(f"rounds: {a.n} (reject direct send toggled on node A, enforced on node B)")
        print("ms from A's answer to B enforcing: min {:.1f}  median {:.1f}  max {:.1f}".format(
            min(samples), statistics.median(samples), max(samples)))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
