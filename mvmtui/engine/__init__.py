"""The engine: everything that is not UI. Imports nothing from Textual."""
from .engine import VM_ACTIONS, Engine
from .errors import Ambiguous, Busy, EngineError, HostDown, InventoryError, NotFound, ReadOnly
from .inventory import Inventory

__all__ = ["Engine", "VM_ACTIONS", "Inventory", "EngineError", "NotFound", "Ambiguous",
           "ReadOnly", "HostDown", "Busy", "InventoryError"]
