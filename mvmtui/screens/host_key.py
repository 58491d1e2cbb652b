"""Trust on first use: a host offered an SSH key we have never seen. Show what it
is and let the operator decide; default No (the host stays unconnected).

Only asked when keys can be trusted: in read-only mode the app notifies instead."""
from __future__ import annotations

from textual.binding import Binding

from ..engine.model import HostKeyQuestion
from .confirm import ConfirmScreen


class HostKeyScreen(ConfirmScreen):
    BINDINGS = [
        Binding("y", "answer(True)", "Trust", id="hostkey.yes"),
        Binding("n,escape,q", "answer(False)", "Don't trust", id="hostkey.no"),
    ]

    def __init__(self, question: HostKeyQuestion) -> None:
        h = question.host
        address = h.address if h.port == 22 else f"{h.address}:{h.port}"
        super().__init__(
            "Unknown SSH host key",
            "Compare the fingerprint with the host's own "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console). "
            "Trusting adds it to known_hosts; the console then connects.",
            facts=(f"Host         {h.name} (cluster {h.cluster})\n"
                   f"Address      {address}\n"
                   f"Key type     {question.key_type or '—'}\n"
                   f"Fingerprint  {question.fingerprint}"),
            question="Trust this key? (y/N)", yes_label="Trust", kind="host-key",
            yes_variant="warning")
        self.question = question
