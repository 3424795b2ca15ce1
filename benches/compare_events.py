#!/usr/bin/env python3
"""Compare the sound events of two runs: hark's `--print json` output and the peer's
(scripts/peer_pipeline.py). Only event_start / event_end records are read; an event is its
label, start and end (from event_end). Events match when the label is the same and both start
and end are within the tolerance. Prints a table and `events: hark N, peer M, matched K`;
exits 1 when the events differ.

Usage: compare_events.py HARK_JSONL PEER_JSONL [--tolerance SECONDS]
"""
import argparse
import json
import sys


def events(path):
    """(label, start, end, peak) of every ended event, in order of start."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("type") == "event_end":
                out.append((r["label"], r["start"], r["end"], r.get("peak")))
    return sorted(out, key=lambda e: (e[1], e[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hark")
    ap.add_argument("peer")
    ap.add_argument("--tolerance", type=float, default=0.5,
                    help="seconds start and end may differ (default: one hop, 0.5)")
    args = ap.parse_args()
    hark, peer = events(args.hark), events(args.peer)

    # Greedy: each hark event takes the closest unmatched peer event of the same label.
    unmatched = list(range(len(peer)))
    rows = []
    for h in hark:
        best = None
        for j in unmatched:
            p = peer[j]
            d = max(abs(p[1] - h[1]), abs(p[2] - h[2]))
            if p[0] == h[0] and d <= args.tolerance + 1e-9 and (best is None or d < best[0]):
                best = (d, j)
        if best is None:
            rows.append((h, None))
        else:
            unmatched.remove(best[1])
            rows.append((h, peer[best[1]]))
    rows += [(None, peer[j]) for j in unmatched]

    def fmt(e):
        return f"{e[1]:8.3f} {e[2]:8.3f} {e[3]:.3f}" if e else f"{'-':>8} {'-':>8} {'-':>5}"

    print(f"{'label':<32} {'hark start':>8} {'end':>8} {'peak':>5} | "
          f"{'peer start':>8} {'end':>8} {'peak':>5} | match")
    for h, p in rows:
        label = (h or p)[0]
        print(f"{label[:32]:<32} {fmt(h)} | {fmt(p)} | {'yes' if h and p else 'NO'}")
    matched = sum(1 for h, p in rows if h and p)
    print(f"events: hark {len(hark)}, peer {len(peer)}, matched {matched}")
    sys.exit(0 if matched == len(hark) == len(peer) else 1)


if __name__ == "__main__":
    main()
