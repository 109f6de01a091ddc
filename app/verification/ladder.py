"""One ladder, a verifier per media kind: how an answer is judged against the reproduction.

Structure checks come first (media type, decodable, shape, not blank, not a replay),
then the exact rung, then the tolerant rung at the model's calibrated threshold. A new
media kind (text, issue 12) adds its verifier here; a new model family of an existing
kind adds nothing.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

from app.protocol.catalogue import MediaType
from app.verification import pixels
from app.verification.verdict import Verdict

Verifier = Callable[..., Verdict]

VERIFIERS: Mapping[MediaType, Verifier] = MappingProxyType({
    MediaType.PNG: pixels.verify,
    MediaType.MP4: pixels.verify,
})


def verifier_for(media_type: MediaType) -> Verifier:
    try:
        return VERIFIERS[media_type]
    except KeyError:
        raise LookupError(f"no verifier for {media_type.value} outputs; add one to app/verification/ladder.py") from None
