"""``python -m pinnsketch``: the same CLI as the ``pinnsketch`` console script."""

import sys

from pinnsketch.cli import main

sys.exit(main())
