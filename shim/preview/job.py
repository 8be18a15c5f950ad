"""One preview's world, handed to the kind that runs it."""

from __future__ import annotations

from typing import Any

from shim.preview.runner import Preview, Runner
from shim.preview.snapshot import Snapper


class Job:
    """One preview's world, handed to the kind that runs it."""

    def __init__(
        self,
        pv: Preview,
        inv: Any,
        context: dict[str, str],
        run: Runner,
        snap: Snapper,
        stdin_fd: int | None,
        deadline: float,
    ) -> None:
        self.pv = pv
        self.inv = inv
        self.context = context
        self.run = run
        self.snap = snap
        self.stdin_fd = stdin_fd
        self.deadline = deadline
        self.pin: Any = None  # the pinned target (shim.preview.pin.Pin)


# --------------------------------------------------------------------------- prepare
