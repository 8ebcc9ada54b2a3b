"""Tests of czsl.data: the xlsa17 and .npz readers, the generators and load_dataset."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from czsl.data import (
    ZSLDataset,
    load_dataset,
    make_semi_synthetic,
    make_synthetic,
    read_npz,
    read_xlsa17,
    write_npz,
)
from czsl.errors import DataError

#: ``../shared/data`` beside the checkout: the real CUB/SUN metadata, never committed.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------------------- helpers

def zero_shot_probe(ds: ZSLDataset, lam: float = 1.0) -> tuple[float, float]:
    """Closed-form ZSL: ridge regression features -> attributes on ``trainval``, then the
    candidate class with the most cosine-similar attribute vector.

    :returns: per-class mean accuracy on ``test_unseen`` among the unseen classes, and on
        ``test_seen`` among the seen (trainval) classes.
    """
    tv = ds.splits["trainval"]
    x = ds.features[tv]
    mean = x.mean(axis=0)
    x = x - mean                                                    # [n, D]
    y = ds.attributes[ds.labels[tv]].astype(np.float64)             # [n, A]
    gram = (x.T @ x).astype(np.float64)                             # [D, D]
    ridge = lam * np.trace(gram) / gram.shape[0]
    w = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), x.T.astype(np.float64) @ y)

    def accuracy(split: str, classes: np.ndarray) -> float:
        idx = ds.splits[split]
        pred = (ds.features[idx] - mean) @ w                        # [m, A]
        pred /= np.linalg.norm(pred, axis=1, keepdims=True) + 1e-12
        cand = ds.attributes[classes].astype(np.float64)
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        guess = classes[np.argmax(pred @ cand.T, axis=1)]
        truth = ds.labels[idx]
        return float(np.mean([np.mean(guess[truth == c] == c) for c in np.unique(truth)]))

    seen = np.unique(ds.labels[tv])
    unseen = np.unique(ds.labels[ds.splits["test_unseen"]])
    return accuracy("test_unseen", unseen), accuracy("test_seen", seen)


def xlsa17_vars(n_classes: int = 5, n_attr: int = 4, per_class: int = 6,
                dim: int = 2048, seed: int = 0) -> tuple[dict, dict]:
    """The variables of a tiny ``res101.mat`` and ``att_splits.mat`` in the exact xlsa17
    layout: features D x N double, 1-based N x 1 labels, att A x C, 1-based *_loc column
    vectors, allclasses_names a C x 1 cell array of strings. Classes 3 and 4 are unseen."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)             # 0-based, [N]
    images = np.arange(labels.size)
    seen = labels < 3
    test_seen = images[seen & (images % per_class == 0)]
    trainval = images[seen & (images % per_class != 0)]
    names = np.empty((n_classes, 1), dtype=object)
    names[:, 0] = [f"{c + 1:03d}.Class_{c}" for c in range(n_classes)]

    def col(idx: np.ndarray) -> np.ndarray:
        return (idx + 1).astype(np.float64)[:, None]                # 1-based, N x 1

    res = {"features": rng.random((dim, labels.size)), "labels": col(labels)}
    att = rng.random((n_attr, n_classes))
    splits = {
        "att": att, "original_att": att * 100, "allclasses_names": names,
        "trainval_loc": col(trainval), "test_seen_loc": col(test_seen),
        "test_unseen_loc": col(images[~seen]),
        "train_loc": col(images[labels < 2]), "val_loc": col(images[labels == 2]),
    }
    return res, splits


def write_xlsa17(folder: Path, res: dict, splits: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "res101.mat", res)
    scipy.io.savemat(folder / "att_splits.mat", splits)
    return folder


def tiny_meta(path: Path, n_classes: int = 12, n_unseen: int = 4, per_class: int = 10,
              n_attr: int = 6, seed: int = 0, **drop_or_replace) -> dict:
    """Write a metadata-only archive in the CUB_meta.npz layout; returns its arrays."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class).astype(np.int16)
    images = np.arange(labels.size)
    seen = labels >= n_unseen
    attrs = rng.random((n_classes, n_attr)).astype(np.float32)
    arrays = {
        "attributes": attrs / np.linalg.norm(attrs, axis=1, keepdims=True),
        "original_attributes": attrs,
        "class_names": np.array([f"class {c}" for c in range(n_classes)]),
        "trainval_loc": images[seen & (images % 5 != 0)].astype(np.int32),
        "test_seen_loc": images[seen & (images % 5 == 0)].astype(np.int32),
        "test_unseen_loc": images[~seen].astype(np.int32),
        "train_loc": images[labels >= n_unseen + 2].astype(np.int32),
        "val_loc": images[seen & (labels < n_unseen + 2)].astype(np.int32),
        "labels_reconstructed": labels,
        "seen_classes": np.arange(n_unseen, n_classes, dtype=np.int16),
        "unseen_classes": np.arange(n_unseen, dtype=np.int16),
    }
    for key, value in drop_or_replace.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez_compressed(path, **arrays)
    return arrays


def small_dataset(source: str = "real") -> ZSLDataset:
    ds = make_synthetic(n_classes=6, n_attributes=4, n_features=8, samples_per_class=5,
                        n_unseen=2, seed=3)
    return ZSLDataset(name="tiny", features=ds.features, labels=ds.labels,
                      attributes=ds.attributes, class_names=ds.class_names, splits=ds.splits,
                      source=source, origin="test")


def assert_same(a: ZSLDataset, b: ZSLDataset) -> None:
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.attributes, b.attributes)
    assert a.class_names == b.class_names
    assert sorted(a.splits) == sorted(b.splits)
    for split in a.splits:
        np.testing.assert_array_equal(a.splits[split], b.splits[split])


# --------------------------------------------------------------------------- xlsa17

def test_xlsa17_round_trip(tmp_path):
    res, splits = xlsa17_vars()
    ds = read_xlsa17(write_xlsa17(tmp_path / "cub", res, splits))
    assert ds.name == "CUB" and ds.source == "real" and ds.origin == str(tmp_path / "cub")
    assert ds.features.dtype == np.float32 and ds.features.shape == (30, 2048)
    np.testing.assert_array_equal(ds.features, res["features"].T.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, res["labels"][:, 0].astype(np.int64) - 1)
    assert ds.labels.dtype == np.int64 and ds.labels.min() == 0
    np.testing.assert_array_equal(ds.attributes, splits["att"].T.astype(np.float32))
    assert ds.class_names == tuple(f"{c + 1:03d}.Class_{c}" for c in range(5))
    assert sorted(ds.splits) == ["test_seen", "test_unseen", "train", "trainval", "val"]
    for split, idx in ds.splits.items():
        np.testing.assert_array_equal(idx, splits[f"{split}_loc"][:, 0].astype(np.int64) - 1)
    assert read_xlsa17(tmp_path / "cub", name="Birds").name == "Birds"


def test_xlsa17_optional_train_val_and_names(tmp_path):
    res, splits = xlsa17_vars()
    for key in ("train_loc", "val_loc", "allclasses_names"):
        del splits[key]
    ds = read_xlsa17(write_xlsa17(tmp_path / "sun", res, splits))
    assert sorted(ds.splits) == ["test_seen", "test_unseen", "trainval"]
    assert ds.class_names == tuple(f"class_{c}" for c in range(5))


def _drop(name):
    def edit(res, splits):
        (res if name in res else splits).pop(name)
    return edit


def _set(key, make):
    def edit(res, splits):
        target = res if key in ("features", "labels") else splits
        target[key] = make(target[key])
    return edit


def _shift_locs(res, splits):
    for key in [k for k in splits if k.endswith("_loc")]:
        splits[key] = splits[key] - 1


def _nan_feature(f):
    f = f.copy()
    f[7, 3] = np.nan
    return f


# (case id, edit of the variables, file the message must name, words it must contain)
XLSA17_CASES = [
    ("missing features", _drop("features"), "res101.mat", ["'features'", "no variable"]),
    ("missing trainval_loc", _drop("trainval_loc"), "att_splits.mat", ["'trainval_loc'"]),
    ("missing att", _drop("att"), "att_splits.mat", ["'att'"]),
    ("features 3-d", _set("features", lambda f: f[:, :, None]), "res101.mat", ["2-d"]),
    ("features transposed", _set("features", lambda f: f.T), "res101.mat", ["transposed"]),
    ("labels count", _set("labels", lambda lab: lab[:-1]), "res101.mat", ["labels", "29"]),
    ("labels 0-based", _set("labels", lambda lab: lab - 1), "res101.mat", ["0-based", "labels"]),
    ("locs 0-based", _shift_locs, "att_splits.mat", ["contains 0", "0-based", "test_seen_loc"]),
    ("one loc 0-based", _set("test_unseen_loc", lambda i: i - 1), "att_splits.mat",
     ["'trainval_loc' and 'test_unseen_loc' share", "0-based"]),
    ("loc out of range", _set("trainval_loc", lambda i: i + 30), "att_splits.mat",
     ["trainval_loc", "30 images"]),
    ("loc one past the end", _set("trainval_loc", lambda i: np.vstack([i, [[31.0]]])),
     "att_splits.mat", ["'trainval_loc' reaches image 31", "30 images"]),
    ("loc fractional", _set("val_loc", lambda i: i + 0.5), "att_splits.mat", ["val_loc", "whole"]),
    ("loc matrix", _set("test_seen_loc", lambda i: np.hstack([i, i])), "att_splits.mat",
     ["test_seen_loc", "column vector"]),
    ("NaN features", _set("features", _nan_feature), "res101.mat", ["NaN", "column 4"]),
    ("att too few classes", _set("att", lambda a: a[:, :4]), "att_splits.mat",
     ["'att'", "4 class columns", "5"]),
    ("att transposed", _set("att", lambda a: a.T), "att_splits.mat", ["transposed"]),
    ("att inf", _set("att", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.inf, a)),
     "att_splits.mat", ["NaN or inf", "column 4"]),
    ("att text", _set("att", lambda a: np.array(["abc", "def"])), "att_splits.mat",
     ["real-valued"]),
    ("names count", _set("allclasses_names", lambda n: n[:3]), "att_splits.mat",
     ["allclasses_names", "3 names"]),
    ("labels matrix", _set("labels", lambda lab: lab.reshape(-1, 2)), "res101.mat",
     ["'labels'", "column vector"]),
]


@pytest.mark.parametrize("edit,file,words", [c[1:] for c in XLSA17_CASES],
                         ids=[c[0] for c in XLSA17_CASES])
def test_xlsa17_corruption(tmp_path, edit, file, words):
    res, splits = xlsa17_vars()
    edit(res, splits)
    folder = write_xlsa17(tmp_path / "cub", res, splits)
    with pytest.raises(DataError) as err:
        read_xlsa17(folder)
    message = str(err.value)
    assert str(folder / file) in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_xlsa17_truncated_file(tmp_path, cut):
    folder = write_xlsa17(tmp_path / "cub", *xlsa17_vars())
    data = (folder / "res101.mat").read_bytes()
    (folder / "res101.mat").write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        read_xlsa17(folder)
    assert "res101.mat" in str(err.value) and "xlsa17" in str(err.value)
    assert err.value.__cause__ is not None


def test_xlsa17_header_only_file_is_a_missing_variable(tmp_path):
    folder = write_xlsa17(tmp_path / "cub", *xlsa17_vars())
    data = (folder / "att_splits.mat").read_bytes()
    (folder / "att_splits.mat").write_bytes(data[:128])      # the header, no variables
    with pytest.raises(DataError, match="truncated"):
        read_xlsa17(folder)


def test_xlsa17_not_a_mat_file_and_missing_files(tmp_path):
    folder = write_xlsa17(tmp_path / "cub", *xlsa17_vars())
    (folder / "att_splits.mat").write_bytes(b"this is not a MATLAB file" * 10)
    with pytest.raises(DataError, match="not a MATLAB .mat file"):
        read_xlsa17(folder)
    (folder / "att_splits.mat").unlink()
    with pytest.raises(DataError, match=r"missing att_splits\.mat"):
        read_xlsa17(folder)
    with pytest.raises(DataError, match="no such folder"):
        read_xlsa17(tmp_path / "nowhere")


def test_xlsa17_v73_file_is_explained(tmp_path):
    folder = write_xlsa17(tmp_path / "cub", *xlsa17_vars())
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    (folder / "res101.mat").write_bytes(header.ljust(116) + b"\0" * 8 + b"\x00\x02IM" + b"\0" * 64)
    with pytest.raises(DataError, match="v7.3"):
        read_xlsa17(folder)


# --------------------------------------------------------------------------- npz

def test_npz_round_trip(tmp_path):
    ds = make_synthetic(n_classes=8, n_attributes=5, n_features=16, samples_per_class=7,
                        n_unseen=2, seed=1)
    write_npz(ds, tmp_path / "data.npz")
    back = read_npz(tmp_path / "data.npz")
    assert_same(ds, back)
    assert back.name == "synthetic" and back.source == "synthetic"
    assert back.origin == str(tmp_path / "data.npz")
    assert read_npz(tmp_path / "data.npz", name="X").name == "X"
    write_npz(small_dataset(), tmp_path / "c.npz", compress=True)
    assert_same(read_npz(tmp_path / "c.npz"), small_dataset())


def test_npz_plain_archive_defaults(tmp_path):
    """An archive written by hand (no name/source) reads as real, named after the file."""
    ds = small_dataset()
    np.savez(tmp_path / "AWA2.npz", features=ds.features.astype(np.float64),
             labels=ds.labels.astype(np.int16), attributes=ds.attributes,
             class_names=np.array(ds.class_names), trainval_loc=ds.splits["trainval"],
             test_seen_loc=ds.splits["test_seen"].astype(np.int32),
             test_unseen_loc=ds.splits["test_unseen"], my_split_loc=np.array([0, 1]))
    back = read_npz(tmp_path / "AWA2.npz")
    assert back.name == "AWA2" and back.source == "real"
    assert back.features.dtype == np.float32 and back.labels.dtype == np.int64
    np.testing.assert_array_equal(back.splits["my_split"], [0, 1])


def test_write_npz_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    write_npz(small_dataset(), path)
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(DataError, match="disk full"):
        write_npz(make_synthetic(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]     # no temp file left
    monkeypatch.undo()
    with pytest.raises(DataError, match="cannot write"):
        write_npz(small_dataset(), tmp_path / "no" / "such" / "d.npz")


def _npz_arrays():
    ds = small_dataset()
    return {"features": ds.features, "labels": ds.labels, "attributes": ds.attributes,
            "class_names": np.array(ds.class_names), "trainval_loc": ds.splits["trainval"],
            "test_seen_loc": ds.splits["test_seen"], "test_unseen_loc": ds.splits["test_unseen"]}


NPZ_CASES = [
    ("missing features", {"features": None}, ["missing", "'features'"]),
    ("missing test_unseen_loc", {"test_unseen_loc": None}, ["'test_unseen_loc'"]),
    ("labels 2-d", {"labels": np.zeros((30, 1), np.int64)}, ["'labels'", "1-d"]),
    ("labels float", {"labels": np.zeros(30)}, ["'labels'", "integer"]),
    ("labels out of range", {"labels": np.full(30, 6)}, ["'labels'", "6 classes"]),
    ("loc 1-based", {"trainval_loc": np.arange(1, 31)}, ["'trainval_loc'", "1-based"]),
    ("features 1-d", {"features": np.zeros(30, np.float32)}, ["'features'", "2-d"]),
    ("features text", {"features": np.array([["a"]])}, ["'features'", "real-valued"]),
    ("attributes NaN", {"attributes": np.full((6, 4), np.nan, np.float32)}, ["NaN", "attributes"]),
    ("names count", {"class_names": np.array(["a", "b"])}, ["'class_names'", "2 entries"]),
    ("names pickled", {"class_names": np.array(["a"] * 6, dtype=object)},
     ["pickled", "class_names"]),
    ("bad source", {"source": np.array("made up")}, ["'source'", "made up"]),
    ("features NaN", {"features": np.full((30, 8), np.nan, np.float32)}, ["NaN", "feature rows"]),
]


@pytest.mark.parametrize("change,words", [c[1:] for c in NPZ_CASES], ids=[c[0] for c in NPZ_CASES])
def test_npz_corruption(tmp_path, change, words):
    arrays = _npz_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as err:
        read_npz(tmp_path / "d.npz")
    assert str(tmp_path / "d.npz") in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_npz_broken_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_npz(tmp_path / "absent.npz")
    write_npz(small_dataset(), tmp_path / "d.npz")
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt"):
        read_npz(tmp_path / "d.npz")
    (tmp_path / "d.npz").write_bytes(b"\0garbage" * 50)
    with pytest.raises(DataError, match="not a readable .npz"):
        read_npz(tmp_path / "d.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        read_npz(tmp_path / "one.npy")


def test_npz_meta_only_points_to_semi_synthetic(tmp_path):
    tiny_meta(tmp_path / "CUB_meta.npz")
    with pytest.raises(DataError) as err:
        read_npz(tmp_path / "CUB_meta.npz")
    message = str(err.value)
    assert "no 'features'" in message and "semi-synthetic" in message
    assert "CUB_meta.npz" in message


# --------------------------------------------------------------------------- synthetic

def test_synthetic_is_seeded():
    a, b, c = make_synthetic(seed=0), make_synthetic(seed=0), make_synthetic(seed=1)
    assert_same(a, b)
    assert a.source == "synthetic"
    assert not np.array_equal(a.features, c.features)
    assert not np.array_equal(a.splits["test_unseen"], c.splits["test_unseen"])


def test_synthetic_splits_are_xlsa17_like():
    ds = make_synthetic(n_classes=20, n_unseen=5, samples_per_class=10, seed=4)
    assert ds.features.shape == (200, 128) and ds.attributes.shape == (20, 24)
    assert (ds.features >= 0).all() and 0.2 < np.mean(ds.features == 0) < 0.7
    np.testing.assert_allclose(np.linalg.norm(ds.attributes, axis=1), 1, rtol=1e-5)
    tv, ts, tu = (ds.splits[s] for s in ("trainval", "test_seen", "test_unseen"))
    assert np.array_equal(np.sort(np.concatenate([tv, ts, tu])), np.arange(200))
    seen, unseen = np.unique(ds.labels[tv]), np.unique(ds.labels[tu])
    assert len(seen) == 15 and len(unseen) == 5 and not set(seen) & set(unseen)
    np.testing.assert_array_equal(np.unique(ds.labels[ts]), seen)
    assert np.all(np.bincount(ds.labels[ts], minlength=20)[seen] == 2)        # 20 % of 10
    train_cls = np.unique(ds.labels[ds.splits["train"]])
    val_cls = np.unique(ds.labels[ds.splits["val"]])
    assert not set(train_cls) & set(val_cls) and set(train_cls) | set(val_cls) == set(seen)


def test_synthetic_is_learnable_but_not_trivial():
    ds = make_synthetic()
    unseen_acc, seen_acc = zero_shot_probe(ds)
    chance = 1 / 10
    assert 3 * chance < unseen_acc < 0.95, unseen_acc
    assert 0.3 < seen_acc < 0.95, seen_acc


def test_knobs_move_difficulty_as_documented():
    def mean_probe(**knobs):
        return np.mean([zero_shot_probe(make_synthetic(seed=s, **knobs)) for s in (0, 1)], axis=0)

    base, explained, unexplained = mean_probe(), mean_probe(residual=0.0), mean_probe(residual=3.0)
    assert explained[0] > base[0] + 0.05 > unexplained[0] + 0.15     # residual hurts unseen
    assert unexplained[1] > base[1]                                    # ...and helps seen
    quiet, noisy = mean_probe(noise=0.5), mean_probe(noise=4.0)
    assert quiet[0] > base[0] + 0.1 > noisy[0] + 0.2
    assert quiet[1] > base[1] + 0.1 > noisy[1] + 0.2


@pytest.mark.parametrize("kwargs,word", [
    ({"n_unseen": 49}, "n_unseen"), ({"n_classes": 2}, "n_classes"),
    ({"samples_per_class": 1.5}, "samples_per_class"), ({"noise": -1}, "noise"),
    ({"residual": float("nan")}, "residual"), ({"seed": -1}, "seed"),
])
def test_synthetic_rejects_bad_arguments(kwargs, word):
    with pytest.raises(DataError, match=word):
        make_synthetic(**kwargs)


def test_reading_data_never_imports_torch(tmp_path):
    write_xlsa17(tmp_path / "CUB", *xlsa17_vars())
    tiny_meta(tmp_path / "SUN_meta.npz")
    code = ("import sys; import czsl.data as d; "
            f"root = {str(tmp_path)!r}; "
            "d.write_npz(d.load_dataset('CUB', root), root + '/x.npz'); "
            "d.read_npz(root + '/x.npz'); "
            "d.load_dataset('SUN', root); d.load_dataset('synthetic'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    repo = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo, env=env)


# --------------------------------------------------------------------------- semi-synthetic

def test_semi_synthetic_on_a_tiny_meta_archive(tmp_path):
    meta = tiny_meta(tmp_path / "TINY_meta.npz")
    ds = make_semi_synthetic(tmp_path / "TINY_meta.npz", n_features=64, seed=5)
    assert ds.name == "TINY" and ds.source == "semi-synthetic"
    assert ds.label == "TINY (semi-synthetic)"
    assert ds.features.shape == (120, 64) and ds.features.dtype == np.float32
    assert (ds.features >= 0).all()
    np.testing.assert_array_equal(ds.labels, meta["labels_reconstructed"])
    np.testing.assert_array_equal(ds.attributes, meta["attributes"])
    assert ds.class_names == tuple(meta["class_names"])
    for split in ("trainval", "test_seen", "test_unseen", "train", "val"):
        np.testing.assert_array_equal(ds.splits[split], meta[f"{split}_loc"])
    assert "seed=5" in ds.origin and "residual=0.75" in ds.origin and "noise=2.75" in ds.origin
    again = make_semi_synthetic(tmp_path / "TINY_meta.npz", n_features=64, seed=5)
    np.testing.assert_array_equal(ds.features, again.features)
    other = make_semi_synthetic(tmp_path / "TINY_meta.npz", n_features=64, seed=6)
    assert not np.array_equal(ds.features, other.features)
    easy = make_semi_synthetic(tmp_path / "TINY_meta.npz", n_features=64, residual=0, noise=0)
    class_spread = [np.ptp(easy.features[easy.labels == c], axis=0).max() for c in range(12)]
    assert max(class_spread) == 0                                   # noise=0: one vector per class


@pytest.mark.parametrize("change,kwargs,words", [
    ({"labels_reconstructed": None}, {}, ["labels_reconstructed", "per-image labels"]),
    ({"attributes": None}, {}, ["'attributes'"]),
    ({"labels_reconstructed": np.arange(120) % 13}, {}, ["labels_reconstructed", "12 classes"]),
    ({"test_seen_loc": np.array([500])}, {}, ["test_seen_loc", "120 images"]),
    ({}, {"noise": -0.1}, ["noise", ">= 0"]),
    ({}, {"n_features": 0}, ["n_features"]),
    ({}, {"seed": "1"}, ["seed", "integer"]),
])
def test_semi_synthetic_errors(tmp_path, change, kwargs, words):
    tiny_meta(tmp_path / "T_meta.npz", **change)
    with pytest.raises(DataError) as err:
        make_semi_synthetic(tmp_path / "T_meta.npz", **kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.fixture(scope="module", params=["CUB", "SUN"])
def real_meta(request):
    path = SHARED / f"{request.param}_meta.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the real CUB/SUN metadata live in ../shared/data "
                    "beside the checkout and are never committed")
    ds = make_semi_synthetic(path)
    with np.load(path) as meta:
        arrays = {k: meta[k] for k in meta.files}
    return request.param, ds, arrays


def test_semi_synthetic_keeps_the_real_metadata(real_meta):
    name, ds, meta = real_meta
    n_images = {"CUB": 11788, "SUN": 14340}[name]
    assert ds.name == name and ds.source == "semi-synthetic"
    assert ds.features.shape == (n_images, 2048) and ds.features.dtype == np.float32
    assert ds.features.flags.c_contiguous and (ds.features >= 0).all()
    assert 0.2 < np.mean(ds.features == 0) < 0.7                     # sparse-ish, not dead
    np.testing.assert_array_equal(ds.labels, meta["labels_reconstructed"])
    np.testing.assert_array_equal(ds.attributes, meta["attributes"])
    assert ds.class_names == tuple(meta["class_names"])
    for split in ("trainval", "test_seen", "test_unseen", "train", "val"):
        np.testing.assert_array_equal(ds.splits[split], meta[f"{split}_loc"])


def test_semi_synthetic_transfer_is_real_but_imperfect(real_meta):
    name, ds, meta = real_meta
    unseen_acc, seen_acc = zero_shot_probe(ds)
    chance = 1 / len(meta["unseen_classes"])
    assert 10 * chance < unseen_acc < 0.8, unseen_acc
    assert 0.15 < seen_acc < 0.9, seen_acc


def test_semi_synthetic_is_deterministic():
    path = SHARED / "CUB_meta.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the real metadata live in ../shared/data)")
    a, b = make_semi_synthetic(path, seed=1), make_semi_synthetic(path, seed=1)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.features[:50], make_semi_synthetic(path, seed=2).features[:50])


# --------------------------------------------------------------------------- load_dataset

def test_load_dataset_resolution_order(tmp_path):
    tiny_meta(tmp_path / "CUB_meta.npz")
    ds = load_dataset("CUB", tmp_path, seed=2, options={"n_features": 16, "noise": 0.5})
    assert ds.source == "semi-synthetic" and ds.name == "CUB" and ds.n_features == 16
    assert "seed=2" in ds.origin and "noise=0.5" in ds.origin

    write_npz(small_dataset(), tmp_path / "CUB.npz")
    assert load_dataset("CUB", tmp_path).origin == str(tmp_path / "CUB.npz")
    assert load_dataset("CUB", tmp_path, features="semi-synthetic").source == "semi-synthetic"

    write_xlsa17(tmp_path / "CUB", *xlsa17_vars())
    ds = load_dataset("CUB", tmp_path, features="real")
    assert ds.origin == str(tmp_path / "CUB") and ds.source == "real" and ds.n_features == 2048

    write_xlsa17(tmp_path, *xlsa17_vars(n_classes=6, dim=7))
    ds = load_dataset("CUB", tmp_path)
    assert ds.origin == str(tmp_path) and ds.n_features == 7 and ds.name == "CUB"
    assert load_dataset("CUB", tmp_path, features="semi-synthetic").source == "semi-synthetic"


def test_load_dataset_synthetic():
    ds = load_dataset("synthetic", seed=3, options={"n_classes": 12, "n_unseen": 3})
    assert ds.source == "synthetic" and ds.n_classes == 12
    assert_same(ds, make_synthetic(seed=3, n_classes=12, n_unseen=3))
    with pytest.raises(DataError, match=r"unknown option\(s\) \['n_clases'\].*'n_classes'"):
        load_dataset("synthetic", options={"n_clases": 12})
    with pytest.raises(DataError, match="load_dataset's own 'seed'"):
        load_dataset("synthetic", options={"seed": 1})
    with pytest.raises(DataError, match="features='auto'"):
        load_dataset("synthetic", features="real")


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="no data_dir given"):
        load_dataset("CUB")
    with pytest.raises(DataError, match="not an existing folder"):
        load_dataset("CUB", tmp_path / "nowhere")
    with pytest.raises(DataError, match="not one of"):
        load_dataset("CUB", tmp_path, features="fake")
    with pytest.raises(DataError) as err:
        load_dataset("CUB", tmp_path)
    for path in (tmp_path / "res101.mat", tmp_path / "CUB" / "res101.mat",
                 tmp_path / "CUB.npz", tmp_path / "CUB_meta.npz"):
        assert str(path) in str(err.value)
    assert "To fix" in str(err.value)

    scipy.io.savemat(tmp_path / "att_splits.mat", xlsa17_vars()[1])
    with pytest.raises(DataError, match="att_splits.mat exists but res101.mat"):
        load_dataset("CUB", tmp_path)

    tiny_meta(tmp_path / "CUB_meta.npz")
    with pytest.raises(DataError) as err:
        load_dataset("CUB", tmp_path, features="real")
    assert "only metadata" in str(err.value) and "xlsa17.zip" in str(err.value)
    with pytest.raises(DataError, match=r"\['residul'\].*'residual'"):
        load_dataset("CUB", tmp_path, options={"residul": 1.0})

    write_npz(small_dataset(source="semi-synthetic"), tmp_path / "CUB.npz")
    assert load_dataset("CUB", tmp_path).source == "semi-synthetic"
    with pytest.raises(DataError, match="holds semi-synthetic features"):
        load_dataset("CUB", tmp_path, features="real")
    write_npz(small_dataset(), tmp_path / "CUB.npz")
    with pytest.raises(DataError, match=r"options \['noise'\].*take no options"):
        load_dataset("CUB", tmp_path, options={"noise": 1.0})

    (tmp_path / "SUN").mkdir()
    scipy.io.savemat(tmp_path / "SUN" / "res101.mat", xlsa17_vars()[0])
    with pytest.raises(DataError, match=r"missing att_splits\.mat"):   # found, but broken
        load_dataset("SUN", tmp_path)


# --------------------------------------------------------------------------- properties

_EXAMPLES = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_DTYPES = st.sampled_from(["float64", "float32", "int64", "int32", "uint8", "int16", "bool",
                           "complex128", "<U3"])


@st.composite
def _random_array(draw):
    """Any small array (random dtype, shape, values incl. NaN/inf) or a plausible index
    column (small whole numbers, sometimes 0 or negative)."""
    if draw(st.booleans()):
        n = draw(st.integers(0, 8))
        values = draw(st.lists(st.integers(-1, 40), min_size=n, max_size=n))
        return np.array(values, dtype=draw(st.sampled_from(["float64", "int64", "int8"])))[:, None]
    dtype = np.dtype(draw(_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


def _mutate(draw, arrays: dict, keys: list[str]) -> dict:
    """Delete or replace up to 3 entries of a valid set of variables, or add junk."""
    arrays = dict(arrays)
    for key in draw(st.lists(st.sampled_from([*keys, "junk"]), max_size=3)):
        if key in arrays and draw(st.booleans()):
            del arrays[key]
        else:
            arrays[key] = draw(_random_array())
    return arrays


def _bytes_variants(draw, data: bytes, flips: bool = True) -> bytes:
    """``data`` truncated, with bytes overwritten (if ``flips``), or replaced by random
    bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "random"] if flips else ["truncate", "random"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        return bytes(buf)
    prefix = draw(st.sampled_from([b"", b"PK\x03\x04", b"\x93NUMPY", b"MATLAB 5.0 MAT-file"]))
    return prefix + draw(st.binary(max_size=400))


@_EXAMPLES
@given(st.data())
def test_read_xlsa17_only_raises_data_error(data):
    res, splits = xlsa17_vars(dim=6)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if data.draw(st.booleans()):
            res = _mutate(data.draw, res, list(res))
            splits = _mutate(data.draw, splits, list(splits))
            write_xlsa17(folder, res, splits)
        else:
            write_xlsa17(folder, res, splits)
            target = folder / data.draw(st.sampled_from(["res101.mat", "att_splits.mat"]))
            # No overwritten bytes inside a valid .mat: scipy's v5 reader is not memory-safe
            # on those and can crash the interpreter (see the czsl.data.xlsa17 docstring).
            target.write_bytes(_bytes_variants(data.draw, target.read_bytes(), flips=False))
        try:
            ds = read_xlsa17(folder)
        except DataError:
            return
        assert isinstance(ds, ZSLDataset)


@_EXAMPLES
@given(st.data())
def test_read_npz_and_meta_only_raise_data_error(data):
    arrays = {**_npz_arrays(), "train_loc": np.arange(5), "name": np.array("n"),
              "source": np.array("real")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        if data.draw(st.booleans()):
            np.savez(path, **_mutate(data.draw, arrays, list(arrays)))
        else:
            np.savez(path, **arrays)
            path.write_bytes(_bytes_variants(data.draw, path.read_bytes()))
        for read in (read_npz, lambda p: make_semi_synthetic(p, n_features=4)):
            try:
                assert isinstance(read(path), ZSLDataset)
            except DataError:
                pass
