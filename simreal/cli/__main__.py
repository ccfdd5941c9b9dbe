"""``python -m simreal.cli``: the same as the ``simreal`` console script."""

from simreal.cli import main

main()
