"""``python -m authbench``: the same as the ``authbench`` command."""

from authbench.cli import main

main()
