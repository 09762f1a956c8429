"""The environments agree: the conda environment.yml installs what the Makefile's venv does (the
same torch pin, the same extras), every extra it names exists in pyproject.toml, and ipywidgets
is a chapter dependency in a range Colab's 7.x satisfies, not one of dlib's.

Equations checked: none (the project's environments).
"""
import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"the Makefile sets no {name}"
    return match.group(1).strip()


def _conda_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_conda_and_make_install_the_same():
    pip = _conda_pip()
    assert _make_variable("TORCH") in pip
    editable = next(p for p in pip if p.startswith("-e "))
    extras = re.fullmatch(r"-e \.\[(.+)\]", editable).group(1)
    assert extras.split(",") == _make_variable("EXTRAS").split(",")
    assert '-e ".[$(EXTRAS)]"' in (ROOT / "Makefile").read_text()


def test_every_extra_exists_and_widgets_suit_colab():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(_make_variable("EXTRAS").split(",")) <= set(extras)
    assert not [d for d in project["dependencies"] if d.startswith("ipywidgets")], "dlib does not import ipywidgets"
    assert not [p for p in (ROOT / "dlib").rglob("*.py") if "ipywidgets" in p.read_text()]
    widgets = next(d for d in extras["book"] if d.startswith("ipywidgets"))
    assert ">=7" in widgets and "<9" in widgets, widgets          # Colab's 7.x and pip's 8.x
    assert any(d.startswith("jupyter>") for d in extras["book"])   # `jupyter lab` after the README's set-up
    assert any(d.startswith("otter-grader") for d in extras["course"])
