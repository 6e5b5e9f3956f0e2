"""Tests for crossmodal.data.preprocess: inference, records on disk, caching and refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from crossmodal.data import preprocess as preprocess_module
from crossmodal.data.preprocess import (
    DATASET_JSON,
    LISTING_JSON,
    PREP_FORMAT_VERSION,
    SAMPLES_JSONL,
    PrepSettings,
    empty_classes,
    open_prepared,
    preprocess,
)
from crossmodal.errors import CrossmodalError
from tests.synth import (
    make_folder_dataset,
    settle,
    sine,
    write_audio,
    write_csv,
    write_palette_png,
    write_png,
    write_text,
    write_wav,
)

RATE = 8_000
S8K = PrepSettings(sample_rate=RATE)


def records(prep) -> list[dict]:
    """Every record of every shard, decoded with the numpy twin of the tf.data parser."""
    layout = prep.layout
    out = []
    for shard in prep.shard_paths:
        blob = shard.read_bytes()
        assert len(blob) % layout.record_bytes == 0
        for k in range(0, len(blob), layout.record_bytes):
            out.append(layout.decode(blob[k : k + layout.record_bytes]))
    return out


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_no_tensorflow_import():
    code = (
        "import sys, crossmodal.data.preprocess, crossmodal.data.scan, crossmodal.data.decode, "
        "crossmodal.data.records, crossmodal.splits, crossmodal.config; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def mixed(tmp_path) -> Path:
    """a: 3 full pairs; b: one image-only and one audio-only sample."""
    root = make_folder_dataset(tmp_path / "data", ["a"], 3, size=(10, 6), seconds=0.2, rate=RATE)
    write_png(root / "b/img.png", (10, 6), "L", 200)
    write_wav(root / "b/snd.wav", 0.2, RATE, 880.0)
    return root


def test_counts_and_records(mixed, tmp_path):
    seen = []
    prep = preprocess(
        mixed, tmp_path / "out", settings=S8K, workers=1, progress=lambda *a: seen.append(a)
    )
    info = prep.info
    assert not prep.reused
    assert info["format_version"] == PREP_FORMAT_VERSION
    assert prep.classes == ["a", "b"]
    assert info["num_samples"] == 5 and info["num_unlabeled"] == 0
    assert info["counts"]["per_class"] == {
        "a": {"samples": 3, "image": 3, "audio": 3},
        "b": {"samples": 2, "image": 1, "audio": 1},
    }
    assert (info["counts"]["image"], info["counts"]["audio"], info["counts"]["both"]) == (4, 4, 3)
    assert info["skipped"] == [] and info["source_kind"] == "folder"
    # every file's size and rate: 6x10 gray images, 0.2 s clips
    assert (info["image"]["height"], info["image"]["width"], info["image"]["channels"]) == (
        6,
        10,
        1,
    )
    assert info["audio"]["clip_seconds"] == pytest.approx(0.2)
    assert info["audio"]["num_samples"] == 1_600
    assert info["record_bytes"] == prep.layout.record_bytes
    # progress: both stages reach their totals
    assert ("probe", 5, 5) in seen and ("decode", 5, 5) in seen

    recs = records(prep)
    assert len(recs) == 5
    by_index = {r["index"]: r for r in recs}
    for row in prep.samples:
        r = by_index[row["index"]]
        assert r["label"] == prep.classes.index(row["label"])
        assert r["image_present"] == (row["image"] is not None)
        assert r["audio_present"] == (row["audio"] is not None)
        if row["image"] is not None:
            expected = 40 if row["label"] == "a" else 200  # make_folder_dataset: 40 * (k + 1)
            assert np.all(r["image"] == expected)
        if row["audio"] is not None:
            freq = 220.0 if row["label"] == "a" else 880.0
            np.testing.assert_allclose(r["audio"], sine(0.2, RATE, freq), atol=1e-4)
        else:
            assert not r["audio"].any()
    assert leftovers(tmp_path) == []


def test_image_size_is_most_common_and_channels(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        write_png(root / "a" / f"{i}.png", (10, 6), "L", 50)  # width 10, height 6
    write_png(root / "a/big.png", (12, 12), "L", 50)
    gray_palette = [(v, v, v) for v in range(0, 256, 64)]
    write_palette_png(root / "b/p.png", np.zeros((12, 12), int), gray_palette)
    prep = preprocess(root, tmp_path / "gray", settings=S8K, workers=1)
    img = prep.info["image"]
    assert (img["height"], img["width"], img["channels"]) == (6, 10, 1)  # all gray
    assert img["image_sizes_seen"] == 2  # 10 wide by 6 high, and 12x12
    assert prep.info["audio"]["clip_seconds"] == 1.0  # no audio: the default
    assert "image_sizes_seen" not in prep.info["audio"]
    write_png(root / "b/colour.png", (10, 6), "RGB", (255, 0, 0))
    prep = preprocess(root, tmp_path / "colour", settings=S8K, workers=1)
    assert prep.info["image"]["channels"] == 3  # one colour image is enough
    rec = {r["index"]: r for r in records(prep)}
    colour = next(s for s in prep.samples if s["stem"] == "colour")
    assert rec[colour["index"]]["image"][0, 0].tolist() == [255, 0, 0]


def test_large_images_scaled_down(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a/tall.png", (96, 192), "L", 9)  # 192 high, 96 wide
    prep = preprocess(root, tmp_path / "out", settings=S8K, workers=1)
    img = prep.info["image"]
    assert (img["height"], img["width"]) == (96, 48)  # longest side 96, aspect kept


@pytest.mark.parametrize(
    "seconds, expected",
    [
        ([0.33, 0.33, 0.33], 0.35),  # rounded up to the next 0.05 s
        ([0.3, 0.3], 0.3),  # already a multiple: unchanged
        # p99 of 4 values (linear): 0.1 + 0.97 * (0.42 - 0.1) = 0.4104 -> 0.45
        ([0.1, 0.1, 0.1, 0.42], 0.45),
        ([0.02], 0.1),  # never below 0.1 s
    ],
)
def test_clip_seconds_from_99th_percentile(tmp_path, seconds, expected):
    root = tmp_path / "data"
    for i, s in enumerate(seconds):
        write_wav(root / "a" / f"{i}.wav", s, RATE)
    prep = preprocess(root, tmp_path / "out", settings=S8K, workers=1)
    assert prep.info["audio"]["clip_seconds"] == pytest.approx(expected)
    assert prep.layout.num_samples == round(expected * RATE)
    assert prep.info["audio"]["inferred"] is True


def test_explicit_settings_override(mixed, tmp_path):
    settings = PrepSettings(sample_rate=16_000, height=5, width=7, channels=3, clip_seconds=0.1)
    prep = preprocess(mixed, tmp_path / "out", settings=settings, workers=1)
    info = prep.info
    assert (info["image"]["height"], info["image"]["width"], info["image"]["channels"]) == (5, 7, 3)
    assert info["image"]["inferred"] is False and info["audio"]["inferred"] is False
    assert info["image"]["channels_inferred"] is False
    assert info["audio"]["num_samples"] == 1_600  # 0.1 s at 16 kHz
    # Only the size given: the size is the user's, the channels still the data's.
    settings = PrepSettings(sample_rate=16_000, height=5, width=7, clip_seconds=0.1)
    info = preprocess(mixed, tmp_path / "size", settings=settings, workers=1).info
    assert info["image"]["inferred"] is False and info["image"]["channels_inferred"] is True
    recs = records(prep)
    assert len(recs) == 5
    assert recs[0]["image"].shape == (5, 7, 3)
    # partly explicit: the rest is still inferred
    prep = preprocess(mixed, tmp_path / "part", settings=PrepSettings(RATE, channels=3), workers=1)
    img = prep.info["image"]
    assert (img["height"], img["width"], img["channels"]) == (6, 10, 3)


def test_corrupt_files_skipped_sample_keeps_other_modality(tmp_path):
    root = make_folder_dataset(tmp_path / "data", ["a"], 2, seconds=0.1, rate=RATE)
    write_text(root / "a/x.png")  # not an image; x.wav is fine
    write_wav(root / "a/x.wav", 0.1, RATE)
    (root / "a/y.png").write_bytes(b"")  # both parts broken: the sample goes
    write_text(root / "a/y.wav")
    prep = preprocess(root, tmp_path / "out", settings=S8K, workers=1)
    reasons = {Path(k["path"]).name: k["reason"] for k in prep.info["skipped"]}
    assert set(reasons) == {"x.png", "y.png", "y.wav"}
    assert all(reasons.values())
    stems = {s["stem"]: s for s in prep.samples}
    assert set(stems) == {"s000", "s001", "x"}
    assert stems["x"]["image"] is None and stems["x"]["audio"].endswith("x.wav")
    assert prep.info["counts"]["per_class"]["a"] == {"samples": 3, "image": 2, "audio": 3}
    assert len(records(prep)) == 3


def test_strict_refuses_skips(tmp_path):
    root = make_folder_dataset(tmp_path / "data", ["a"], 2, rate=RATE)
    write_text(root / "a/x.png")
    with pytest.raises(CrossmodalError, match="x.png"):
        preprocess(root, tmp_path / "out", settings=S8K, workers=1, strict=True)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_all_files_broken_no_leftovers(tmp_path):
    root = tmp_path / "data"
    write_text(root / "a/x.png")
    write_text(root / "a/x.wav")
    with pytest.raises(CrossmodalError, match="no usable samples"):
        preprocess(root, tmp_path / "out", settings=S8K, workers=1)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_a_class_whose_files_all_fail_is_named_and_train_refuses_it(tmp_path):
    """Not a silent output the model can never learn: preprocess warns, train stops before
    any work with one line naming the class."""
    from crossmodal.config import AudioConfig, RunConfig
    from crossmodal.train import train

    root = make_folder_dataset(tmp_path / "data", ["a", "b"], 2, seconds=0.1, rate=RATE)
    write_text(root / "zbad/x.png")
    write_text(root / "zbad/x.wav")
    prep = preprocess(root, tmp_path / "prep", settings=S8K, workers=1)
    assert prep.classes == ["a", "b", "zbad"]
    assert empty_classes(prep.info) == ["zbad"]
    cli = [sys.executable, "-m", "cli.main", "preprocess", str(root), "--sample-rate", "8000"]
    proc = subprocess.run([*cli, "--out", str(tmp_path / "p2")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning: class(es) zbad have no usable sample" in proc.stderr
    config = RunConfig(audio=AudioConfig(sample_rate=RATE))
    with pytest.raises(CrossmodalError, match="class.es. zbad have no usable sample"):
        train(tmp_path / "prep", tmp_path / "model", config=config)
    assert not (tmp_path / "model").exists()
    assert empty_classes(open_prepared(tmp_path / "p2").info) == ["zbad"]


def test_reuse_and_rebuild(mixed, tmp_path):
    out = tmp_path / "out"
    first = preprocess(mixed, out, settings=S8K, workers=1)
    shard = first.shard_paths[0]
    before = shard.stat().st_mtime_ns, shard.stat().st_ino
    again = preprocess(mixed, out, settings=S8K, workers=1)
    assert again.reused is True
    assert (shard.stat().st_mtime_ns, shard.stat().st_ino) == before  # nothing rewritten
    assert again.info == first.info

    wav = mixed / "a/s000.wav"
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched
    assert preprocess(mixed, out, settings=S8K, workers=1).reused is False
    assert preprocess(mixed, out, settings=S8K, workers=1).reused is True

    write_png(mixed / "a/s000.png", (10, 6), "L", 255)  # new content
    rebuilt = preprocess(mixed, out, settings=S8K, workers=1)
    assert rebuilt.reused is False
    row = next(s for s in rebuilt.samples if s["stem"] == "s000")
    assert np.all({r["index"]: r for r in records(rebuilt)}[row["index"]]["image"] == 255)

    other = preprocess(mixed, out, settings=PrepSettings(16_000), workers=1)  # new settings
    assert other.reused is False and other.info["audio"]["sample_rate"] == 16_000
    assert leftovers(tmp_path) == []


def no_scan(monkeypatch):
    """Make any scan fail: a re-run that still scans is caught."""

    def refuse(source):
        raise AssertionError(f"scanned {source}")

    monkeypatch.setattr(preprocess_module, "scan", refuse)


def test_rerun_skips_the_scan_while_folders_are_unchanged(mixed, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = preprocess(mixed, out, settings=S8K, workers=1)
    assert not (out / LISTING_JSON).exists()  # folders just written: not trusted yet
    settle(mixed)
    assert preprocess(mixed, out, settings=S8K, workers=1).reused  # scans, saves the listing
    assert (out / LISTING_JSON).is_file()
    with monkeypatch.context() as m:
        no_scan(m)
        again = preprocess(mixed, out, settings=S8K, workers=1)
        assert again.reused and again.info == first.info
        # another spelling of the source, or another working folder: scan as before
        m.undo()
        m.chdir(tmp_path)
        assert preprocess("data/", out, settings=S8K, workers=1).reused
    rebuilt = preprocess(mixed, out, settings=S8K, workers=1)
    assert rebuilt.reused  # the relative spelling's listing was replaced by this one
    with monkeypatch.context() as m:
        no_scan(m)
        assert preprocess(mixed, out, settings=S8K, workers=1).reused


def test_a_cache_made_from_a_relative_path_names_its_files_from_anywhere(
    mixed, tmp_path, monkeypatch
):
    # evaluate lists the files of its worst mistakes from the samples (and report.html shows
    # them): a cache reused from another working folder must still name files that exist.
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    preprocess("data", out, settings=S8K, workers=1)
    monkeypatch.chdir(mixed / "a")
    again = preprocess(mixed, out, settings=S8K, workers=1)
    assert again.reused
    paths = [p for s in again.samples for p in (s["image"], s["audio"]) if p]
    assert len(paths) == 8 and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


def stems(prep) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (s["stem"], s["image"] and Path(s["image"]).name, s["audio"] and Path(s["audio"]).name)
        for s in prep.samples
    )


@pytest.mark.parametrize(
    "change",
    ["add file", "remove file", "rename file", "add class", "rename class", "modify file"],
)
def test_listing_sees_every_change(mixed, tmp_path, change):
    out = tmp_path / "out"
    settle(mixed)
    preprocess(mixed, out, settings=S8K, workers=1)
    assert (out / LISTING_JSON).is_file()
    if change == "add file":
        write_png(mixed / "b/snd.png", (10, 6), "L", 50)  # pairs with b/snd.wav
    elif change == "remove file":
        (mixed / "a/s001.wav").unlink()
    elif change == "rename file":
        (mixed / "a/s001.wav").rename(mixed / "a/s009.wav")
    elif change == "add class":
        write_wav(mixed / "c/new.wav", 0.2, RATE, 330.0)
    elif change == "rename class":
        (mixed / "b").rename(mixed / "z")
    else:  # new content, and a new mtime as any write gives
        write_wav(mixed / "a/s000.wav", 0.2, RATE, 990.0)
        st = (mixed / "a/s000.wav").stat()
        os.utime(mixed / "a/s000.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = preprocess(mixed, out, settings=S8K, workers=1)
    assert after.reused is False
    fresh = preprocess(mixed, tmp_path / "fresh", settings=S8K, workers=1)
    assert stems(after) == stems(fresh) and after.info["classes"] == fresh.info["classes"]
    assert [r["audio"].tolist() for r in records(after)] == [
        r["audio"].tolist() for r in records(fresh)
    ]


def test_listing_that_does_not_fit_is_ignored(mixed, tmp_path, monkeypatch):
    out = tmp_path / "out"
    settle(mixed)
    preprocess(mixed, out, settings=S8K, workers=1)
    listing = json.loads((out / LISTING_JSON).read_text())
    # A listing from another release, or one that names other files, is not used ...
    for bad in (
        {**listing, "version": "0.0.0"},
        {**listing, "rows": listing["rows"][:-1]},
        {**listing, "rows": [[1, 2]]},
        "not a listing",
    ):
        (out / LISTING_JSON).write_text(json.dumps(bad))
        with monkeypatch.context() as m:
            no_scan(m)
            with pytest.raises(AssertionError, match="scanned"):
                preprocess(mixed, out, settings=S8K, workers=1)
        assert preprocess(mixed, out, settings=S8K, workers=1).reused  # ... and is replaced
        assert json.loads((out / LISTING_JSON).read_text()) == listing
    # other settings miss the key whatever the listing says
    assert preprocess(mixed, out, settings=PrepSettings(16_000), workers=1).reused is False


def test_folder_with_a_listing_is_still_replaceable(mixed, tmp_path):
    out = tmp_path / "out"
    settle(mixed)
    preprocess(mixed, out, settings=S8K, workers=1)
    (out / f"{LISTING_JSON}.tmp-12345").write_text("{")  # a killed listing write
    (out / DATASET_JSON).unlink()  # incomplete now
    rebuilt = preprocess(mixed, out, settings=S8K, workers=1)
    assert rebuilt.reused is False and (out / LISTING_JSON).is_file()


def test_default_out_is_a_cache_folder(mixed, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMODAL_CACHE", str(tmp_path / "cache"))
    prep = preprocess(mixed, settings=S8K, workers=1)
    assert prep.path.parent == tmp_path / "cache"
    assert preprocess(mixed, settings=S8K, workers=1).reused is True


def test_refuses_non_prepared_folder(mixed, tmp_path):
    out = tmp_path / "out"
    write_text(out / "precious.txt", "keep me")
    with pytest.raises(CrossmodalError, match="not a prepared dataset"):
        preprocess(mixed, out, settings=S8K, workers=1)
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]
    file_out = write_text(tmp_path / "a_file")
    with pytest.raises(CrossmodalError, match="not a prepared dataset"):
        preprocess(mixed, file_out, settings=S8K, workers=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert preprocess(mixed, empty, settings=S8K, workers=1).info["num_samples"] == 5


def test_open_prepared_refuses_broken_folders(mixed, tmp_path):
    out = tmp_path / "out"
    prep = preprocess(mixed, out, settings=S8K, workers=1)
    assert open_prepared(out).samples == prep.samples

    info = json.loads((out / DATASET_JSON).read_text())
    (out / DATASET_JSON).write_text(json.dumps({**info, "format_version": 999}))
    with pytest.raises(CrossmodalError, match="incompatible"):
        open_prepared(out)
    (out / DATASET_JSON).write_text(json.dumps(info))

    prep.shard_paths[0].unlink()
    with pytest.raises(CrossmodalError, match="missing shard-00000.bin"):
        open_prepared(out)
    # preprocessing again repairs it rather than reusing it
    repaired = preprocess(mixed, out, settings=S8K, workers=1)
    assert repaired.reused is False and repaired.shard_paths[0].is_file()

    # a shard cut short (its data lost to a power cut after the rename): refused, then rebuilt
    shard = repaired.shard_paths[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CrossmodalError, match="incomplete: its shards hold"):
        open_prepared(out)
    rebuilt = preprocess(mixed, out, settings=S8K, workers=1)
    assert rebuilt.reused is False and len(rebuilt.samples) == len(prep.samples)
    assert open_prepared(out).samples == prep.samples

    (out / SAMPLES_JSONL).unlink()
    with pytest.raises(CrossmodalError, match="incomplete"):
        open_prepared(out)
    with pytest.raises(CrossmodalError, match="not a prepared dataset"):
        open_prepared(tmp_path / "nowhere")


def manifest_media(folder: Path) -> Path:
    """a.png, a.wav and b.wav for a manifest in `folder`."""
    write_png(folder / "a.png", (4, 4), "L", 10)
    write_wav(folder / "a.wav", 0.1, RATE)
    write_wav(folder / "b.wav", 0.1, RATE)
    return folder


def test_manifest_source_with_unlabeled(tmp_path):
    manifest = write_csv(
        manifest_media(tmp_path / "m") / "list.csv",
        [
            {"image": "a.png", "audio": "a.wav", "label": "yes"},
            {"image": "", "audio": "b.wav", "label": ""},
        ],
    )
    prep = preprocess(manifest, tmp_path / "out", settings=S8K, workers=1)
    assert prep.classes == ["yes"]
    assert prep.info["num_unlabeled"] == 1 and prep.info["source_kind"] == "manifest"
    labels = sorted(r["label"] for r in records(prep))
    assert labels == [-1, 0]


def test_manifest_rows_with_one_pair_and_two_labels_are_a_warning(tmp_path):
    """preprocess and train print it (prep.notes) on every run, not only the one that wrote
    the folder; the repeated row is listed as skipped, so --strict refuses it."""
    manifest = write_csv(
        manifest_media(tmp_path / "m") / "list.csv",
        [
            {"image": "a.png", "audio": "a.wav", "label": "yes"},
            {"image": "", "audio": "b.wav", "label": "no"},
            {"image": "a.png", "audio": "a.wav", "label": "no"},
        ],
    )
    warning = (
        f"warning: {manifest}: rows 2 and 4 name the same pair with labels 'yes' and 'no'; "
        "row 2's label is used"
    )
    prep = preprocess(manifest, tmp_path / "out", settings=S8K, workers=1)
    assert prep.notes == [warning] and prep.info["num_samples"] == 2
    again = preprocess(manifest, tmp_path / "out", settings=S8K, workers=1)
    assert again.reused and again.notes == [warning]
    with pytest.raises(CrossmodalError, match="rows 2 and 4 name the same pair"):
        preprocess(manifest, tmp_path / "out", settings=S8K, workers=1, strict=True)
    cli = [sys.executable, "-m", "cli.main", "preprocess", str(manifest), "--sample-rate", "8000"]
    proc = subprocess.run([*cli, "--out", str(tmp_path / "p2")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == warning + "\n"
    assert f"skipped {manifest}:4: rows 2 and 4 name the same pair" in proc.stdout


def test_worker_pool_matches_serial(tmp_path, monkeypatch):
    root = make_folder_dataset(
        tmp_path / "data", ["a", "b"], 100, size=(4, 4), seconds=0.05, rate=RATE
    )
    write_text(root / "a/s000.png")  # a corrupt file decoded in a worker
    serial = preprocess(root, tmp_path / "serial", settings=S8K, workers=1)
    pools = []

    class SpyPool(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(preprocess_module, "ProcessPoolExecutor", SpyPool)
    pooled = preprocess(root, tmp_path / "pooled", settings=S8K, workers=2)
    assert pools == [2]  # one process pool served both stages, probe and decode
    assert pooled.info["num_samples"] == serial.info["num_samples"] == 200
    assert len(pooled.shard_paths) > 1
    assert pooled.samples == serial.samples
    assert [k["path"] for k in pooled.info["skipped"]] == [str(root / "a/s000.png")]
    a = b"".join(p.read_bytes() for p in serial.shard_paths)
    b = b"".join(p.read_bytes() for p in pooled.shard_paths)
    assert a == b
    indices = sorted(r["index"] for r in records(pooled))
    assert indices == list(range(200))
    assert leftovers(tmp_path) == []


def test_float_wav_with_nan_is_cleaned_in_records(tmp_path):
    wave = sine(0.1, RATE, 440.0)
    wave[5] = np.nan
    write_audio(tmp_path / "data/a/n.wav", wave, RATE, subtype="FLOAT")
    prep = preprocess(tmp_path / "data", tmp_path / "out", settings=S8K, workers=1)
    (rec,) = records(prep)
    assert np.all(np.isfinite(rec["audio"])) and rec["audio"][5] == 0
