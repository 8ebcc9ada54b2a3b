"""A third-party czsl regularizer: Learning without Forgetting (Li & Hoiem, ECCV 2016).

After each task a frozen copy of the model is kept; while later tasks train, the model's
logits of the classes of earlier tasks are distilled towards that copy's: the penalty is
``alpha * KL(softmax(old / T) || softmax(new / T))`` over the old classes' columns,
``T`` the temperature. In czsl the logits of a zero-shot model are scores against class
attributes, one column per class (``-inf`` for classes not visible yet); the old
classes are visible in both models, so their columns are finite.

It is Avalanche's ``LwFPlugin``, which computes exactly that, with one change: the
frozen copy is put in eval mode, so that its normalisation layers (ClassNorm) use their
running statistics instead of the batch's and do not update them (Avalanche keeps the
copy in training mode).

The plugin's class is built on first use (:func:`_plugin_class`): torch and Avalanche
are imported only when a run builds the regularizer, never when ``czsl plugins``
imports this module.
"""

import functools

from czsl import Component, hookimpl
from czsl.options import number

NAME = "lwf"


@hookimpl
def czsl_components():
    """Tell ``czsl plugins`` (and the name look-up) what this plugin provides."""
    return [Component("regularizer", NAME,
                      "Learning without Forgetting on old-class logits (Li & Hoiem 2016), "
                      "Avalanche's LwFPlugin")]


@hookimpl
def czsl_make_regularizer(options):
    """A list of Avalanche plugins: here one. czsl asks only for the names declared."""
    return [make_plugin(**options)]


def make_plugin(*, alpha=1.0, temperature=2.0):
    """The LwF plugin (``czsl plugins`` shows these keyword arguments as its options).

    :param alpha: weight of the distillation penalty.
    :param temperature: softmax temperature of the distillation.
    """
    alpha = number("alpha", alpha, at_least=0)
    temperature = number("temperature", temperature, above=0)
    return _plugin_class()(alpha=alpha, temperature=temperature)


@functools.cache
def _plugin_class():
    """The Avalanche plugin class, defined at the first call (Avalanche imported here)."""
    from avalanche.training.plugins import LwFPlugin

    class FrozenTeacherLwF(LwFPlugin):
        """Avalanche's LwF whose copy of the model after each task is frozen in eval mode.

        Its penalty is added to ``strategy.loss`` in ``before_backward`` (inherited), which
        is what czsl logs as ``train/regularizer``.
        """

        def after_training_exp(self, strategy, **kwargs):
            super().after_training_exp(strategy, **kwargs)  # copies the model
            self.lwf.prev_model.eval().requires_grad_(False)

    return FrozenTeacherLwF
