"""The documentation's links and commands: README.md, CHANGELOG.md and docs/*.md.

Every relative link (markdown links and images) points to a file or folder of the repository, or to
an output of `make reproduce` under results/; every #anchor into a markdown file of the repository
matches one of its headings (GitHub's slugs); every `make X` in code names a Makefile target and
every `tclib X` a subcommand of `tclib --help`."""

import argparse
import re
from pathlib import Path

import pytest

from tclib.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# written by `make reproduce` (and `make tables`), not committed: links into them are accepted
GENERATED = ("results/demo/", "results/benchmarks/", "results/tables/")

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
MAKE = re.compile(r"(?<![\w./-])make[ \t]+([A-Za-z][\w-]*)")
TCLIB = re.compile(r"(?<![\w./-])(?:\.venv/bin/)?tclib[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text without its fenced code blocks and code spans (a span keeps a placeholder word)."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def code(text: str) -> list[str]:
    """The contents of every fenced code block and code span."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    spans = [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    return blocks + spans


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text()))


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None  # http:, https:, mailto:, ...


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lowercase, punctuation other than - and _ dropped,
    spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings, repeated slugs numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def resolve(doc: Path, target: str) -> tuple[Path, str]:
    """The file a link of `doc` points to, and its anchor ('' when none)."""
    target, _, anchor = target.partition("#")
    return (doc if not target else (doc.parent / target).resolve()), anchor


def generated(path: Path) -> bool:
    try:
        name = rel(path) + ("/" if not path.suffix else "")
    except ValueError:  # outside the repository
        return False
    return name.startswith(GENERATED)


def subcommands() -> dict[str, set[str]]:
    """`tclib`'s subcommands, each with its own subcommands (empty when it has none)."""
    def choices(parser: argparse.ArgumentParser) -> dict:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(actions[0].choices) if actions else {}
    return {name: set(choices(sub)) for name, sub in choices(build_parser()).items()}


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)[ \t]*:(?!=)", text, re.M))


def test_the_docs_are_there():
    assert (ROOT / "docs" / "README.md") in DOCS and len(DOCS) > 3, "README.md, CHANGELOG.md and docs/*.md"
    assert all(path.exists() for path in DOCS)


def test_relative_links_point_to_files_of_the_repository():
    broken = []
    for doc in DOCS:
        for target in links(doc):
            if is_external(target) or target.startswith("#"):
                continue
            path, _ = resolve(doc, target)
            if not path.exists() and not generated(path):
                broken.append(f"{rel(doc)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_anchors_match_a_heading_of_their_file():
    broken = []
    for doc in DOCS:
        for target in links(doc):
            if is_external(target) or "#" not in target:
                continue
            path, anchor = resolve(doc, target)
            if path.suffix == ".md" and path.exists() and anchor not in anchors(path):
                broken.append(f"{rel(doc)}: {target} (headings of {rel(path)}: no #{anchor})")
    assert not broken, "anchors without a heading:\n" + "\n".join(broken)


def test_make_targets_in_code_exist():
    targets = makefile_targets()
    assert {"reproduce", "test"} <= targets
    unknown = [f"{rel(doc)}: make {name}" for doc in DOCS for snippet in code(doc.read_text())
               for name in MAKE.findall(snippet) if name not in targets]
    assert not unknown, f"not a target of the Makefile ({sorted(targets)}):\n" + "\n".join(unknown)


def test_tclib_subcommands_in_code_exist():
    commands = subcommands()
    assert {"reproduce", "index", "search"} <= set(commands)
    unknown = []
    for doc in DOCS:
        for snippet in code(doc.read_text()):
            for name, sub in TCLIB.findall(snippet):
                if name not in commands:
                    unknown.append(f"{rel(doc)}: tclib {name}")
                elif commands[name] and sub and sub not in commands[name]:
                    unknown.append(f"{rel(doc)}: tclib {name} {sub}")
    assert not unknown, f"not a subcommand of tclib ({sorted(commands)}):\n" + "\n".join(unknown)


@pytest.mark.parametrize("heading, anchor", [
    ("The paper's tables", "the-papers-tables"),
    ("What `make reproduce` writes", "what-make-reproduce-writes"),
    ("tclib — a reproducibility kit for TeachCLIP", "tclib--a-reproducibility-kit-for-teachclip"),
    ("Indexing throughput (`tclib index`, 224 px)", "indexing-throughput-tclib-index-224-px"),
    ("Memory per stage against the test set's size", "memory-per-stage-against-the-test-sets-size"),
])
def test_slug_follows_githubs_rule(heading, anchor):
    assert slug(heading) == anchor


def test_the_version_follows_the_changelog():
    import tomllib

    import tclib

    newest = re.search(r"^## (\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None, "CHANGELOG.md: no '## X.Y.Z - date' entry"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == tclib.__version__ == newest.group(1)
