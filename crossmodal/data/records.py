"""The on-disk record format: fixed-length binary records, sharded.

Every record of a prepared dataset has the same length, so `tf.data.FixedLengthRecordDataset`
reads them in C++ and one vectorized `decode_raw` parses a whole batch: no protobuf, no Python
per sample. Writing needs only numpy, so preprocessing workers never import TensorFlow.

Layout of one record (little-endian):
    int64   index          position of the sample in the scan (keys samples.jsonl and splits)
    int32   label          index into dataset.json's classes; -1 when unlabeled
    uint8   image_present
    uint8   audio_present
    uint8   pad[2]
    uint8   image[H*W*C]   row-major HWC; zeros when absent
    uint8   pad[to 4 bytes]
    float32 audio[T]       mono waveform at the dataset's sample rate; zeros when absent
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADER_BYTES = 16


@dataclass(frozen=True)
class RecordLayout:
    height: int
    width: int
    channels: int
    num_samples: int  # audio samples per record

    @property
    def image_bytes(self) -> int:
        return self.height * self.width * self.channels

    @property
    def audio_offset(self) -> int:
        end = HEADER_BYTES + self.image_bytes
        return end + (-end % 4)

    @property
    def record_bytes(self) -> int:
        return self.audio_offset + 4 * self.num_samples

    def encode(
        self,
        index: int,
        label: int,
        image: np.ndarray | None,
        audio: np.ndarray | None,
    ) -> bytes:
        buf = np.zeros(self.record_bytes, dtype=np.uint8)
        header = np.array([index], dtype="<i8").view(np.uint8)
        buf[0:8] = header
        buf[8:12] = np.array([label], dtype="<i4").view(np.uint8)
        buf[12] = image is not None
        buf[13] = audio is not None
        if image is not None:
            buf[HEADER_BYTES : HEADER_BYTES + self.image_bytes] = image.reshape(-1)
        if audio is not None:
            buf[self.audio_offset :] = audio.astype("<f4").view(np.uint8)
        return buf.tobytes()

    def decode(self, record: bytes) -> dict[str, np.ndarray | int | bool]:
        """The numpy twin of the tf.data parser (used by tests and tools)."""
        raw = np.frombuffer(record, dtype=np.uint8)
        return {
            "index": int(raw[0:8].view("<i8")[0]),
            "label": int(raw[8:12].view("<i4")[0]),
            "image_present": bool(raw[12]),
            "audio_present": bool(raw[13]),
            "image": raw[HEADER_BYTES : HEADER_BYTES + self.image_bytes].reshape(
                self.height, self.width, self.channels
            ),
            "audio": raw[self.audio_offset :].view("<f4"),
        }
