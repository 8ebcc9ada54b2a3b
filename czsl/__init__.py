"""czsl: continual zero-shot learning on Avalanche, with pluggy plugins.

Importing :mod:`czsl` is cheap: it pulls in neither torch nor Avalanche, so the CLI's
``--help`` and ``plugins`` commands, and third-party plugin modules that only declare
hook implementations, stay fast. Heavy modules (``czsl.learner``, ``czsl.metrics``,
``czsl.models``) are imported where they are used.
"""

from czsl.errors import (ConfigError, CZSLError, DataError, DivergenceError, OptionError,
                         PluginError)
from czsl.hookspecs import Component, hookimpl

__version__ = "0.1.0"

__all__ = [
    "Component",
    "ConfigError",
    "CZSLError",
    "DataError",
    "DivergenceError",
    "OptionError",
    "PluginError",
    "hookimpl",
    "__version__",
]
