#!/usr/bin/env python3
"""Sizes in src/ (issue "One definition for every fact", item 6): no file over 600 lines
of non-test code, no function over 80 lines. Non-test code is a file's text before its
first `#[cfg(test)]`; a function runs from its `fn` line to its closing brace. What is
over today is listed in KNOWN with its size: a new entry fails, a listed one that grew
fails, and a listed one that is now within the limit fails until it is deleted from the
list, so the list only shrinks. `--report` prints every entry over the limits, largest
first. Run by .ci/run."""

import os
import re
import sys

FILE_LIMIT = 600
FN_LIMIT = 80

# What is over the limits today: "path" (a file) or "path::fn" -> lines.
KNOWN = {}

FN_START = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
                      r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip(line, state):
    """The line without string, char and comment contents; state carries a block comment
    or a raw/plain string that spans lines."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            state["block"] = False
            i = end + 2
            continue
        if state["string"] is not None:
            close = state["string"]
            if close == '"':
                while i < n:
                    if line[i] == "\\":
                        i += 2
                        continue
                    if line[i] == '"':
                        break
                    i += 1
                if i >= n:
                    return "".join(out)
                i += 1
            else:
                end = line.find(close, i)
                if end < 0:
                    return "".join(out)
                i = end + len(close)
            state["string"] = None
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        raw = re.match(r'b?r(#*)"', line[i:])
        if raw and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["string"] = '"' + raw.group(1)
            i += raw.end()
            continue
        if c == '"':
            state["string"] = '"'
            i += 1
            continue
        if c == "'":
            lit = re.match(r"'(\\.|[^\\'])'", line[i:])
            if lit:
                i += lit.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def measure(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    code = text if cut < 0 else text[:cut]
    lines = code.splitlines()
    sizes = {"": len(lines)}
    state = {"block": False, "string": None}
    stack = []  # (name, start line, depth at which the body opened)
    depth = 0
    pending = None
    for number, line in enumerate(lines, 1):
        clean = strip(line, state)
        start = FN_START.match(clean)
        if start:
            pending = (start.group(1), number)
        for c in clean:
            if c == "{":
                depth += 1
                if pending:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
            elif c == "}":
                if stack and stack[-1][2] == depth:
                    name, first, _ = stack.pop()
                    key = name
                    while key in sizes:
                        key += "'"
                    sizes[key] = number - first + 1
                depth -= 1
            elif c == ";" and pending:
                pending = None  # a declaration without a body
    return sizes


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    over = {}
    for folder, _, files in os.walk(os.path.join(root, "src")):
        for name in sorted(files):
            if not name.endswith(".rs") or name == "tests.rs":
                continue  # tests.rs: a test module in a file of its own
            path = os.path.join(folder, name)
            shown = os.path.relpath(path, root)
            for key, size in measure(path).items():
                limit = FILE_LIMIT if key == "" else FN_LIMIT
                if size > limit:
                    over[shown if key == "" else f"{shown}::{key}"] = size
    if "--report" in sys.argv:
        for key, size in sorted(over.items(), key=lambda kv: -kv[1]):
            print(f"{size:5} {key}")
        return 0
    problems = []
    for key, size in sorted(over.items()):
        known = KNOWN.get(key)
        if known is None:
            problems.append(f"{key}: {size} lines (limit {FILE_LIMIT if '::' not in key else FN_LIMIT}); split it")
        elif size > known:
            problems.append(f"{key}: grew from {known} to {size} lines; split it instead")
    for key in sorted(set(KNOWN) - set(over)):
        problems.append(f"{key}: now within the limit; delete it from KNOWN in scripts/check-sizes.py")
    for problem in problems:
        print(f"check-sizes: {problem}", file=sys.stderr)
    if not problems:
        print(f"check-sizes: ok ({len(KNOWN)} known entries over the limits, the list only shrinks)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
