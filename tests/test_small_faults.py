"""The small faults of issue 16: each is a clear error, or fixed."""

from __future__ import annotations

import os
import stat

import pytest

from czsl.build import check_task_sizes
from czsl.cli import main
from czsl.errors import ConfigError
from czsl.runfolder import atomic_write_text, write_results


def _err(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_an_empty_run_name_is_refused(tmp_path, capsys):
    code, err = _err(capsys, "run", "--runs-dir", str(tmp_path), "--name", "")
    assert code == 2 and "'' cannot name a run folder" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["", "# only a comment\n\n   # another\n"],
                         ids=["empty", "comments"])
def test_an_empty_or_comment_only_scenario_file_is_refused(tmp_path, capsys, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    code, err = _err(capsys, "run", "--runs-dir", str(tmp_path / "runs"), str(path))
    assert code == 2 and err.count("\n") == 1
    assert f"{path} holds no settings (it is empty or only comments)" in err
    assert not (tmp_path / "runs").exists()


def test_a_one_class_first_task_is_refused_before_training(tmp_path, capsys):
    code, err = _err(capsys, "run", "--runs-dir", str(tmp_path / "runs"),
                     "--set", "protocol.task_sizes=[1, 9]")
    assert code == 2 and "the first task has one class" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "synthetic").exists()


def test_one_class_tasks_after_the_first_need_the_seen_loss():
    check_task_sizes([2, 1], "seen")
    with pytest.raises(ConfigError, match=r"task 1 .*has one class.*loss_classes='seen'"):
        check_task_sizes([2, 1], "task")
    with pytest.raises(ConfigError, match="the first task has one class"):
        check_task_sizes([1, 2], "seen")


def test_run_files_get_the_mode_of_any_new_file(tmp_path):
    mask = os.umask(0o022)
    try:
        write_results(tmp_path, {"a": 1})
        atomic_write_text(tmp_path / "scenario.toml", "x = 1\n")
        os.umask(0o027)
        atomic_write_text(tmp_path / "other", "y\n")
    finally:
        os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"results.json": 0o644, "scenario.toml": 0o644, "other": 0o640}
