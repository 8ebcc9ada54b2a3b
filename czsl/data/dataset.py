"""The in-memory zero-shot dataset every reader returns.

A :class:`ZSLDataset` holds image features, their labels, the class attribute matrix,
the class names and named split indices (the xlsa17 "proposed split": ``trainval``,
``test_seen``, ``test_unseen``; optionally ``train`` / ``val``). It is plain numpy so
that reading data never imports torch. It validates itself on construction, so a reader
that returns one has returned consistent data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from czsl.errors import DataError

#: Splits every dataset must have (xlsa17 proposed split, 0-based indices).
REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")

#: Where the features come from. Anything but "real" is printed with every result.
SOURCES = ("real", "synthetic", "semi-synthetic")


@dataclass(frozen=True, eq=False)
class ZSLDataset:
    """Features, labels, class attributes and splits of one zero-shot dataset.

    :param name: short name, e.g. ``"CUB"``.
    :param features: ``[N, D]`` float32 image features, all finite.
    :param labels: ``[N]`` int64 class ids in ``[0, C)``.
    :param attributes: ``[C, A]`` float32 class attribute vectors, all finite.
    :param class_names: the ``C`` class names, in class-id order.
    :param splits: split name -> int64 indices into the ``N`` images (0-based). Must
        contain :data:`REQUIRED_SPLITS`; each index in ``[0, N)``.
    :param source: ``"real"``, ``"synthetic"`` or ``"semi-synthetic"`` (see
        :data:`SOURCES`); results made from non-real features say so.
    :param origin: where it was read from (a path or a generator description), for
        error messages and results.json.
    :raises DataError: if any of the above does not hold; the message names the array.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    class_names: tuple[str, ...]
    splits: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "real"
    origin: str = ""

    def __post_init__(self) -> None:
        where = f"{self.name} ({self.origin})" if self.origin else self.name
        feats, labels, attrs = self.features, self.labels, self.attributes
        if self.source not in SOURCES:
            raise DataError(f"{where}: source must be one of {SOURCES}, not {self.source!r}")
        if feats.ndim != 2 or feats.dtype != np.float32:
            raise DataError(f"{where}: features must be a 2-d float32 array [N, D], "
                            f"got shape {feats.shape} dtype {feats.dtype}")
        if labels.shape != (feats.shape[0],) or labels.dtype != np.int64:
            raise DataError(f"{where}: labels must be int64 of shape ({feats.shape[0]},) "
                            f"(one per feature row), got shape {labels.shape} dtype {labels.dtype}")
        if attrs.ndim != 2 or attrs.dtype != np.float32:
            raise DataError(f"{where}: attributes must be a 2-d float32 array [C, A], "
                            f"got shape {attrs.shape} dtype {attrs.dtype}")
        n_classes = attrs.shape[0]
        if len(self.class_names) != n_classes:
            raise DataError(f"{where}: {len(self.class_names)} class names for {n_classes} "
                            "attribute rows; they must match one to one")
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise DataError(f"{where}: labels span [{labels.min()}, {labels.max()}] but there are "
                            f"{n_classes} classes of attributes; labels must lie in [0, {n_classes})."
                            " Check that the attribute file belongs to these features and that "
                            "1-based MATLAB labels were shifted to 0-based")
        if not np.isfinite(feats).all():
            bad = int((~np.isfinite(feats)).any(axis=1).sum())
            raise DataError(f"{where}: {bad} feature rows contain NaN or inf; "
                            "re-extract or remove those images")
        if not np.isfinite(attrs).all():
            raise DataError(f"{where}: class attributes contain NaN or inf")
        missing = [s for s in REQUIRED_SPLITS if s not in self.splits]
        if missing:
            raise DataError(f"{where}: missing split(s) {missing}; a ZSL dataset needs "
                            f"{list(REQUIRED_SPLITS)}")
        for split, idx in self.splits.items():
            if idx.ndim != 1 or idx.dtype != np.int64:
                raise DataError(f"{where}: split {split!r} must be 1-d int64 indices, "
                                f"got shape {idx.shape} dtype {idx.dtype}")
            if idx.size and (idx.min() < 0 or idx.max() >= feats.shape[0]):
                raise DataError(f"{where}: split {split!r} indexes [{idx.min()}, {idx.max()}] "
                                f"outside the {feats.shape[0]} images (0-based indices expected)")

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.attributes.shape[0])

    @property
    def n_features(self) -> int:
        """Feature dimension ``D``."""
        return int(self.features.shape[1])

    @property
    def n_attributes(self) -> int:
        """Attribute dimension ``A``."""
        return int(self.attributes.shape[1])

    @property
    def label(self) -> str:
        """``"CUB"``, ``"CUB (semi-synthetic)"``, ...: the name to print beside every figure."""
        if self.source in ("real", self.name):
            return self.name
        return f"{self.name} ({self.source})"
