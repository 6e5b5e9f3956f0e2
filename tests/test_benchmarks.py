"""Smoke tests of benchmarks/run.py's helpers (no benchmark is run, TensorFlow is not needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("run")


def test_importing_the_script_does_not_import_tensorflow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_check_targets(bench):
    targets = {"a": (">=", 1.0), "b": ("<=", 2.0), "c": ("<", 1.5)}
    assert bench.check_targets({"a": 1.0, "b": 2.0, "c": 1.49}, targets) == []
    misses = bench.check_targets({"a": 0.99, "b": 2.01, "c": None}, targets)
    assert [m.split()[0] for m in misses] == ["a", "b", "c:"]
    assert "not measured" in misses[2]
    assert bench.check_targets({}, {"a": (">=", 1.0)}) == ["a: not measured (target >= 1.0)"]


def test_all_misses_checks_the_nested_avdigits_figures(bench):
    results = {key: (0.0 if op.startswith("<") else 1e9) for key, (op, _) in bench.TARGETS.items()}
    assert bench.all_misses(results) == []
    results["avdigits"] = {"preprocess_vs_decode": 0.5, "preprocess_cache_speedup": 100.0}
    assert bench.all_misses(results) == [
        "avdigits.preprocess_vs_decode = 0.5 misses its target (>= 1.0)"
    ]
    results["avdigits"] = {"error": "unreadable"}  # reported, not judged
    assert bench.all_misses(results) == []


def test_ratios_and_rates(bench):
    assert bench.ratio(3.0, 2.0) == 1.5
    assert bench.ratio(1.0, 0.0) is None
    assert bench.ratio(None, 1.0) is None
    assert bench.rate_by_difference(1001, 6.0, 1, 2.0) == 250.0
    assert bench.rate_by_difference(10, 1.0, 1, 2.0) is None  # noise larger than the work
    assert bench.best([3.0, 1.0, 2.0]) == 1.0
    assert bench.median([3.0, 1.0, 2.0]) == 2.0


def test_alternate_interleaves_the_sides(bench):
    calls = []
    out = bench.alternate(2, lambda: calls.append("a") or 1.0, lambda: calls.append("b") or 2.0)
    assert calls == ["a", "b", "a", "b"]
    assert out == [[1.0, 1.0], [2.0, 2.0]]


def test_run_measured_reports_wall_exit_code_and_peak_memory(bench):
    wall, code, rss = bench.run_measured(
        [sys.executable, "-c", "import sys; print('x' * 100000); sys.exit(3)"]
    )
    assert code == 3
    assert wall > 0
    assert rss > 1 << 20  # an interpreter is more than a megabyte


def test_generated_pairs_scan_and_decode(bench, tmp_path):
    from crossmodal.data.scan import scan

    root = bench.generate_pairs(tmp_path / "data", 12, classes=3, size=16, seconds=(0.2, 0.3))
    samples = scan(root).samples
    assert len(samples) == 12
    assert all(s.image and s.audio for s in samples)
    assert sorted({s.label for s in samples}) == ["0", "1", "2"]
    took = bench.decode_loop(
        samples, height=16, width=16, channels=1, sample_rate=16000, num_samples=4000
    )
    assert took > 0
    again = bench.generate_pairs(tmp_path / "again", 12, classes=3, size=16, seconds=(0.2, 0.3))
    first = sorted(p.read_bytes() for p in root.rglob("*.wav"))
    assert first == sorted(p.read_bytes() for p in again.rglob("*.wav"))  # deterministic


def test_parse_args_modes(bench):
    full = bench.parse_args([])
    assert (full.pairs, full.rss, full.quick) == (2000, (1000, 10_000), False)
    quick = bench.parse_args(["--quick"])
    assert quick.repeats == 1 and quick.pairs < full.pairs and quick.rss[1] < full.rss[1]
    assert full.members is None and bench.parse_args(["--members", "2"]).members == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--members", "0"])


def test_every_target_is_documented(bench):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    for key in [
        *bench.TARGETS,
        "help_seconds",
        "train_samples_per_second",
        "compute_utilization",
        "xla_speedup",
    ]:
        assert f"`{key}`" in bench.__doc__, key
        assert f"`{key}`" in readme, key


def test_benchmark_config_has_a_real_batch_size(bench):
    """TrainConfig's batch size 0 means "auto" (decided by `train` from the data); the
    benchmark builds its networks and optimizers itself, so it must fix one."""
    from types import SimpleNamespace

    prep = SimpleNamespace(
        info={
            "image": {"height": 28, "width": 28, "channels": 1},
            "audio": {"sample_rate": 16000, "clip_seconds": 1.0},
        },
        classes=["a", "b"],
    )
    cfg = bench._config(prep)
    assert cfg.train.batch_size == bench.BATCH_SIZE > 0
    assert cfg.image.height == 28 and cfg.labels == ("a", "b")


def test_loso_manifests_and_held_out_folder(tmp_path):
    """benchmarks/loso.py: the held-out speaker's pairs, and only theirs, in each output."""
    loso = load_benchmark("loso")
    data = tmp_path / "data"
    for label in ("0", "1"):
        for speaker in ("ann", "bob"):
            for i in range(2):
                (data / label).mkdir(parents=True, exist_ok=True)
                (data / label / f"{speaker}_{label}_{i}.wav").write_bytes(b"w")
                (data / label / f"{speaker}_{label}_{i}.png").write_bytes(b"p")
    assert loso.speakers_of(data) == ["ann", "bob"]
    folder = loso.held_out_folder(data, "bob", tmp_path / "bob")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
    assert len(names) == 8 and all(n.split("/")[1].startswith("bob_") for n in names)
    held = loso.held_out_manifest(data, "bob", tmp_path / "h.csv").read_text().splitlines()
    assert len(held) == 1 + 4 and all("bob_" in row for row in held[1:])
    others = loso.speakers_manifest(data, {"ann"}, tmp_path / "o.csv").read_text().splitlines()
    assert len(others) == 1 + 4 and not any("bob_" in row for row in others)
    transfer = loso.transfer_manifest(data, "bob", tmp_path / "t.csv").read_text().splitlines()
    rows = [row.split(",") for row in transfer[1:]]
    assert len(rows) == 4 and not any("bob_" in cell for row in rows for cell in row)
    assert all(bool(label) != bool(audio) for _, audio, label in rows)  # labeled image or pair
    everyone = ["ann", "bob", "cy", "dee"]
    assert loso.training_speakers(everyone, "bob") == {"ann", "cy", "dee"}
    assert loso.training_speakers(everyone, "cy", 2) == {"dee", "ann"}  # the next two, wrapping
    assert all(s not in loso.training_speakers(everyone, s, 1) for s in everyone)
    noisy = loso.held_out_folder(data, "bob", tmp_path / "noisy")
    mixed = loso.mixed_manifest(noisy, folder, tmp_path / "m.csv").read_text().splitlines()
    pairs = [row.split(",") for row in mixed[1:]]
    assert len(pairs) == 4
    for image, audio, label in pairs:  # the image from one copy, the sound from the other
        assert image.startswith(str(noisy)) and audio.startswith(str(folder))
        assert Path(image).is_file() and Path(audio).is_file()
        assert Path(image).parent.name == Path(audio).parent.name == label
    (noisy / "1" / "bob_1_0.png").unlink()  # a pair without its image is refused, not halved
    with pytest.raises(FileNotFoundError, match="bob_1_0.png"):
        loso.mixed_manifest(noisy, folder, tmp_path / "m.csv")


def test_audio_screen_puts_the_candidate_on_the_model_folders_settings(tmp_path):
    """benchmarks/audio_screen.py: the base's resolved settings (a model folder or a config.json),
    the candidate's TOML on top, then the seed; a folder without config.json is one line and exit
    2, before TensorFlow."""
    from crossmodal.config import AudioConfig, RunConfig
    from crossmodal.errors import CrossmodalError
    from crossmodal.settings import merge

    script = ROOT / "benchmarks" / "audio_screen.py"
    screen = load_benchmark("audio_screen")

    model = tmp_path / "model"
    model.mkdir()
    RunConfig(audio=AudioConfig(clip_seconds=0.8, fmax=3800.0), labels=("0", "1")).save(
        model / "config.json"
    )
    candidate = tmp_path / "candidate.toml"
    candidate.write_text("[audio]\ncrop_threshold_db = 35\n")
    cfg = screen.screen_config(model, candidate, seed=3)
    assert cfg.audio.crop_threshold_db == 35
    assert (cfg.audio.clip_seconds, cfg.audio.fmax, cfg.labels) == (0.8, 3800.0, ("0", "1"))
    assert cfg.train.seed == 3
    assert screen.screen_config(model, None, seed=0).audio.crop_threshold_db == 25.0
    # A config.json itself serves as well as its folder.
    assert screen.screen_config(model / "config.json", candidate, seed=3) == cfg
    # The shipped base: the settings avdigits resolves, every other one today's default.
    shipped = screen.screen_config(screen.DEFAULT_BASE, None, seed=0)
    assert shipped.labels == tuple("0123456789")
    assert (shipped.audio.clip_seconds, shipped.audio.fmax, shipped.train.batch_size) == (
        1.05,
        3800.0,
        32,
    )
    resolved = {
        "audio": {"clip_seconds": 1.05, "fmax": 3800.0},
        "image": {"height": 28, "width": 28},
        "train": {"batch_size": 32},
    }
    assert shipped == RunConfig.from_dict(
        merge(RunConfig(labels=tuple("0123456789")).to_dict(), resolved)
    )
    (tmp_path / "bad.toml").write_text("[audio\n")
    with pytest.raises(CrossmodalError, match="cannot read"):
        screen.screen_config(tmp_path / "bad.toml", None, seed=0)
    assert screen.speaker_of(Path("7/nicolas_12.wav")) == "nicolas"

    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing'} is no settings file nor a folder with one"
    ]
    candidate.write_text("[audio]\ncrop_threshold_dbb = 35\n")  # a misspelt setting
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(model),
            "--config",
            str(candidate),
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "crop_threshold_dbb" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_views_settings_parse_crops_and_warps():
    """benchmarks/views.py: CROPS/WARPS, either side empty; the default is the config's."""
    from crossmodal.config import DEFAULT_TEST_CROPS_DB, DEFAULT_TEST_FREQ_WARPS

    views = load_benchmark("views")
    assert views.parse_setting("20,30,35/0.95,1.05") == (
        DEFAULT_TEST_CROPS_DB,
        DEFAULT_TEST_FREQ_WARPS,
    )
    assert views.parse_setting("/") == ((), ())
    assert views.parse_setting("20,30,35/") == ((20.0, 30.0, 35.0), ())
    assert views.parse_setting("/0.9") == ((), (0.9,))


def _audio_screen():
    return load_benchmark("audio_screen")


def test_audio_screen_mixup_mixes_clips_and_labels_with_one_share_per_row():
    import numpy as np

    screen = _audio_screen()
    n, batch = 10, 4
    waves = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i = i
    targets = np.eye(n, dtype=np.float32)  # one class per clip: the label shows the partner
    batches = screen.mixup_batches(waves, targets, batch, alpha=0.4, seed=0)
    seen = set()
    for _ in range(6):  # three epochs of two full batches (the last 2 clips are left over)
        x, y = next(batches)
        assert x.shape == (batch, 3) and y.shape == (batch, n)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
        for row, label in zip(x, y, strict=True):
            own = int(label.argmax())
            lam = label[own]
            assert lam >= 0.5  # the row's own clip keeps the larger share
            partner = np.flatnonzero((label > 0) & (np.arange(n) != own))
            other = partner[0] if len(partner) else own  # paired with itself: lam is all of it
            expected = lam * own + (1 - lam) * other
            np.testing.assert_allclose(row, expected, rtol=1e-5)
            seen.add(own)
    assert len(seen) > batch  # batches are reshuffled: more than one batch's clips are used


def test_audio_screen_gradient_reversal_is_identity_forward_and_negates_backward():
    import tensorflow as tf

    layer = _audio_screen().gradient_reversal(0.3)
    x = tf.constant([[1.0, -2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([[2.0, 5.0]]))
    assert y.numpy().tolist() == x.numpy().tolist()
    assert tape.gradient(loss, x).numpy().tolist()[0] == pytest.approx([-0.6, -1.5])


def test_audio_screen_supcon_pulls_one_digit_together_across_voices_only():
    import tensorflow as tf

    loss = _audio_screen().cross_speaker_supcon(0.1)
    tags = tf.constant([[0, 0], [0, 1], [1, 0], [1, 1]], tf.float32)  # (label, speaker)
    unit = lambda rows: tf.math.l2_normalize(tf.constant(rows, tf.float32), axis=1)  # noqa: E731
    by_digit = unit([[1, 0], [1, 0.01], [0, 1], [0.01, 1]])  # each digit's two voices together
    by_voice = unit([[1, 0], [0, 1], [1, 0.01], [0.01, 1]])  # each voice's two digits together
    assert float(loss(tags, by_digit)) < 0.01
    assert float(loss(tags, by_voice)) > 5.0
    # A clip whose digit no other voice says in the batch has no positive and adds nothing.
    same_voice = tf.constant([[0, 0], [0, 0], [1, 1], [1, 1]], tf.float32)
    assert float(loss(same_voice, by_voice)) == 0.0


def test_ceiling_combines_log_probabilities_and_counts_shared_errors():
    """benchmarks/ceiling.py: models averaged as summed log-probabilities; per sample, how many
    models are wrong, and which samples all of them miss."""
    import numpy as np

    ceiling = load_benchmark("ceiling")
    labels = np.array([0, 1, 1])
    sure = np.log(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]))  # right on 0 and 2
    other = np.log(np.array([[0.6, 0.4], [0.1, 0.9], [0.45, 0.55]]))  # right on all three
    assert ceiling.combined_accuracy([sure], labels) == pytest.approx(2 / 3)
    assert ceiling.combined_accuracy([sure, other], labels) == 1.0  # 0.6*0.1 < 0.4*0.9 on row 1
    np.testing.assert_allclose(np.exp(ceiling.log_softmax(sure * 3)).sum(axis=1), 1.0)
    histogram, all_wrong = ceiling.shared_errors([np.array([1, 0, 1]), np.array([1, 1, 0])], labels)
    assert histogram == [0, 2, 1] and all_wrong.tolist() == [True, False, False]
    histogram, all_wrong = ceiling.shared_errors([np.array([1, 0, 1]), np.array([1, 0, 1])], labels)
    assert histogram == [1, 0, 2] and all_wrong.tolist() == [True, True, False]
