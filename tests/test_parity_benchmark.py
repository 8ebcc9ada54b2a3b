"""benchmarks/parity.py: the authors' notebook is run with exactly the listed edits, and
parity.md is what its committed parts render to."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _parity():
    spec = importlib.util.spec_from_file_location("czsl_bench_parity",
                                                  REPO / "benchmarks" / "parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: a stand-in for the notebook: its code cells hold every string the edits replace
MAIN_CELL = """\
class _Stub:
    def __getattr__(self, name):
        return lambda *args: print(name, *args)
np = torch = _Stub()
np.random = _Stub()
np.random.seed(1)
torch.manual_seed(1)
DEVICE = 'cuda'
DATA_DIR = f'./data/xlsa17/data/{DATASET}'
print(DATASET, DEVICE, DATA_DIR)
"""


def _notebook(folder: Path, main: str = MAIN_CELL) -> Path:
    cells = [{"cell_type": "markdown", "source": ["# title"]},
             {"cell_type": "code", "source": ["DATASET = 'AWA1' # comment\n"]},
             {"cell_type": "code", "source": ["%%bash\n", "wget -q xlsa17.zip\n"]},
             {"cell_type": "code", "source": main.splitlines(keepends=True)}]
    folder.mkdir()
    (folder / "class-norm-for-czsl.ipynb").write_text(json.dumps({"cells": cells}))
    return folder


def test_the_notebook_runs_with_the_listed_edits_only(tmp_path, capsys):
    parity = _parity()
    parity.run_notebook(_notebook(tmp_path / "checkout"), tmp_path / "xlsa17", seed=7)
    out = capsys.readouterr().out.splitlines()
    assert out == ["seed 7", "manual_seed 7", "set_num_threads 1",
                   f"CUB cpu {tmp_path / 'xlsa17'}/data/CUB"]     # the download cell is skipped


def test_a_changed_notebook_is_refused(tmp_path):
    parity = _parity()
    checkout = _notebook(tmp_path / "checkout", MAIN_CELL.replace("DEVICE = 'cuda'", "DEV = 1"))
    with pytest.raises(SystemExit, match="DEVICE = 'cuda'.*found it 0 times"):
        parity.run_notebook(checkout, tmp_path, seed=0)


def test_parity_md_is_rendered_from_its_record():
    parity = _parity()
    records, commands = parity.read_record(REPO / "benchmarks" / "parity.json")
    assert records, "benchmarks/parity.json holds the measured runs"
    text = parity.render(records, commands)
    assert text == (REPO / "benchmarks" / "parity.md").read_text(encoding="utf-8")
    assert "SEMI-SYNTHETIC" in text and "DATASET = 'CUB'" in text


def test_a_run_replaces_its_key_and_seed_in_the_record(tmp_path, monkeypatch):
    """New runs go into the record at once; a rerun of a key and seed replaces the old one;
    --render runs nothing and renders the same page from the record."""
    parity = _parity()
    record, out = tmp_path / "parity.json", tmp_path / "parity.md"
    old = {"zsl": 1.0, "u": 1.0, "s": 1.0, "H": 1.0, "cpu_s": 1.0, "wall_s": 1.0,
           "load": [1.0, 1.0], "dataset": "CUB (semi-synthetic)", "key": "czsl_reference",
           "seed": 0}
    parity.save_record(record, [old, {**old, "seed": 1}], ["cmd a"])
    monkeypatch.setattr(parity, "run_czsl", lambda key, root, seed, work: {
        **old, "u": 2.0, "H": 3.0})
    monkeypatch.setattr("czsl.data.load_dataset", lambda *a, **k: None)
    monkeypatch.setattr("czsl.data.write_xlsa17", lambda *a, **k: None)
    assert parity.main(["--runs", "czsl_reference", "--seeds", "0", "--record", str(record),
                        "--out", str(out)]) == 0
    runs, commands = parity.read_record(record)
    assert sorted((r["seed"], r["u"]) for r in runs) == [(0, 2.0), (1, 1.0)]
    assert commands[0] == "cmd a" and "--runs czsl_reference" in commands[1]
    page = out.read_text(encoding="utf-8")
    assert page == parity.render(runs, commands)
    out.unlink()
    assert parity.main(["--render", "--record", str(record), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == page and parity.read_record(record)[1] == commands
