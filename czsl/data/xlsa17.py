"""Read a dataset folder in the original xlsa17 layout (Xian et al., CVPR 2017 / TPAMI 2019).

A folder such as ``xlsa17/data/CUB`` holds two MATLAB files:

``res101.mat``
    ``features`` (D x N, one ResNet-101 feature column per image) and ``labels``
    (N x 1, 1-based class ids).
``att_splits.mat``
    ``att`` (A x C, one attribute column per class), ``original_att``,
    ``allclasses_names`` (C x 1 cell array of strings; optional here), and the 1-based
    index column vectors ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc``
    (the proposed split) and, optionally, ``train_loc`` and ``val_loc``.

:func:`read_xlsa17` converts everything to czsl's conventions: 0-based indices, features
``[N, D]`` float32, labels int64, attributes ``[C, A]`` float32. MATLAB v7.3 (HDF5)
files are not supported; the official release is v5, which ``scipy.io.loadmat`` reads.

:func:`write_xlsa17` writes a :class:`ZSLDataset` back out in that layout (v5, 1-based,
features as doubles), so that code written for the official files, such as the authors'
code of a method, runs on the same data as czsl. Besides the official variables it
stores ``czsl_source`` (``"semi-synthetic"``, ...) where the features are not real, so
that a (semi-)synthetic dataset read back stays labelled as such.

Missing, truncated and non-MATLAB files raise :class:`~czsl.errors.DataError`. One case
cannot be caught: a v5 file whose bytes were overwritten in the middle (not cut short) can
make scipy's C reader crash the interpreter (a segmentation fault; scipy does not
bounds-check every field of such files). If reading a downloaded file crashes Python,
download it again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse

from czsl.data.dataset import REQUIRED_SPLITS, SOURCES, ZSLDataset
from czsl.data.files import FEATURES_FILE, SPLITS_FILE
from czsl.errors import DataError
_OPTIONAL_SPLITS = ("train", "val")
#: czsl's own variable in res101.mat: where the features come from, if not real images
SOURCE_VARIABLE = "czsl_source"
_REFETCH = ("take a fresh copy from the official xlsa17 archive (xlsa17.zip, MPI-INF "
            "'Zero-Shot Learning - The Good, the Bad and the Ugly')")


def read_xlsa17(folder: str | os.PathLike[str], name: str | None = None) -> ZSLDataset:
    """Read ``folder/res101.mat`` and ``folder/att_splits.mat`` into a :class:`ZSLDataset`.

    :param folder: the dataset folder, e.g. ``xlsa17/data/CUB``.
    :param name: the dataset's name; default: the folder's name upper-cased.
    :returns: the dataset with ``origin`` the folder and ``source="real"`` (or the
        ``czsl_source`` that :func:`write_xlsa17` stored); splits
        ``trainval``, ``test_seen``, ``test_unseen`` and, where the file has them,
        ``train`` and ``val``. Class names default to ``class_<k>`` when
        ``allclasses_names`` is absent.
    :raises DataError: if a file is missing, corrupt or truncated, a variable is missing
        or has the wrong shape or type, indices look 0-based or fall out of range, the
        attribute matrix disagrees with the labels about the number of classes, or a
        value is NaN or inf. The message names the file and the variable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; point it at an xlsa17 dataset folder "
                        f"holding {FEATURES_FILE} and {SPLITS_FILE} (e.g. xlsa17/data/CUB)")
    feat_path, split_path = folder / FEATURES_FILE, folder / SPLITS_FILE
    absent = [p.name for p in (feat_path, split_path) if not p.is_file()]
    if absent:
        raise DataError(f"{folder}: missing {' and '.join(absent)}; an xlsa17 folder holds "
                        f"{FEATURES_FILE} (image features and labels) and {SPLITS_FILE} "
                        f"(attributes and splits); {_REFETCH}")

    mat = _loadmat(feat_path, ("features", "labels", SOURCE_VARIABLE))
    source = _source(mat, feat_path)
    features = _numeric(mat, feat_path, "features")
    labels = _one_based(mat, feat_path, "labels")
    if features.ndim != 2:
        raise DataError(f"{feat_path}: 'features' must be a 2-d D x N matrix (one column per "
                        f"image), got shape {features.shape}")
    n_images = labels.shape[0]
    if n_images == 0:
        raise DataError(f"{feat_path}: 'labels' is empty; the file has no images")
    if features.shape[1] != n_images:
        hint = (" It looks transposed (N x D); xlsa17 stores D x N: save features.T"
                if features.shape[0] == n_images else "")
        raise DataError(f"{feat_path}: 'features' has {features.shape[1]} columns (images) but "
                        f"'labels' has {n_images} entries; they must match.{hint}")
    finite = np.isfinite(features).all(axis=0)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{feat_path}: 'features' has NaN or inf in {bad.size} image column(s), "
                        f"first column {int(bad[0]) + 1} (1-based); re-extract those images' "
                        f"features or {_REFETCH}")

    mat = _loadmat(split_path, None)
    att = _numeric(mat, split_path, "att")
    n_classes = int(labels.max()) + 1    # labels are 0-based by now
    if att.ndim != 2:
        raise DataError(f"{split_path}: 'att' must be a 2-d A x C matrix (one column per "
                        f"class), got shape {att.shape}")
    if att.shape[1] != n_classes:
        if att.shape[0] == n_classes:
            hint = "It looks transposed (C x A); xlsa17 stores A x C: save att.T"
        else:
            hint = (f"The labels in {feat_path.name} imply {n_classes} classes (1..{n_classes}); "
                    f"check that both files come from the same dataset folder")
        raise DataError(f"{split_path}: 'att' has {att.shape[1]} class columns (shape "
                        f"{att.shape}) but the labels of {feat_path} go up to {n_classes}. {hint}")
    if att.shape[0] == 0:
        raise DataError(f"{split_path}: 'att' has shape {att.shape}: no attribute rows, so "
                        f"classes cannot be described; {_REFETCH}")
    if not np.isfinite(att).all():
        bad = np.flatnonzero(~np.isfinite(att).all(axis=0))
        raise DataError(f"{split_path}: 'att' has NaN or inf in {bad.size} class column(s), "
                        f"first column {int(bad[0]) + 1} (1-based); {_REFETCH}")
    class_names = _class_names(mat, split_path, n_classes)

    splits = {}
    for split in (*REQUIRED_SPLITS, *_OPTIONAL_SPLITS):
        key = f"{split}_loc"
        if key not in mat and split in _OPTIONAL_SPLITS:
            continue
        idx = _one_based(mat, split_path, key)
        if idx.size and idx.max() >= n_images:
            raise DataError(f"{split_path}: {key!r} reaches image {int(idx.max()) + 1} but "
                            f"{feat_path} has {n_images} images; check that both files come "
                            "from the same dataset folder")
        splits[split] = idx
    # The proposed split is disjoint by construction; an overlap usually means one index
    # vector is 0-based while the others are 1-based (a 0-based vector need not hold 0).
    for i, first in enumerate(REQUIRED_SPLITS):
        for second in REQUIRED_SPLITS[i + 1:]:
            shared = np.intersect1d(splits[first], splits[second])
            if shared.size:
                raise DataError(f"{split_path}: '{first}_loc' and '{second}_loc' share "
                                f"{shared.size} image(s), e.g. image {int(shared[0]) + 1} "
                                "(1-based); the xlsa17 proposed split is disjoint. Is one of "
                                "them 0-based while the others are 1-based?")

    with np.errstate(over="ignore"):
        features32 = np.ascontiguousarray(features.T, dtype=np.float32)   # [N, D]
    return ZSLDataset(
        name=name if name is not None else (folder.name or folder.resolve().name).upper(),
        features=features32,
        labels=labels,
        attributes=np.ascontiguousarray(att.T, dtype=np.float32),           # [C, A]
        class_names=class_names,
        splits=splits,
        source=source,
        origin=str(folder),
    )


def write_xlsa17(dataset: ZSLDataset, folder: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` as ``folder/res101.mat`` + ``folder/att_splits.mat`` (xlsa17 layout).

    The variables are those of the official files: ``features`` D x N and ``labels``
    N x 1 (1-based) as doubles; ``att`` A x C, ``allclasses_names`` a C x 1 cell array,
    and every split as a 1-based ``<split>_loc`` column of unsigned integers.
    ``original_att`` is not written (a :class:`ZSLDataset` does not keep it).
    :func:`read_xlsa17` reads the folder back to the same features, labels, attributes,
    names and splits, bit for bit. Both files are written under temporary names and
    renamed only once both are complete, so a failure leaves the folder as it was.

    :param dataset: the dataset.
    :param folder: the dataset folder to write, e.g. ``xlsa17/data/CUB``; created if
        missing, its two files replaced if present.
    :returns: ``folder``.
    :raises DataError: if the folder cannot be created or written.
    """
    folder = Path(folder)

    def column(values: np.ndarray, dtype: type) -> np.ndarray:
        return (np.asarray(values, dtype=np.int64) + 1).astype(dtype)[:, None]  # 1-based

    # the official index vectors are unsigned integers (code indexes arrays with them)
    index = np.uint16 if dataset.features.shape[0] < 2**16 else np.uint32

    names = np.empty((dataset.n_classes, 1), dtype=object)
    names[:, 0] = list(dataset.class_names)
    features = {"features": dataset.features.T.astype(np.float64),        # [D, N]
                "labels": column(dataset.labels, np.float64)}
    if dataset.source != "real":
        features[SOURCE_VARIABLE] = dataset.source
    splits = {"att": dataset.attributes.T.astype(np.float64),            # [A, C]
              "allclasses_names": names,
              **{f"{split}_loc": column(idx, index) for split, idx in dataset.splits.items()}}
    temporary: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for variables in (features, splits):
            temporary.append(_save_temporary(folder, variables))
        for tmp, file in zip(temporary, (FEATURES_FILE, SPLITS_FILE)):
            os.replace(tmp, folder / file)
    except OSError as exc:
        raise DataError(f"{folder}: cannot write the xlsa17 files ({exc}); check that the "
                        "folder can be created, is writable and has space") from exc
    finally:
        for tmp in temporary:
            Path(tmp).unlink(missing_ok=True)
    return folder


def _save_temporary(folder: Path, variables: dict[str, object]) -> str:
    """``scipy.io.savemat`` to a new temporary file in ``folder``; returns its path."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".xlsa17.", suffix=".mat.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)  # mkstemp's 0600 would hide the data
            scipy.io.savemat(fh, variables)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _source(mat: dict, path: Path) -> str:
    """The ``czsl_source`` variable :func:`write_xlsa17` stores, ``"real"`` without it."""
    if SOURCE_VARIABLE not in mat:
        return "real"
    value = mat[SOURCE_VARIABLE]
    text = str(value.reshape(-1)[0]) if isinstance(value, np.ndarray) and value.size else ""
    if text not in SOURCES:
        raise DataError(f"{path}: {SOURCE_VARIABLE!r} must be one of {SOURCES}, got {value!r}; "
                        "rewrite the folder with czsl.data.write_xlsa17")
    return text


def _loadmat(path: Path, names: tuple[str, ...] | None) -> dict:
    """``scipy.io.loadmat`` with every failure turned into a :class:`DataError`."""
    head = b""
    try:
        with path.open("rb") as fh:
            head = fh.read(128)
        return scipy.io.loadmat(path, variable_names=names)
    except NotImplementedError as exc:  # scipy's answer to v7.3 (HDF5) files
        raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file, which czsl cannot read; re-save "
                        "it in MATLAB with save(..., '-v7') or use the original xlsa17 "
                        "file") from exc
    except Exception as exc:  # scipy raises MatReadError, ValueError, OSError, zlib.error, ...
        what = "truncated or corrupt" if head.startswith(b"MATLAB") else "not a MATLAB .mat file"
        raise DataError(f"{path}: cannot be read, it looks {what} ({type(exc).__name__}: "
                        f"{exc}); {_REFETCH}") from exc


def _get(mat: dict, path: Path, key: str) -> object:
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no variable {key!r} (it has {found or 'none'}"
                        f"{'; the file may be truncated' if not found else ''}); {_REFETCH}")
    return mat[key]


def _numeric(mat: dict, path: Path, key: str) -> np.ndarray:
    """Variable ``key`` as a real-valued numpy array (a sparse matrix is made dense)."""
    value = _get(mat, path, key)
    if scipy.sparse.issparse(value):
        value = value.toarray()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise DataError(f"{path}: {key!r} must be a real-valued numeric matrix, got {kind}")
    return value


def _one_based(mat: dict, path: Path, key: str) -> np.ndarray:
    """Variable ``key``, a vector of 1-based MATLAB indices, as 0-based int64 ``[n]``."""
    value = _numeric(mat, path, key)
    if value.ndim > 2 or (value.ndim == 2 and min(value.shape) > 1):
        raise DataError(f"{path}: {key!r} must be a column vector of 1-based indices, got "
                        f"shape {value.shape}")
    value = value.reshape(-1)
    if value.dtype.kind == "b":
        raise DataError(f"{path}: {key!r} must hold 1-based integer indices, got a logical "
                        "(boolean) vector")
    whole = np.isfinite(value).all() and (value == np.round(value)).all()
    if value.dtype.kind == "f" and not whole:
        raise DataError(f"{path}: {key!r} must hold whole numbers (1-based indices), but some "
                        "entries are fractional, NaN or inf")
    if value.size and value.min() < 1:
        if value.min() == 0:
            raise DataError(f"{path}: {key!r} contains 0, so it looks 0-based; xlsa17 files "
                            "are 1-based (MATLAB). Add 1 before saving, or save the data in "
                            "czsl's 0-based .npz layout (czsl.data.write_npz)")
        raise DataError(f"{path}: {key!r} contains negative values ({value.min()}); it must "
                        "hold 1-based indices")
    if value.size and value.max() > np.iinfo(np.int64).max // 2:
        raise DataError(f"{path}: {key!r} holds an implausibly large index ({value.max()})")
    return value.astype(np.int64) - 1


def _class_names(mat: dict, path: Path, n_classes: int) -> tuple[str, ...]:
    """``allclasses_names`` (a cell array or char matrix) as ``n_classes`` strings."""
    if "allclasses_names" not in mat:
        return tuple(f"class_{k}" for k in range(n_classes))
    value = mat["allclasses_names"]
    names: list[str] = []
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":     # a char matrix
        names = [str(v).rstrip() for v in value.reshape(-1)]
    elif isinstance(value, np.ndarray) and value.dtype == object:     # a cell array
        for cell in value.reshape(-1):
            if isinstance(cell, np.ndarray) and cell.dtype.kind == "U" and cell.size == 1:
                names.append(str(cell.reshape(-1)[0]))
            elif isinstance(cell, str):
                names.append(cell)
            else:
                raise DataError(f"{path}: 'allclasses_names' must be a cell array of strings; "
                                f"entry {len(names) + 1} is {_describe(cell)}")
    else:
        raise DataError(f"{path}: 'allclasses_names' must be a cell array of strings, got "
                        f"{_describe(value)}")
    if len(names) != n_classes:
        raise DataError(f"{path}: 'allclasses_names' has {len(names)} names but 'att' has "
                        f"{n_classes} classes; they must match one to one")
    return tuple(names)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} dtype {value.dtype}"
    return f"a {type(value).__name__}"
