"""Semi-synthetic CUB / SUN: the real metadata, with features synthesised from attributes.

:func:`make_semi_synthetic` takes a metadata-only archive (``CUB_meta.npz``,
``SUN_meta.npz``; see ``../shared/data/README.md``) and keeps everything real in it: the
class attributes, class names, the xlsa17 split indices and the per-image labels
(``labels_reconstructed``), so per-class image counts and every split are exactly those
of the real benchmark. Only the image features are made up, at the real size (CUB
11,788 x 2048, SUN 14,340 x 2048), float32 and non-negative like pooled ResNet-101
features. The result has ``source="semi-synthetic"``, and every figure made from it must
say so.

The features come from :func:`czsl.data.synthetic.synthesise_features`: each class gets a
latent vector ``f(a_c) + residual * r_c`` (a fixed random nonlinear map of its attributes
plus a class-specific part ``r_c`` the attributes do not explain); each image adds
``noise * e`` to its class latent; a random projection and a ReLU give the features.

Difficulty knobs (keyword arguments):

``residual`` (default 0.75)
    Strength of the class-specific component the attributes do not explain, relative to
    the attribute-explained class signal. Higher: zero-shot transfer to unseen classes
    gets worse (their features drift away from what their attributes predict) while seen
    classes become easier to tell apart. 0: class features are a function of attributes.
``noise`` (default 2.75)
    Within-class spread of the images, in the same unit. Higher: every class, seen or
    unseen, gets harder. 0: all images of a class share one feature vector.

The defaults were chosen so that ClassNorm's model reaches about the published real-CUB
figure in static GZSL: ``czsl run scenarios/cub_gzsl.toml --data-dir ../shared/data``
(attribute embedder with ClassNorm, seed 0) gives u 43.0 / s 63.1 / H 51.1 on
semi-synthetic CUB, against u 49.9 / s 50.7 / H 50.3 published on real features
(Skorokhodov & Elhoseiny, ICLR 2021). Other settings measured with the same command
(u / s / H): residual 1.0, noise 2.0: 40.2 / 94.0 / 56.3; residual 1.0, noise 2.5:
35.7 / 83.6 / 50.1; residual 0.5, noise 2.5: 57.6 / 60.4 / 59.0; residual 0.6, noise 3.0:
44.4 / 47.5 / 45.9. Raising ``residual`` lowers the unseen accuracy and raises the seen
one; raising ``noise`` lowers both.

One known difference from real features: unseen-class images are rarely mistaken for
seen classes here (GZSL u is within a point of ZSL top-1), whereas on real features the
bias towards seen classes costs many points. Semi-synthetic figures test the machinery at
the real size; they do not predict real-feature results.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from czsl.data.dataset import ZSLDataset
from czsl.data.npz import index_vector, load_npz, read_common
from czsl.data.synthetic import check_knobs, synthesise_features
from czsl.errors import DataError


def make_semi_synthetic(meta_path: str | os.PathLike[str], *, seed: int = 0,
                        n_features: int = 2048, residual: float = 0.75, noise: float = 2.75,
                        name: str | None = None) -> ZSLDataset:
    """Real metadata from ``meta_path`` plus features synthesised from the attributes.

    :param meta_path: a metadata archive with ``attributes``, ``class_names``,
        ``labels_reconstructed`` (or ``labels``) and the ``<split>_loc`` arrays.
    :param seed: the features depend only on the seed, the knobs and the metadata.
    :param n_features: feature dimension ``D`` (ResNet-101: 2048).
    :param residual: class-specific variation the attributes do not explain (module
        docstring).
    :param noise: within-class spread (module docstring).
    :param name: the dataset's name; default: the file name without ``_meta.npz``.
    :returns: a :class:`ZSLDataset` with ``source="semi-synthetic"``; its ``origin``
        records the archive, the seed and the knobs.
    :raises DataError: if the archive is missing, corrupt or lacks an array, or a knob is
        out of range.
    """
    path = Path(meta_path)
    where = str(path)
    if (isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer))
            or n_features < 1):
        raise DataError(f"semi-synthetic {path.name}: n_features={n_features!r} must be an "
                        "integer >= 1")
    check_knobs(f"semi-synthetic {path.name}", seed=seed, residual=residual, noise=noise)
    arrays, names = load_npz(path, ("attributes", "class_names", "labels_reconstructed", "labels"))
    label_key = "labels_reconstructed" if "labels_reconstructed" in names else "labels"
    if label_key not in names:
        raise DataError(f"{where}: no per-image labels ('labels_reconstructed' or 'labels'); "
                        f"the archive has {sorted(names)}. Semi-synthetic features need the "
                        "class of every image; use the CUB_meta.npz / SUN_meta.npz layout")
    labels = arrays[label_key]
    if labels.ndim != 1:
        raise DataError(f"{where}: {label_key!r} must be 1-d (one class id per image), "
                        f"got shape {labels.shape}")
    attributes, class_names, splits = read_common(arrays, names, where, labels.shape[0])
    labels = index_vector(labels, where, label_key, attributes.shape[0], "classes")

    rng = np.random.default_rng(seed)
    features = synthesise_features(attributes, labels, n_features=int(n_features),
                                   residual=residual, noise=noise, rng=rng)
    if name is None:
        name = path.name.removesuffix(".npz").removesuffix("_meta")
    return ZSLDataset(
        name=name,
        features=features,
        labels=labels,
        attributes=attributes,
        class_names=class_names,
        splits=splits,
        source="semi-synthetic",
        origin=(f"{where} with synthesised features (seed={seed}, n_features={n_features}, "
                f"residual={residual}, noise={noise})"),
    )
