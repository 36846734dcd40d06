"""Command line: the subcommands of ``procore-hotfolder``, parsed and dispatched.

The running daemon (`run`, `once`, `demo`) is composed in ``engine.compose``; the short commands
(`check`, `status`, `explain`, `retry`, discovery) build the little they need here.

Exit codes: 0 success, 1 failure at run time, 2 usage error, 78 configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from procore_hotfolder import __version__
from procore_hotfolder.commands.checking import check
from procore_hotfolder.commands.discovery import (
    describe_error,
    folder_tree,
    format_albums,
    format_projects,
    format_tree,
    projects_by_name,
)
from procore_hotfolder.commands.reporting import explain, format_status, retry, status
from procore_hotfolder.commands.routes import format_routes, preview_routes, routes_json
from procore_hotfolder.config import Config, default_config_path, load_config
from procore_hotfolder.engine.heartbeat import SystemdNotifier
from procore_hotfolder.errors import ConfigError, ProcoreError
from procore_hotfolder.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from procore_hotfolder.logs import configure_logging
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.state.statelock import StateLock
from procore_hotfolder.upload.destinations.photos import list_albums


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="procore-hotfolder",
        description="Watch drop folders and upload settled files to Procore.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=None,
                        help="configuration file (default: $PROCORE_HOTFOLDER_CONFIG, else "
                             "/etc/procore-hotfolder/config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon in the foreground")
    sub.add_parser("once", parents=[common],
                   help="process every file now in the folders, then exit")
    check = sub.add_parser("check", parents=[common],
                           help="validate configuration, folders and Procore access")
    check.add_argument("--offline", action="store_true",
                       help="do not contact Procore, nor the alerts' SMTP server or webhook "
                            "host to check them")
    check.add_argument("--send-test-alert", action="store_true",
                       help="also send one test message through every [alerts] channel "
                            "(even with --offline)")
    pr = sub.add_parser("projects", parents=[common],
                        help="the company's projects this service account can see (ids)")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    fo = sub.add_parser("folders", parents=[common],
                        help="a project's Documents folder tree with folder ids")
    fo.add_argument("project_id", type=int, metavar="PROJECT_ID")
    fo.add_argument("--depth", type=int, default=None, metavar="N",
                    help="list N levels below the root only (each folder with subfolders "
                         "costs one API call)")
    fo.add_argument("--json", action="store_true", help="machine-readable output")
    al = sub.add_parser("albums", parents=[common],
                        help="a project's Photos albums (image categories) with their ids")
    al.add_argument("project_id", type=int, metavar="PROJECT_ID")
    al.add_argument("--json", action="store_true", help="machine-readable output")
    st = sub.add_parser("status", parents=[common], help="per-folder queue and upload status")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    ex = sub.add_parser("explain", parents=[common], help="why a file is or is not uploaded")
    ex.add_argument("path")
    rt = sub.add_parser("retry", parents=[common], help="put failed files back in the queue")
    rt.add_argument("paths", nargs="*", metavar="PATH")
    ro = sub.add_parser("route", parents=[common],
                        help="where each file would go (rule, project, target, name), without "
                             "uploading or creating anything")
    ro.add_argument("paths", nargs="*", metavar="PATH",
                    help="files to route (default: every file now in the folders)")
    ro.add_argument("--json", action="store_true", help="machine-readable output")
    em = sub.add_parser("emulator", parents=[common],
                        help="serve the local Procore emulator on 127.0.0.1")
    em.add_argument("--host", default="127.0.0.1")
    em.add_argument("--port", type=int, default=8765)
    em.add_argument("--client-id", default="emulator-client")
    em.add_argument("--client-secret", default="emulator-secret")
    em.add_argument("--s3-endpoint", metavar="URL",
                    help="use this S3 server as storage (path-style, e.g. "
                         "http://127.0.0.1:8333); its secret key in EMULATOR_S3_SECRET_KEY")
    em.add_argument("--s3-bucket", default="procore-uploads", metavar="NAME")
    em.add_argument("--s3-access-key", default="", metavar="KEY")
    em.add_argument("--api-latency-ms", type=float, default=0.0, metavar="MS",
                    help="delay every API answer by MS milliseconds (a simulated round trip)")
    demo = sub.add_parser("demo", parents=[common],
                          help="emulator + daemon over a temporary drop folder")
    demo.add_argument("--settle-seconds", type=float, default=2.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    handlers = {
        "run": _cmd_run, "once": _cmd_once, "check": _cmd_check, "status": _cmd_status,
        "explain": _cmd_explain, "retry": _cmd_retry, "emulator": _cmd_emulator,
        "demo": _cmd_demo, "projects": _cmd_projects, "folders": _cmd_folders,
        "albums": _cmd_albums, "route": _cmd_route,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print("configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path())


def _cmd_run(args: argparse.Namespace) -> int:
    path = args.config or default_config_path()
    config = load_config(path)
    configure_logging(config.daemon.log_level)
    from procore_hotfolder.engine.compose import serve_daemon  # noqa: PLC0415 - loaded only to run
    return serve_daemon(config, lambda: load_config(path), notifier=SystemdNotifier())


def _cmd_once(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config.daemon.log_level)
    from procore_hotfolder.engine.compose import run_once  # noqa: PLC0415 - loaded only to run
    return run_once(config)


def _cmd_check(args: argparse.Namespace) -> int:
    config = _config(args)
    if not args.offline:
        configure_logging("warning", stream=sys.stderr)
    lines, failed = check(config, online=not args.offline,
                          send_test_alert_too=args.send_test_alert)
    print("\n".join(lines))
    return EXIT_FAILURE if failed else EXIT_OK


# --- discovery: projects, folders, albums -----------------------------------------------


def _discover(args: argparse.Namespace,
              read: Callable[[ProcoreClient, Config], tuple[Any, str]]) -> int:
    """Run one read against Procore; print its JSON (``--json``) or its text."""
    config = _config(args)
    configure_logging("warning", stream=sys.stderr)
    client = ProcoreClient(config.procore, RateGovernor())
    try:
        data, text = read(client, config)
    except ProcoreError as exc:
        subject = (f"project {args.project_id}" if getattr(args, "project_id", None)
                   else f"company {config.procore.company_id}")
        print(f"procore-hotfolder: {describe_error(exc, subject)}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        client.close()
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)
    return EXIT_OK


def _cmd_projects(args: argparse.Namespace) -> int:
    def read(client: ProcoreClient, config: Config) -> tuple[Any, str]:
        projects = projects_by_name(client, config.procore.company_id)
        return [p.to_json() for p in projects], format_projects(projects)

    return _discover(args, read)


def _cmd_folders(args: argparse.Namespace) -> int:
    def read(client: ProcoreClient, _config: Config) -> tuple[Any, str]:
        tree = folder_tree(client, args.project_id, max_depth=args.depth)
        return tree.to_json(), format_tree(tree)

    return _discover(args, read)


def _cmd_route(args: argparse.Namespace) -> int:
    """Where each file would go; exit 0 when every file has a route, 1 when any would fail
    (or Procore could not be asked)."""
    config = _config(args)
    configure_logging("warning", stream=sys.stderr)
    client = ProcoreClient(config.procore, RateGovernor())
    try:
        previews = preview_routes(config, client, args.paths)
    except ProcoreError as exc:
        print(f"procore-hotfolder: {describe_error(exc, f'procore ({exc.reason})')}",
              file=sys.stderr)
        return EXIT_FAILURE
    finally:
        client.close()
    print(json.dumps(routes_json(previews), indent=2, ensure_ascii=False) if args.json
          else format_routes(config, previews))
    return EXIT_OK if all(item.routed for item in previews) else EXIT_FAILURE


def _cmd_albums(args: argparse.Namespace) -> int:
    def read(client: ProcoreClient, _config: Config) -> tuple[Any, str]:
        albums = list_albums(client, args.project_id)
        return [a.to_json() for a in albums], format_albums(albums)

    return _discover(args, read)


def _cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    journal = Journal.open(config.daemon.state_dir)
    try:
        report = status(config, journal)
    finally:
        journal.close()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json
          else format_status(report))
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    config = _config(args)
    journal = Journal.open(config.daemon.state_dir)
    try:
        print(explain(config, journal, args.path))
    finally:
        journal.close()
    return EXIT_OK


def _cmd_retry(args: argparse.Namespace) -> int:
    config = _config(args)
    journal = Journal.open(config.daemon.state_dir)
    try:
        lines = retry(config, journal, args.paths)
    finally:
        journal.close()
    for line in lines or ["no failed files"]:
        print(line)
    holder = StateLock(config.daemon.state_dir).holder()
    if holder and holder > 0 and lines:
        # A file failed in place produces no event: ask the daemon to rescan now (SIGUSR1,
        # not SIGHUP: a reload would also apply a configuration file still being edited).
        os.kill(holder, signal.SIGUSR1)
    return EXIT_OK


def _cmd_emulator(args: argparse.Namespace) -> int:
    from procore_hotfolder.emulator import serve  # noqa: PLC0415 - never loaded by the daemon
    from procore_hotfolder.emulator.s3 import S3Error, S3Storage  # noqa: PLC0415

    configure_logging("info")
    s3 = None
    if args.s3_endpoint:
        s3 = S3Storage(args.s3_endpoint, args.s3_bucket, args.s3_access_key,
                       os.environ.get("EMULATOR_S3_SECRET_KEY", ""))
        try:
            s3.ensure_bucket()
        except (S3Error, OSError) as exc:
            print(f"procore-hotfolder: S3 storage {args.s3_endpoint}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    where = f", storage {args.s3_endpoint}/{args.s3_bucket}" if s3 else ""
    print(f"Procore emulator on http://{args.host}:{args.port} "
          f"(client_id {args.client_id!r}{where}); Ctrl-C stops it", flush=True)
    if args.api_latency_ms < 0:
        print("procore-hotfolder: --api-latency-ms must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    serve(host=args.host, port=args.port, client_id=args.client_id,
          client_secret=args.client_secret, s3=s3,
          api_latency_seconds=args.api_latency_ms / 1000)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from procore_hotfolder.emulator import Emulator  # noqa: PLC0415 - demo only

    with tempfile.TemporaryDirectory(prefix="procore-hotfolder-demo-") as temp, \
            Emulator(client_id="demo-client", client_secret="demo-secret") as emulator:  # noqa: S106 - demo credentials of the local emulator
        root = Path(temp)
        drop = root / "drop"
        drop.mkdir()
        secret = root / "client-secret"
        secret.write_text("demo-secret\n", encoding="utf-8")
        config_path = root / "config.toml"
        config_path.write_text(DEMO_CONFIG.format(url=emulator.url, root=root, drop=drop,
                                                  settle=args.settle_seconds),
                               encoding="utf-8")
        config = load_config(config_path, environ={})
        configure_logging("info")
        (drop / "hello-procore.txt").write_text("Dropped by procore-hotfolder demo.\n",
                                                encoding="utf-8")
        # The command as this process was started (make demo runs it from .venv/bin).
        prog = sys.argv[0] if Path(sys.argv[0]).name == "procore-hotfolder" \
            else f"{sys.executable} -m procore_hotfolder"
        print(f"\nProcore emulator: {emulator.url}\nDrop files into: {drop}\n"
              f"Archive: {drop / 'Archive'}   Failed: {drop / 'Failed'}   "
              f"Ledger: {root / 'state' / 'uploads.jsonl'}\n"
              "A sample file was dropped already; watch it upload below. Ctrl-C stops.\n"
              "In another terminal, try:\n"
              f"  {prog} status -c {config_path}\n"
              f"  {prog} explain -c {config_path} {drop / 'hello-procore.txt'}\n"
              f"  kill -HUP {os.getpid()}    # reload the configuration (as systemctl reload)\n",
              flush=True)
        from procore_hotfolder.engine.compose import serve_daemon  # noqa: PLC0415 - loaded only to run
        return serve_daemon(config, lambda: load_config(config_path, environ={}))


DEMO_CONFIG = """\
[procore]
api_url = "{url}"
login_url = "{url}"
company_id = 1234
client_id = "demo-client"
client_secret_file = "client-secret"

[daemon]
state_dir = "{root}/state"
settle_seconds = {settle}
rescan_seconds = 60
workers = 2

[[folders]]
path = "{drop}"
project_id = 5678
archive_dir = "Archive"
failed_dir = "Failed"
destination = "documents"
"""
