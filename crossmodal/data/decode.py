"""Decode image and audio files into arrays of the model's shape.

Runs in worker processes, so it imports neither TensorFlow nor Keras. Every failure a file can
cause becomes a `DecodeError` whose message is the reason shown to the user.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, ImageOps, UnidentifiedImageError

from crossmodal import fsio
from crossmodal.errors import CrossmodalError

# Decompression-bomb guard: PIL warns above this many pixels and refuses above twice it.
MAX_IMAGE_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


# EXIF orientations that rotate or mirror (2-8); 5-8 also swap width and height.
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation a camera recorded (1 = as stored); phones store photos sideways
    and say so here."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block: the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(img: Image.Image) -> Image.Image:
    """The image as it is meant to be seen (its EXIF orientation applied)."""
    if _orientation(img) == 1:
        return img
    return ImageOps.exif_transpose(img)


class DecodeError(CrossmodalError):
    """A file that cannot be used; the message is the reason."""


# What Pillow's decoders raise on a corrupt, truncated or hostile file (beyond OSError, its
# plugins let through parsing errors of every kind; Image.open itself catches the same set).
IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    ZeroDivisionError,
    OverflowError,
)


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    grayscale: bool


@dataclass(frozen=True)
class AudioInfo:
    seconds: float
    sample_rate: int
    channels: int


def _source(path: str):
    """What PIL and soundfile open: the path itself, or a remote file's bytes in memory (read
    through tf.io.gfile in this process; `ram://` exists only in the process that wrote it)."""
    if not fsio.is_remote(path):
        return path
    try:
        return io.BytesIO(fsio.read_bytes(path))
    except OSError as exc:
        raise DecodeError(str(exc)) from None


def _open_image(path: str) -> Image.Image:
    source = _source(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            img.size  # noqa: B018  (forces the header to be parsed)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecodeError(
            f"image is larger than {MAX_IMAGE_PIXELS:,} pixels (possible decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise DecodeError(_empty_or("not a readable image", path)) from None
    except FileNotFoundError:
        raise DecodeError("does not exist") from None
    except IMAGE_ERRORS as exc:
        raise DecodeError(f"cannot open image: {exc}") from None
    if img.width * img.height > MAX_IMAGE_PIXELS:
        img.close()
        raise DecodeError(
            f"image is larger than {MAX_IMAGE_PIXELS:,} pixels (possible decompression bomb)"
        )
    return img


def _is_grayscale(img: Image.Image) -> bool:
    if img.mode in GRAYSCALE_MODES:
        return True
    if img.mode == "P":
        palette = img.getpalette() or []
        rgb = np.asarray(palette[: 3 * 256], dtype=np.int16).reshape(-1, 3)
        return bool(np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))
    return False


# PNG colour types whose colour needs no palette: (colour type -> grayscale, bit depths).
_PNG_TYPES = {
    0: (True, (1, 2, 4, 8, 16)),
    2: (False, (8, 16)),
    4: (True, (8, 16)),
    6: (False, (8, 16)),
}


def _png_info(head: bytes) -> ImageInfo | None:
    """Size and colour from a plain PNG's IHDR, when its chunks reach IDAT within `head`.

    Anything else (a palette, an odd depth, a bomb, a chunk cut short) returns None and goes
    the library's way, so its errors and messages stay the library's."""
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or len(head) < 33:
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    kind = _PNG_TYPES.get(colour)
    if kind is None or depth not in kind[1] or not 0 < width * height <= MAX_IMAGE_PIXELS:
        return None
    pos = 8
    while pos + 8 <= len(head):  # Pillow's open reads the chunks up to the first IDAT
        length, chunk = struct.unpack(">I4s", head[pos : pos + 8])
        if chunk == b"IDAT":
            return ImageInfo(width=width, height=height, grayscale=kind[0])
        pos += 12 + length
    return None


def _wav_info(head: bytes, size: int) -> AudioInfo | None:
    """Frames, rate and channels from a plain PCM or float WAV's fmt and data chunks.

    Only when the data chunk lies whole inside the file's `size` bytes and holds whole frames;
    anything else returns None and is left to libsndfile."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, length = struct.unpack("<4sI", head[pos : pos + 8])
        body = pos + 8
        if chunk == b"fmt " and length >= 16 and body + length <= len(head):
            tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", head[body : body + 16])
            if tag == 0xFFFE and length >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag follows
                tag = struct.unpack("<H", head[body + 24 : body + 26])[0]
            fmt = (tag, channels, rate, align, bits)
        elif chunk == b"data":
            if fmt is None or body + length > size:
                return None
            tag, channels, rate, align, bits = fmt
            if (
                tag not in (1, 3)  # integer PCM, IEEE float
                or bits not in (8, 16, 24, 32, 64)
                or channels < 1
                or rate < 1
                or align != channels * bits // 8
                or length == 0
                or length % align
            ):
                return None
            return AudioInfo(seconds=length // align / rate, sample_rate=rate, channels=channels)
        pos = body + length + (length & 1)  # chunks are padded to an even size
    return None


# A data chunk length that says "unknown" (a recorder or a pipe that never went back to fill
# it in): the samples run to the end of the file, as libsndfile reads them.
_UNKNOWN_WAV_LENGTHS = (0, 0xFFFFFFFF)


def _wav_truncation(head: bytes, size: int) -> str | None:
    """Why a RIFF WAVE file of `size` bytes is cut short: its data chunk declares more bytes
    than the file holds (libsndfile reads what is there without a word). None otherwise,
    and for anything that is not a plain WAV or whose data chunk lies beyond `head`."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = struct.unpack("<4sI", head[pos : pos + 8])
        body = pos + 8
        if chunk == b"data":
            present = max(0, size - body)
            if length in _UNKNOWN_WAV_LENGTHS or length >= 0x7FFFF000 or length - present <= 8:
                return None  # unknown, whole, or short by less than one frame's padding
            return (
                f"truncated audio file: its header declares {length:,} bytes of samples, "
                f"the file holds {present:,}"
            )
        pos = body + length + (length & 1)
    return None


def _check_whole_wav(path: str, source) -> None:
    """Refuse a WAV cut short (a copy or download that stopped), as a truncated image is."""
    if isinstance(source, io.BytesIO):
        data = source.getbuffer()
        head = (bytes(data[:4096]), len(data))
    else:
        head = _head(path)
    why = _wav_truncation(*head) if head else None
    if why is not None:
        raise DecodeError(why)


def _head(path: str, size: int = 4096) -> tuple[bytes, int] | None:
    """The first bytes of a local file and its size; None for remote files or on any error
    (the library path then reports it)."""
    if fsio.is_remote(path):
        return None
    try:
        with open(path, "rb") as f:
            return f.read(size), os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        return None


def probe_image(path: str) -> ImageInfo:
    """Size and colour without decoding the pixels (a palette image loads its palette).

    A plain PNG is read from its first 4 KB directly (a tenth of Pillow's open); other files
    and anything unusual go through Pillow."""
    head = _head(path)
    info = _png_info(head[0]) if head else None
    if info is not None:
        return info
    img = _open_image(path)
    try:
        with img:
            width, height = img.width, img.height
            if _orientation(img) in _TRANSPOSED:
                width, height = height, width
            return ImageInfo(width=width, height=height, grayscale=_is_grayscale(img))
    except IMAGE_ERRORS as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from None


def _to_8bit(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode (16-bit, palette, CMYK, alpha, float) to L or RGB, 8 bits."""
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        peak = arr.max(initial=0)
        if img.mode == "F" and peak <= 1.0:
            top = 1.0  # float image in [0, 1]
        elif img.mode in ("I;16", "I;16L", "I;16B", "I;16N") or peak > 255:
            top = 65535.0
        else:
            top = 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on black, so transparent pixels read as background, not as stale colour.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("L" if channels == 1 else "RGB")


def read_image(path: str, *, height: int, width: int, channels: int) -> np.ndarray:
    """uint8 [height, width, channels]; animated images give their first frame."""
    img = _open_image(path)
    try:
        with img:
            img.seek(0)
            img.load()
            img = _to_8bit(upright(img), channels)
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except DecodeError:
        raise
    except IMAGE_ERRORS as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from None
    return arr.reshape(height, width, channels)


def probe_audio(path: str) -> AudioInfo:
    """Duration, rate and channels from the header. A plain PCM or float WAV is read from its
    first 4 KB directly (a tenth of libsndfile's open); other files go through libsndfile."""
    head = _head(path)
    info = _wav_info(*head) if head else None
    if info is not None:
        return info
    source = _source(path)
    _check_whole_wav(path, source)
    try:
        with sf.SoundFile(source) as f:  # the header only; faster than sf.info
            frames, rate, channels = f.frames, f.samplerate, f.channels
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DecodeError(
            _empty_or(f"not a readable audio file: {_sf_reason(exc, path)}", path)
        ) from None
    if rate <= 0 or frames <= 0:
        raise DecodeError("audio file has no samples")
    return AudioInfo(seconds=frames / rate, sample_rate=rate, channels=channels)


def _sf_reason(exc: Exception, path: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    prefix = f"Error opening {path!r}: "  # the path is already beside every reason
    if text.startswith("Error opening <") and ">: " in text:  # a remote file read into memory
        return text.split(">: ", 1)[1]
    return text[len(prefix) :] if text.startswith(prefix) else text


def _empty_or(reason: str, path: str) -> str:
    """A zero-byte or missing file says so, rather than "format not recognised" (or
    libsndfile's "System error")."""
    try:
        if fsio.size_and_mtime(path)[0] == 0:
            return "empty file (0 bytes)"
    except FileNotFoundError:
        return "does not exist"
    except Exception:  # other OSErrors locally, tf.errors.OpError remotely: the first reason
        pass
    return reason


def fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Crop from the start or pad the end with silence; the graph does the same at serving."""
    if wave.shape[0] >= num_samples:
        return wave[:num_samples]
    return np.pad(wave, (0, num_samples - wave.shape[0]))


def read_audio(path: str, *, sample_rate: int, num_samples: int) -> np.ndarray:
    """float32 [num_samples] mono at `sample_rate`; reads only what the crop keeps."""
    source = _source(path)
    _check_whole_wav(path, source)
    try:
        with sf.SoundFile(source) as f:
            if f.samplerate <= 0:
                raise DecodeError("audio file has an invalid sample rate")
            # Enough source frames for num_samples after resampling, plus a margin for the filter.
            need = int(math.ceil(num_samples * f.samplerate / sample_rate)) + 64
            data = f.read(frames=need, dtype="float32", always_2d=True)
            source_rate = f.samplerate
    except DecodeError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise DecodeError(
            _empty_or(f"not a readable audio file: {_sf_reason(exc, path)}", path)
        ) from None
    if data.shape[0] == 0:
        raise DecodeError("audio file has no samples")
    with np.errstate(over="ignore", invalid="ignore"):  # huge or NaN samples: handled below
        wave = data.mean(axis=1)  # [frames]: mix to mono
    if not np.all(np.isfinite(wave)):
        # NaN/Inf must never reach training; zero them and keep the rest of the clip.
        wave = np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
    if source_rate != sample_rate:
        wave = soxr.resample(wave, source_rate, sample_rate, quality="HQ")
        if not np.all(np.isfinite(wave)):
            # Finite but huge float samples (say 3e38) overflow inside the filter.
            wave = np.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0)
    wave = np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)
    return fit_length(wave, num_samples)
