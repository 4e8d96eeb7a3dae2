"""The control plane: the research lead's ``program.md``, the plateau watchdog, and what the loop does next.
Plain logic over ledger rows and files; the plugin and ``python -m pytest_autofl`` read it."""
