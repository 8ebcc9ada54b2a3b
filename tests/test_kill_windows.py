"""No kill window leaves garbage: a run killed between writing ``results.json`` and
removing its checkpoint, or in the middle of an atomic write, is cleaned up by the next
czsl process on its folder (a resume, or a run of the same name)."""

from __future__ import annotations

import pytest

import czsl.run
from czsl.cli import main
from czsl.config import load_scenario
from czsl.learner import ZSLLearner
from czsl.run import resume_run, run_scenario
from czsl.runfolder import CHECKPOINT_DIR

QUIET = {"progress": False, "echo": lambda _: None}
FAST = ["train.epochs=1", "data.synthesis.samples_per_class=10", "model.hidden_dims=[16]",
        "threads=1"]


def _killed_after_results(tmp_path, monkeypatch):
    """A finished run killed before it removed its checkpoint, plus the 0-byte temp file
    of a killed ``results.json`` write."""
    def killed(run_dir):
        raise KeyboardInterrupt  # stands for SIGKILL: nothing after this point runs

    monkeypatch.setattr(czsl.run, "tidy", killed)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(None, FAST), runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "synthetic"
    (run_dir / ".results.json.x1.tmp").write_bytes(b"")
    assert (run_dir / "results.json").is_file() and (run_dir / CHECKPOINT_DIR).is_dir()
    return run_dir


def _garbage(run_dir):
    return sorted(p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp")
                  or p.name == CHECKPOINT_DIR)


def test_a_resume_of_a_run_killed_after_its_results_cleans_it(tmp_path, monkeypatch, capsys):
    run_dir = _killed_after_results(tmp_path, monkeypatch)
    assert main(["run", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "has finished (results.json exists); there is nothing to resume" in err
    assert f"to run its scenario again: czsl run {run_dir / 'scenario.toml'}" in err
    assert _garbage(run_dir) == [] and (run_dir / "results.json").is_file()


def test_a_run_of_the_same_name_cleans_a_run_killed_after_its_results(tmp_path, monkeypatch):
    run_dir = _killed_after_results(tmp_path, monkeypatch)
    again = run_scenario(load_scenario(None, FAST), runs_dir=tmp_path, **QUIET)
    assert again.run_dir == tmp_path / "synthetic-2"
    assert _garbage(run_dir) == [] and _garbage(again.run_dir) == []


def test_no_temp_file_survives_a_resume(tmp_path, monkeypatch):
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(None, FAST), runs_dir=tmp_path, **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "synthetic"
    # a kill inside atomic_write leaves its temporary file beside the target
    (run_dir / ".results.json.x2.tmp").write_bytes(b"")
    (run_dir / CHECKPOINT_DIR / ".state.pt.x3.tmp").write_bytes(b"half")
    resume_run(run_dir, **QUIET)
    assert _garbage(run_dir) == [] and (run_dir / "results.json").is_file()
