"""What the sweep tests share: a tiny synthetic grid, a test plugin package, helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import write_plugin_package

#: a fast continual run: 3 tasks of 5 synthetic classes, one epoch each
FAST = ["train.epochs=1", "data.synthesis.n_classes=20", "data.synthesis.n_unseen=5",
        "data.synthesis.samples_per_class=20", "protocol.task_sizes=[5,5,5]"]

#: regularizers for the tests: "exploding" raises in task 0; "pausing" waits before
#: task 1 (its task 0 checkpointed) until the file named by $CZSL_TEST_HOLD exists;
#: "dying" SIGKILLs its own process before task 1 while the file $CZSL_TEST_DIE exists
PLUGIN = """
    import os
    import signal
    import time
    from pathlib import Path

    from avalanche.core import SupervisedPlugin
    from czsl import Component, hookimpl


    class Exploding(SupervisedPlugin):
        def before_backward(self, strategy, **kwargs):
            raise RuntimeError("exploded on purpose")


    class Pausing(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            hold = os.environ.get("CZSL_TEST_HOLD")
            if hold and strategy.clock.train_exp_counter == 1:
                while not Path(hold).exists():  # the test releases it
                    time.sleep(0.02)


    class Dying(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            die = os.environ.get("CZSL_TEST_DIE")
            if die and Path(die).exists() and strategy.clock.train_exp_counter == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does


    @hookimpl
    def czsl_components():
        return [Component("regularizer", "exploding", "raises during task 0"),
                Component("regularizer", "pausing", "waits before task 1 (tests)"),
                Component("regularizer", "dying", "killed before task 1 (tests)")]


    @hookimpl
    def czsl_make_regularizer(name, options):
        return {"exploding": [Exploding()], "pausing": [Pausing()],
                "dying": [Dying()]}.get(name)
"""


def grid_text(methods: dict[str, list[str]], seeds=(0, 1), extra: str = "") -> str:
    """A grid over the synthetic default with a ``method`` axis."""
    lines = ["[sweep]", f"seeds = {list(seeds)}", f"set = {json.dumps(FAST)}", "",
             "[axes.method]"]
    lines += [f"{json.dumps(label)} = {json.dumps(sets)}" for label, sets in methods.items()]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture(scope="module")
def sweep_site(tmp_path_factory):
    """The test plugin package on ``sys.path`` and on the workers' ``PYTHONPATH``."""
    site = tmp_path_factory.mktemp("site")
    write_plugin_package(site, "czsl-sweeptest", "czsl_test_sweep",
                         {"sweeptest": "czsl_test_sweep"}, PLUGIN)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        mp.setenv("PYTHONPATH", os.pathsep.join(
            p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
        yield site
    sys.modules.pop("czsl_test_sweep", None)


def results(out: Path) -> dict[str, dict]:
    """run id -> results.json of every finished run in the sweep folder ``out``."""
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((out / "runs").glob("*/results.json"))}


def same_run(a: dict, b: dict) -> bool:
    """Two results.json documents agree on everything but the wall time."""
    return ({k: v for k, v in a.items() if k != "wall_time_s"}
            == {k: v for k, v in b.items() if k != "wall_time_s"})
