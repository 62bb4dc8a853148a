"""``python -m riskwatch``: the ``riskwatch`` command, for when only the interpreter is
on the path (a venv not activated, a container's ``python``)."""

import sys

from riskwatch.cli import main

sys.exit(main())
