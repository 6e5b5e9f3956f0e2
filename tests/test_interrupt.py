"""Killed and concurrent `preprocess` runs: an output folder that exists is complete, the next
run cleans up and says so, and two runs never write the same folder.

To kill a run at a chosen moment (not at whatever moment a sleep happens to hit), the command
is started through a small wrapper that pauses it at that point and writes a marker file; the
test waits for the marker, then sends the signal. The pause is the only difference from
`python -m cli.main`: the kill, the cleanup and the next run are the real ones.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossmodal.errors import CrossmodalError
from crossmodal.locking import lock_path, output_lock, remove_stale
from tests.synth import make_folder_dataset

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 100  # 200 samples: at least SERIAL_BELOW, so --workers 2 really uses a pool
FLAGS = ["--sample-rate", "8000"]

HOOK = """
import os, sys, time
from crossmodal.data import preprocess as P

stage, marker = os.environ["XM_STAGE"], os.environ["XM_MARKER"]
pause = float(os.environ.get("XM_PAUSE", "60"))

def reached():
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(pause)

if stage == "probe":
    probe = P._probe_chunk
    def paused(samples):
        out = probe(samples)
        reached()
        return out
    P._probe_chunk = paused
elif stage == "decode":  # after the first shard is written
    write = P._write_chunk
    def paused(*args):
        out = write(*args)
        reached()
        return out
    P._write_chunk = paused
elif stage == "commit":  # everything written, not yet renamed into place
    commit = P.fsio.replace_dir
    def paused(tmp, out):
        reached()
        commit(tmp, out)
    P.fsio.replace_dir = paused
elif stage == "swap":  # the old folder moved aside, the new one not yet in place
    def paused(tmp, out):
        os.replace(out, out.with_name(f".{out.name}.old-{os.getpid()}"))
        reached()
    P.fsio.replace_dir = paused
sys.argv = ["crossmodal", *sys.argv[1:]]
from cli.main import main
main()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_folder_dataset(
        tmp_path_factory.mktemp("interrupt") / "data", ["a", "b"], PER_CLASS, size=(4, 4)
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def start_paused(stage: str, marker: Path, *args: str, pause: float = 60) -> subprocess.Popen:
    """Run `crossmodal ARGS` in its own process group, paused at `stage`; wait until there."""
    env = {**os.environ, "XM_STAGE": stage, "XM_MARKER": str(marker), "XM_PAUSE": str(pause)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOK, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: Ctrl-C reaches the workers too, as on a terminal
    )
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {stage}:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"never reached {stage}")
        time.sleep(0.02)
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of a process group this test started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def group_gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def looks_complete(out: Path) -> bool:
    return (out / "dataset.json").exists()


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def rerun(data: Path, out: Path, *extra: str) -> dict:
    proc = cli("preprocess", str(data), "--out", str(out), *FLAGS, *extra, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["num_samples"] == 2 * PER_CLASS and info["reused"] is False
    assert info["counts"]["both"] == 2 * PER_CLASS and info["skipped"] == []
    assert leftovers(out) == [f".{out.name}.lock"]  # temp folders gone; the lock file stays
    return info


# --- SIGKILL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage, workers",
    [("probe", "1"), ("decode", "1"), ("commit", "1"), ("decode", "2")],
)
def test_sigkill_never_leaves_a_complete_looking_folder(data, tmp_path, stage, workers):
    out = tmp_path / "prep"
    args = ["preprocess", str(data), "--out", str(out), *FLAGS, "--workers", workers]
    proc = start_paused(stage, tmp_path / "marker", *args)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # the main process only: workers are orphaned
        proc.wait(timeout=30)
        # orphaned workers notice their parent is gone and exit (no lingering processes)
        assert group_gone(proc.pid), "worker processes outlived their killed parent"
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not looks_complete(out)
    if stage != "probe":
        assert any(".tmp-" in name for name in leftovers(out))  # really killed mid-write
    info = rerun(data, out)  # the lock died with the process: not refused
    removed = f"removed an incomplete earlier run (.prep.tmp-{proc.pid}); starting clean"
    assert info["notes"] == ([] if stage == "probe" else [removed])  # probing writes nothing


def test_sigkill_while_replacing_an_older_folder(data, tmp_path):
    out = tmp_path / "prep"
    rerun(data, out, "--clip-seconds", "0.2")  # a complete folder with other settings
    args = ["preprocess", str(data), "--out", str(out), *FLAGS]
    proc = start_paused("swap", tmp_path / "marker", *args)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_group(proc)
    assert not out.exists()  # the old one moved aside, the new one not yet in place
    assert {f".prep.old-{proc.pid}", f".prep.tmp-{proc.pid}"} <= set(leftovers(out))
    info = rerun(data, out)
    (note,) = info["notes"]
    assert note.startswith("removed an incomplete earlier run (") and note.endswith("clean")
    assert f".prep.old-{proc.pid}" in note and f".prep.tmp-{proc.pid}" in note


# --- SIGINT (Ctrl-C) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage, workers",
    [("probe", "1"), ("decode", "1"), ("commit", "1"), ("decode", "2")],
)
def test_ctrl_c_says_interrupted_and_cleans_up(data, tmp_path, stage, workers):
    out = tmp_path / "prep"
    args = ["preprocess", str(data), "--out", str(out), *FLAGS, "--workers", workers]
    # a paused pool worker must finish its chunk before the run can clean up: pause briefly
    pause = 2.0 if workers == "2" else 60.0
    proc = start_paused(stage, tmp_path / "marker", *args, pause=pause)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C: the whole foreground group
        _, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["interrupted"]
    assert not looks_complete(out)
    assert leftovers(out) == [".prep.lock"]  # it cleaned up after itself
    info = rerun(data, out)
    assert info["notes"] == []  # nothing left to clean: a plain fresh run


# --- two runs, one folder -----------------------------------------------------------------------


def test_second_run_on_the_same_out_is_refused(data, tmp_path):
    out = tmp_path / "prep"
    with output_lock(out):  # another run is writing `out`
        proc = cli("preprocess", str(data), "--out", str(out), *FLAGS)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: {out} is being written by another crossmodal run (pid {os.getpid()}); "
            "wait for it or choose another --out"
        ]
        assert not out.exists()
    rerun(data, out)  # released: the next run goes ahead


def test_lock_is_exclusive_within_a_process(tmp_path):
    out = tmp_path / "x"
    with output_lock(out) as path:
        assert path == lock_path(out) == tmp_path / ".x.lock"
        assert path.read_text().split("\n")[0] == str(os.getpid())
        busy = r"being written by another crossmodal run \(pid"
        with pytest.raises(CrossmodalError, match=busy), output_lock(out):
            pass
    with output_lock(out):  # released on exit, also after an error
        pass
    assert not out.exists()


def _sleep(started, seconds: float) -> None:
    started.set()
    time.sleep(seconds)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_child_does_not_keep_the_lock(tmp_path):
    out = tmp_path / "x"
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    child = ctx.Process(target=_sleep, args=(started, 30))
    try:
        with output_lock(out):
            child.start()  # inherits the descriptor... and closes it at once
            assert started.wait(30)
        with output_lock(out):  # the child still lives, yet the lock is free
            assert child.is_alive()
    finally:
        child.kill()
        child.join()


def test_lock_released_when_its_holder_is_killed(tmp_path):
    out = tmp_path / "x"
    code = (
        "import sys, time; from crossmodal.locking import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(CrossmodalError, match=f"pid {proc.pid}"), output_lock(out):
            pass
        proc.kill()
        proc.wait(timeout=30)
        with output_lock(out):  # no stale lock
            pass
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_remove_stale_keeps_own_and_unrelated(tmp_path):
    out = tmp_path / "x"
    for name in (".x.tmp-1", ".x.old-2", f".x.tmp-{os.getpid()}", ".xy.tmp-3", ".x.lock"):
        (tmp_path / name).mkdir() if name != ".x.lock" else (tmp_path / name).touch()
    assert remove_stale(out, kinds=("tmp", "old")) == [".x.old-2", ".x.tmp-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".x.lock",
        f".x.tmp-{os.getpid()}",
        ".xy.tmp-3",
    ]


def test_shared_cache_being_filled_is_waited_for_then_reused(data):
    """Two runs on the same data (two workers of a cluster, say) share one cache: the second
    waits for the first instead of failing, then reads what it wrote."""
    import threading
    import time

    from crossmodal.data.preprocess import PrepSettings, cache_dir_for, preprocess

    settings = PrepSettings(sample_rate=8_000, clip_seconds=0.1)
    results = []
    with output_lock(cache_dir_for(data, settings)):  # a train on the same data, busy
        waiter = threading.Thread(
            target=lambda: results.append(preprocess(data, None, settings=settings, workers=1))
        )
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and not results, "the second run must wait, not fail"
    waiter.join(timeout=120)
    assert results and results[0].info["num_samples"] == 200
    assert preprocess(data, None, settings=settings, workers=1).info["num_samples"] == 200


@pytest.mark.parametrize("into", ["cache", "folder"])
def test_a_script_without_a_main_guard_fails_with_one_clear_line_instead_of_hanging(
    data, tmp_path, into
):
    """After `import tensorflow`, decoding workers are spawned and import the main script
    again. A script that calls crossmodal at its top level runs once more in each worker.
    Without a check, a worker preprocessing into the cache (as `evaluate` and `train` do) would
    wait forever on the lock its parent holds, and one writing a named folder would report "being
    written by another crossmodal run". Instead the worker refuses, and the caller gets a
    CrossmodalError that names the fix."""
    out = tmp_path / "prepared"
    script = tmp_path / "unguarded.py"
    target = "" if into == "cache" else f", {str(out)!r}"
    script.write_text(
        "import sys\n"
        "import tensorflow  # noqa: F401\n"
        "from crossmodal.data.preprocess import preprocess\n"
        f"preprocess(sys.argv[1]{target}, workers=2)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CROSSMODAL_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(data)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]  # the caller's own error, after the workers'
    assert last.startswith("crossmodal.errors.CrossmodalError: a decoding worker"), last
    assert 'if __name__ == "__main__":' in last
    assert "being written by another" not in done.stderr
    assert not list(tmp_path.rglob("dataset.json"))  # nothing left looking complete
