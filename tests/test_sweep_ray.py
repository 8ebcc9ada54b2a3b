"""``czsl sweep run --backend ray``: a local Ray instance and a 2-node local cluster give
the local backend's results, every Ray process listens on loopback only, and none
outlives its test. Skipped without the ``ray`` extra (pip install 'czsl[ray]')."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.slow  # starts Ray

# before ray is imported: no usage statistics, and every Ray process on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
from ray.cluster_utils import Cluster  # noqa: E402

from czsl.cli import main  # noqa: E402
from czsl.sweep import backends  # noqa: E402
from tests.sweep_helpers import grid_text, results  # noqa: E402

METHODS = {"EWC": ["regularizer=ewc_online"]}
#: a Ray process that has not exited this long after shutdown has leaked
EXIT_TIMEOUT_S = 120


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class Watcher:
    """Samples the listening sockets of this process's descendants while a sweep runs."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.listening: set[tuple[str, str]] = set()  # (process name, address)
        self.processes: dict[int, psutil.Process] = {}
        self.names: dict[int, str] = {}
        # children from before the sweep (multiprocessing's resource tracker) are not Ray's
        self.before = {child.pid for child in self.me.children(recursive=True)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for child in self.me.children(recursive=True):
            if child.pid not in self.before:
                self.processes.setdefault(child.pid, child)
                # read again each time: a child seen between its fork and its exec is
                # still called "python" (a raylet, for one)
                self.names[child.pid] = child.name()
        pids = set(self.processes)
        for conn in psutil.net_connections(kind="inet"):
            if conn.pid in pids and conn.status == psutil.CONN_LISTEN:
                self.listening.add((self.processes[conn.pid].name(), conn.laddr.ip))

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._sample()
            except psutil.Error:  # a process ended between listing and reading it
                pass

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def stop_leftovers(self) -> list[str]:
        """Wait for the sampled processes to exit; kill (by pid) and name any that did not."""
        _, alive = psutil.wait_procs(list(self.processes.values()), timeout=EXIT_TIMEOUT_S)
        names = []
        for process in alive:
            names.append(f"{process.pid} {process.name()}")
            process.kill()
        return names


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("raysweep")
    path = root / "grid.toml"
    path.write_text(grid_text(METHODS))
    return path


@pytest.fixture(scope="module")
def local_results(grid):
    """The same sweep on the local backend: the reference."""
    out = grid.parent / "local"
    assert main(["sweep", "run", str(grid), "--out", str(out), "--jobs", "2"]) == 0
    return {k: v["summary"] for k, v in results(out).items()}


def _check(watcher: Watcher, what: str) -> None:
    assert watcher.listening, f"no listening Ray socket seen ({what}): the check saw nothing"
    outside = sorted(item for item in watcher.listening if not _loopback(item[1]))
    assert not outside, f"{what}: Ray processes listen beyond loopback: {outside}"


def test_ray_local_instance_matches_local_backend_on_loopback_only(grid, local_results):
    out = grid.parent / "ray_local"
    with Watcher() as watcher:
        code = main(["sweep", "run", str(grid), "--out", str(out), "--backend", "ray",
                     "--jobs", "2"])
    leftovers = watcher.stop_leftovers()
    assert code == 0
    assert {k: v["summary"] for k, v in results(out).items()} == local_results
    _check(watcher, "local Ray instance")
    assert any("raylet" in name for name, _ in watcher.listening)
    assert not leftovers, f"Ray processes left running after the sweep: {leftovers}"


def test_ray_two_node_cluster_matches_local_backend_on_loopback_only(grid, local_results):
    out = grid.parent / "ray_cluster"
    with Watcher() as watcher:
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            n_nodes = len(cluster.list_all_nodes())
            code = main(["sweep", "run", str(grid), "--out", str(out), "--backend", "ray",
                         "--address", cluster.address])
        finally:
            watcher._sample()
            cluster.shutdown()
    leftovers = watcher.stop_leftovers()
    assert code == 0
    assert {k: v["summary"] for k, v in results(out).items()} == local_results
    # two nodes, each with its raylet (asked of Ray: the watcher's samples depend on timing)
    assert n_nodes == 2 and "raylet" in watcher.names.values()
    _check(watcher, "2-node cluster")
    assert not leftovers, f"Ray processes left running after the cluster: {leftovers}"


# ------------------------------------------------------------------ --address mistakes


def _refused(grid, tmp_path, capsys, address: str) -> str:
    code = main(["sweep", "run", str(grid), "--out", str(tmp_path / "out"), "--backend",
                 "ray", "--address", address])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_address_where_nothing_listens_fails_at_once_naming_it(grid, tmp_path, capsys,
                                                                   monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("ray.init was called: it retries for minutes")

    monkeypatch.setattr(ray, "init", forbidden)
    with socket.socket() as held:  # bound, not listening: connections to it are refused
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        started = time.monotonic()
        err = _refused(grid, tmp_path, capsys, address)
    assert time.monotonic() - started < backends.CONNECT_TIMEOUT_S + 60  # not Ray's minutes
    assert f"--address {address}: nothing answers at {address}" in err
    assert "start the Ray head there" in err


def test_a_cluster_wanting_a_token_is_one_line_saying_how_to_pass_it(grid, tmp_path, capsys,
                                                                      monkeypatch):
    """What Ray 2.x raises for a head with RAY_AUTH_MODE=token and no token here: a
    ConnectionError whose cause's text holds the AuthenticationError."""
    def refused(*args, **kwargs):
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback "
                               "...\nray.exceptions.AuthenticationError: RPC error: "
                               "InvalidAuthToken: Authentication token is missing or "
                               "incorrect.")
        except RuntimeError as exc:
            raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6379") \
                from exc

    monkeypatch.setattr(backends, "_check_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", refused)
    err = _refused(grid, tmp_path, capsys, "127.0.0.1:6379")
    assert "the Ray cluster at 127.0.0.1:6379 uses token authentication" in err
    assert "RAY_AUTH_MODE=token" in err and "RAY_AUTH_TOKEN" in err
