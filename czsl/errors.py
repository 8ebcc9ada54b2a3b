"""The one error type czsl raises for problems a user can fix.

Every message names the thing that is wrong (a file, a key, a plugin) and what to do
about it. The CLI prints these without a traceback (unless ``--debug``) and exits with
status 2; anything else escaping is a bug in czsl or in a plugin.
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
