"""The one error type czsl raises for problems a user can fix.

Every message names the thing that is wrong (a file, a key, a plugin) and what to do
about it. The CLI prints these without a traceback (unless ``--debug``) and exits with
status 2; anything else escaping is a bug in czsl or in a plugin. A message that shows a
value a user or a plugin handed czsl shows it with :func:`brief` (a tensor of a thousand
elements is its shape, dtype and first values, not a page of numbers).
"""


class CZSLError(Exception):
    """A problem with the user's input: data, scenario file, plugin name, CLI flags."""


class DataError(CZSLError):
    """A dataset file or folder is missing, corrupt, or inconsistent."""


class ConfigError(CZSLError):
    """A scenario file or ``--set`` override is malformed or names an unknown key."""


class PluginError(CZSLError):
    """A plugin is unknown, failed to load, or broke its hook contract."""


class OptionError(CZSLError, ValueError):
    """A plugin option has a bad value (see :mod:`czsl.options`).

    :param key: the option's name, as written in the scenario's table.
    :param problem: what is wrong, e.g. ``"must be a positive integer, got 2.5"``.
    """

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}")
        self.key = key


class DivergenceError(CZSLError):
    """Training diverged: the model's outputs became NaN or infinite."""


class StorageError(CZSLError):
    """A folder czsl writes to cannot be written: read-only, no permission, a file in
    its place, or a full disk (:func:`czsl.runfolder.storage_error`)."""


def brief(value: object, limit: int = 80) -> str:
    """``value`` as an error message shows it: its ``repr``, kept short.

    An array (a torch tensor, a numpy array: anything with ``shape`` and ``dtype``) of
    more than a few elements is its dtype, shape and first values, e.g. ``a
    torch.float32 tensor of shape [64] (first values 0.5, 0.25, 1, ...)``; any other ``repr``
    longer than ``limit`` characters is cut, with ``...``. Imports nothing.

    :param value: what a plugin or a user handed czsl.
    :param limit: the longest ``repr`` shown whole.
    """
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, type):
        try:
            dims = [int(d) for d in shape]
            count = 1
            for d in dims:
                count *= d
            if count > 3:
                first = value.reshape(-1)[:3].tolist()
                values = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                   for v in first)
                noun = "tensor" if type(value).__module__.startswith("torch") else "array"
                article = "an" if str(dtype)[:1] in "aeiou" else "a"
                return (f"{article} {dtype} {noun} of shape {dims} (first values "
                        f"{values}, ...)")
        except Exception:  # not an array after all: its repr, cut below
            pass
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."
