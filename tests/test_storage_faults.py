"""Storage faults (read-only, no permission, a file in a folder's place, a full disk) are
one line naming the folder and the fix, with exit status 2, found before the data are
read where possible; a fault during a run leaves the saved tasks resumable.

Tests run as root, where permission bits do not stop writes, so read-only, no-permission
and full disks are simulated by making the file system calls raise their ``OSError``.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

import czsl.run
from czsl import checkpoint, runfolder
from czsl.cli import main
from czsl.checkpoint import load_checkpoint

FAST = ["--set", "train.epochs=1", "--set", "data.synthesis.samples_per_class=10",
        "--set", "model.hidden_dims=[16]"]


def _cli(capsys, *argv):
    code = main(["run", "--no-progress", "--threads", "1", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _no_data(monkeypatch):
    """Fail the test if the run reads its data."""
    def build_run(*args, **kwargs):
        raise AssertionError("the data were read before the storage fault was found")

    monkeypatch.setattr(czsl.run, "build_run", build_run)


@pytest.mark.parametrize("code_, words", [
    (errno.EROFS, "is on a read-only file system"),
    (errno.EACCES, "cannot be written (no permission)"),
    (errno.ENOSPC, "is on a full disk"),
    (errno.EDQUOT, "is over its disk quota"),
])
def test_an_unwritable_runs_folder_is_one_line_before_the_data_load(tmp_path, monkeypatch,
                                                                    capsys, code_, words):
    def mkstemp(*args, **kwargs):
        raise OSError(code_, os.strerror(code_))

    monkeypatch.setattr(runfolder.tempfile, "mkstemp", mkstemp)
    _no_data(monkeypatch)
    code, out, err = _cli(capsys, "--runs-dir", str(tmp_path / "runs"), *FAST)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'runs'} {words}" in err and "then run again" in err
    assert not (tmp_path / "runs").exists()


def test_a_file_where_the_runs_folder_should_be(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    _no_data(monkeypatch)
    for runs in (tmp_path / "file", tmp_path / "file" / "runs"):
        code, _, err = _cli(capsys, "--runs-dir", str(runs), *FAST)
        assert code == 2 and err.count("\n") == 1, err
        assert f"{runs} cannot be a folder: a file is in its place" in err
        assert "move the file away" in err


def test_a_full_disk_during_a_run_keeps_the_saved_tasks_resumable(tmp_path, monkeypatch,
                                                                  capsys):
    code, _, err = _cli(capsys, "--runs-dir", str(tmp_path / "ref"), "--name", "r", *FAST)
    assert code == 0, err
    reference = json.loads((tmp_path / "ref" / "r" / "results.json").read_text())

    write, calls = checkpoint.atomic_write, []

    def full_at_task_2(path, fn):
        calls.append(path)
        if len(calls) == 3:  # the checkpoint of task 2
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, fn)

    monkeypatch.setattr(checkpoint, "atomic_write", full_at_task_2)
    code, _, err = _cli(capsys, "--runs-dir", str(tmp_path), "--name", "r", *FAST)
    monkeypatch.undo()
    run_dir = tmp_path / "r"
    assert code == 2 and err.count("\n") == 1, err
    assert f"{run_dir} is on a full disk" in err
    assert f"then continue with: czsl run --resume {run_dir}" in err
    assert load_checkpoint(run_dir).step == 1 and not (run_dir / "results.json").exists()

    code, _, err = _cli(capsys, "--resume", str(run_dir))
    assert code == 0, err
    resumed = json.loads((run_dir / "results.json").read_text())
    reference.pop("wall_time_s"), resumed.pop("wall_time_s")
    assert resumed == reference
