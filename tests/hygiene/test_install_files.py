"""The install files agree: the CPU requirements pick the CPU build of the same torch on every laptop
system, and the Python versions the kit claims are the ones its pins install on."""
import re
import tomllib

import pytest
from packaging.requirements import Requirement

from taskrel_utils.core.paths import KIT_ROOT
from taskrel_utils.kit import workflow

#: (sys_platform, platform_machine) of the laptops people bring
LAPTOPS = {"linux x86_64": ("linux", "x86_64"), "windows": ("win32", "AMD64"), "mac (Apple silicon)": ("darwin", "arm64"),
           "linux arm64": ("linux", "aarch64")}  # torch 2.14.1 has no wheel for Intel Macs
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def requirements(name):
    lines = [line.split(" #")[0].strip() for line in (KIT_ROOT / name).read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def pins(name, system):
    """The torch and torchvision requirements of file ``name`` that apply on ``system``, with its -r files."""
    platform, machine = LAPTOPS[system]
    found = {}
    for line in requirements(name):
        if line.startswith("-r "):
            for package, reqs in pins(line[3:].strip(), system).items():
                found.setdefault(package, []).extend(reqs)
        elif not line.startswith("-"):
            req = Requirement(line)
            if req.name in ("torch", "torchvision") and (
                    req.marker is None or req.marker.evaluate({"sys_platform": platform, "platform_machine": machine})):
                found.setdefault(req.name, []).append(req)
    return found


@pytest.mark.parametrize("system", LAPTOPS)
def test_the_cpu_requirements_pin_the_cpu_build_of_the_same_versions(system):
    cpu, default = pins("requirements-cpu.txt", system), pins("requirements.txt", system)
    assert f"--extra-index-url {CPU_INDEX}" in requirements("requirements-cpu.txt")
    for package in ("torch", "torchvision"):
        (public,) = default[package]
        (own,) = [r for r in cpu[package] if r not in default[package]]  # exactly one line of the CPU file applies
        (version,) = [s.version for s in own.specifier]
        # Linux x86_64 and Windows: the CPU index's "+cpu" build, so that an unreachable index fails
        # instead of installing PyPI's CUDA build; macOS and ARM: the one build there is (no "+cpu")
        expected_local = "cpu" if system in ("linux x86_64", "windows") else None
        assert (version.partition("+")[2] or None) == expected_local, (package, system, version)
        assert public.specifier.contains(version), f"requirements.txt's {public} refuses {version}"
        assert version.partition("+")[0] == next(iter(public.specifier)).version


def test_python_versions_agree():
    """pyproject's requires-python is the oldest Python the pins install on (workflow.MIN_PYTHON:
    numpy 2.4.6, pandas 3.1.1 and five more pins have no 3.10 release), and the README says the same."""
    project = tomllib.loads((KIT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">={}.{}".format(*workflow.MIN_PYTHON)
    readme = (KIT_ROOT / "README.md").read_text()
    assert "Python 3.11 or 3.12" in readme and "3.10" in readme  # what was tested, and what does not install
    assert re.search(r"python=3\.1[12]\b", (KIT_ROOT / "environment.yml").read_text())
