"""Tests for crossmodal.config: round trips, strictness and derived audio properties."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from crossmodal.config import (
    FORMAT_VERSION,
    AudioConfig,
    AugmentConfig,
    ImageConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    saved_settings,
)
from crossmodal.errors import CrossmodalError


def custom_config() -> RunConfig:
    """Every section changed from its default, tuples included."""
    return RunConfig(
        audio=AudioConfig(sample_rate=22_050, clip_seconds=2.5, num_mels=40, fmax=9_000.0),
        image=ImageConfig(height=48, width=24, channels=3),
        augment=AugmentConfig(enabled=False, audio_noise_snr_db=(1.5, 9.0)),
        model=ModelConfig(fusion="gated", filters=(8, 16), embed_dim=16),
        train=TrainConfig(epochs=3, val_groups=("spk1", "spk2"), group_regex=r"(spk\d+)_"),
        labels=("cat", "dog", "été"),
    )


@pytest.mark.parametrize("cfg", [RunConfig(), custom_config()], ids=["default", "custom"])
def test_dict_round_trip(cfg):
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_to_dict_is_json_ready_and_tuples_survive_json():
    cfg = custom_config()
    data = json.loads(json.dumps(cfg.to_dict()))  # tuples come back as lists
    assert data["labels"] == ["cat", "dog", "été"]
    back = RunConfig.from_dict(data)
    assert back == cfg  # a list would not compare equal to the original tuple
    assert isinstance(back.labels, tuple)
    assert isinstance(back.model.filters, tuple)
    assert isinstance(back.train.val_groups, tuple)
    assert isinstance(back.augment.audio_noise_snr_db, tuple)
    assert back.augment.audio_noise_snr_db == (1.5, 9.0)


def test_save_load_round_trip(tmp_path):
    cfg = custom_config()
    path = tmp_path / "config.json"
    cfg.save(path, classes_seen=3)
    raw = json.loads(path.read_text())
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["classes_seen"] == 3  # extras are written ...
    assert RunConfig.load(path) == cfg  # ... and ignored on load


def test_from_dict_partial_uses_defaults():
    cfg = RunConfig.from_dict({"audio": {"sample_rate": 8_000}, "labels": ["a"]})
    assert cfg.audio.sample_rate == 8_000
    assert cfg.audio.num_mels == AudioConfig().num_mels
    assert cfg.image == ImageConfig()
    assert cfg.labels == ("a",)
    assert cfg.num_classes == 1


@pytest.mark.parametrize(
    "data, word",
    [
        ({"bogus": 1}, "bogus"),
        ({"audio": {"sample_rte": 8000}}, "sample_rte"),
        ({"train": {"epochs": 2, "val_group": ["x"]}}, "val_group"),
    ],
)
def test_unknown_keys_rejected(data, word):
    with pytest.raises(CrossmodalError, match=word):
        RunConfig.from_dict(data)


def test_section_must_be_a_table():
    with pytest.raises(CrossmodalError, match="audio"):
        RunConfig.from_dict({"audio": [1, 2]})


def test_load_rejects_unknown_nested_key(tmp_path):
    path = tmp_path / "config.json"
    data = RunConfig().to_dict()
    data["model"]["fusoin"] = "concat"
    path.write_text(json.dumps(data))
    with pytest.raises(CrossmodalError, match="fusoin"):
        RunConfig.load(path)


@pytest.mark.parametrize("content", [None, "{not json", ""])
def test_load_unreadable(tmp_path, content):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CrossmodalError, match="cannot read config"):
        RunConfig.load(path)


def test_frozen_and_replace():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.labels = ("x",)  # type: ignore[misc]
    new = cfg.replace(labels=("x", "y"))
    assert new.num_classes == 2
    assert cfg.labels == ()  # the original is untouched


@pytest.mark.parametrize(
    "rate, clip, expected",
    [(16_000, 1.0, 16_000), (16_000, 0.5, 8_000), (8_000, 0.35, 2_800), (22_050, 2.0, 44_100)],
)
def test_num_samples(rate, clip, expected):
    assert AudioConfig(sample_rate=rate, clip_seconds=clip).num_samples == expected


@pytest.mark.parametrize(
    "rate, frame, hop",
    [(16_000, 0.025, 0.010), (8_000, 0.025, 0.010), (22_050, 0.032, 0.008), (44_100, 0.02, 0.01)],
)
def test_frame_and_fft_lengths(rate, frame, hop):
    a = AudioConfig(sample_rate=rate, frame_seconds=frame, hop_seconds=hop)
    assert a.frame_length == round(rate * frame)
    assert a.frame_step == round(rate * hop)
    n = a.fft_length
    assert n & (n - 1) == 0  # a power of two
    assert a.frame_length <= n < 2 * a.frame_length  # the smallest one that fits


def test_fft_length_exact_power_of_two():
    a = AudioConfig(sample_rate=16_000, frame_seconds=0.032)  # 512 samples
    assert a.frame_length == 512
    assert a.fft_length == 512
    assert AudioConfig(sample_rate=16_000, frame_seconds=0.025).fft_length == 512  # 400 -> 512


@pytest.mark.parametrize("clip", [0.025, 0.1, 0.333, 1.0, 2.0])
@pytest.mark.parametrize("rate", [8_000, 16_000])
def test_num_frames_counts_full_windows(rate, clip):
    a = AudioConfig(sample_rate=rate, clip_seconds=clip)
    # Count by brute force: windows start at 0, step, 2*step, ... and must fit entirely.
    starts = range(0, a.num_samples - a.frame_length + 1, a.frame_step)
    assert a.num_frames == len(starts)


def test_default_num_frames_by_hand():
    # 16000 samples, 400-sample window, 160 hop: 1 + (16000 - 400) // 160 = 98
    assert AudioConfig().num_frames == 98


@pytest.mark.parametrize(
    "rate, fmax, expected",
    [(16_000, 7_800.0, 7_800.0), (8_000, 7_800.0, 4_000.0), (11_025, 6_000.0, 5_512.5)],
)
def test_effective_fmax_capped_at_nyquist(rate, fmax, expected):
    assert AudioConfig(sample_rate=rate, fmax=fmax).effective_fmax == expected


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"data": 5}, "config.data: expected text, got 5"),
        ({"train": {"epochs": "ten"}}, 'config.train.epochs: expected a whole number, got "ten"'),
        ({"train": {"epochs": True}}, "config.train.epochs: expected a whole number, got true"),
        ({"train": {"epochs": 0}}, "train.epochs must be at least 1"),
        ({"train": {"batch_size": -3}}, "train.batch_size must be 0 (auto) or more"),
        ({"train": {"val_fraction": 3.0}}, "train.val_fraction must be in [0, 1)"),
        ({"train": {"val_groups": "nicolas"}}, "config.train.val_groups: expected a list"),
        ({"train": {"clipnorm": "high"}}, "config.train.clipnorm: expected a number"),
        ({"audio": {"sample_rate": 0}}, "audio.sample_rate must be 1000 to 384000 Hz"),
        ({"train": {"seed": -1}}, "train.seed must be 0 to 4294967231"),
        ({"train": {"seed": 99999999999}}, "train.seed must be 0 to 4294967231"),
        ({"audio": {"sample_rate": 10**9}}, "audio.sample_rate must be 1000 to 384000 Hz"),
        ({"audio": {"clip_seconds": 1e300}}, "audio.clip_seconds must be above 0 and at most 600"),
        ({"image": {"height": 100_000}}, "image height and width must be 1 to 1024"),
        ({"audio": {"utterance_norm": "loud"}}, "unknown utterance_norm 'loud'"),
        ({"image": {"channels": 2}}, "image.channels must be 1 or 3"),
        (
            {"model": {"filters": [32, "x"]}},
            'config.model.filters: expected a whole number, got "x"',
        ),
        ({"model": {"dropout": 1.0}}, "model.dropout must be in [0, 1)"),
        ({"model": {"members": 0}}, "model.members must be 1 to 16"),
        ({"model": {"members": 17}}, "model.members must be 1 to 16"),
        ({"model": {"members": 2.5}}, "config.model.members: expected a whole number"),
        ({"audio": {"crop_views_db": [20, 0]}}, "audio.crop_views_db needs crop_frames > 0"),
        (
            {"audio": {"crop_views_db": [20], "crop_frames": 0}},
            "audio.crop_views_db needs crop_frames > 0",
        ),
        ({"augment": {"audio_noise_snr_db": [1, 2, 3]}}, "expected 2 values, got 3"),
        ({"audio": {"fmin": 9000.0}}, "audio.fmin (9000 Hz) must be at least 0 and below fmax"),
        ({"audio": {"fmin": 500.0, "fmax": 400.0}}, "below fmax (400 Hz)"),
        ({"audio": {"fmin": -1.0}}, "audio.fmin (-1 Hz) must be at least 0"),
        ({"audio": {"log_offset": 0.0}}, "audio.log_offset must be above 0"),
        ({"audio": {"crop_threshold_db": -5.0}}, "audio.crop_threshold_db must be above 0"),
        ({"augment": {"image_cutout_prob": 5.0}}, "augment.image_cutout_prob must be in [0, 1]"),
        ({"augment": {"audio_babble_prob": -1.0}}, "augment.audio_babble_prob must be in [0, 1]"),
        ({"augment": {"image_zoom": 1.5}}, "augment.image_zoom must be in [0, 1)"),
        ({"augment": {"spec_time_mask": -2}}, "augment.spec_time_mask must be 0 (off) or more"),
        ({"augment": {"noise_dir_snr_db": [20, 0]}}, "noise_dir_snr_db must be [lowest, highest]"),
        ({"augment": {"audio_babble_voices": 0}}, "audio_babble_voices must be 1 or more"),
        ({"model": {"aux_loss_weight": -0.5}}, "model.aux_loss_weight must be 0 or more"),
        ({"model": {"audio_feature_dropout": 1.0}}, "model.audio_feature_dropout must be in"),
        ({"model": {"freq_instance_norm": 2.0}}, "model.freq_instance_norm must be in [0, 1]"),
        ({"train": {"weight_decay": -1e-4}}, "train.weight_decay must be 0 or more"),
        ({"train": {"momentum": 1.0}}, "train.momentum must be in [0, 1)"),
        ({"train": {"warmup_epochs": -1}}, "train.warmup_epochs must be 0 or more"),
        ({"train": {"clipnorm": -1}}, "train.clipnorm must be 0 or more"),
        ({"train": {"distill_weight": -1}}, "train.distill_weight must be 0 or more"),
        ({"train": {"contrastive_temperature": 0}}, "contrastive_temperature must be above 0"),
        ({"train": {"pseudo_label_threshold": 1.5}}, "pseudo_label_threshold must be in [0, 1]"),
    ],
)
def test_values_of_the_wrong_type_or_range_are_one_clear_error(settings, message):
    """A config file's values are checked when read, not when training trips over them."""
    with pytest.raises(CrossmodalError) as caught:
        RunConfig.from_dict(settings)
    assert message in str(caught.value)


def test_typed_reading_keeps_what_it_should():
    cfg = RunConfig.from_dict(
        {"train": {"learning_rate": 1, "clipnorm": None, "val_groups": ["a"]}, "data": None}
    )
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.train.clipnorm is None and cfg.train.val_groups == ("a",) and cfg.data is None


@pytest.mark.parametrize(
    "section, name, then, now, other",
    [
        ("augment", "image_noise_clip", False, True, ("image_noise", 0.1)),
        ("model", "members", 1, 2, ("dropout", 0.2)),
        ("audio", "test_crops_db", (), (20.0, 30.0, 35.0), ("num_mels", 32)),
        ("audio", "test_freq_warps", (), (0.95, 1.05), ("num_mels", 32)),
    ],
)
def test_a_config_saved_before_a_setting_existed_reads_back_as_that_run_was(
    tmp_path, section, name, then, now, other
):
    """`augment.image_noise_clip`, `model.members`, `audio.test_crops_db` and
    `audio.test_freq_warps` came after the first model folders: a saved config without one
    means the run did without it (noise not clipped, one network, one crop, no warp), wherever
    a saved config is read back (model folder, `train --config MODEL/config.json`); a user's
    own settings get the current default."""
    from crossmodal.settings import read_config_file

    def value(cfg):
        return getattr(getattr(cfg, section), name)

    path = tmp_path / "config.json"
    RunConfig().save(path, crossmodal_version="0.0")
    saved = json.loads(path.read_text())
    assert saved[section][name] == (list(now) if isinstance(now, tuple) else now)  # written now
    del saved[section][name]
    path.write_text(json.dumps(saved))
    assert value(RunConfig.load(path)) == then
    assert value(RunConfig.from_dict(read_config_file(path))) == then
    assert value(RunConfig.from_dict(saved_settings({section: {}}))) == then
    # A user's own file (no format_version) and a section left out get today's default.
    toml = tmp_path / "mine.toml"
    toml.write_text(f"[{section}]\n{other[0]} = {other[1]}\n")
    mine = RunConfig.from_dict(read_config_file(toml))
    assert value(mine) == now and getattr(getattr(mine, section), other[0]) == other[1]
    assert value(RunConfig.from_dict(saved_settings({}))) == now


def test_a_config_file_cannot_set_the_labels(tmp_path):
    """The classes come from the data: a `labels` key in a user's file would be dropped
    without a word, so it is refused; a model's config.json (which records them) reads."""
    from crossmodal.settings import read_config_file

    (tmp_path / "c.toml").write_text('labels = ["a"]\n[train]\nepochs = 2\n')
    with pytest.raises(CrossmodalError, match="'labels' is not a setting"):
        read_config_file(tmp_path / "c.toml")
    RunConfig(labels=("a", "b")).save(tmp_path / "config.json")
    assert "labels" not in read_config_file(tmp_path / "config.json")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"channels": 2}, "image channels must be 1 or 3"),
        ({"height": 0}, "image height and width must be 1 to 1024"),
        ({"width": 100_000}, "image height and width must be 1 to 1024"),
        ({"clip_seconds": 0.0}, "clip length must be above 0"),
        ({"clip_seconds": float("inf")}, "clip length must be above 0 and at most 600"),
        ({"sample_rate": 10}, "sample rate must be 1000 to 384000 Hz"),
    ],
)
def test_preprocessing_settings_are_checked_as_the_model_config_is(fields, message):
    """`crossmodal preprocess --channels 2` gave a numpy traceback while decoding."""
    from crossmodal.data.preprocess import PrepSettings

    with pytest.raises(CrossmodalError, match=message):
        PrepSettings(**fields)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainConfig(epochs="ten"), 'train.epochs: expected a whole number, got "ten"'),
        (lambda: TrainConfig(val_groups="nicolas"), "train.val_groups: expected a list"),
        (lambda: ModelConfig(dropout="0.3"), "model.dropout: expected a number"),
        (lambda: AudioConfig(sample_rate=16000.0), "audio.sample_rate: expected a whole number"),
    ],
)
def test_configs_built_in_python_are_typed_too(build, message):
    """The checks a config file gets apply to objects a Python caller builds: a string where
    a number belongs is one clear error, not a TypeError in a comparison or in training."""
    with pytest.raises(CrossmodalError, match=re.escape(message)):
        build()


def test_load_reads_a_toml_settings_file(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('data = "pets"\n[train]\nepochs = 3\n[model]\nfusion = "gated"\n')
    cfg = RunConfig.load(path)
    assert cfg.data == "pets" and cfg.train.epochs == 3 and cfg.model.fusion == "gated"
    assert cfg.model.members == ModelConfig().members  # unnamed settings at their defaults


def test_python_callers_get_one_clear_line_for_bad_arguments(tmp_path):
    """What the CLI's flags refuse, the functions refuse too, before any work."""
    from crossmodal.evaluate import evaluate
    from crossmodal.predict import predict

    model, data = tmp_path / "no-model", tmp_path / "no-data"
    cases = [
        (lambda: predict(model, ["x.png"], top_k=0), "--top-k must be a whole number"),
        (lambda: predict(model, ["x.png"], batch_size=0), "--batch-size must be"),
        (lambda: predict(model, ["x.png"], workers=0), "--workers must be"),
        (lambda: predict(model, []), "no inputs"),
        (lambda: evaluate(model, data, fail_under=2.0), "--fail-under must be an accuracy"),
        (lambda: evaluate(model, data, batch_size=0), "--batch-size must be"),
    ]
    for call, message in cases:
        with pytest.raises(CrossmodalError, match=re.escape(message)):
            call()
    # one path, not a list of them: read as that path (its model is what is missing here)
    with pytest.raises(CrossmodalError) as exc:
        predict(model, str(tmp_path))
    assert "no-model" in str(exc.value)
