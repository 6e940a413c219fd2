#!/usr/bin/env python3
"""Fails when the bad-input table of README.md and of the DocC article differ.

README.md's "## Bad input" section and Sources/KernelMemory/KernelMemory.docc/BadInput.md
carry the same table (the article is what the API documentation shows). Compares their
table lines (those starting with "|") and prints the first difference; exit 1 if any.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
ARTICLE = os.path.join(ROOT, "Sources", "KernelMemory", "KernelMemory.docc", "BadInput.md")


def table(text):
    return [line.rstrip() for line in text.splitlines() if line.startswith("|")]


def readme_table():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    marker = "\n## Bad input\n"
    if marker not in text:
        sys.exit("check_bad_input_table: README.md has no '## Bad input' section")
    section = text.split(marker, 1)[1].split("\n## ", 1)[0]
    return table(section)


def main():
    readme = readme_table()
    with open(ARTICLE, encoding="utf-8") as f:
        article = table(f.read())
    if readme == article:
        print(f"check_bad_input_table: BadInput.md has README's table ({len(readme) - 2} rows)")
        return 0
    for number, (a, b) in enumerate(zip(readme, article), 1):
        if a != b:
            print(f"table line {number} differs:\n  README.md:   {a}\n  BadInput.md: {b}")
            break
    else:
        print(f"README.md's table has {len(readme)} lines, BadInput.md's {len(article)}")
    print("check_bad_input_table: copy README.md's '## Bad input' table into "
          + os.path.relpath(ARTICLE, ROOT), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
