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


def test_parity_md_is_rendered_from_its_parts():
    parity = _parity()
    records, commands = parity.read_parts(sorted((REPO / "benchmarks" / "parity_parts")
                                                 .glob("*.json")))
    assert records, "benchmarks/parity_parts holds the measured runs"
    text = parity.render(records, commands)
    assert text == (REPO / "benchmarks" / "parity.md").read_text()
    assert "SEMI-SYNTHETIC" in text and "DATASET = 'CUB'" in text
