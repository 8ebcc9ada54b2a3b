"""The quick loop, ``pytest -m "not slow"``, leaves out every test module that
pip-installs a package or starts Ray: each is marked ``slow`` as a whole, and the marker
is registered (CI's plain ``pytest -q`` runs them all)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: what makes a module slow: pip run as a subprocess, or Ray imported
SLOW = re.compile(r'"pip", "install"|importorskip\("ray"\)|^import ray\b', re.M)
MARKED = re.compile(r"^pytestmark = pytest\.mark\.slow\b", re.M)


def test_modules_that_pip_install_or_start_ray_are_marked_slow():
    found = {p.name for p in TESTS.glob("test_*.py")
             if p.name != Path(__file__).name and SLOW.search(p.read_text(encoding="utf-8"))}
    assert found >= {"test_example_plugin.py", "test_example_regularizer.py",
                     "test_sweep_ray.py"}
    unmarked = [n for n in sorted(found)
                if not MARKED.search((TESTS / n).read_text(encoding="utf-8"))]
    assert not unmarked, (f"{', '.join(unmarked)} pip-install or start Ray: add "
                          "'pytestmark = pytest.mark.slow' below the imports")


def test_the_slow_marker_is_registered():
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    markers = config["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)
