#!/usr/bin/env python3
"""Fails when a layer of Sources/LBPool names a type declared in a layer above it.

The layers, lowest first (README "Layout", ARCHITECTURE.md). A file may use the types of its own
layer and of the layers below; a type of a layer above is a back-reference, which would keep the
layers from becoming separate targets. Types are found by their declarations
(`struct|class|enum|protocol|actor|typealias NAME`, nested ones under their outer type's name);
uses are the identifiers of the code, comments and string literals left out.

Usage: check-layers.py [SOURCES-DIR]   (default: Sources/LBPool next to this script)
"""
import os
import re
import sys

# Lowest first. A folder (or a top-level file) belongs to exactly one layer.
LAYERS = [
    ("Support", ["Support"]),
    ("HTTP2", ["HTTP2"]),
    ("Resolution", ["Resolution"]),
    ("Connection", ["Connection"]),
    ("Picking", ["Picking"]),
    ("Observability", ["Observability"]),
    ("Balancing", ["Balancing"]),
    ("Retry", ["Retry"]),
    # The public facade (LBPool, its configuration and errors) and Execution, which extends it.
    ("Execution", ["Execution", ".", "Benchmarking"]),
]

DECLARATION = re.compile(r"\b(?:struct|class|enum|protocol|actor|typealias)\s+([A-Z][A-Za-z0-9_]*)")
IDENTIFIER = re.compile(r"\b[A-Z][A-Za-z0-9_]*\b")


def strip(code):
    """The code without comments and string literals (multi-line ones included)."""
    keep_lines = lambda match: "\n" * match.group(0).count("\n") + " "
    code = re.sub(r'"""[\s\S]*?"""', keep_lines, code)
    code = re.sub(r"/\*[\s\S]*?\*/", keep_lines, code)
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', code)
    return code


def layer_of(path, root):
    relative = os.path.relpath(path, root)
    folder = relative.split(os.sep)[0] if os.sep in relative else "."
    for index, (_, folders) in enumerate(LAYERS):
        if folder in folders:
            return index
    sys.exit(f"check-layers: {relative} is in no layer; add its folder to LAYERS in {__file__}")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "LBPool")
    files = []
    for directory, _, names in os.walk(root):
        if ".docc" in directory:
            continue
        files += [os.path.join(directory, name) for name in names if name.endswith(".swift")]
    code = {path: strip(open(path, encoding="utf-8").read()) for path in files}
    declared = {}  # type name -> lowest layer declaring it
    for path, text in code.items():
        layer = layer_of(path, root)
        for name in DECLARATION.findall(text):
            declared[name] = min(declared.get(name, layer), layer)
    problems = []
    for path, text in sorted(code.items()):
        layer = layer_of(path, root)
        for number, line in enumerate(text.split("\n"), 1):
            for name in set(IDENTIFIER.findall(line)):
                above = declared.get(name)
                if above is not None and above > layer:
                    problems.append(f"{os.path.relpath(path, root)}:{number}: {LAYERS[layer][0]} uses {name} of {LAYERS[above][0]}")
    if problems:
        print("back-references between layers (a layer may use only its own and lower layers' types):")
        print("\n".join(problems))
        sys.exit(1)
    print(f"layers: {len(files)} files, {len(declared)} types, no back-reference")


main()
