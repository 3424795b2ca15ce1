#!/usr/bin/env python3
"""A/B: CPU time of two hark binaries on the same input, in interleaved rounds.

Runs `BIN run --fast --input FILE --exit-at-end --print none --no-socket` for A and B in
alternation (A B B A A B ...), each pinned to one core with taskset, and reports each
binary's median CPU seconds (user + system, from the kernel's accounting of the child) and
the ratio B / A. Used to check that a refactor did not cost CPU (BENCHMARKS.md).

    python3 benches/ab.py OLD/target/release/hark target/release/hark FILE [--rounds 5]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys


def cpu_seconds(binary, path, core, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["taskset", "-c", str(core), binary, "run", "--fast", "--input", path,
           "--exit-at-end", "--print", "none", "--no-socket"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
    subprocess.run(cmd, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--core", type=int, default=1)
    args = ap.parse_args()
    runs = {"a": [], "b": []}
    # Each binary runs from its own checkout, so it finds its own models/ and third_party/.
    cwd = {k: os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(getattr(args, k)))))
           for k in "ab"}
    for r in range(args.rounds):
        order = "ab" if r % 2 == 0 else "ba"
        for k in order:
            runs[k].append(cpu_seconds(os.path.abspath(getattr(args, k)), os.path.abspath(args.file),
                                       args.core, cwd[k]))
        print(f"round {r + 1}: a {runs['a'][-1]:.2f} s, b {runs['b'][-1]:.2f} s", file=sys.stderr)
    a, b = statistics.median(runs["a"]), statistics.median(runs["b"])
    ratios = [y / x for x, y in zip(runs["a"], runs["b"])]
    print(f"A {args.a}: median {a:.2f} CPU s over {args.rounds} rounds {[round(x, 2) for x in runs['a']]}")
    print(f"B {args.b}: median {b:.2f} CPU s over {args.rounds} rounds {[round(x, 2) for x in runs['b']]}")
    print(f"B / A: {b / a:.3f} (per round {min(ratios):.3f} to {max(ratios):.3f})")


if __name__ == "__main__":
    main()
