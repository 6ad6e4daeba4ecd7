"""``python -m shim`` is the ``shim`` command."""

import sys

from shim.cli import main

sys.exit(main())
