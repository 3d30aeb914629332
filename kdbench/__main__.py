"""``python -m kdbench``: the command of the environment this Python is, whichever ``kdbench`` script is
first on PATH — so plugins installed in a virtual environment are seen."""

import sys

from kdbench.cli import main

sys.exit(main())
