#!/usr/bin/env python3
"""Fails when a public symbol of the documented modules has no doc comment summary.

Reads symbol graphs (the JSON that `swift package generate-documentation` extracts, or
that `swift build -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc DIR`
writes) and lists every public or open symbol whose doc comment is missing, empty, or
starts with a field (`- Complexity:`, `- Parameter x:`) instead of a summary sentence,
one `file:line: kind name` a line, then exits 1. Exits 0 when there is none.

Left out, because no comment of ours can be written for them:
- members the compiler synthesizes (`!=` of Equatable and the like: `::SYNTHESIZED::`),
- symbols declared outside this repository's Sources/ (a raw-value enum's
  `init(rawValue:)`, standard library members), which have no location there,
- extension blocks of other modules' types (their members are checked).
A member that implements one of our protocols' requirements without a comment of its
own shows the requirement's comment (the graphs carry inherited documentation); that
counts when the requirement's comment is in Sources/.

usage: check_doc_coverage.py [--module NAME ...] DIR [DIR ...]
  DIR        a folder searched recursively for *.symbols.json
  --module   check only these modules (default: every module found); a named module
             with no symbol graph is an error
"""
import argparse
import json
import os
import re
import sys
from urllib.parse import unquote, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(ROOT, "Sources") + os.sep


def source_path(uri):
    """The file a symbol graph URI names, or None."""
    if not uri:
        return None
    return os.path.realpath(unquote(urlparse(uri).path))


def in_sources(path):
    return path is not None and path.startswith(os.path.realpath(SOURCES.rstrip(os.sep)) + os.sep)


def graph_files(dirs):
    for top in dirs:
        for folder, _, files in os.walk(top):
            for name in files:
                if name.endswith(".symbols.json"):
                    yield os.path.join(folder, name)


# A field of a doc comment: "- Complexity: ...", "- Parameter size: ...", "- Returns: ...".
FIELD = re.compile(r"^[-*+]\s+[A-Za-z][\w ]*:")


def has_summary(doc):
    """A doc comment that starts with a sentence, not with a field such as `- Complexity:`."""
    if not doc:
        return False
    for line in doc.get("lines", []):
        text = line.get("text", "").strip()
        if text:
            return not FIELD.match(text)
    return False


def missing(graph_paths, modules):
    seen_modules = set()
    checked = {}
    found = {}
    for path in graph_paths:
        # Module.symbols.json, or Module@Other.symbols.json for Module's extensions of Other.
        module = os.path.basename(path)[: -len(".symbols.json")].split("@")[0]
        if modules and module not in modules:
            continue
        seen_modules.add(module)
        checked.setdefault(module, 0)
        with open(path, encoding="utf-8") as f:
            graph = json.load(f)
        for symbol in graph.get("symbols", []):
            if symbol.get("accessLevel") not in ("public", "open") or symbol.get("spi"):
                continue
            kind = symbol["kind"]["identifier"]
            if kind == "swift.extension":
                continue
            if "::SYNTHESIZED::" in symbol["identifier"]["precise"]:
                continue
            location = symbol.get("location")
            file = source_path(location and location.get("uri"))
            if not in_sources(file):
                continue
            checked[module] += 1
            doc = symbol.get("docComment")
            if has_summary(doc) and in_sources(source_path(doc.get("uri"))):
                continue
            line = location.get("position", {}).get("line", 0) + 1
            name = ".".join(symbol.get("pathComponents", [symbol["names"]["title"]]))
            key = (os.path.relpath(file, ROOT), line, name)
            found[key] = (module, kind.removeprefix("swift."))
    return checked, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", default=[])
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    modules = set(args.module)
    checked, found = missing(graph_files(args.dirs), modules)
    seen = set(checked)
    absent = sorted(modules - seen)
    if absent:
        print("check_doc_coverage: no symbol graph for " + ", ".join(absent), file=sys.stderr)
        return 2
    elsewhere = sorted(module for module, count in checked.items() if count == 0)
    if elsewhere:
        # Graphs made from another checkout name files outside this one's Sources/.
        print("check_doc_coverage: no public symbol of " + ", ".join(elsewhere)
              + " is declared under " + SOURCES, file=sys.stderr)
        return 2
    if found:
        for (file, line, name), (module, kind) in sorted(found.items()):
            print(f"{file}:{line}: {kind} {module}.{name} has no doc comment summary")
        print(f"check_doc_coverage: {len(found)} public symbol(s) without a summary "
              f"(checked {', '.join(sorted(seen))})", file=sys.stderr)
        return 1
    total = sum(checked.values())
    print(f"check_doc_coverage: all {total} public symbols have a summary "
          f"({', '.join(sorted(seen))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
