"""The runner of A-CZSL's own code (benchmarks/authors/aczsl.py): its pickles, its
run-time edits and the parsing of their output (their code itself is never run here)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.authors import aczsl as runner
from czsl.data import make_synthetic

OUT = """device cpu
seen_acc: [0.5]
unseen_acc [0.1]
HM acc: [0.16666666666666669]
seen_acc: [0.5, 0.25]
unseen_acc [0.1, 0.2]
HM acc: [0.16666666666666669, 0.22222222222222224]
"""


def test_their_lists_are_averaged_in_percent():
    record = runner.parse(OUT, tasks=2)
    assert record["mSA"] == pytest.approx(37.5) and record["mUA"] == pytest.approx(15.0)
    assert record["mH"] == pytest.approx(100 * (1 / 6 + 2 / 9) / 2)
    assert record["steps"]["SA"] == [50.0, 25.0]
    with pytest.raises(SystemExit, match="tasks, not 3"):
        runner.parse(OUT, tasks=3)  # a task missing
    with pytest.raises(SystemExit, match="HM acc"):
        runner.parse(OUT.replace("HM acc", "H"), tasks=2)  # their print changed


def test_the_pickles_hold_czsl_grw_split_per_task(tmp_path):
    data = dataclasses.replace(make_synthetic(n_classes=200, n_attributes=4, n_features=6,
                                              samples_per_class=6, n_unseen=50), name="CUB")
    folder = runner.write_pickles(data, tmp_path / "pickles")

    def load(name):  # as their main.py's dataprocess reads them
        with open(folder / name, "rb") as f:
            return np.load(f, allow_pickle=True, encoding="latin1")

    train_x, train_y, train_a = load("trainData"), load("trainLabels"), load("trainAttributes")
    test_x, test_y = load("testData"), load("testLabels")
    attrs = load("dataAttributes")
    assert len(train_x) == len(test_y) == 20 and attrs.shape == (200, 4)
    n_images = 0
    for t in range(20):
        assert set(train_y[t]) | set(test_y[t]) <= set(range(10 * t, 10 * t + 10))
        assert train_x[t].shape == (len(train_y[t]), 6) and test_x[t].shape[1] == 6
        assert np.array_equal(train_a[t], attrs[train_y[t]])
        n_images += len(train_y[t]) + len(test_y[t])
    assert n_images == 1200


def _checkout(folder, drop=None):
    for name in runner.FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("# their file\n")
    olds = [old for file, _, old, _ in runner.EDITS if old != drop]
    (folder / "main.py").write_text("\n".join(olds) + "\n")
    return folder


def test_their_code_gets_the_listed_edits_only(tmp_path):
    checkout = _checkout(tmp_path / "checkout")
    dest = runner.edit(checkout, tmp_path / "run", tmp_path / "pickles", seed=3, tasks=2,
                       epochs=4, class_epochs=5)
    main = (dest / "main.py").read_text()
    for text in ("args.num_epochs = 4", "args.class_epochs = 5", "torch.manual_seed(3)",
                 "for t in range(2):", "raise SystemExit(0)",
                 f"test_label_path = {str(tmp_path / 'pickles' / 'testLabels')!r}"):
        assert text in main
    assert (dest / "networks" / "dis.py").read_text() == "# their file\n"
    assert "args.num_epochs = 100" in (checkout / "main.py").read_text()  # theirs: as is
    with pytest.raises(SystemExit, match=r"expected 'args.class_epochs = 30'.*update EDITS"):
        runner.edit(_checkout(tmp_path / "changed", drop="args.class_epochs = 30"),
                    tmp_path / "run2", tmp_path, seed=0, tasks=1, epochs=1, class_epochs=1)
