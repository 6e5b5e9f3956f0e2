"""Tests for crossmodal.data.scan: class folders, manifests and loose inputs."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmodal.data.scan import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    is_hidden,
    modality_of,
    scan,
    scan_inputs,
    scan_manifest,
)
from crossmodal.errors import CrossmodalError
from tests.synth import settle, touch, write_csv, write_jsonl, write_text


def by_stem(result):
    return {s.stem: s for s in result.samples}


def skipped_paths(result) -> set[str]:
    return {k["path"] for k in result.skipped}


def ignored_paths(result) -> set[str]:
    return {k["path"] for k in result.ignored}


def test_modality_of_any_case():
    assert modality_of(Path("a.PNG")) == "image"
    assert modality_of(Path("a.Jpeg")) == "image"
    assert modality_of(Path("a.WAV")) == "audio"
    assert modality_of(Path("a.flac")) == "audio"
    assert modality_of(Path("a.txt")) is None
    assert modality_of(Path("png")) is None


# --- folders --------------------------------------------------------------------------------


def test_folder_pairs_by_stem_and_lone_files(tmp_path):
    for name in ["cat/a.png", "cat/a.wav", "cat/b.png", "dog/c.wav", "dog/d.jpg", "dog/d.flac"]:
        touch(tmp_path / name)
    result = scan(tmp_path)
    assert result.kind == "folder"
    s = by_stem(result)
    assert set(s) == {"a", "b", "c", "d"}
    assert (s["a"].image, s["a"].audio) == (
        str(tmp_path / "cat/a.png"),
        str(tmp_path / "cat/a.wav"),
    )
    assert s["b"].audio is None and s["b"].image == str(tmp_path / "cat/b.png")
    assert s["c"].image is None and s["c"].audio == str(tmp_path / "dog/c.wav")
    assert (s["d"].image, s["d"].audio) == (
        str(tmp_path / "dog/d.jpg"),
        str(tmp_path / "dog/d.flac"),
    )
    assert {k: v.label for k, v in s.items()} == {"a": "cat", "b": "cat", "c": "dog", "d": "dog"}
    assert all(v.group is None for v in s.values())
    assert result.skipped == [] and result.ignored == []


def test_labels_are_kept_canonical(tmp_path, media):
    # A class folder named with a stray space (a CRLF label list makes "cat\r") is the class
    # "cat": later lookups by a sample's label must find the class the label names.
    touch(tmp_path / "data" / "cat /a.png")
    touch(tmp_path / "data" / "cat/b.png")
    touch(tmp_path / "data" / "dog\r/c.png")
    assert sorted(s.label for s in scan(tmp_path / "data").samples) == ["cat", "cat", "dog"]
    rows = [
        {"image": "img/a.png", "audio": "", "label": " owl ;"},
        {"image": "img/b.png", "audio": "", "label": "a ; b"},
        {"image": "", "audio": "snd/c.wav", "label": " ; "},
    ]
    labels = [s.label for s in scan(write_csv(media / "m.csv", rows)).samples]
    assert labels == ["owl", "a;b", None]


def test_same_stem_in_two_classes_is_two_samples(tmp_path):
    touch(tmp_path / "cat/x.png")
    touch(tmp_path / "dog/x.wav")
    result = scan(tmp_path)
    assert sorted((s.label, s.image is None, s.audio is None) for s in result.samples) == [
        ("cat", False, True),
        ("dog", True, False),
    ]


def test_hidden_entries_ignored(tmp_path):
    """Dot files and a Mac zip's __MACOSX/ are passed over; '__background__' is a class
    (Caltech's kind of name) and '__c.wav' a sound, not hidden."""
    touch(tmp_path / "cat/a.png")
    touch(tmp_path / "cat/.b.png")
    touch(tmp_path / "cat/__c.wav")
    touch(tmp_path / ".hidden/d.png")
    touch(tmp_path / "__MACOSX/e.png")
    touch(tmp_path / "__background__/f.png")
    touch(tmp_path / ".DS_Store")
    (tmp_path / "cat/.ipynb_checkpoints").mkdir()
    result = scan(tmp_path)
    assert [(s.label, s.stem) for s in result.samples] == [
        ("__background__", "f"),
        ("cat", "__c"),
        ("cat", "a"),
    ]
    assert result.skipped == [] and result.ignored == []


def test_stray_text_ignored_and_reported(tmp_path):
    touch(tmp_path / "cat/a.png")
    write_text(tmp_path / "cat/notes.txt")
    write_text(tmp_path / "cat/a.txt")  # same stem as a sample: still not media
    result = scan(tmp_path)
    assert len(result.samples) == 1 and result.samples[0].audio is None
    assert ignored_paths(result) == {str(tmp_path / "cat/notes.txt"), str(tmp_path / "cat/a.txt")}
    assert all(k["reason"] for k in result.ignored)


def test_empty_class_folder_reported(tmp_path):
    touch(tmp_path / "cat/a.png")
    (tmp_path / "empty").mkdir()
    write_text(tmp_path / "textonly/readme.txt")
    result = scan(tmp_path)
    assert [s.label for s in result.samples] == ["cat"]
    reasons = {k["path"]: k["reason"] for k in result.ignored}
    assert "empty" in reasons[str(tmp_path / "empty")]
    assert "empty" in reasons[str(tmp_path / "textonly")]


def test_upper_case_extensions(tmp_path):
    touch(tmp_path / "cat/A.PNG")
    touch(tmp_path / "cat/A.WAV")
    touch(tmp_path / "cat/B.JPEG")
    result = scan(tmp_path)
    s = by_stem(result)
    assert s["A"].image.endswith("A.PNG") and s["A"].audio.endswith("A.WAV")
    assert s["B"].image.endswith("B.JPEG")


def test_names_with_spaces_and_unicode(tmp_path):
    touch(tmp_path / "chat noir/été 1.png")
    touch(tmp_path / "chat noir/été 1.wav")
    touch(tmp_path / "犬/声 2.flac")
    result = scan(tmp_path)
    s = by_stem(result)
    assert s["été 1"].label == "chat noir"
    assert s["été 1"].image == str(tmp_path / "chat noir" / "été 1.png")
    assert s["été 1"].audio == str(tmp_path / "chat noir" / "été 1.wav")
    assert s["声 2"].label == "犬" and s["声 2"].image is None


def test_duplicate_stem_png_wins(tmp_path):
    touch(tmp_path / "cat/a.jpg")
    touch(tmp_path / "cat/a.png")
    touch(tmp_path / "cat/a.wav")
    touch(tmp_path / "cat/a.ogg")
    result = scan(tmp_path)
    (sample,) = result.samples
    assert sample.image == str(tmp_path / "cat/a.png")
    assert sample.audio == str(tmp_path / "cat/a.wav")
    reasons = {k["path"]: k["reason"] for k in result.skipped}
    assert set(reasons) == {str(tmp_path / "cat/a.jpg"), str(tmp_path / "cat/a.ogg")}
    assert "duplicate" in reasons[str(tmp_path / "cat/a.jpg")]
    assert "a.png" in reasons[str(tmp_path / "cat/a.jpg")]


def test_files_at_root_reported(tmp_path):
    touch(tmp_path / "cat/a.png")
    touch(tmp_path / "loose.png")
    write_text(tmp_path / "README.txt")
    result = scan(tmp_path)
    assert len(result.samples) == 1
    assert ignored_paths(result) == {str(tmp_path / "loose.png"), str(tmp_path / "README.txt")}


def test_nested_folder_ignored(tmp_path):
    touch(tmp_path / "cat/a.png")
    touch(tmp_path / "cat/sub/b.png")
    result = scan(tmp_path)
    assert [s.stem for s in result.samples] == ["a"]
    assert ignored_paths(result) == {str(tmp_path / "cat/sub")}


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_loops_and_dangling(tmp_path):
    touch(tmp_path / "cat/a.png")
    os.symlink(tmp_path / "cat", tmp_path / "cat/loop")  # a folder that contains itself
    os.symlink("self.wav", tmp_path / "cat/self.wav")  # a link to itself (ELOOP)
    os.symlink(tmp_path / "nowhere.png", tmp_path / "cat/gone.png")  # dangling
    os.symlink(tmp_path / "cat/a.png", tmp_path / "cat/b.png")  # a good link to a file
    result = scan(tmp_path)
    assert sorted(s.stem for s in result.samples) == ["a", "b"]
    assert skipped_paths(result) == {str(tmp_path / "cat/self.wav"), str(tmp_path / "cat/gone.png")}
    assert str(tmp_path / "cat/loop") in ignored_paths(result)


def test_folder_scan_records_settled_folders(tmp_path):
    touch(tmp_path / "d/cat/a.png")
    touch(tmp_path / "d/dog/b.wav")
    touch(tmp_path / "d/dog/sub/c.png")  # an ignored real folder: its listing does not matter
    write_text(tmp_path / "d/README.txt")
    root = tmp_path / "d"
    assert scan(root).dirs is None  # just written: a change in the same clock tick could hide
    settle(root)
    dirs = scan(root).dirs
    assert [p for p, _ in dirs] == [str(root), str(root / "cat"), str(root / "dog")]
    assert [m for _, m in dirs] == [os.stat(p).st_mtime_ns for p, _ in dirs]
    touch(root / "dog/b.png")  # the class folder changes now: not settled again
    assert scan(root).dirs is None


def test_folder_scan_records_nothing_where_listings_do_not_decide(tmp_path):
    touch(tmp_path / "cat/a.png")
    touch(tmp_path / "cat/a.jpg")  # a duplicate is skipped
    assert scan(settle(tmp_path)).dirs is None
    (tmp_path / "cat/a.jpg").unlink()
    assert scan(settle(tmp_path)).dirs is not None
    if hasattr(os, "symlink"):  # an ignored link may turn into something else unseen
        touch(tmp_path / "elsewhere/x.png")
        os.symlink(tmp_path / "elsewhere/x.png", tmp_path / "linked.png")
        assert scan(settle(tmp_path)).dirs is None


def test_missing_folder(tmp_path):
    with pytest.raises(CrossmodalError, match="no such file or folder"):
        scan(tmp_path / "nope")


def test_folder_without_class_folders(tmp_path):
    touch(tmp_path / "a.png")
    with pytest.raises(CrossmodalError, match="no class folders"):
        scan(tmp_path)


def test_file_that_is_not_a_manifest(tmp_path):
    with pytest.raises(CrossmodalError, match="not a manifest"):
        scan(touch(tmp_path / "a.png"))


# --- property: every media file accounted for exactly once ---------------------------------

MEDIA_EXTS = [e for e in IMAGE_EXTENSIONS + AUDIO_EXTENSIONS] + [".PNG", ".WAV", ".Jpg"]
stems = st.text(alphabet="abAB1 _-é", min_size=1, max_size=5).filter(lambda s: not is_hidden(s))
files_strategy = st.lists(
    st.tuples(st.sampled_from(["cat", "dog", "émeu"]), stems, st.sampled_from(MEDIA_EXTS)),
    max_size=25,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=files_strategy, extras=st.lists(stems, max_size=3))
def test_every_media_file_accounted_for_once(files, extras):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cat").mkdir()  # always one class folder, perhaps empty
        written = []
        for label, stem, ext in files:
            written.append(str(touch(root / label / f"{stem}{ext}")))
        for stem in extras:  # non-media noise
            write_text(root / "cat" / f"{stem}.txt")
        if not files:
            with pytest.raises(CrossmodalError, match="no image or sound file"):
                scan(root)
            return
        result = scan(root)
        used = [p for s in result.samples for p in (s.image, s.audio) if p is not None]
        accounted = Counter(used + [k["path"] for k in result.skipped])
        assert accounted == Counter(written)
        assert len(result.samples) == len({(label, stem) for label, stem, _ in files})
        for s in result.samples:
            assert s.image is None or modality_of(Path(s.image)) == "image"
            assert s.audio is None or modality_of(Path(s.audio)) == "audio"
            assert s.image is not None or s.audio is not None


# --- manifests ------------------------------------------------------------------------------


@pytest.fixture
def media(tmp_path):
    """A manifest folder with a few real (empty) media files next to it."""
    for name in ["img/a.png", "img/b.png", "snd/a.wav", "snd/c.wav", "snd/d.wav"]:
        touch(tmp_path / name)
    return tmp_path


def manifest_rows():
    return [
        {"image": "img/a.png", "audio": "snd/a.wav", "label": "cat", "group": "g1"},  # 1 both
        {"image": "", "audio": "snd/c.wav", "label": "dog", "group": ""},  # 2 audio only
        {"image": "img/b.png", "audio": "", "label": "", "group": "g2"},  # 3 unlabeled
        {"image": "img/missing.png", "audio": "snd/d.wav", "label": "cat", "group": ""},  # 4
        {"image": "img/missing.png", "audio": "", "label": "cat", "group": ""},  # 5 nothing
        {"image": "", "audio": "", "label": "dog", "group": ""},  # 6 empty row
    ]


def check_manifest_result(result, root: Path, manifest: Path):
    assert result.kind == "manifest"
    samples = result.samples
    assert len(samples) == 4
    a, c, b, d = samples
    assert (a.image, a.audio, a.label, a.group) == (
        str(root / "img/a.png"),
        str(root / "snd/a.wav"),
        "cat",
        "g1",
    )
    assert (c.image, c.audio, c.label, c.group) == (None, str(root / "snd/c.wav"), "dog", None)
    assert (b.image, b.audio, b.label, b.group) == (str(root / "img/b.png"), None, None, "g2")
    assert (d.image, d.audio, d.label) == (None, str(root / "snd/d.wav"), "cat")
    assert [s.stem for s in samples] == ["a", "c", "b", "d"]  # the files', as in a folder
    reasons = [(k["path"], k["reason"]) for k in result.skipped]
    missing = str(root / "img/missing.png")
    # Rows by their line in the file: the CSV's header, the JSONL's blank line come first.
    assert reasons.count((missing, "line 5: image file does not exist")) == 1  # row 4
    assert reasons.count((missing, "line 6: image file does not exist")) == 1  # row 5
    assert (f"{manifest}:6", "row has neither a usable image nor audio") in reasons
    assert (f"{manifest}:7", "row has neither a usable image nor audio") in reasons
    assert len(reasons) == 4


def test_csv_manifest(media, tmp_path, monkeypatch):
    manifest = write_csv(media / "data.csv", manifest_rows())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths are relative to the manifest, not the working folder
    check_manifest_result(scan(manifest), media, manifest)


def test_jsonl_manifest(media):
    rows = manifest_rows()
    rows[1]["image"] = None  # JSON null is a missing modality too
    rows[2]["label"] = None
    manifest = write_jsonl(media / "data.jsonl", rows)
    text = manifest.read_text()
    manifest.write_text(text.replace("\n", "\n\n", 1))  # blank lines are fine
    check_manifest_result(scan(manifest), media, manifest)


def test_manifest_absolute_paths_labels_column_and_bom(media):
    manifest = media / "abs.CSV"
    manifest.write_text(
        f"\ufeffimage,audio,labels\n{media / 'img/a.png'},{media / 'snd/a.wav'},owl\n",
        encoding="utf-8",
    )
    (s,) = scan(manifest).samples
    assert (s.image, s.audio, s.label) == (
        str(media / "img/a.png"),
        str(media / "snd/a.wav"),
        "owl",
    )


def test_file_urls_name_local_files_read_without_tensorflow(media):
    """`file:///...` in a manifest cell or on predict's command line is a local path (it was
    read through TensorFlow's gfile, which printed its C++ log lines)."""
    import subprocess
    import sys
    from urllib.parse import quote

    (media / "img" / "a b.png").write_bytes((media / "img" / "a.png").read_bytes())
    image_url = "file://" + quote(str(media / "img" / "a b.png"))
    sound_url = "file://localhost" + str(media / "snd" / "a.wav")
    manifest = media / "urls.csv"
    manifest.write_text(f"image,audio,label\n{image_url},{sound_url},owl\n")
    code = (
        "import sys\nfrom crossmodal.data.scan import scan, scan_inputs\n"
        f"(s,) = scan({str(manifest)!r}).samples\nprint(s.image)\nprint(s.audio)\n"
        f"(t,) = scan_inputs([{image_url!r}]).samples\nprint(t.image)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.splitlines()  # fmt: skip
    image, sound = str(media / "img" / "a b.png"), str(media / "snd" / "a.wav")
    assert out == [image, sound, image, "False"]

    from crossmodal.data.scan import _named_file
    from crossmodal.fsio import from_file_url
    from crossmodal.predict import check_output_file

    # predict --out naming an input given as a URL (pathlib spells it file:/...) is refused
    with pytest.raises(CrossmodalError, match="is one of the inputs"):
        check_output_file(manifest, [Path(f"file://{manifest}")])
    # a URL cell of a remote manifest is still the local file, not one beside the manifest
    assert _named_file(image_url, "gs://bucket/dir", True) == image
    assert from_file_url("file:///d/a%20b#1.png") == from_file_url("file:/d/a b#1.png")
    for left_alone in ("file://", "file:///", "file://host/x.png", "file:x.png", "gs://b/x"):
        assert from_file_url(left_alone) == left_alone


def test_jsonl_non_string_label(media):
    (s,) = scan(
        write_jsonl(media / "m.jsonl", [{"image": "img/a.png", "audio": None, "label": 3}])
    ).samples
    assert s.label == "3"


@pytest.mark.parametrize(
    "header, missing",
    [("image,label", "audio"), ("audio,label", "image"), ("image,audio", "label")],
)
def test_manifest_missing_column(media, header, missing):
    manifest = media / "m.csv"
    manifest.write_text(header + "\nimg/a.png,x\n")
    with pytest.raises(CrossmodalError, match=missing):
        scan(manifest)


def test_jsonl_missing_column(media):
    with pytest.raises(CrossmodalError, match="audio"):
        scan(write_jsonl(media / "m.jsonl", [{"image": "img/a.png", "label": "x"}]))


def test_manifest_not_utf8(media):
    manifest = media / "m.csv"
    manifest.write_bytes(b"image,audio,label\nimg/caf\xe9.png,,x\n")  # latin-1 bytes
    with pytest.raises(CrossmodalError, match="UTF-8"):
        scan(manifest)


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", '"text"'])
def test_jsonl_bad_line(media, line):
    manifest = media / "m.jsonl"
    manifest.write_text('{"image": "img/a.png", "audio": "", "label": "x"}\n' + line + "\n")
    result = scan(manifest)  # the bad line is skipped, named by its number
    assert [s.label for s in result.samples] == ["x"]
    assert [(k["path"], k["reason"]) for k in result.skipped] == [
        (f"{manifest}:2", "not a JSON object")
    ]
    manifest.write_text(line + "\n")  # no line at all: not JSON Lines
    with pytest.raises(CrossmodalError, match=":1: not a JSON object"):
        scan(manifest)


def test_manifest_without_usable_rows(media):
    manifest = write_csv(media / "m.csv", [{"image": "nope.png", "audio": "", "label": "x"}])
    with pytest.raises(CrossmodalError, match="no usable rows"):
        scan_manifest(manifest)


def test_manifest_rows_naming_the_same_pair_are_kept_once(media):
    """A repeated pair would weigh double and could land in both splits: the later row is
    skipped, named by its line; other labels for it are also a warning (the first row's label
    is used). Predict answers every row, repeats included."""
    rows = [
        {"image": "img/a.png", "audio": "snd/a.wav", "label": "cat"},  # line 2
        {"image": "img/a.png", "audio": "snd/a.wav", "label": "cat"},  # 3: the same
        {"image": "img/a.png", "audio": "snd/a.wav", "label": "dog"},  # 4: another label
        {"image": "img/b.png", "audio": "", "label": "cat;dog"},  # 5
        {"image": "img/b.png", "audio": "", "label": "dog; cat"},  # 6: the same labels
        {"image": "img/missing.png", "audio": "", "label": "cat"},  # 7
        {"image": "img/missing.png", "audio": "", "label": "cat"},  # 8: missing once is enough
        {"image": "img/a.png", "audio": "", "label": "cat"},  # 9: another pair
        {"image": "", "audio": "snd/a.wav", "label": ""},  # 10: unlabeled ...
        {"image": "", "audio": "snd/a.wav", "label": "dog"},  # 11: ... its label, no clash
        {"image": "img/b.png", "audio": "snd/c.wav", "label": ""},  # 12: unlabeled, then
        {"image": "img/b.png", "audio": "snd/c.wav", "label": "cat", "group": "g7"},  # 13
        {"image": "img/b.png", "audio": "snd/c.wav", "label": "dog"},  # 14: against 13's
        {"image": "img/b.png", "audio": "snd/c.wav", "label": ""},  # 15: no label, no clash
    ]
    manifest = write_csv(media / "m.csv", rows, columns=["image", "audio", "label", "group"])
    result = scan_manifest(manifest)
    assert [(s.image, s.audio, s.label) for s in result.samples] == [
        (str(media / "img/a.png"), str(media / "snd/a.wav"), "cat"),
        (str(media / "img/b.png"), None, "cat;dog"),
        (str(media / "img/a.png"), None, "cat"),
        (None, str(media / "snd/a.wav"), "dog"),
        (str(media / "img/b.png"), str(media / "snd/c.wav"), "cat"),
    ]
    assert result.samples[-1].group == "g7"  # the filled-in row's group with its label
    conflict = "rows 2 and 4 name the same pair with labels 'cat' and 'dog'; row 2's label is used"
    later = "rows 13 and 14 name the same pair with labels 'cat' and 'dog'; row 13's label is used"
    assert [(k["path"], k["reason"]) for k in result.skipped] == [
        (f"{manifest}:3", "rows 2 and 3 are the same pair"),
        (f"{manifest}:4", conflict),
        (f"{manifest}:6", "rows 5 and 6 are the same pair"),
        (str(media / "img/missing.png"), "line 7: image file does not exist"),
        (f"{manifest}:7", "row has neither a usable image nor audio"),
        (f"{manifest}:8", "rows 7 and 8 are the same pair"),
        (f"{manifest}:11", "rows 10 and 11 are the same pair; row 11's label is used"),
        (f"{manifest}:13", "rows 12 and 13 are the same pair; row 13's label is used"),
        (f"{manifest}:14", later),
        (f"{manifest}:15", "rows 13 and 15 are the same pair"),
    ]
    assert result.warnings == [f"{manifest}: {conflict}", f"{manifest}: {later}"]
    predicted = scan_inputs([manifest])
    assert len(predicted.samples) == len(rows) and predicted.warnings == []


# --- loose inputs (predict) -----------------------------------------------------------------


def test_scan_inputs_pairs_given_files(tmp_path):
    a_png, a_wav = touch(tmp_path / "x/a.png"), touch(tmp_path / "x/a.wav")
    b_png, b_wav = touch(tmp_path / "x/b.png"), touch(tmp_path / "y/b.wav")  # other folders
    notes = write_text(tmp_path / "x/notes.txt")
    result = scan_inputs([a_png, str(a_wav), b_png, b_wav, notes, tmp_path / "missing.wav"])
    assert result.kind == "files"
    got = {(s.stem, s.image, s.audio, s.label) for s in result.samples}
    assert len(result.samples) == 3
    assert got == {
        ("a", str(a_png), str(a_wav), None),
        ("b", None, str(b_wav), None),
        ("b", str(b_png), None, None),
    }
    # A file named on the command line is answered, even when it is not media (in a folder
    # such files are passed over: see the next test).
    assert [(k["path"], k["reason"].split(" (")[0]) for k in result.skipped] == [
        (str(notes), "not an image, sound or manifest file"),
        (str(tmp_path / "missing.wav"), "does not exist"),
    ]
    assert ignored_paths(result) == set()


def test_scan_inputs_walks_folders(tmp_path):
    touch(tmp_path / "d/a.png")
    touch(tmp_path / "d/a.WAV")
    touch(tmp_path / "d/sub/deeper/c.flac")
    touch(tmp_path / "d/.hidden/h.png")
    touch(tmp_path / "d/.h.png")
    os.symlink(tmp_path / "d", tmp_path / "d/sub/loop")  # a loop back to the top
    result = scan_inputs([tmp_path / "d"])
    got = sorted((s.stem, s.image is not None, s.audio is not None) for s in result.samples)
    assert got == [("a", True, True), ("c", False, True)]
    assert result.skipped == []
    # A named folder holding only hidden or non-media files is said, not passed over.
    touch(tmp_path / "texts/notes.txt")
    touch(tmp_path / "texts/.h.png")
    touch(tmp_path / "texts/sub/more.txt")
    result = scan_inputs([tmp_path / "d", tmp_path / "texts"])
    assert len(result.samples) == 2
    assert result.skipped == [
        {"path": str(tmp_path / "texts"), "reason": "a folder with no image or sound file in it"}
    ]


def test_scan_inputs_keep_a_second_image_for_a_stem_apart_from_the_skipped(tmp_path):
    """For predict, a.jpg beside a.png is readable: not a skipped input (an error row, exit 3)
    but a duplicate that predict warns about; a dataset still lists it as skipped."""
    touch(tmp_path / "d/a.png")
    touch(tmp_path / "d/a.jpg")
    touch(tmp_path / "d/a.wav")
    result = scan_inputs([tmp_path / "d"])
    assert [(s.image, s.audio) for s in result.samples] == [
        (str(tmp_path / "d/a.png"), str(tmp_path / "d/a.wav"))
    ]
    assert result.skipped == []
    assert result.duplicates == [
        {
            "path": str(tmp_path / "d/a.jpg"),
            "reason": "duplicate image for stem 'a': a.png is used",
        }
    ]
    for name in ("a.png", "a.jpg", "a.wav"):
        touch(tmp_path / "data/cat" / name)
    dataset = scan(tmp_path / "data")
    assert skipped_paths(dataset) == {str(tmp_path / "data/cat/a.jpg")}
    assert dataset.duplicates == []


def test_scan_inputs_same_file_twice_is_one_input(tmp_path):
    a = touch(tmp_path / "d/a.png")
    result = scan_inputs([tmp_path / "d", a, str(a)])
    assert [(s.stem, s.image) for s in result.samples] == [("a", str(a))]
    assert result.skipped == []


def test_scan_inputs_relative_spellings_are_one_input(tmp_path, monkeypatch):
    touch(tmp_path / "a.png")
    touch(tmp_path / "d/b.png")
    touch(tmp_path / "d/b.wav")
    monkeypatch.chdir(tmp_path)
    result = scan_inputs([".", "a.png", "./d/b.png", "d", "d/"])
    assert [(s.stem, s.image, s.audio) for s in result.samples] == [
        ("a", "a.png", None),
        ("b", "d/b.png", "d/b.wav"),
    ]
    assert result.skipped == []


def test_scan_inputs_with_manifest(media):
    manifest = write_csv(media / "m.csv", manifest_rows())
    result = scan_inputs([manifest, media / "img/b.png"])
    # For predict, a row naming a missing file keeps it (its row will say so, as for a folder
    # pair): rows 1-5 and the loose file; only row 6, which names no file, is skipped.
    assert len(result.samples) == 6
    assert [s.image for s in result.samples[3:5]] == [str(media / "img/missing.png")] * 2
    assert [k["reason"] for k in result.skipped] == ["row has neither a usable image nor audio"]
    # No label column is needed to predict; a manifest that cannot be used is one skipped
    # input, and the other inputs stay.
    plain = write_text(media / "plain.csv", "image,audio\nimg/a.png,\n")
    broken = write_text(media / "broken.jsonl", "not json\n")
    result = scan_inputs([plain, broken])
    assert [s.image for s in result.samples] == [str(media / "img/a.png")]
    assert [(k["path"], k["reason"]) for k in result.skipped] == [
        (str(broken), "line 1: not a JSON object")
    ]


def test_a_bad_jsonl_line_is_skipped_and_named_the_other_lines_are_read(media):
    """As a CSV row with extra cells is: each JSON line stands alone, so one that does not
    parse (or is not an object) costs that row only."""
    manifest = write_text(
        media / "m.jsonl",
        '{"image": "img/a.png", "audio": "snd/a.wav", "label": "cat"}\n'
        "{bad json\n"
        "[1, 2]\n"
        '{"image": "img/b.png", "audio": "", "label": "dog"}\n',
    )
    result = scan_manifest(manifest)
    assert [s.label for s in result.samples] == ["cat", "dog"]
    assert [(k["path"], k["reason"]) for k in result.skipped] == [
        (f"{manifest}:2", "not a JSON object"),
        (f"{manifest}:3", "not a JSON object"),
    ]
    assert [s.label for s in scan_inputs([manifest]).samples] == ["cat", "dog"]  # predict's


def test_manifest_columns_in_any_case_and_rows_named_by_line(media, tmp_path, monkeypatch):
    """' Image ' is the image column; a row with an unquoted comma in a cell is skipped with
    its line, not read with a cell lost; '~' is the home folder; a JSONL list of labels is a
    multi-label cell; stems are the files' own, so an anchored --group-regex matches."""
    from crossmodal.splits import compile_group_regex, group_of

    monkeypatch.setenv("HOME", str(media))
    csv_text = (
        " Image ,AUDIO,Label\n"
        "img/a.png,snd/a.wav,cat\n"
        "img/b.png,,big,cat\n"  # an unquoted comma: four cells
        "~/img/b.png,~/snd/c.wav,dog\n"
    )
    result = scan(write_text(tmp_path / "m.csv", csv_text))
    assert [(s.image, s.audio, s.label) for s in result.samples] == [
        (str(media / "img/a.png"), str(media / "snd/a.wav"), "cat"),
        (str(media / "img/b.png"), str(media / "snd/c.wav"), "dog"),
    ]
    assert result.skipped == [
        {
            "path": f"{tmp_path / 'm.csv'}:3",
            "reason": "4 cells where the header names 3 (quote a cell that holds a comma)",
        }
    ]
    pattern = compile_group_regex(r"^([a-z])$")
    assert [group_of({"stem": s.stem, "group": None}, pattern) for s in result.samples] == [
        "a",
        "b",
    ]

    jsonl = write_jsonl(
        tmp_path / "m.jsonl", [{"IMAGE": str(media / "img/a.png"), "labels": ["cat", "red"]}]
    )
    with pytest.raises(CrossmodalError, match=r"lacks column\(s\) audio \(it has: IMAGE, labels\)"):
        scan(jsonl)
    jsonl = write_jsonl(
        tmp_path / "m.jsonl",
        [{"IMAGE": str(media / "img/a.png"), "Audio": None, "labels": ["cat", "red"]}],
    )
    assert [s.label for s in scan(jsonl).samples] == ["cat;red"]


def test_manifest_errors_name_their_columns_and_first_reason(tmp_path):
    semicolons = write_text(tmp_path / "s.csv", "image;audio;label\na.png;a.wav;cat\n")
    with pytest.raises(CrossmodalError, match=r"\(it has: image;audio;label\)"):
        scan(semicolons)
    twice = write_text(tmp_path / "t.csv", "image,Image,audio,label\n")
    with pytest.raises(CrossmodalError, match="column.s. image appear more than once"):
        scan(twice)
    nothing = write_text(tmp_path / "n.csv", "image,audio,label\nnope.png,,cat\n")
    with pytest.raises(CrossmodalError, match=r"no usable rows \(such as .*nope.png: line 2: "):
        scan(nothing)


def test_a_folder_whose_class_folders_hold_no_media_says_what_it_found(tmp_path):
    """DATA pointed one level too high (DATA/train/<label>/...): not "every file failed to
    decode", which nothing did."""
    touch(tmp_path / "train/cat/a.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CrossmodalError, match=r"no image or sound file in any class folder") as e:
        scan(tmp_path)
    assert "nested folder" in str(e.value) and str(tmp_path / "train/cat") in str(e.value)
