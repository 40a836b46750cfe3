"""``make demo``: a throwaway OpenLDAP directory, the sample knowledge base and the development server.

With the directory (the default), in this order:

1. slapd (``scripts.slapd``, the server the directory tests use) on ``127.0.0.1:<ldap port>``
   (3389 unless told otherwise), its database made afresh under ``var/demo-ldap/`` from
   ``demo/directory.ldif``. A slapd a previous demo left running (killed rather than stopped) is
   found by its pid file and stopped first; the entries get DN-derived ids, so every start gives
   the sync the same people and groups as the last one.
2. ``migrate``, then ``add_directory demo`` (bind DN and base DNs of the demo tree; the bind
   password is read from ``KBSEARCH_DEMO_LDAP_PASSWORD``, which this script sets for the commands
   and the server it starts) and ``sync_directory demo --full``.
3. ``demo_setup --directory demo``: the sample knowledge base, the local ``admin``; the demo people
   get no local password and no Django groups (they sign in through LDAP).
4. ``runserver`` with ``KBSEARCH_PRINCIPAL_RESOLVER=access.resolvers.DirectoryPrincipalResolver``
   and ``KBSEARCH_LDAP_SIGN_IN=1``, until Ctrl-C (or SIGTERM/SIGHUP); then slapd is stopped too.

``--no-directory`` is the demo without slapd: ``demo_setup`` gives the users of ``demo/users.yaml``
the shared password and Django groups equal to their directory groups, and the default resolver
reads those. Run from the project folder: ``.venv/bin/python scripts/demo.py --port 8000``.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, the project folder is not on the path
    sys.path.insert(0, str(ROOT))

from scripts.slapd import ROOT_PASSWORD, SERVICE_PASSWORD, Slapd  # noqa: E402

DIRECTORY_KEY = "demo"
SUFFIX = "dc=northwind-robotics,dc=example"
ORGANIZATION = "Northwind Robotics"
LDIF_PATH = ROOT / "demo" / "directory.ldif"
PASSWORD_VARIABLE = "KBSEARCH_DEMO_LDAP_PASSWORD"
DEFAULT_LDAP_PORT = 3389
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class DemoError(Exception):
    """A step of the demo failed; the message says what to do."""


def _var_dir() -> Path:
    return Path(os.environ.get("KBSEARCH_VAR_DIR", ROOT / "var"))


def stale_slapd_stop(folder: Path, *, wait_seconds: float = 10.0) -> int | None:
    """Stop the slapd a previous demo left running from ``folder``; its pid, or None if there was none.

    Only a live process that is slapd and was started with ``folder``'s config is stopped: a pid
    file outliving its process may name a pid the system has since given to something else.
    """
    try:
        pid = int((folder / "slapd.pid").read_text().split()[0])
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    config = str(folder / "slapd.conf").encode()
    if not arguments or Path(arguments[0].decode(errors="replace")).name != "slapd" or config not in arguments:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        os.kill(pid, signal.SIGKILL)
    return pid


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive; an exited process its parent has not reaped yet (a zombie) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # the state follows the parenthesised command name


def demo_slapd_start(folder: Path, *, port: int | None = DEFAULT_LDAP_PORT, ldif_path: Path = LDIF_PATH) -> Slapd:
    """A fresh demo directory served from ``folder``: the bundled LDIF loaded into a new database."""
    stopped = stale_slapd_stop(folder)
    if stopped:
        print(f"stopped slapd {stopped} left running by an earlier demo")
    shutil.rmtree(folder, ignore_errors=True)  # whatever an interrupted run left: always loaded afresh
    try:
        return Slapd.start(
            folder, ldif_path.read_text(encoding="utf-8"), port=port, suffix=SUFFIX, organization=ORGANIZATION,
            size_limit=None, stable_ids=True,
        )
    except FileNotFoundError as error:
        raise DemoError(f"{error}; or run the demo without a directory: make demo DEMO_DIRECTORY=0") from None
    except RuntimeError as error:
        raise DemoError(
            f"the demo directory did not start on 127.0.0.1:{port} (is the port taken? "
            f"make demo DEMO_LDAP_PORT=<another>):\n{error}"
        ) from None


def manage(*arguments: str, env: dict[str, str]) -> str:
    """Run ``manage.py`` with ``arguments``, its output shown as it comes; that output, or DemoError if it failed."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *arguments], cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, text=True,
    )
    lines = []
    for line in process.stdout:  # the knowledge base's sync takes minutes: show progress, not silence
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    if process.wait():
        raise DemoError(f"manage.py {' '.join(arguments)} failed ({process.returncode})")
    return "".join(lines)


def add_directory_arguments(server: Slapd) -> list[str]:
    """``manage.py add_directory`` arguments that register the running demo directory (the tests use them too)."""
    return [
        "add_directory", DIRECTORY_KEY, "--kind", "openldap", "--url", server.url, "--bind-dn", server.service_dn,
        "--password-env", PASSWORD_VARIABLE, "--user-base", f"ou=people,{SUFFIX}", "--group-base", f"ou=groups,{SUFFIX}",
    ]


def directory_register(server: Slapd, env: dict[str, str]) -> None:
    """``add_directory`` and a full ``sync_directory`` of the demo directory."""
    manage(*add_directory_arguments(server), env=env)
    synced = manage("sync_directory", DIRECTORY_KEY, "--full", env=env)
    if "sync succeeded" not in synced:
        raise DemoError(f"the demo directory sync did not succeed; see above (manage.py sync_directory {DIRECTORY_KEY})")


def serve(host: str, port: int, env: dict[str, str], banner: str) -> int:
    """The development server until it exits or this process is told to stop."""
    print(banner, flush=True)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"{host}:{port}"], cwd=ROOT, env=env,
    )
    try:
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _stop_on_signal(signum, _frame):
    # SIGTERM and SIGHUP end the demo like Ctrl-C does, through the finally blocks that stop slapd.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(options: argparse.Namespace) -> int:
    env = {key: value for key, value in os.environ.items() if key != "KBSEARCH_DEBUG"}
    web_env = {**env, "KBSEARCH_DEBUG": "1"}  # a development server on loopback; setup runs as production would
    address = f"http://{options.host}:{options.port}/"
    if options.no_directory:
        manage("migrate", "--noinput", env=env)
        manage("demo_setup", env=env)
        return serve(options.host, options.port, web_env, (
            f"kbsearch demo (no directory) on {address}: sign in as alice, bob, carol, dave, erin, hanako or wei, "
            "password kbsearch-demo; groups are Django groups (demo/users.yaml)"
        ))
    server = demo_slapd_start(_var_dir() / "demo-ldap", port=options.ldap_port)
    try:
        env[PASSWORD_VARIABLE] = SERVICE_PASSWORD
        manage("migrate", "--noinput", env=env)
        directory_register(server, env)
        manage("demo_setup", "--directory", DIRECTORY_KEY, env=env)
        web_env = {
            **env, "KBSEARCH_DEBUG": "1",
            "KBSEARCH_PRINCIPAL_RESOLVER": "access.resolvers.DirectoryPrincipalResolver",
            "KBSEARCH_LDAP_SIGN_IN": "1",
        }
        return serve(options.host, options.port, web_env, (
            f"kbsearch demo on {address}: sign in as alice, bob, carol, dave, erin, hanako or wei, password "
            f"kbsearch-demo, checked by the demo directory {server.url} ({SUFFIX}, administrator "
            f"{server.root_dn} / {ROOT_PASSWORD}); access comes from its groups. The local admin sees public "
            "documents only. Ctrl-C stops the server and the directory."
        ))
    finally:
        server.stop()
        print(f"demo directory stopped (slapd {server.process.pid})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ldap-port", type=int, default=DEFAULT_LDAP_PORT, help="the demo directory's loopback port")
    parser.add_argument("--no-directory", action="store_true", help="no slapd: demo users with Django groups")
    options = parser.parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_on_signal)
    # Ctrl-C even when started in the background of a script (which ignores SIGINT, and the children
    # would inherit that): with a handler here, the commands and the server start with the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(options)
    except DemoError as error:
        print(f"make demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
