"""A small, seeded, fully synthetic zero-shot dataset whose features depend on attributes.

:func:`make_synthetic` draws class attribute vectors, then image features from them with
:func:`synthesise_features` (the generative process shared with
:mod:`czsl.data.semi_synthetic`), and splits the classes the way xlsa17 does: every image
of ``n_unseen`` classes goes to ``test_unseen``; about 20 % of each seen class goes to
``test_seen`` and the rest to ``trainval``; ``train`` / ``val`` split the seen classes
(class-disjoint) as xlsa17's hyper-parameter split does.

The generative process (one seed, everything float32 at the end):

1. **Attribute -> latent.** Attributes are standardised per attribute over classes and
   mapped to an ``L``-dimensional class latent (``L = min(256, n_features)``) by a fixed
   random map, half linear and half through a tanh layer,
   ``f(a) = a W + tanh(a W1) W2`` (Gaussian ``W``, ``W1``, ``W2``; each term, then the
   sum, scaled to standard deviation 1 over all classes and latent dimensions).
2. **Class residual.** The class latent is ``u_c = f(a_c) + residual * r_c`` with
   ``r_c ~ N(0, I)``: class-specific variation the attributes do not explain. No model
   can predict it for an unseen class, which is what makes zero-shot transfer imperfect.
3. **Images.** Image latent ``z = u_c + noise * e`` with ``e ~ N(0, I)``: within-class
   spread, in a low-dimensional space shared by all classes (like pose or background).
4. **Features.** ``x = relu(z P + b) * s``: a random projection to ``n_features``
   dimensions, a per-dimension offset ``b`` and scale ``s``; non-negative and about 45 %
   exact zeros, like pooled post-ReLU CNN features.

Reading or generating data never imports torch.
"""

from __future__ import annotations

import math

import numpy as np

from czsl.data.dataset import ZSLDataset
from czsl.errors import DataError

#: Rows generated per block when synthesising features (bounds the temporary memory).
_CHUNK = 4096


def synthesise_features(attributes: np.ndarray, labels: np.ndarray, *, n_features: int,
                        residual: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Draw image features from class attributes (steps 1-4 of the module docstring).

    :param attributes: ``[C, A]`` class attribute vectors.
    :param labels: ``[N]`` class id of each image, in ``[0, C)``.
    :param n_features: feature dimension ``D``.
    :param residual: std of the class-specific component the attributes do not explain,
        relative to the attribute-explained class signal (which has std 1).
    :param noise: std of the within-class image spread, relative to the same unit.
    :param rng: the random generator; the result depends only on its state and the
        arguments.
    :returns: ``[N, D]`` float32, non-negative, C-contiguous.
    """
    n_classes, n_attr = attributes.shape
    latent = min(256, n_features)
    hidden = 2 * latent

    # Step 1: standardise each attribute over classes (a constant attribute carries no
    # class information and maps to 0), then a linear and a tanh path to the latent. The
    # share of the tanh path barely changes what a linear probe can do (random tanh
    # features stay largely linearly decodable), so it is fixed, not a knob.
    attrs = attributes.astype(np.float64)
    std = attrs.std(axis=0)
    std[std == 0] = 1.0
    attrs = (attrs - attrs.mean(axis=0)) / std                       # [C, A]
    linear = attrs @ rng.standard_normal((n_attr, latent))           # [C, L]
    pre = attrs @ rng.standard_normal((n_attr, hidden)) * (1.5 / math.sqrt(n_attr))
    bent = np.tanh(pre) @ rng.standard_normal((hidden, latent))      # [C, L]
    explained = (_unit_std(linear) + _unit_std(bent)) / math.sqrt(2.0)
    # Step 2: the class latent, with its unexplained part.
    class_latent = _unit_std(explained) + residual * rng.standard_normal((n_classes, latent))

    # Step 4's projection, scaled so that pre-activations have unit variance per entry.
    scale = 1.0 / math.sqrt(latent * (1.0 + residual**2 + noise**2))
    proj = rng.standard_normal((latent, n_features)) * scale          # [L, D]
    offset = rng.normal(0.15, 0.5, n_features)                        # [D]
    gain = rng.lognormal(0.0, 0.4, n_features)                        # [D]
    proj *= gain
    offset *= gain

    # Step 3 + 4, in blocks of rows so that the temporaries stay small. The product is
    # taken in float64 and rounded to float32: a float32 product differs in its last bits
    # with the row's position in the block and the BLAS thread count; after rounding, the
    # float64 one gives the same features in practice (checked for 1 and 2 threads).
    out = np.empty((labels.shape[0], n_features), dtype=np.float32)
    block = np.empty((min(_CHUNK, labels.shape[0]), n_features))     # [B, D] float64
    for start in range(0, labels.shape[0], _CHUNK):
        rows = labels[start:start + _CHUNK]
        z = rng.standard_normal((rows.shape[0], latent))
        z *= noise
        z += class_latent[rows]                                       # [B, L]
        part = block[:rows.shape[0]]
        np.matmul(z, proj, out=part)                                  # [B, D]
        part += offset
        np.maximum(part, 0.0, out=part)
        out[start:start + rows.shape[0]] = part
    return out


def _unit_std(x: np.ndarray) -> np.ndarray:
    """Scale ``x`` to standard deviation 1 over all entries (unchanged if it is constant)."""
    sd = float(x.std())
    return x / sd if sd > 0 else x


#: Largest value of a difficulty knob: far past where the features carry no signal, and
#: small enough that its square (in the feature scale) stays a finite float.
MAX_KNOB = 1e6


def check_knobs(where: str, *, seed: int, residual: float, noise: float) -> None:
    """Raise :class:`DataError` unless the seed and the difficulty knobs are in range.

    :param where: what is being generated, for the message.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"{where}: seed={seed!r} must be an integer >= 0")
    for knob, value in (("residual", residual), ("noise", noise)):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not 0 <= value <= MAX_KNOB):  # NaN fails this too
            raise DataError(f"{where}: {knob}={value!r} must be a finite number >= 0 "
                            f"(at most {MAX_KNOB:g})")


def make_synthetic(*, n_classes: int = 50, n_attributes: int = 24, n_features: int = 128,
                   samples_per_class: int = 60, n_unseen: int = 10, seed: int = 0,
                   residual: float = 1.0, noise: float = 2.0) -> ZSLDataset:
    """A seeded synthetic zero-shot dataset with xlsa17-like splits.

    Images are grouped by class (class 0's first). Attributes are correlated values in
    ``(0, 1)`` with unit-L2-norm rows, as in xlsa17's ``att``.

    :param n_classes: number of classes ``C``.
    :param n_attributes: attribute dimension ``A``.
    :param n_features: feature dimension ``D``.
    :param samples_per_class: images per class.
    :param n_unseen: classes held out entirely (``test_unseen``); the other classes are
        seen. As many seen classes (or half of them, if fewer) form ``val``.
    :param seed: the dataset depends only on the seed and these arguments.
    :param residual: see :func:`synthesise_features`.
    :param noise: see :func:`synthesise_features`.
    :returns: a :class:`ZSLDataset` with ``source="synthetic"`` and splits ``trainval``,
        ``test_seen``, ``test_unseen``, ``train``, ``val``.
    :raises DataError: if a size is out of range.
    """
    where = "synthetic dataset"
    for arg, value, low in (("n_classes", n_classes, 3), ("n_attributes", n_attributes, 1),
                            ("n_features", n_features, 1),
                            ("samples_per_class", samples_per_class, 2),
                            ("n_unseen", n_unseen, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise DataError(f"{where}: {arg}={value!r} must be an integer >= {low}")
    if n_unseen > n_classes - 2:
        raise DataError(f"{where}: n_unseen={n_unseen} leaves fewer than 2 seen classes of "
                        f"n_classes={n_classes}; use n_unseen <= {n_classes - 2}")
    check_knobs(where, seed=seed, residual=residual, noise=noise)

    rng = np.random.default_rng(seed)
    # Correlated attributes: a few latent class factors through a sigmoid, rows L2-normed.
    factors = rng.standard_normal((n_classes, max(2, n_attributes // 3)))
    logits = factors @ rng.standard_normal((factors.shape[1], n_attributes)) - 1.0
    attrs = 1.0 / (1.0 + np.exp(-logits))
    attrs /= np.linalg.norm(attrs, axis=1, keepdims=True)            # [C, A]

    labels = np.repeat(np.arange(n_classes, dtype=np.int64), samples_per_class)
    order = rng.permutation(n_classes)
    unseen, seen = np.sort(order[:n_unseen]), np.sort(order[n_unseen:])
    n_val = min(n_unseen, len(seen) // 2)
    val_classes = rng.choice(seen, size=n_val, replace=False)

    n_test = max(1, round(0.2 * samples_per_class))
    trainval, test_seen = [], []
    for c in seen:
        images = rng.permutation(np.flatnonzero(labels == c))
        test_seen.append(np.sort(images[:n_test]))
        trainval.append(np.sort(images[n_test:]))
    seen_images = np.flatnonzero(np.isin(labels, seen))
    in_val = np.isin(labels[seen_images], val_classes)
    splits = {
        "trainval": np.concatenate(trainval),
        "test_seen": np.concatenate(test_seen),
        "test_unseen": np.flatnonzero(np.isin(labels, unseen)),
        "train": seen_images[~in_val],
        "val": seen_images[in_val],
    }
    features = synthesise_features(attrs, labels, n_features=n_features, residual=residual,
                                   noise=noise, rng=rng)
    origin = (f"make_synthetic(n_classes={n_classes}, n_attributes={n_attributes}, "
              f"n_features={n_features}, samples_per_class={samples_per_class}, "
              f"n_unseen={n_unseen}, seed={seed}, residual={residual}, noise={noise})")
    return ZSLDataset(
        name="synthetic",
        features=features,
        labels=labels,
        attributes=attrs.astype(np.float32),
        class_names=tuple(f"class_{c:03d}" for c in range(n_classes)),
        splits={k: v.astype(np.int64) for k, v in splits.items()},
        source="synthetic",
        origin=origin,
    )
