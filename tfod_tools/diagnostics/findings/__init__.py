"""One function per finding; each returns a :class:`~tfod_tools.diagnostics.model.Finding` or None."""
