"""The Dockerfile keeps the contract the chart relies on (docs/image.md).

The image cannot be built in `make test` (no container runtime here; scripts/image/assemble.sh and
check.py prove the build separately), but what the chart assumes about it is read from the
Dockerfile with the parser the assembly uses: the user the pods run as, the working directory,
the writable paths, the commands on PATH, and a final stage without build tools.
"""
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("image_dockerfile", ROOT / "scripts" / "image" / "dockerfile.py")
dockerfile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dockerfile)

STAGES = dockerfile.stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))
FINAL = dockerfile.runtime_config(STAGES["final"])
VALUES = yaml.safe_load((ROOT / "helm" / "kbsearch" / "values.yaml").read_text(encoding="utf-8"))


def test_the_image_runs_as_the_user_the_pods_require():
    context = VALUES["containerSecurityContext"]
    assert FINAL["user"] == f"{context['runAsUser']}:{context['runAsGroup']}"
    assert context["readOnlyRootFilesystem"] is True


def test_the_writable_paths_are_the_chart_volumes_and_the_var_dir():
    assert sorted(FINAL["volumes"]) == sorted([VALUES["varDir"]["path"], "/tmp"])
    assert FINAL["env"]["KBSEARCH_VAR_DIR"] == VALUES["varDir"]["path"]
    # Collected at build time, so an emptyDir over the var directory must not hide them.
    assert not FINAL["env"]["KBSEARCH_STATIC_ROOT"].startswith(VALUES["varDir"]["path"] + "/")


def test_the_chart_commands_resolve_in_the_image():
    # Templates call gunicorn, celery and python by name from /app (gunicorn.conf.py, manage.py).
    assert FINAL["env"]["PATH"].split(":")[0] == "/opt/venv/bin"
    assert FINAL["workdir"] == "/app"
    copied = dockerfile.app_paths(STAGES["builder"])
    assert {"manage.py", "gunicorn.conf.py", "kbsearch"} <= set(copied)
    assert FINAL["cmd"][:3] == ["gunicorn", "--config", "gunicorn.conf.py"]


@pytest.mark.parametrize("tool", ["gcc", "libc6-dev", "python3.11-dev", "libldap2-dev", "libsasl2-dev", "python3-pip"])
def test_the_final_stage_installs_no_build_tool(tool):
    assert "gcc" in dockerfile.apt_packages(STAGES["builder"])  # the parse sees install lines at all
    assert tool not in dockerfile.apt_packages(STAGES["final"])


def test_the_build_context_admits_exactly_what_is_copied():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines
    assert allowed == set(dockerfile.app_paths(STAGES["builder"]))


def test_an_unknown_instruction_is_refused_rather_than_skipped():
    with pytest.raises(ValueError, match="HEALTHCHECK"):
        dockerfile.instructions("FROM debian\nHEALTHCHECK CMD true\n")
