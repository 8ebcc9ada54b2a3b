"""Where a sweep's runs execute: a local process pool (default) or a Ray cluster.

Both hand :func:`czsl.sweep.worker.execute` one run spec at a time, each in a fresh
process (a run's threads, memory and plugin state never leak into the next), and
report every outcome to ``on_done`` as it arrives.

* ``local``: ``jobs`` :class:`multiprocessing.Process` at a time, one per run, forked
  from a ``forkserver`` that has imported czsl (torch and Avalanche: about 10 s a
  process that ``spawn`` would pay again for every run) and done nothing else. A
  worker that dies (killed, out of memory) costs only its own run, which starts again
  in a new process and resumes from its checkpoint. Every process of the sweep ends
  when the driver dies, however it dies.
* ``ray``: plain Ray tasks (``num_cpus`` = threads per run, ``max_calls=1``; Ray
  retries a task whose worker died, and the claim it left is taken over). A local
  instance started here listens on 127.0.0.1 only.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
import uuid
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from czsl.errors import CZSLError
from czsl.sweep.store import SweepDir
from czsl.sweep.worker import execute, probe

OnDone = Callable[[dict[str, Any]], None]
#: how many times a run may lose its worker before the sweep records it as failed
MAX_ATTEMPTS = 3


def _lost(spec: dict[str, Any], why: str) -> dict[str, Any]:
    """The outcome of a run that lost its worker for good, recorded as failed in the
    sweep's folder (``status`` shows ``why``; ``--retry-failed`` runs it again)."""
    SweepDir(Path(spec["root"])).record_failure(spec["id"], "failed", why)
    return {"id": spec["id"], "status": "failed", "error": why, "resumed": False,
            "summary": None, "seconds": 0.0, "lost": True}


#: what the local backend's fork server imports once, so that a run's process starts
#: with them imported (and nothing run)
PRELOAD = ["czsl.sweep.worker", "czsl.run", "czsl_plugins"]


def _fresh_process_context() -> multiprocessing.context.BaseContext:
    """A context whose processes start as a fork of a server that imported
    :data:`PRELOAD` and nothing else (``spawn`` where there is no ``forkserver``)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _work(spec: dict[str, Any], report: Connection, environ: dict[str, str]) -> None:
    """A run's process: :func:`execute` ``spec`` and send the driver its outcome (or the
    exception that escaped it, which the driver raises).

    :param environ: the driver's environment when the run started (a fork of the fork
        server would otherwise have the environment the driver had when it started
        the server).
    """
    _exit_with_driver()
    os.environ.clear()
    os.environ.update(environ)
    try:
        outcome: Any = execute(spec)
    except Exception as exc:
        outcome = exc
    except KeyboardInterrupt:  # Ctrl-C reached every process: the driver says so
        sys.exit(1)
    report.send(outcome)
    report.close()


def _exit_with_driver() -> None:
    """End this process as soon as the driver that started it dies, whatever it is doing.

    A SIGKILLed driver runs no cleanup, so its children must notice by themselves: a
    daemon thread waits on :func:`multiprocessing.parent_process`'s sentinel (a pipe
    whose write end only the driver holds, so it reads end-of-file once the driver is
    gone, even if that happened before this thread started) and exits at once, like a
    kill: the run keeps its last checkpoint and its claim's lock is freed. The fork
    server then sees its last client gone and exits, and so does the resource tracker.
    """
    driver = multiprocessing.parent_process()
    if driver is None:
        return

    def watch() -> None:
        driver.join()
        os._exit(1)

    threading.Thread(target=watch, name="czsl-driver-watch", daemon=True).start()


def _death(exitcode: int | None) -> str:
    """How a worker process that reported nothing ended, from its exit code."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() \
            else f"signal {-exitcode}"
        oom = ", as the out-of-memory killer does" if exitcode == -signal.SIGKILL else ""
        return f"killed by {name}{oom}"
    return f"exited with status {exitcode} without reporting"


def run_local(specs: list[dict[str, Any]], *, jobs: int, on_done: OnDone) -> None:
    """Run ``specs``, ``jobs`` at a time, each in a fresh process of its own.

    A run whose process dies before reporting (killed, out of memory) runs again in a
    new process (resuming from its checkpoint) and costs no other run anything; after
    :data:`MAX_ATTEMPTS` deaths it is recorded as failed. Every process ends when the
    driver dies (:func:`_exit_with_driver`).

    :raises KeyboardInterrupt: after stopping every worker (finished runs are kept;
        a run stopped mid-way keeps its last checkpoint).
    """
    context = _fresh_process_context()
    queue = collections.deque(specs)
    attempts = {spec["id"]: 0 for spec in specs}
    running: dict[Connection, tuple[multiprocessing.process.BaseProcess, dict[str, Any]]] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                spec = queue.popleft()
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=_work,
                                          args=(spec, writer, dict(os.environ)),
                                          name=f"czsl-run-{spec['id']}")
                process.start()
                writer.close()
                running[reader] = (process, spec)
            for reader in wait(list(running)):
                process, spec = running.pop(reader)
                try:
                    outcome = reader.recv()
                except EOFError:  # it died before reporting
                    outcome = None
                reader.close()
                process.join()
                exitcode = process.exitcode
                process.close()
                if isinstance(outcome, Exception):
                    raise outcome
                if outcome is not None:
                    on_done(outcome)
                    continue
                attempts[spec["id"]] += 1
                if attempts[spec["id"]] < MAX_ATTEMPTS:
                    queue.append(spec)
                else:
                    on_done(_lost(spec, f"its worker process died {MAX_ATTEMPTS} times "
                                        f"(the last {_death(exitcode)})"))
    finally:
        # Ctrl-C reached the workers too, or the driver failed: none outlives the sweep
        for process, _ in running.values():
            process.terminate()
        for process, _ in running.values():
            process.join()


#: how long the head at ``--address`` may take to accept a connection
CONNECT_TIMEOUT_S = 10.0


def _ray_init(address: str | None, cpus: int) -> None:
    """Connect to ``address``, or start a local instance of ``cpus`` CPUs on loopback.

    :raises CZSLError: if nothing answers at ``address`` within :data:`CONNECT_TIMEOUT_S`
        (Ray itself retries for minutes), or the cluster wants a token this driver lacks.
    """
    import ray

    if address is None:
        # "local": a new instance even where RAY_ADDRESS or another cluster's address
        # file (ray start --head) would make a plain ray.init() join that cluster
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
        return
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except Exception as exc:
        if _needs_token(exc):
            raise CZSLError(
                f"the Ray cluster at {address} uses token authentication and this driver "
                "has no valid token for it: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to "
                "the cluster's token (or RAY_AUTH_TOKEN_PATH to a file holding it; "
                "'ray get-auth-token' on the head prints it), then run again") from None
        if isinstance(exc, ConnectionError):
            raise CZSLError(f"--address {address}: {' '.join(str(exc).split())}; is a Ray "
                            f"{ray.__version__} head running there?") from None
        raise


def _check_reachable(address: str) -> None:
    """:raises CZSLError: if nothing accepts a connection within :data:`CONNECT_TIMEOUT_S`
    where ``ray.init`` would dial ``address`` (``host:port``)."""
    dialled = _dialled(address)
    host, colon, port = dialled.rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto", "ray://...": Ray looks the address up itself
    try:
        socket.create_connection((host.strip("[]"), int(port)),
                                 timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        hint = "" if dialled == address else (
            "; Ray dials this machine's network address for a loopback one: for a head "
            "that listens on 127.0.0.1 only, set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0")
        raise CZSLError(f"--address {address}: nothing answers at {dialled} ({why}, waited "
                        f"up to {CONNECT_TIMEOUT_S:.0f} s){hint}; start the Ray head there "
                        f"(ray start --head --port {port}) or correct the address") from None


def _dialled(address: str) -> str:
    """The ``host:port`` that ``ray.init`` connects to for ``address``: Ray replaces a
    loopback host by this machine's network address (unless told not to)."""
    if "://" in address or ":" not in address:
        return address
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
        return canonicalize_bootstrap_address_or_die(address)
    except Exception:  # another Ray version: dial what was given
        return address


def _needs_token(exc: BaseException) -> bool:
    """Whether ``exc`` (or one it came from) is the cluster refusing a missing or wrong
    token: Ray raises its ``AuthenticationError``, or reports it only inside the text of
    the connection error it gives up with."""
    from ray import exceptions

    refused = getattr(exceptions, "AuthenticationError", ())
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, refused) or any(word in str(seen) for word in (
                "InvalidAuthToken", "AuthenticationError", "Unauthenticated")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def check_shared(root: Path) -> None:
    """Check that a task on every alive node sees the sweep folder ``root``.

    :raises CZSLError: naming the nodes that do not.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    path = root / f".probe-{token}.json"
    path.write_text(json.dumps({"token": token}), encoding="utf-8")
    try:
        task = ray.remote(num_cpus=0)(probe)
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node["NodeID"], soft=False)).remote(str(path.resolve()), token)
                for node in ray.nodes() if node["Alive"]]
        blind = sorted({r["host"] for r in ray.get(refs) if not r["ok"]})
    finally:
        path.unlink(missing_ok=True)
    if blind:
        raise CZSLError(f"the Ray workers on {', '.join(blind)} cannot see the sweep folder "
                        f"{root.resolve()}; on a cluster --out must be on a filesystem "
                        "every node mounts at the same path (NFS, a shared volume)")


def run_ray(specs: list[dict[str, Any]], *, root: Path, threads: int, jobs: int,
            address: str | None, gpus: int, on_done: OnDone) -> None:
    """Run ``specs`` as Ray tasks, on the cluster at ``address`` or on a local instance
    of ``jobs * threads`` CPUs, and shut Ray down whatever happens.

    :param gpus: GPUs per run (1 for ``--device cuda``, else 0).
    :raises CZSLError: if Ray is not installed or a node cannot see ``root``.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        # Ray otherwise binds the machine's network address even for a local
        # instance (and rewrites _node_ip_address="127.0.0.1" to it); this switch
        # keeps every Ray process on 127.0.0.1. It must be set before ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise CZSLError("--backend ray needs Ray: pip install 'czsl[ray]' (or use the "
                        "default --backend local)") from None
    pending: list[Any] = []
    try:
        _ray_init(address, jobs * threads)
        check_shared(root)
        task = ray.remote(num_cpus=threads, num_gpus=gpus, max_calls=1,
                          max_retries=MAX_ATTEMPTS)(execute)
        by_ref = {task.remote(spec): spec for spec in specs}
        pending = list(by_ref)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    on_done(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    on_done(_lost(by_ref[ref], f"Ray: {' '.join(str(exc).split())[:300]}"))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()


__all__ = ["MAX_ATTEMPTS", "check_shared", "run_local", "run_ray"]
