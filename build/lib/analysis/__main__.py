"""``python -m analysis report RUN`` (DESIGN.md's contract): the ``authbench`` command itself."""

from authbench.cli import main

main()
