"""Where a dataset's files are looked for in a data folder: one list for the readers
(:func:`czsl.data.load_dataset`) and for a sweep run's identity
(:func:`czsl.sweep.identity.data_fingerprint`), so the two cannot disagree.

Only the standard library is imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: the xlsa17 layout's two files (:mod:`czsl.data.xlsa17`)
FEATURES_FILE = "res101.mat"
SPLITS_FILE = "att_splits.mat"


@dataclass(frozen=True)
class Source:
    """One place a dataset is looked for, relative to the data folder.

    :ivar reader: ``"xlsa17"`` (a folder with :data:`FEATURES_FILE` and
        :data:`SPLITS_FILE`), ``"npz"`` (an archive with image features) or
        ``"semi-synthetic"`` (a metadata archive the features are synthesised from).
    :ivar path: the folder (``xlsa17``) or the archive.
    :ivar files: the files read from there.
    """

    reader: str
    path: PurePosixPath
    files: tuple[PurePosixPath, ...]


def sources(name: str) -> tuple[Source, ...]:
    """Where dataset ``name`` is looked for, in the readers' order (the first found is
    read): ``res101.mat`` + ``att_splits.mat`` in the data folder itself, in
    ``<name>/``, in ``data/<name>/`` (the folder is the unpacked ``xlsa17`` root); then
    ``<name>.npz``; then ``<name>_meta.npz``."""
    out = []
    for folder in (PurePosixPath("."), PurePosixPath(name), PurePosixPath("data", name)):
        out.append(Source("xlsa17", folder, (folder / FEATURES_FILE, folder / SPLITS_FILE)))
    for reader, archive in (("npz", f"{name}.npz"), ("semi-synthetic", f"{name}_meta.npz")):
        out.append(Source(reader, PurePosixPath(archive), (PurePosixPath(archive),)))
    return tuple(out)


def candidate_files(name: str) -> list[str]:
    """Every file dataset ``name`` may be read from, relative to the data folder, in the
    readers' order."""
    return [str(file) for source in sources(name) for file in source.files]


def dataset_files(name: str, data_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """The files of :func:`candidate_files` that exist in ``data_dir``, in that order, as
    ``(name relative to data_dir, path)``: the files dataset ``name`` is read from there
    (whichever the features mode picks)."""
    root = Path(data_dir)
    return [(rel, root / rel) for rel in candidate_files(name) if (root / rel).is_file()]


__all__ = ["FEATURES_FILE", "SPLITS_FILE", "Source", "candidate_files", "dataset_files",
           "sources"]
