"""Sub-commands of the ``vbayes`` CLI, one module each (discovered by :func:`vbayes.cli.discover`)."""
