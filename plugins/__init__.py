"""czsl's built-in plugins, one method per module.

Each module is registered through the ``czsl`` entry-point group of czsl's own
``pyproject.toml``, exactly as a third-party plugin would be; nothing here is imported
by the core.
"""
