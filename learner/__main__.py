"""``python -m learner``: the same as the ``learner`` command."""

import sys

from learner.ops.cli import main

sys.exit(main())
