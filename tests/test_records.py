"""Tests for crossmodal.data.records: the fixed-length binary record layout."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.data.records import HEADER_BYTES, RecordLayout


@pytest.mark.parametrize(
    "shape, audio_offset",
    [
        # 16-byte header + H*W*C image bytes, rounded up to a multiple of 4
        ((4, 4, 1), 32),  # 16 + 16 = 32, already aligned
        ((3, 5, 1), 32),  # 16 + 15 = 31 -> 32
        ((1, 1, 1), 20),  # 16 + 1 = 17 -> 20
        ((3, 3, 3), 44),  # 16 + 27 = 43 -> 44
        ((7, 1, 3), 40),  # 16 + 21 = 37 -> 40
        ((2, 1, 1), 20),  # 16 + 2 = 18 -> 20
    ],
)
def test_audio_offset_and_record_bytes_by_hand(shape, audio_offset):
    layout = RecordLayout(*shape, num_samples=10)
    assert layout.image_bytes == shape[0] * shape[1] * shape[2]
    assert layout.audio_offset == audio_offset
    assert layout.record_bytes == audio_offset + 4 * 10


@pytest.mark.parametrize("h", [1, 2, 3, 5])
@pytest.mark.parametrize("w", [1, 3, 7])
@pytest.mark.parametrize("c", [1, 3])
def test_audio_offset_aligned_and_tight(h, w, c):
    layout = RecordLayout(h, w, c, num_samples=3)
    end = HEADER_BYTES + h * w * c
    assert layout.audio_offset % 4 == 0
    assert 0 <= layout.audio_offset - end < 4


def _random(layout: RecordLayout, seed: int):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (layout.height, layout.width, layout.channels), dtype=np.uint8)
    audio = rng.uniform(-1, 1, layout.num_samples).astype(np.float32)
    return image, audio


@pytest.mark.parametrize("has_image", [True, False])
@pytest.mark.parametrize("has_audio", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 1), (2, 2, 3)])
def test_encode_decode_round_trip(has_image, has_audio, shape):
    layout = RecordLayout(*shape, num_samples=7)
    image, audio = _random(layout, seed=sum(shape))
    rec = layout.encode(
        123_456_789_012, 4, image if has_image else None, audio if has_audio else None
    )
    assert isinstance(rec, bytes)
    assert len(rec) == layout.record_bytes
    out = layout.decode(rec)
    assert out["index"] == 123_456_789_012
    assert out["label"] == 4
    assert out["image_present"] is has_image
    assert out["audio_present"] is has_audio
    assert out["image"].shape == shape
    assert out["audio"].shape == (7,)
    if has_image:
        np.testing.assert_array_equal(out["image"], image)
    else:
        assert not out["image"].any()
    if has_audio:
        np.testing.assert_array_equal(out["audio"], audio)  # float32 stored bit-exactly
    else:
        assert not out["audio"].any()


def test_header_bytes_little_endian_and_unlabeled():
    layout = RecordLayout(1, 1, 1, num_samples=1)
    rec = layout.encode(258, -1, np.array([[[9]]], dtype=np.uint8), None)
    assert rec[0:8] == (258).to_bytes(8, "little", signed=True)
    assert rec[8:12] == b"\xff\xff\xff\xff"  # -1 in two's complement
    assert rec[12] == 1 and rec[13] == 0
    assert rec[14:16] == b"\x00\x00"  # padding
    assert rec[16] == 9
    assert rec[17:20] == b"\x00\x00\x00"  # alignment padding before the audio
    assert layout.decode(rec)["label"] == -1


def test_audio_bytes_are_float32_little_endian():
    layout = RecordLayout(1, 1, 1, num_samples=2)
    rec = layout.encode(0, 0, None, np.array([1.0, -2.5], dtype=np.float64))
    assert rec[layout.audio_offset :] == np.array([1.0, -2.5], dtype="<f4").tobytes()


def test_concatenated_records_split_by_fixed_length():
    layout = RecordLayout(3, 3, 1, num_samples=5)
    records, expected = [], []
    for i in range(4):
        image, audio = _random(layout, seed=i)
        records.append(layout.encode(i, i % 2, image, audio if i % 3 else None))
        expected.append((image, audio if i % 3 else np.zeros(5, np.float32)))
    blob = b"".join(records)
    n = layout.record_bytes
    assert len(blob) == 4 * n
    for i in range(4):
        out = layout.decode(blob[i * n : (i + 1) * n])
        assert out["index"] == i
        assert out["label"] == i % 2
        np.testing.assert_array_equal(out["image"], expected[i][0])
        np.testing.assert_array_equal(out["audio"], expected[i][1])
