"""Observers added by a third-party package through the ``czsl_observers`` hook.

A tiny package is written here and pip-installed into a folder of its own, as
``tests/test_example_plugin.py`` installs its example: that folder on ``PYTHONPATH`` is
what an installed package looks like to ``importlib.metadata``, so czsl finds it through
its entry point, never through a direct import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # pip installs the package

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "czsl-test-journal"
version = "0.1.0"
dependencies = ["czsl"]

[project.entry-points.czsl]
journal = "czsl_test_journal"

[tool.setuptools]
py-modules = ["czsl_test_journal"]
"""

# an observer-only plugin: no component; torch is imported only once a run asks
MODULE = '''\
"""Journals every call a run makes to its observer, one line each, into $JOURNAL."""
import os

from czsl import hookimpl


@hookimpl
def czsl_observers(scenario):
    from czsl.observers import Observer

    class Journal(Observer):
        name = "journal"

        def _write(self, line):
            with open(os.environ["JOURNAL"], "a", encoding="utf-8") as out:
                out.write(f"plugin {line}\\n")

        def before_run(self, start):
            self._write(f"before_run {start.first}")

        def after_task(self, end):
            saved = (end.run_dir / "checkpoint").is_dir()
            self._write(f"after_task {end.step} saved={saved}")

        def after_run(self, results):
            self._write(f"after_run {scenario.name} {len(results['metrics']['steps']['H'])}")

        def close(self):
            self._write("close")

    return [Journal()]
'''

SMALL = ["train.epochs=1", "model.hidden_dims=[16]", "data.synthesis.n_classes=8",
         "data.synthesis.samples_per_class=10", "data.synthesis.n_features=8",
         "data.synthesis.n_attributes=4", "data.synthesis.n_unseen=2",
         "protocol.task_sizes=[4, 4]"]

# a caller's observer beside the plugin's: it writes to the same journal
RUN = f"""
import json, os, sys
from pathlib import Path
from czsl.config import load_scenario
from czsl.observers import Observer
from czsl.run import run_scenario

class Mine(Observer):
    name = "mine"
    def after_task(self, end):
        with open(os.environ["JOURNAL"], "a", encoding="utf-8") as out:
            out.write(f"caller after_task {{end.step}}\\n")

result = run_scenario(load_scenario(None, {SMALL!r}), runs_dir=Path("runs"),
                      progress=False, echo=lambda _: None, observers=[Mine()])
print(json.dumps(sorted(result.timings)))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package, pip-installed into a folder of its own."""
    root = tmp_path_factory.mktemp("journal")
    source = root / "src"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "czsl_test_journal.py").write_text(textwrap.dedent(MODULE))
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def _python(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path]),
           "JOURNAL": str(cwd / "journal.txt")}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_an_observer_only_plugin_is_listed_without_a_warning(installed, tmp_path):
    listed = _python(installed, tmp_path, "-m", "czsl.cli", "plugins")
    assert listed.returncode == 0, listed.stderr
    assert "journal" not in listed.stderr  # neither a problem nor a slow import
    assert not (tmp_path / "journal.txt").exists()  # no run, no observer


def test_the_plugins_observer_sees_the_run_before_the_callers(installed, tmp_path):
    run = _python(installed, tmp_path, "-c", RUN)
    assert run.returncode == 0, run.stderr
    assert "journal" in json.loads(run.stdout)  # timed under its name, like czsl's own
    assert (tmp_path / "journal.txt").read_text().splitlines() == [
        "plugin before_run 0",
        "plugin after_task 0 saved=True", "caller after_task 0",
        "plugin after_task 1 saved=True", "caller after_task 1",
        "plugin after_run synthetic 2",
        "plugin close"]
    assert (tmp_path / "runs" / "synthetic" / "results.json").is_file()


def test_czsl_run_calls_it(installed, tmp_path):
    argv = ["-m", "czsl.cli", "run", "--no-progress", "--threads", "1", "--runs-dir", "runs",
            *sum((["--set", s] for s in SMALL), [])]
    run = _python(installed, tmp_path, *argv)
    assert run.returncode == 0, run.stderr
    journal = (tmp_path / "journal.txt").read_text().splitlines()
    assert journal[0] == "plugin before_run 0" and journal[-1] == "plugin close"
    assert sum(line.startswith("plugin after_task") for line in journal) == 2
