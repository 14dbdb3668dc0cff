#!/usr/bin/env python3
"""The layers of src/, lowest first, and the imports between them (`crate::X` in code
outside test modules). A module may import its own layer and lower ones. The backward
arrows the code still has are listed in KNOWN: a new one fails, and so does a listed one
that is gone (delete it from the list, so the list only shrinks). Also: no command module
imports another (`super::<command>` in src/commands/), and the arrows of BUILDERS: the
model is built from the config by `model` alone, never by a layer above that renders or
reads it (render may call no model builder, so no command gets `Desired` by rendering).
Run by .ci/run."""

import os
import re
import sys

LAYERS = [
    ["error"],
    ["printer"],
    ["project"],
    ["config"],
    ["model"],
    ["render", "plan", "schedule"],
    ["fsio"],
    ["engine", "audit", "import"],
    ["deploy", "notify"],
    ["commands"],
    ["cli"],
    ["lib", "main"],
]

# Backward arrows that exist today (issue "One definition for every fact", item 6).
KNOWN = {
    ("error", "printer"),
    ("project", "fsio"),
    ("config", "fsio"),
    ("render", "fsio"),
    ("commands", "cli"),
}

# The functions that build the model from a `Config`, and the layers that may call
# them: the model's own, and the glue that starts from a config (commands; deploy and
# engine take `Desired` or a release's saved state). `render` renders a `Desired` it is
# given: a builder called there is `Desired` built inside `render` again (issue 20).
BUILDERS = r"crate::model::(?:unsealed|desired|bundle_input|bundle_secrets|secrets)\b|model::(?:unsealed|desired|bundle_input|bundle_secrets)\("
NO_BUILDERS = {"render", "plan", "schedule", "fsio"}

# Modules in src/commands/ that are shared helpers, not commands.
SHARED = {"target"}

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def code(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    arrows = {}
    commands = {}
    problems = []
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top not in RANK:
                problems.append(f"{rel}: module `{top}` is in no layer of scripts/check-layers.py")
                continue
            text = code(path)
            if top in NO_BUILDERS:
                for match in re.finditer(BUILDERS, text):
                    problems.append(
                        f"{rel}: `{top}` builds the model (`{match.group(0)}`): take `Desired` "
                        "from `model::bundle_input` instead"
                    )
            for match in re.finditer(r"crate::(\w+)", text):
                target = match.group(1)
                if target != top and target in RANK:
                    arrows.setdefault((top, target), rel)
            parts = rel.split(os.sep)
            if top == "commands" and len(parts) > 1 and parts[1] != "mod.rs":
                command = parts[1].removesuffix(".rs")
                if command not in SHARED:
                    # `super::X` is a sibling command in commands/X.rs and
                    # commands/X/mod.rs; one level deeper it takes `super::super::X`.
                    depth = len(parts) - 2 - (1 if name == "mod.rs" else 0)
                    prefix = "super::" * (depth + 1)
                    commands.setdefault(command, []).append((rel, text, prefix))
    for (source, target), rel in sorted(arrows.items()):
        if RANK[target] > RANK[source] and (source, target) not in KNOWN:
            problems.append(f"{rel}: `{source}` imports `{target}`, a higher layer")
    for source, target in sorted(KNOWN - set(arrows)):
        problems.append(f"`{source}` no longer imports `{target}`: remove it from KNOWN")
    for name, files in sorted(commands.items()):
        for rel, text, prefix in files:
            pattern = r"(?<![\w:])(?:" + re.escape(prefix) + r"|crate::commands::)(\w+)"
            for match in re.finditer(pattern, text):
                if match.group(1) in commands and match.group(1) != name:
                    problems.append(f"{rel} imports the command `{match.group(1)}`")
    for problem in problems:
        print(f"check-layers: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check-layers: {len(arrows)} imports between layers, {len(KNOWN)} known backward")


if __name__ == "__main__":
    main()
