"""Run folders (:mod:`czsl.runfolder`), and which output modules the training side imports.

The run-output layer is three modules: :mod:`czsl.runfolder` (standard library: folders,
atomic writes, JSON, locks), :mod:`czsl.board` (TensorBoard) and :mod:`czsl.figures`
(matplotlib). The learner and its checkpoints use the first only.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from czsl.errors import CZSLError
from czsl.runfolder import (Damaged, RunFolder, atomic_write, atomic_write_text, json_ready,
                            lock_fd, new_run_dir, run_lock, write_results, write_scenario)

REPO = Path(__file__).resolve().parents[1]
#: Modules that draw or write TensorBoard events; the training side must not import them.
OUTPUT_ONLY = ("tensorboard", "torch.utils.tensorboard", "matplotlib")


def _fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (nothing imported yet), with this one's path."""
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, check=False)


def test_runfolder_imports_neither_torch_nor_numpy():
    out = _fresh("import sys, czsl.runfolder\n"
                 "loaded = [m for m in ('torch', 'numpy', 'tensorboard', 'matplotlib', "
                 "'tomli_w') if m in sys.modules]\n"
                 "assert not loaded, loaded\n")
    assert out.returncode == 0, out.stderr


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of the source file ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_learner_imports_no_output_module():
    """Checkpoints import neither TensorBoard nor matplotlib; importing the learner loads
    none of czsl's TensorBoard / figure modules, and no czsl module it loads imports
    TensorBoard or matplotlib itself.

    (After the learner, ``tensorboard`` and ``matplotlib`` are in ``sys.modules`` all the
    same: avalanche-lib 0.6's ``avalanche.training.plugins`` imports its TensorBoard
    logger, and ``avalanche.models`` matplotlib. So that check is on czsl's own imports.)
    """
    out = _fresh(f"import sys, czsl.checkpoint\n"
                 f"loaded = [m for m in {OUTPUT_ONLY!r} if m in sys.modules]\n"
                 "assert not loaded, loaded\n"
                 "import czsl.learner\n"
                 "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'czsl'))\n")
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert "czsl.learner" in loaded and "czsl.runfolder" in loaded
    assert not {"czsl.board", "czsl.figures", "czsl.report"} & set(loaded), loaded
    for module in loaded:
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = REPO / module.replace(".", "/") / "__init__.py"
        heavy = {name for name in _imports(path)
                 if name.split(".")[0] in ("tensorboard", "matplotlib")
                 or name.startswith("torch.utils.tensorboard")}
        assert not heavy, f"{module} imports {heavy}"


# --- folders, atomic writes, JSON, locks -------------------------------------------------------

def test_new_run_dir_never_reuses_a_folder(tmp_path):
    first = new_run_dir(tmp_path / "runs", "a")
    second = new_run_dir(tmp_path / "runs", "a")
    assert (first.name, second.name) == ("a", "a-2") and second.is_dir()


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    def broken(fh):
        fh.write(b"half a ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left


def test_json_ready_converts_tensors_arrays_and_nan():
    value = {1: torch.tensor([1.5, float("nan")]), "a": np.array([[1, 2]]),
             "b": (np.float32(0.5), math.nan, "text"), "c": torch.tensor(3)}
    assert json_ready(value) == {"1": [1.5, None], "a": [[1, 2]], "b": [0.5, None, "text"],
                                 "c": 3}


def test_results_and_scenario_files(tmp_path):
    path = write_results(tmp_path, {"x": torch.tensor([float("nan"), 1.0]), "n": 2})
    assert path.name == "results.json" and path.read_text().endswith("\n")
    assert json.loads(path.read_text()) == {"x": [None, 1.0], "n": 2}
    scenario = write_scenario(tmp_path, {"name": "s", "train": {"lr": 0.01}})
    assert scenario.read_text() == 'name = "s"\n\n[train]\nlr = 0.01\n'


def test_run_lock_refuses_a_second_holder(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(CZSLError, match="in use by another czsl process"):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # released when the first holder left
        pass


#: the smallest document :meth:`RunFolder.read_finished` takes for a run's results
FINISHED = {"summary": {"mH": 0.5}, "metrics": {"steps": {"H": [0.5]}}}


def test_read_finished_is_none_before_the_run_finishes(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_finished() is None and not folder.is_finished()
    folder.write_results(FINISHED)
    assert folder.is_finished() and folder.read_finished() == FINISHED


@pytest.mark.parametrize(("text", "not_json", "problem"), [
    ('{"summary": {', True, "Expecting"),
    ("[1, 2]", False, "not a table"),
    ('{"summary": {}, "metrics": {}}', False, "'metrics.steps' is not a table"),
    ('{"summary": 3, "metrics": {"steps": {}}}', False, "'summary' is not a table"),
])
def test_read_finished_names_a_damaged_results_file(tmp_path, text, not_json, problem):
    (tmp_path / "results.json").write_text(text)
    with pytest.raises(Damaged, match="results.json is damaged") as info:
        RunFolder(tmp_path).read_finished()
    assert info.value.not_json is not_json and problem in info.value.problem


def test_read_finished_checks_the_callers_keys_first_in_order(tmp_path):
    RunFolder(tmp_path).write_results({**FINISHED, "protocol": {}})
    folder = RunFolder(tmp_path)
    with pytest.raises(Damaged) as info:
        folder.read_finished({"protocol": ("name",), "seed": ()})
    assert info.value.problem == "'protocol' has no 'name'"
    with pytest.raises(Damaged) as info:
        folder.read_finished({"seed": (), "protocol": ("name",)})
    assert info.value.problem == "it has no key 'seed'"


def test_a_copied_results_file_is_read_where_it_is(tmp_path):
    RunFolder(tmp_path).write_results(FINISHED)
    copy = tmp_path / "copy.json"
    copy.write_text((tmp_path / "results.json").read_text())
    (tmp_path / "results.json").unlink()
    folder = RunFolder.given(copy)
    assert folder.path == tmp_path and folder.read_finished() == FINISHED
    assert RunFolder.given(tmp_path).read_finished() is None


def test_lock_fd_shares_a_shared_lock_and_refuses_an_exclusive_one(tmp_path):
    path = tmp_path / "claim"
    path.write_text("x")
    first, second = (os.open(path, os.O_RDONLY) for _ in range(2))
    try:
        assert lock_fd(first, shared=True) and lock_fd(second, shared=True)
        os.close(second)
        second = os.open(path, os.O_RDONLY)
        assert not lock_fd(second)  # a reader holds it
        os.close(first)
        first = -1
        assert lock_fd(second)
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)


def test_only_runfolder_names_the_run_folders_files():
    """The layout has one owner: no other module spells out a run folder's file names."""
    names = {"results.json", "scenario.toml", "state.pt"}
    found = []
    for path in sorted((REPO / "czsl").rglob("*.py")):
        if path.name == "runfolder.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not found, f"use czsl.runfolder.RunFolder instead: {found}"
