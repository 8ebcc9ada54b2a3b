"""The sweep table's marks: (tr) rows, a published column, CPU seconds per run; and the
grid keys behind them ([[when]] scenario, [table.published])."""

from __future__ import annotations

import pytest

from czsl.errors import ConfigError
from czsl.sweep.grid import parse_grid
from czsl.sweep.table import render_markdown

SCENARIOS = "../../scenarios"


def _run(method: str, seed: int, mh: float, **extra) -> dict:
    return {"id": f"{method}{seed}", "labels": {"method": method}, "seed": seed, "threads": 1,
            "overrides": [], "status": "done", "error": None,
            "summary": {"mH": mh, "mSA": 2 * mh}, "steps": {}, **extra}


def _summary(runs, published=None) -> dict:
    table = {"rows": ["method"], "columns": [], "metrics": ["mSA", "mH"]}
    if published:
        table["published"] = published
    return {"format": 1, "name": "t", "axes": {"method": ["A", "B"]}, "seeds": [0, 1],
            "table": table, "runs": runs}


def _row(text: str, label: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {label}")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_transductive_rows_are_marked_and_explained():
    text = render_markdown(_summary([
        _run("A", 0, 10.0, semantic_transductive=True), _run("A", 1, 12.0,
                                                             semantic_transductive=True),
        _run("B", 0, 5.0, semantic_transductive=False), _run("B", 1, 7.0)]))
    assert _row(text, "A")[0] == "A (tr)" and _row(text, "B")[0] == "B"
    assert "(tr): semantic-transductive" in text
    plain = render_markdown(_summary([_run("A", 0, 1.0), _run("B", 0, 2.0)]))
    assert "(tr)" not in plain and "CPU s/run" not in plain


def test_published_figures_and_cpu_seconds_sit_beside_their_rows():
    published = {"title": "theirs (real features)",
                 "rows": [{"match": {"method": "B"}, "mH": 1.25, "mSA": 12.2}]}
    text = render_markdown(_summary([
        _run("A", 0, 10.0, cpu_s=30.0), _run("A", 1, 12.0, cpu_s=50.0),
        _run("B", 0, 5.0, cpu_s=None), _run("B", 1, 7.0)], published))
    head = [c.strip() for c in text.splitlines()[text.splitlines().index("") + 1]
            .strip("|").split("|")]
    assert head == ["method", "mSA", "mH", "theirs (real features)", "CPU s/run"]
    assert _row(text, "A") == ["A", "22.0 ± 2.8 (n=2)", "11.0 ± 1.4 (n=2)", "–", "40"]
    assert _row(text, "B") == ["B", "12.0 ± 2.8 (n=2)", "6.0 ± 1.4 (n=2)",
                               "mSA 12.2 / mH 1.2", "–"]


def _grid(tmp_path, text: str):
    folder = tmp_path / "benchmarks" / "grids"
    folder.mkdir(parents=True)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for name in ("a.toml", "b.toml", "c.toml"):
        (scenarios / name).write_text(f'name = "{name[0]}"\n')
    path = folder / "g.toml"
    path.write_text(text)
    return parse_grid(path)


GRID = f"""
[axes.dataset]
cub = {{ scenario = "{SCENARIOS}/a.toml" }}
sun = {{ scenario = "{SCENARIOS}/b.toml" }}

[axes.method]
Seq = []
New = ["train.epochs=2"]

[[when]]
match = {{ dataset = "sun", method = "New" }}
scenario = "{SCENARIOS}/c.toml"
set = ["train.lr=0.1"]
"""


def test_a_when_entry_can_choose_the_base_scenario(tmp_path):
    cells = {(c.labels["dataset"], c.labels["method"]): c for c in _grid(tmp_path, GRID).cells()}
    assert cells["sun", "New"].scenario.name == "c.toml"
    assert cells["sun", "New"].overrides == ["train.epochs=2", "train.lr=0.1", "seed=0"]
    assert cells["cub", "New"].scenario.name == "a.toml"
    assert cells["sun", "Seq"].scenario.name == "b.toml"


def test_two_when_scenarios_for_one_cell_are_refused(tmp_path):
    grid = _grid(tmp_path, GRID + f"""
[[when]]
match = {{ method = "New" }}
scenario = "{SCENARIOS}/a.toml"
""")
    with pytest.raises(ConfigError, match="from 2 \\[\\[when\\]\\] entries"):
        grid.cells()


@pytest.mark.parametrize("published, words", [
    ('title = "x"', "takes title"),
    ('title = "x"\nrows = [{ match = { method = "Nope" }, mH = 1 }]', "not a label"),
    ('title = "x"\nrows = [{ match = { method = "Seq" }, H = 1 }]', "metric = number"),
    ('title = "x"\nrows = [{ match = { method = "Seq" }, mH = "1" }]', "metric = number"),
])
def test_bad_published_tables_are_one_line(tmp_path, published, words):
    with pytest.raises(ConfigError, match=words) as err:
        _grid(tmp_path, GRID + "\n[table]\nrows = [\"dataset\", \"method\"]\n"
                               "[table.published]\n" + published + "\n")
    assert "\n" not in str(err.value)


def test_a_good_published_table_reaches_the_plan(tmp_path):
    grid = _grid(tmp_path, GRID + '\n[table.published]\ntitle = "t"\n'
                                  'rows = [{ match = { method = "Seq" }, mH = 1 }]\n')
    assert grid.table["published"] == {"title": "t", "rows": [
        {"match": {"method": "Seq"}, "mH": 1.0}]}
