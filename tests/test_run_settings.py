"""The settings outside the scenario that change a run's numbers are part of the run.

torch's parallel reductions (a sum over many elements, BatchNorm's statistics) add in an
order that depends on the thread count, so a run records the count it used in
``scenario.toml`` (and, with the device, torch's version, the deterministic-algorithms
flag and the default dtype, in ``results.json``), and a resumed run uses the recorded one.
"""

from __future__ import annotations

import tomllib

import pytest
import torch

from czsl.cli import main
from czsl.config import load_scenario
from czsl.errors import CZSLError
from czsl.learner import ZSLLearner
from czsl.run import resume_run, run_scenario

QUIET = {"progress": False, "echo": lambda _: None}
FAST = ["train.epochs=1", "data.synthesis.samples_per_class=10", "model.hidden_dims=[16]"]


@pytest.fixture
def threads():
    """Restores torch's thread count after the test."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def _stop_at(monkeypatch, step: int) -> None:
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == step:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)


def test_the_thread_count_is_recorded_and_a_resume_uses_it(tmp_path, monkeypatch, threads):
    other = 1 if threads != 1 else 2
    scenario = load_scenario(None, FAST + [f"threads={other}"])
    reference = run_scenario(scenario, runs_dir=tmp_path / "ref", **QUIET)
    assert reference.results["runtime"]["threads"] == other

    _stop_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, runs_dir=tmp_path / "runs", **QUIET)
    monkeypatch.undo()
    run_dir = tmp_path / "runs" / "synthetic"
    recorded = tomllib.loads((run_dir / "scenario.toml").read_text())
    assert recorded["threads"] == other

    torch.set_num_threads(threads)  # a new session with torch's default count
    with pytest.raises(CZSLError, match=f"started with --threads {other} .*drop --threads "
                                        f"{other + 1}"):
        resume_run(run_dir, threads=other + 1, **QUIET)
    resumed = resume_run(run_dir, **QUIET)
    assert torch.get_num_threads() == other
    assert {k: v for k, v in resumed.results.items() if k != "wall_time_s"} == {
        k: v for k, v in reference.results.items() if k != "wall_time_s"}


def test_a_run_without_threads_records_torchs_count(tmp_path, threads):
    torch.set_num_threads(1)
    result = run_scenario(load_scenario(None, FAST), runs_dir=tmp_path, **QUIET)
    assert tomllib.loads((result.run_dir / "scenario.toml").read_text())["threads"] == 1
    runtime = result.results["runtime"]
    assert runtime == {"torch": torch.__version__, "device": "cpu", "threads": 1,
                       "deterministic_algorithms": False, "default_dtype": "float32"}


def test_one_and_two_threads_are_recorded_as_different_runs(tmp_path, threads):
    """The counts may give different numbers (torch's reductions); the records differ."""
    runs = {n: run_scenario(load_scenario(None, FAST + [f"threads={n}"]),
                            runs_dir=tmp_path / str(n), **QUIET) for n in (1, 2)}
    for n, result in runs.items():
        assert result.results["runtime"]["threads"] == n
        assert tomllib.loads((result.run_dir / "scenario.toml").read_text())["threads"] == n


def test_resume_with_another_threads_flag_is_one_clear_error(tmp_path, monkeypatch, capsys,
                                                             threads):
    _stop_at(monkeypatch, 1)
    assert main(["run", "--no-progress", "--runs-dir", str(tmp_path), "--threads", "1",
                 *[a for s in FAST for a in ("--set", s)]]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    code = main(["run", "--resume", str(tmp_path / "synthetic"), "--threads", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "started with --threads 1" in err
    code = main(["run", "--resume", str(tmp_path / "synthetic"), "--threads", "1",
                 "--no-progress"])
    assert code == 0 and (tmp_path / "synthetic" / "results.json").is_file()
