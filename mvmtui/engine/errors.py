"""Errors the engine raises to its callers; each message says what to do."""
from __future__ import annotations

from .inventory import InventoryError
from .tasks import Busy

__all__ = ["InventoryError", "Busy", "EngineError", "NotFound", "Ambiguous", "ReadOnly", "Offline", "BadSetting",
           "HostDown", "HypervisorError", "LabError"]


class EngineError(Exception):
    """Base for refusals the operator should read."""


class NotFound(EngineError):
    pass


class Ambiguous(EngineError):
    pass


class ReadOnly(EngineError):
    def __init__(self, what: str = "this change"):
        super().__init__(f"Read-only mode: {what} is not allowed. "
                         f"Start mvmtui without --readonly to make changes.")


class Offline(EngineError):
    def __init__(self, what: str = "this change"):
        super().__init__(f"Offline mode: {what} is not possible; no host is contacted. "
                         f"Start mvmtui without --offline to make changes.")


class BadSetting(EngineError):
    """A setting or its value is not one mvmtui takes (a usage error: exit 2)."""


class HostDown(EngineError):
    pass


class LabError(Exception):
    """The lab could not be brought up, down or changed (mvmtui lab …)."""


class HypervisorError(EngineError):
    """libvirt refused or failed; the message is libvirt's own words."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code
