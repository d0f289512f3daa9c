"""``python -m lakeroute.cli``: the same as the ``lakeroute`` console script."""

from . import main

main()
