"""Generative random walk: an add-on generator loss that pushes features generated for
hallucinated (unseen-like) classes away from every seen class, evenly.

Zhang, Jha, Elhoseiny et al., "Continual Zero-Shot Learning through Semantically
Guided Generative Random Walks", ICCV 2023 (GRW; code ``wx-zhang/IGCZSL``), after the
GRaWD / "creative" random-walk loss of Elhoseiny's group. At each generator step:

1. hallucinate ``n`` class attributes by interpolating pairs of the step's attribute
   rows: ``a = alpha a_i + (1 - alpha) a_j``, ``alpha ~ U(interpolation)``, ``i`` and
   ``j`` two independent random permutations of the mini-batch (the ``interpolation``
   variant of GRW);
2. generate one feature per hallucinated attribute from fresh noise: the walk's
   points ``x`` ``[n, D]``;
3. take the seen-class prototypes ``p`` ``[C, D]``: by default the mean of
   ``per_prototype`` features generated for each class of the fit set (in the
   generator's graph), or, with ``prototypes = "real"``, the mean real feature of each
   class, computed in ``start``;
4. similarities ``s(u, v) = scale^2 cos(u, v)`` (``similarity = "dot_product"``) or
   ``-||u - v||^2`` (``"l2_distance"``); row-softmaxes give the transition
   probabilities prototype -> point ``P_pb`` ``[C, n]``, point -> prototype ``P_bp``
   ``[n, C]`` and point -> point ``P_bb`` ``[n, n]`` (no self-transitions);
5. the ``t``-step landing probabilities back on the prototypes are ``T_t = P_pb
   P_bb^t P_bp`` ``[C, C]``; a walk that starts at a seen class and wanders among
   generated points should land on every seen class equally, so the walker loss is
   ``sum_{t=0..steps} decay^t * (-mean_{k,l} log T_t[k, l])``, the cross-entropy of each
   landing distribution with the uniform one; the visit loss ``-mean_b log(mean_k
   P_pb[k, b])`` asks every generated point to be visited equally.

The generator adds ``weight * (walker + visit_weight * visit)``. Probabilities are
clamped to ``[1e-10, 1 - 1e-10]`` before the logarithm, as in the reference. The loss
is bounded below by ``weight * (log C * sum_t decay^t + visit_weight * log n)`` (every
landing and visiting distribution uniform), not by 0. Cost: each generator step
generates ``n`` features plus, with generated prototypes, ``per_prototype`` per fit-set
class (2000 for 200 classes).

Formulas from ``wx-zhang/IGCZSL``: ``rw_loss.py`` (``compute_rw_creative_loss``,
``compute_random_walk_loss``, ``compute_transition_probs``, ``compute_walker_loss`` with
``target_dist='uniform'`` and ``loss_type='cross_entropy'``, ``compute_visit_loss``,
``generate_step_weights``, ``compute_class_centroids``; the real-prototype variant is
``modified_compute_rw_creative_loss``) and ``main.py`` (``train``: the interpolation
block under "Generator inductive loss" and ``gen_rw_creative_loss``). Defaults:
``steps`` 5 and ``decay`` 0.7 (``main.py`` best hyper-parameters for CUB and SUN;
``src/best_param/SUN_interpolation.yaml``), ``weight`` 2 (``grw_creative_weight`` of
CUB with interpolation in ``main.py``; SUN uses 5), ``visit_weight`` 1,
``similarity`` ``dot_product`` with ``scale`` 1 and ``per_prototype`` 10
(``config.yaml``: ``loss_weights.visit_loss``, ``rw_params``), ``n_hallucinated`` =
the mini-batch size and ``interpolation`` (0.2, 0.8) (``main.py``).

Differences from the reference code, on purpose:

* only the generator's creative random-walk term is here. GRW also trains its
  attribute-embedding discriminator with imitative/real random-walk losses, adds a
  CIZSL-style entropy "creativity" term and has a learnable-dictionary variant for the
  hallucinated attributes; those need the reference's discriminator or an optimiser of
  their own and are left out (the dictionary variant is the paper's best, +0.4 H on CUB);
* prototypes are those of the classes of the current ``fit`` (the task's plus the
  replayed ones), which is what the reference's "seen classes so far" are in its
  protocol;
* self-transitions are masked out entirely rather than lowered by 1000, and features
  are L2-normalised with an epsilon (the reference divides by the bare norm);
* with ``l2_distance`` both points and prototypes are raw features (the reference
  passes L2-normalised points and raw prototypes, which only its unused option does);
* a fit set with fewer than two classes gives 0 (nothing to interpolate between).

Options (entry of the ``[generator]`` ``losses`` list): ``weight`` (2.0), ``steps`` (5),
``decay`` (0.7), ``visit_weight`` (1.0), ``similarity`` (``"dot_product"``), ``scale``
(1.0), ``prototypes`` (``"generated"``), ``per_prototype`` (10), ``n_hallucinated`` (0:
the mini-batch size), ``interpolation`` ([0.2, 0.8]).
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import OptionError, choice, integer, number

NAME = "random_walk"
SIMILARITIES = ("dot_product", "l2_distance")
PROTOTYPES = ("generated", "real")
#: Probabilities are clamped to [CLAMP, 1 - CLAMP] before the logarithm (the reference's).
CLAMP = 1e-10


@hookimpl
def czsl_components():
    """One generator loss: ``random_walk``."""
    return [Component("generator_loss", NAME, "semantically guided generative random walk "
                      "from seen prototypes through features of interpolated attributes "
                      "(GRW, Zhang et al., ICCV 2023)")]


@hookimpl
def czsl_make_generator_loss(options):
    """A :class:`RandomWalk` loss."""
    return RandomWalk(**options)


def transition_probabilities(points, prototypes, similarity="dot_product", scale=1.0):
    """``(P_bp [n, C], P_pb [C, n], P_bb [n, n])``: point -> prototype, prototype -> point and
    point -> point transition probabilities (row-softmaxes of the similarities; a point
    never steps to itself unless it is alone)."""
    import torch
    import torch.nn.functional as F

    if similarity == "dot_product":
        points = F.normalize(points, dim=1, eps=1e-12) * scale
        prototypes = F.normalize(prototypes, dim=1, eps=1e-12) * scale
        to_protos, to_points = points @ prototypes.T, points @ points.T
    else:
        def neg_sq_dists(xs, ys):  # -||x - y||^2 as the reference's compute_pairwise_l2_dists
            return 2 * xs @ ys.T - (xs * xs).sum(1)[:, None] - (ys * ys).sum(1)[None, :]
        to_protos, to_points = neg_sq_dists(points, prototypes), neg_sq_dists(points, points)
    self_loop = torch.eye(len(points), dtype=torch.bool, device=points.device)
    to_points = to_points.masked_fill(self_loop, torch.finfo(to_points.dtype).min)
    return to_protos.softmax(1), to_protos.T.softmax(1), to_points.softmax(1)


def walk_losses(points, prototypes, steps=5, decay=0.7, similarity="dot_product", scale=1.0,
                target="uniform"):
    """``(walker, visit)``: the random-walk losses of ``points`` ``[n, D]`` around
    ``prototypes`` ``[C, D]`` (see the module docstring), scalar tensors.

    ``target = "diag"`` is the reference's other target (``compute_walker_loss`` with
    ``target_dist='diag'``, GRW's imitative and real walks): a walk should land back on
    the prototype it started from, so only the diagonal of each landing matrix enters
    the cross-entropy."""
    to_protos, from_protos, between = transition_probabilities(points, prototypes,
                                                               similarity, scale)
    walker = points.new_zeros(())
    walk = from_protos  # [C, n]: prototype -> point after t point -> point steps
    for t in range(steps + 1):
        landing = (walk @ to_protos).clamp(CLAMP, 1 - CLAMP)  # [C, C]
        if target == "diag":
            landing = landing.diagonal()
        walker = walker + decay ** t * -landing.log().mean()
        walk = walk @ between
    visit = -from_protos.mean(0).clamp(CLAMP, 1 - CLAMP).log().mean()
    return walker, visit


def class_means(features, labels, n_classes):
    """``[n_classes, D]`` mean of ``features`` per label (zero for absent labels)."""
    import torch

    sums = features.new_zeros(n_classes, features.shape[1]).index_add(0, labels, features)
    counts = torch.bincount(labels, minlength=n_classes).clamp_min(1)
    return sums / counts[:, None].to(features.dtype)


class RandomWalk:
    """The loss (see :func:`czsl.hookspecs.czsl_make_generator_loss`); options: see the
    module docstring. Its only state is the real class means (``prototypes = "real"``)."""

    def __init__(self, weight=2.0, steps=5, decay=0.7, visit_weight=1.0,
                 similarity="dot_product", scale=1.0, prototypes="generated", per_prototype=10,
                 n_hallucinated=0, interpolation=(0.2, 0.8)):
        self.weight = number("weight", weight, at_least=0)
        self.steps = integer("steps", steps, at_least=0)
        self.decay = number("decay", decay, above=0, at_most=1)
        self.visit_weight = number("visit_weight", visit_weight, at_least=0)
        self.similarity = choice("similarity", similarity, SIMILARITIES)
        self.scale = number("scale", scale, above=0)
        self.prototypes = choice("prototypes", prototypes, PROTOTYPES)
        self.per_prototype = integer("per_prototype", per_prototype)
        self.n_hallucinated = integer("n_hallucinated", n_hallucinated, at_least=0)
        if not isinstance(interpolation, (list, tuple)) or len(interpolation) != 2:
            raise OptionError("interpolation", f"must be two numbers [low, high], got "
                                               f"{interpolation!r}")
        low = number("interpolation", interpolation[0], at_least=0, at_most=1)
        high = number("interpolation", interpolation[1], at_least=low, at_most=1)
        self.interpolation = (low, high)
        self.real_means = None  # [C, D] for prototypes = "real", set by start

    def start(self, features, attributes):
        """With ``prototypes = "real"``: the mean real feature of each fit-set class."""
        import torch

        if self.prototypes != "real":
            return
        classes, own = torch.unique(attributes, dim=0, return_inverse=True)
        self.real_means = class_means(features.detach(), own, len(classes))

    def _prototypes(self, batch, like):
        classes = batch.class_attributes
        if self.prototypes == "generated":
            k = self.per_prototype
            generated = batch.generate(classes.repeat_interleave(k, 0),
                                       batch.sample_noise(len(classes) * k))
            return generated.reshape(len(classes), k, -1).mean(1)
        means = self.real_means
        if means is None or len(means) != len(classes):  # no start for this fit set
            present = batch.labels.unique()
            return class_means(batch.real.detach(), batch.labels, len(classes))[present].to(like)
        return means.to(like)

    def _hallucinate(self, attributes, n):
        """``n`` interpolations of two random permutations of ``attributes`` rows."""
        import torch

        def permutation():
            reps = -(-n // len(attributes))
            return torch.cat([torch.randperm(len(attributes), device=attributes.device)
                              for _ in range(reps)])[:n]

        low, high = self.interpolation
        alpha = torch.rand(n, 1, device=attributes.device, dtype=attributes.dtype) \
            * (high - low) + low
        return alpha * attributes[permutation()] + (1 - alpha) * attributes[permutation()]

    def __call__(self, batch):
        if len(batch.class_attributes) < 2:
            return batch.real.new_zeros(())
        n = self.n_hallucinated or len(batch.attributes)
        attributes = self._hallucinate(batch.attributes, n)
        points = batch.generate(attributes, batch.sample_noise(n))
        walker, visit = walk_losses(points, self._prototypes(batch, points), self.steps,
                                    self.decay, self.similarity, self.scale)
        return self.weight * (walker + self.visit_weight * visit)
