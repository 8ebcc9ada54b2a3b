"""GRW complete: a discriminator-as-classifier D trained with a feature generator G that
walks among hallucinated classes (Zhang, Jha, Elhoseiny et al., "Continual Zero-Shot
Learning through Semantically Guided Generative Random Walks", ICCV 2023; code
``wx-zhang/IGCZSL``, branch ``beta``: ``src/main.py``, ``src/rw_loss.py``,
``src/model.py``, ``src/rw_config.yaml``, ``src/best_param/*.yaml``).

Two components:

* model ``grw_discriminator``: D maps attributes to features, ``a -> 1024 -> D`` with a
  ReLU after both layers (``model.py:Discriminator``; xavier-normal weights, zero
  biases); logits are ``temperature * cos(x, D(a_c))`` (``t`` = 10). The learner trains
  it with its cross-entropy: use ``[train] loss_classes = "seen"`` (GRW's CE runs over
  every seen class), Adam lr 0.005, weight decay 1e-5.
* replay ``grw``: G, ``[noise ~ N(0, I_A)] ⊕ a -> 1024 (ReLU) -> D (sigmoid)``
  (``model.py:Generator``), GRW's real buffer and the stored real class means. Per
  mini-batch:

  - ``before_backward`` adds D's other terms to the learner's loss (``main.py:190-214``):
    ``-log(t mean_{b,b'} cos(D(a_yb), x_b')) + log(t mean_b cos(D(a_yb), G(z, a_yb)))``
    (the real term over every pair of the batch, as the code's ``[B, 1, D]`` against
    ``[B, D]`` broadcasts; ``real_pairs = "own"`` pairs each feature with its class) and
    ``MSE(D(a_c), mean_c)`` over the seen classes (their stored real means);
  - ``after_update`` (D has stepped) takes one step of G with its own Adam (lr 0.005,
    wd 1e-5; both optimisers re-created each task, as ``train`` does), on
    ``-log(t mean cos(D(a_y), G)) + CE(t cos(G, D(a_c)))`` plus the class-mean distance
    ``sum_c ||mean_b G_c - mean_c|| / C`` and the neighbour correlation (each class's
    ``K`` = 3 nearest seen classes by attribute cosine, itself included, with margins:
    ``max(0, cos - s - hi)^2 + max(0, s - lo - cos)^2``, summed, times 20), the
    CIZSL creativity ``-w mean(log_softmax(t cos(G(h), D(a_c))) / C) - mean(t cos(D(h),
    G(h)))`` on hallucinated attributes ``h`` (interpolations ``alpha a_i + (1 - alpha)
    a_j``, ``alpha ~ U[0.2, 0.8]``, of two permutations of the batch's attributes, or rows
    of a learnable dictionary ``nn.Embedding(C_all, A, max_norm)`` re-created each task
    from such interpolations and trained with its own Adam, lr 0.05), and the random walks
    (:func:`czsl_plugins.random_walk.walk_losses`): imitative twice (points and prototypes
    from ``per_prototype`` fakes per seen class, diagonal target), real ×2.5 (real batch
    features around the prototypes of the batch's classes, diagonal target) and creative
    ×``creative_walk_weight`` (the ``G(h)`` around the prototypes, uniform target).

GRW's buffer: after each task every seen class keeps its first ``buffer_size // C``
real training features (``main.py:405-432``), concatenated to the next task's data, as
its code does.

Which code: ``beta``. ``main`` steps G twice per batch and computes G's first losses
on graphs built before D's step (torch >= 1.5 refuses it); ``beta`` fixes the ordering:
D steps on its loss, then G's loss is computed afresh with the updated D and G steps
once. In both, G's losses (random walks and creativity included, though they are
named "discriminator" losses there) never update D: their gradients on D are zeroed at
the next batch. So here G's losses never reach D either.

Differences from ``beta``'s code, each on purpose:

* D on the seen attributes is computed once per step, not on the ``[B, C, A]`` tensor of
  the attributes repeated over the batch (the same numbers; :func:`seen_logits` is
  tested against the repeated form);
* the class-mean distance and the correlation use each present class's mean of the
  batch's fakes, as ``main``'s loop computes them: ``beta``'s vectorised version
  broadcasts ``[B, C, 1]`` against ``[B, 1, 1, D]`` into ``[B, B, C, D]``, so its "class
  means" are the mean of all the batch's fakes, masked per row; the correlation is
  summed and weighted as in ``main`` (``corr_weight`` 20), with ``beta``'s margins ±0.01
  by default (``main``: -0.01 / +0.04 on CUB: ``correlation_margins``);
* GRW's loss on D's fakes carries no gradient to G (D's optimiser only steps D); here
  the fake is detached there, the same update;
* ``rw_config.yaml``'s class-visit term (``class_visit_loss_coef`` 0.5) is set to 0 by
  its code after the first batch of the run (``rw_loss.py:244,267``); it is left out;
* self-transitions of the walks are masked out (the reference subtracts 1000);
* a mini-batch of one sample trains D (GRW's code skips it) but not G;
* the prototypes' fakes: ``prototype_draws = "fresh"`` (default) draws them anew for
  each of the four walks, as the reference; ``"shared"`` draws them once per step (a
  quarter of the cost); ``prototypes = "real"`` takes the stored real class means as the
  creative walk's prototypes (``rw_loss.py``'s ``modified_compute_rw_creative_loss``) and
  drops the imitative and real walks (without generated prototypes they carry no
  gradient to G), for CPU schedules;
* the test is czsl's (all classes, after each task), never a validation on the test
  split.

Options of the replay (``[replay]``): ``hallucination`` (``"interpolation"`` |
``"dictionary"``), ``buffer_size`` (5000), ``lr`` (0.005), ``weight_decay`` (1e-5),
``dictionary_lr`` (0.05), ``temperature`` (10), ``adversarial_weight`` (1: D's log-cosine
pair), ``mse_weight`` (1), ``classification_weight`` (1: G's CE, GRW's ``alpha``),
``mean_distance_weight`` (1), ``correlation_weight`` (20), ``neighbours`` (3),
``correlation_margins`` ([0.01, 0.01]), ``creativity_weight`` (1: ``creative_weight`` of
CUB and SUN), ``imitative_weight`` (1, applied to each of the two imitative walks),
``real_walk_weight`` (2.5), ``creative_walk_weight`` (2: CUB; SUN 5 interpolation, 1
dictionary), ``visit_weight`` (1), ``steps`` (5), ``decay`` (0.7), ``per_prototype``
(10), ``prototypes`` (``"generated"`` | ``"real"``), ``prototype_draws`` (``"fresh"`` |
``"shared"``), ``interpolation`` ([0.2, 0.8]), ``hidden`` (1024: G's hidden width),
``reset_optimizer`` (true: the learner's Adam state is cleared at each task start, as
GRW's code builds D's optimiser anew per task), ``real_pairs`` (``"all"``: D's real
log-cosine over every (class, feature) pair of the batch, as the code broadcasts it;
``"own"``: each feature with its own class). Options of the model: ``hidden`` (1024),
``temperature`` (10).
"""

from __future__ import annotations

import functools
import math

from czsl import Component, hookimpl
from czsl.options import OptionError, boolean, choice, integer, number

MODEL = "grw_discriminator"
REPLAY = "grw"
HALLUCINATIONS = ("interpolation", "dictionary")
PROTOTYPES = ("generated", "real")
DRAWS = ("fresh", "shared")
PAIRS = ("all", "own")


@hookimpl
def czsl_components():
    """A model (GRW's discriminator) and a replay (GRW's generator, buffer and losses)."""
    return [Component("model", MODEL, "GRW's discriminator as classifier: attributes -> "
                      "1024 -> features, cosine x 10 (Zhang et al., ICCV 2023)"),
            Component("replay", REPLAY, "GRW complete: generator with D's adversarial "
                      "terms, neighbour correlation, creativity and generative random walks, "
                      "real buffer (Zhang et al., ICCV 2023)", options=OPTIONS)]


@hookimpl
def czsl_make_model(options, n_features, attributes):
    """GRW's discriminator as an :class:`czsl.models.AttributeModel`."""
    return build_discriminator(n_features, attributes, **options)


@hookimpl
def czsl_make_replay(options, stream):
    """The GRW plugin."""
    return [make_plugin(stream, **options)]


# ----------------------------------------------------------------------- the networks


def build_discriminator(n_features, attributes, *, hidden=1024, temperature=10.0):
    """D, ``a -> hidden -> n_features`` with ReLUs, scored by ``temperature * cos``.

    :param attributes: ``[C, A]`` class attributes (used as they are).
    """
    hidden = integer("hidden", hidden)
    temperature = number("temperature", temperature, above=0)
    import torch
    from torch import nn

    from czsl.models import AttributeModel

    attributes = torch.as_tensor(attributes, dtype=torch.float32)
    embedder = _init(nn.Sequential(nn.Linear(attributes.shape[1], hidden), nn.ReLU(),
                                   nn.Linear(hidden, n_features), nn.ReLU()))
    return AttributeModel(embedder, attributes, scale=math.sqrt(temperature))


def build_generator(n_attributes, n_features, hidden=1024):
    """G as ``nn.Sequential`` over ``[noise ⊕ a]`` ``[B, 2A]``: ``-> hidden`` (ReLU) ``->
    n_features`` (sigmoid); call it through :func:`generate`."""
    from torch import nn

    return _init(nn.Sequential(nn.Linear(2 * n_attributes, hidden), nn.ReLU(),
                               nn.Linear(hidden, n_features), nn.Sigmoid()))


def _init(net):
    """GRW's init (``model.py``): xavier-normal weights, zero biases."""
    from torch import nn

    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def generate(generator, attributes):
    """``[B, D]`` fakes of ``attributes`` ``[B, A]`` from fresh noise ``N(0, I_A)``."""
    import torch

    return generator(torch.cat([torch.randn_like(attributes), attributes], 1))


# ----------------------------------------------------------------------------- the math


def cosines(feats, embeddings):
    """``[B, C]`` cosine of every feature ``[B, D]`` with every embedding ``[C, D]``."""
    import torch.nn.functional as F

    return F.normalize(feats, dim=-1, eps=1e-12) @ F.normalize(embeddings, dim=-1, eps=1e-12).T


def paired_cosine(a, b):
    """``[B]`` cosine of row ``b`` of ``a`` with row ``b`` of ``b``."""
    import torch.nn.functional as F

    return (F.normalize(a, dim=-1, eps=1e-12) * F.normalize(b, dim=-1, eps=1e-12)).sum(-1)


def seen_logits(feats, seen_embeddings, temperature=10.0):
    """``[B, C]``: ``temperature * cos`` of the features with D of each seen class,
    computed once per class (GRW's code: on D of the attributes repeated over the batch)."""
    return temperature * cosines(feats, seen_embeddings)


def log_cosine(embeddings, feats, temperature=10.0):
    """``log(temperature * mean_b cos(D(a_yb), f_b))``: GRW's adversarial term."""
    return (temperature * paired_cosine(embeddings, feats).mean()).log()


def discriminator_terms(embeddings, real, fake, seen_embeddings, seen_means, *,
                        temperature=10.0, adversarial_weight=1.0, mse_weight=1.0,
                        real_pairs="all"):
    """D's terms beside its CE (``main.py:190-214``): ``adversarial_weight * (-log t cos
    (real) + log t cos(fake)) + mse_weight * MSE(D(a_c), mean_c)``.

    GRW's and BD's code take the real cosine between ``D(a_y)`` ``[B, 1, D]`` and the
    features ``[B, D]``, which broadcasts to every pair of the batch: its mean is
    ``mean_{i,j} cos(D(a_yi), x_j)`` (``real_pairs = "all"``, the code's);
    ``"own"`` pairs each feature with its own class (the fake term always does).

    :param embeddings: ``[B, D]`` D of each sample's class; ``real``, ``fake`` ``[B, D]``.
    :param seen_embeddings: ``[C, D]`` D of the seen classes; ``seen_means`` their means.
    """
    import torch.nn.functional as F

    if real_pairs == "all":
        real_term = (temperature * cosines(embeddings, real).mean()).log()
    else:
        real_term = log_cosine(embeddings, real, temperature)
    adversarial = -real_term + log_cosine(embeddings, fake, temperature)
    return adversarial_weight * adversarial + mse_weight * F.mse_loss(seen_means,
                                                                      seen_embeddings)


def fake_class_means(fake, labels, n_classes):
    """``(means [P, D], present [P])``: the mean fake of each class present in ``labels``."""
    import torch

    present, own = torch.unique(labels, return_inverse=True)
    sums = fake.new_zeros(len(present), fake.shape[1]).index_add(0, own, fake)
    counts = torch.bincount(own, minlength=len(present)).to(fake.dtype)
    return sums / counts[:, None], present


def mean_distance(fake, labels, seen_means):
    """``sum_c ||mean_b fake_c - mean_c|| / C`` over the classes present (``main.py``'s
    Euclidean loss); ``labels`` are rows of ``seen_means`` ``[C, D]``."""
    means, present = fake_class_means(fake, labels, len(seen_means))
    return (means - seen_means[present]).norm(dim=1).sum() / len(seen_means)


def attribute_neighbours(attributes, k=3):
    """``(index [C, k], similarity [C, k])``: each class's ``k`` most similar classes by
    attribute cosine, itself first (``data.py:semantic_similarity_check``)."""
    sims = cosines(attributes, attributes)
    values, index = sims.topk(min(k, len(attributes)), dim=1)
    return index, values


def neighbour_correlation(fake, labels, seen_means, neighbours, similarities,
                          margins=(0.01, 0.01)):
    """LSR's correlation term, summed over the present classes and their neighbours:
    ``max(0, cos - (s + hi))^2 + max(0, (s - lo) - cos)^2`` with ``cos`` the cosine of a
    class's mean fake with its neighbour's real mean and ``s`` their attribute cosine."""
    import torch

    means, present = fake_class_means(fake, labels, len(seen_means))
    nb = neighbours[present]  # [P, k]
    cos = paired_cosine(means[:, None, :].expand(-1, nb.shape[1], -1), seen_means[nb])
    low, high = margins
    s = similarities[present]
    return (torch.relu(cos - (s + high)) ** 2 + torch.relu((s - low) - cos) ** 2).sum()


def creativity(creative_logits, embeddings_h, creative, *, weight=1.0, temperature=10.0):
    """CIZSL's creativity (``main.py:259-273``): ``-weight mean(log_softmax(logits) / C)
    - mean(t cos(D(h), G(h)))``.

    :param creative_logits: ``[B, C]`` ``t cos(G(h), D(a_c))`` over the seen classes.
    """
    log_p = creative_logits.log_softmax(-1)
    entropy = (log_p / log_p.shape[1]).mean()
    return -weight * entropy - (temperature * paired_cosine(embeddings_h, creative)).mean()


def interpolate(attributes, low=0.2, high=0.8):
    """``alpha a[perm1] + (1 - alpha) a[perm2]``, ``alpha ~ U[low, high]`` per row."""
    import torch

    n = len(attributes)
    alpha = torch.rand(n, 1, dtype=attributes.dtype, device=attributes.device) * (
        high - low) + low
    first = attributes[torch.randperm(n, device=attributes.device)]
    second = attributes[torch.randperm(n, device=attributes.device)]
    return alpha * first + (1 - alpha) * second


def centroids(fakes, per_prototype):
    """``[C, D]`` means of consecutive groups of ``per_prototype`` rows."""
    return fakes.reshape(-1, per_prototype, fakes.shape[1]).mean(1)


def walk_terms(imitative, real_prototypes, real, real_labels, creative_prototypes, creative,
               *, steps=5, decay=0.7, visit_weight=1.0):
    """``(imitative [losses], real, creative)`` walker + visit losses (``rw_loss.py``).

    :param imitative: ``[C * k, D]`` fakes, ``k`` per class in class order, one tensor per
        imitative walk: its points, and its prototypes the means of each class's ``k``.
    :param real_prototypes: ``[C, D]``; ``real`` ``[B, D]`` real features of classes
        ``real_labels`` (rows of the prototypes; only those classes' prototypes walk).
    :param creative_prototypes: ``[C, D]``; ``creative`` ``[B, D]`` fakes of hallucinated
        attributes.
    """
    import torch

    from czsl_plugins.random_walk import walk_losses

    def loss(points, protos, target):
        walker, visit = walk_losses(points, protos, steps, decay, target=target)
        return walker + visit_weight * visit

    n_classes = len(real_prototypes)
    imitation = [loss(points, centroids(points, len(points) // n_classes), "diag")
                 for points in imitative]
    present = torch.unique(real_labels)  # the reference keeps the batch's classes only
    return (imitation, loss(real, real_prototypes[present], "diag"),
            loss(creative, creative_prototypes, "uniform"))


# ------------------------------------------------------------------------------ the replay


def _pair(key, value):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise OptionError(key, f"must be two numbers [low, high], got {value!r}")
    return tuple(number(key, v, at_least=0) for v in value)


OPTIONS = dict(hallucination="interpolation", buffer_size=5000, lr=0.005, weight_decay=1e-5,
               dictionary_lr=0.05, temperature=10.0, adversarial_weight=1.0, mse_weight=1.0,
               classification_weight=1.0, mean_distance_weight=1.0, correlation_weight=20.0,
               neighbours=3, correlation_margins=[0.01, 0.01], creativity_weight=1.0,
               imitative_weight=1.0, real_walk_weight=2.5, creative_walk_weight=2.0,
               visit_weight=1.0, steps=5, decay=0.7, per_prototype=10,
               prototypes="generated", prototype_draws="fresh", interpolation=[0.2, 0.8],
               hidden=1024, reset_optimizer=True, real_pairs="all")


def check_options(**options):
    """The options, checked and completed with :data:`OPTIONS` (one-line errors)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}")
    o = {**OPTIONS, **options}
    o["hallucination"] = choice("hallucination", o["hallucination"], HALLUCINATIONS)
    o["prototypes"] = choice("prototypes", o["prototypes"], PROTOTYPES)
    o["prototype_draws"] = choice("prototype_draws", o["prototype_draws"], DRAWS)
    for key in ("buffer_size",):
        o[key] = integer(key, o[key], at_least=0)
    for key in ("neighbours", "per_prototype", "hidden"):
        o[key] = integer(key, o[key])
    o["steps"] = integer("steps", o["steps"], at_least=0)
    for key in ("lr", "dictionary_lr", "temperature"):
        o[key] = number(key, o[key], above=0)
    o["decay"] = number("decay", o["decay"], above=0, at_most=1)
    for key in ("weight_decay", "adversarial_weight", "mse_weight", "classification_weight",
                "mean_distance_weight", "correlation_weight", "creativity_weight",
                "imitative_weight", "real_walk_weight", "creative_walk_weight",
                "visit_weight"):
        o[key] = number(key, o[key], at_least=0)
    o["correlation_margins"] = _pair("correlation_margins", o["correlation_margins"])
    low, high = _pair("interpolation", o["interpolation"])
    if not low <= high <= 1:
        raise OptionError("interpolation", f"needs 0 <= low <= high <= 1, got {[low, high]}")
    o["interpolation"] = (low, high)
    o["reset_optimizer"] = boolean("reset_optimizer", o["reset_optimizer"])
    o["real_pairs"] = choice("real_pairs", o["real_pairs"], PAIRS)
    return o


def make_plugin(stream, **options):
    """The GRW replay plugin; options: see the module docstring."""
    return _plugin_class()(stream, check_options(**options))


def seen_state(model, stream, means, embedded=None):
    """``(seen [C], attributes [C, A], embeddings [C, D], means [C, D])`` of the classes
    visible to ``model`` (the seen ones).

    :param embedded: D of the seen classes if already computed (the learner's forward
        pass embeds them: see :class:`EmbeddingCapture`), else ``None``.
    """
    import torch

    seen = torch.nonzero(model.visible)[:, 0].cpu()
    attributes = stream.attributes_of(seen).to(model.attributes.device)
    if embedded is None or len(embedded) != len(seen):
        embedded = model.embedder(attributes)
    return seen, attributes, embedded, means[seen].to(attributes.device)


class EmbeddingCapture:
    """Keeps the output of the model's attribute embedder from the learner's forward
    pass, so D's extra terms reuse it (and its graph) instead of embedding the seen
    classes a second time. Attached for a task; nothing of it is saved."""

    def __init__(self):
        self.handle = self.output = None

    def attach(self, model):
        """Start capturing ``model.embedder``'s outputs."""
        self.detach()
        self.handle = model.embedder.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self.output = output

    def take(self):
        """The last output (``None`` if none), forgotten once taken."""
        output, self.output = self.output, None
        return output

    def detach(self):
        """Stop capturing."""
        if self.handle is not None:
            self.handle.remove()
        self.handle = self.output = None


def local_labels(labels, seen, n_classes):
    """``labels`` (class ids) as rows of ``seen``."""
    import torch

    row = torch.full((n_classes,), -1, dtype=torch.long)
    row[seen] = torch.arange(len(seen))
    return row.to(labels.device)[labels.long()]


@functools.cache
def _plugin_class():
    """Built on first use: Avalanche is imported only when a run needs it."""
    import torch
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _as_taskaware_supervised_classification_dataset,
    )
    from avalanche.core import SupervisedPlugin
    from torch import nn
    from torch.utils.data import TensorDataset

    from czsl_plugins.generative_replay import task_features
    from czsl_plugins.random_walk import walk_losses

    class GRWReplay(SupervisedPlugin):
        """G, the buffer and the class means; D's extra terms and G's step per batch."""

        def __init__(self, stream, options):
            super().__init__()
            self.stream = stream
            self.o = options
            self.generator = None  # built at the first task (the feature size is known then)
            self.means = None  # [C_all, D] stored real class means (rows of seen classes)
            self.buffer_x = self.buffer_y = None  # GRW's real buffer
            self.task = None  # the task's real (x, y) until the buffer takes them
            self._transient()

        def _transient(self):
            """What lives only while a task trains (re-created per task, as GRW's code)."""
            self.g_optimizer = self.dictionary = self.dict_optimizer = None
            self.neighbours = self.similarities = self.capture = None

        def __getstate__(self):
            state = dict(self.__dict__)
            for key in ("g_optimizer", "dictionary", "dict_optimizer", "neighbours",
                        "similarities", "capture"):
                state[key] = None
            return state

        # -------------------------------------------------------------- task boundaries

        def after_train_dataset_adaptation(self, strategy, *args, **kwargs):
            x, y = task_features(strategy.adapted_dataset)  # the task's real features
            device = strategy.device
            if self.generator is None:
                self.generator = build_generator(self.stream.n_attributes, x.shape[1],
                                                 self.o["hidden"]).to(device)
                self.means = torch.zeros(self.stream.n_classes, x.shape[1])
            for c in y.unique().tolist():  # GRW's avg_feature: the task's real class means
                self.means[c] = x[y == c].mean(0)
            self.task = (x, y)
            if self.o["buffer_size"] and self.buffer_x is not None:
                strategy.adapted_dataset = concat_datasets([
                    strategy.adapted_dataset, _as_taskaware_supervised_classification_dataset(
                        TensorDataset(self.buffer_x, self.buffer_y))])

        def before_training_exp(self, strategy, *args, **kwargs):
            o = self.o
            if o["reset_optimizer"]:  # GRW's code builds D's Adam anew for each task
                strategy.optimizer.state.clear()
            self.capture = EmbeddingCapture()
            self.capture.attach(strategy.model)
            self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=o["lr"],
                                                weight_decay=o["weight_decay"], foreach=True)
            seen = torch.nonzero(self.stream.visible)[:, 0]
            attributes = self.stream.attributes_of(seen).to(strategy.device)
            self.neighbours, self.similarities = attribute_neighbours(attributes,
                                                                      o["neighbours"])
            if o["hallucination"] == "dictionary":  # main.py:263-271, every task
                n = self.stream.n_classes
                self.dictionary = nn.Embedding(n, attributes.shape[1],
                                               max_norm=float(attributes.norm(dim=1).max()))
                first = torch.randint(0, len(seen), (n,))
                second = torch.randint(0, len(seen), (n,))
                alpha = torch.rand(n, 1) * (0.8 - 0.2) + 0.2
                with torch.no_grad():
                    self.dictionary.weight.copy_(alpha * attributes[second].cpu()
                                                 + (1 - alpha) * attributes[first].cpu())
                self.dictionary.to(strategy.device)
                self.dict_optimizer = torch.optim.Adam(self.dictionary.parameters(),
                                                       lr=o["dictionary_lr"],
                                                       weight_decay=o["weight_decay"], foreach=True)

        def after_training_exp(self, strategy, *args, **kwargs):
            if self.capture is not None:
                self.capture.detach()
            self._transient()
            if not self.o["buffer_size"] or self.task is None:
                return
            # main.py:405-432: each seen class keeps its first buffer_size // C features
            x, y = self.task
            self.task = None
            if self.buffer_x is not None:
                x, y = torch.cat([x, self.buffer_x]), torch.cat([y, self.buffer_y])
            classes = y.unique()
            k = self.o["buffer_size"] // len(classes)
            keep = torch.cat([(y == c).nonzero()[:k, 0] for c in classes.tolist()])
            order = torch.argsort(y[keep], stable=True)  # class order, as GRW's buffer
            self.buffer_x, self.buffer_y = x[keep][order].clone(), y[keep][order].clone()

        # -------------------------------------------------------------------- per batch

        def before_backward(self, strategy, *args, **kwargs):
            o = self.o
            model, x = strategy.model, strategy.mb_x
            seen, attributes, emb_seen, means = seen_state(
                model, self.stream, self.means, self.capture and self.capture.take())
            rows = local_labels(strategy.mb_y, seen, self.stream.n_classes)
            with torch.no_grad():  # no gradient reaches G from D's loss
                fake = generate(self.generator, attributes[rows])
            strategy.loss = strategy.loss + discriminator_terms(
                emb_seen[rows], x, fake, emb_seen, means, temperature=o["temperature"],
                adversarial_weight=o["adversarial_weight"], mse_weight=o["mse_weight"],
                real_pairs=o["real_pairs"])

        def after_update(self, strategy, *args, **kwargs):
            if len(strategy.mb_y) < 2:
                return
            loss = self.generator_loss(strategy.model, strategy.mb_x, strategy.mb_y)
            params = list(self.generator.parameters())
            if self.dictionary is not None:
                params += list(self.dictionary.parameters())
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for p, g in zip(params, grads):
                p.grad = g
            self.g_optimizer.step()
            if self.dict_optimizer is not None:
                self.dict_optimizer.step()

        def hallucinate(self, attributes):
            """``[B, A]`` hallucinated attributes for a batch of ``attributes``."""
            if self.dictionary is None:
                return interpolate(attributes, *self.o["interpolation"])
            idx = torch.randint(0, self.dictionary.num_embeddings, (len(attributes),),
                                device=attributes.device)
            return self.dictionary(idx)

        def generator_loss(self, model, x, y):
            """G's loss for the batch ``x`` ``[B, D]``, ``y`` ``[B]`` (``beta main.py:
            217-356``), with D as it is after its step."""
            o, t, g = self.o, self.o["temperature"], self.generator
            with torch.no_grad():
                seen, attributes, emb_seen, means = seen_state(model, self.stream,
                                                               self.means)
            rows = local_labels(y, seen, self.stream.n_classes)
            fake = generate(g, attributes[rows])
            loss = (-log_cosine(emb_seen[rows], fake, t)
                    + o["classification_weight"] * torch.nn.functional.cross_entropy(
                        seen_logits(fake, emb_seen, t), rows)
                    + o["mean_distance_weight"] * mean_distance(fake, rows, means))
            if o["correlation_weight"]:
                loss = loss + o["correlation_weight"] * neighbour_correlation(
                    fake, rows, means, self.neighbours, self.similarities,
                    o["correlation_margins"])
            hallucinated = self.hallucinate(attributes[rows])
            creative = generate(g, hallucinated)
            if self.dictionary is None:  # nothing learns from D(h) but the dictionary
                with torch.no_grad():
                    emb_h = model.embedder(hallucinated)
            else:  # gradient to the dictionary, not to D
                emb_h = model.embedder(hallucinated)
            loss = loss + creativity(seen_logits(creative, emb_seen, t), emb_h, creative,
                                     weight=o["creativity_weight"], temperature=t)
            walks = (o["imitative_weight"], o["real_walk_weight"], o["creative_walk_weight"])
            if any(walks):
                loss = loss + self.walk_loss(attributes, means, x, rows, creative)
            return loss

        def walk_loss(self, attributes, means, x, rows, creative):
            """The weighted sum of the four random walks."""
            o, g, k = self.o, self.generator, self.o["per_prototype"]
            repeated = attributes.repeat_interleave(k, 0)  # [C * k, A], class order
            if o["prototypes"] == "real":  # modified_compute_rw_creative_loss: no fakes
                walker, visit = walk_losses(creative, means, o["steps"], o["decay"])
                return o["creative_walk_weight"] * (walker + o["visit_weight"] * visit)
            elif o["prototype_draws"] == "shared":  # one draw for the four walks
                fakes = generate(g, repeated)
                imitative, real_protos = [fakes, fakes], centroids(fakes, k)
                creative_protos = real_protos
            else:  # the reference: a fresh draw for each walk
                imitative = [generate(g, repeated), generate(g, repeated)]
                real_protos = centroids(generate(g, repeated), k)
                creative_protos = centroids(generate(g, repeated), k)
            imitation, real, creation = walk_terms(
                imitative, real_protos, x, rows, creative_protos, creative, steps=o["steps"],
                decay=o["decay"], visit_weight=o["visit_weight"])
            return (o["imitative_weight"] * sum(imitation, x.new_zeros(()))
                    + o["real_walk_weight"] * real + o["creative_walk_weight"] * creation)

    return GRWReplay
