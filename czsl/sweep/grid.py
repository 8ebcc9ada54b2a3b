"""Grid files: a study's runs as TOML, checked whole before anything runs.

A grid names a base scenario, seeds and **axes**; every combination of one label per
axis and one seed is a *cell*, i.e. one run::

    [sweep]
    scenario = "../../scenarios/cub_czsl.toml"   # relative to this file; omitted: synthetic
    seeds = [0, 1, 2]
    set = ["train.epochs=1"]                      # --set overrides of every run

    [axes.method]                                 # label = its --set overrides
    Sequential = ["regularizer=none"]
    "EWC-online" = ["regularizer=ewc_online"]

    [axes.dataset]                                # or a table: its own base scenario too
    cub = { scenario = "../../scenarios/cub_czsl.toml" }
    sun = { scenario = "../../scenarios/sun_czsl.toml", set = ["train.epochs=2"] }

    [[when]]                                      # extra overrides for some combinations
    match = { method = "Sequential", dataset = "cub" }
    set = ["train.lr=0.0005"]

    [[when]]                                      # or another base scenario for them
    match = { method = "DVGR", dataset = "cub" }
    scenario = "../../scenarios/cub_czsl_dvgr.toml"

    [table]
    rows = ["method"]
    columns = ["dataset"]
    metrics = ["mH", "mAUC"]

    [table.published]                             # optional: published figures beside
    title = "GRW (ICCV 2023) Table 1, real features: theirs"
    rows = [{ match = { method = "EWC", dataset = "cub" }, mSA = 12.2, mH = 1.3 }]

A run's overrides are, in order: ``[sweep] set``, each axis's (in file order), each
matching ``[[when]]``'s (in file order), then ``seed=N``. The base scenario is the one
``[sweep]`` names, replaced by the one of an axis label, replaced by the one of a matching
``[[when]]`` (one axis and one ``[[when]]`` at most per cell). ``[table.published]``
(a ``title`` and ``rows``, each a ``match`` of row labels and metric values) is shown by
the table beside the rows it matches. Each cell's scenario is built
with :func:`czsl.config.load_scenario` (the scenario validation: unknown keys, wrong
types), its plugin names and option names are looked up, and ``czsl sweep run`` then
checks it as its run will be built (:func:`check_cells` with ``full``: the data, the
task split, option values, the device), so a bad grid is refused with one line naming
the cell before any run starts. Stdlib only, up to that check.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from czsl.errors import ConfigError

_SECTIONS = {"sweep", "axes", "when", "table"}
_SWEEP_KEYS = {"name", "scenario", "seeds", "set"}
_TABLE_KEYS = {"rows", "columns", "metrics", "published"}


@dataclass(frozen=True)
class Cell:
    """One run of a grid, before its scenario is resolved.

    :param labels: axis name -> label, in the grid's axis order.
    :param seed: the run's seed.
    :param scenario: the base scenario file, or ``None`` for the built-in default.
    :param overrides: every ``--set`` override of the run, the seed's last.
    """

    labels: dict[str, str]
    seed: int
    scenario: Path | None
    overrides: list[str]

    def describe(self) -> str:
        """``method=EWC-online, dataset=cub, seed=0``: how messages name the cell."""
        return ", ".join([*(f"{k}={v}" for k, v in self.labels.items()),
                          f"seed={self.seed}"])


@dataclass(frozen=True)
class Grid:
    """A parsed grid file.

    :param path: the file.
    :param name: the sweep's name (``[sweep] name``, else the file's stem).
    :param document: the file as parsed, kept in the sweep's folder.
    :param axes: axis name -> label -> ``(scenario file or None, overrides)``.
    :param seeds: the seeds.
    :param table: ``rows``, ``columns`` (axis names) and ``metrics`` (may be empty:
        every metric).
    """

    path: Path
    name: str
    document: dict[str, Any]
    axes: dict[str, dict[str, tuple[Path | None, list[str]]]]
    seeds: list[int]
    base: Path | None
    base_set: list[str]
    when: list[tuple[dict[str, str], list[str], Path | None]]
    table: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Every combination of one label per axis and one seed, axes in file order."""
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(list(self.axes[a]) for a in names)):
            labels = dict(zip(names, combo))
            scenario, overrides = self.base, list(self.base_set)
            chosen = [a for a in names if self.axes[a][labels[a]][0] is not None]
            if len(chosen) > 1:
                raise ConfigError(
                    f"grid {self.path}: the cell {', '.join(f'{a}={labels[a]}' for a in chosen)}"
                    f" takes its scenario from {len(chosen)} axes; let one axis choose the "
                    "scenario file")
            for axis in names:
                file, sets = self.axes[axis][labels[axis]]
                scenario = file or scenario
                overrides += sets
            matched = [w for w in self.when if all(labels[a] == v for a, v in w[0].items())]
            files = [file for _, _, file in matched if file is not None]
            if len(files) > 1:
                raise ConfigError(
                    f"grid {self.path}: the cell {', '.join(f'{a}={v}' for a, v in labels.items())}"
                    f" takes its scenario from {len(files)} [[when]] entries; let one choose it")
            scenario = files[0] if files else scenario
            for _, sets, _ in matched:
                overrides += sets
            for seed in self.seeds:
                out.append(Cell(labels, seed, scenario, [*overrides, f"seed={seed}"]))
        return out


def _fail(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"grid {path}: {problem}")


def _overrides(path: Path, where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"{where} must be a list of \"key=value\" strings, got {value!r}")
    return list(value)


def _scenario_file(path: Path, where: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{where} must be a scenario file name, got {value!r}")
    file = (path.parent / value).resolve()
    if not file.is_file():
        raise _fail(path, f"{where} = {value!r}: {file} does not exist (scenario files are "
                          "given relative to the grid file)")
    return file


def _axis(path: Path, name: str, table: Any) -> dict[str, tuple[Path | None, list[str]]]:
    if not isinstance(table, dict):
        raise _fail(path, f"axis '{name}' must be a table of labels, e.g. [axes.{name}] "
                          f"label = [\"train.epochs=2\"], got {table!r}")
    if not table:
        raise _fail(path, f"axis '{name}' is empty; give it at least one label, e.g. "
                          f"[axes.{name}] label = [\"train.epochs=2\"]")
    out = {}
    for label, value in table.items():
        where = f"[axes.{name}] {label!r}"
        if isinstance(value, dict):
            unknown = set(value) - {"scenario", "set"}
            if unknown:
                raise _fail(path, f"{where} has unknown keys {sorted(unknown)}; a label's "
                                  "table takes 'scenario' and 'set'")
            file = (_scenario_file(path, f"{where} scenario", value["scenario"])
                    if "scenario" in value else None)
            out[label] = (file, _overrides(path, f"{where} set", value.get("set", [])))
        else:
            out[label] = (None, _overrides(path, where, value))
    return out


def parse_grid(path: str | Path) -> Grid:
    """Read and check a grid file's structure (not yet its scenarios: :func:`check_cells`).

    :raises ConfigError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror})") from None
    unknown = set(doc) - _SECTIONS
    if unknown:
        raise _fail(path, f"unknown sections {sorted(unknown)}; a grid has "
                          f"{sorted(_SECTIONS)}")
    for section, example in (("sweep", "[sweep] seeds = [0, 1]"),
                             ("axes", "[axes.NAME] label = [overrides]"),
                             ("table", "[table] rows = [\"AXIS\"]")):
        if not isinstance(doc.get(section, {}), dict):
            raise _fail(path, f"'{section}' must be a table ({example}), got "
                              f"{doc[section]!r}")
    if not isinstance(doc.get("when", []), list):
        raise _fail(path, f"'when' must be an array of tables ([[when]] match = "
                          f"{{axis = \"label\"}}), got {doc['when']!r}")
    sweep = doc.get("sweep", {})
    unknown = set(sweep) - _SWEEP_KEYS
    if unknown:
        raise _fail(path, f"[sweep] has unknown keys {sorted(unknown)}; it takes "
                          f"{sorted(_SWEEP_KEYS)}")
    seeds = sweep.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise _fail(path, f"[sweep] seeds must be a non-empty list of distinct whole "
                          f"numbers, got {seeds!r}")
    name = sweep.get("name", path.stem)
    if (not isinstance(name, str) or name.strip() in ("", ".", "..")
            or any(c in name for c in "/\\\0")
            or len(name.encode("utf-8", "surrogatepass")) > 200):
        # the sweep folder is sweeps/<name>: one folder, never a path (as a run's name)
        raise _fail(path, f"[sweep] name {name!r} cannot name a sweep folder; use up to "
                          "200 letters, digits, '-', '_' (no '/')")
    base = (_scenario_file(path, "[sweep] scenario", sweep["scenario"])
            if "scenario" in sweep else None)
    axes_doc = doc.get("axes", {})
    if "seed" in axes_doc:
        raise _fail(path, "'seed' is not an axis name: list seeds in [sweep] seeds")
    axes = {name_: _axis(path, name_, table) for name_, table in axes_doc.items()}

    when = []
    for i, entry in enumerate(doc.get("when", [])):
        match = entry.get("match") if isinstance(entry, dict) else None
        if not isinstance(match, dict) or not match or set(entry) - {"match", "set",
                                                                      "scenario"}:
            raise _fail(path, f"[[when]] #{i + 1} needs match = {{axis = \"label\"}} and "
                              "set = [overrides] and/or scenario = \"FILE\", nothing else")
        for axis, label in match.items():
            if axis not in axes:
                raise _fail(path, f"[[when]] #{i + 1} matches the unknown axis '{axis}'; "
                                  f"the axes are {list(axes)}")
            if not isinstance(label, str) or label not in axes[axis]:
                raise _fail(path, f"[[when]] #{i + 1} matches {axis} = {label!r}, which is "
                                  f"not a label of that axis ({list(axes[axis])})")
        file = (_scenario_file(path, f"[[when]] #{i + 1} scenario", entry["scenario"])
                if "scenario" in entry else None)
        when.append((dict(match), _overrides(path, f"[[when]] #{i + 1} set",
                                             entry.get("set", [])), file))

    table = doc.get("table", {})
    unknown = set(table) - _TABLE_KEYS
    if unknown:
        raise _fail(path, f"[table] has unknown keys {sorted(unknown)}; it takes "
                          f"{sorted(_TABLE_KEYS)}")
    for key in (_TABLE_KEYS - {"published"}) & set(table):
        if not isinstance(table[key], list) or not all(isinstance(v, str)
                                                       for v in table[key]):
            raise _fail(path, f"[table] {key} must be a list of names, got {table[key]!r}")
    rows = table.get("rows", [a for a in axes if a not in table.get("columns", [])])
    columns = table.get("columns", [])
    for key, value in (("rows", rows), ("columns", columns)):
        bad = [a for a in value if a not in axes] if isinstance(value, list) else value
        if bad:
            raise _fail(path, f"[table] {key} names {bad!r}, not axes of this grid "
                              f"({list(axes)})")
    if sorted(rows + columns) != sorted(axes):
        raise _fail(path, f"[table] rows {rows} and columns {columns} must name every axis "
                          f"once ({list(axes)}); seeds are averaged")
    metrics = table.get("metrics", [])
    from czsl.sweep.table import METRICS  # stdlib-only: the table's metric list

    bad = [m for m in metrics if m not in METRICS] if isinstance(metrics, list) else metrics
    if bad:
        raise _fail(path, f"[table] metrics names {bad!r}; the metrics are {list(METRICS)}")
    layout = {"rows": list(rows), "columns": list(columns), "metrics": list(metrics)}
    if "published" in table:
        layout["published"] = _published(path, table["published"], axes, rows)
    return Grid(path=path, name=name, document=doc, axes=axes, seeds=list(seeds),
                base=base, base_set=_overrides(path, "[sweep] set", sweep.get("set", [])),
                when=when, table=layout)


def _published(path: Path, value: Any, axes: dict[str, Any], rows: list[str]
               ) -> dict[str, Any]:
    """``[table.published]``, checked: ``title`` and ``rows`` of ``match`` + metric values."""
    from czsl.sweep.table import METRICS

    where = "[table.published]"
    if not isinstance(value, dict) or set(value) != {"title", "rows"} \
            or not isinstance(value["title"], str) or not isinstance(value["rows"], list):
        raise _fail(path, f"{where} takes title = \"...\" and rows = [{{ match = {{...}}, "
                          f"METRIC = number }}], got {value!r}")
    out = []
    for i, entry in enumerate(value["rows"]):
        at = f"{where} rows #{i + 1}"
        match = entry.get("match") if isinstance(entry, dict) else None
        if not isinstance(match, dict) or not match:
            raise _fail(path, f"{at} needs match = {{row axis = \"label\"}}, got {entry!r}")
        for axis, label in match.items():
            if axis not in rows or label not in axes[axis]:
                raise _fail(path, f"{at} matches {axis} = {label!r}, not a label of a row axis "
                                  f"({', '.join(rows)})")
        figures = {k: v for k, v in entry.items() if k != "match"}
        bad = [k for k, v in figures.items() if k not in METRICS
               or isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad or not figures:
            raise _fail(path, f"{at}: give metric = number for metrics of {list(METRICS)}, "
                              f"got {figures!r}")
        out.append({"match": dict(match), **{k: float(v) for k, v in figures.items()}})
    return {"title": value["title"], "rows": out}


def check_cells(grid: Grid, cells: list[Cell], *, data_dir: Path | None = None,
                full: bool = False, check_device: bool = True) -> list[Any]:
    """Build every cell's scenario, look up its plugins and their option names; return
    the scenarios.

    :param full: also check each cell as its run will be built
        (:class:`czsl.build.Preflight`: the data in ``data_dir``, the task split, the
        option values, the device), so that no run starts unless every one can.
    :param check_device: with ``full``, whether ``device = "cuda"`` must find a GPU on
        this machine.
    :raises ConfigError: naming the first bad cell and what is wrong with it.
    :raises PluginError: for a plugin name that no installed plugin provides, or an
        option it refuses.
    """
    from czsl.config import load_scenario
    from czsl.errors import CZSLError, PluginError
    from czsl.plugins import Plugins

    plugins = Plugins()
    if full:
        import warnings

        # Avalanche warns at import that GEM's optional QP solver is missing (as czsl run)
        warnings.filterwarnings("ignore", "no QP solver found")
        from czsl.build import Preflight  # imports torch and Avalanche

        preflight = Preflight(data_dir, check_device=check_device)
    scenarios = []
    for cell in cells:
        try:
            scenario = load_scenario(cell.scenario, cell.overrides)
            plugins.check_scenario_options(scenario)
            if full:
                preflight.check(scenario)
        except CZSLError as exc:
            kind = PluginError if isinstance(exc, PluginError) else ConfigError
            raise kind(f"grid {grid.path}, cell {cell.describe()}: {exc}") from exc
        scenarios.append(scenario)
    return scenarios


__all__ = ["Cell", "Grid", "check_cells", "parse_grid"]
