"""Read the root Dockerfile into what the host-side assembly needs (scripts/image/assemble.sh).

No container runtime runs on the development machines, so the image is assembled from a chroot
instead of `docker build`. Both must give the same image: rather than repeating package lists, the
assembly asks this module for each stage's apt packages, the app paths the builder copies, and the
final stage's runtime configuration; scripts/image/check.py then compares the built image with the
same parse. Only the instructions this Dockerfile uses are understood (FROM, ARG, ENV, RUN, COPY,
WORKDIR, USER, VOLUME, EXPOSE, CMD, ENTRYPOINT); anything else is an error, not silently skipped.

    python scripts/image/dockerfile.py packages builder|final
    python scripts/image/dockerfile.py app-paths
    python scripts/image/dockerfile.py config        # JSON: user, workdir, env, cmd, volumes...
"""
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
KNOWN = {"FROM", "ARG", "ENV", "RUN", "COPY", "WORKDIR", "USER", "VOLUME", "EXPOSE", "CMD", "ENTRYPOINT"}


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined and comments dropped."""
    result, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword not in KNOWN:
            raise ValueError(f"Dockerfile instruction {keyword} is not understood by {__file__}")
        result.append((keyword, arguments.strip()))
    return result


def stages(text: str) -> dict[str, Stage]:
    """Stages by name; the unnamed last stage is called "final"."""
    found: list[Stage] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            parts = arguments.split()
            found.append(Stage(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else "final"))
        elif found:
            found[-1].instructions.append((keyword, arguments))
    return {stage.name: stage for stage in found}


def apt_packages(stage: Stage) -> list[str]:
    """Packages named after `apt-get install` in the stage's RUN lines (options skipped)."""
    packages = []
    for keyword, arguments in stage.instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", arguments):
            words = shlex.split(command)
            if "apt-get" in words and "install" in words:
                after = words[words.index("install") + 1 :]
                packages += [word for word in after if not word.startswith("-")]
    return packages


def app_paths(stage: Stage) -> list[str]:
    """Repository paths the stage copies from the build context (not --from other stages)."""
    paths = []
    for keyword, arguments in stage.instructions:
        if keyword != "COPY" or arguments.startswith("--from"):
            continue
        sources = shlex.split(arguments)[:-1]
        paths += [source.rstrip("/") for source in sources if not source.startswith("--")]
    return paths


def _json_or_words(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def runtime_config(stage: Stage) -> dict:
    """The final stage's image configuration, as `buildah inspect` reports it."""
    env: dict[str, str] = {}
    config = {"user": "", "workdir": "", "env": env, "cmd": None, "entrypoint": None, "volumes": [], "ports": []}
    for keyword, arguments in stage.instructions:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value.replace("$PATH", env.get("PATH", ""))
        elif keyword == "USER":
            config["user"] = arguments
        elif keyword == "WORKDIR":
            config["workdir"] = arguments
        elif keyword in ("CMD", "ENTRYPOINT"):
            config[keyword.lower()] = _json_or_words(arguments)
        elif keyword == "VOLUME":
            config["volumes"] += _json_or_words(arguments)
        elif keyword == "EXPOSE":
            config["ports"] += arguments.split()
    return config


def main(argv: list[str]) -> int:
    parsed = stages(DOCKERFILE.read_text(encoding="utf-8"))
    if argv[:1] == ["packages"] and len(argv) == 2:
        print(" ".join(apt_packages(parsed[argv[1]])))
    elif argv == ["app-paths"]:
        print("\n".join(path for path in app_paths(parsed["builder"]) if not path.startswith("requirements")))
    elif argv == ["config"]:
        print(json.dumps(runtime_config(parsed["final"]), indent=2))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
