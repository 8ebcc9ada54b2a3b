"""SIGINT, SIGTERM and SIGHUP stop ``czsl run`` the same way: the same note with the
resume command, exit status 128 + the signal, the saved tasks resumable; a run stopped
before its first task was saved leaves no folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from czsl.checkpoint import CHECKPOINT_DIR, STATE_FILE
from czsl.config import load_scenario
from czsl.learner import ZSLLearner
from czsl.run import run_scenario

SETS = ["--set", "data.synthesis.samples_per_class=20", "--set", "model.hidden_dims=[64]",
        "--set", "train.epochs=40", "--threads", "1"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_each_signal_stops_a_run_with_the_same_note(tmp_path, signum):
    run_dir = tmp_path / "s"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "czsl.cli", "run", "--no-progress",
                             "--runs-dir", str(tmp_path), "--name", "s", *SETS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # wait for task 0's checkpoint (no time limit: a loaded machine is slow, not wrong)
        while not (run_dir / CHECKPOINT_DIR / STATE_FILE).is_file():
            assert proc.poll() is None, f"the run ended before the signal: {proc.stderr.read()}"
            time.sleep(0.02)
        os.kill(proc.pid, signum)
        out, err = proc.communicate()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signum, err
    assert err.strip().endswith("czsl: interrupted") and "Traceback" not in err
    assert re.search(r"note: interrupted during task \d; the tasks before it are saved: "
                     rf"continue with: czsl run --resume {re.escape(str(run_dir))}\n", out), out
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "results.json").exists()


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    def stop(self, task):
        raise KeyboardInterrupt

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    notes = []
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(None, ["threads=1"]), runs_dir=tmp_path, progress=False,
                     echo=notes.append)
    assert list(tmp_path.iterdir()) == []
    assert f"before any task was saved; {tmp_path / 'synthetic'} was removed" in notes[-1]
