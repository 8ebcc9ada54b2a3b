"""One list of a dataset's files (czsl.data.files) for the readers and for a sweep run's
identity: both accept the same folders, the fingerprint follows every file the readers
read, and the fingerprints of the layouts committed runs used have not changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from czsl.cli import main
from czsl.data import dataset_files, load_dataset, make_synthetic, write_npz, write_xlsa17
from czsl.data.files import candidate_files, sources
from czsl.sweep import identity
from tests.test_data import tiny_meta

#: a fast continual run on a dataset read from --data-dir (20 classes, 5 unseen)
FAST_FILES = ["data.dataset=CUB", "train.epochs=1", "protocol.task_sizes=[5,5,5]"]


def _tiny():
    return make_synthetic(n_classes=20, n_unseen=5, samples_per_class=20, n_features=16,
                          n_attributes=8, seed=1)


def _fingerprint(folder: Path) -> str:
    identity._file_hashes.clear()  # a file rewritten within the mtime's resolution
    return identity.data_fingerprint("CUB", folder)


def test_the_fingerprint_imports_no_torch(tmp_path):
    """Importing a run's identity loads nothing heavy; fingerprinting loads no torch."""
    (tmp_path / "CUB_meta.npz").write_bytes(b"meta")
    code = ("import sys; import czsl.sweep.identity as i\n"
            "assert not {'torch', 'numpy'} & set(sys.modules), 'imported at import'\n"
            f"i.data_fingerprint('CUB', __import__('pathlib').Path({str(tmp_path)!r}))\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_committed_layouts_keep_their_fingerprint(tmp_path):
    """Committed sweep summaries name their runs by these ids: the metadata folder's
    and a <name>/ xlsa17 folder's fingerprints are the ones they were made with."""
    (tmp_path / "CUB_meta.npz").write_bytes(b"meta")
    assert _fingerprint(tmp_path) == "e2c9aa33b8c12e9eedcc961ea99d6550"
    (tmp_path / "CUB").mkdir()
    (tmp_path / "CUB" / "res101.mat").write_bytes(b"feat")
    (tmp_path / "CUB" / "att_splits.mat").write_bytes(b"split")
    assert _fingerprint(tmp_path) == "fb1fc822e2c1c0879b6e83c30d3316f0"


@pytest.mark.parametrize("layout", ["root", "name", "xlsa17", "npz", "meta"])
def test_the_reader_reads_only_files_the_fingerprint_hashes(tmp_path, layout):
    ds = _tiny()
    if layout == "meta":
        tiny_meta(tmp_path / "CUB_meta.npz")
        read = [tmp_path / "CUB_meta.npz"]
    elif layout == "npz":
        write_npz(ds, tmp_path / "CUB.npz")
        read = [tmp_path / "CUB.npz"]
    else:
        folder = {"root": tmp_path, "name": tmp_path / "CUB",
                  "xlsa17": tmp_path / "data" / "CUB"}[layout]
        write_xlsa17(ds, folder)
        read = [folder / "res101.mat", folder / "att_splits.mat"]
    (tmp_path / "notes.txt").write_text("not a dataset file")
    loaded = load_dataset("CUB", tmp_path)
    # origin: the xlsa17 folder, or the archive (+ " with synthesised features ...")
    assert loaded.origin == str(read[0].parent) or loaded.origin.split(" with ")[0] == str(read[0])
    assert [path for _, path in dataset_files("CUB", tmp_path)] == read
    before = _fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("changed")
    assert _fingerprint(tmp_path) == before
    for path in read:  # any byte the reader reads changes the run ids
        saved = path.read_bytes()
        path.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
        assert _fingerprint(tmp_path) != before, path
        path.write_bytes(saved)
        assert _fingerprint(tmp_path) == before


def test_every_candidate_file_is_hashed_in_the_readers_order(tmp_path):
    files = candidate_files("CUB")
    assert files == [str(f) for s in sources("CUB") for f in s.files]
    assert files[:6] == ["res101.mat", "att_splits.mat", "CUB/res101.mat",
                         "CUB/att_splits.mat", "data/CUB/res101.mat", "data/CUB/att_splits.mat"]
    seen = set()
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
        fingerprint = _fingerprint(tmp_path)
        assert fingerprint not in seen, rel
        seen.add(fingerprint)
    assert [rel for rel, _ in dataset_files("CUB", tmp_path)] == files


def test_sweep_and_run_accept_the_unpacked_xlsa17_root(tmp_path, capsys):
    """``--data-dir xlsa17`` (the archive's root, holding data/CUB/) works for czsl run
    and for czsl sweep alike."""
    root = tmp_path / "xlsa17"
    write_xlsa17(_tiny(), root / "data" / "CUB")
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[sweep]\nseeds = [0]\nset = {json.dumps(FAST_FILES)}\n\n"
                    "[axes.method]\nSequential = [\"regularizer=none\"]\n")
    code = main(["sweep", "run", str(grid), "--data-dir", str(root), "--dry-run",
                 "--out", str(tmp_path / "sweep")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 runs, 0 already done" in out and "pending" in out
    runs = tmp_path / "runs"
    args = ["run", "--data-dir", str(root), "--runs-dir", str(runs), "--no-progress",
            "--threads", "1"]
    code = main([*args, *[a for s in FAST_FILES for a in ("--set", s)]])
    assert code == 0, capsys.readouterr().err
    assert len(list(runs.glob("*/results.json"))) == 1
    # a folder with none of the files: one line, listing where it looked
    code = main(["sweep", "run", str(grid), "--data-dir", str(tmp_path / "runs"),
                 "--dry-run", "--out", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2 and "data/CUB/res101.mat" in err and "CUB_meta.npz" in err
