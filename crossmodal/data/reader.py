"""tf.data over prepared records: read shards, parse whole batches, filter a split, batch.

No Python runs per sample: the parser is one `decode_raw` and a few slices per batch of
records, the split is a boolean lookup by record index, and decoded samples are cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from crossmodal.data.preprocess import PreparedDataset
from crossmodal.data.records import HEADER_BYTES, RecordLayout

PARSE_BATCH = 256
CACHE_LIMIT_BYTES = 4 << 30  # larger splits are re-read each epoch instead of held in memory


def parse_records(records: tf.Tensor, layout: RecordLayout) -> dict[str, tf.Tensor]:
    """[B] fixed-length byte strings -> dict of [B, ...] tensors (vectorized)."""
    raw = tf.io.decode_raw(records, tf.uint8)  # [B, record_bytes]
    b = tf.shape(raw)[0]
    index = tf.bitcast(tf.reshape(raw[:, 0:8], [b, 8]), tf.int64)  # [B]
    label = tf.bitcast(tf.reshape(raw[:, 8:12], [b, 4]), tf.int32)  # [B]
    image = tf.reshape(
        raw[:, HEADER_BYTES : HEADER_BYTES + layout.image_bytes],
        [b, layout.height, layout.width, layout.channels],
    )  # [B, H, W, C] uint8
    audio = tf.bitcast(
        tf.reshape(raw[:, layout.audio_offset :], [b, layout.num_samples, 4]), tf.float32
    )  # [B, T]
    return {
        "index": index,
        "label": label,
        "image": image,
        "image_present": tf.cast(raw[:, 12], tf.float32),  # [B]
        "audio": audio,
        "audio_present": tf.cast(raw[:, 13], tf.float32),  # [B]
    }


def make_dataset(
    prep: PreparedDataset,
    indices: Sequence[int] | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    label_map: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    with_index: bool = False,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of (inputs, labels) or, with `with_index`, (inputs, labels, index).

    `indices` selects records by their scan index (a split); `label_map` maps the dataset's
    class ids to the model's (-1 for a class the model does not know). `targets`, a
    [max index + 1, K] multi-hot table (rows of -1 for unlabeled samples), replaces the class
    id by a float vector: the labels of a multi-label dataset. `labels`, a [max index + 1]
    table of class ids (-1: unlabeled), replaces the records' labels (pseudo-labels).
    """
    layout = prep.layout
    files = [str(p) for p in prep.shard_paths]
    ds = tf.data.FixedLengthRecordDataset(
        files, layout.record_bytes, num_parallel_reads=min(len(files), 4) or None
    )
    ds = ds.batch(PARSE_BATCH).map(
        lambda r: parse_records(r, layout), num_parallel_calls=tf.data.AUTOTUNE
    )
    ds = ds.unbatch()
    count = len(prep.samples)
    if indices is not None:
        top = max([s["index"] for s in prep.samples] + [0]) + 1
        keep = np.zeros(top, dtype=bool)
        keep[np.asarray(list(indices), dtype=np.int64)] = True
        keep_t = tf.constant(keep)
        ds = ds.filter(lambda e: tf.gather(keep_t, e["index"]))
        count = int(keep.sum())
    if label_map is not None:
        map_t = tf.constant(np.asarray(label_map, dtype=np.int32))

        def remap(e):
            mapped = tf.gather(map_t, tf.maximum(e["label"], 0))
            return {**e, "label": tf.where(e["label"] < 0, -1, mapped)}

        ds = ds.map(remap, num_parallel_calls=tf.data.AUTOTUNE)
    if labels is not None:
        ids = tf.constant(np.asarray(labels, dtype=np.int32))  # [max index + 1]
        ds = ds.map(
            lambda e: {**e, "label": tf.gather(ids, e["index"])},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if targets is not None:
        table = tf.constant(np.asarray(targets, dtype=np.float32))  # [max index + 1, K]
        ds = ds.map(
            lambda e: {**e, "label": tf.gather(table, e["index"])},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if cache and count * layout.record_bytes <= CACHE_LIMIT_BYTES:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(max(1, min(count, 20_000)), seed=seed, reshuffle_each_iteration=True)

    def split(e):
        inputs = {k: e[k] for k in ("image", "image_present", "audio", "audio_present")}
        if with_index:
            return inputs, e["label"], e["index"]
        return inputs, e["label"]

    ds = ds.batch(batch_size).map(split, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def multi_hot_targets(prep: PreparedDataset, labels: Sequence[str]) -> np.ndarray:
    """[max index + 1, K] targets from samples.jsonl's label cells ("a;b"); -1 rows unlabeled."""
    from crossmodal.data.scan import label_set

    position = {name: k for k, name in enumerate(labels)}
    top = max([s["index"] for s in prep.samples] + [0]) + 1
    table = np.full((top, len(labels)), -1.0, dtype=np.float32)
    for s in prep.samples:
        names = label_set(s["label"])
        if names:
            table[s["index"]] = 0.0
            for name in names:
                if name in position:
                    table[s["index"], position[name]] = 1.0
    return table
