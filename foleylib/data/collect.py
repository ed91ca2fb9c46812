"""Data collection (paper Sec. III-A): home-made files and folders, and online videos via yt-dlp.

Everything collected lands in one folder with a `manifest.json` that records, per file, where it came from
and its sha256. yt-dlp (the maintained successor of the paper's pytube) is optional: `pip install
'foleylib[download]'`.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from foleylib.core.errors import Batch, InputError
from foleylib.core.fsutil import atomic_path, sha256_file, write_json
from foleylib.core.names import safe_name
from foleylib.data import media

# the paper's YouTube data is 640x360 MP4; take that or the nearest smaller
YTDLP_FORMAT = "b[height<=360][ext=mp4]/bv*[height<=360][ext=mp4]+ba[ext=m4a]/b[height<=360]/b"


class _QuietLogger:
    """yt-dlp prints its own errors; ours is the one line the CLI shows."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


@dataclass(frozen=True)
class Collected:
    name: str  # file name inside the collection folder
    origin: str  # local path or URL
    kind: str  # "file" or "url"
    sha256: str
    bytes: int
    status: str  # "copied", "downloaded" or "unchanged"


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def local_videos(source: Path) -> list[Path]:
    """The video files a local source names: the file itself, or every video under a folder."""
    if not source.exists():
        raise InputError("no such file or folder", source)
    if source.is_dir():
        found = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in media.VIDEO_EXTENSIONS)
        if not found:
            raise InputError(f"no video files ({', '.join(media.VIDEO_EXTENSIONS)}) in folder", source)
        return found
    return [source]


def _manifest_path(out_dir: Path) -> Path:
    return out_dir / "manifest.json"


def read_manifest(out_dir: str | Path) -> dict[str, dict]:
    """Collected items by file name ({} for a new folder)."""
    try:
        items = json.loads(_manifest_path(Path(out_dir)).read_text())["items"]
    except (OSError, ValueError, KeyError):
        return {}
    return {item["name"]: item for item in items}


def _free_name(out_dir: Path, stem: str, suffix: str, sha: str, known: dict[str, dict]) -> tuple[str, bool]:
    """(file name, already there?) for content `sha`: reuse a name holding the same bytes, never clobber."""
    name = f"{safe_name(stem)}{suffix.lower()}"
    if name in known and known[name]["sha256"] == sha and (out_dir / name).exists():
        return name, True
    if (out_dir / name).exists():
        name = f"{safe_name(stem)}-{sha[:8]}{suffix.lower()}"
        return name, (out_dir / name).exists()
    return name, False


def _store(path: Path, origin: str, kind: str, out_dir: Path, known: dict[str, dict], move: bool) -> Collected:
    """Copy (or move) a checked video into the collection folder under a safe, unique name."""
    sha = sha256_file(path)
    name, present = _free_name(out_dir, path.stem, path.suffix, sha, known)
    if not present:
        with atomic_path(out_dir / name) as tmp:
            (shutil.move if move else shutil.copyfile)(path, tmp)
    status = "unchanged" if present else ("downloaded" if kind == "url" else "copied")
    return Collected(name, origin, kind, sha, (out_dir / name).stat().st_size, status)


def collect_file(path: Path, out_dir: Path, known: dict[str, dict]) -> Collected:
    """Check that `path` is a video (with sound) and copy it in."""
    info = media.probe(path)
    if not info.has_video:
        raise InputError("no video stream", path)
    return _store(path, str(path.resolve()), "file", out_dir, known, move=False)


def download(url: str, out_dir: Path, known: dict[str, dict]) -> Collected:
    """Download one online video with yt-dlp (as a library call, no shell) and store it."""
    try:
        import yt_dlp
    except ImportError:
        raise InputError("downloading needs yt-dlp: pip install 'foleylib[download]'", url) from None
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".download.") as scratch:
        options = {
            "format": YTDLP_FORMAT, "outtmpl": str(Path(scratch) / "%(title).80s.%(ext)s"),
            "restrictfilenames": True, "noplaylist": True, "quiet": True, "no_warnings": True,
            "noprogress": True, "ffmpeg_location": media.ffmpeg_exe(), "socket_timeout": 20, "retries": 1,
            "logger": _QuietLogger(),
        }
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                ydl.download([url])
        except yt_dlp.utils.DownloadError as err:
            reason = str(err).removeprefix("ERROR: ").splitlines()[0]
            raise InputError(f"download failed: {reason}", url) from None
        files = [p for p in Path(scratch).iterdir() if p.suffix.lower() in media.VIDEO_EXTENSIONS]
        if not files:
            raise InputError("download produced no video file", url)
        media.probe(files[0])
        return _store(files[0], url, "url", out_dir, known, move=True)


def collect(sources: Iterable[str], out_dir: str | Path,
            on_error: Callable[[InputError], None] | None = None,
            on_item: Callable[[Collected], None] | None = None) -> tuple[list[Collected], list[InputError]]:
    """Collect local files, folders and URLs into `out_dir`; bad sources are reported and skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    known = read_manifest(out_dir)
    batch, items = Batch(on_error), []

    def record(item: Collected | None) -> None:
        if item is None:
            return
        items.append(item)
        known[item.name] = {**asdict(item), "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if on_item:
            on_item(item)

    for source in sources:
        if is_url(source):
            record(batch.run(download, source, out_dir, known))
            continue
        for path in batch.run(local_videos, Path(source)) or []:
            if out_dir.resolve() not in path.resolve().parents:  # never re-collect the collection
                record(batch.run(collect_file, path, out_dir, known))
    write_json(_manifest_path(out_dir), {"items": sorted(known.values(), key=lambda item: item["name"])})
    return items, batch.errors
