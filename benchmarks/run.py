#!/usr/bin/env python3
"""Where users wait: input pipeline, preprocessing, prediction and start-up, as ratios.

    python benchmarks/run.py [--data DIR] [--pairs N] [--quick] [--repeats R] [--skip-xla]
                             [--members K]

Prints one JSON object on stdout (progress goes to stderr) and exits 1 naming, on stderr, every
key that misses its target (`TARGETS` below). Every figure with a target is a ratio of two
timings taken in the same run, so that the speed of the day cancels out. Each timing is repeated
(`--repeats`, default 5; the two sides of a ratio alternate run by run) and the fastest run of
each side is used: on a shared machine other jobs only ever add time, so the minimum is the
least noisy estimate of what the code itself costs (as `timeit` does). Every run's time is in
the JSON too (`*_runs`), so the spread is visible.

Data: a generated dataset (`--pairs`, default 2,000 pairs, 10 classes: 28x28 grayscale PNG of a
drawn digit + a 0.5-1.0 s 8 kHz 16-bit WAV tone, like avdigits) under a temporary folder, or
`--data DIR` (a folder of pairs or a manifest). When ../shared/datasets/avdigits exists, the
preprocessing figures are also measured on it (nested `avdigits` object, whose two ratios are
checked against the same targets; the files are read in place, never copied; its records go to
the temporary folder and are deleted). One small model is trained once through the CLI
(`crossmodal train MANIFEST --epochs 1` on a subset of the pairs) for the prediction and
start-up figures. `--members K` gives every model here (the trained one and the networks of the
training figures) K ensemble members instead of the default's, to measure what they cost.
`CROSSMODAL_CACHE` points into the temporary folder.

Keys (target in brackets):

- `pipeline_efficiency` [>= 0.9]: training steps/s through the real input pipeline divided by
  steps/s of the same network, `Trainer` and optimizer fed from in-memory tensors. Real: the
  network, trainer and dataset that `crossmodal train` builds (`train._Job.build`,
  `_Job.train_ds` = `crossmodal.data.reader.make_dataset` over the prepared shards: read,
  parse, cache, shuffle, batch, prefetch), whole epochs of `--train-steps` (8) steps.
  In memory: one batch of that dataset, `Dataset.from_tensors(batch).repeat()` with its batch
  dimension relaxed to None so that both sides run the same traced train function, the same
  number of steps. Both through `trainer.fit(verbose=0)` after a warm-up epoch each (steady
  state: the record cache filled, the function traced), alternating, 2 x `--repeats` times.
  `pipeline_steps_per_second` and `memory_steps_per_second` are the two sides;
  `pipeline_cpu_seconds_per_step` and `memory_cpu_seconds_per_step` their CPU time per step
  (all threads, tf.data's included; medians): the work each does, whatever the load, and
  `pipeline_cpu_efficiency` their ratio (memory / real), which other jobs hardly move.
- `preprocess_vs_decode` [>= 1.0]: pairs/s of `crossmodal.data.preprocess.preprocess`, the
  function `crossmodal preprocess` calls, timed in-process (so interpreter start and imports are
  excluded; TensorFlow is not yet imported, so its workers fork as the CLI's do; default
  workers = all cores; a fresh output folder each time; scan, probe, decode, records and
  dataset.json all included) divided by pairs/s of a single-process loop that only calls
  `read_image` and `read_audio` on the same files at the same shapes. All files are read once
  before timing, so both sides find them in the page cache. `preprocess_cpu_seconds` and
  `decode_cpu_seconds` are the CPU time (all processes) of each side: the work each does,
  whatever the load of the machine.
- `preprocess_cache_speedup` [>= 20]: time of a first (fresh) preprocess run over the time of a
  re-run on unchanged input, both in-process. `preprocess_rerun_cli_seconds`: the wall time of
  `crossmodal preprocess` re-run as a command (interpreter start included).
- `predict_vs_decode` [>= 0.5]: pairs/s of `crossmodal predict` on the folder of N >= 1,000
  pairs divided by pairs/s of the decode-only loop on the same N pairs at the model's shapes.
  Start-up is excluded by difference: the CLI's `predict` command function is called
  in-process (TensorFlow already imported) on the N-pair folder and on one pair, writing JSONL,
  and the rate is (N - 1) / (t_N - t_1).
- `cold_start_overhead` [<= 1.3]: wall time of a `crossmodal predict MODEL IMAGE SOUND` process
  (one pair, table to a pipe) divided by the wall time of
  `python -c "import tensorflow as tf; tf.saved_model.load('MODEL/saved_model')"`.
- `help_seconds`: wall time of `crossmodal --help` (the console script beside this
  interpreter, not a pyenv shim); `help_vs_typer` [<= 2]: that divided by the wall time of
  `python -c "import typer"`.
- `predict_rss_ratio` [< 1.5]: peak RSS (`ru_maxrss` of the child, from `os.wait4`) of a
  `crossmodal predict MODEL FOLDER` process on 10,000 tiny pairs (16x16 PNG + 0.25 s WAV)
  divided by the same on 1,000 of them (one class folder of the same tree); table output to a
  pipe. One run each. `--quick` uses 100 and 1,000.
- `train_cli_seconds`: wall time of the one `crossmodal train MANIFEST --epochs 1 -q` process
  above, on `train_cli_pairs` pairs (`--train-subset`): interpreter start, imports, its own
  preprocessing of the subset, building, tracing, one epoch, evaluation and export. What a
  user waits for before the first epoch's figures, as one number. Reported, no target (an
  absolute time, so only comparable between runs on the same machine).
- `train_samples_per_second`: `pipeline_steps_per_second` x the batch size (32, the default).
- `compute_utilization`: achieved training FLOP/s (FLOPs of one training step x
  `pipeline_steps_per_second`) divided by the machine's dense matmul FLOP/s, measured in the
  same process: the fastest of ten float32 2048x2048 `tf.matmul`s (2 x 2048^3 FLOPs each).
  FLOPs per step are counted by `tf.compat.v1.profiler` (float_operation) on the graph of
  `Trainer.train_step` for one batch: forward, backward (Conv2DBackpropInput/Filter, MatMul...)
  and the optimizer update, every op with registered FLOP statistics (the FFT of the log-mel
  frontend has none and counts zero); should the profiler fail, 3 x the forward Conv2D and
  Dense FLOPs from the layer shapes (`train_flops_source` says which). Reported, no target.
- `xla_speedup`: in-memory steps/s with `jit_compile=True` divided by without, on the same
  network with augmentation off: Keras refuses XLA for the augmenting network (its random
  translation and zoom use ImageProjectiveTransformV3, which has no XLA kernel), and
  `train._Job` enables op determinism, which turns XLA off too, so this is measured first.
  At most 3 runs per side. null with `--quick` or `--skip-xla`. Reported, no target.

Other keys are the raw figures behind the ratios, the settings used (`setup`), the targets and
`misses` (also printed to stderr, one line each).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVDIGITS = ROOT.parent / "shared" / "datasets" / "avdigits"

# key -> (comparison, target); a key whose value is None (not measured) counts as a miss.
TARGETS: dict[str, tuple[str, float]] = {
    "pipeline_efficiency": (">=", 0.9),
    "preprocess_vs_decode": (">=", 1.0),
    "preprocess_cache_speedup": (">=", 20.0),
    "predict_vs_decode": (">=", 0.5),
    "cold_start_overhead": ("<=", 1.3),
    "help_vs_typer": ("<=", 2.0),
    "predict_rss_ratio": ("<", 1.5),
}
# Checked inside the nested `avdigits` object too, when that data set is present.
AVDIGITS_TARGETS = ("preprocess_vs_decode", "preprocess_cache_speedup")

BATCH_SIZE = 32  # what `crossmodal train` uses when a training set has 512 samples or more
MATMUL_N = 2048
_REAL_STDOUT: int | None = None  # fd of the real stdout while measurements run


# --- small helpers (pure; tested in tests/test_benchmarks.py) ----------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def best(values: Iterable[float]) -> float:
    """The fastest of repeated timings: other jobs on a shared machine only ever add time, so
    the minimum is the least noisy estimate of what the code itself costs (as `timeit` does)."""
    return float(min(values))


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, digits)


def rate_by_difference(n_big: int, t_big: float, n_small: int, t_small: float) -> float | None:
    """Items per second with fixed costs removed: (N2 - N1) / (t2 - t1)."""
    if n_big <= n_small or t_big <= t_small:
        return None
    return (n_big - n_small) / (t_big - t_small)


def check_targets(results: dict, targets: dict[str, tuple[str, float]] = TARGETS) -> list[str]:
    """One line per key that misses its target (absent or None counts as a miss)."""
    misses = []
    for key, (op, target) in targets.items():
        value = results.get(key)
        if value is None:
            misses.append(f"{key}: not measured (target {op} {target})")
            continue
        ok = {
            ">=": value >= target,
            ">": value > target,
            "<=": value <= target,
            "<": value < target,
        }[op]
        if not ok:
            misses.append(f"{key} = {value} misses its target ({op} {target})")
    return misses


def all_misses(results: dict) -> list[str]:
    misses = check_targets(results)
    nested = results.get("avdigits")
    if isinstance(nested, dict) and "error" not in nested:
        sub = {k: TARGETS[k] for k in AVDIGITS_TARGETS}
        misses += [f"avdigits.{m}" for m in check_targets(nested, sub)]
    return misses


def alternate(runs: int, *steps: Callable[[], float]) -> list[list[float]]:
    """Run each step in turn, `runs` times round; the timings of each step, in order."""
    out: list[list[float]] = [[] for _ in steps]
    for _ in range(runs):
        for i, step in enumerate(steps):
            out[i].append(step())
    return out


def entry_point(name: str = "crossmodal") -> list[str]:
    """The installed console script beside this interpreter (a pyenv shim adds ~0.1 s of bash),
    else the one on PATH, else `python -m cli.main`."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", "cli.main"]


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | None = None):
    """(wall seconds, exit code, peak RSS in bytes) of one child process, its output discarded
    (stdout to a pipe that is drained, so the child sees a pipe, not a terminal)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    assert proc.stdout is not None
    while proc.stdout.read(1 << 16):
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    return wall, proc.returncode, int(usage.ru_maxrss) * 1024  # Linux: kilobytes


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (pool workers) so far."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("CROSSMODAL_TF_LOGS", None)
    return env


# --- data ---------------------------------------------------------------------------------------


def _digit_font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType
        return ImageFont.load_default()


def generate_pairs(
    root: Path,
    pairs: int,
    *,
    classes: int = 10,
    size: int = 28,
    seconds: tuple[float, float] = (0.5, 1.0),
    rate: int = 8000,
    seed: int = 0,
) -> Path:
    """`root/<digit>/<speaker>_<i>.png|.wav`: a drawn digit (grayscale, jittered, noisy) and a
    harmonic tone whose pitch depends on the digit; deterministic for a seed."""
    import numpy as np
    import soundfile as sf
    from PIL import Image, ImageDraw

    font = _digit_font(max(8, int(size * 0.8)))
    speakers = ("ann", "bob", "cat", "dan")
    for i in range(pairs):
        label = i % classes
        rng = np.random.default_rng([seed, i])
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{speakers[i % len(speakers)]}_{i:05d}"
        img = Image.new("L", (size, size), 0)
        dx, dy = rng.integers(-size // 8, size // 8 + 1, size=2)
        ImageDraw.Draw(img).text(
            (size // 2 + int(dx), size // 2 + int(dy)),
            str(label % 10),
            fill=255,
            font=font,
            anchor="mm",
        )
        pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, (size, size))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(folder / f"{stem}.png")
        n = int(rate * rng.uniform(*seconds))
        t = np.arange(n) / rate
        f0 = (180.0 + 45.0 * label) * rng.uniform(0.97, 1.03)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
        envelope = np.minimum(1.0, t / 0.02) * np.exp(-2.0 * t)
        wave = 0.4 * wave * envelope + rng.normal(0, 0.01, n)
        sf.write(str(folder / f"{stem}.wav"), wave.astype(np.float32), rate, subtype="PCM_16")
    return root


def warm_page_cache(samples) -> None:
    for s in samples:
        for path in (s.image, s.audio):
            if path is not None:
                with open(path, "rb") as f:
                    f.read()


def decode_loop(
    samples, *, height: int, width: int, channels: int, sample_rate: int, num_samples: int
) -> float:
    """Seconds for one process to decode and resample every file (no records, no workers)."""
    from crossmodal.data.decode import DecodeError, read_audio, read_image

    start = time.perf_counter()
    for s in samples:
        try:
            if s.image is not None:
                read_image(s.image, height=height, width=width, channels=channels)
            if s.audio is not None:
                read_audio(s.audio, sample_rate=sample_rate, num_samples=num_samples)
        except DecodeError:
            pass
    return time.perf_counter() - start


# --- preprocessing (no TensorFlow in this process yet: workers fork, as in the CLI) -----------


def bench_preprocess(source: Path, work: Path, repeats: int, reruns: int) -> tuple[dict, Path]:
    from crossmodal.data.preprocess import preprocess
    from crossmodal.data.scan import scan

    assert "tensorflow" not in sys.modules, "preprocess must be measured before TF is imported"
    samples = scan(source).samples
    n = len(samples)
    log(f"preprocess: {n} pairs from {source}")
    warm_page_cache(samples)
    outs: list[Path] = []
    layout: dict = {}
    cpu: dict[str, list[float]] = {"preprocess": [], "decode": []}

    def fresh() -> float:
        out = work / f"prep-{len(outs)}"
        shutil.rmtree(out, ignore_errors=True)
        cpu_start, start = cpu_seconds(), time.perf_counter()
        prep = preprocess(source, out)
        took = time.perf_counter() - start
        cpu["preprocess"].append(cpu_seconds() - cpu_start)
        outs.append(out)
        img, aud = prep.info["image"], prep.info["audio"]
        layout.update(
            height=img["height"],
            width=img["width"],
            channels=img["channels"],
            sample_rate=aud["sample_rate"],
            num_samples=aud["num_samples"],
        )
        return took

    def decode() -> float:
        cpu_start = cpu_seconds()
        took = decode_loop(samples, **layout)
        cpu["decode"].append(cpu_seconds() - cpu_start)
        return took

    fresh()  # warm-up: imports of the worker side, and the layout for the decode loop
    cpu["preprocess"].clear()
    first, decode = alternate(repeats, fresh, decode)
    keep = outs[-1]
    for old in outs[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    rerun = []
    for _ in range(reruns):
        start = time.perf_counter()
        prep = preprocess(source, keep)
        rerun.append(time.perf_counter() - start)
        assert prep.reused, "an unchanged re-run must reuse the prepared folder"
    cli = [
        run_measured(
            [*entry_point(), "preprocess", str(source), "--out", str(keep), "-q"], env=child_env()
        )[0]
        for _ in range(max(1, reruns // 2))
    ]
    t_first, t_decode, t_rerun = best(first), best(decode), best(rerun)
    result = {
        "pairs": n,
        "layout": layout,
        "decode_pairs_per_second": round(n / t_decode, 1),
        "preprocess_pairs_per_second": round(n / t_first, 1),
        "preprocess_vs_decode": ratio(t_decode, t_first),
        "preprocess_first_seconds": round(t_first, 3),
        "preprocess_rerun_seconds": round(t_rerun, 4),
        "preprocess_cache_speedup": ratio(t_first, t_rerun, 1),
        "preprocess_rerun_cli_seconds": round(best(cli), 3),
        # CPU seconds (all processes) of the two sides: the work each does, whatever the load
        "preprocess_cpu_seconds": round(min(cpu["preprocess"]), 3),
        "decode_cpu_seconds": round(min(cpu["decode"]), 3),
        "runs": {"first": _r(first), "decode": _r(decode), "rerun": _r(rerun, 4)},
    }
    return result, keep


def _r(values: list[float], digits: int = 3) -> list[float]:
    return [round(v, digits) for v in values]


# --- the model, through the CLI ---------------------------------------------------------------


def train_model(
    prep_dir: Path, work: Path, subset: int, members: int | None = None
) -> tuple[Path, dict]:
    """One small model, trained once by `crossmodal train` on a manifest of `subset` pairs
    (`--members` passed on when given: the cost of an ensemble), and what that command took."""
    from crossmodal.data.preprocess import open_prepared

    rows = [s for s in open_prepared(prep_dir).samples if s["label"] is not None][:subset]
    manifest = work / "train-subset.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "audio", "label"])
        for s in rows:
            writer.writerow([s["image"] or "", s["audio"] or "", s["label"]])
    model = work / "model"
    cmd = [*entry_point(), "train", str(manifest), "--out", str(model), "--epochs", "1", "-q"]
    if members is not None:
        cmd += ["--members", str(members)]
    log(f"training one model on {len(rows)} pairs: {' '.join(cmd[1:])}")
    start = time.perf_counter()
    done = subprocess.run(
        cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"crossmodal train failed ({done.returncode}): {done.stderr[-2000:]}")
    seconds = time.perf_counter() - start
    log(f"trained in {seconds:.1f} s")
    return model, {"train_cli_seconds": round(seconds, 2), "train_cli_pairs": len(rows)}


# --- start-up -------------------------------------------------------------------------------------


def bench_help(repeats: int) -> dict:
    env = child_env()
    cli = entry_point()
    typer_cmd = [sys.executable, "-c", "import typer"]
    run_measured([*cli, "--help"], env=env)  # warm the file cache for both
    run_measured(typer_cmd, env=env)
    helps, typers = alternate(
        repeats,
        lambda: run_measured([*cli, "--help"], env=env)[0],
        lambda: run_measured(typer_cmd, env=env)[0],
    )
    t_help, t_typer = best(helps), best(typers)
    return {
        "help_seconds": round(t_help, 3),
        "typer_import_seconds": round(t_typer, 3),
        "help_vs_typer": ratio(t_help, t_typer),
        "runs": {"help": _r(helps), "typer": _r(typers)},
    }


def bench_cold_start(model: Path, pair: tuple[str, str], repeats: int) -> dict:
    env = child_env()
    predict_cmd = [*entry_point(), "predict", str(model), *pair]
    bare_cmd = [
        sys.executable,
        "-c",
        f"import tensorflow as tf; tf.saved_model.load({str(model / 'saved_model')!r})",
    ]

    def one(cmd):
        wall, code, _ = run_measured(cmd, env=env)
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {code}")
        return wall

    predict, bare = alternate(repeats, lambda: one(predict_cmd), lambda: one(bare_cmd))
    per_run = [p / b for p, b in zip(predict, bare, strict=True)]
    return {
        "cold_start_seconds": round(best(predict), 3),
        "bare_load_seconds": round(best(bare), 3),
        "cold_start_overhead": ratio(best(predict), best(bare)),
        "runs": {"predict": _r(predict), "bare": _r(bare), "ratio": _r(per_run)},
    }


def bench_predict_rss(model: Path, tree: Path, small: Path, n_small: int, n_big: int) -> dict:
    env = child_env()
    out = {}
    for name, inputs, n in (("small", small, n_small), ("big", tree, n_big)):
        wall, code, rss = run_measured(
            [*entry_point(), "predict", str(model), str(inputs)], env=env
        )
        if code != 0:
            raise RuntimeError(f"predict on {inputs} exited {code}")
        out[name] = (n, wall, rss)
        log(f"predict {n} tiny pairs: {wall:.1f} s, peak RSS {rss / 2**20:.0f} MiB")
    (n1, w1, r1), (n2, w2, r2) = out["small"], out["big"]
    return {
        "predict_rss_inputs": [n1, n2],
        "predict_peak_rss_mib": [round(r1 / 2**20, 1), round(r2 / 2**20, 1)],
        "predict_rss_wall_seconds": [round(w1, 2), round(w2, 2)],
        "predict_rss_ratio": ratio(r2, r1),
    }


# --- TensorFlow in this process ------------------------------------------------------------------


@contextlib.contextmanager
def stdout_to_stderr():
    """TensorFlow's C++ side may print to file descriptor 1; stdout is for the JSON only."""
    global _REAL_STDOUT
    sys.stdout.flush()
    _REAL_STDOUT = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(_REAL_STDOUT, 1)
        os.close(_REAL_STDOUT)
        _REAL_STDOUT = None


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import warnings

    warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    import tensorflow as tf

    return tf


def bench_predict_throughput(
    model: Path, folder: Path, pair: tuple[str, str], work: Path, repeats: int
) -> dict:
    """`crossmodal predict`'s command function, in-process; start-up removed by difference."""
    from cli.predict import predict as predict_command
    from crossmodal.artifacts import open_model_dir
    from crossmodal.data.scan import scan_inputs

    samples = scan_inputs([str(folder)]).samples
    n = len(samples)
    cfg = open_model_dir(model).config
    shapes = dict(
        height=cfg.image.height,
        width=cfg.image.width,
        channels=cfg.image.channels,
        sample_rate=cfg.audio.sample_rate,
        num_samples=cfg.audio.num_samples,
    )
    out = work / "predictions.jsonl"

    def run(inputs) -> float:
        start = time.perf_counter()
        predict_command(model=model, inputs=[Path(p) for p in inputs], out=out, quiet=True)
        return time.perf_counter() - start

    log(f"predict throughput: {n} pairs vs one pair, in-process")
    run(pair)  # warm-up: TensorFlow's first SavedModel load
    big, one, decode = alternate(
        repeats, lambda: run([folder]), lambda: run(pair), lambda: decode_loop(samples, **shapes)
    )
    rate = rate_by_difference(n, best(big), 1, best(one))
    decode_rate = n / best(decode)
    return {
        "predict_pairs": n,
        "predict_pairs_per_second": None if rate is None else round(rate, 1),
        "predict_decode_pairs_per_second": round(decode_rate, 1),
        "predict_vs_decode": ratio(rate, decode_rate),
        "runs": {"n_pairs": _r(big), "one_pair": _r(one), "decode": _r(decode)},
    }


def matmul_flops(tf, runs: int = 10) -> float:
    a = tf.random.normal([MATMUL_N, MATMUL_N])
    b = tf.random.normal([MATMUL_N, MATMUL_N])
    tf.matmul(a, b).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * MATMUL_N**3 / best(times)


def analytic_forward_flops(net) -> float:
    """2 x multiply-adds of every Conv2D and Dense layer, per sample, from the layer shapes."""
    import keras

    flops = 0.0
    for layer in net._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.kernel.shape[2]
            flops += 2.0 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            flops += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return flops


def train_step_flops(tf, trainer, batch) -> tuple[float, str]:
    """FLOPs of one training step (forward, backward, update) for `batch`."""
    try:
        graph = tf.function(trainer.train_step).get_concrete_function(batch).graph
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        total = tf.compat.v1.profiler.profile(graph=graph, options=opts).total_float_ops
        if total > 0:
            return float(total), "tf.compat.v1.profiler float_operation on Trainer.train_step"
    except Exception as exc:  # the profiler is a v1 tool; fall back rather than fail
        log(f"profiler failed ({type(exc).__name__}: {exc}); counting layers instead")
    n = int(batch[1].shape[0])
    return 3.0 * n * analytic_forward_flops(trainer.net), "3 x forward Conv2D/Dense FLOPs"


def _timed_fit(trainer, ds, epochs: int, steps: int | None = None, cpu: list | None = None):
    """Wall seconds of one `fit`; its CPU seconds (all threads) are appended to `cpu`."""
    cpu_start, start = time.process_time(), time.perf_counter()
    trainer.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0)
    if cpu is not None:
        cpu.append(time.process_time() - cpu_start)
    return time.perf_counter() - start


def bench_xla(tf, prep, steps: int, repeats: int, members: int | None = None) -> dict:
    """In-memory steps/s with and without XLA, on the network with augmentation off."""
    import dataclasses

    import keras

    from crossmodal.config import AugmentConfig
    from crossmodal.model import build_network
    from crossmodal.train import _optimizer
    from crossmodal.trainer import Trainer

    cfg = _config(prep, members)
    cfg = cfg.replace(augment=dataclasses.replace(AugmentConfig(), enabled=False))
    batch = _synthetic_batch(tf, cfg)
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    trainers = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        trainer = Trainer(
            build_network(cfg),
            aux_weight=cfg.model.aux_loss_weight,
            label_smoothing=cfg.train.label_smoothing,
        )
        trainer.compile(optimizer=_optimizer(cfg, steps * BATCH_SIZE), jit_compile=jit)
        if jit and not trainer.jit_compile:
            return {"xla_speedup": None, "xla_note": "Keras refused jit_compile for this model"}
        log(f"xla: compiling (jit_compile={jit})")
        try:
            warm = _timed_fit(trainer, ds, 1, 2)
        except tf.errors.OpError as exc:  # an op without an XLA kernel
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            why = [ln for ln in lines if "tf2xla" in ln or "unsupported" in ln.lower()]
            frames = [ln for ln in lines if "crossmodal/" in ln]  # where, in our code
            first = (why or lines or ["unknown error"])[0][:160]
            if frames:
                first += f" (at crossmodal/{frames[-1].split('crossmodal/')[-1]})"
            log(f"xla: cannot compile (jit_compile={jit}): {first}")
            return {"xla_speedup": None, "xla_note": f"XLA cannot compile this network: {first}"}
        log(f"xla: warm-up (jit_compile={jit}) {warm:.1f} s")
        trainers.append(trainer)
    plain, xla = alternate(repeats, *[lambda t=t: _timed_fit(t, ds, 1, steps) for t in trainers])
    return {
        "xla_speedup": ratio(best(plain), best(xla)),
        "xla_steps_per_second": round(steps / best(xla), 3),
        "no_xla_steps_per_second": round(steps / best(plain), 3),
        "xla_note": "network with augmentation off (XLA cannot compile the augmenting one)",
    }


def _config(prep, members: int | None = None):
    """The default settings at the data's shapes (`members`, when given, replacing the
    default number of ensemble members)."""
    import dataclasses

    from crossmodal.config import ImageConfig, RunConfig

    img, aud = prep.info["image"], prep.info["audio"]
    cfg = RunConfig()
    if members is not None:
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, members=members))
    return cfg.replace(
        train=dataclasses.replace(cfg.train, batch_size=BATCH_SIZE),  # the default is 0: auto
        image=ImageConfig(img["height"], img["width"], img["channels"]),
        audio=dataclasses.replace(
            cfg.audio, sample_rate=aud["sample_rate"], clip_seconds=aud["clip_seconds"]
        ),
        labels=tuple(prep.classes),
    )


def _synthetic_batch(tf, cfg):
    n = BATCH_SIZE
    x = {
        "image": tf.cast(
            tf.random.uniform([n, cfg.image.height, cfg.image.width, cfg.image.channels], 0, 255),
            tf.uint8,
        ),
        "image_present": tf.ones([n]),
        "audio": tf.random.normal([n, cfg.audio.num_samples]) * 0.1,
        "audio_present": tf.ones([n]),
    }
    return x, tf.zeros([n], tf.int32)


def _unknown_batch(*structure):
    import tensorflow as tf

    return tf.nest.map_structure(
        lambda t: tf.compat.v1.placeholder_with_default(t, [None, *t.shape[1:]]), structure
    )


def bench_pipeline(
    tf, prep, steps: int, epochs: int, repeats: int, members: int | None = None
) -> dict:
    """The real input pipeline vs in-memory tensors, same network, Trainer and optimizer."""
    from crossmodal.train import _Job

    cfg = _config(prep, members)
    usable = [s["index"] for s in prep.samples if s["label"] is not None]
    steps = min(steps, len(usable) // BATCH_SIZE)
    train_idx = usable[: steps * BATCH_SIZE]  # whole batches only: one shape, no retrace
    align = {"active": False, "distill": None}
    job = _Job(cfg, prep, None, train_idx, [], align, None, None, log)
    net, trainer = job.build(cfg)
    real_ds = job.train_ds()
    batch = next(iter(real_ds))
    # In memory: one cached batch, repeated; its batch dimension is relaxed to None, as in the
    # real pipeline, so both sides run the very same traced train function.
    memory_ds = tf.data.Dataset.from_tensors(batch).repeat().map(_unknown_batch)
    log(f"pipeline: warm-up ({steps} steps per epoch)")
    warm = _timed_fit(trainer, real_ds, 1)
    _timed_fit(trainer, memory_ds, 1, 2)
    log(f"pipeline: warm-up took {warm:.1f} s; timing {repeats} x {epochs} epochs per side")
    cpu_real: list[float] = []
    cpu_memory: list[float] = []
    real, memory = alternate(
        repeats,
        lambda: _timed_fit(trainer, real_ds, epochs, cpu=cpu_real),
        lambda: _timed_fit(trainer, memory_ds, epochs, steps, cpu=cpu_memory),
    )
    total = steps * epochs
    real_sps, memory_sps = total / best(real), total / best(memory)
    per_run = [m / r for r, m in zip(real, memory, strict=True)]
    flops, source = train_step_flops(tf, trainer, (batch[0], batch[1]))
    peak = matmul_flops(tf)
    achieved = flops * real_sps
    return {
        "pipeline_efficiency": ratio(best(memory), best(real)),
        "pipeline_steps_per_second": round(real_sps, 3),
        "memory_steps_per_second": round(memory_sps, 3),
        "train_samples_per_second": round(real_sps * BATCH_SIZE, 1),
        "train_flops_per_step": round(flops),
        "train_flops_source": source,
        "achieved_flops_per_second": round(achieved),
        "matmul_flops_per_second": round(peak),
        "compute_utilization": ratio(achieved, peak),
        # CPU seconds per step (all threads of this process, tf.data's included), medians
        "pipeline_cpu_seconds_per_step": round(median(cpu_real) / total, 4),
        "memory_cpu_seconds_per_step": round(median(cpu_memory) / total, 4),
        "pipeline_cpu_efficiency": ratio(median(cpu_memory), median(cpu_real)),
        "pipeline_runs": {"real": _r(real), "memory": _r(memory), "ratio": _r(per_run)},
        "pipeline_setup": {
            "steps_per_epoch": steps,
            "epochs_per_timing": epochs,
            "batch_size": BATCH_SIZE,
        },
    }


# --- the run -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, help="A folder of pairs or a manifest (default: generated)."
    )
    p.add_argument("--pairs", type=int, help="Generated pairs (default 2000; 300 with --quick).")
    p.add_argument("--quick", action="store_true", help="Small sizes, one repeat: a smoke run.")
    p.add_argument("--repeats", type=int, help="Timings per side (default 5; 1 with --quick).")
    p.add_argument("--train-steps", type=int, help="Steps per epoch in the pipeline figures.")
    p.add_argument("--skip-xla", action="store_true", help="Do not measure xla_speedup.")
    p.add_argument("--no-avdigits", action="store_true", help="Ignore ../shared/datasets.")
    p.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temp).")
    p.add_argument(
        "--members",
        type=int,
        help="Ensemble members of every model measured (default: the default's).",
    )
    args = p.parse_args(argv)
    from crossmodal.config import MAX_MEMBERS  # no TensorFlow behind it

    if args.members is not None and not 1 <= args.members <= MAX_MEMBERS:
        p.error(f"--members must be 1 to {MAX_MEMBERS}")  # one line and exit 2, not a traceback
    args.pairs = args.pairs or (300 if args.quick else 2000)
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.train_steps = args.train_steps or (4 if args.quick else 8)
    # short timings, many of them: the fastest escapes the other jobs' bursts best
    args.pipeline_repeats = 2 * args.repeats
    args.epochs = 1
    args.reruns = 3 if args.quick else 5
    args.rss = (100, 1000) if args.quick else (1000, 10_000)
    args.train_subset = 96 if args.quick else 320
    return args


def run(args: argparse.Namespace, work: Path) -> dict:
    os.environ["CROSSMODAL_CACHE"] = str(work / "cache")  # never the user's ~/.cache
    started = time.time()
    results: dict = {}
    if args.data is not None:
        source = args.data.resolve()
    else:
        source = work / "data"
        log(f"generating {args.pairs} pairs")
        generate_pairs(source, args.pairs)
    n_small, n_big = args.rss
    tree = work / "rss"
    log(f"generating {n_big} tiny pairs for the memory figure")
    generate_pairs(tree, n_big, size=16, seconds=(0.25, 0.25), seed=1)

    # 1. Preprocessing, before TensorFlow is imported here (the CLI's workers fork too).
    prep_result, prep_dir = bench_preprocess(source, work, args.repeats, args.reruns)
    results.update({k: v for k, v in prep_result.items() if k != "runs"})
    results["preprocess_runs"] = prep_result["runs"]
    if AVDIGITS.is_dir() and not args.no_avdigits:
        try:
            avd, avd_dir = bench_preprocess(AVDIGITS, work / "avdigits", args.repeats, args.reruns)
            shutil.rmtree(avd_dir, ignore_errors=True)
            results["avdigits"] = avd
        except Exception as exc:  # report, do not lose the rest of the run
            results["avdigits"] = {"error": f"{type(exc).__name__}: {exc}"}

    # 2. Child processes: the model, --help, cold start, peak memory.
    model, train_cli = train_model(prep_dir, work, args.train_subset, args.members)
    results.update(train_cli)
    first = next(s for s in _scan(source) if s.image and s.audio)
    pair = (first.image, first.audio)
    log("help and typer import")
    results.update(_flat(bench_help(max(5, args.repeats)), "help_runs"))
    log("cold start")
    results.update(_flat(bench_cold_start(model, pair, min(args.repeats, 3)), "cold_start_runs"))
    log("predict peak memory")
    small = tree / "0"
    results.update(bench_predict_rss(model, tree, small, n_small, n_big))

    # 3. TensorFlow in this process.
    with stdout_to_stderr():
        tf = import_tensorflow()
        from crossmodal.data.preprocess import open_prepared

        results.update(
            _flat(bench_predict_throughput(model, source, pair, work, args.repeats), "predict_runs")
        )
        prep = open_prepared(prep_dir)
        if args.quick or args.skip_xla:
            results["xla_speedup"] = None
        else:
            results.update(
                bench_xla(tf, prep, args.train_steps, min(args.repeats, 3), args.members)
            )
        results.update(
            bench_pipeline(
                tf, prep, args.train_steps, args.epochs, args.pipeline_repeats, args.members
            )
        )
        results["setup"] = {
            "data": str(args.data) if args.data else f"generated, {args.pairs} pairs",
            "quick": args.quick,
            "repeats": args.repeats,
            "members": json.loads((model / "config.json").read_text())["model"]["members"],
            "cpu_count": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "seconds": round(time.time() - started, 1),
        }
    return results


def _scan(source: Path):
    from crossmodal.data.scan import scan

    return scan(source).samples


def _flat(result: dict, runs_key: str) -> dict:
    out = {k: v for k, v in result.items() if k != "runs"}
    if "runs" in result:
        out[runs_key] = result["runs"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        work_ctx = contextlib.nullcontext(str(args.keep.resolve()))
    else:
        work_ctx = tempfile.TemporaryDirectory(prefix="crossmodal-bench-")
    with work_ctx as work:
        results = run(args, Path(work))
    misses = all_misses(results)
    results["targets"] = {k: f"{op} {t}" for k, (op, t) in TARGETS.items()}
    results["misses"] = misses
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    sys.stdout.flush()
    for miss in misses:
        print(f"MISS {miss}", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
