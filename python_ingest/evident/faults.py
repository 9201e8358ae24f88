"""Named fault points for the fault-injection tests: EVIDENT_FAULT=<point>[:<action>] triggers one.

Actions: kill (SIGKILL this process, the default), raise (an unexpected exception), sleep=<seconds> (hold
still there, e.g. to keep a lock while a second run starts). The points cost a dict lookup when no fault is set.
"""
from __future__ import annotations

import os
import signal
import time


class InjectedFault(RuntimeError):
    pass


def point(name: str) -> None:
    spec = os.environ.get("EVIDENT_FAULT")
    if not spec:
        return
    target, _, action = spec.partition(":")
    if target != name:
        return
    if action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
        return
    if action == "raise":
        raise InjectedFault(f"injected fault at {name}")
    os.kill(os.getpid(), signal.SIGKILL)
