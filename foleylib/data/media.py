"""Video and audio in and out, through the ffmpeg binary of imageio-ffmpeg (moviepy parses its probe).

The only module that talks to ffmpeg, moviepy or cv2. Frames are uint8 RGB [T, H, W, 3]; audio is
float32 [N, C] in [-1, 1]. Decoding streams (frames are resized as they arrive), writing is atomic.
"""
from __future__ import annotations

import math
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

from foleylib.core.config import as_fraction
from foleylib.core.device import thread_count
from foleylib.core.errors import InputError
from foleylib.core.fsutil import atomic_path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
MAX_PIXELS = 8192 * 8192  # larger frames are refused (one decoded RGB frame would take over 200 MB)
TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}  # ffmpeg's text-art "video" decoders (any .txt file opens)
_CHANNELS_BY_LAYOUT = {"mono": 1, "stereo": 2, "downmix": 2, "binaural": 2, "quad": 4, "hexagonal": 6, "octagonal": 8,
                       "cube": 8, "hexadecagonal": 16}  # layouts named "5.1", "7.1.4" are counted by their digits
MAX_SAMPLE_RATE, MAX_CHANNELS = 768_000, 64  # more is a damaged header, not a recording
SHORT_STREAM_S, SHORT_STREAM_FRACTION = 0.5, 0.01  # how much less than the probed duration a stream may decode to
RESIZES = {  # iter_frames' ffmpeg filter per resize: "cv2" resizes the full frames after it, "ffmpeg" does it all
    "cv2": "scale={w}:{h}",
    "ffmpeg": "format=gbrp,scale={w}:{h}:flags=area",  # area-averages full-resolution RGB, as cv2: within 1 level
}


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _decoder_threads(threads: int | None) -> list[str]:
    """ffmpeg's options for its decoders' threads (None: ffmpeg's own choice)."""
    return [] if threads is None else ["-threads", str(threads)]


def cv2_threads(n: int) -> AbstractContextManager[None]:
    """cv2 runs its loops on n threads inside (a setting of the whole process, restored on leaving): for a job per
    core, where more threads per job only contend."""
    return thread_count(cv2.getNumThreads, cv2.setNumThreads, n)


@dataclass(frozen=True)
class Probe:
    """What a media file holds. Sizes are as displayed (rotation applied)."""

    path: str
    duration: float  # seconds (container)
    has_video: bool
    has_audio: bool
    fps: float | None = None  # nominal video frame rate
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    video_duration: float | None = None
    audio_sr: int | None = None
    audio_channels: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a folder, expected a media file", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else "ffmpeg failed"


def _parse_info(stderr: str, path: Path) -> dict:
    """moviepy's reading of `ffmpeg -i`; any failure of it on odd output is an InputError, its warnings are not
    printed (they would break the one-line error)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return FFmpegInfosParser(stderr, str(path)).parse()
    except Exception as err:  # noqa: BLE001 - a parser of untrusted text: whatever it trips on, the file is bad
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"unreadable media information: {reason}", path) from None


def is_positive(value, integral: bool = False) -> bool:
    """A finite number above zero (an int when `integral`), not a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, (int,) if integral else (int, float)):
        return False
    return value > 0 and (isinstance(value, int) or math.isfinite(value))


def _channels(stderr: str) -> int | None:
    """The channel count of the first audio stream from its layout ("stereo", "5.1(side)", "3 channels")."""
    match = re.search(r"Stream #\S+.*?: Audio: .*?, \d+ Hz, ([^,]+)", stderr)
    if not match:
        return None
    layout = match.group(1).strip()
    counted = re.match(r"(\d+) channels", layout)
    if counted:
        return int(counted.group(1))
    layout = layout.split("(")[0]
    if re.fullmatch(r"\d+(\.\d+)+", layout):  # 2.1, 5.1, 7.1.4: speakers plus LFE (plus heights)
        return sum(int(n) for n in layout.split("."))
    return _CHANNELS_BY_LAYOUT.get(layout)


def _audio_codec(stderr: str) -> str | None:
    """The codec of the first audio stream (None for ffmpeg's "none": it could not tell)."""
    match = re.search(r"Stream #\S+.*?: Audio: (\w+)", stderr)
    return match.group(1) if match and match.group(1) != "none" else None


def _checked(info: Probe, audio_codec: str | None, path: Path) -> Probe:
    """The probe if every field that is read later is there and possible; else InputError naming the field."""
    if not is_positive(info.duration):
        raise InputError(f"impossible duration {info.duration!r} s", path)
    if info.has_video:
        if not info.video_codec:
            raise InputError("video stream of unknown codec (damaged header?)", path)
        if not (is_positive(info.width, integral=True) and is_positive(info.height, integral=True)):
            raise InputError("video stream without a frame size (damaged header?)", path)
        if not is_positive(info.fps):
            raise InputError(f"video stream without a frame rate ({info.fps!r})", path)
    if info.has_audio:
        if not audio_codec:
            raise InputError("audio stream of unknown codec (damaged header?)", path)
        if not (is_positive(info.audio_sr, integral=True) and info.audio_sr <= MAX_SAMPLE_RATE):
            raise InputError(f"audio stream with an impossible sample rate ({info.audio_sr!r} Hz)", path)
        if not (is_positive(info.audio_channels, integral=True) and info.audio_channels <= MAX_CHANNELS):
            raise InputError(f"audio stream with an unknown or impossible channel count ({info.audio_channels!r})",
                             path)
    return info


def probe(path: str | Path) -> Probe:
    """Probe a media file; raises InputError when it is missing or not a readable media file, or when a field
    that is read later (duration, frame size and rate, codecs, sample rate, channels) is missing or impossible."""
    path = Path(path)
    _check_file(path)
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, errors="replace"
    ).stderr
    if "Stream #" not in out:
        raise InputError(f"not a readable media file: {_last_error_line(out)}", path)
    if re.search(r"Duration: N/A", out):
        raise InputError("no duration: a still image or a live stream, not a video file", path)
    info = _parse_info(out, path)
    if info.get("video_codec_name") in TEXT_CODECS:
        raise InputError("a text file, not a video (ffmpeg would draw its characters as frames)", path)
    width = height = None
    if info.get("video_found") and isinstance(info.get("video_size"), list | tuple) and len(info["video_size"]) == 2:
        width, height = info["video_size"]
        rotation = info.get("video_rotation", 0)
        if isinstance(rotation, int | float) and abs(rotation) in (90, 270):
            width, height = height, width
    has_video, has_audio = bool(info.get("video_found")), bool(info.get("audio_found"))
    return _checked(Probe(
        path=str(path),
        duration=info.get("duration"),
        has_video=has_video,
        has_audio=has_audio,
        fps=info.get("video_fps") if has_video else None,
        width=width,
        height=height,
        video_codec=info.get("video_codec_name") if info.get("video_codec_name") != "none" else None,
        video_duration=info.get("video_duration") if has_video else None,
        audio_sr=info.get("audio_fps") if has_audio else None,
        audio_channels=_channels(out) if has_audio else None,
    ), _audio_codec(out) if has_audio else None, path)


def iter_frames(path: str | Path, fps: float | None = None, size: int | None = 64,
                start: float = 0.0, resize: str = "cv2", info: Probe | None = None, threads: int | None = None,
                audio_out: Path | None = None, sr: int = 16000, channels: int = 2) -> Iterator[np.ndarray]:
    """Yield the frames of a video one at a time as uint8 RGB [size, size, 3].

    `fps` resamples to a constant frame rate by timestamps (variable frame rate input is fine);
    None keeps the source frames. `size` None keeps the source size, otherwise each frame is squashed to a
    square with area averaging: `resize` "cv2" decodes whole frames and resizes them with cv2 (INTER_AREA, as the
    paper), "ffmpeg" lets ffmpeg's own scaler do it while decoding (faster, not bit-exact; see RESIZES).
    `start` seeks to that second first (ffmpeg decodes from the keyframe before it and drops what precedes it).
    `info`: the file's probe when the caller has it (else it is probed); `threads`: ffmpeg's decoder threads
    (None: its own choice). With `audio_out` the same ffmpeg also decodes the audio stream, as read_audio(path, sr,
    channels) does, to that raw file (one pass over the file for both; read it with read_raw_audio).
    """
    info = info or probe(path)
    if not info.has_video or not info.width:
        raise InputError("no video stream", path)
    if info.width * info.height > MAX_PIXELS:
        raise InputError(f"frames of {info.width}x{info.height} are over the limit of {MAX_PIXELS // 10 ** 6} "
                         "megapixels", path)
    if resize not in RESIZES:
        raise ValueError(f"unknown resize {resize!r} (one of {', '.join(RESIZES)})")
    w, h = (size, size) if size is not None and resize == "ffmpeg" else (info.width, info.height)
    seek = ["-ss", f"{start:.6f}"] if start > 0 else []
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", *_decoder_threads(threads), *seek, "-i", str(path),
           "-map", "0:v:0", "-an"]
    rate = as_fraction(fps) if fps is not None else None
    resample = [f"fps={rate.numerator}/{rate.denominator}"] if rate else []
    # every frame at the probed (or asked) size, also where the stream changes size midway (H.264 may)
    cmd += ["-vf", ",".join([*resample, RESIZES[resize].format(w=w, h=h)]), "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-"]
    if audio_out is not None:
        cmd += [*_audio_output(sr, channels), "-y", str(audio_out)]
    nbytes, count = w * h * 3, 0
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a flood of decoder errors cannot block ffmpeg
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, bufsize=nbytes)
        try:
            while True:
                buf = proc.stdout.read(nbytes)
                if len(buf) < nbytes:
                    break
                frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                if size is not None and (w, h) != (size, size):
                    frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
                count += 1
                yield frame
            if proc.wait() != 0:
                errors.seek(0)
                what = "video" if audio_out is None else "video or audio"
                raise InputError(f"cannot decode {what}: {_last_error_line(errors.read().decode(errors='replace'))}",
                                 path)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    if rate:
        check_decoded(float(count / rate), (info.video_duration or info.duration) - start, "video", path)


def check_decoded(decoded: float, promised: float, stream: str, path: str | Path) -> None:
    """Refuse a stream that decodes to clearly less than the probe promised (seconds): a cut or damaged file is
    refused, not used in part. Codec delays and streams of slightly different lengths are allowed for:
    max(SHORT_STREAM_S, SHORT_STREAM_FRACTION of the promise)."""
    if decoded < promised - max(SHORT_STREAM_S, SHORT_STREAM_FRACTION * promised):
        raise InputError(f"the {stream} decodes to {decoded:.2f} s of the {promised:.2f} s the file promises "
                         "(cut or damaged)", path)


def read_frames(path: str | Path, fps: float | None = None, size: int | None = 64) -> np.ndarray:
    """All frames as uint8 [T, size, size, 3] (see iter_frames)."""
    frames = list(iter_frames(path, fps=fps, size=size))
    if not frames:
        raise InputError("video has no decodable frames", path)
    return np.stack(frames)


def read_audio(path: str | Path, sr: int = 16000, channels: int = 2, info: Probe | None = None) -> np.ndarray:
    """The first audio stream as float32 [N, channels] in [-1, 1], resampled to `sr`.

    Mono is duplicated to every channel, more channels than asked are downmixed (ffmpeg's matrix). `info`: the
    file's probe when the caller has it (else it is probed).
    """
    info = info or probe(path)
    if not info.has_audio:
        raise InputError("no audio stream", path)
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), *_audio_output(sr, channels), "-"]
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise InputError(f"cannot decode audio: {_last_error_line(res.stderr.decode(errors='replace'))}", path)
    return _checked_audio(res.stdout, sr, channels, info, path)


def read_raw_audio(raw: Path, sr: int, channels: int, info: Probe, path: str | Path) -> np.ndarray:
    """The audio iter_frames decoded to `raw` beside the frames of `path` (probed as `info`), as read_audio
    returns it."""
    return _checked_audio(raw.read_bytes(), sr, channels, info, path)


def _audio_output(sr: int, channels: int) -> list[str]:
    """ffmpeg's options for an output of the first audio stream as raw float32 at `sr` with `channels`."""
    return ["-map", "0:a:0", "-vn", "-ac", str(channels), "-ar", str(sr), "-f", "f32le"]


def _checked_audio(data: bytes, sr: int, channels: int, info: Probe, path: str | Path) -> np.ndarray:
    """Decoded raw float32 audio as [N, channels] in [-1, 1]; refused when empty or clearly shorter than probed."""
    audio = np.frombuffer(data, np.float32).reshape(-1, channels)
    if len(audio) == 0:
        raise InputError("audio stream has no samples", path)
    check_decoded(len(audio) / sr, info.duration, "audio", path)
    return np.clip(audio, -1.0, 1.0)


def _run_ffmpeg(cmd: list[str], out: Path, stdin_frames: Iterable[np.ndarray] | None = None) -> None:
    """Run an ffmpeg command that writes `out`, optionally feeding raw frames on stdin."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_frames is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if stdin_frames is not None:
            for frame in stdin_frames:
                proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            proc.stdin.close()
        stderr = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg could not write {out}: {_last_error_line(stderr)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _audio_input(audio: np.ndarray, sr: int, raw: Path) -> list[str]:
    audio = np.ascontiguousarray(np.clip(audio, -1, 1), dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    raw.write_bytes(audio.tobytes())
    return ["-f", "f32le", "-ar", str(sr), "-ac", str(audio.shape[1]), "-i", str(raw)]


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float,
                audio: np.ndarray | None = None, sr: int | None = None, crf: int = 18) -> Path:
    """Encode RGB frames (and optional float audio [N, C]) as H.264 + AAC MP4, atomically."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]

    def all_frames():
        yield first
        yield from frames

    with atomic_path(path) as tmp, tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "audio.f32"
        cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-"]
        if audio is not None:
            cmd += _audio_input(audio, sr, raw)
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", str(crf), "-pix_fmt", "yuv420p"]
        if audio is not None:
            cmd += ["-c:a", "aac", "-b:a", "192k"]
        cmd += ["-movflags", "+faststart", str(tmp)]
        _run_ffmpeg(cmd, path, all_frames())
    return path


def write_audio(path: str | Path, audio: np.ndarray, sr: int) -> Path:
    """Write float audio [N, C] as WAV (16-bit PCM) or MP3 (LAME, 192 kb/s) by the suffix, atomically."""
    path = Path(path)
    codecs = {".wav": ["-c:a", "pcm_s16le"], ".mp3": ["-c:a", "libmp3lame", "-b:a", "192k"]}
    if path.suffix.lower() not in codecs:
        raise InputError("unsupported audio format (use .wav or .mp3)", path)
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory() as scratch:
        cmd = [ffmpeg_exe(), "-y", "-v", "error"] + _audio_input(audio, sr, Path(scratch) / "audio.f32")
        _run_ffmpeg(cmd + codecs[path.suffix.lower()] + [str(tmp)], path)
    return path


def mux_audio(video: str | Path, audio: np.ndarray, sr: int, out: str | Path, keep_original: bool = False,
              start: float = 0.0, duration: float | None = None) -> Path:
    """Copy `video` to `out` (MP4: H.264 + AAC) with `audio` as its sound, exactly as long as the video.

    `start`/`duration` (seconds) cut a part of the video first (re-encoding it, for an exact cut). The audio
    is zero-padded or trimmed to the video's duration. With `keep_original`, the source's own audio (the
    same part) follows as a second track. Uncut H.264 video is copied, anything else re-encoded.
    """
    info = probe(video)
    if not info.has_video:
        raise InputError("no video stream", video)
    available = (info.video_duration or info.duration) - start
    if available <= 0:
        raise InputError(f"starts at {start:g} s, after the video's end", video)
    duration = min(duration, available) if duration else available
    cut = start > 0 or duration < available
    n = int(round(duration * sr))
    audio = np.asarray(audio, np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    audio = np.concatenate([audio[:n], np.zeros((max(0, n - len(audio)), audio.shape[1]), np.float32)])
    out = Path(out)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "audio.f32"
        seek = ["-ss", f"{start:.6f}", "-t", f"{duration:.6f}"] if cut else []
        cmd = [ffmpeg_exe(), "-y", "-v", "error", *seek, "-i", str(video)] + _audio_input(audio, sr, raw)
        cmd += ["-map", "0:v:0", "-map", "1:a:0"]
        if keep_original and info.has_audio:
            cmd += ["-map", "0:a:0"]
        video_codec = ["-c:v", "copy"] if info.video_codec == "h264" and not cut else \
            ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
        cmd += video_codec + ["-c:a", "aac", "-b:a", "192k", "-t", f"{duration:.6f}", "-movflags", "+faststart",
                              str(tmp)]
        try:
            _run_ffmpeg(cmd, out)
        except RuntimeError as err:  # the source video is what ffmpeg could not read
            raise InputError(f"cannot copy its video: {str(err).rsplit(': ', 1)[-1]}", video) from None
        try:
            copied = probe(tmp).has_video
        except InputError:
            copied = False
        if not copied:  # a damaged stream can give ffmpeg no frames to copy, without an error
            raise InputError("its video stream gives no frames to copy (damaged?)", video)
    return out


def resample_s16(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """float64 [M, C]: float audio [N, C] (or [N]) at sr Hz resampled to target_sr by ffmpeg's default resampler
    and read back as 16-bit samples / 32768, as moviepy 1.x reads a file's audio at that rate."""
    audio = np.asarray(audio, np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    with tempfile.TemporaryDirectory() as scratch:
        cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", *_audio_input(audio, sr, Path(scratch) / "audio.f32"),
               "-ar", str(target_sr), "-f", "s16le", "-"]
        res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"ffmpeg could not resample audio: {_last_error_line(res.stderr.decode(errors='replace'))}")
    return np.frombuffer(res.stdout, np.int16).reshape(-1, channels) / 32768.0
