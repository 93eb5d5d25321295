"""``python -m loadtests run --matrix …``: the ``authbench`` command itself."""

from authbench.cli import main

main()
