"""``czsl sweep``: storage faults and damaged files are one line with exit status 2 (for
a damaged run, a line of ``status`` and of ``table``, also exit status 2), and a rerun repairs what it can, finishing
with the results of an undisturbed sweep.

Tests run as root, where permission bits do not stop writes, so read-only folders, lost
permissions and full disks are simulated by making the file system calls raise their
``OSError`` (as tests/test_storage_faults.py does for ``czsl run``); a run's worker then
runs in the test's process (:func:`in_process`), where those patches reach it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from czsl import checkpoint, runfolder
from czsl.cli import main
from czsl.sweep import backends, store, worker
from tests.sweep_helpers import grid_text, results, same_run

METHODS = {"Sequential": ["regularizer=none"]}


def _sweep(capsys, *argv) -> tuple[int, str, str]:
    code = main(["sweep", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(code: int, err: str, *words: str) -> None:
    """The command failed with exit status 2 and one line holding ``words``."""
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    assert err.startswith("czsl: error: ")
    for word in words:
        assert word in err, (word, err)


def _fault(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One method x 2 seeds, run undisturbed on the real local backend."""
    root = tmp_path_factory.mktemp("reference")
    grid = root / "grid.toml"
    grid.write_text(grid_text(METHODS))
    out = root / "out"
    assert main(["sweep", "run", str(grid), "--out", str(out), "--jobs", "2"]) == 0
    return grid, out


@pytest.fixture
def in_process(monkeypatch):
    """Run every run in this process, one after the other; the outcomes, in order."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the worker sets them: restored
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    outcomes: list[dict] = []

    def run_local(specs, *, jobs, on_done):
        for spec in specs:
            outcomes.append(worker.execute(spec))
            on_done(outcomes[-1])

    monkeypatch.setattr(backends, "run_local", run_local)
    return outcomes


def _copy(reference, tmp_path) -> tuple[Path, Path]:
    grid, out = reference
    shutil.copytree(out, tmp_path / "out")
    return grid, tmp_path / "out"


def _metrics(out: Path) -> dict[str, tuple]:
    """run id -> status, summary metrics and per-step figures, from summary.json."""
    summary = json.loads((out / "summary.json").read_text())
    return {r["id"]: (r["status"], r["summary"], r["steps"]) for r in summary["runs"]}


def _same_as_reference(reference, out: Path) -> None:
    """The sweep in ``out`` finished with the reference's results."""
    ref = reference[1]
    assert _metrics(out) == _metrics(ref)
    new, old = results(out), results(ref)
    assert set(new) == set(old) and all(same_run(new[k], old[k]) for k in old)
    assert not list(out.glob("**/.*.tmp"))


def _rerun(capsys, grid, out, *flags, expect: int = 0) -> str:
    code, text, err = _sweep(capsys, "run", grid, "--out", out, *flags)
    assert code == expect and not err, (code, err)
    return text


# ------------------------------------------------------------------ unwritable sweep folders


@pytest.mark.parametrize("code_, words", [
    (errno.EROFS, "is on a read-only file system"),
    (errno.EACCES, "cannot be written (no permission)"),
    (errno.ENOSPC, "is on a full disk"),
    (errno.EIO, "cannot be written (an input/output error"),
])
def test_an_unwritable_sweep_folder_is_one_line_before_any_run(
        reference, tmp_path, monkeypatch, capsys, in_process, code_, words):
    grid, out = reference[0], tmp_path / "out"
    with monkeypatch.context() as mp:
        def mkstemp(*args, **kwargs):
            raise _fault(code_)

        mp.setattr(runfolder.tempfile, "mkstemp", mkstemp)
        code, _, err = _sweep(capsys, "run", grid, "--out", out)
    _one_line(code, err, f"{out} {words}", "then run the sweep again")
    assert not out.exists() and in_process == []
    _rerun(capsys, grid, out)
    _same_as_reference(reference, out)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permission bits do not stop root's writes")
def test_a_read_only_sweep_folder_by_its_mode(reference, tmp_path, capsys):
    grid, out = _copy(reference, tmp_path)
    (out / "runs" / next(iter(results(out))) / "results.json").unlink()
    out.chmod(0o555)
    try:
        code, _, err = _sweep(capsys, "run", grid, "--out", out)
    finally:
        out.chmod(0o755)
    _one_line(code, err, f"{out} cannot be written (no permission)")
    _rerun(capsys, grid, out)
    _same_as_reference(reference, out)


def test_write_permission_lost_mid_sweep(reference, tmp_path, monkeypatch, capsys,
                                         in_process):
    grid, out = reference[0], tmp_path / "out"
    inside = str(out.resolve())
    lost = pytest.MonkeyPatch()

    def deny(real, is_write=lambda *a, **k: True):
        def call(path, *args, **kwargs):
            if str(Path(path).resolve()).startswith(inside) and is_write(*args, **kwargs):
                raise _fault(errno.EACCES)
            return real(path, *args, **kwargs)
        return call

    def lose_permission(outcome):  # after the first run: nothing in the folder is writable
        lost.setattr(os, "open", deny(os.open, lambda flags, *a, **k: flags & (
            os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        for name in ("mkdir", "unlink", "replace", "rmdir"):
            lost.setattr(os, name, deny(getattr(os, name)))

    run_local = backends.run_local

    def losing(specs, *, jobs, on_done):
        def done(outcome):
            on_done(outcome)
            if len(in_process) == 1:
                lose_permission(outcome)
        run_local(specs, jobs=jobs, on_done=done)

    monkeypatch.setattr(backends, "run_local", losing)
    try:
        code, text, err = _sweep(capsys, "run", grid, "--out", out)
    finally:
        lost.undo()
    _one_line(code, err, f"{out} cannot be written (no permission)",
              "then run the sweep again")
    assert [o["status"] for o in in_process] == ["done", "failed"]
    assert in_process[1]["kind"] == "storage" and "no permission" in in_process[1]["error"]
    # the failure could not be recorded: a plain rerun runs it
    monkeypatch.setattr(backends, "run_local", run_local)
    in_process.clear()
    _rerun(capsys, grid, out)
    assert [o["status"] for o in in_process] == ["done"]
    _same_as_reference(reference, out)


# ------------------------------------------------------------------ full disks


@pytest.mark.parametrize("target", ["sweep.json", "summary.json"])
def test_a_full_disk_on_the_drivers_own_writes_leaves_no_temporary_file(
        reference, tmp_path, monkeypatch, capsys, in_process, target):
    grid, out = reference[0], tmp_path / "out"
    replace = os.replace

    def full(src, dst, *args, **kwargs):
        if Path(dst).name == target:
            raise _fault(errno.ENOSPC)
        return replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", full)
        code, _, err = _sweep(capsys, "run", grid, "--out", out)
    _one_line(code, err, f"{out} is on a full disk", "free some space")
    assert not list(out.glob("**/.*.tmp")) and not (out / target).exists()
    assert len(in_process) == (2 if target == "summary.json" else 0)
    _rerun(capsys, grid, out)
    _same_as_reference(reference, out)


@pytest.mark.parametrize("record_fails", [False, True], ids=["recorded", "unrecorded"])
def test_a_run_stopped_by_a_full_disk_resumes_on_a_plain_rerun(
        reference, tmp_path, monkeypatch, capsys, in_process, record_fails):
    grid, out = reference[0], tmp_path / "out"
    write, replace, calls = checkpoint.atomic_write, os.replace, []

    def full_at_task_1(path, fn):
        calls.append(path)
        if len(calls) == 2:  # the first run's checkpoint of task 1
            raise _fault(errno.ENOSPC)
        write(path, fn)

    def full_state(src, dst, *args, **kwargs):
        if Path(dst).parent.name == "state":
            raise _fault(errno.ENOSPC)
        return replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(checkpoint, "atomic_write", full_at_task_1)
        if record_fails:
            mp.setattr(os, "replace", full_state)
        code, _, err = _sweep(capsys, "run", grid, "--out", out)
    _one_line(code, err, "1 run(s) stopped on a storage fault", "is on a full disk",
              "without --retry-failed")
    stopped = in_process[0]
    assert [o["status"] for o in in_process] == ["failed", "done"]
    assert stopped["kind"] == "storage"
    record = out / "state" / f"{stopped['id']}.json"
    if record_fails:
        assert not record.exists() and "not recorded" in stopped["error"]
    else:
        assert json.loads(record.read_text())["kind"] == "storage"
    assert not list(out.glob("**/.*.tmp"))
    assert checkpoint.has_checkpoint(out / "runs" / stopped["id"])

    in_process.clear()
    text = _rerun(capsys, grid, out)  # no --retry-failed
    assert ("retrying 1 run(s) that failed on a storage fault" in text) != record_fails
    assert [(o["id"], o["status"], o["resumed"]) for o in in_process] == [
        (stopped["id"], "done", True)]
    assert not record.exists()
    _same_as_reference(reference, out)


def test_a_failure_of_another_kind_still_needs_retry_failed(reference, tmp_path, capsys,
                                                           in_process):
    grid, out = _copy(reference, tmp_path)
    victim = sorted(results(out))[0]
    (out / "runs" / victim / "results.json").unlink()
    store.SweepDir(out).record_failure(victim, "failed", "RuntimeError: a plugin's bug")
    text = _rerun(capsys, grid, out, expect=1)  # a run failed
    assert "starting 0" in text and in_process == []
    assert "1 failed run(s) are not retried" in text
    _rerun(capsys, grid, out, "--retry-failed")
    _same_as_reference(reference, out)


def test_stale_temporary_files_are_removed_by_status_and_run(reference, tmp_path, capsys,
                                                             in_process):
    grid, out = _copy(reference, tmp_path)
    (out / "state").mkdir(exist_ok=True)
    old = time.time() - 3600
    stale = [out / ".summary.json.4242.tmp", out / ".sweep.json.x1y2.tmp",
             out / "state" / ".0123456789abcdef.json.77.tmp"]
    for path in stale:
        path.write_text("")  # a writer killed mid-write
        os.utime(path, (old, old))
    live = out / ".summary.json.4343.tmp"  # another driver writing now
    live.write_text("")
    code, _, err = _sweep(capsys, "status", out)
    assert code == 0 and not err
    assert not any(p.exists() for p in stale) and live.exists()

    stale[0].write_text("")
    os.utime(stale[0], (old, old))
    live.unlink()
    _rerun(capsys, grid, out)
    _same_as_reference(reference, out)


# ------------------------------------------------------------------ damaged files


DAMAGE = {
    "truncated": lambda text: text[:len(text) // 2],
    "a list": lambda text: "[1, 2]\n",
    "a string": lambda text: '"done"\n',
    "garbage": lambda text: "\udcff\x00\x01garbage",
    "no summary": lambda text: json.dumps({"summary": 3, "metrics": {}}),
}


def _damage(path: Path, how: str) -> None:
    text = DAMAGE[how](path.read_text() if path.exists() else "")
    path.write_bytes(text.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_results_json_is_reported_and_its_run_runs_again(
        reference, tmp_path, capsys, in_process, how):
    grid, out = _copy(reference, tmp_path)
    victim = sorted(results(out))[1]
    _damage(out / "runs" / victim / "results.json", how)

    code, text, err = _sweep(capsys, "status", out)
    assert code == 2 and not err and "Traceback" not in text
    assert "1 done" in text and "1 damaged" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("damaged: ")]
    assert victim in line and "results.json is damaged" in line and "runs it again" in line

    written = tmp_path / "table.md"
    code, table, err = _sweep(capsys, "table", out, "--out", written)
    assert code == 2 and "| Sequential | " in table and "[1 missing]" in table
    assert err.count("\n") == 1 and "1 run(s) have a damaged results.json" in err
    assert not written.exists()

    text = _rerun(capsys, grid, out)
    assert f"runs/{victim}/results.json is damaged" in text and "the run runs again" in text
    assert [(o["id"], o["status"]) for o in in_process] == [(victim, "done")]
    _same_as_reference(reference, out)


@pytest.mark.parametrize("how", ["a list", "a string", "garbage", "truncated", "no status"])
def test_a_damaged_failure_record_is_ignored_with_a_note(reference, tmp_path, capsys,
                                                         in_process, how):
    grid, out = _copy(reference, tmp_path)
    victim = sorted(results(out))[0]
    (out / "runs" / victim / "results.json").unlink()
    record = out / "state" / f"{victim}.json"
    record.parent.mkdir(exist_ok=True)
    if how == "no status":
        record.write_text(json.dumps({"error": "x"}))
    else:
        record.write_text(json.dumps({"status": "failed", "error": "RuntimeError: x"}))
        _damage(record, how)

    code, text, err = _sweep(capsys, "status", out)
    assert code == 0 and not err and "1 pending" in text and "0 failed" in text
    assert f"note: {record} is damaged" in text and "ignored" in text

    text = _rerun(capsys, grid, out)
    assert f"note: {record} is damaged" in text and "not failed" in text
    assert [(o["id"], o["status"]) for o in in_process] == [(victim, "done")]
    assert not record.exists()
    _same_as_reference(reference, out)


@pytest.mark.parametrize("how", ["truncated", "a list", "garbage"])
def test_a_damaged_sweep_json_is_one_line_and_rewritten_by_a_rerun(reference, tmp_path,
                                                                   capsys, in_process, how):
    grid, out = _copy(reference, tmp_path)
    _damage(out / "sweep.json", how)
    for command in ("status", "table"):
        code, _, err = _sweep(capsys, command, out)
        _one_line(code, err, f"{out / 'sweep.json'} is damaged", "run 'czsl sweep run'")
    _rerun(capsys, grid, out)
    assert in_process == []
    _same_as_reference(reference, out)


@pytest.mark.parametrize("how", ["truncated", "a list", "garbage", "no summary"])
def test_a_damaged_summary_json_is_one_line(reference, tmp_path, capsys, how):
    summary = tmp_path / "summary.json"
    shutil.copy(reference[1] / "summary.json", summary)
    _damage(summary, how)
    code, _, err = _sweep(capsys, "table", summary)
    _one_line(code, err, str(summary))


def test_table_out_that_cannot_be_written_is_one_line(reference, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    code, _, err = _sweep(capsys, "table", reference[1], "--out", tmp_path / "folder")
    _one_line(code, err, f"cannot write {tmp_path / 'folder'}")


# ------------------------------------------------------------------ refused grids and --out


@pytest.mark.parametrize("text, words", [
    ("sweep = 3\n", ["'sweep' must be a table", "got 3"]),
    ('when = "x"\n[axes.m]\na = []\n', ["'when' must be an array of tables", "got 'x'"]),
    ("table = []\n[axes.m]\na = []\n", ["'table' must be a table", "got []"]),
    ("axes = 3\n", ["'axes' must be a table"]),
    ("[axes]\nm = 3\n", ["axis 'm' must be a table of labels"]),
    ('[axes.m]\na = []\n[[when]]\nmatch = { m = "a" }\nset = "x"\n',
     ["[[when]] #1 set must be a list"]),
    ('[axes.m]\na = []\n[[when]]\nmatch = { m = ["a"] }\n', ["[[when]] #1 matches m = ['a']"]),
    ("[axes.m]\na = []\n[table]\nrows = 0\n", ["[table] rows must be a list of names"]),
    ("[axes.m]\na = []\n[table]\ncolumns = 3\n", ["[table] columns must be a list"]),
    ('[axes.m]\na = []\n[table]\nmetrics = [["mH"]]\n', ["[table] metrics must be a list"]),
    ("[sweep]\nseeds = [[1]]\n", ["[sweep] seeds must be a non-empty list"]),
    ('[sweep]\nname = "a\\u0000b"\n', ["[sweep] name 'a\\x00b' cannot name a sweep folder"]),
    ('[sweep]\nname = ".."\n', ["[sweep] name '..' cannot name a sweep folder"]),
    ('[sweep]\nname = "."\n', ["[sweep] name '.' cannot name a sweep folder"]),
    ('[sweep]\nname = "a/b"\n', ["[sweep] name 'a/b' cannot name a sweep folder"]),
    ('[sweep]\nname = "a\\\\b"\n', ["cannot name a sweep folder"]),
    ('[sweep]\nname = " "\n', ["cannot name a sweep folder"]),
])
def test_a_grid_of_the_wrong_shape_is_one_line_naming_grid_and_key(tmp_path, capsys,
                                                                   monkeypatch, text, words):
    monkeypatch.chdir(tmp_path)  # a default --out (sweeps/NAME) would land here
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    for flag in ([], ["--dry-run"]):
        code, out, err = _sweep(capsys, "run", grid, *flag)
        _one_line(code, err, f"grid {grid}: ", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]


def test_out_naming_an_existing_file_is_one_line(reference, tmp_path, capsys):
    grid = reference[0]
    file = tmp_path / "file"
    file.write_text("not a folder")
    for out, flags in ((file, []), (file, ["--dry-run"]), (file / "sub", [])):
        code, _, err = _sweep(capsys, "run", grid, "--out", out, *flags)
        _one_line(code, err, str(out))
    code, _, err = _sweep(capsys, "status", file)
    _one_line(code, err, f"{file} is not a sweep folder")
    assert file.read_text() == "not a folder"
