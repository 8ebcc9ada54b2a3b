"""``czsl sweep`` on the local backend: real runs (synthetic data, one epoch, 2 jobs)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from czsl.cli import main
from czsl.sweep import backends, store
from czsl.sweep.summary import load_summary
from czsl.sweep.table import METRICS, render_csv, render_markdown
from tests.sweep_helpers import grid_text, results, same_run, sweep_site  # noqa: F401

METHODS = {"Sequential": ["regularizer=none"], "EWC": ["regularizer=ewc_online"]}


def _sweep(capsys, *argv) -> tuple[int, str, str]:
    code = main(["sweep", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def recorded(monkeypatch):
    """The specs handed to the local backend and the outcomes it reported, per call."""
    calls: list[dict] = []
    real = backends.run_local

    def spy(specs, *, jobs, on_done):
        call = {"ids": sorted(s["id"] for s in specs), "outcomes": []}
        calls.append(call)

        def done(outcome):
            call["outcomes"].append(outcome)
            on_done(outcome)
        real(specs, jobs=jobs, on_done=done)

    monkeypatch.setattr(backends, "run_local", spy)
    return calls


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory, sweep_site):
    """2 methods x 2 seeds, run once for the module."""
    root = tmp_path_factory.mktemp("sweep")
    grid = root / "grid.toml"
    grid.write_text(grid_text(METHODS))
    out = root / "out"
    code = main(["sweep", "run", str(grid), "--out", str(out), "--jobs", "2"])
    assert code == 0
    return grid, out


def _copy(done_sweep, tmp_path) -> tuple[Path, Path]:
    grid, out = done_sweep
    shutil.copytree(out, tmp_path / "out")
    return grid, tmp_path / "out"


# ------------------------------------------------------------------ refused grids


@pytest.mark.parametrize("extra, methods, words", [
    ('[[when]]\nmatch = { dataset = "cub" }\nset = ["train.lr=0.1"]\n', METHODS,
     ["[[when]] #1 matches the unknown axis 'dataset'"]),
    ("", {"Sequential": ["train.epoch=2"]}, ["cell method=Sequential, seed=0",
                                             "unknown key 'train.epoch'", "'epochs'"]),
    ("", {"Typo": ["regularizer=ewc_onlin"]}, ["cell method=Typo", "unknown regularizer "
                                               "'ewc_onlin'", "'ewc_online'"]),
    ("[axes.empty]\n", METHODS, ["axis 'empty' is empty"]),
    ("[table]\nrows = [\"size\"]\n", METHODS, ["[table] rows names ['size']"]),
])
def test_bad_grid_is_refused_with_one_line_before_any_run(tmp_path, capsys, extra, methods,
                                                          words):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text(methods, extra=extra))
    code, out, err = _sweep(capsys, "run", grid, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()


def test_dry_run_lists_every_run_with_its_overrides_and_starts_none(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text(METHODS, seeds=[0, 1, 2]))
    code, out, _ = _sweep(capsys, "run", grid, "--out", tmp_path / "out", "--dry-run")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 7 and "0 already done" in lines[-1]
    assert sum("pending" in ln and "method=EWC, seed=2" in ln
               and "--set regularizer=ewc_online --set seed=2" in ln for ln in lines) == 1
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ claims


def test_a_claim_is_exclusive_and_a_dead_owners_claim_is_taken_over(tmp_path):
    path = tmp_path / "claims" / "abc"
    fd = store.claim(path)
    assert fd is not None and store.is_claimed(path)
    assert store.claim(path) is None  # held: refused
    store.release(path, fd)
    assert not store.is_claimed(path)

    # a process that claims and is killed leaves a claim nobody holds
    code = ("import sys, os, signal; from pathlib import Path; from czsl.sweep import store\n"
            f"store.claim(Path({str(path)!r})); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL and path.exists()
    assert not store.is_claimed(path)
    fd = store.claim(path)
    assert fd is not None and store.claim_owner(path)["pid"] == os.getpid()
    store.release(path, fd)


def test_the_sweep_store_reads_checkpoints_where_czsl_checkpoint_writes_them():
    from czsl import checkpoint

    assert store.CHECKPOINT_STATE == Path(checkpoint.CHECKPOINT_DIR) / checkpoint.STATE_FILE


# ------------------------------------------------------------------ a real sweep


def test_two_methods_two_seeds_run_once_each_with_their_labels(done_sweep, capsys):
    grid, out = done_sweep
    runs = results(out)
    assert len(runs) == 4
    seen = set()
    for run_id, res in runs.items():
        labels = json.loads((out / "runs" / run_id / "labels.json").read_text())
        assert labels["threads"] == 1 and labels["seed"] == res["seed"]
        expected = {"Sequential": "none", "EWC": "ewc_online"}[labels["labels"]["method"]]
        assert res["regularizer"] == expected and res["n_tasks"] == 3
        seen.add((labels["labels"]["method"], res["seed"]))
    assert seen == {(m, s) for m in METHODS for s in (0, 1)}
    code, text, _ = _sweep(capsys, "status", out)
    assert code == 0 and "4 done, 0 running, 0 failed, 0 diverged, 0 resumable, 0 pending" in text


def test_table_equals_the_runs_results_and_renders_the_same_from_the_summary(done_sweep,
                                                                            tmp_path, capsys):
    grid, out = done_sweep
    by_method: dict[str, list[dict]] = {}
    for run_id, res in results(out).items():
        method = json.loads((out / "runs" / run_id / "labels.json").read_text())["labels"]
        by_method.setdefault(method["method"], []).append(res["summary"])
    summary = load_summary(out)
    rows = list(csv.DictReader(io.StringIO(render_csv(summary))))
    assert len(rows) == len(METHODS) * len(METRICS)
    for row in rows:
        values = [s[row["metric"]] for s in by_method[row["method"]]]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert row["n"] == "2" and row["failed"] == "0"

    code, text, _ = _sweep(capsys, "table", out, "--out", tmp_path / "t.md",
                           "--csv", tmp_path / "t.csv")
    assert code == 0 and text == (tmp_path / "t.md").read_text() == render_markdown(summary)
    # the compact summary alone (no run folders) gives the same table, byte for byte
    assert (out / "summary.json").is_file()
    shutil.copy(out / "summary.json", tmp_path / "summary.json")
    code, again, _ = _sweep(capsys, "table", tmp_path / "summary.json")
    assert code == 0 and again == text
    mean = statistics.fmean(s["mH"] for s in by_method["EWC"])
    assert f"| EWC | " in text and f"{mean:.1f} ± " in text


def test_each_run_records_its_cpu_seconds_for_the_table(done_sweep):
    grid, out = done_sweep
    summary = load_summary(out)
    assert all(r["cpu_s"] > 0 for r in summary["runs"])
    assert all(r["semantic_transductive"] is False for r in summary["runs"])
    assert "| CPU s/run |" in render_markdown(summary).splitlines()[3]


def test_rerun_starts_nothing(done_sweep, tmp_path, capsys, monkeypatch):
    grid, out = _copy(done_sweep, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*")}

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished sweep started runs")

    monkeypatch.setattr(backends, "run_local", forbidden)
    code, text, _ = _sweep(capsys, "run", grid, "--out", out, "--jobs", "2")
    assert code == 0 and "starting 0" in text
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*")} == before


def test_deleting_one_results_json_reruns_exactly_that_run(done_sweep, tmp_path, capsys,
                                                           recorded):
    grid, out = _copy(done_sweep, tmp_path)
    old = results(out)
    victim = sorted(old)[1]
    (out / "runs" / victim / "results.json").unlink()
    code, _, _ = _sweep(capsys, "run", grid, "--out", out, "--jobs", "2")
    assert code == 0
    assert [c["ids"] for c in recorded] == [[victim]]
    assert [o["status"] for o in recorded[0]["outcomes"]] == ["done"]
    new = results(out)
    assert set(new) == set(old) and all(same_run(new[k], old[k]) for k in old)


def test_grown_grid_runs_only_new_cells_and_a_failing_plugin_is_recorded(
        done_sweep, tmp_path, capsys, recorded):
    grid, out = _copy(done_sweep, tmp_path)
    old = results(out)
    grown = tmp_path / "grown.toml"
    grown.write_text(grid_text({**METHODS, "Broken": ["regularizer=exploding"]}))
    code, _, _ = _sweep(capsys, "run", grown, "--out", out, "--jobs", "2")
    assert code == 1  # a run failed
    assert len(recorded) == 1 and len(recorded[0]["ids"]) == 2
    assert not set(recorded[0]["ids"]) & set(old)
    assert {o["status"] for o in recorded[0]["outcomes"]} == {"failed"}
    new = results(out)
    assert set(new) == set(old) and all(new[k] == old[k] for k in old)

    code, text, _ = _sweep(capsys, "status", out)
    assert "4 done, 0 running, 2 failed" in text
    failures = [ln for ln in text.splitlines() if ln.startswith("failed: ")]
    assert len(failures) == 2 and all("method=Broken" in ln and "exploded on purpose" in ln
                                      for ln in failures)
    code, table, _ = _sweep(capsys, "table", out)
    assert "| Broken | 2 failed |" in table

    # failed runs are not retried unless asked
    recorded.clear()
    assert _sweep(capsys, "run", grown, "--out", out)[0] == 1 and recorded == []


def test_a_worker_killed_mid_run_is_resumed_to_the_identical_result(tmp_path, capsys,
                                                                    sweep_site, recorded,
                                                                    monkeypatch):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text({"Pausing": ["regularizer=pausing"]}, seeds=[3]))
    release = tmp_path / "release"
    monkeypatch.setenv("CZSL_TEST_HOLD", str(release))

    # the uninterrupted run: released from the start
    release.touch()
    assert main(["sweep", "run", str(grid), "--out", str(tmp_path / "ref")]) == 0
    (reference,) = results(tmp_path / "ref").values()

    release.unlink()
    out = tmp_path / "out"
    codes = []
    driver = threading.Thread(target=lambda: codes.append(
        main(["sweep", "run", str(grid), "--out", str(out), "--jobs", "1"])))
    driver.start()
    try:
        state = list((out / "runs").glob("*/checkpoint/state.pt")) if out.exists() else []
        while not state:  # the worker waits before task 1, its task 0 checkpointed
            assert driver.is_alive(), "the sweep ended before its run checkpointed"
            time.sleep(0.05)
            state = list((out / "runs").glob("*/checkpoint/state.pt"))
        run_id = state[0].parents[1].name
        pid = store.claim_owner(out / "claims" / run_id)["pid"]
        os.kill(pid, signal.SIGKILL)
    finally:
        release.touch()
        driver.join()
    assert codes == [0]
    outcomes = [o for call in recorded for o in call["outcomes"]]
    assert [(o["status"], o["resumed"]) for o in outcomes] == [("done", False), ("done", True)]
    assert outcomes[1]["pid"] != pid
    (resumed,) = results(out).values()
    assert same_run(resumed, reference)


def test_sweep_help_status_and_table_import_neither_torch_nor_ray(done_sweep):
    grid, out = done_sweep
    for argv in (["sweep", "--help"], ["sweep", "status", str(out)],
                 ["sweep", "table", str(out)]):
        code = (f"import sys; from czsl.cli import main\n"
                f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
                "assert 'torch' not in sys.modules, 'torch imported'\n"
                "assert 'ray' not in sys.modules, 'ray imported'\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, (argv, proc.stderr)


def test_a_diverged_run_is_recorded_and_never_retried(tmp_path, capsys, recorded):
    grid = tmp_path / "grid.toml"
    grid.write_text(grid_text({"Huge lr": ["train.lr=1e30"]}, seeds=[0]))
    out = tmp_path / "out"
    code, _, _ = _sweep(capsys, "run", grid, "--out", out)
    assert code == 0  # a diverged run is a result of the grid, not an error to fix
    assert [o["status"] for o in recorded[0]["outcomes"]] == ["diverged"]
    assert not any((out / "runs").iterdir())  # the core removed its folder
    code, text, _ = _sweep(capsys, "status", out)
    assert "1 diverged" in text and "training diverged during task" in text
    recorded.clear()
    assert _sweep(capsys, "run", grid, "--out", out, "--retry-failed")[0] == 0
    assert recorded == []
    assert "| Huge lr | 1 diverged |" in _sweep(capsys, "table", out)[1]
