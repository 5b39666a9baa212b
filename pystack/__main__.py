"""``python -m pystack`` is the ``pystack`` command."""

import sys

from pystack.cli import main

sys.exit(main())
