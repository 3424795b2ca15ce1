#!/usr/bin/env python3
"""Checks the shape ARCHITECTURE.md promises, over src/:

1. no `crate::` dependency cycle between top-level modules;
2. no source file over 600 lines unless its first lines say why (a `//!` line containing
   "one piece");
3. no function over 80 lines unless a comment just above it says why ("one piece").

Exits 1 naming every violation. Run by scripts/test.sh.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
MAX_FILE, MAX_FN = 600, 80
REASON = "one piece"


def rust_files():
    for root, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".rs"):
                yield os.path.join(root, f)


def top_module(path):
    rel = os.path.relpath(path, SRC).split(os.sep)
    name = rel[0][:-3] if rel[0].endswith(".rs") else rel[0]
    return None if name in ("lib", "main") else name


def strip_strings_and_comments(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def module_edges():
    edges = {}
    for path in rust_files():
        me = top_module(path)
        if me is None:
            continue
        text = open(path, encoding="utf-8").read()
        # Unit tests may reach anywhere; only the code counts.
        text = text.split("#[cfg(test)]\nmod tests", 1)[0]
        for other in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text):
            if other != me:
                edges.setdefault(me, set()).add(other)
    return edges


def cycles(edges):
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def long_functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = strip_strings_and_comments(lines[j])
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            if started and depth <= 0:
                break
            j += 1
        length = j - i + 1
        above = "\n".join(lines[max(0, i - 4):i]).lower()
        if started and length > MAX_FN and REASON not in above:
            out.append(f"{os.path.relpath(path, SRC)}:{i + 1}: fn {m.group(6)} is {length} lines (max {MAX_FN}; say why in a comment above it containing \"{REASON}\")")
        i += 1
    return out


def main():
    problems = []
    for cycle in cycles(module_edges()):
        problems.append("module cycle: " + " -> ".join(cycle))
    for path in rust_files():
        lines = open(path, encoding="utf-8").read().split("\n")
        head = "\n".join(lines[:15]).lower()
        if len(lines) > MAX_FILE and REASON not in head:
            problems.append(f"{os.path.relpath(path, SRC)}: {len(lines)} lines (max {MAX_FILE}; say why in its //! header with \"{REASON}\")")
        problems.extend(long_functions(path))
    for p in problems:
        print(p)
    if problems:
        print(f"check-structure: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check-structure: no module cycles, no file over 600 lines, no function over 80 lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
