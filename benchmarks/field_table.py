"""The field's table: GRW's ICCV'23 Table 1 methods, czsl's plugins, on semi-synthetic CUB
and SUN in the ``grw`` protocol, 3 seeds, with the published figures beside.

    python -m benchmarks.field_table [--summary FILE] [--out FILE]

Renders ``benchmarks/field_table.md`` from the committed summary of the sweep
``benchmarks/grids/field_table.toml`` (``benchmarks/sweeps/field_table.json``): the
table is exactly what ``czsl sweep table`` prints for that summary (with the grid's
``[table.published]`` column, ``(tr)`` marks and CPU seconds per run), between the
page's prose, which is markdown in ``benchmarks/notes/field_table.md``. No run starts
here: the runs are ``czsl sweep run benchmarks/grids/field_table.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks._common import notes
from czsl.runfolder import atomic_write_text
from czsl.sweep.summary import load_summary
from czsl.sweep.table import render_markdown

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "benchmarks" / "sweeps" / "field_table.json"
#: the page's prose blocks, in ``benchmarks/notes/field_table.md``
PROSE = ("INTRO", "FINDINGS")


def render(summary: dict) -> str:
    """The page: the prose around the sweep's own table."""
    prose = notes("field_table", PROSE)
    lines = ["# The field's table (GRW, ICCV 2023, Table 1) in czsl", "", prose["INTRO"], "",
             render_markdown(summary).rstrip("\n"), ""]
    lines += [f"Note: {note}" for note in summary.get("notes", [])]
    lines += ["", prose["FINDINGS"], ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, default=SUMMARY,
                        help="a sweep folder or summary.json (default: the committed one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "field_table.md")
    args = parser.parse_args(argv)
    text = render(load_summary(args.summary))
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
