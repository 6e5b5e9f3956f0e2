"""A generated hostile corpus through `crossmodal preprocess` (and `predict`): every kind of bad
input has a clear outcome, nothing crashes, nothing usable is lost, nothing lies.

The unit behaviour of each decoder and of the scanner is in test_decode.py and test_scan.py;
this file checks the layer above them: what a user running the command line gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from crossmodal.data.decode import read_audio
from crossmodal.data.preprocess import PrepSettings, open_prepared, preprocess
from tests.synth import (
    sine,
    touch,
    truncate,
    write_animated_gif,
    write_array_image,
    write_audio,
    write_bomb_png,
    write_corrupt_png,
    write_csv,
    write_image,
    write_long_wav,
    write_palette_png,
    write_png,
    write_text,
    write_wav,
)

ROOT = Path(__file__).resolve().parents[1]
RATE = 8_000
CLIP = 0.5  # seconds: --clip-seconds, so the 10-minute file does not set the clip length
LONG_SECONDS = 600.0
FLAGS = ["--sample-rate", str(RATE), "--clip-seconds", str(CLIP)]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        cwd=ROOT,
        timeout=timeout,
    )


class Corpus:
    """The hostile folder and what must become of each file in it."""

    def __init__(self, root: Path):
        self.root = root
        self.keep: dict[str, str] = {}  # path -> "image" | "audio": must be used
        self.skip: dict[str, str] = {}  # path -> a word the reason must contain
        self.ignore: dict[str, str] = {}  # path -> a word the reason must contain
        self.samples: dict[tuple[str, str], tuple[bool, bool]] = {}  # (label, stem) -> parts

    def kept(self, path: Path, kind: str) -> Path:
        self.keep[str(path)] = kind
        return path

    def skipped(self, path: Path, why: str) -> Path:
        self.skip[str(path)] = why
        return path

    def sample(self, label: str, stem: str, image: bool, audio: bool) -> None:
        self.samples[(label, stem)] = (image, audio)


def build_corpus(root: Path) -> Corpus:
    c = Corpus(root)
    # "mixed [" and "x] [bold].wav" below: "mixed [/x] [bold].wav" is rich markup with a
    # closing tag that matches nothing (a MarkupError when printed as markup)
    a, i, b, m = (root / n for n in ("audio", "image", "broken", "mixed ["))

    # --- audio: every bit depth, odd rates, channels, silence, one sample, NaN/Inf, an hour-ish
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        c.kept(write_wav(a / f"{subtype.lower()}.wav", 0.2, RATE, subtype=subtype), "audio")
    c.kept(write_wav(a / "stereo44k.wav", 0.2, 44_100, channels=2), "audio")
    c.kept(write_wav(a / "odd7350.wav", 0.2, 7_350), "audio")
    c.kept(write_wav(a / "hi96k.wav", 0.2, 96_000, subtype="PCM_24"), "audio")
    c.kept(write_wav(a / "six_channels.wav", 0.2, 11_025, channels=6), "audio")
    c.kept(write_audio(a / "silence.wav", np.zeros(1_600, np.float32), RATE), "audio")
    one = np.array([0.25], np.float32)
    c.kept(write_audio(a / "one_sample.wav", one, RATE, subtype="FLOAT"), "audio")
    nan = sine(0.2, RATE, 300.0)
    nan[[1, 50, 99]] = [np.nan, np.inf, -np.inf]
    c.kept(write_audio(a / "nan_inf.wav", nan, RATE, subtype="FLOAT"), "audio")
    all_nan = np.full(1_600, np.nan, np.float32)
    c.kept(write_audio(a / "all_nan.wav", all_nan, 11_025, subtype="FLOAT"), "audio")
    huge = np.where(np.arange(2_000) % 2 == 0, 3e38, -3e38).astype(np.float32)  # overflows a filter
    c.kept(write_audio(a / "huge_float.wav", huge, 11_025, subtype="FLOAT"), "audio")
    c.kept(write_long_wav(a / "long.wav", LONG_SECONDS, RATE), "audio")
    c.kept(write_wav(a / "Voix d'été.WAV", 0.2, RATE), "audio")  # unicode, space, upper case
    if "FLAC" in sf.available_formats():
        c.kept(write_wav(a / "lossless.FLAC", 0.2, 16_000), "audio")
    for path in list(c.keep):
        c.sample("audio", Path(path).stem, False, True)

    # --- images: 16-bit, palette, CMYK, alpha, animated, other formats and odd names -------
    c.kept(write_png(i / "gray16.png", (8, 8), "I;16", 40_000), "image")
    palette = [(255, 0, 0), (0, 0, 255), (0, 200, 0)]
    c.kept(write_palette_png(i / "palette.png", np.eye(8, dtype=int), palette), "image")
    c.kept(write_image(i / "cmyk.jpg", (8, 8), "CMYK", (0, 255, 0, 0), quality=95), "image")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, np.arange(8) * 32
    c.kept(write_array_image(i / "rgba.png", rgba, "RGBA"), "image")
    c.kept(write_animated_gif(i / "animated.gif"), "image")
    c.kept(write_image(i / "pic.bmp", (8, 8), "RGB", (9, 9, 9)), "image")
    c.kept(write_image(i / "pic2.webp", (8, 8), "RGB", (9, 90, 9)), "image")
    c.kept(write_png(i / "one_pixel.png", (1, 1), "L", 200), "image")
    c.kept(write_png(i / "thin.png", (1, 300), "L", 100), "image")  # 1 wide, 300 high
    c.kept(write_png(i / "Ünïcödé 名前.PNG", (8, 8), "RGB", (1, 2, 3)), "image")
    c.kept(write_image(i / "with space.JPEG", (8, 8), "RGB", (200, 0, 0)), "image")
    for path in [p for p, kind in c.keep.items() if kind == "image"]:
        c.sample("image", Path(path).stem, True, False)

    # --- broken: one bad part keeps the other; two bad parts drop the sample ----------------
    good_png = dict(size=(8, 8), mode="L", value=90)
    c.skipped(write_corrupt_png(b / "corrupt.png"), "corrupt")
    c.kept(write_wav(b / "corrupt.wav", 0.2, RATE), "audio")
    c.sample("broken", "corrupt", False, True)
    c.skipped(truncate(write_array_image(b / "cut.png", np.eye(64) * 255), 0.5), "truncated")
    c.kept(write_wav(b / "cut.wav", 0.2, RATE), "audio")
    c.sample("broken", "cut", False, True)
    c.skipped(touch(b / "zero.png"), "empty")
    c.skipped(touch(b / "zero.wav"), "empty")
    c.skipped(write_text(b / "text.png"), "not a readable image")
    c.skipped(write_text(b / "text.wav"), "not a readable audio")
    c.kept(write_png(b / "cut_in_data.png", **good_png), "image")
    # libsndfile would read the half that is left without a word: a cut word, refused
    c.skipped(truncate(write_wav(b / "cut_in_data.wav", 0.4, RATE), 0.5), "truncated")
    c.sample("broken", "cut_in_data", True, False)
    c.kept(write_png(b / "header_cut.png", **good_png), "image")
    c.skipped(truncate(write_wav(b / "header_cut.wav", 0.2, RATE), 20), "not a readable audio")
    c.sample("broken", "header_cut", True, False)
    c.skipped(write_bomb_png(b / "bomb.png"), "decompression bomb")  # 100000 x 100000
    c.kept(write_wav(b / "bomb.wav", 0.2, RATE), "audio")
    c.sample("broken", "bomb", False, True)
    c.skipped(write_bomb_png(b / "bomb9k.png", 9_000, 9_000), "decompression bomb")
    c.skipped(write_text(b / "new\nline.wav"), "not a readable audio")  # a newline in a name

    # --- mixed: duplicates, links, a FIFO, strays, hidden files, hostile names -------------
    c.kept(write_png(m / "dup.png", **good_png), "image")
    c.skipped(write_image(m / "dup.jpg", (8, 8), "L", 90), "duplicate")
    c.kept(write_wav(m / "dup.wav", 0.2, RATE), "audio")
    c.sample("mixed [", "dup", True, True)
    os.symlink(i / "rgba.png", m / "link.png")
    c.kept(m / "link.png", "image")
    c.sample("mixed [", "link", True, False)
    os.symlink("self.wav", m / "self.wav")
    c.skipped(m / "self.wav", "looping link")
    os.symlink(root / "nowhere.png", m / "gone.png")
    c.skipped(m / "gone.png", "broken link")
    os.symlink(m, m / "loopdir")
    c.ignore[str(m / "loopdir")] = "nested folder"
    os.mkfifo(m / "fifo.wav")  # reading it would block for ever
    c.skipped(m / "fifo.wav", "not a regular file")
    c.ignore[str(write_text(m / "notes.txt"))] = "not an image or audio file"
    write_png(m / ".hidden.png", **good_png)  # hidden: neither used nor reported
    c.kept(write_wav(m / "lonely.wav", 0.2, RATE), "audio")
    c.sample("mixed [", "lonely", False, True)
    c.skipped(write_text(m / "x] [bold].wav"), "not a readable audio")  # markup, see above
    c.kept(write_png(m / "emoji :smile: name.png", **good_png), "image")
    c.sample("mixed [", "emoji :smile: name", True, False)
    raw = os.fsencode(m) + b"/caf\xe9.png"  # a name that is not UTF-8
    write_png(os.fsdecode(raw), **good_png)
    c.kept(Path(os.fsdecode(raw)), "image")
    c.sample("mixed [", os.fsdecode(b"caf\xe9"), True, False)

    # --- folders and strays around the classes ----------------------------------------------
    (root / "empty").mkdir()
    c.ignore[str(root / "empty")] = "empty class folder"
    c.ignore[str(write_text(root / "strays" / "README.md"))] = "not an image or audio file"
    c.ignore[str(root / "strays")] = "empty class folder"
    c.ignore[str(write_text(root / "README.txt"))] = "outside a class folder"
    touch(root / ".DS_Store")
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("hostile") / "data")


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    """One CLI run over the corpus: (process, dataset.json, out folder)."""
    out = tmp_path_factory.mktemp("hostile-out") / "prep"
    proc = cli("preprocess", str(corpus.root), "--out", str(out), *FLAGS)
    raw = (out / "dataset.json").read_bytes() if out.exists() else b"{}"
    return proc, json.loads(raw.decode("utf-8")), out  # strict UTF-8, even with odd names


def test_preprocess_exits_0_with_a_summary_of_what_was_skipped(prepared):
    proc, info, out = prepared
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no warning, no library chatter
    summary = proc.stdout.splitlines()
    n = len(info["skipped"])
    assert summary[0].startswith(f"wrote {out}: {info['num_samples']} samples in 4 classes")
    assert summary[0].endswith(f"; {n} file(s) skipped, {len(info['ignored'])} ignored")
    listed = summary[1:]
    assert len(listed) == min(20, n) + (n > 20)
    for item, line in zip(info["skipped"], listed, strict=False):
        assert line.startswith("  skipped ") and line.endswith(item["reason"])
    assert any("new\\x0aline.wav: " in line for line in listed)  # one line per file, always
    assert any("mixed [/x] [bold].wav: " in line for line in listed)  # shown as it is


def test_preprocess_json_is_one_document_even_with_odd_names(prepared, corpus):
    _, info, out = prepared
    proc = cli("preprocess", str(corpus.root), "--out", str(out), *FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["reused"] is True and payload["notes"] == []
    assert payload["skipped"] == info["skipped"] and payload["path"] == str(out)


def test_every_usable_file_kept_and_every_bad_one_explained(prepared, corpus):
    proc, info, out = prepared
    prep = open_prepared(out)
    used = {}
    for row in prep.samples:
        for kind in ("image", "audio"):
            if row[kind] is not None:
                used[row[kind]] = kind
    assert used == corpus.keep
    reasons = {k["path"]: k["reason"] for k in info["skipped"]}
    assert set(reasons) == set(corpus.skip)
    for path, word in corpus.skip.items():
        assert word in reasons[path], (path, reasons[path])
    ignored = {k["path"]: k["reason"] for k in info["ignored"]}
    for path, word in corpus.ignore.items():
        assert word in ignored[path], (path, ignored.get(path))
    assert not any(".hidden" in p or ".DS_Store" in p for p in [*reasons, *ignored, *used])
    # a sample whose only broken part is one modality keeps the other
    got = {
        (r["label"], r["stem"]): (r["image"] is not None, r["audio"] is not None)
        for r in prep.samples
    }
    assert got == corpus.samples
    assert "dup.png is used" in reasons[str(corpus.root / "mixed [" / "dup.jpg")]  # png wins
    assert info["classes"] == ["audio", "broken", "image", "mixed ["]
    assert info["num_samples"] == len(corpus.samples)


def test_records_are_finite_and_shaped(prepared, corpus):
    _, info, out = prepared
    prep = open_prepared(out)
    layout = prep.layout
    assert layout.num_samples == int(CLIP * RATE)
    assert (layout.height, layout.width, layout.channels) == (8, 8, 3)  # most common size, colour
    by_index = {row["index"]: row for row in prep.samples}
    seen = 0
    for shard in prep.shard_paths:
        blob = shard.read_bytes()
        assert len(blob) % layout.record_bytes == 0
        for k in range(0, len(blob), layout.record_bytes):
            rec = layout.decode(blob[k : k + layout.record_bytes])
            row = by_index[rec["index"]]
            assert rec["image_present"] == (row["image"] is not None)
            assert rec["audio_present"] == (row["audio"] is not None)
            audio = rec["audio"]
            assert audio.shape == (layout.num_samples,)
            assert np.all(np.isfinite(audio)), row  # NaN never reaches training
            assert np.abs(audio).max() <= 1.0
            stem = row["stem"]
            if stem == "long":  # cropped: its first half second, a 440 Hz sine
                assert np.abs(audio).max() > 0.2
            if stem == "all_nan":
                assert not audio.any()
            if stem == "nan_inf":
                assert audio[1] == audio[50] == audio[99] == 0 and np.abs(audio).max() > 0.4
            seen += 1
    assert seen == info["num_samples"]


def test_long_audio_is_cropped_without_reading_it_all(corpus, tmp_path, monkeypatch):
    long_wav = corpus.root / "audio" / "long.wav"
    assert long_wav.stat().st_size > LONG_SECONDS * RATE * 2  # really ten minutes on disk
    tracemalloc.start()
    try:
        out = read_audio(str(long_wav), sample_rate=16_000, num_samples=8_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (8_000,)
    assert peak < 2_000_000, peak  # the whole file as float32 would be 19 MB

    reads: list[tuple[str, int]] = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        data = original(self, frames, *args, **kwargs)
        reads.append((self.name, len(data)))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    settings = PrepSettings(sample_rate=RATE, clip_seconds=CLIP)
    prep = preprocess(corpus.root, tmp_path / "prep", settings=settings, workers=1)
    assert prep.info["num_samples"] == len(corpus.samples)
    frames = {Path(name).name: n for name, n in reads}
    assert frames["long.wav"] <= CLIP * RATE + 64  # what the crop keeps, plus a filter margin
    assert max(frames.values()) <= CLIP * 96_000 + 64  # no file is read beyond the clip


def test_strict_exits_1_naming_the_problems(corpus, prepared, tmp_path):
    _, info, _ = prepared
    out = tmp_path / "strict"
    proc = cli("preprocess", str(corpus.root), "--out", str(out), *FLAGS, "--strict")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    n = len(info["skipped"])
    assert lines[0].startswith(f"error: {n} file(s) could not be used (--strict): ")
    first = info["skipped"][0]
    assert f"{first['path']}: {first['reason']}" in lines[0]
    assert f"and {n - 3} more" in lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    _, _, done = prepared  # up to date, but --strict still says no (and keeps the folder)
    again = cli("preprocess", str(corpus.root), "--out", str(done), *FLAGS, "--strict")
    assert again.returncode == 1 and again.stderr.strip().splitlines() == lines
    assert open_prepared(done).info == info


# --- manifests --------------------------------------------------------------------------------


def test_manifest_with_hostile_rows(corpus, tmp_path):
    """Unknown and nonexistent paths, absolute paths, broken files: rows are skipped with a
    reason, usable ones kept, exit 0."""
    d = Path(os.path.relpath(corpus.root, tmp_path))
    rows = [
        {"image": str(corpus.root / "image/palette.png"), "audio": d / "audio/pcm_16.wav"},
        {"image": d / "image/nope.png", "audio": d / "audio/float.wav", "label": "y"},
        {"image": d / "image/nope.png", "audio": "", "label": "y"},  # nothing usable
        {"image": "", "audio": "", "label": "y"},  # an empty row
        {"image": d / "broken/zero.png", "audio": d / "broken/text.wav"},  # both broken
        {"image": d / "broken/bomb.png", "audio": d / "broken/bomb.wav"},  # one broken
        {"image": "x" * 5_000 + ".png", "audio": d / "audio/silence.wav", "label": ""},
        {"image": d / "mixed [/fifo.wav", "audio": "", "label": "x"},  # not a regular file
    ]
    for row in rows:
        row.setdefault("label", "x")
    manifest = write_csv(tmp_path / "list.csv", rows)  # relative paths: to the manifest
    out = tmp_path / "prep"
    proc = cli("preprocess", str(manifest), "--out", str(out), *FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    info = json.loads(proc.stdout)
    kept = [(s["image"] is not None, s["audio"] is not None) for s in open_prepared(out).samples]
    assert kept == [(True, True), (False, True), (False, True), (False, True)]
    assert info["num_unlabeled"] == 1
    reasons = {k["path"]: k["reason"] for k in info["skipped"]}
    at = tmp_path / d
    assert reasons[str(at / "image/nope.png")] == "line 4: image file does not exist"
    assert reasons[f"{manifest}:4"] == "row has neither a usable image nor audio"
    assert reasons[f"{manifest}:5"] == "row has neither a usable image nor audio"
    assert reasons[f"{manifest}:9"] == "row has neither a usable image nor audio"
    assert "empty file" in reasons[str(at / "broken/zero.png")]
    assert "not a readable audio" in reasons[str(at / "broken/text.wav")]
    assert "decompression bomb" in reasons[str(at / "broken/bomb.png")]
    assert "name too long" in reasons[str(tmp_path / ("x" * 5_000 + ".png"))]
    assert "not a regular file" in reasons[str(at / "mixed [/fifo.wav")]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("cols.csv", "image,label\na.png,x\n", "lacks column(s) audio"),
        ("latin1.csv", b"image,audio,label\ncaf\xe9.png,,x\n", "not UTF-8"),
        ("bad.jsonl", "{oops\n\n[1, 2]\n", "bad.jsonl:1: not a JSON object"),  # no line is
        ("deep.jsonl", "[" * 100_000 + "\n", "deep.jsonl:1: not a JSON object"),
        ("huge.csv", 'image,audio,label\n"' + "x" * 200_000 + '",,x\n', "not valid CSV"),
        ("none.csv", "image,audio,label\nnope.png,,x\n", "no usable rows"),
        ("empty.csv", "", "lacks column(s) audio, image, label"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith(("csv", "jsonl")) else "",
)
def test_bad_manifests_are_one_line_errors(tmp_path, name, content, message):
    manifest = tmp_path / name
    if isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.write_text(content, encoding="utf-8")
    proc = cli("preprocess", str(manifest), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr


def test_jsonl_manifest_with_odd_text(corpus, tmp_path):
    """Line separators inside JSON strings, lone surrogates, nulls and numbers."""
    d = corpus.root
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"image": str(d / "image/rgba.png"), "audio": None, "label": "a\u2028b"},
        {"image": "\ud800.png", "audio": str(d / "audio/pcm_16.wav"), "label": 7},
    ]  # the first line holds a raw U+2028 (a line separator to str.splitlines)
    text = json.dumps(rows[0], ensure_ascii=False) + "\n" + json.dumps(rows[1]) + "\n"
    manifest.write_text(text, encoding="utf-8")
    settings = PrepSettings(sample_rate=RATE, clip_seconds=CLIP)
    prep = preprocess(manifest, tmp_path / "prep", settings=settings, workers=1)
    assert prep.classes == ["7", "a\u2028b"]
    skipped = [(k["path"], k["reason"]) for k in prep.info["skipped"]]
    assert skipped == [
        (str(tmp_path / "\ud800.png"), "line 2: image file is not a valid file name")
    ]
    (tmp_path / "prep" / "dataset.json").read_bytes().decode("utf-8")  # valid UTF-8 on disk


# --- predict on the hostile corpus --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.tiny import make_dataset

    data = make_dataset(tmp_path_factory.mktemp("tiny") / "data")
    out = tmp_path_factory.mktemp("model") / "m"
    flags = ["--epochs", "1", "--batch-size", "8", "--val-fraction", "0.25", "-q"]
    proc = cli("train", str(data), "--out", str(out), *flags)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.e2e
def test_predict_on_hostile_corpus_reports_errors_and_exits_3(tiny_model, corpus, tmp_path):
    out = tmp_path / "p.jsonl"
    proc = cli("predict", str(tiny_model), str(corpus.root), "--out", str(out))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    errors = [r for r in rows if "error" in r]
    predicted = [r for r in rows if "error" not in r]
    assert all(r["label"] in ("a", "b", "c") for r in predicted)
    used = {r[k] for r in predicted for k in ("image", "audio") if r[f"{k}_used"]}
    assert used == set(corpus.keep)  # everything usable was predicted
    text = " ".join(r["error"] for r in errors)
    for name in ("zero.png", "bomb9k.png", "self.wav", "gone.png", "fifo.wav"):
        assert name in text, name
    # a second image for a stem is readable: a warning, not an error row
    assert "dup.jpg" not in text
    assert f"warning: {corpus.root / 'mixed [' / 'dup.jpg'}: duplicate image" in proc.stderr
    warned = {r.get("image") or r.get("audio") for r in predicted if "warning" in r}
    assert str(corpus.root / "broken" / "bomb.png") in warned  # audio kept, image refused
