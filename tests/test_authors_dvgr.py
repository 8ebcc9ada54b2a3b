"""benchmarks/authors/dvgr.py: DVGR's notebook becomes a script with exactly the listed
edits, a changed notebook is refused, and the printed accuracies are read back."""

from __future__ import annotations

import json

import pytest

from benchmarks.authors import dvgr

#: a stand-in for the notebook's code: every string the edits replace, as often as there
CODE = ("x = y.cuda()\n" * 14 + "path = 'FolderPath'\nfor i in range(total_tasks):\n"
        "num_epochs = 101 #51\nnum_epochs = 25\nnum_samples = 150\n"
        "Adam(self.net.parameters(), lr = 1e-4)\nAdam(self.CLASS.parameters(), lr = 1e-4)\n")
VALUES = {"pickles": "/p", "seed": 3, "tasks": 2, "epochs": 25, "classifier_epochs": 1,
          "classifier_per_class": 7, "lr": 0.001, "classifier_lr": 1e-4}


def _notebook(folder, code):
    cells = [{"cell_type": "markdown", "source": ["# DVGR"]},
             {"cell_type": "code", "source": code.splitlines(keepends=True)}]
    (folder / dvgr.NOTEBOOK).write_text(json.dumps({"cells": cells}))
    return folder


def test_the_script_is_the_code_with_the_listed_edits(tmp_path):
    script = dvgr.notebook_script(_notebook(tmp_path, CODE), **VALUES)
    assert script.startswith("import random as _r") and "_t.manual_seed(3)" in script
    assert ".cuda()" not in script and script.count("x = y\n") == 14
    # the VAE's 25 epochs are not taken for the classifier's "num_epochs = 25"
    assert [ln for ln in script.splitlines() if ln.startswith("num_")] == [
        "num_epochs = 25", "num_epochs = 1", "num_samples = 7"]
    for line in ("path = '/p'", "for i in range(min(total_tasks, 2)):",
                 "Adam(self.net.parameters(), lr = 0.001)",
                 "Adam(self.CLASS.parameters(), lr = 0.0001)"):
        assert line in script.splitlines()


def test_a_changed_notebook_is_refused_naming_the_edit(tmp_path):
    with pytest.raises(SystemExit, match=r"'num_samples = 150' \(generated features"):
        dvgr.notebook_script(_notebook(tmp_path, CODE.replace("num_samples = 150", "")),
                             **VALUES)


def test_the_last_printed_lists_are_read_in_percent():
    out = ("self.seen_acc: [0.5]\nself.unseen_acc: [0.1]\nself.hm_acc: [0.2]\n"
           "self.overall_acc: [0.3]\n"
           "self.seen_acc: [0.5, 0.7]\nself.unseen_acc: [0.1, 0.3]\nself.hm_acc: [0.2, 0.4]\n")
    record = dvgr.parse(out, tasks=2)
    assert record["mSA"] == pytest.approx(60) and record["mUA"] == pytest.approx(20)
    assert record["mH"] == pytest.approx(30) and len(record["steps"]) == 2
    with pytest.raises(SystemExit, match="3 tasks"):
        dvgr.parse(out, tasks=3)
