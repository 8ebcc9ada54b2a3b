"""benchmarks/parity.py: the authors' notebook is run with exactly the listed edits, and
parity.md is what its committed parts render to."""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys
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


#: GRW's printed lines (tasks 1 and 2; the other lines of its output are noise here)
GRW_OUT = """\
Script has started
Epoch 1/5...
Best accuracy at task 1 at epoch 4: unseen : 0.0200, seen : 0.6000, H : 0.0387
Replay data shape : torch.Size([465, 2048])
Best accuracy at task 2 at epoch 4: unseen : 0.0400, seen : 0.5000, H : 0.0741
"""


def test_grw_output_is_averaged_over_its_tasks():
    parity = _parity()
    got = parity.parse_grw(GRW_OUT)
    assert [round(st["SA"], 6) for st in got["steps"]] == [60.0, 50.0]
    assert got["mSA"] == pytest.approx(55.0) and got["mUA"] == pytest.approx(3.0)
    assert got["mH"] == pytest.approx((3.87 + 7.41) / 2)  # the mean of the per-task H


def test_grw_output_without_its_task_lines_is_refused():
    parity = _parity()
    with pytest.raises(SystemExit, match="no per-task accuracies.*update GRW_LINE"):
        parity.parse_grw(GRW_OUT.replace("Best accuracy", "Accuracy"))
    with pytest.raises(SystemExit, match=r"found tasks \[2\]"):    # a task is missing
        parity.parse_grw(GRW_OUT.split("Replay")[1])


def _grw_checkout(folder: Path, main_cuda: int = 23) -> Path:
    """A stand-in for GRW's src/: every string GRW_EDITS replaces, as many times as
    there, in code that only runs once edited (no GPU here)."""
    src = folder / "src"
    src.mkdir(parents=True)
    cuda = ".cuda()"
    (src / "main.py").write_text(f"""\
import torch
from torch.autograd import Variable
from data import DATA_LOADER as dataloader
if not torch.cuda.is_available():
    raise SystemExit('please use GPU!')
class opt:
    seed, num_tasks = 3, 20
torch.manual_seed(opt.seed)
iter_task = opt.num_tasks
x = torch.ones(1, 2){cuda * (main_cuda - 2)}
D, G = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
D_optimizer = torch.optim.SGD(D.parameters(), lr=0.5)
G_optimizer = torch.optim.SGD(G.parameters(), lr=0.5)
loss = G(D(x)).sum()
loss.backward(retain_graph=True)
D_optimizer.step()
G_optimizer.step()
loss.backward(retain_graph=True)   # through a graph built before the steps (torch 1.4)
G_optimizer.step()
acc = Variable(torch.Tensor([0.0]), requires_grad=True).cuda()
acc += 1.0
acc2 = Variable(torch.Tensor([0.0]), requires_grad=True).cuda()
acc2 += D.weight.grad.sum()
print(dataloader, torch.get_num_threads(), iter_task, float(acc.detach()), torch.initial_seed())
""")
    (src / "data.py").write_text(f"DATA_LOADER = torch = 0\nx = 1\n# {cuda * 4}\n")
    (src / "rw_loss.py").write_text(f"# {cuda * 5}\n")
    (src / "config.yaml").write_text("lr: 0.0002\n")
    return folder


def _run_main(src: Path, monkeypatch, capsys) -> str:
    """Run ``src/main.py`` as ``python main.py`` would, in this process (no second torch
    import); what it printed. torch's threads and random state are restored after."""
    import torch

    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    monkeypatch.chdir(src)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.delitem(sys.modules, "data", raising=False)  # main.py imports its data.py
    capsys.readouterr()
    try:
        runpy.run_path(str(src / "main.py"), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(rng)
    return capsys.readouterr().out


def test_grw_code_runs_with_the_listed_edits_only(tmp_path, monkeypatch, capsys):
    parity = _parity()
    checkout = _grw_checkout(tmp_path / "checkout")
    src = parity.edit_grw(checkout, tmp_path / "run", tasks=5)
    assert sorted(p.name for p in src.iterdir()) == ["config.yaml", "data.py", "main.py",
                                                     "rw_loss.py"]
    assert ".cuda()" not in "".join(p.read_text() for p in src.iterdir())
    assert _run_main(src, monkeypatch, capsys).split() == [
        "0", "1", "6", "1.0", "3"]   # tasks 1 .. 5: iter_task 6
    assert (checkout / "src" / "main.py").read_text().count(".cuda()") == 23  # theirs: as is


def test_changed_grw_code_is_refused(tmp_path):
    parity = _parity()
    checkout = _grw_checkout(tmp_path / "checkout", main_cuda=22)
    with pytest.raises(SystemExit, match=r"main.py: expected '.cuda\(\)' \(CPU\) 21 times, "
                                         "found it 20 times.*update GRW_EDITS"):
        parity.edit_grw(checkout, tmp_path / "run")
    (checkout / "src" / "rw_loss.py").unlink()
    with pytest.raises(SystemExit, match="rw_loss.py: not found.*wx-zhang/IGCZSL"):
        parity.edit_grw(checkout, tmp_path / "run2")


def test_grw_says_what_it_needs(tmp_path, monkeypatch):
    parity = _parity()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "easydict" else real(name, *a))
    with pytest.raises(SystemExit, match="needs easydict.*not czsl dependencies.*pip install "
                                         "easydict"):
        parity.run_grw(tmp_path, tmp_path, 0, tmp_path)


def test_the_pages_prose_is_read_from_its_notes_file(tmp_path, monkeypatch):
    """``benchmarks/notes/NAME.md``: each ``<!-- NAME -->`` block up to the next, blank lines
    around it dropped, the file's own comment above the first block ignored."""
    from benchmarks import _common

    monkeypatch.setattr(_common, "ROOT", tmp_path)
    (tmp_path / "benchmarks" / "notes").mkdir(parents=True)
    (tmp_path / "benchmarks" / "notes" / "page.md").write_text(
        "<!-- what this file is -->\n\n<!-- A -->\nfirst line\n\n* a list\n\n\n"
        "<!-- B_2 -->\n\nonly <!-- B --> inline\n")
    assert _common.notes("page", ("A", "B_2")) == {"A": "first line\n\n* a list",
                                                   "B_2": "only <!-- B --> inline"}
    with pytest.raises(SystemExit, match=r"notes/page.md has no block <!-- C -->; add it"):
        _common.notes("page", ("A", "C"))
    with pytest.raises(SystemExit, match=r"notes/other.md not found"):
        _common.notes("other")
