"""A run's identity: a hash of everything that changes its numbers.

The id of a sweep's run is a hash of its fully resolved scenario (after overrides,
defaults filled in: :meth:`czsl.config.Scenario.document`, which holds the seed), the
torch thread count it runs with, and a fingerprint of the data files it reads. The same
cell in a grown or re-ordered grid keeps its id, so its finished run is found again;
change anything that matters and it is a new run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22
_file_hashes: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    """blake2b of a file's bytes, cached for the process by (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_hashes:
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        _file_hashes[key] = digest.hexdigest()
    return _file_hashes[key]


def data_fingerprint(dataset: str, data_dir: Path | None) -> str:
    """A hash of the data files that dataset ``dataset`` may be read from.

    ``"synthetic"`` is generated from the scenario (already in the id): its fingerprint
    is its name. Other datasets hash every file of ``data_dir`` that the readers may read
    them from (:func:`czsl.data.files.dataset_files`), by its name there and its bytes.

    :raises ConfigError: if ``data_dir`` holds none of them.
    """
    # here, not at the top: importing czsl.data loads its readers (numpy, scipy; no torch)
    from czsl.data.files import candidate_files, dataset_files
    from czsl.errors import ConfigError

    if dataset == "synthetic":
        return "synthetic"
    if data_dir is None:
        raise ConfigError(f"dataset {dataset!r} needs --data-dir: a folder with its xlsa17 "
                          f"files, {dataset}.npz or {dataset}_meta.npz")
    found = dataset_files(dataset, data_dir)
    if not found:
        raise ConfigError(f"dataset {dataset!r}: --data-dir {data_dir} holds none of "
                          f"{candidate_files(dataset)}; point it at the folder with the "
                          "dataset's files")
    digest = hashlib.blake2b(digest_size=16)
    for rel, path in found:
        digest.update(f"{rel}\0{_file_hash(path)}\0".encode())
    return digest.hexdigest()


#: Scenario keys added after run ids were first defined, with the default that gives
#: the behaviour from before the key existed. A key at that default is left out of the
#: hash, so a new option does not change the id of every run made before it (and a
#: sweep grown later still finds them); set to anything else, it is hashed as usual.
ADDED_LATER: dict[tuple[str, str], Any] = {("protocol", "seen_scale"): 1.0}


def _hashed(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` less the :data:`ADDED_LATER` keys that are at their default."""
    out = dict(document)
    for (table, key), default in ADDED_LATER.items():
        if isinstance(out.get(table), dict) and key in out[table] \
                and out[table][key] == default:
            out[table] = {k: v for k, v in out[table].items() if k != key}
    return out


def run_id(document: dict[str, Any], *, threads: int, data: str) -> str:
    """The id of the run of ``document`` (a resolved scenario) with ``threads`` torch
    threads on data of fingerprint ``data``: 16 hexadecimal digits."""
    key = json.dumps({"scenario": _hashed(document), "threads": threads, "data": data},
                     sort_keys=True, ensure_ascii=True)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


__all__ = ["data_fingerprint", "run_id"]
