"""Dockerfiles: hadolint-clean, multi-stage, pinned by digest, non-root, no `latest`."""

from __future__ import annotations

import re

import pytest

from .conftest import IMAGES, REPO, run, tool

DOCKERFILES = ("cpu.Dockerfile", "gpu.Dockerfile")
FROM_RE = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)


def instructions(text: str) -> list[str]:
    """Dockerfile instructions with line continuations joined and comments removed."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    return [line.strip() for line in joined.splitlines() if line.strip()]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_reports_no_errors(name: str) -> None:
    proc = run([tool("hadolint"), "--no-color", "--failure-threshold", "error", str(IMAGES / name)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " error:" not in proc.stdout


@pytest.mark.parametrize("name", DOCKERFILES)
def test_bases_are_pinned_by_digest_and_multistage(name: str) -> None:
    text = (IMAGES / name).read_text()
    froms = FROM_RE.findall(text)
    assert len(froms) >= 2, "expected a builder and a runtime stage"
    stages = [alias.lower() for _, alias in froms]
    assert stages[0] == "builder" and stages[-1] == "runtime"
    for image, _ in froms:
        assert re.fullmatch(r"[a-z0-9./_-]+:[\w.-]+@sha256:[a-f0-9]{64}", image), image
        assert ":latest" not in image
    assert "latest" not in " ".join(i for i in instructions(text) if i.upper().startswith("FROM"))
    assert re.search(r"^COPY --from=builder /opt/venv /opt/venv$", text, re.M)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runtime_stage_is_non_root_numeric(name: str) -> None:
    text = (IMAGES / name).read_text()
    runtime = text[text.rindex("AS runtime") :]
    users = re.findall(r"^USER\s+(\S+)$", runtime, re.M)
    assert users, "runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, users[-1]
    assert re.search(r"^HEALTHCHECK\s+", runtime, re.M)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_installs_under_the_project_constraints(name: str) -> None:
    steps = instructions((IMAGES / name).read_text())
    copies = [s for s in steps if s.startswith("COPY ") and "pyproject.toml" in s]
    assert copies and "constraints.txt" in copies[0].split()
    installs = [s for s in steps if '"${wheel}[' in s]
    assert installs, name
    # the constraints themselves, or (GPU) them less the CPU torch pin, derived in the same step
    derived = re.search(r"grep -v '\^torch==' constraints\.txt > (\S+)", installs[0])
    used = derived.group(1) if derived else "constraints.txt"
    assert f'pip install --no-cache-dir -c {used} "${{wheel}}[' in installs[0]
    assert (derived is not None) == (name == "gpu.Dockerfile")


def runtime_extras() -> set[str]:
    """The extras `make install` puts in the venv, less `dev`: what the images must hold too,
    so a family that runs in the venv runs in the image."""
    found = re.search(r"^EXTRAS := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert found, "Makefile has no EXTRAS line"
    return set(found.group(1).split(",")) - {"dev"}


def image_extras(text: str) -> set[str]:
    found = re.findall(r'"\$\{wheel\}\[([a-z,]+)\]"', text)
    assert len(found) == 1, found
    return set(found[0].split(","))


def test_cpu_image_uses_cpu_torch_and_extras() -> None:
    text = (IMAGES / "cpu.Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in text
    assert image_extras(text) == runtime_extras()
    assert {"xgboost", "ngboost"} <= image_extras(text)
    # torch comes from the CPU index at the constraints' pin before the wheel's extras, which
    # then find it installed instead of pulling PyPI's CUDA build
    steps = instructions(text)
    first = next(i for i, step in enumerate(steps) if "--index-url" in step)
    assert steps[first].endswith("-c /tmp/torch-constraints.txt torch")
    assert "COPY constraints.txt /tmp/torch-constraints.txt" in steps[:first]
    assert first < next(i for i, step in enumerate(steps) if '"${wheel}[' in step)


def test_gpu_image_uses_cuda_runtime_base_and_torch_extra() -> None:
    text = (IMAGES / "gpu.Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\w.-]*runtime[\w.-]*@sha256:", text, re.M)
    assert image_extras(text) == runtime_extras() | {"torch"}


def test_dockerignore_keeps_context_small() -> None:
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "context should be deny-by-default"
    included = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"pyproject.toml", "constraints.txt", "src", "components", "pipelines", "README.md"} <= (
        included
    )
    assert not included & {".venv", ".venv-tools", ".git", "tests", "bench"}
