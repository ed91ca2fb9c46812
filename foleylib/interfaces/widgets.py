"""The interactive studio (ipywidgets): pick a video and a run, generate a part's audio, compare and scrub.

Every callback is a plain method, so tests drive the studio without a browser (`generate_button.click()`,
`frame_slider.value = k`). Key widgets carry stable CSS classes (`foley-*`, see `Studio`) for browser tests.
The model sees frames at the run's size; a copy of each frame at `display_size` px is kept for display.
"""
from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imsave

from foleylib.core.config import GENERATION_PRECISIONS
from foleylib.core.device import free_cores
from foleylib.core.errors import InputError
from foleylib.data.media import VIDEO_EXTENSIONS, read_audio
from foleylib.evaluation.notebook import audio_player
from foleylib.evaluation.plots import plot_waveform
from foleylib.generation.dub import decode_part, make_engine, plan_part
from foleylib.generation.generate import FrameAudio, run_frames
from foleylib.generation.sampling import Sampler
from foleylib.training.checkpoint import load_model

CURSOR_STYLE = {"color": "tab:red", "linewidth": 1.6, "gid": "frame_cursor", "zorder": 4}  # over the traces


def find_videos(folder: str | Path) -> list[str]:
    """Video files under `folder` (recursive, sorted); none when it does not exist."""
    folder = Path(folder)
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS) if folder.is_dir() else []


def find_runs(folder: str | Path) -> list[str]:
    """Run folders (holding a model.pt) under `folder`, sorted; none when it does not exist."""
    folder = Path(folder)
    return sorted(str(p.parent) for p in folder.rglob("model.pt")) if folder.is_dir() else []


def _read_json(path: Path) -> dict:
    """A JSON object from `path`, or {} when it is missing or unreadable (a choice list never fails)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _relative(path: str | Path, folder: Path) -> str:
    path = Path(path)
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def video_choices(folder: str | Path) -> list[tuple[str, str]]:
    """(label, video path) for the studio's video list: every video file under `folder`, then every aligned clip
    under it (a folder with meta.json) whose source video still exists, by its name, length and source."""
    folder = Path(folder)
    choices = [(_relative(v, folder), v) for v in find_videos(folder)]
    for meta_path in sorted(folder.rglob("meta.json")) if folder.is_dir() else []:
        meta = _read_json(meta_path)
        source = meta.get("source")
        if isinstance(source, str) and Path(source).is_file() and (meta_path.parent / "frames.npy").exists():
            choices.append((f"{meta_path.parent.name} (aligned clip{_about_clip(meta)}): {Path(source).name}",
                            source))
    return choices


def _about_clip(meta: dict) -> str:
    """', 6.0 s, 16000 Hz, 25 fps' from a clip's meta.json; '' where its values are not numbers."""
    try:
        return f", {float(meta['seconds']):.1f} s, {int(meta['sr'])} Hz, {float(meta['fps']):g} fps"
    except (KeyError, TypeError, ValueError):
        return ""


def run_choices(folder: str | Path) -> list[tuple[str, str]]:
    """(label, run folder) for the studio's run list: each run's folder with what its config.json says (architecture,
    loss, video input, steps, the clips it trained on)."""
    folder = Path(folder)
    choices = []
    for run in find_runs(folder):
        config = _read_json(Path(run) / "config.json")
        model, train, data = (config.get(key) for key in ("model", "train", "data"))
        model, train = (part if isinstance(part, dict) else {} for part in (model, train))
        data = [Path(d).name for d in data if isinstance(d, str)] if isinstance(data, list) else []
        about = [model.get("arch"), model.get("loss"), model.get("video_input"),
                 f"{model['video_lookahead']} frames ahead" if model.get("video_lookahead") else None,
                 f"{train['steps']} steps" if "steps" in train else None,
                 f"on {', '.join(data[:3])}{' ...' if len(data) > 3 else ''}" if data else None]
        details = ", ".join(str(a) for a in about if a)
        choices.append((f"{_relative(run, folder)}" + (f" ({details})" if details else ""), run))
    return choices


def _offer(dropdown: w.Dropdown, choices: list[tuple[str, str]], value: str) -> None:
    """Set a dropdown's choices and pick `value` (a path given by hand joins the list under its own name)."""
    if value and value not in [v for _, v in choices]:
        choices = [*choices, (value, value)]
    dropdown.options = choices
    dropdown.value = value if value else (choices[0][1] if choices else None)


def wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """16-bit WAV file bytes of float audio [N, C] in [-1, 1] (values outside are clipped)."""
    return audio_player(np.clip(audio, -1, 1), sr).data


def png_bytes(image: np.ndarray | Figure, dpi: int = 80) -> bytes:
    """PNG file bytes of a uint8 RGB image [H, W, 3] or of a matplotlib Figure."""
    buf = io.BytesIO()
    if isinstance(image, Figure):
        image.savefig(buf, format="png", dpi=dpi)
    else:
        imsave(buf, image, format="png")
    return buf.getvalue()


MAX_TAKES = 8  # takes the studio makes at once


def _labelled(text: str, widget: w.Widget) -> w.VBox:
    return w.VBox([w.HTML(f"<b>{text}</b>"), widget])


class Studio:
    """Pick a video and a run folder, generate the audio of a part, play it beside the original, scrub frames.

    The video list holds the videos and aligned clips found under `videos`, the run list the trained runs found
    under `runs` (described by their config); a `video` or `run` path given here joins its list.
    Widgets and their CSS classes: video (foley-video), run (foley-run), start, seconds, temperature, top_p
    (foley-top-p: nucleus sampling mass, 1 = off; mu-law runs), method,
    precision (foley-precision: cached generation's weights, fp32 or int8 for speed), guidance (foley-guidance:
    classifier-free guidance weight, 1 = none; mu-law runs), seed,
    takes (foley-takes: takes made at once, seeds seed, seed + 1, ...; cached generation), generate_button
    (foley-generate), progress (foley-progress, samples done of the part), status (foley-status, seconds and
    real-time factor), message (foley-message, one-line errors), original_audio (foley-original-audio), take
    (foley-take: which take the player and the waveform show), generated_audio (foley-generated-audio), waveform
    (foley-waveform, generated vs original with frame markers and a red cursor at the shown frame), frame_slider
    (foley-frame-slider, global frame index), frame_image (foley-frame); `ui` holds them all (foley-studio). After
    generating, `result` is a summary, `all_takes` [takes, N, C] the takes and `audio` the one shown, `original`
    (None without an audio track) and `frames` the part.
    """

    def __init__(self, videos: str | Path = "../data", runs: str | Path = "../outputs", video: str = "", run: str = "",
                 start: float = 0.0, seconds: float = 2.0, temperature: float = 1.0, method: str = "auto",
                 seed: int = 0, takes: int = 1, display_size: int = 160, device: str = "auto",
                 precision: str = "fp32", guidance: float = 1.0, top_p: float = 1.0):
        self.videos_dir, self.runs_dir, self.display_size, self.device = Path(videos), Path(runs), display_size, device
        self.video = w.Dropdown(description="video", layout=w.Layout(width="50%"))
        self.run = w.Dropdown(description="run", layout=w.Layout(width="50%"))
        self.start = w.BoundedFloatText(start, min=0, max=1e6, step=0.5, description="start (s)")
        self.seconds = w.BoundedFloatText(seconds, min=0.04, max=600, step=0.5, description="length (s)")
        self.temperature = w.FloatSlider(temperature, min=0, max=2, step=0.05, description="temperature",
                                         style={"description_width": "initial"})
        self.top_p = w.FloatSlider(top_p, min=0.05, max=1, step=0.05, description="top-p")
        self.method = w.Dropdown(options=["auto", "naive", "cached"], value=method, description="method")
        self.precision = w.Dropdown(options=GENERATION_PRECISIONS, value=precision, description="weights")
        self.guidance = w.FloatSlider(guidance, min=0, max=4, step=0.25, description="guidance")
        self.seed = w.IntText(seed, description="seed")
        self.takes = w.BoundedIntText(takes, min=1, max=MAX_TAKES, description="takes")
        self.take = w.ToggleButtons(options=[("take 1", 0)], value=0, style={"button_width": "auto"})
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.progress = w.IntProgress(0, min=0, max=1, description="progress")
        self.status, self.message = w.HTML(""), w.HTML("")
        self.original_audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.generated_audio = w.Audio(format="wav", autoplay=False, loop=False)
        self.original_label = w.HTML("<b>original</b>")
        self.waveform = w.Image(format="png")
        self.frame_slider = w.IntSlider(0, min=0, max=0, description="frame", continuous_update=False)
        self.frame_image, self.frame_label = w.Image(format="png"), w.HTML("")
        self.results = w.VBox([
            w.HBox([w.VBox([self.original_label, self.original_audio]),
                    _labelled("generated", w.VBox([self.take, self.generated_audio]))]),
            self.waveform, self.frame_slider, w.HBox([self.frame_image, self.frame_label])],
            layout=w.Layout(display="none"))
        self.ui = w.VBox([w.HBox([self.video, self.run]),
                          w.HBox([self.start, self.seconds, self.seed, self.takes]),
                          w.HBox([self.temperature, self.top_p, self.guidance]),
                          w.HBox([self.method, self.precision, self.generate_button]),
                          w.HBox([self.progress, self.status]), self.message, self.results])
        for widget, name in ((self.video, "video"), (self.run, "run"), (self.generate_button, "generate"),
                             (self.progress, "progress"), (self.status, "status"), (self.message, "message"),
                             (self.original_audio, "original-audio"), (self.generated_audio, "generated-audio"),
                             (self.waveform, "waveform"), (self.frame_slider, "frame-slider"), (self.takes, "takes"),
                             (self.take, "take"), (self.precision, "precision"), (self.guidance, "guidance"),
                             (self.top_p, "top-p"),
                             (self.frame_image, "frame"), (self.ui, "studio")):
            widget.add_class(f"foley-{name}")
        self.generate_button.on_click(self.generate)
        self.frame_slider.observe(self.show_frame, "value")
        self.take.observe(self.show_take, "value")
        self.result: dict | None = None
        self.audio = self.all_takes = self.original = self.frames = None
        self.first, self.fps, self.figure, self.cursors = 0, 25.0, None, []
        self.scan(str(video), str(run))

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return self.ui._repr_mimebundle_(**kwargs)

    def scan(self, video: str | None = None, run: str | None = None) -> None:
        """Refresh the video and run lists from their folders; pick `video` and `run` (default: keep the picks)."""
        _offer(self.video, video_choices(self.videos_dir), self.video.value if video is None else video)
        _offer(self.run, run_choices(self.runs_dir), self.run.value if run is None else run)

    def error(self, err: InputError) -> None:
        """Show one line `error: <reason> (<path>)` in the UI."""
        self.message.value = f"<span style='color:#b00'>error: {err.reason} ({err.path})</span>"

    def generate(self, _button: w.Button | None = None) -> dict | None:
        """The Generate button: decode the chosen part, generate its audio frame by frame with the progress bar,
        then show the players, the waveform and the frame slider. Returns the summary (None after an error)."""
        self.message.value = ""
        self.generate_button.disabled = True
        try:
            return self._generate()
        except InputError as err:
            self.error(err)
            return None
        finally:
            self.generate_button.disabled = False

    def _generate(self) -> dict:
        video, run = Path(self.video.value or ""), self.run.value
        if not run:
            raise InputError("choose a run folder", "run")
        if not self.video.value:
            raise InputError("choose a video", "video")
        model, spec = load_model(run, self.device)
        info, first, count = plan_part(video, spec, self.start.value, self.seconds.value)
        self.progress.value, self.progress.max = 0, spec.frame_start(first + count) - spec.frame_start(first)
        shown = []

        def on_frame(piece: FrameAudio, elapsed: float) -> None:
            shown.append(next(display))
            self.progress.value += len(piece.audio)
            self.status.value = f"{self.progress.value / spec.sr:.2f} s of {self.progress.max / spec.sr:.2f} s, " \
                                f"real-time factor {self.progress.value / spec.sr / elapsed:.3f}"

        with decode_part(video, spec, first, model) as (past_frames, decoded), \
                decode_part(video, spec, first, model, size=self.display_size) as (_, display):
            takes = self.takes.value
            samplers = [Sampler(self.temperature.value, self.top_p.value, self.seed.value + k) for k in range(takes)]
            engine = make_engine(model, spec, run, self.method.value, samplers[0] if takes == 1 else samplers, first,
                                 past_frames, workers=min(takes, free_cores()), precision=self.precision.value,
                                 guidance=self.guidance.value)
            try:
                audio, wall = run_frames(engine, itertools.islice(decoded, count), on_frame=on_frame)
            except ValueError:
                raise InputError("no frames decoded in that part", video) from None
        self.progress.max = self.progress.value  # the part as decoded (a frame short when the video is)
        aspect = (info.width or 1) / (info.height or 1)  # frames are kept square; shown at the video's aspect
        width, height = round(self.display_size * aspect), self.display_size
        self.frame_image.width, self.frame_image.height = str(width), str(height)
        self.frame_image.layout.width, self.frame_image.layout.height = f"{width}px", f"{height}px"  # CSS wins
        self.all_takes = audio.reshape(len(audio), takes, -1).transpose(1, 0, 2)  # from [N, (takes,) C]
        self.frames, self.first, self.fps = np.stack(shown), first, float(spec.fps_exact)
        self.audio = self.all_takes[0]
        self.original = None
        if info.has_audio:
            lo = spec.frame_start(first)
            own = read_audio(video, spec.sr, spec.channels)[lo:lo + len(self.audio)]
            self.original = np.pad(own, ((0, len(self.audio) - len(own)), (0, 0)))
        seconds = len(self.audio) / spec.sr
        self.result = {"video": str(video), "run": run, "start_s": first / self.fps, "seconds": seconds,
                       "frames": len(self.frames), "takes": takes, "method": engine.method,
                       "precision": self.precision.value, "guidance": self.guidance.value,
                       "temperature": self.temperature.value, "top_p": self.top_p.value, "wall_s": wall,
                       "rtf": takes * seconds / wall,
                       "sr": spec.sr, "fps": self.fps, "has_original": self.original is not None}
        self._show_part()  # players and waveform first: "generated" in the status means they are there
        precision = self.precision.value
        details = [engine.method] + ([f"{precision} weights"] if precision != "fp32" else []) \
            + ([f"top-p {self.top_p.value:g}"] if self.top_p.value != 1 else []) \
            + ([f"guidance {self.guidance.value:g}"] if self.guidance.value != 1 else []) \
            + ([f"{takes} takes"] if takes > 1 else [])
        self.status.value = f"{seconds:.2f} s generated ({', '.join(details)}), real-time factor " \
                            f"{self.result['rtf']:.3f}"
        return self.result

    def _show_part(self) -> None:
        """Fill the players, draw the waveform with a cursor and reset the frame slider to the part's frames."""
        self.original_audio.value = wav_bytes(self.original, self.result["sr"]) if self.original is not None else b""
        self.original_label.value = "<b>original</b>" if self.original is not None else \
            "<b>original</b> (the video has no audio track)"
        self.take.unobserve(self.show_take, "value")
        self.take.options = [(f"take {k + 1} (seed {self.seed.value + k})", k) for k in range(len(self.all_takes))]
        self.take.value = 0
        self.take.observe(self.show_take, "value")
        self.take.layout.display = "flex" if len(self.all_takes) > 1 else "none"
        self._draw_take()
        slider = self.frame_slider
        slider.unobserve(self.show_frame, "value")  # one redraw below, not one per bound moved
        slider.min, slider.max = 0, self.first + len(self.frames) - 1  # min first: min <= max at every step
        slider.min = slider.value = self.first
        slider.observe(self.show_frame, "value")
        self.show_frame()
        self.results.layout.display = "flex"

    def show_take(self, _change: dict | None = None) -> None:
        """The take buttons: play and draw the chosen take."""
        self._draw_take()
        self.show_frame()

    def _draw_take(self) -> None:
        """The chosen take in the generated player and the waveform (cursors at the part's start)."""
        sr = self.result["sr"]
        self.audio = self.all_takes[self.take.value]
        self.generated_audio.value = wav_bytes(self.audio, sr)
        name = "generated" if len(self.all_takes) == 1 else f"take {self.take.value + 1}"
        self.figure = plot_waveform(self.audio, sr, self.fps, reference=self.original, labels=(name, "original"),
                                    title=f"{name} vs original from {self.first / self.fps:.2f} s "
                                          f"(time from the start of the part)")
        self.cursors = [ax.axvline(0.0, **CURSOR_STYLE) for ax in self.figure.axes]

    @property
    def marker_s(self) -> float:
        """Where the waveform cursor stands, in seconds from the start of the part."""
        return float(self.cursors[0].get_xdata()[0]) if self.cursors else 0.0

    def show_frame(self, _change: dict | None = None) -> None:
        """The frame slider: move the waveform cursor to the frame's start and show that frame."""
        if self.frames is None:
            return
        k = min(max(self.frame_slider.value, self.first), self.first + len(self.frames) - 1)
        x = (k - self.first) / self.fps
        for line in self.cursors:
            line.set_xdata([x, x])
        self.waveform.value = png_bytes(self.figure)
        self.frame_image.value = png_bytes(self.frames[k - self.first])
        self.frame_label.value = f"frame #{k}<br>{k / self.fps:.2f} s in the video<br>{x:.2f} s into the part"
