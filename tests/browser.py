"""Browser-test harness: JupyterLab from this environment on a loopback port, driven by headless Chromium.

`Lab` runs `python -m jupyterlab` (this interpreter's, so the venv's kernel and widget extension) on a free
127.0.0.1 port with a random token, in Jupyter config, data and runtime folders of its own: nothing of the user's
Jupyter set-up is read or written. `LabPage` opens a notebook in a Playwright page, runs all cells from JupyterLab's
Run menu, reads what the page shows, and fails with a screenshot's path in the message. Playwright drives the
system's Chromium (Debian's `chromium` package); no browser is downloaded. `stop_processes` ends what a fixture
started, by pid.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import papermill as pm
import psutil

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
VIEWPORT = {"width": 1000, "height": 900}  # device scale 1: small screenshots

# The notebook's kernel has started and is idle (the toolbar's indicator also says idle before a kernel exists,
# while the kernel name reads "No Kernel").
JS_KERNEL_IDLE = """() => {
  const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent);
  return name && name.textContent.trim() !== 'No Kernel' && indicator && indicator.dataset.status === 'idle'
    && status.some(t => / \\| Idle$/.test(t.trim()));
}"""
# All code cells have run when the kernel is idle, no prompt is queued ([*]) and the first code cell has a number
# (a Run All that stopped at an error leaves the cells after it at [ ]).
JS_RUN_FINISHED = """() => {
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
  return indicator && indicator.dataset.status === 'idle' && prompts.length > 0 && /\\[\\d+\\]/.test(prompts[0])
    && !prompts.some(p => p.includes('*'));
}"""
# Tracebacks shown in output areas. JupyterLab 4 renders an error output like stderr (a jp-RenderedText with
# data-mime-type application/vnd.jupyter.stderr), so errors are told from warnings and progress bars by their text.
JS_ERRORS = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent).filter(t => /Traceback \\(most recent call last\\)|^-{20,}\\n\\S+(Error|Exception)/m.test(t))
  .map(t => t.slice(-1500))"""
# Natural sizes of the images that outputs show (matplotlib figures are image/png outputs).
JS_OUTPUT_IMAGES = """() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img')]
  .map(e => [e.naturalWidth, e.naturalHeight])"""
# The duration (s) of an <audio> element, once its metadata has loaded.
JS_AUDIO_DURATION = """el => el.readyState >= 1 ? el.duration : new Promise((resolve, reject) => {
  el.addEventListener('loadedmetadata', () => resolve(el.duration), {once: true});
  el.addEventListener('error', () => reject(new Error('the audio did not load: ' + (el.error && el.error.message))),
                      {once: true});
  setTimeout(() => reject(new Error('no loadedmetadata within 20 s')), 20000);
  el.load();
})"""


def chromium_path() -> str | None:
    """The system Chromium (Debian's package installs /usr/bin/chromium), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium on PATH (Debian: apt-get install chromium; `make setup` installs it when run as root)"
    return None


def prepare_notebook(name: str, folder: Path, **parameters) -> Path:
    """notebooks/<name> with `parameters` injected by papermill (not executed), written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, prepare_only=True,
                        kernel_name="python3", progress_bar=False)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes(procs: list[psutil.Process], timeout: float = 15.0) -> list[str]:
    """SIGTERM `procs`, wait up to `timeout` s, SIGKILL the rest. Returns 'name (pid)' of those still running
    after the wait (killed); an empty list when all stopped by themselves."""
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, stubborn = psutil.wait_procs(alive, timeout=timeout)
    names = []
    for p in stubborn:
        try:
            names.append(f"{p.name()} ({p.pid})")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(stubborn, timeout=5)
    return names


def descendants(pids: list[int]) -> list[psutil.Process]:
    """The processes `pids` and all their children, grandchildren, ..."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return procs


class Lab:
    """A JupyterLab server serving `root`, with its Jupyter folders under `home` (log: home/jupyterlab.log)."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = Path(root), Path(home)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "jupyterlab.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: Path) -> str:
        """The JupyterLab URL that opens `path` (a file under root) in a fresh workspace."""
        return f"{self.base}/lab/tree/{quote(Path(path).relative_to(self.root).as_posix())}?reset&token={self.token}"

    def _settings(self) -> dict[str, str]:
        config, settings = self.home / "config", self.home / "config" / "lab" / "user-settings"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        # no news pop-up (it would also ask a server on the internet)
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the DOM, scrolled into view or not
        return {"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(self.home / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.home / "runtime")}

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until its API answers; stops it again and raises when it does not."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._settings()}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.extension_manager=readonly",
               f"--LabApp.user_settings_dir={self.home / 'config' / 'lab' / 'user-settings'}",
               f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
               # a server orphaned by a killed test run ends itself: idle kernels culled, then the server
               "--MappingKernelManager.cull_idle_timeout=900", "--MappingKernelManager.cull_interval=60",
               "--ServerApp.shutdown_no_activity_timeout=900"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"JupyterLab did not answer on {self.base} within {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.5)

    def api(self, method: str, path: str):
        """Call the server's REST API; returns the decoded JSON (None for an empty answer)."""
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel (between tests; the server keeps running)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> list[str]:
        """Stop the server and everything it started (kernels, and what those started). Returns the processes that
        had to be killed after the server's own shut-down (empty when it cleaned up by itself)."""
        if self.proc is None:
            return []
        procs = descendants([self.proc.pid])
        stray = stop_processes(procs[:1], timeout=20)  # SIGTERM: the server shuts its kernels down
        stray += stop_processes(procs[1:], timeout=5)
        self.proc.wait(timeout=5)
        return stray


class LabPage:
    """A Playwright page on a JupyterLab server. Failures raise AssertionError with a screenshot's path (saved
    under `shots`), the console errors and the server log's tail."""

    def __init__(self, page, lab: Lab, shots: Path):
        self.page, self.lab, self.shots = page, lab, Path(shots)
        self.console_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text[:300]) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"page error: {str(e)[:300]}"))

    def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def fail(self, message: str):
        shot = self.screenshot("failure")
        console = "\n  ".join(self.console_errors[-8:]) or "none"
        raise AssertionError(f"{message}\nscreenshot: {shot}\nbrowser console errors:\n  {console}")

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)

    def wait(self, js: str, what: str, timeout: float = 60.0, arg=None):
        """Wait until the page function `js` (called with `arg`) returns something truthy; fail saying `what`."""
        from playwright.sync_api import Error, TimeoutError

        try:
            return self.page.wait_for_function(js, arg=arg, timeout=timeout * 1000, polling=250).json_value()
        except TimeoutError:
            self.fail(f"timed out after {timeout:.0f} s waiting until {what}")
        except Error as err:  # e.g. the page navigated away or crashed
            self.fail(f"the page failed while waiting until {what}: {err}")

    def element(self, selector: str, what: str, timeout: float = 30.0):
        """The first element matching `selector` once it is attached; fail saying `what` is missing."""
        from playwright.sync_api import TimeoutError

        try:
            return self.page.wait_for_selector(selector, state="attached", timeout=timeout * 1000)
        except TimeoutError:
            self.fail(f"{what}: no {selector} in the page after {timeout:.0f} s; outputs show:\n{self.outputs_text()}")

    def outputs_text(self, chars: int = 1200) -> str:
        return self.page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                                  ".map(e => e.textContent.trim()).join('\\n---\\n')")[-chars:]

    def open(self, notebook: Path, timeout: float = 120.0) -> None:
        """Open `notebook` (under the server's root) and wait for its kernel to be idle."""
        self.page.goto(self.lab.url(notebook))
        self.wait(JS_KERNEL_IDLE, f"{notebook.name} is open with its kernel started and idle", timeout)

    def run_all(self, timeout: float) -> None:
        """Run > Run All Cells from the menu bar; wait until the kernel is done; fail if a cell did not run or
        shows an error."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=False).first.click()
        self.wait(JS_RUN_FINISHED, "all cells have run (Run > Run All Cells)", timeout)
        errors = self.page.evaluate(JS_ERRORS)
        self.check(not errors, f"{len(errors)} cell(s) show an error; the first:\n{errors[0] if errors else ''}")
        prompts = self.prompts()
        self.check(all(p[1:-2].isdigit() for p in prompts), f"not every code cell ran; prompts {prompts}")

    def prompts(self) -> list[str]:
        return self.page.evaluate("() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
                                  ".map(e => e.textContent.trim())")

    def output_images(self) -> list[tuple[int, int]]:
        """(natural width, natural height) of every image in the outputs, once each has loaded."""
        self.wait("() => [...document.querySelectorAll('.jp-OutputArea-output img')].every(e => e.complete)",
                  "the output images have loaded", 30)
        return [tuple(size) for size in self.page.evaluate(JS_OUTPUT_IMAGES)]

    def audio_duration(self, selector: str) -> float:
        """Duration (s) of the <audio> element at `selector` after its metadata loaded."""
        handle = self.element(selector, "an audio player")
        try:
            return float(handle.evaluate(JS_AUDIO_DURATION))
        except Exception as err:  # the page function rejected: the audio never loaded
            self.fail(f"{selector}: {err}")
