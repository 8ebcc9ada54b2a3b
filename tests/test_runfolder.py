"""Run folders (:mod:`czsl.runfolder`), and which output modules the training side imports.

The run-output layer is three modules: :mod:`czsl.runfolder` (standard library: folders,
atomic writes, JSON, locks), :mod:`czsl.board` (TensorBoard) and :mod:`czsl.figures`
(matplotlib). The learner and its checkpoints use the first only.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from czsl.errors import CZSLError
from czsl.runfolder import (atomic_write, atomic_write_text, json_ready, new_run_dir, run_lock,
                            write_results, write_scenario)

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
