"""Zero-shot datasets: the :class:`ZSLDataset` container, its readers, and :func:`load_dataset`.

Readers (all numpy/scipy; reading data never imports torch):

- :func:`read_xlsa17` / :func:`write_xlsa17`: a folder in the original xlsa17 layout
  (``res101.mat`` + ``att_splits.mat``).
- :func:`read_npz` / :func:`write_npz`: one ``.npz`` archive, 0-based.
- :func:`make_synthetic`: a small seeded synthetic dataset (tests, smoke runs).
- :func:`make_semi_synthetic`: real CUB/SUN metadata with synthesised features.

:func:`dataset_files` (:mod:`czsl.data.files`, standard library only) says which files
of a folder :func:`load_dataset` reads a dataset from.

Every problem a user can fix raises :class:`czsl.errors.DataError` naming the file, the
array and what to do.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from czsl.data.dataset import ZSLDataset
from czsl.data.files import FEATURES_FILE, SPLITS_FILE, dataset_files, sources
from czsl.data.npz import read_npz, write_npz
from czsl.data.semi_synthetic import make_semi_synthetic
from czsl.data.synthetic import make_synthetic
from czsl.data.xlsa17 import read_xlsa17, write_xlsa17
from czsl.errors import DataError

__all__ = [
    "FEATURE_MODES",
    "ZSLDataset",
    "dataset_files",
    "load_dataset",
    "make_semi_synthetic",
    "make_synthetic",
    "read_npz",
    "read_xlsa17",
    "write_npz",
    "write_xlsa17",
]

#: Values of :func:`load_dataset`'s ``features`` argument.
FEATURE_MODES = ("auto", "real", "semi-synthetic")

_GET_REAL = ("The real ResNet-101 features come only from the official xlsa17 archive "
             "(xlsa17.zip, MPI-INF 'Zero-Shot Learning - The Good, the Bad and the Ugly'): "
             "put its data/{name} folder (res101.mat + att_splits.mat) at {root}/{name}")


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *,
                 features: str = "auto", seed: int = 0,
                 options: Mapping[str, Any] | None = None) -> ZSLDataset:
    """Find and read dataset ``name``.

    ``name="synthetic"`` gives :func:`make_synthetic` (``data_dir`` is not used). Any other
    name is looked for in ``data_dir``, in this order (:func:`czsl.data.files.sources`,
    the list a sweep run's id hashes the files of, :func:`dataset_files`):

    1. ``res101.mat`` + ``att_splits.mat`` in ``data_dir``, then in ``data_dir/<name>``,
       then in ``data_dir/data/<name>`` (``data_dir`` is the unpacked ``xlsa17`` folder
       itself): :func:`read_xlsa17`;
    2. ``data_dir/<name>.npz``: :func:`read_npz`;
    3. ``data_dir/<name>_meta.npz``: :func:`make_semi_synthetic`.

    :param name: ``"synthetic"`` or a dataset name such as ``"CUB"`` (used as given in
        the file names above, and as the dataset's name).
    :param data_dir: the folder to look in.
    :param features: ``"auto"``: real features where found, else semi-synthetic;
        ``"real"``: real features or an error; ``"semi-synthetic"``: always synthesise
        features from ``<name>_meta.npz``, even where real features exist.
    :param seed: seed of the synthetic or semi-synthetic features (real data ignore it).
    :param options: keyword arguments for the generator: :func:`make_synthetic`'s sizes
        and knobs, or :func:`make_semi_synthetic`'s difficulty knobs. Real-data readers
        take none.
    :returns: the dataset; its ``source`` says whether its features are real.
    :raises DataError: if ``data_dir`` is missing, nothing is found (the message lists
        every path looked at), ``features="real"`` finds only metadata, an option is
        unknown, or the files found are broken.
    """
    if features not in FEATURE_MODES:
        raise DataError(f"dataset {name!r}: features={features!r} is not one of {FEATURE_MODES}")
    if options is not None and not isinstance(options, Mapping):
        raise DataError(f"dataset {name!r}: options must be a table of keyword arguments, "
                        f"got {type(options).__name__}")
    options = dict(options or {})
    if name == "synthetic":
        if features != "auto":
            raise DataError(f"dataset 'synthetic' is generated, it has no real or "
                            f"semi-synthetic variant; use features='auto', not {features!r}")
        return make_synthetic(seed=seed, **_options(make_synthetic, options, "make_synthetic"))
    if data_dir is None:
        raise DataError(f"dataset {name!r}: no data_dir given; point data_dir at a folder with "
                        f"{name}/{FEATURES_FILE} + {name}/{SPLITS_FILE} (xlsa17), {name}.npz, or "
                        f"{name}_meta.npz (semi-synthetic), or use the dataset 'synthetic'")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"dataset {name!r}: data_dir {root} is not an existing folder; "
                        "check the path (it should hold the dataset folders or archives)")

    looked: list[str] = []
    notes: list[str] = []
    for source in sources(name):
        path = root / source.path
        if source.reader != "semi-synthetic" and features == "semi-synthetic":
            continue
        if source.reader == "xlsa17":
            looked.append(f"{path / FEATURES_FILE} + {SPLITS_FILE}")
            if (path / FEATURES_FILE).is_file():
                # A missing att_splits.mat beside it is explained by the reader.
                return _real(read_xlsa17(path, name=name), features, options, path)
            if (path / SPLITS_FILE).is_file():
                notes.append(f"{path / SPLITS_FILE} exists but {FEATURES_FILE} (the image "
                             "features) does not")
            continue
        looked.append(str(path))
        if not path.is_file():
            continue
        if source.reader == "npz":
            return _real(read_npz(path, name=name), features, options, path)
        if features == "real":
            raise DataError(f"dataset {name!r}: features='real' but only metadata was found "
                            f"({path}: attributes, splits and labels, no image features). "
                            + _GET_REAL.format(name=name, root=root)
                            + "; or use features='semi-synthetic' (or 'auto') to run on "
                            "synthesised features")
        kwargs = _options(make_semi_synthetic, options, "make_semi_synthetic")
        return make_semi_synthetic(path, seed=seed, name=name, **kwargs)

    fix = ("put the official xlsa17 folder there, or an .npz written by czsl.data.write_npz, "
           "or a metadata archive for semi-synthetic features")
    if features == "semi-synthetic":
        fix = f"put {name}_meta.npz (see shared/data/README.md) there"
    raise DataError(f"dataset {name!r} ({features} features): nothing found in {root}. Looked "
                    "for: " + "; ".join(looked) + ". " + "".join(n + ". " for n in notes)
                    + f"To fix: {fix}")


def _real(dataset: ZSLDataset, features: str, options: dict[str, Any],
          where: Path) -> ZSLDataset:
    """Check what :func:`load_dataset` asked for against a dataset read from disk."""
    if options:
        raise DataError(f"dataset {dataset.name!r}: options {sorted(options)} were given, but "
                        f"the dataset was read from {where}, and readers of files take no "
                        "options (they are generator knobs). Remove them, or pass "
                        "features='semi-synthetic' to synthesise features")
    if features == "real" and dataset.source != "real":
        raise DataError(f"dataset {dataset.name!r}: features='real' but {where} holds "
                        f"{dataset.source} features (its 'source' array says so). "
                        + _GET_REAL.format(name=dataset.name, root=where.parent))
    return dataset


def _options(func: Callable[..., ZSLDataset], options: dict[str, Any],
             what: str) -> dict[str, Any]:
    """``options`` if ``func`` accepts each as a keyword, else a :class:`DataError`."""
    accepted = sorted(p.name for p in inspect.signature(func).parameters.values()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY
                      and p.name not in ("seed", "name"))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        seed_hint = (" (the seed is load_dataset's own 'seed' argument)"
                     if "seed" in unknown else "")
        raise DataError(f"unknown option(s) {unknown} for {what}{seed_hint}; accepted: {accepted}")
    return options
