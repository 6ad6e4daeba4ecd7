"""The ``shim`` command: ``serve`` runs the server, ``dsn`` prints the DSNs to paste into scripts."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from shim.auth import Keys, dsn, load_or_create_key
from shim.settings import Settings, SettingsError


def resolve_keys(settings: Settings, announce: bool) -> Keys:
    """The configured keys, or the generated one kept in the data dir (created on first start)."""
    if settings.public_keys is not None:
        return Keys(settings.public_keys)
    key, created = load_or_create_key(settings.data_dir)
    if created and announce:
        print(f"shim: generated a DSN key in {settings.data_dir / 'public_key'}", file=sys.stderr)
    return Keys(((key, None),))


def base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def print_dsns(settings: Settings, keys: Keys) -> None:
    for key, project in keys:
        print(f"DSN: {dsn(key, base_url(settings), project or '1')}")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from shim.app import create_app

    settings = settings.replace(host=args.host or settings.host, port=args.port or settings.port)
    keys = resolve_keys(settings, announce=True)
    print_dsns(settings, keys)
    print(f"shim: storing in {settings.database_url}", file=sys.stderr)
    sys.stdout.flush()
    uvicorn.run(create_app(settings, keys), host=settings.host, port=settings.port,
                log_level=settings.log_level if settings.log_level != "critical" else "critical",
                access_log=settings.log_level == "debug", server_header=False)
    return 0


def cmd_dsn(settings: Settings, args: argparse.Namespace) -> int:
    print_dsns(settings, resolve_keys(settings, announce=True))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="shim", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the ingestion server",
                                description="Run the ingestion server (settings: SHIM_* variables).")
    serve.add_argument("--host", help="address to bind (default SHIM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHIM_PORT or 8000)")
    serve.set_defaults(run=cmd_serve)
    show = commands.add_parser("dsn", help="print the DSN(s) to paste into sentry_sdk.init",
                               description="Print the DSN(s) to paste into sentry_sdk.init.")
    show.set_defaults(run=cmd_dsn)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"shim: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.run(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
