"""Gradient matching: an add-on generator loss that makes generated features train a
classifier the way real ones do.

Sariyildiz & Cinbis, "Gradient Matching Generative Networks for Zero-Shot Learning",
CVPR 2019 (GMN). A softmax classifier over the fit set's ``C`` classes is applied to the
real and to the generated features of a class ``c``; the gradient of its mean
cross-entropy with respect to its parameters, computed on the real samples of ``c``,
should point the same way as the one computed on the generated samples of ``c``.
For each class ``c`` the loss is

    l_c = (1 - mean_r cos(dW_real_c[r], dW_fake_c[r])) + (1 - cos(db_real_c, db_fake_c))

(``dW[r]`` the ``r``-th row of the weight gradient, ``db`` the bias gradient) and the
generator adds ``weight * mean_c l_c``, differentiable through the generated features
(also through their softmax probabilities, as the reference's ``create_graph=True``).

As in the authors' code (``mbsariyildiz/gmn-zsl``, ``src/main.py``, the "gmn
iterations" and "Classifier update" blocks of ``main()``; ``src/scripts/gmn_CUB.sh``,
``gmn_SUN.sh``, ``common_CUB_hps.sh``, ``common_SUN_hps.sh``):

* the per-parameter terms: row-wise cosine averaged over the rows for the weight
  matrix, plain cosine for the bias, summed over the two (``grad_cossim`` there);
* the classifier: ``classifier = "linear"`` is their ``mlp`` with no hidden layer,
  logits ``W x + b`` (their SUN setting, ``src/classifiers/mlp.py``);
  ``classifier = "bilinear"`` is their ``bilinear-comp``, logits ``(A x + a) S^T``
  with ``S`` the ``[C, A]`` class attributes and the gradient taken for ``A``, ``a``
  (their CUB setting, ``src/classifiers/bilinear_compatibility.py``). Weights are drawn
  from N(0, 0.02), biases zero (``init_params``);
* when it is trained: it is redrawn at random every ``reset_every`` generator steps
  (their ``clf_reset_iter``: 1 for CUB and SUN, i.e. a fresh random classifier at every
  step, never trained), and between redraws takes one SGD step (momentum 0.9, ``lr``,
  ``weight_decay``) on real features only (their ``train_step`` on ``xy_iter``), after
  the loss of that step is computed;
* per-class batches: at each generator step ``n_classes`` classes are picked (their
  ``n_gm_iter``: 5 on CUB, 20 on SUN), ``per_class`` real features of each are drawn
  from the fit set (their ``per_class_batch_size``: 60 / 16) and ``fake_repeat`` times
  as many are generated for it with fresh noise (their ``gm_fake_repeat``: 2 / 10).

The gradients are not built by autograd: for a linear softmax classifier the gradient
of the mean cross-entropy over samples ``S_c`` is ``(softmax(W x + b) - onehot(y))^T x /
|S_c|`` (and ``S^T`` times that for the bilinear one), so every inner product between two
classes' gradient rows is a quadratic form in the Gram matrix of their features. All
classes are done at once with same-class-masked Gram matrices and ``index_add``, no
double backward and no ``[classes, C, D]`` tensor.

Differences from the reference code, on purpose:

* the per-class terms are averaged over the step's classes where the reference sums
  them (one ``backward`` per class); the default ``weight`` 500 is the reference's
  ``Q`` = 100 (both datasets) times its 5 classes per CUB step, so the default matches
  the CUB setting; for the SUN setting use ``weight`` 2000, ``n_classes`` 20,
  ``per_class`` 16, ``fake_repeat`` 10;
* classes are drawn at random without repetition within a step (the reference cycles
  through them one at a time), real features of a class with replacement; the
  classifier's between-reset SGD step uses the generator step's real mini-batch rather
  than a fresh one;
* the classifier covers the classes of the current ``fit`` (the task's plus replayed
  ones), not a fixed seen set; the default ``classifier`` is ``linear`` (the SUN
  setting; ``bilinear`` is the CUB one);
* the reference's optional MSE term (``Z``, 0 in all its scripts) is left out;
* ``epochs`` > 0 (default 0, as the reference) pre-trains the classifier in ``start``
  with the same SGD on the whole fit set, useful with ``reset_every = 0`` (never
  redraw): a trained classifier rather than random ones;
* when the fit set is not known (no ``start`` call, or right after a checkpoint was
  restored: the stored fit set is not pickled) or ``n_classes = 0``, the classes of the
  step's own mini-batch are used: its real features and the generated ``batch.fake``
  (plus ``fake_repeat - 1`` more from fresh noise).

A fit set with fewer than two classes gives 0 (a one-class softmax has no gradient).
Cost: each generator step generates ``n_classes * per_class * fake_repeat`` extra
features (600 by default) and multiplies Gram matrices of that size.

Options (entry of the ``[generator]`` ``losses`` list): ``weight`` (500), ``classifier``
(``"linear"``), ``n_classes`` (5), ``per_class`` (60), ``fake_repeat`` (2),
``reset_every`` (1; 0: never), ``epochs`` (0), ``lr`` (0.01, the CUB ``CLF_LR``),
``weight_decay`` (0.001, the CUB ``CLF_WD``), ``batch_size`` (256, their ``BATCH_SIZE``,
for ``epochs``).
"""

from __future__ import annotations

from czsl import Component, hookimpl
from czsl.options import choice, integer, number

NAME = "gradient_matching"
CLASSIFIERS = ("linear", "bilinear")
#: SGD momentum of the classifier (the reference's ``--clf_mom`` default).
MOMENTUM = 0.9


@hookimpl
def czsl_components():
    """One generator loss: ``gradient_matching``."""
    return [Component("generator_loss", NAME, "gradient matching, mean_c (1 - cos(grad CE "
                      "on real c, grad CE on generated c)) of a softmax classifier "
                      "(GMN, Sariyildiz & Cinbis, CVPR 2019)")]


@hookimpl
def czsl_make_generator_loss(options):
    """A :class:`GradientMatching` loss."""
    return GradientMatching(**options)


def softmax_residuals(x, labels, weight, bias, class_attributes=None):
    """``softmax(logits) - onehot(labels)`` ``[n, C]`` of the classifier on ``x`` ``[n, D]``,
    mapped onto the rows of ``weight``: itself for the linear classifier (logits ``x W^T
    + b``), times ``class_attributes`` ``[C, A]`` for the bilinear one (logits ``(x A^T +
    a) S^T``), so that the gradient of the mean cross-entropy over a set of samples is
    ``residuals^T x / n`` for ``weight`` and ``residuals.mean(0)`` for ``bias``.
    """
    import torch.nn.functional as F

    hidden = x @ weight.T + bias
    logits = hidden if class_attributes is None else hidden @ class_attributes.T
    residuals = logits.softmax(1) - F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return residuals if class_attributes is None else residuals @ class_attributes


def per_class_gradient_cosines(real, labels_real, res_real, fake, labels_fake, res_fake,
                               n_classes):
    """Cosines between each class's real and generated classifier gradients.

    ``real`` ``[n, D]`` / ``fake`` ``[m, D]`` with class indices ``labels_*`` and softmax
    residuals ``res_*`` ``[*, R]`` (:func:`softmax_residuals`). Class ``c``'s weight
    gradient is ``sum_{i in c} res[i] (x) x[i]`` up to a positive factor (which cosines
    ignore), so ``<row r of real c, row r of fake c> = sum_{i, j in c} res_real[i, r]
    res_fake[j, r] <real[i], fake[j]>``: a same-class-masked Gram matrix does every class
    and row at once.

    :return: ``([n_classes], [n_classes])``: the weight rows' mean cosine and the bias
        cosine of each class (0 for classes absent from ``labels_real``).
    """
    import torch

    eps = max(1e-16, torch.finfo(real.dtype).tiny)

    def quadratic(a, la, ra, b, lb, rb):  # [C, R]: sum_{i in c, j in c} ra[i] rb[j] <a_i, b_j>
        gram = (a @ b.T) * (la[:, None] == lb[None, :]).to(a.dtype)
        return ra.new_zeros(n_classes, ra.shape[1]).index_add(0, la, ra * (gram @ rb))

    def norm(sq):
        return sq.clamp_min(eps).sqrt()

    inner = quadratic(real, labels_real, res_real, fake, labels_fake, res_fake)
    cos_w = inner / (norm(quadratic(real, labels_real, res_real, real, labels_real, res_real))
                     * norm(quadratic(fake, labels_fake, res_fake, fake, labels_fake, res_fake)))
    bias_real = res_real.new_zeros(n_classes, res_real.shape[1]).index_add(0, labels_real, res_real)
    bias_fake = res_fake.new_zeros(n_classes, res_fake.shape[1]).index_add(0, labels_fake, res_fake)
    cos_b = (bias_real * bias_fake).sum(1) / (norm((bias_real ** 2).sum(1))
                                              * norm((bias_fake ** 2).sum(1)))
    return cos_w.mean(1), cos_b


class GradientMatching:
    """The loss (see :func:`czsl.hookspecs.czsl_make_generator_loss`); options: see the
    module docstring.

    Its state is plain tensors (the classifier's weight, bias and momentum); the fit set
    it samples real features from is kept between ``start`` and the end of the fit but
    left out of pickles.
    """

    def __init__(self, weight=500.0, classifier="linear", n_classes=5, per_class=60,
                 fake_repeat=2, reset_every=1, epochs=0, lr=0.01, weight_decay=0.001,
                 batch_size=256):
        self.weight = number("weight", weight, at_least=0)
        self.classifier = choice("classifier", classifier, CLASSIFIERS)
        self.n_classes = integer("n_classes", n_classes, at_least=0)
        self.per_class = integer("per_class", per_class)
        self.fake_repeat = integer("fake_repeat", fake_repeat)
        self.batch_size = integer("batch_size", batch_size)
        self.reset_every = integer("reset_every", reset_every, at_least=0)
        self.epochs = integer("epochs", epochs, at_least=0)
        self.lr = number("lr", lr, above=0)
        self.weight_decay = number("weight_decay", weight_decay, at_least=0)
        self.clf_weight = self.clf_bias = None  # [R, D], [R]: R = C (linear) or A (bilinear)
        self.momentum = None  # SGD momentum buffers, like the two above
        self.steps = 0  # generator steps since start
        self._fit = None  # (features, order, starts, counts) of the current fit set

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fit"] = None  # the fit set is the generator's data; the next start resupplies it
        return state

    # -- the classifier --------------------------------------------------------------

    def _attributes(self, class_attributes):
        return class_attributes if self.classifier == "bilinear" else None

    def _init_classifier(self, n_classes, class_attributes, like):
        import torch

        rows = n_classes if self.classifier == "linear" else class_attributes.shape[1]
        self.clf_weight = torch.randn(rows, like.shape[1], device=like.device,
                                      dtype=like.dtype) * 0.02
        self.clf_bias = like.new_zeros(rows)
        self.momentum = None

    def _ready_classifier(self, class_attributes, like):
        rows = len(class_attributes) if self.classifier == "linear" else class_attributes.shape[1]
        if self.clf_weight is None or tuple(self.clf_weight.shape) != (rows, like.shape[1]):
            self._init_classifier(len(class_attributes), class_attributes, like)
        elif self.clf_weight.device != like.device or self.clf_weight.dtype != like.dtype:
            self.clf_weight, self.clf_bias = self.clf_weight.to(like), self.clf_bias.to(like)
            if self.momentum is not None:
                self.momentum = tuple(m.to(like) for m in self.momentum)

    def _sgd_step(self, x, labels, class_attributes):
        """One SGD step (momentum, weight decay) on the mean cross-entropy of ``x``, in
        closed form; out of place, so a graph built on the old weights stays valid."""
        import torch

        with torch.no_grad():
            res = softmax_residuals(x, labels, self.clf_weight, self.clf_bias,
                                    self._attributes(class_attributes))
            grads = (res.T @ x / len(x) + self.weight_decay * self.clf_weight,
                     res.mean(0) + self.weight_decay * self.clf_bias)
            self.momentum = grads if self.momentum is None else tuple(
                MOMENTUM * m + g for m, g in zip(self.momentum, grads))
            self.clf_weight = self.clf_weight - self.lr * self.momentum[0]
            self.clf_bias = self.clf_bias - self.lr * self.momentum[1]

    # -- the loss --------------------------------------------------------------------

    def start(self, features, attributes):
        """Index the fit set by class and draw (and with ``epochs``, train) a classifier."""
        import torch

        classes, own = torch.unique(attributes, dim=0, return_inverse=True)
        counts = torch.bincount(own, minlength=len(classes))
        self._fit = (features, torch.argsort(own, stable=True),
                     torch.cumsum(counts, 0) - counts, counts)
        self.steps = 0
        classes = classes.to(features.dtype)
        self._init_classifier(len(classes), classes, features)
        if len(classes) < 2:
            return
        for _ in range(self.epochs):
            for idx in torch.randperm(len(features), device=features.device).split(self.batch_size):
                self._sgd_step(features[idx], own[idx], classes)

    def _sampled(self, batch):
        """Real features of ``n_classes`` random classes of the fit set, and generated ones."""
        import torch

        features, order, starts, counts = self._fit
        device = features.device
        chosen = torch.randperm(len(counts), device=device)[:self.n_classes]
        labels_real = chosen.repeat_interleave(self.per_class)
        pick = (torch.rand(len(labels_real), device=device) * counts[labels_real]).long()
        real = features[order[starts[labels_real] + pick.clamp_max(counts[labels_real] - 1)]]
        labels_fake = labels_real.repeat(self.fake_repeat)
        fake = batch.generate(batch.class_attributes[labels_fake],
                              batch.sample_noise(len(labels_fake)))
        return real, labels_real, fake, labels_fake

    def _from_batch(self, batch):
        """The step's mini-batch: its real features, ``batch.fake`` and more generated ones."""
        import torch

        extra = self.fake_repeat - 1
        fake = batch.fake
        if extra:
            more = batch.generate(batch.attributes.repeat(extra, 1),
                                  batch.sample_noise(extra * len(batch.attributes)))
            fake = torch.cat([fake, more])
        return batch.real, batch.labels, fake, batch.labels.repeat(self.fake_repeat)

    def __call__(self, batch):
        import torch

        classes = batch.class_attributes
        if len(classes) < 2:
            return batch.real.new_zeros(())
        fit = self._fit
        use_fit = (fit is not None and self.n_classes > 0 and len(fit[3]) == len(classes)
                   and fit[0].device == batch.real.device)
        real, labels_real, fake, labels_fake = (self._sampled(batch) if use_fit
                                                else self._from_batch(batch))
        real, classes = real.to(fake.dtype), classes.to(fake.dtype)
        self._ready_classifier(classes, fake)
        s = self._attributes(classes)
        cos_w, cos_b = per_class_gradient_cosines(
            real, labels_real, softmax_residuals(real, labels_real, self.clf_weight,
                                                 self.clf_bias, s),
            fake, labels_fake, softmax_residuals(fake, labels_fake, self.clf_weight,
                                                 self.clf_bias, s),
            len(classes))
        present = torch.bincount(labels_real, minlength=len(classes)) > 0
        loss = self.weight * ((1 - cos_w) + (1 - cos_b))[present].mean()
        # the reference updates its classifier after the generator step: redraw or train
        self.steps += 1
        if self.reset_every and self.steps % self.reset_every == 0:
            self._init_classifier(len(classes), classes, fake)
        else:
            self._sgd_step(batch.real.detach().to(fake.dtype), batch.labels, classes)
        return loss
