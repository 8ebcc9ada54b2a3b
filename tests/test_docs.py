"""The documentation names only things that exist.

Every ``czsl ...`` command written in README.md, ``docs/*.md`` and
``benchmarks/README.md`` parses with the real command line's parser (nothing is run),
every repository path they name (``scenarios/x.toml``, ``czsl/w.py``, a relative link)
exists, every ``python -m benchmarks.X`` is a module of ``benchmarks/``, and the README
stays short and starts with the two commands CI runs.

A command in a code block must parse whole. A command quoted inline may name a command
without its required arguments (``czsl sweep run``) or end in an option without its value
(``czsl run --resume``), but any option or subcommand it does give must exist. Placeholders (``DIR``, ``NAME``, ``HEAD_IP``) are plain strings
to the parser: paths are not opened, so they parse as written.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from czsl.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "benchmarks" / "README.md"]
README_MAX_LINES = 300
FIRST_LINES = """# czsl — continual zero-shot learning

```bash
python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/czsl run
.venv/bin/python -m pytest -q
```
"""

#: top-level folders whose paths a page may name; a path under one of them must exist
TOP = ("czsl", "benchmarks", "docs", "scenarios", "tests", "plugins", "examples")
PATH = re.compile(r"(?<![\w./~-])(?:%s)/[\w./-]*" % "|".join(TOP))
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"^(?:\S*/)?czsl\s")
BENCH = re.compile(r"python -m benchmarks\.(\w+)")
#: a placeholder: a path with <name>, {a,b} or *, or a part in capitals (sweeps/NAME)
PLACEHOLDER = re.compile(r"[<>{}*]|(?:^|[/.])[A-Z][A-Z_]*(?:/|$)")


def _page(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def block_commands(text: str) -> list[str]:
    """``czsl ...`` commands of the code blocks: continuation lines joined, each command
    of a ``&&`` / ``;`` chain on its own."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;|\|", line):
                part = part.strip()
                if COMMAND.match(part):
                    found.append(part)
    return found


def inline_commands(text: str) -> list[str]:
    """``czsl ...`` commands quoted inline (outside code blocks)."""
    return [span.strip() for span in INLINE.findall(FENCE.sub("", text))
            if COMMAND.match(span.strip())]


def parse_error(command: str, *, whole: bool) -> str | None:
    """Why ``czsl``'s parser rejects ``command`` (None if it parses). With ``whole``
    false, missing required arguments are allowed."""
    words = shlex.split(command, comments=True)[1:]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(words)
    except SystemExit as exc:
        message = stderr.getvalue().strip().splitlines()[-1:] or [f"exit {exc.code}"]
        named_only = ("arguments are required" in message[0]
                      or (words and words[-1].startswith("--")
                          and "expected one argument" in message[0]))
        if exc.code == 0 or (not whole and named_only):
            return None
        return message[0]
    return None


def missing_paths(text: str, page: Path) -> list[str]:
    """Repository paths and relative links of ``text`` (on ``page``) that do not exist."""
    missing = []
    for raw in PATH.findall(text):
        path = raw.rstrip(".")
        if not PLACEHOLDER.search(path) and not (ROOT / path).exists():
            missing.append(path)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        target = target.split("#")[0]
        if not (page.parent / target).exists():
            missing.append(target)
    return missing


def missing_benchmarks(text: str) -> list[str]:
    return [name for name in BENCH.findall(text)
            if not PLACEHOLDER.fullmatch(name)
            and not (ROOT / "benchmarks" / f"{name}.py").is_file()]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_czsl_command_parses(page):
    text = _page(page)
    errors = [f"{c!r}: {e}" for c in block_commands(text)
              if (e := parse_error(c, whole=True))]
    errors += [f"{c!r}: {e}" for c in inline_commands(text)
               if (e := parse_error(c, whole=False))]
    assert not errors, f"{page.relative_to(ROOT)}: " + "; ".join(errors)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_path_exists(page):
    assert not missing_paths(_page(page), page)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_benchmark_module_exists(page):
    assert not missing_benchmarks(_page(page))


def test_the_pages_name_commands_paths_and_benchmarks():
    """The checks above have something to check (a regex gone wrong finds nothing)."""
    text = "\n".join(_page(p) for p in DOCS)
    assert len(block_commands(text)) > 20 and len(inline_commands(text)) > 10
    assert len(PATH.findall(text)) > 50 and len(LINK.findall(text)) > 20
    assert len(BENCH.findall(text)) > 10


def test_readme_is_short_and_starts_with_the_two_commands():
    readme = _page(ROOT / "README.md")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert readme.startswith(FIRST_LINES)


def test_the_checks_catch_made_up_names(tmp_path):
    page = tmp_path / "page.md"
    text = ("See `scenarios/no_such.toml`, `czsl/metrics.py` and [a page](nowhere.md).\n"
            "Run `czsl sweep run` or `czsl run --no-such-flag`.\n"
            "```bash\nczsl run scenarios/cub_czsl.toml --data-dir DIR \\\n    --threads 0\n"
            "czsl sweep status\npython -m benchmarks.no_such --quick\n"
            "python -m benchmarks.speed --quick\n```\n")
    page.write_text(text)
    assert missing_paths(text, page) == ["scenarios/no_such.toml", "nowhere.md"]
    assert missing_paths("`benchmarks/NO_SUCH.md`, `docs/NAME/x.md`, `runs/<name>`", page) == [
        "benchmarks/NO_SUCH.md"]
    assert missing_benchmarks(text) == ["no_such"]
    assert block_commands(text) == [
        "czsl run scenarios/cub_czsl.toml --data-dir DIR      --threads 0",
        "czsl sweep status"]
    assert "--threads" in parse_error(block_commands(text)[0], whole=True)
    assert "required" in parse_error("czsl sweep status", whole=True)
    assert parse_error("czsl sweep run", whole=False) is None
    assert parse_error("czsl run --resume", whole=False) is None
    assert parse_error("czsl run --resume", whole=True) is not None
    assert "unrecognized" in parse_error("czsl run --no-such-flag", whole=False)
    assert "invalid choice" in parse_error("czsl swep run grid.toml", whole=False)


def _modules() -> list[Path]:
    return sorted(p for p in (ROOT / "czsl").rglob("*.py") if p.name != "__init__.py")


def test_architecture_names_every_module_and_every_long_one():
    """docs/architecture.md maps every module of czsl/, and its list of long modules
    holds every module well over 300 lines (``wc -l``)."""
    text = _page(ROOT / "docs" / "architecture.md")
    unnamed = [str(p.relative_to(ROOT)) for p in _modules() if f"`{p.name}`" not in text]
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
    known = {p.relative_to(ROOT / "czsl").as_posix() for p in (ROOT / "czsl").rglob("*.py")}
    known |= {name.rpartition("/")[2] for name in known}
    stale = [m for m in re.findall(r"`([\w/]+\.py)`", text)
             if m not in known and not (ROOT / m).exists()]
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
    long_section = text.split("## The long modules", 1)[1].split("\n## ", 1)[0]
    long = [p.relative_to(ROOT / "czsl").as_posix() for p in _modules()
            if len(p.read_text(encoding="utf-8").splitlines()) > 350]
    unexplained = [m for m in long if f"`{m}`" not in long_section]
    assert long and not unexplained, (
        f"docs/architecture.md, 'The long modules', should say why {unexplained} are long")


def test_methods_page_covers_every_built_in_plugin():
    from czsl.plugins import Plugins

    text = _page(ROOT / "docs" / "methods.md")
    built_in = {item.component.name for item in Plugins().listed if item.package == "czsl"}
    assert built_in and not [n for n in sorted(built_in) if f"**`{n}`**" not in text]
