"""A local sweep's processes live no longer than its driver, and a run whose worker keeps
dying is recorded as failed: the driver runs as a subprocess of the test (in its own
session, so that its process group names exactly the processes it started) and is
killed with SIGKILL at each stage of a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from czsl.cli import main
from tests.sweep_helpers import grid_text, sweep_site  # noqa: F401

psutil = pytest.importorskip("psutil")

#: drivers in subprocesses, killed at each stage, one of them on Ray
pytestmark = pytest.mark.slow

#: generous bounds: a loaded machine imports torch slowly
START_TIMEOUT_S = 300
EXIT_TIMEOUT_S = 60
#: a local Ray instance's agents notice their raylet is gone only about a minute later
RAY_EXIT_TIMEOUT_S = 240

#: ``czsl sweep run`` whose summary writing (the driver's last stage, after its last run)
#: touches the file $CZSL_TEST_TAIL and waits forever
DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    from czsl.cli import main
    from czsl.sweep import driver

    def held(store):
        Path(os.environ["CZSL_TEST_TAIL"]).touch()
        while True:
            time.sleep(1)

    driver.write_summary = held
    sys.exit(main(sys.argv[1:]))
""")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pgid: int) -> set[psutil.Process]:
    """The processes of the process group ``pgid`` (the driver's session: only ours)."""
    members = set()
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.add(process)
        except (ProcessLookupError, psutil.Error):
            pass
    return members


def _wait_for(what: str, ready, driver: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        assert driver.poll() is None, f"the driver ended (status {driver.returncode}) " \
                                      f"before {what}"
        assert time.monotonic() < deadline, f"no {what} within {START_TIMEOUT_S} s"
        time.sleep(0.05)


def _is_forkserver(process: psutil.Process) -> bool:
    try:
        return "forkserver" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def _kill_and_collect(driver: subprocess.Popen, timeout: float) -> list[str]:
    """SIGKILL the driver; the processes it started that are still alive ``timeout``
    seconds later (then killed), as ``"pid cmdline"``."""
    descendants = set(psutil.Process(driver.pid).children(recursive=True))
    assert descendants, "the driver had started no process: the check sees nothing"
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + timeout
    while True:
        alive = {p for p in descendants | _group(driver.pid) if _alive(p)}
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    names = []
    for process in alive:
        try:
            names.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
            process.kill()
        except psutil.Error:
            pass
    return names


@pytest.mark.parametrize("stage", ["pool starting", "mid-run", "tail", "mid-run on ray"])
def test_killing_the_driver_at_any_stage_ends_every_process_it_started(
        stage, tmp_path, sweep_site, monkeypatch, capsys):
    backend = []
    if stage.endswith("on ray"):  # the local Ray instance the driver started
        pytest.importorskip("ray")
        backend = ["--backend", "ray"]
    method = ["regularizer=pausing"] if stage.startswith("mid-run") else ["regularizer=none"]
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text({"M": method}, seeds=[0]))
    out = tmp_path / "out"
    tail = tmp_path / "tail"
    monkeypatch.setenv("CZSL_TEST_TAIL", str(tail))
    monkeypatch.setenv("CZSL_TEST_HOLD", str(tmp_path / "never"))  # pausing never resumes
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, "sweep", "run", str(grid), "--out", str(out),
         "--jobs", "2", *backend], start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        if stage == "pool starting":
            _wait_for("fork server", lambda: any(
                map(_is_forkserver, psutil.Process(driver.pid).children())), driver)
        elif stage.startswith("mid-run"):  # its task 0 checkpointed, the run waits before task 1
            _wait_for("checkpoint", lambda: any(out.glob("runs/*/checkpoint/state.pt")),
                      driver)
        else:
            _wait_for("summary writing", tail.exists, driver)
        leftovers = _kill_and_collect(
            driver, RAY_EXIT_TIMEOUT_S if backend else EXIT_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for process in _group(driver.pid):  # whatever the test failed on, kill only ours
            process.kill()
    assert not leftovers, f"killed at '{stage}', the driver left running: {leftovers}"
    if stage.startswith("mid-run"):  # the stopped run resumes from its checkpoint
        assert main(["sweep", "status", str(out)]) == 0
        assert "0 running, 0 failed, 0 diverged, 1 resumable" in capsys.readouterr().out


def test_a_run_whose_worker_keeps_dying_is_recorded_failed_and_retried_on_request(
        tmp_path, sweep_site, monkeypatch, capsys):
    from czsl.sweep import backends

    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text({"Dying": ["regularizer=dying"], "Fine": ["regularizer=none"]},
                              seeds=[0]))
    out = tmp_path / "out"
    die = tmp_path / "die"
    die.touch()
    monkeypatch.setenv("CZSL_TEST_DIE", str(die))
    # in this process, whose fork server may predate $CZSL_TEST_DIE: each run gets the
    # driver's environment as it is when the run starts
    assert main(["sweep", "run", str(grid), "--out", str(out), "--jobs", "2"]) == 1
    text = capsys.readouterr().out
    why = f"its worker process died {backends.MAX_ATTEMPTS} times (the last killed by SIGKILL"
    assert why in text and "1 done, 1 failed;" in text.splitlines()[-1]
    # the run beside it ran once, undisturbed by the deaths
    fine = [ln for ln in text.splitlines() if "method=Fine" in ln]
    assert len(fine) == 1 and ": done, mH " in fine[0]
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["error"] and why in r["error"]) for r in summary["runs"]] == [
        ("failed", True), ("done", None)]
    assert main(["sweep", "status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 failed" in text and any(ln.startswith("failed: ") and "method=Dying" in ln
                                      and why in ln for ln in text.splitlines())

    die.unlink()
    assert main(["sweep", "run", str(grid), "--out", str(out)]) == 1  # not retried unasked
    assert "starting 0" in capsys.readouterr().out
    assert main(["sweep", "run", str(grid), "--out", str(out), "--retry-failed"]) == 0
    text = capsys.readouterr().out
    assert "starting 1" in text and "done (resumed)" in text  # from its task 0 checkpoint
    assert main(["sweep", "status", str(out)]) == 0
    assert "2 done, 0 running, 0 failed" in capsys.readouterr().out
