"""Fuzzing with hypothesis: the decoders and the scanners meet random and mutated input.

Decoders either return an array of the requested shape with finite values, or raise
DecodeError; scanners either return a ScanResult that accounts for every entry, or raise
CrossmodalError. Any other exception is a bug (it would reach a user as a traceback).
Examples are bounded so that the whole file runs in a few seconds.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crossmodal.data.decode import DecodeError, probe_audio, probe_image, read_audio, read_image
from crossmodal.data.scan import ScanResult, is_hidden, scan_folder, scan_manifest
from crossmodal.errors import CrossmodalError
from tests.synth import (
    write_animated_gif,
    write_array_image,
    write_image,
    write_palette_png,
    write_png,
    write_wav,
)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def work() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _seed_files(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    made = {
        "png": write_array_image(folder / "s.png", noise),
        "png16": write_png(folder / "s16.png", (5, 3), "I;16", 300),
        "pal": write_palette_png(folder / "p.png", np.eye(3, dtype=int), [(1, 2, 3), (4, 5, 6)]),
        "jpg": write_image(folder / "s.jpg", (8, 8), "CMYK", (255, 0, 0, 0)),
        "gif": write_animated_gif(folder / "s.gif"),
        "bmp": write_image(folder / "s.bmp", (4, 4), "RGB", (9, 9, 9)),
        "webp": write_image(folder / "s.webp", (4, 4), "RGBA", (9, 9, 9, 9)),
        "wav16": write_wav(folder / "s16.wav", 0.01, 8_000, channels=2),
        "wavu8": write_wav(folder / "su8.wav", 0.01, 8_000, subtype="PCM_U8"),
        "wav24": write_wav(folder / "s24.wav", 0.01, 11_025, subtype="PCM_24"),
        "wavf": write_wav(folder / "sf.wav", 0.01, 8_000, subtype="FLOAT"),
        "wavd": write_wav(folder / "sd.wav", 0.01, 44_100, subtype="DOUBLE", channels=3),
    }
    if "FLAC" in sf.available_formats():
        made["flac"] = write_wav(folder / "s.flac", 0.01, 8_000)
    return {name: path.read_bytes() for name, path in made.items()}


SEEDS = _seed_files(Path(tempfile.mkdtemp(prefix="crossmodal-fuzz-seeds-")))
IMAGE_SEEDS = sorted(k for k in SEEDS if not k.startswith(("wav", "flac")))
AUDIO_SEEDS = sorted(k for k in SEEDS if k.startswith(("wav", "flac")))
BIG = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"]


@st.composite
def mutated(draw, names: list[str]) -> bytes:
    """A valid seed file with a few bytes changed, inserted or cut, or the file truncated."""
    data = bytearray(SEEDS[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "insert", "truncate", "big"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[at:]
        else:  # a length or dimension field blown up or zeroed
            data[at : at + 4] = draw(st.sampled_from(BIG))
    return bytes(data)


def check_image(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be noise on the user's screen
        try:
            info = probe_image(str(path))
            assert info.width > 0 and info.height > 0
        except DecodeError:
            pass
        for channels in (1, 3):
            try:
                arr = read_image(str(path), height=4, width=3, channels=channels)
            except DecodeError as exc:
                assert str(exc)  # a reason to show
                continue
            assert arr.dtype == np.uint8 and arr.shape == (4, 3, channels)


def check_audio(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            info = probe_audio(str(path))
            assert info.seconds > 0 and info.sample_rate > 0 and info.channels > 0
        except DecodeError:
            pass
        for rate in (8_000, 16_000):
            try:
                wave = read_audio(str(path), sample_rate=rate, num_samples=300)
            except DecodeError as exc:
                assert str(exc)
                continue
            assert wave.dtype == np.float32 and wave.shape == (300,)
            assert np.all(np.isfinite(wave)) and np.abs(wave).max(initial=0) <= 1.0


# --- decoders -----------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=512), ext=st.sampled_from([".png", ".jpg", ".gif", ".webp"]))
def test_random_bytes_as_image(work, data, ext):
    path = work / f"random{ext}"
    path.write_bytes(data)
    check_image(path)


@FUZZ
@given(data=st.binary(max_size=512), ext=st.sampled_from([".wav", ".flac", ".ogg"]))
def test_random_bytes_as_audio(work, data, ext):
    path = work / f"random{ext}"
    path.write_bytes(data)
    check_audio(path)


@settings(FUZZ, max_examples=250)
@given(data=mutated(IMAGE_SEEDS))
def test_mutated_images(work, data):
    path = work / "mutated.img"
    path.write_bytes(data)
    check_image(path)


@settings(FUZZ, max_examples=250)
@given(data=mutated(AUDIO_SEEDS))
def test_mutated_audio(work, data):
    path = work / "mutated.wav"
    path.write_bytes(data)
    check_audio(path)


special = st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, 0.0, 1.5, -1.0])
samples = st.lists(st.one_of(st.floats(-2, 2, width=32), special), min_size=1, max_size=400)


@FUZZ
@given(
    values=samples,
    channels=st.integers(1, 3),
    rate=st.sampled_from([1_000, 7_350, 8_000, 11_025, 44_100, 96_000]),
    subtype=st.sampled_from(["FLOAT", "DOUBLE", "PCM_16"]),
)
def test_float_audio_never_yields_nan(work, values, channels, rate, subtype):
    """NaN, Inf and huge samples, any rate and channel count: finite output in [-1, 1]."""
    wave = np.repeat(np.asarray(values, np.float32)[:, None], channels, axis=1)
    path = work / "values.wav"
    with np.errstate(invalid="ignore"):  # PCM_16 of NaN is libsndfile's business
        sf.write(str(path), wave, rate, subtype=subtype)
    check_audio(path)


# --- manifests ------------------------------------------------------------------------------------

EXISTING = ["a.png", "b.wav", "sub/c.png", "sp ace.wav", "ünï.png"]
cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
)  # commas, quotes, newlines, U+2028, NUL, ... (no lone surrogates: the file is UTF-8)
cells = st.one_of(
    st.just(""),
    st.sampled_from(EXISTING),
    st.sampled_from(EXISTING).map(lambda s: f"  {s} "),  # padded: stripped
    st.sampled_from(["nope.png", "sub", "../x.wav", "/no/such.wav", "a.png/x"]),
    cell_text,
)


@pytest.fixture(scope="module")
def media(work) -> Path:
    root = work / "manifest"
    for name in EXISTING:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def expected_samples(base: Path, rows: list[dict]) -> list[tuple]:
    """The oracle: what scan_manifest must make of each row."""

    def named(cell) -> str | None:
        cell = "" if cell is None else str(cell).strip()
        if not cell:
            return None
        cell = os.path.expanduser(cell)
        return str(Path(cell) if os.path.isabs(cell) else base / cell)

    def usable(name: str | None) -> str | None:
        try:
            return name if name is not None and Path(name).is_file() else None
        except (OSError, ValueError):
            return None

    # A pair named again is kept once, with its first row's label, or its first label when
    # the first row had none (and then that row's group, when the first row had none).
    out, seen, kept = [], set(), {}
    for row in rows:
        pair = named(row.get("image")), named(row.get("audio"))
        label = "" if row.get("label") is None else str(row["label"])
        label = ";".join(part.strip() for part in label.split(";") if part.strip()) or None
        group = ("" if row.get("group") is None else str(row["group"]).strip()) or None
        if pair != (None, None):
            if pair in seen:
                if pair in kept and out[kept[pair]][2] is None and label is not None:
                    image, audio, _, first_group = out[kept[pair]]
                    out[kept[pair]] = (image, audio, label, first_group or group)
                continue
            seen.add(pair)
        image, audio = usable(pair[0]), usable(pair[1])
        if image is None and audio is None:
            continue
        kept[pair] = len(out)
        out.append((image, audio, label, group))
    return out


def check_manifest(path: Path, rows: list[dict]) -> None:
    expected = expected_samples(path.parent, rows)
    try:
        result = scan_manifest(path)
    except CrossmodalError as exc:
        assert not expected and "no usable rows" in str(exc)
        return
    got = [(s.image, s.audio, s.label, s.group) for s in result.samples]
    assert got == expected
    # a row's stem is its first file's, as a folder sample's is: --group-regex reads it
    assert [s.stem for s in result.samples] == [
        Path(s.image or s.audio).stem for s in result.samples
    ]
    for s in result.samples:
        for p in (s.image, s.audio):
            assert p is None or Path(p).is_file()
    assert all(k["path"] and k["reason"] for k in result.skipped)
    # every row is either a sample or named among the skipped
    dropped = {
        k["path"]
        for k in result.skipped
        if k["reason"].startswith(("row has neither", "rows "))  # unusable, or a repeated pair
    }
    assert len(result.samples) + len(dropped) == len(rows)


rows_strategy = st.lists(
    st.fixed_dictionaries({"image": cells, "audio": cells, "label": cell_text, "group": cell_text}),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(rows=rows_strategy, columns=st.permutations(["image", "audio", "label", "group"]))
def test_csv_manifest_property(media, rows, columns):
    path = media / "m.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    check_manifest(path, rows)


jsonl_value = st.one_of(st.none(), st.integers(-5, 5), cells)


@FUZZ
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"image": jsonl_value, "audio": jsonl_value, "label": jsonl_value},
            optional={"group": jsonl_value, "extra": st.lists(st.integers(), max_size=2)},
        ),
        min_size=1,
        max_size=8,
    ),
    ascii_only=st.booleans(),
)
# Found by the fuzzer: a label filling in an unlabeled pair brings its group.
@example(
    rows=[
        {"image": "sp ace.wav", "audio": "b.wav", "label": None},
        {"image": "sp ace.wav", "audio": "b.wav", "label": 0, "group": 0},
    ],
    ascii_only=False,
)
def test_jsonl_manifest_property(media, rows, ascii_only):
    path = media / "m.jsonl"
    text = "".join(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    check_manifest(path, rows)


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=300),
        cell_text.map(lambda t: ("image,audio,label\n" + t).encode("utf-8")),
        st.lists(cell_text, max_size=6).map(lambda t: "\n".join(t).encode("utf-8")),
    ),
    ext=st.sampled_from([".csv", ".jsonl"]),
)
def test_any_manifest_text_is_parsed_or_refused(media, content, ext):
    path = media / f"raw{ext}"
    path.write_bytes(content)
    try:
        result = scan_manifest(path)
    except CrossmodalError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line for the user
        return
    assert isinstance(result, ScanResult) and result.samples


# --- folders -------------------------------------------------------------------------------------

KINDS = ["media", "text", "broken_link", "loop_link", "good_link", "folder", "fifo", "hidden"]
names = st.text(alphabet="ab é_-[]:.", min_size=1, max_size=6).filter(
    lambda s: not is_hidden(s) and s not in (".", "..")
)
exts = st.sampled_from([".png", ".WAV", ".jpg", ".flac", ".txt", ""])


@FUZZ
@given(entries=st.lists(st.tuples(names, exts, st.sampled_from(KINDS)), max_size=12))
def test_folder_scan_accounts_for_every_entry(entries):
    """Every visible entry is used, skipped or ignored, exactly once; nothing raises."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cls = root / "cls"
        cls.mkdir()
        visible = set()
        for stem, ext, kind in entries:
            path = cls / f"{stem}{ext}"
            if os.path.lexists(path):
                continue
            if kind == "hidden":
                (cls / f".{stem}{ext}").write_bytes(b"")
                continue
            if kind in ("media", "text"):
                path.write_bytes(b"" if kind == "media" else b"text")
            elif kind == "broken_link":
                os.symlink(root / "nowhere", path)
            elif kind == "loop_link":
                os.symlink(path.name, path)
            elif kind == "good_link":
                os.symlink(root / "target.png", path)
                (root / "target.png").write_bytes(b"")  # at the root: ignored itself
            elif kind == "folder":
                path.mkdir()
            elif kind == "fifo":
                os.mkfifo(path)
            visible.add(str(path))
        try:
            result = scan_folder(root)
        except CrossmodalError:
            pytest.fail("a folder with a class folder must scan")
        used = [p for s in result.samples for p in (s.image, s.audio) if p is not None]
        reported = [k["path"] for k in result.skipped + result.ignored]
        accounted = used + [p for p in reported if p.startswith(str(cls) + os.sep)]
        assert sorted(accounted) == sorted(visible)
        if not used:
            assert str(cls) in reported  # an empty class folder is said to be empty
        assert not any("/." in p.replace(str(root), "") for p in used + reported)
