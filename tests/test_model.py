"""The network: every fusion branch builds, runs, respects presence, and trains a step."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from crossmodal.config import AudioConfig, ImageConfig, ModelConfig, RunConfig  # noqa: E402
from crossmodal.errors import CrossmodalError  # noqa: E402
from crossmodal.fusion import FUSIONS  # noqa: E402
from crossmodal.model import (  # noqa: E402
    ModalityDropout,
    _copy_weights,
    build_network,
    member_networks,
)
from crossmodal.trainer import Trainer  # noqa: E402

CFG = RunConfig(
    audio=AudioConfig(clip_seconds=0.25, num_mels=32),
    image=ImageConfig(16, 16, 1),
    # One network: the ensemble (the default, two) has tests of its own below.
    model=ModelConfig(embed_dim=16, filters=(8, 16), audio_filters=(8, 16), members=1),
    labels=("a", "b", "c"),
)


def batch(n=4, image_present=None, audio_present=None, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8),
        "image_present": np.asarray(image_present or [1.0] * n, np.float32),
        "audio": rng.normal(0, 0.1, (n, CFG.audio.num_samples)).astype(np.float32),
        "audio_present": np.asarray(audio_present or [1.0] * n, np.float32),
    }


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_every_fusion_builds_and_gives_probabilities(fusion):
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, fusion=fusion))
    net = build_network(cfg)
    out = net(batch(image_present=[1, 0, 1, 1], audio_present=[1, 1, 0, 1]), training=False)
    probs = out["probabilities"].numpy()
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(probs))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_every_fusion_reloads_from_model_keras_built_and_unchanged(fusion, tmp_path):
    """model.keras is the folder's network for fine-tuning: each fusion layer builds its
    sublayers in build(), so Keras reloads it without "does not have a build() method" and
    with the same outputs."""
    import warnings

    cfg = CFG.replace(model=dataclasses.replace(CFG.model, fusion=fusion))
    net = build_network(cfg)
    x = batch(image_present=[1, 0, 1, 1], audio_present=[1, 1, 0, 1])
    want = net(x, training=False)["probabilities"].numpy()
    net.save(tmp_path / "model.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = keras.saving.load_model(tmp_path / "model.keras")
    assert not [w for w in caught if "build()" in str(w.message)]
    np.testing.assert_allclose(again(x, training=False)["probabilities"], want, atol=1e-6)


@pytest.mark.parametrize("lone", ["head", "fusion"])
@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_absent_modality_content_is_ignored(fusion, lone):
    """Whatever pixels sit in an absent image slot, the prediction must not change."""
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, fusion=fusion, lone_modality=lone))
    net = build_network(cfg)
    x1 = batch(image_present=[0, 0, 0, 0])
    x2 = dict(x1, image=np.full_like(x1["image"], 255))
    p1 = net(x1, training=False)["probabilities"].numpy()
    p2 = net(x2, training=False)["probabilities"].numpy()
    np.testing.assert_allclose(p1, p2, atol=1e-6)


@pytest.mark.parametrize("members", [1, 2])
def test_a_lone_modality_is_scored_by_its_own_head_at_inference_only(members):
    """lone_modality "head": a row with only the image gets the image head's logits, only the
    sound the audio head's, a pair the fusion's; while training every row gets the fusion's.
    "fusion" gives the fusion's logits to every row."""
    x = batch(6, image_present=[1, 0, 1, 0, 1, 1], audio_present=[1, 1, 0, 0, 1, 0])
    model = dataclasses.replace(CFG.model, members=members, dropout=0.0, modality_dropout=0.0)
    net = build_network(CFG.replace(model=model))
    out = {k: v.numpy() for k, v in net(x, training=False).items() if k != "members"}
    image_only, audio_only, pair = [2, 5], [1], [0, 4]
    np.testing.assert_allclose(out["logits"][image_only], out["image_logits"][image_only])
    np.testing.assert_allclose(out["logits"][audio_only], out["audio_logits"][audio_only])
    fusion_net = build_network(
        CFG.replace(model=dataclasses.replace(model, lone_modality="fusion"))
    )
    _copy_weights(net, fusion_net)  # layer by layer, by name: the switch has no weights
    fused = fusion_net(x, training=False)["logits"].numpy()
    np.testing.assert_allclose(out["logits"][pair + [3]], fused[pair + [3]], rtol=1e-5, atol=1e-6)
    # The fusion scores a lone modality differently from its head (else this test is empty).
    assert not np.allclose(fused[audio_only], out["audio_logits"][audio_only], atol=1e-3)
    assert not np.allclose(fused[image_only], out["image_logits"][image_only], atol=1e-3)
    # While training, the switch passes the fusion's logits on every row.
    switch = member_networks(net)[0].get_layer("lone_modality_head")
    rest = [out["image_logits"], out["audio_logits"], x["image_present"], x["audio_present"]]
    np.testing.assert_array_equal(switch([fused, *rest], training=True), fused)
    np.testing.assert_allclose(switch([fused, *rest]), out["logits"], atol=1e-6)


def test_unknown_lone_modality_is_a_user_error():
    with pytest.raises(CrossmodalError, match="lone_modality"):
        ModelConfig(lone_modality="own")


def test_fusion_trains_one_step_and_loss_is_finite():
    net = build_network(CFG)
    trainer = Trainer(net, aux_weight=0.5, label_smoothing=0.1)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = batch(8, image_present=[1, 1, 0, 1, 1, 1, 1, 0], audio_present=[1, 0, 1, 1, 1, 1, 1, 1])
    y = np.array([0, 1, 2, 0, 1, 2, -1, 0], np.int32)  # one unlabeled sample
    history = trainer.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert "accuracy" in history.history


def test_modality_dropout_only_while_training_and_only_on_pairs():
    layer = ModalityDropout(rate=1.0, seed=1)
    ip = tf.constant([1.0, 1.0, 0.0, 1.0] * 50)
    ap = tf.constant([1.0, 1.0, 1.0, 0.0] * 50)
    same_i, same_a = layer([ip, ap], training=False)
    np.testing.assert_array_equal(same_i, ip)
    np.testing.assert_array_equal(same_a, ap)
    out_i, out_a = (t.numpy() for t in layer([ip, ap], training=True))
    assert np.all(out_i + out_a >= 1), "a sample must keep at least one modality"
    pairs = (ip.numpy() * ap.numpy()) > 0
    assert np.all((out_i + out_a)[pairs] == 1), "rate 1 hides exactly one modality of each pair"
    np.testing.assert_array_equal(out_i[~pairs], ip.numpy()[~pairs])


def test_unknown_fusion_is_a_user_error():
    with pytest.raises(CrossmodalError, match="unknown fusion"):
        build_network(CFG.replace(model=dataclasses.replace(CFG.model, fusion="nope")))


@pytest.mark.parametrize("audio_filters", [(4, 12), ()])
def test_audio_encoder_has_its_own_widths(audio_filters):
    """`audio_filters` sizes the audio encoder's blocks; empty means the image's `filters`."""
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, audio_filters=audio_filters))
    net = build_network(cfg)

    def widths(name):  # one per block: the block's first convolution, named ..._conv{i}
        encoder = net.get_layer(name)
        convs = [x for x in encoder.layers if re.search(r"_conv\d+$", x.name)]
        return tuple(x.filters for x in convs)

    assert widths("image_encoder") == (8, 16)
    assert widths("audio_encoder") == (audio_filters or (8, 16))


@pytest.mark.parametrize(
    "kind, second",
    [("cnn", None), ("vgg", "Conv2D"), ("vgg_sep", "SeparableConv2D")],
)
def test_encoder_kind_sets_the_convolutions_per_block_not_the_map(kind, second):
    """`vgg` stacks a second 3x3 convolution in each block where `cnn` has one, `vgg_sep` a
    depthwise-separable one; pooling, and so the map handed to fusion, is the same."""
    base = build_network(CFG).get_layer("audio_encoder").output.shape
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, audio_encoder=kind))
    encoder = build_network(cfg).get_layer("audio_encoder")
    convs = [x for x in encoder.layers if "_conv" in x.name]
    want = [(f"audio_encoder_conv{i}", "Conv2D", w) for i, w in enumerate((8, 16))]
    if second is not None:
        seconds = [(f"{n}_1", second, w) for n, _, w in want]
        want = [layer for pair in zip(want, seconds, strict=True) for layer in pair]
    assert [(x.name, type(x).__name__, x.filters) for x in convs] == want
    assert encoder.output.shape == base


def test_config_names_exactly_the_registered_encoders_and_fusions():
    """config.py checks names without importing TensorFlow, from its own lists: they must be
    the registries' keys, or a valid name would be refused (or a bad one pass to the build)."""
    from crossmodal.config import ENCODER_NAMES, FUSION_NAMES
    from crossmodal.encoders import ENCODERS

    assert sorted(ENCODER_NAMES) == sorted(ENCODERS)
    assert sorted(FUSION_NAMES) == sorted(FUSIONS)


@pytest.mark.parametrize("pool", ["flatten", "avg"])
def test_audio_pool_keeps_the_layout_it_names(pool):
    """flatten keeps time and frequency, avg keeps neither: the pooled vector's size says which,
    and avg is the mean of the encoder's map."""
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, audio_pool=pool))
    net = build_network(cfg)
    x = batch()
    encoded = net.get_layer("audio_pool").input
    _, t, f, c = encoded.shape  # the audio encoder's map
    probe = keras.Model(net.input, [encoded, net.get_layer("audio_pool").output])
    feature_map, pooled = (v.numpy() for v in probe(x, training=False))
    assert pooled.shape[1] == {"flatten": t * f * c, "avg": c}[pool]
    want = feature_map.reshape(len(pooled), -1) if pool == "flatten" else feature_map.mean((1, 2))
    np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(net(x, training=False)["probabilities"].numpy()))


def test_unknown_audio_pool_is_a_user_error():
    with pytest.raises(CrossmodalError, match="unknown audio_pool"):
        dataclasses.replace(CFG.model, audio_pool="flaten")


def ensemble(members=2, **model_fields):
    return CFG.replace(model=dataclasses.replace(CFG.model, members=members, **model_fields))


@pytest.mark.parametrize("multi_label", [False, True], ids=["softmax", "sigmoid"])
def test_an_ensemble_averages_its_members_predictions(multi_label):
    """Softmax: the mean of the members' log-probabilities; sigmoid: the mean logit. The shared
    space concatenates the members' unit vectors, so a cosine is the mean of theirs."""
    net = build_network(ensemble(3, multi_label=multi_label))
    x = batch(5, image_present=[1, 0, 1, 1, 1], audio_present=[1, 1, 0, 1, 1])
    out = net(x, training=False)
    members = out["members"]
    assert len(members) == 3 and len(member_networks(net)) == 3
    logits = np.stack([m["logits"].numpy() for m in members])  # [M, N, K]
    assert not np.allclose(logits[0], logits[1])  # each member has its own initialization
    if multi_label:
        want = logits.mean(axis=0)
        np.testing.assert_allclose(out["logits"].numpy(), want, rtol=1e-5, atol=1e-6)
        probs = 1 / (1 + np.exp(-want))
    else:
        want = tf.nn.log_softmax(logits, axis=-1).numpy().mean(axis=0)
        np.testing.assert_allclose(out["logits"].numpy(), want, rtol=1e-5, atol=1e-6)
        probs = np.exp(want) / np.exp(want).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"].numpy(), probs, rtol=1e-5, atol=1e-6)
    for key in ("image_logits", "audio_logits"):
        heads = np.stack([m[key].numpy() for m in members])
        heads = heads if multi_label else tf.nn.log_softmax(heads, axis=-1).numpy()
        np.testing.assert_allclose(out[key].numpy(), heads.mean(axis=0), rtol=1e-5, atol=1e-6)
    zi, za = out["image_shared"].numpy(), out["audio_shared"].numpy()
    assert zi.shape == (5, 3 * CFG.model.shared_dim)
    np.testing.assert_allclose(np.linalg.norm(zi, axis=1), 1.0, rtol=1e-5)
    cosines = [np.sum(m["image_shared"] * m["audio_shared"], axis=1) for m in members]
    np.testing.assert_allclose(np.sum(zi * za, axis=1), np.mean(cosines, axis=0), atol=1e-5)


def test_an_ensemble_trains_each_member_on_its_own_loss():
    """The ensemble's loss is the sum of what each member, trained alone, would minimize: so a
    member's gradients are its own, untouched by the others."""
    net = build_network(ensemble(2))
    options = {"aux_weight": 0.5, "label_smoothing": 0.1, "contrastive_weight": 0.2}
    x = batch(6, image_present=[1, 1, 0, 1, 1, 1], audio_present=[1, 0, 1, 1, 1, 1])
    y = np.array([0, 1, 2, 0, -1, 2], np.int32)
    whole = Trainer(net, **options).compute_loss(x, y, net(x, training=False))
    alone = [
        Trainer(member, **options).compute_loss(x, y, member(x, training=False))
        for member in member_networks(net)
    ]
    assert not np.isclose(float(alone[0]), float(alone[1]))
    np.testing.assert_allclose(float(whole), float(alone[0]) + float(alone[1]), rtol=1e-5)
    first = member_networks(net)[0].trainable_variables
    with tf.GradientTape() as tape:
        loss = Trainer(net, **options).compute_loss(x, y, net(x, training=False))
    with tf.GradientTape() as tape_alone:
        member = member_networks(net)[0]
        loss_alone = Trainer(member, **options).compute_loss(x, y, member(x, training=False))
    for g, g_alone in zip(
        tape.gradient(loss, first), tape_alone.gradient(loss_alone, first), strict=True
    ):
        if g is None:
            assert g_alone is None
            continue
        np.testing.assert_allclose(
            tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(g_alone).numpy(), atol=1e-6
        )


@pytest.mark.parametrize("members", [0, 17])
def test_members_out_of_range_is_a_user_error(members):
    with pytest.raises(CrossmodalError, match="members"):
        dataclasses.replace(CFG.model, members=members)


def test_crop_views_reach_the_audio_encoder_as_channels_through_every_audio_layer():
    """Warps, cepstral smoothing, per-utterance normalization and SpecAugment all take the
    stacked crops, in training and at inference (the log-mel's noise floor on)."""
    audio = dataclasses.replace(CFG.audio, crop_frames=16, crop_views_db=(15.0, 35.0))
    audio = dataclasses.replace(audio, cepstral_keep=12, noise_floor=0.1)
    net = build_network(CFG.replace(audio=audio))
    assert net.get_layer("audio_encoder").input.shape[-1] == 3
    for training in (True, False):
        probs = net(batch(), training=training)["probabilities"].numpy()
        assert probs.shape == (4, 3) and np.all(np.isfinite(probs))


def _trained_looking(net, x):
    """Non-trivial weights everywhere (the heads start near zero), and the normalizations
    adapted as training adapts them (their statistics live outside the weights until then)."""
    from crossmodal.train import adapt_audio_normalization

    rng = np.random.default_rng(3)
    for member in member_networks(net):
        for layer in member.layers:
            if layer.weights and not isinstance(layer, keras.layers.Normalization):
                layer.set_weights(
                    [w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in layer.get_weights()]
                )
        member.get_layer("image_norm").adapt(member.get_layer("image_scale")(x["image"]) * 3 + 1)
    adapt_audio_normalization(net, x["audio"] * 5)


@pytest.mark.parametrize("members", [1, 2])
def test_test_views_average_the_audio_predictions_over_views_with_the_same_weights(members):
    """`audio.test_crops_db` and `audio.test_freq_warps`: for a sound without an image, the
    served network runs the audio path once more per (crop, warp) view with the trained
    weights and averages log-probabilities. A view equal to the training one changes nothing;
    other crops and warps change the sound alone's predictions, not a pair's or an image's."""
    from crossmodal.model import inference_network

    audio = dataclasses.replace(CFG.audio, crop_frames=8, test_crops_db=(), test_freq_warps=())
    cfg = CFG.replace(audio=audio, model=dataclasses.replace(CFG.model, members=members))
    net = build_network(cfg)
    x = batch(image_present=[1, 1, 0, 0], audio_present=[1, 1, 1, 1])
    # A tone that fades in and out over 60 dB: each threshold cuts a different active region.
    t = np.arange(audio.num_samples) / audio.sample_rate
    fade = 10 ** (-3 * np.abs(np.linspace(-1, 1, t.size)))
    tone = (fade * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x["audio"] = x["audio"] * 1e-4 + tone
    _trained_looking(net, x)
    want = net(x, training=False)
    assert inference_network(net, cfg) is net  # no test views: served as trained
    same = dataclasses.replace(
        audio, test_crops_db=(audio.crop_threshold_db,) * 2, test_freq_warps=(1.0,)
    )
    assert same.test_views == ()  # only the training view, each view once
    assert inference_network(net, cfg.replace(audio=same)) is net
    twice = dataclasses.replace(audio, test_crops_db=(2.0, 60.0, 2.0), test_freq_warps=(0.8, 1.0))
    main = audio.crop_threshold_db
    assert twice.test_views == ((main, 0.8), (2.0, 1.0), (2.0, 0.8), (60.0, 1.0), (60.0, 0.8))

    for other in (
        dataclasses.replace(audio, test_crops_db=(2.0, 60.0)),
        dataclasses.replace(audio, test_freq_warps=(0.8, 1.25)),
    ):
        served = inference_network(net, cfg.replace(audio=other))
        got = served(x, training=False)
        (views,) = [
            layer for layer in member_networks(served)[0].layers if layer.name == "test_views"
        ]
        assert views.views == other.test_views
        # Only a sound standing alone is averaged over views (rows 2 and 3); pairs cost one.
        want_p, got_p = want["probabilities"].numpy(), got["probabilities"].numpy()
        assert not np.allclose(want_p[2:], got_p[2:])
        np.testing.assert_allclose(want_p[:2], got_p[:2], atol=1e-6)
        for key in ("image_shared", "audio_shared"):  # the embeddings stay the main view's
            np.testing.assert_allclose(want[key].numpy(), got[key].numpy(), atol=1e-6)
        image_only = dict(x, audio_present=np.zeros(4, np.float32))
        np.testing.assert_allclose(
            net(image_only, training=False)["probabilities"].numpy(),
            served(image_only, training=False)["probabilities"].numpy(),
            atol=1e-6,
        )
        # The served graph shares the trained weights; it does not copy them into new layers.
        assert len(served.weights) == len(net.weights)
    # The views run in one batch; that is the views one by one: a model served with warps
    # 0.8 and 1.25 averages what the models served with each alone say, row by row (four
    # different clips, so a mix-up of rows and views would show).
    alone = x | {"image_present": np.zeros(4, np.float32)}
    clips = [tone, tone[::-1], np.roll(tone, tone.size // 4), tone * fade]
    alone["audio"] = np.stack(clips).astype(np.float32) + x["audio"] * 1e-4

    def log_probs(spans):
        served_cfg = cfg.replace(audio=dataclasses.replace(audio, test_freq_warps=spans))
        served = inference_network(net, served_cfg)
        return np.log(served(alone, training=False)["probabilities"].numpy())

    main = log_probs(())
    # Served with one view: log_softmax((main + view) / 2), so the view is 2 x that - main, up
    # to a constant per row, which the final log_softmax removes.
    views = [2 * log_probs((span,)) - main for span in (0.8, 1.25)]
    want = tf.nn.log_softmax((main + views[0] + views[1]) / 3).numpy()
    np.testing.assert_allclose(log_probs((0.8, 1.25)), want, atol=1e-4)
    assert not np.allclose(views[0], views[1], atol=1e-3)


def test_test_crops_need_a_crop():
    """Turning the crop off turns the default test crops off with it; asking for others
    without a crop is an error. The warps stay."""
    assert AudioConfig(crop_frames=0).test_crops_db == ()
    assert AudioConfig(crop_frames=0, test_crops_db=(20.0, 30.0, 35.0)).test_crops_db == ()
    with pytest.raises(CrossmodalError, match="test_crops_db"):
        dataclasses.replace(CFG.audio, crop_frames=0, test_crops_db=(20.0,))
    with pytest.raises(CrossmodalError, match="test_crops_db"):
        dataclasses.replace(CFG.audio, test_crops_db=(0.0,))
    # Warps need no crop: without one, the whole clip is warped.
    assert AudioConfig(crop_frames=0).test_views == ((0.0, 0.95), (0.0, 1.05))
    with pytest.raises(CrossmodalError, match="test_freq_warps"):
        dataclasses.replace(CFG.audio, test_freq_warps=(0.0,))


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("members", [1, 2])
def test_mixed_precision_runs_the_encoders_in_float16_and_the_rest_in_float32(
    mixed_precision, members, tmp_path
):
    """What `train --mixed-precision` sets on a GPU, here on the CPU: the frontends (an STFT has
    no float16 kernel), the averaging and the outputs stay float32, the losses are scaled, and
    the SavedModel serves float32 as its signature says."""
    from crossmodal.artifacts import export_saved_model

    cfg = CFG.replace(model=dataclasses.replace(CFG.model, members=members))
    net = build_network(cfg)
    member = member_networks(net)[0]
    assert member.get_layer("log_mel").compute_dtype == "float32"
    # float16's epsilon and range break unit-length rows (a norm above 256 overflows)
    assert member.get_layer("image_shared").compute_dtype == "float32"
    conv = member.get_layer("audio_encoder").get_layer("audio_encoder_conv0")
    assert conv.compute_dtype == "float16"
    trainer = Trainer(net, aux_weight=0.5, label_smoothing=0.1, contrastive_weight=0.1)
    trainer.compile(optimizer=keras.optimizers.AdamW(1e-3))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    x = batch(8, image_present=[1, 1, 0, 1, 1, 1, 1, 1], audio_present=[1, 0, 1, 1, 1, 1, 1, 1])
    history = trainer.fit(x, np.array([0, 1, 2, 0, 1, 2, 0, 1]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    export_saved_model(net, cfg, tmp_path / "saved_model")
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    x = batch()
    out = serve(
        image=x["image"],
        image_present=x["image_present"] > 0,
        audio=x["audio"],
        audio_present=x["audio_present"] > 0,
    )
    for key in ("probabilities", "image_embedding", "audio_embedding"):
        assert out[key].dtype == tf.float32, key
    want = net(x, training=False)["probabilities"].numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-3)


def test_serving_takes_any_layout_empty_batches_and_blank_placeholders(tmp_path):
    """The SavedModel converts an image's layout in the graph (RGBA into a gray model reads
    as Pillow's conversion does), serves a batch of none, takes a placeholder of no pixels or
    samples, and names what is wrong with inputs that disagree."""
    from PIL import Image

    from crossmodal.artifacts import export_saved_model
    from crossmodal.data.decode import _to_8bit

    net = build_network(CFG)
    export_saved_model(net, CFG, tmp_path / "saved_model")
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]

    def run(image, audio, image_present=(True,), audio_present=(True,)):
        out = serve(
            image=tf.constant(image, tf.uint8),
            image_present=tf.constant(image_present, tf.bool),
            audio=tf.constant(audio, tf.float32),
            audio_present=tf.constant(audio_present, tf.bool),
        )
        return {key: value.numpy() for key, value in out.items()}

    x = batch(1)
    rgba = np.random.default_rng(4).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    gray = np.asarray(_to_8bit(Image.fromarray(rgba, "RGBA"), 1))[None, :, :, None]
    np.testing.assert_array_equal(
        run(rgba[None], x["audio"])["probabilities"], run(gray, x["audio"])["probabilities"]
    )

    empty = run(np.zeros((0, 16, 16, 1)), np.zeros((0, 100)), (), ())
    assert empty["probabilities"].shape == (0, 3)
    assert empty["label"].shape == (0,) and empty["labels"].shape == (0, 3)
    assert empty["image_embedding"].shape[0] == empty["audio_embedding"].shape[0] == 0

    blank = run(np.zeros((1, 0, 0, 1)), x["audio"], image_present=(False,))
    placeholder = run(np.zeros((1, 1, 1, 1)), x["audio"], image_present=(False,))
    np.testing.assert_allclose(blank["probabilities"], placeholder["probabilities"], atol=1e-6)

    with pytest.raises(tf.errors.InvalidArgumentError, match="same number of samples"):
        run(np.zeros((2, 16, 16, 1)), x["audio"], (True, True))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be marked absent"):
        run(np.zeros((1, 0, 0, 1)), x["audio"])


@pytest.mark.parametrize("fusion", ["concat", "late", "gated", "conv"])
def test_mixed_precision_every_fusion_builds_and_stays_finite(mixed_precision, fusion):
    """Under mixed_float16: conv's resize returns float32 into a float16 product, and the
    gate's mask of -1e9 is -inf in float16 (a row with neither modality gave NaN)."""
    cfg = CFG.replace(model=dataclasses.replace(CFG.model, fusion=fusion))
    net = build_network(cfg)
    x = batch(4, image_present=[1, 0, 1, 0], audio_present=[1, 1, 0, 0])  # last: neither
    out = net(x, training=False)
    for key, value in out.items():
        assert np.isfinite(np.asarray(value, np.float32)).all(), key


def test_late_fusion_of_confident_multi_label_heads_is_finite_in_mixed_precision(
    mixed_precision,
):
    from crossmodal.fusion import build_fusion

    late = build_fusion("late", 3, hidden=8, dropout=0.0, multi_label=True)
    logits = tf.constant(np.full((2, 3), 9.0), tf.float16)  # sigmoid(9) rounds to 1 in float16
    present = tf.ones(2, tf.float16)
    out = late(
        {
            "image_logits": logits,
            "audio_logits": logits,
            "image_present": present,
            "audio_present": present,
        }
    )
    assert np.isfinite(out.numpy()).all()
