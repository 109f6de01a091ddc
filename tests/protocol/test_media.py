import numpy as np
import pytest

from app.protocol import media
from app.protocol.catalogue import MediaType


def frames(n=1, h=64, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_png_round_trip_keeps_pixels_and_bytes_are_stable():
    f = frames()
    data = media.encode_png(f)
    assert data == media.encode_png(f)
    assert np.array_equal(media.decode_png(data), f)
    assert media.pixel_sha256(media.decode(data, MediaType.PNG)) == media.pixel_sha256(f)


def test_pixel_hash_covers_the_shape():
    f = frames(2, 16, 16)
    assert media.pixel_sha256(f) != media.pixel_sha256(f.reshape(1, 32, 16, 3))
    assert media.pixel_sha256(f[:1]) == media.pixel_sha256(f[0])  # an image is one frame


def test_float_frames_round_like_diffusers():
    f = np.array([[[[0.0, 0.5, 1.0]]]], dtype=np.float32)
    assert media.to_uint8(f).tolist() == [[[[0, 128, 255]]]]


def test_mp4_is_byte_stable_and_decodes_to_the_frame_count_and_size():
    f = frames(6, 64, 48, seed=3)
    a, b = media.encode_mp4(f, fps=8), media.encode_mp4(f, fps=8)
    assert a == b, "the bit-exact recipe must give the same bytes"
    decoded = media.decode_mp4(a)
    assert decoded.shape == (6, 64, 48, 3)
    assert media.pixel_sha256(decoded) == media.pixel_sha256(media.decode_mp4(b))


@pytest.mark.parametrize("data, kind", [(b"", MediaType.PNG), (b"\x89PNG garbage", MediaType.PNG),
                                        (b"not a video at all", MediaType.MP4),
                                        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, MediaType.MP4)])
def test_unreadable_media_is_refused(data, kind):
    with pytest.raises(media.MediaError):
        media.decode(data, kind)


def test_a_png_is_not_an_mp4():
    with pytest.raises(media.MediaError):
        media.decode(media.encode_png(frames()), MediaType.MP4)
