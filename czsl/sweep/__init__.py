"""Sweeps: a study's grid of runs, resumable and deduplicated, on a process pool or Ray.

* :mod:`czsl.sweep.grid`: the grid file (axes, seeds, conditional overrides, table);
* :mod:`czsl.sweep.identity`: a run's id, from its resolved scenario, threads and data;
* :mod:`czsl.sweep.store`: the sweep folder, run claims and recorded failures;
* :mod:`czsl.sweep.worker`: one run in a worker process;
* :mod:`czsl.sweep.backends`: the local process pool and Ray;
* :mod:`czsl.sweep.driver`: ``czsl sweep run``;
* :mod:`czsl.sweep.summary`, :mod:`czsl.sweep.table`: the compact summary and its table;
* :mod:`czsl.sweep.cli`: the ``czsl sweep`` commands.

Only a run's worker imports torch; ``czsl sweep status`` and ``table`` never do.
"""
