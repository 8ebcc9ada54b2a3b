"""czsl's benchmark scripts; run each from the repository root as
``python -m benchmarks.NAME`` (they import shared code from :mod:`benchmarks._common`)."""
