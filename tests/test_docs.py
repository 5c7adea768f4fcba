"""The Markdown files' relative links point at files that exist."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files():
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [
            d for d in subfolders
            if not d.startswith(".") and d not in ("build", "dist") and not d.endswith(".egg-info")
        ]
        yield from (os.path.join(folder, n) for n in names if n.endswith(".md"))


def test_every_relative_link_in_the_markdown_files_exists():
    broken = []
    for path in _markdown_files():
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # a URL, mailto:, or an anchor
                continue
            linked = os.path.join(os.path.dirname(path), target.split("#")[0])
            if not os.path.exists(linked):
                broken.append(f"{os.path.relpath(path, ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
