"""A notify hook as a transport that only publishes: run a command when a call is held (cold).

The operator's `notify` setting (an argv, or a command line split like a shell) runs once,
detached, with the request's JSON on stdin and `SHIELD_REQUEST_ID` set. It can page a human;
it cannot decide anything. A hook that cannot start or exits non-zero is logged
(`notify-failed`) and never holds anything up.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from shim import canon
from shim.approval.request import HeldRequest, to_dict
from shim.approval.transport import Delivery, Verdict


class NotifyHook:
    channel = "notify"
    blocking = False

    def __init__(
        self,
        req: HeldRequest,
        notify: list[str] | str,
        log: Callable[[dict], object],
    ) -> None:
        if isinstance(notify, str):
            import shlex

            notify = shlex.split(notify)
        self.req = req
        self.argv = list(notify)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def publish(self) -> None:
        import tempfile

        payload = (canon.encode(to_dict(self.req)) + "\n").encode("ascii")
        try:
            with tempfile.TemporaryFile() as stdin:  # unlinked at once: only the hook reads it
                stdin.write(payload)
                stdin.seek(0)
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    env=dict(os.environ, SHIELD_REQUEST_ID=self.req.id),
                )
        except (OSError, ValueError) as exc:
            self.failed(f"notify hook {self.argv[:1]!r} could not start: {exc}")

    def poll(self, timeout: float) -> list[Delivery]:
        """Reap the hook once it exits (it brings no decisions)."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                if code != 0:
                    self.failed(f"notify hook exited with status {code}")
        return []

    def failed(self, detail: str) -> None:
        self.log({"event": "notify-failed", "request": self.req.id, "detail": detail})

    def reject(self, delivery: Delivery, why: str) -> None:
        pass

    def close(self, verdict: Verdict) -> None:
        pass
