"""Errors of the generation engine, each naming what was wrong and what to do."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """A request field is out of bounds or malformed; `field` names it (dotted path)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(field, message)  # both args, so Celery can rebuild it from JSON

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"error": "invalid_request", "field": self.field, "detail": self.message}


class CheckpointError(RuntimeError):
    """A model checkpoint is missing or cannot be loaded; the message says how to fix it."""


class GenerationTimeout(RuntimeError):
    """A generation stopped between denoising steps because its time limit passed.

    Celery's solo pool cannot enforce time limits, so the engine checks a deadline after
    every step: no generation holds the GPU past its limit.
    """

    def __init__(self, message: str):
        super().__init__(message)
