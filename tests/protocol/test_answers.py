"""A miner's 200 reply, field by field: a video's lossless `frames` is checked like `data`."""

import base64

import pytest

from app.protocol.schemas import MalformedAnswer, parse_answer


def answer(**changes) -> dict:
    return {"request_id": "r1", "model": "TextToVideo", "media_type": "video/mp4", "pixel_sha256": "0" * 64,
            "data": base64.b64encode(b"mp4 bytes").decode(), **changes}


def test_frames_are_optional_and_decoded_when_present():
    assert parse_answer(answer(), request_id="r1", model="TextToVideo")["frames"] is None
    parsed = parse_answer(answer(frames=base64.b64encode(b"png").decode()), request_id="r1", model="TextToVideo")
    assert parsed["frames"] == b"png" and parsed["data"] == b"mp4 bytes"


@pytest.mark.parametrize("frames,message", [(7, "non-empty base64"), ("", "non-empty base64"),
                                            ("not base64!", "not valid base64"), ({"a": 1}, "non-empty base64")])
def test_bad_frames_name_the_field(frames, message):
    with pytest.raises(MalformedAnswer) as exc:
        parse_answer(answer(frames=frames), request_id="r1", model="TextToVideo")
    assert exc.value.field == "frames" and message in exc.value.message
