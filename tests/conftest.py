"""Shared fixtures: where ../shared/data is, and a throw-away plugin package factory."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The real CUB / SUN metadata lives beside the checkout, never inside it.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; skips the test where it is absent."""
    if not (SHARED_DATA / "CUB_meta.npz").is_file():
        pytest.skip(f"needs the CUB/SUN metadata in ../shared/data beside the checkout "
                    f"({SHARED_DATA} not found)")
    return SHARED_DATA


@pytest.fixture
def no_generator():
    """A ``make_generator`` for replay hooks that must not build a generator: fails the
    test if called."""
    def make_generator():
        raise AssertionError("this replay built a feature generator; it should not")
    return make_generator


def write_plugin_package(root: Path, dist: str, module: str, entry_points: dict[str, str],
                         source: str, version: str = "0.1", group: str = "czsl") -> Path:
    """Write an installed-looking distribution into ``root``: a module plus its
    ``NAME-VERSION.dist-info`` with ``METADATA`` and ``entry_points.txt`` (its entry
    points in ``group``: another name than ``czsl`` is a typo czsl should report).

    Putting ``root`` on ``sys.path`` (or ``PYTHONPATH``) makes ``importlib.metadata``
    find its entry points exactly as for a pip-installed package.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
    return root


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on ``sys.path`` to write throw-away plugin packages into."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m.startswith("czsl_test_")]:
        del sys.modules[name]


class Tiny:
    """A small stream for learner and plugin tests, used the way a run uses one.

    Plugins and the learner get :attr:`view` (a fresh :class:`czsl.taskview.TaskView`);
    :meth:`train` shows the view a task, as the run does, then trains it. Other
    attributes (``tasks``, ``attributes``, ``test_y``, ``seen_mask``, ...) are the
    stream's.
    """

    def __init__(self, stream) -> None:
        from czsl.build import make_view

        self.stream = stream
        self.view = make_view(stream)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def learner(self, plugins, *, model, optimizer, **train):
        """A :class:`czsl.learner.ZSLLearner` on :attr:`view` (Avalanche's arguments)."""
        from czsl.learner import ZSLLearner

        return ZSLLearner(model=model, view=self.view, optimizer=optimizer, plugins=plugins,
                          **train)

    def train(self, learner, step: int) -> None:
        """Show the view task ``step``, then train it."""
        self.view.start_task(step, self.stream.tasks, self.stream.attributes)
        learner.train_task(step)
