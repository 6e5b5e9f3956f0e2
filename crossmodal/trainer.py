"""The training objective, wrapped around the network for `fit`.

    loss = CE(fused)                                   labeled samples
         + aux_weight   * Σ_m CE(head_m)                labeled samples where m is present
         + distill_weight * KL(teacher head ‖ student head)   pairs (teacher = labeled modality)
         + contrastive_weight * InfoNCE(shared_image, shared_audio)   pairs, both directions

Per-modality heads keep each encoder learning on its own (a plain fused loss lets the easier
modality dominate); distillation and the contrastive loss carry labels from one modality to
the other through the pairs, so a model trained with labeled images predicts from sound.
An ensemble (`model.members` > 1) sums this loss over its members; the accuracies are the
averaged prediction's.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

DISTILL_DIRECTIONS = (None, "image->audio", "audio->image")
DISTILL_CONFIDENCE = 0.5  # a teacher prediction teaches only from this probability up


class MeasuredMean(keras.metrics.Mean):
    """A mean that is NaN, not 0, when nothing was measured: with no sound in the data (or in
    the validation split) the audio head's accuracy is not 0, it is unknown, and history.csv
    and the epoch lines say so."""

    def result(self):
        count = tf.cast(self.count, self.dtype)
        return tf.where(count > 0, tf.math.divide_no_nan(self.total, count), float("nan"))


class Trainer(keras.Model):
    def __init__(
        self,
        net: keras.Model,
        *,
        aux_weight: float,
        label_smoothing: float,
        class_weights: np.ndarray | None = None,
        distill: str | None = None,
        distill_weight: float = 0.0,
        contrastive_weight: float = 0.0,
        temperature: float = 0.1,
        multi_label: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if distill not in DISTILL_DIRECTIONS:
            raise ValueError(f"distill must be one of {DISTILL_DIRECTIONS}")
        self.net = net
        self.aux_weight = aux_weight
        self.label_smoothing = label_smoothing
        self.num_classes = net.output["probabilities"].shape[-1]
        weights = np.ones(self.num_classes) if class_weights is None else class_weights
        self.class_weights = tf.constant(np.asarray(weights, np.float32))  # [K]
        self.distill = distill
        self.distill_weight = distill_weight if distill else 0.0
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self.multi_label = multi_label
        self.accuracy_tracker = MeasuredMean(name="accuracy")
        self.image_accuracy_tracker = MeasuredMean(name="image_accuracy")
        self.audio_accuracy_tracker = MeasuredMean(name="audio_accuracy")

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras builds the metrics from one batch before fitting; under a strategy it averages
        that batch over the replicas with `strategy.reduce`, which MultiWorkerMirroredStrategy
        refuses for a dict of inputs. One replica's share has the same structure and shapes."""
        strategy = self._distribute_strategy
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: (
                    strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                next(it),
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def train_step(self, data):
        return self._for_workers(super().train_step(data))

    def test_step(self, data):
        return self._for_workers(super().test_step(data))

    def _for_workers(self, logs):
        """Across workers Keras averages each step's metrics with `strategy.reduce(MEAN,
        axis=0)`, which fails on a scalar (tensorflow#72388). The metrics are synchronized, so
        every replica holds the same value: give it one axis and the mean is that value."""
        if not isinstance(self._distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)

    def _cross_entropy(self, labels, logits):
        onehot = tf.one_hot(tf.maximum(labels, 0), self.num_classes)  # [N, K]
        return keras.losses.categorical_crossentropy(
            onehot, logits, from_logits=True, label_smoothing=self.label_smoothing
        )  # [N]

    @staticmethod
    def _masked_mean(values, mask):
        return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def _binary_cross_entropy(self, targets, logits):
        """Multi-label: mean over classes of per-class sigmoid cross-entropy."""
        targets = tf.maximum(targets, 0.0)  # [N, K]; unlabeled rows (-1) are masked anyway
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_mean(per_class, axis=-1)  # [N]

    def _distillation(self, y_pred, pairs):
        teacher, student = self.distill.split("->")
        if self.multi_label:
            target = tf.stop_gradient(tf.nn.sigmoid(y_pred[f"{teacher}_logits"]))
            return self._masked_mean(
                self._binary_cross_entropy(target, y_pred[f"{student}_logits"]), pairs
            )
        target = tf.stop_gradient(tf.nn.softmax(y_pred[f"{teacher}_logits"]))  # [N, K]
        log_student = tf.nn.log_softmax(y_pred[f"{student}_logits"])  # [N, K]
        kl = tf.reduce_sum(target * (tf.math.log(target + 1e-8) - log_student), axis=-1)  # [N]
        # Only where the teacher is confident: early in training its predictions are near
        # uniform, and matching them teaches the student to output a constant, which a
        # ReLU network reaches by switching its features off for good.
        confident = tf.cast(tf.reduce_max(target, axis=-1) >= DISTILL_CONFIDENCE, tf.float32)
        return self._masked_mean(kl, pairs * confident)

    def _contrastive(self, y_pred, pairs):
        """Symmetric InfoNCE over the pairs of the batch; other rows never act as negatives."""
        zi, za = y_pred["image_shared"], y_pred["audio_shared"]  # [N, S] unit rows
        sim = tf.matmul(zi, za, transpose_b=True) / self.temperature  # [N, N]
        valid = tf.logical_and(pairs[:, tf.newaxis] > 0, pairs[tf.newaxis, :] > 0)  # [N, N]
        sim = tf.where(valid, sim, -1e9)
        target = tf.range(tf.shape(sim)[0])
        i2a = keras.losses.sparse_categorical_crossentropy(target, sim, from_logits=True)  # [N]
        a2i = keras.losses.sparse_categorical_crossentropy(
            target, tf.transpose(sim), from_logits=True
        )  # [N]
        enough = tf.cast(tf.reduce_sum(pairs) >= 2.0, tf.float32)  # one pair teaches nothing
        return enough * self._masked_mean(0.5 * (i2a + a2i), pairs)

    def _objective(self, x, criterion, weight, y_pred):
        """One network's loss: fused head, per-modality heads, distillation, alignment."""
        loss = self._masked_mean(criterion(y_pred["logits"]), weight)
        for name in ("image", "audio"):
            mask = weight * x[f"{name}_present"]
            aux = self._masked_mean(criterion(y_pred[f"{name}_logits"]), mask)
            loss = loss + self.aux_weight * aux
        pairs = x["image_present"] * x["audio_present"]  # [N]: true presence, before dropout
        if self.distill_weight > 0:
            loss = loss + self.distill_weight * self._distillation(y_pred, pairs)
        if self.contrastive_weight > 0:
            loss = loss + self.contrastive_weight * self._contrastive(y_pred, pairs)
        return loss

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The losses in float32: under mixed precision the heads' outputs are float16.
        y_pred = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), y_pred)
        if self.multi_label:
            targets = tf.cast(y, tf.float32)  # [N, K] multi-hot, rows of -1 when unlabeled
            # an unlabeled row is -1 throughout; any negative marks it (metrics.labeled_rows)
            labeled = tf.cast(tf.reduce_all(targets >= 0, axis=-1), tf.float32)  # [N]
            weight = labeled

            def criterion(logits):
                return self._binary_cross_entropy(targets, logits)
        else:
            labels = tf.cast(y, tf.int32)  # [N]
            labeled = tf.cast(labels >= 0, tf.float32)  # [N]
            weight = labeled * tf.gather(self.class_weights, tf.maximum(labels, 0))  # [N]

            def criterion(logits):
                return self._cross_entropy(labels, logits)

        if sample_weight is not None:
            weight = weight * tf.cast(sample_weight, tf.float32)
        # An ensemble's members each learn from their own loss: their sum's gradient for a
        # member's weights is that member's alone, so each trains as it would by itself.
        loss = tf.add_n(
            [self._objective(x, criterion, weight, out) for out in y_pred.get("members", [y_pred])]
        )
        if self.losses:
            loss = loss + tf.add_n(self.losses)
        for tracker, key, present in (
            (self.accuracy_tracker, "logits", labeled),
            (self.image_accuracy_tracker, "image_logits", labeled * x["image_present"]),
            (self.audio_accuracy_tracker, "audio_logits", labeled * x["audio_present"]),
        ):
            if self.multi_label:  # subset accuracy at 0.5: every label right
                hit = tf.reduce_all((y_pred[key] > 0) == (targets > 0.5), axis=-1)
            else:
                hit = tf.argmax(y_pred[key], -1, output_type=tf.int32) == labels
            tracker.update_state(tf.cast(hit, tf.float32), sample_weight=present)
        # Under tf.distribute every replica's gradients are summed: each returns its share.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss
