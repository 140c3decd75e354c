"""``learner status --watch``: the status, redrawn in place every few seconds until Ctrl-C (rich's live view).

The text is the command's own (the same lines as one ``learner status``), so the two never
disagree; an error (Redis away) is shown in its place and the next refresh tries again.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable

from learner.errors import LearnerError

__all__ = ["watch"]


def watch(show: Callable[[], int], every: float) -> int:
    """Run ``show`` (which prints) every ``every`` seconds, its output replacing the last; 0 at Ctrl-C."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(console=Console(), auto_refresh=False) as live:
        try:
            while True:
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    try:
                        show()
                    except LearnerError as error:
                        print(f"cannot read the status now: {error}")
                stamp = time.strftime("%H:%M:%S")
                live.update(Text(f"{printed.getvalue()}\n{stamp}, every {every:g}s (Ctrl-C to stop)"), refresh=True)
                time.sleep(every)
        except KeyboardInterrupt:
            return 0
