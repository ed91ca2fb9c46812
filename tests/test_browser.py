"""The notebooks as the user meets them: JupyterLab in headless Chromium, cells run from the Run menu, the studio's
buttons pressed and its slider moved with the keyboard, and what the page shows checked (tests/browser.py).

Skipped where playwright or chromium is missing. FOLEY_STUDIO_SCREENSHOT=PATH copies the studio's screenshot to
PATH; `make screenshot VIDEO=... RUN=...` writes docs/studio.png with it from a trained run on a video of yours.
"""
import os
import shutil
import statistics
from pathlib import Path

import psutil
import pytest
import torch
from browser import VIEWPORT, Lab, LabPage, chromium_path, descendants, prepare_notebook, skip_reason, stop_processes
from PIL import Image

from foleylib.core.config import preset
from foleylib.data.synth import render_scene
from foleylib.models.config import model_config
from foleylib.models.registry import build_model
from foleylib.training.checkpoint import save_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]
if skip_reason():
    pytest.skip(skip_reason(), allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

# Columns of the waveform PNG (drawn on a canvas) where the frame markers (tab:orange, alpha 0.5) and the red
# frame cursor (tab:red) run down the plot: at least 20 such pixels in a column.
JS_WAVEFORM_LINES = """img => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const orange = new Array(c.width).fill(0), red = new Array(c.width).fill(0);
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b, x] = [d[i], d[i + 1], d[i + 2], (i / 4) % c.width];
    if (r > 230 && g > 140 && g < 225 && b < 200 && r - b > 50) orange[x]++;
    if (r > 150 && g < 110 && b < 110) red[x]++;
  }
  const columns = counts => counts.map((n, x) => n >= 20 ? x : -1).filter(x => x >= 0);
  return {orange: columns(orange), red: columns(red)};
}"""


def runs_of(columns: list[int]) -> list[float]:
    """Centres of runs of adjacent columns (one per drawn vertical line)."""
    groups: list[list[int]] = []
    for x in columns:
        if groups and x - groups[-1][-1] <= 2:
            groups[-1].append(x)
        else:
            groups.append([x])
    return [sum(g) / len(g) for g in groups]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab server for the module; stopped with its kernels at the end, and checked to be gone."""
    base = tmp_path_factory.mktemp("lab")
    server = Lab(base / "root", base / "jupyter")
    server.start()
    yield server
    pid = server.proc.pid
    stray = server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "JupyterLab runs on"
    assert not stray, f"processes left running after JupyterLab's shut-down (killed): {stray}"


@pytest.fixture(scope="module")
def browser():
    """Headless system Chromium through Playwright; the driver and every browser process are gone afterwards."""
    before = {p.pid for p in psutil.Process().children()}
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=chromium_path())
    except Exception:
        pw.stop()
        raise
    started = [p.pid for p in psutil.Process().children() if p.pid not in before]  # the driver (node) and below
    yield chromium
    procs = descendants(started)  # now, so the renderers started for each page are in
    chromium.close()
    pw.stop()
    stray = stop_processes(procs, timeout=10)
    assert not stray, f"browser processes left running after closing (killed): {stray}"


@pytest.fixture
def page(lab, browser, tmp_path):
    """A fresh browser context at 1000 x 900, device scale 1; kernels shut down afterwards."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    yield LabPage(context.new_page(), lab, tmp_path)
    context.close()
    lab.shutdown_kernels()


def test_studio_generates_plays_and_scrubs_in_the_browser(lab, page, tmp_path):
    """08_studio.ipynb in JupyterLab: pick the WaveNet run in the run box, press Generate, then check the progress
    bar, both players, the waveform with frame markers, and that the frame slider moves the cursor and the frame."""
    work, spec = lab.root / "studio", preset("tiny")
    scene = render_scene("clap", work / "data" / "synth", seconds=2.0, seed=1)  # its one clap at 1.44 s
    runs = {arch: work / "outputs" / f"tiny_{arch}" for arch in ("fusion", "wavenet")}  # listed beside OUT_DIR
    torch.manual_seed(0)
    for arch, run in runs.items():  # untrained: the page is under test, not the model
        save_model(build_model(model_config(arch, "tiny", spec, loss="ce")), spec, run / "model.pt")
    notebook = prepare_notebook("08_studio.ipynb", work, DATA_DIR=str(work / "data"),
                                OUT_DIR=str(work / "outputs" / "08_studio"), VIDEO=str(scene["video"]),
                                RUN=str(runs["fusion"]), START=1.2, SECONDS=0.4, PRESET="tiny", INTERACTIVE=True)
    page.open(notebook)
    page.run_all(timeout=120)
    p = page.page

    page.element(".foley-studio", "the studio widget did not render (is the ipywidgets front end, "
                                  "@jupyter-widgets/jupyterlab-manager, installed and enabled?)")
    options = p.eval_on_selector_all(".foley-studio select option", "els => els.map(e => e.textContent)")
    page.check({"synth/clap.mp4", "tiny_fusion", "tiny_wavenet"} <= set(options),
               f"the video and run lists do not name the test's clip and runs: {options}")
    p.locator(".foley-run select").select_option(label="tiny_wavenet")  # the notebook was given the fusion run
    p.locator(".foley-generate").click()
    page.wait("() => document.querySelector('.foley-status').textContent.includes('generated')",
              "the studio's status says the part was generated", timeout=60)
    status, message = p.inner_text(".foley-status"), p.inner_text(".foley-message")
    page.check(message.strip() == "", f"the studio shows an error: {message}")
    page.check("0.40 s generated (cached)" in status,
               f"expected 0.40 s from the picked WaveNet run (cached; the fusion run would say naive): {status!r}")
    width = p.eval_on_selector(".foley-progress .progress-bar", "e => e.style.width")
    page.check(width == "100%", f"the progress bar ends at {width}, not 100%")

    durations = {name: page.audio_duration(f"audio.foley-{name}-audio") for name in ("original", "generated")}
    page.check(all(d == pytest.approx(0.4, abs=0.01) for d in durations.values()),
               f"the players' durations are {durations}, expected 0.4 s each")

    waveform = page.element("img.foley-waveform", "no waveform image")
    page.wait("e => e.complete && e.naturalWidth > 0", "the waveform image is shown", arg=waveform)
    markers = runs_of(waveform.evaluate(JS_WAVEFORM_LINES)["orange"])
    page.check(len(markers) >= 5, f"the waveform shows {len(markers)} frame markers, expected one per frame (10)")
    spacing = statistics.median(b - a for a, b in zip(markers, markers[1:]))  # one frame, in pixels

    handle = p.locator(".foley-frame-slider .noUi-handle")
    readout = p.locator(".foley-frame-slider .widget-readout")
    page.check(readout.inner_text() == "30", f"the frame slider starts at {readout.inner_text()}, expected 30")
    cursor = {}
    for frame, presses in ((31, 1), (35, 4)):  # 1.24 s and 1.40 s: 1 and 5 frames into the part
        frame_src = p.get_attribute("img.foley-frame", "src")
        handle.focus()
        for _ in range(presses):
            handle.press("ArrowRight")
        page.wait("k => document.querySelector('.foley-studio').textContent.includes('frame #' + k)",
                  f"the frame label says frame #{frame} after the slider moved", timeout=30, arg=frame)
        page.wait("e => e.complete && e.naturalWidth > 0", "the new waveform image is shown",
                  arg=page.element("img.foley-waveform", "no waveform image"))
        page.check(p.get_attribute("img.foley-frame", "src") != frame_src,
                   f"moving the frame slider to {frame} did not change the frame image")
        page.check(p.eval_on_selector("img.foley-frame", "e => e.naturalWidth") > 0, "the frame image is empty")
        red = runs_of(p.eval_on_selector("img.foley-waveform", JS_WAVEFORM_LINES)["red"])
        page.check(len(red) == 1, f"expected one red cursor line on the waveform at frame {frame}, found {red}")
        cursor[frame] = red[0]
    moved = (cursor[35] - cursor[31]) / spacing
    page.check(moved == pytest.approx(4, abs=0.15),
               f"the cursor moved {moved:.2f} frame spacings from frame 31 to 35, expected 4 ({cursor}, {spacing})")

    studio_picture(page)

    shown = p.eval_on_selector("img.foley-frame", "e => [e.clientWidth, e.clientHeight]")
    page.check(shown[0] / shown[1] == pytest.approx(640 / 360, rel=0.02),
               f"the frame is shown {shown[0]} x {shown[1]}, not at the video's 16:9 aspect")


def studio_picture(page: LabPage) -> Path:
    """Screenshot the studio alone (file browser hidden); with FOLEY_STUDIO_SCREENSHOT=PATH also save it there in
    256 colours (about a third of the bytes, the same picture)."""
    p = page.page
    p.keyboard.press("Control+b")
    p.locator(".foley-studio").evaluate("e => e.scrollIntoView({block: 'start'})")
    p.wait_for_timeout(300)
    shot = page.screenshot("studio")
    if os.environ.get("FOLEY_STUDIO_SCREENSHOT"):
        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE) \
            .save(os.environ["FOLEY_STUDIO_SCREENSHOT"], optimize=True)
    return shot


@pytest.mark.skipif(not (os.environ.get("FOLEY_STUDIO_VIDEO") and os.environ.get("FOLEY_STUDIO_RUN")),
                    reason="make screenshot VIDEO=... RUN=... only: the studio on a trained run and a real video")
def test_studio_on_a_trained_run_for_the_readme(lab, page):
    """The README's picture: the studio lists a video (FOLEY_STUDIO_VIDEO, copied into its data folder) and a
    trained run (FOLEY_STUDIO_RUN, copied beside its outputs), generates FOLEY_STUDIO_SECONDS from
    FOLEY_STUDIO_START (top-p FOLEY_STUDIO_TOP_P) without an error, and the slider shows a frame of the part."""
    video, run = Path(os.environ["FOLEY_STUDIO_VIDEO"]), Path(os.environ["FOLEY_STUDIO_RUN"])
    work = lab.root / "picture"
    (work / "data").mkdir(parents=True)
    shutil.copy(video, work / "data" / video.name)
    shutil.copytree(run, work / "outputs" / run.name, ignore=shutil.ignore_patterns("checkpoint.pt"))
    notebook = prepare_notebook("08_studio.ipynb", work, DATA_DIR=str(work / "data"),
                                OUT_DIR=str(work / "outputs" / "08_studio"), VIDEO=str(work / "data" / video.name),
                                RUN=str(work / "outputs" / run.name),
                                START=float(os.environ.get("FOLEY_STUDIO_START", 0)),
                                SECONDS=float(os.environ.get("FOLEY_STUDIO_SECONDS", 2)),
                                TOP_P=float(os.environ.get("FOLEY_STUDIO_TOP_P", 1)), INTERACTIVE=True)
    page.open(notebook)
    page.run_all(timeout=120)
    p = page.page
    page.element(".foley-studio", "the studio widget did not render")
    p.locator(".foley-generate").click()
    page.wait("() => document.querySelector('.foley-status').textContent.includes('generated')",
              "the studio's status says the part was generated", timeout=300)
    message = p.inner_text(".foley-message").strip()
    page.check(message == "", f"the studio shows an error: {message}")
    page.wait("() => document.querySelector('.foley-studio').textContent.includes('s into the part')",
              "the first frame of the part is shown", timeout=60)
    first = int(p.locator(".foley-frame-slider .widget-readout").inner_text())
    handle = p.locator(".foley-frame-slider .noUi-handle")
    handle.focus()
    for _ in range(frames := int(os.environ.get("FOLEY_STUDIO_FRAMES", 8))):
        handle.press("ArrowRight")
    page.wait("k => document.querySelector('.foley-studio').textContent.includes('frame #' + k)",
              f"the frame label says frame #{first + frames} after the slider moved", timeout=60, arg=first + frames)
    page.wait("e => e.complete && e.naturalWidth > 0", "the waveform image is shown",
              arg=page.element("img.foley-waveform", "no waveform image"))
    studio_picture(page)


def test_data_collection_notebook_runs_in_the_browser(lab, page, good_video, bad_files):
    """01_data_collection.ipynb in JupyterLab: no cell shows an error; frames, waveform and spectrogram figures and
    the audio player render."""
    work = lab.root / "collection"
    notebook = prepare_notebook("01_data_collection.ipynb", work, DATA_DIR=str(work / "data"),
                                OUT_DIR=str(work / "out"), SOURCES=[str(good_video), str(bad_files["text"])],
                                SCENES=["clap", "water"], SECONDS=2.0, SHOW="clap")
    page.open(notebook)
    page.run_all(timeout=120)
    page.check("1 collected, 1 failed" in page.outputs_text(100_000), "the collect cell's summary is missing")
    images = page.output_images()
    page.check(len(images) >= 3 and all(w > 0 and h > 0 for w, h in images),
               f"expected the frames, waveform and spectrogram figures; images shown: {images}")
    duration = page.audio_duration(".jp-OutputArea-output audio")
    page.check(duration == pytest.approx(2.0, abs=0.05), f"the audio player's duration is {duration}, expected 2 s")


def test_evaluation_notebook_runs_in_the_browser(lab, page):
    """07_evaluation.ipynb in JupyterLab, running its one-cell Table I batch: no cell shows an error; Table I and
    the figures (Fig. 11 from the clap/transformer cell, a spectrogram) render."""
    work = lab.root / "evaluation"
    notebook = prepare_notebook("07_evaluation.ipynb", work, TABLE_DIR=str(work / "table"), OUT_DIR=str(work / "out"),
                                SCENES="clap", ARCHS="transformer", PRESET="tiny", STEPS=2, GEN_SECONDS=0.2,
                                SCENE_SECONDS=3.0, HYPOTHESIS_STEPS=2, HYPOTHESIS_SECONDS=0.08)
    page.open(notebook)
    page.run_all(timeout=300)
    tables = page.page.eval_on_selector_all(".jp-OutputArea-output table", "els => els.length")
    page.check(tables >= 1, "Table I is not rendered as a table")
    images = page.output_images()
    page.check(len(images) >= 2 and all(w > 0 and h > 0 for w, h in images),
               f"expected Fig. 11 and a spectrogram; images shown: {images}")
