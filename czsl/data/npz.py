"""Read and write a zero-shot dataset as one ``.npz`` archive (0-based, no pickles).

The layout is that of ``../shared/data/README.md`` plus the image features:

=====================  =================  =============================================
array                  shape / dtype      meaning
=====================  =================  =============================================
``features``           N x D float        image features, one row per image
``labels``             N integer          class id of each image, in ``[0, C)``
``attributes``         C x A float        class attribute vectors, one row per class
``class_names``        C unicode          class names, in class-id order
``trainval_loc``,      integer            the xlsa17 proposed split: 0-based indices
``test_seen_loc``,                        into the N images
``test_unseen_loc``
``train_loc``,         integer            optional: xlsa17's hyper-parameter split;
``val_loc``, ...                          any ``<split>_loc`` array is read as a split
``source``             0-d unicode        optional: ``"real"`` (the default),
                                          ``"synthetic"`` or ``"semi-synthetic"``
``name``               0-d unicode        optional: the dataset's short name
=====================  =================  =============================================

A *meta-only* archive such as ``CUB_meta.npz`` has ``labels_reconstructed`` and no
``features``; :func:`czsl.data.semi_synthetic.make_semi_synthetic` turns it into a
dataset. :func:`load_npz` and :func:`read_common` are shared with that module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from czsl.data.dataset import REQUIRED_SPLITS, SOURCES, ZSLDataset
from czsl.errors import DataError
from czsl.runfolder import atomic_write

#: The arrays every archive read by :func:`read_npz` must hold.
REQUIRED_KEYS = ("features", "labels", "attributes", "class_names",
                 *(f"{s}_loc" for s in REQUIRED_SPLITS))

_REMAKE = "re-create it with czsl.data.write_npz (or numpy.savez)"


def load_npz(path: str | os.PathLike[str],
             keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Open an ``.npz`` archive without pickles and read the named arrays eagerly.

    :param path: the archive.
    :param keys: arrays to read, besides every ``<split>_loc`` array, which is always
        read; those the archive lacks are skipped (the caller decides which are required,
        so that it can explain what is missing).
    :returns: ``(arrays, names)``: the arrays read, and every array name in the archive.
    :raises DataError: if the file is missing, is not an ``.npz`` archive, is corrupt,
        or holds a requested array that needs pickles (an object array).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else "")
                        + "; check the path")
    try:
        # Open the file here, not in np.load: numpy leaks its handle when the zip is bad.
        with path.open("rb") as fh:
            return _read_members(fh, path, keys)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc}); check its permissions") from exc


def _read_members(fh, path: Path,
                  keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The body of :func:`load_npz`, on an open file."""
    try:
        archive = np.load(fh, allow_pickle=False)
    except Exception as exc:  # numpy raises BadZipFile, ValueError, OSError, EOFError, ...
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc}); "
                        f"the file is corrupt, truncated or of another format; {_REMAKE}") from exc
    if not hasattr(archive, "files"):
        raise DataError(f"{path}: holds a single array (an .npy file), not an .npz archive "
                        f"of named arrays; {_REMAKE}")
    with archive:
        names = list(archive.files)
        arrays = {}
        for key in dict.fromkeys((*keys, *(k for k in names if k.endswith("_loc")))):
            if key not in names:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise DataError(f"{path}: array {key!r} cannot be read ({exc}); "
                                    f"the file is corrupt; {_REMAKE}") from exc
                raise DataError(f"{path}: array {key!r} is a pickled object array, which czsl "
                                "does not load; save it as a plain numeric or unicode array "
                                "(e.g. class names as np.array(names, dtype=str))") from exc
            except Exception as exc:  # zipfile/zlib errors of a damaged member
                raise DataError(f"{path}: array {key!r} cannot be read ({type(exc).__name__}: "
                                f"{exc}); the file is corrupt or truncated; {_REMAKE}") from exc
    return arrays, names


def read_common(arrays: dict[str, np.ndarray], names: list[str], where: str,
                n_images: int) -> tuple[np.ndarray, tuple[str, ...], dict[str, np.ndarray]]:
    """Check and convert the class and split arrays of an archive.

    :param arrays: arrays from :func:`load_npz` (must include ``attributes``,
        ``class_names`` and every ``<split>_loc`` in ``names``).
    :param names: every array name in the archive.
    :param where: the archive, for messages.
    :param n_images: number of images the split indices point into.
    :returns: ``(attributes [C, A] float32, class_names, splits)`` with int64 splits.
    :raises DataError: naming the array and what is wrong with it.
    """
    missing = [k for k in ("attributes", "class_names", *(f"{s}_loc" for s in REQUIRED_SPLITS))
               if k not in names]
    if missing:
        raise DataError(f"{where}: missing array(s) {missing}; the archive has {sorted(names)}. "
                        "See the layout in the czsl.data.npz docstring")
    attributes = float_matrix(arrays["attributes"], where, "attributes", "[C, A]")
    if attributes.shape[1] == 0:
        raise DataError(f"{where}: 'attributes' has shape {attributes.shape}: no attribute "
                        "columns, so classes cannot be described; store the C x A matrix")
    if not np.isfinite(attributes).all():
        bad = np.flatnonzero(~np.isfinite(attributes).all(axis=1))
        raise DataError(f"{where}: 'attributes' has NaN or inf in {bad.size} class row(s), "
                        f"first class {int(bad[0])}; fix the attribute vectors")
    class_names = string_vector(arrays["class_names"], where, "class_names")
    if len(class_names) != attributes.shape[0]:
        raise DataError(f"{where}: 'class_names' has {len(class_names)} entries but "
                        f"'attributes' has {attributes.shape[0]} class rows; they must match "
                        "one to one")
    splits = {}
    for key in sorted(k for k in names if k.endswith("_loc")):
        splits[key[:-len("_loc")]] = index_vector(arrays[key], where, key, n_images, "images")
    return attributes, class_names, splits


def float_matrix(value: np.ndarray, where: str, key: str, shape: str) -> np.ndarray:
    """``value`` as a 2-d float32 array, or a :class:`DataError` naming ``key``."""
    if value.ndim != 2 or value.dtype.kind not in "biuf":
        raise DataError(f"{where}: {key!r} must be a 2-d real-valued array {shape}, "
                        f"got shape {value.shape} dtype {value.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, reported later
        return np.ascontiguousarray(value, dtype=np.float32)


def index_vector(value: np.ndarray, where: str, key: str, n: int, what: str) -> np.ndarray:
    """``value`` as 1-d int64 0-based indices in ``[0, n)``, or a :class:`DataError`.

    :param what: what the indices count (``"images"``, ``"classes"``), for messages.
    """
    if value.ndim != 1 or value.dtype.kind not in "iu":
        raise DataError(f"{where}: {key!r} must be a 1-d integer array of 0-based indices, "
                        f"got shape {value.shape} dtype {value.dtype}")
    if value.size:
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= n:
            hint = (f" It looks 1-based (it reaches {n} and never holds 0); this layout is "
                    "0-based: subtract 1." if low >= 1 and high == n else "")
            raise DataError(f"{where}: {key!r} spans [{low}, {high}] but there are {n} {what}; "
                            f"0-based indices must lie in [0, {n}).{hint}")
    return value.astype(np.int64)


def string_vector(value: np.ndarray, where: str, key: str) -> tuple[str, ...]:
    """``value`` (1-d unicode or bytes) as a tuple of ``str``, or a :class:`DataError`."""
    if value.ndim != 1 or value.dtype.kind not in "US":
        raise DataError(f"{where}: {key!r} must be a 1-d array of strings, got shape "
                        f"{value.shape} dtype {value.dtype}")
    if value.dtype.kind == "S":
        try:
            return tuple(v.decode("utf-8") for v in value.tolist())
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: {key!r} holds bytes that are not UTF-8 ({exc}); "
                            "store the names as a unicode array") from exc
    return tuple(str(v) for v in value.tolist())


def _scalar_string(value: np.ndarray, where: str, key: str) -> str:
    if value.size != 1 or value.dtype.kind != "U":
        raise DataError(f"{where}: {key!r} must be a single unicode string, got shape "
                        f"{value.shape} dtype {value.dtype}")
    return str(value.reshape(()).item())


def read_npz(path: str | os.PathLike[str], name: str | None = None) -> ZSLDataset:
    """Read a dataset from one ``.npz`` archive in the layout of the module docstring.

    :param path: the archive.
    :param name: the dataset's name; default: the archive's ``name`` array, else the
        file name without its suffix.
    :returns: the dataset, with ``source`` taken from the archive (``"real"`` if absent)
        and ``origin`` the path.
    :raises DataError: if the file is missing or corrupt, an array is missing or has the
        wrong shape, dtype or range, or the archive is meta-only (no ``features``).
    """
    path = Path(path)
    where = str(path)
    arrays, names = load_npz(path, (*REQUIRED_KEYS, "name", "source"))
    if "features" not in names and "labels_reconstructed" in names:
        raise DataError(f"{where}: a metadata-only archive (it has 'labels_reconstructed' but "
                        "no 'features'), so it has no image features to read. Use it in "
                        "semi-synthetic mode: czsl.data.make_semi_synthetic(path), or "
                        "load_dataset(..., features='semi-synthetic'); for real features "
                        "get res101.mat from the official xlsa17 archive")
    missing = [k for k in REQUIRED_KEYS if k not in names]
    if missing:
        raise DataError(f"{where}: missing array(s) {missing}; the archive has {sorted(names)}. "
                        "A czsl .npz needs " + ", ".join(REQUIRED_KEYS) + f"; {_REMAKE}")
    features = float_matrix(arrays["features"], where, "features", "[N, D]")
    labels = arrays["labels"]
    if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
        raise DataError(f"{where}: 'labels' must be 1-d with one entry per row of 'features' "
                        f"({features.shape[0]}), got shape {labels.shape}")
    attributes, class_names, splits = read_common(arrays, names, where, features.shape[0])
    labels = index_vector(labels, where, "labels", attributes.shape[0], "classes")
    source = _scalar_string(arrays["source"], where, "source") if "source" in arrays else "real"
    if source not in SOURCES:
        raise DataError(f"{where}: 'source' is {source!r}; it must be one of {SOURCES}")
    if name is None:
        name = _scalar_string(arrays["name"], where, "name") if "name" in arrays else path.stem
    return ZSLDataset(name=name, features=features, labels=labels, attributes=attributes,
                      class_names=class_names, splits=splits, source=source, origin=where)


def write_npz(dataset: ZSLDataset, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write ``dataset`` to ``path`` in the layout :func:`read_npz` reads, atomically.

    The archive is written to a temporary file in the same folder and moved over
    ``path`` only when complete, so a reader never sees half a file. ``name`` and
    ``source`` are stored, so a (semi-)synthetic dataset stays labelled as such.

    :param dataset: the dataset to write.
    :param path: the archive to create or replace (written as given, no suffix added).
    :param compress: use ``numpy.savez_compressed`` (smaller, slower to read).
    :raises DataError: if the folder does not exist or cannot be written.
    """
    path = Path(path)
    arrays = {
        "features": dataset.features,
        "labels": dataset.labels,
        "attributes": dataset.attributes,
        "class_names": np.array(dataset.class_names, dtype=str),
        "name": np.array(dataset.name, dtype=str),
        "source": np.array(dataset.source, dtype=str),
        **{f"{split}_loc": idx for split, idx in dataset.splits.items()},
    }
    save = np.savez_compressed if compress else np.savez
    try:
        atomic_write(path, lambda fh: save(fh, **arrays))
    except OSError as exc:
        raise DataError(f"{path}: cannot write the archive ({exc}); check that the folder "
                        "exists, is writable and has space") from exc
