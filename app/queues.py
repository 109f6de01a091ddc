"""Every queue Seedgrid uses, in one enum. A leaf: it imports only the catalogue.

The GPU queues are derived from the catalogue, one `generate.<model type>` each, so a
new catalogue entry gets its queue without an edit here.
"""

from __future__ import annotations

from enum import Enum

from app.protocol.catalogue import CATALOGUE, get_spec


class _Queue(str):
    @classmethod
    def generate(cls, model: str) -> "Queue":
        """The GPU queue that serves one model type."""
        return Queue(f"generate.{get_spec(model).name}")


Queue = Enum(  # type: ignore[misc]  (members from data: the functional API)
    "Queue",
    {
        "DEFAULT": "default",  # bookkeeping and scoring (validator)
        "IO": "io",  # many concurrent HTTP calls to miners (validator)
        "VALIDATOR_GPU": "validator.gpu",  # reproduction and verification on the validator's GPU
        **{f"GENERATE_{name.upper()}": f"generate.{name}" for name in CATALOGUE},
    },
    type=_Queue,
    module=__name__,
)
