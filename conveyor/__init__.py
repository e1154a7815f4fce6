"""Conveyor's public surface for your own code, and the `conveyor` console script (`cli`).

    from conveyor import App, JobContext, Snooze, Cancel, Permanent

`App` declares job kinds in your package (see docs/writing-a-kind.md); `conveyor worker
--app` and `conveyor api --app` load it. Conveyor's own packages never import this one: it is
the composition root.
"""

from jobs.app import App, AppError
from jobs.handler import JSON, Cancel, JobContext, Permanent, Retry, Snooze

__all__ = ["JSON", "App", "AppError", "Cancel", "JobContext", "Permanent", "Retry", "Snooze"]
