"""A verdict: which rung of the verification ladder decided, and why.

Every media kind has its verifier (app/verification/ladder.py); each returns a Verdict.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    rung: str  # the ladder rung that decided: exact | tolerant | failed
    similarity: float | None
    reason: str
    pixel_sha256: str | None = None  # of the miner's output, computed here
    well_formed: bool = True  # a decodable output (request success) even if it failed verification
    detail: dict | None = None  # what the rung measured, for the record (the trajectory path's steps, distances)

    @property
    def verified(self) -> bool:
        return self.rung != "failed"


def failed(reason: str, similarity_: float | None = None, pixel_sha256: str | None = None,
           well_formed: bool = True, detail: dict | None = None) -> Verdict:
    return Verdict("failed", similarity_, reason, pixel_sha256, well_formed, detail)
