"""The ``nbtrack`` command: ``nbtrack demo``, ``nbtrack runs [ls|rm]``, ``nbtrack view`` and ``nbtrack sync``."""

from __future__ import annotations

import argparse
import sys


def _remove(args: argparse.Namespace) -> int:
    from .api import Api
    from .errors import UsageError

    if not args.paths:
        print("nbtrack runs rm: name the runs to remove as project/run_id", file=sys.stderr)
        return 2
    api = Api(args.dir)
    failed = 0
    for path in args.paths:
        try:
            record = api.run(path)
            record.delete(delete_artifacts=args.delete_artifacts)
        except UsageError as exc:
            print(f"nbtrack runs rm: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"removed {record.path} ({record.name}, {record.state}, {record.last_step + 1} steps)")
    return 1 if failed else 0


def _runs(args: argparse.Namespace) -> int:
    from .api import Api

    if args.action == "rm":
        return _remove(args)
    if args.paths:
        print("nbtrack runs: 'ls' takes no run paths (did you mean 'nbtrack runs rm ...'?)", file=sys.stderr)
        return 2
    records = Api(args.dir).runs(args.project, limit=args.limit)
    if not records:
        print(f"no runs under {Api(args.dir).root}")
        return 0
    print(f"{'project':<20} {'id':<10} {'name':<24} {'state':<9} {'steps':>7}  created")
    for r in records:
        created = r.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        print(f"{r.project[:20]:<20} {r.id[:10]:<10} {r.name[:24]:<24} {r.state:<9} {r.last_step + 1:>7}  {created}")
    return 0


def _view(args: argparse.Namespace) -> int:
    from . import page
    from .api import Api
    from .errors import UsageError

    api = Api(args.dir)
    try:
        if args.run:
            path = args.run if "/" in args.run or not args.project else f"{args.project}/{args.run}"
            record = api.run(path)
            title = f"{record.name} ({record.project}/{record.id})"
            body = page.run_fragment(page.run_state(record), media_bytes=page.FILE_MEDIA_BYTES)
            default = f"nbtrack-{record.project}-{record.id}.html"
        else:
            records = api.runs(args.project, limit=args.limit)
            if not records:
                print(f"nbtrack view: no runs{' in project ' + args.project if args.project else ''} under {api.root}",
                      file=sys.stderr)  # fmt: skip
                return 1
            title = f"nbtrack: {args.project or 'all projects'} ({len(records)} runs)"
            body = page.project_fragment(records, args.project)
            default = f"nbtrack-{args.project or 'runs'}.html"
    except UsageError as exc:
        print(f"nbtrack view: {exc}", file=sys.stderr)
        return 2
    target = page.write(args.output or _safe_name(default), page.document(title, body)).resolve()
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KB)")
    if args.no_open or not _can_open_browser():
        print(f"open it in a browser: {target.as_uri()}")
    else:
        import webbrowser

        webbrowser.open(target.as_uri())
    return 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _can_open_browser() -> bool:
    """A graphical browser can be opened (without a display, Python's webbrowser would
    start a text-mode one in this terminal)."""
    import os

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbtrack", description="Experiment tracking for notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small model, track it locally, and show what was stored")
    demo.add_argument("--dir", default="demo-runs", help="where to store the run (default: ./demo-runs)")
    runs = sub.add_parser("runs", help="list stored runs, newest first (ls), or remove runs (rm project/run_id ...)")
    runs.add_argument("action", nargs="?", choices=("ls", "rm"), default="ls", help="ls (the default) or rm")
    runs.add_argument("paths", nargs="*", metavar="PROJECT/RUN_ID", help="rm: the runs to remove")
    runs.add_argument(
        "--delete-artifacts", action="store_true", help="rm: also remove the artifact versions the runs logged"
    )
    runs.add_argument("--dir", default=None, help="the dir runs were written with (default: NBTRACK_DIR or .)")
    runs.add_argument("--project", default=None, help="only this project's runs (default: every project)")
    runs.add_argument("--limit", type=int, default=20, help="at most this many runs, the newest (default: 20)")
    sync = sub.add_parser(
        "sync", help="upload offline runs and whatever an interrupted sync left to an MLflow tracking server"
    )
    sync.add_argument("--dir", default=None, help="the dir runs were written with (default: NBTRACK_DIR or .)")
    sync.add_argument("--project", default=None, help="only this project's runs")
    sync.add_argument("--run", default=None, metavar="ID", help="only this run")
    sync.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    sync.add_argument(
        "--verify",
        action="store_true",
        help="compare each run on the server with the store (run, points per key, params, status) and re-send "
        "what is missing",
    )
    sync.add_argument(
        "--force",
        action="store_true",
        help="upload each run again, whole, into a new MLflow run (the old one is tagged)",
    )
    sync.add_argument(
        "--tracking-uri", default=None, help="the server (default: NBTRACK_TRACKING_URI, else MLFLOW_TRACKING_URI)"
    )
    view = sub.add_parser(
        "view",
        help="write a run (project/run_id) or a project's runs as one self-contained HTML page and open it",
    )
    view.add_argument("run", nargs="?", default=None, metavar="PROJECT/RUN_ID", help="the run (default: a runs table)")
    view.add_argument("--dir", default=None, help="the dir runs were written with (default: NBTRACK_DIR or .)")
    view.add_argument("--project", default=None, help="the project (its runs table, or where RUN_ID is)")
    view.add_argument("--limit", type=int, default=200, help="runs table: at most this many runs (default: 200)")
    view.add_argument("-o", "--output", default=None, help="the file to write (default: nbtrack-<name>.html here)")
    view.add_argument("--no-open", action="store_true", help="only write the file and print its path")
    args = parser.parse_args(argv)
    if args.command == "view":
        return _view(args)
    if args.command == "sync":
        from .sync.command import sync as sync_main

        return sync_main(
            args.dir, args.project, args.run, args.dry_run, args.tracking_uri, verify=args.verify, force=args.force
        )
    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(args.dir)
    return _runs(args)


if __name__ == "__main__":
    sys.exit(main())
