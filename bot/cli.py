"""The command line: ``caredesk run | shell | migrate | ...``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import Settings, load_settings

log = logging.getLogger("caredesk")


def database_name(url: str) -> str:
    """The database a URL names, for messages: the SQLite file's path, or the URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as it was configured
        return url.split("@")[-1]
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.render_as_string(hide_password=True)


def _database_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    errors: tuple[type[BaseException], ...] = (OSError, SQLAlchemyError)
    try:
        import asyncpg  # the PostgreSQL driver, when installed: login and missing-database errors are its own

        errors += (asyncpg.PostgresError,)
    except ImportError:
        pass
    return errors


def _migrate(settings: Settings) -> None:
    """Bring the database up to date; one that cannot be reached or written stops with one line (exit 2)."""
    from storage.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except _database_errors() as exc:
        reason = getattr(exc, "orig", None) or exc
        detail = " ".join(str(reason).split()) or type(reason).__name__
        print(f"caredesk: cannot use the database {database_name(settings.database_url)}: {detail}",
              file=sys.stderr)
        raise SystemExit(2) from None


def missing_database_file(url: str) -> Path | None:
    """The SQLite file a URL names when that file does not exist (None: it exists, or not a file database)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a URL that does not parse is left for _migrate to report
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser().resolve()
    return None if path.exists() else path


def _migrate_existing(settings: Settings) -> None:
    """For commands that only read: refuse (one line, exit 2) a SQLite database that does not exist,
    instead of creating an empty one in the wrong folder; an existing one is brought up to date."""
    path = missing_database_file(settings.database_url)
    if path is not None:
        print(f"caredesk: no database at {path}: run this in the folder where the bot keeps its data, "
              f"or set DATABASE_URL (`caredesk migrate` creates an empty one)", file=sys.stderr)
        raise SystemExit(2)
    _migrate(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    _migrate(settings)
    print(f"caredesk: database is up to date ({database_name(settings.database_url)})")
    return 0


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from bot.sandbox import run_sandbox

    _migrate(settings)
    return asyncio.run(run_sandbox(settings))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.bot_token is None:
        print("caredesk: BOT_TOKEN is not set; to try CareDesk offline without a token, run `caredesk shell`",
              file=sys.stderr)
        return 2
    _migrate(settings)
    from bot.runner import run_polling, run_webhook

    if settings.mode == "webhook":
        run_webhook(settings)
    else:
        asyncio.run(run_polling(settings))
    return 0


def cmd_catalog_import(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 2 (nothing imported) when the file has any bad row; every one is listed."""
    from bot.catalog import CatalogError, import_file
    from storage.db import Database

    path = Path(args.file)
    if not path.is_file():
        print(f"caredesk: no such file: {path}", file=sys.stderr)
        return 2
    _migrate(settings)

    async def run() -> tuple[int, int, int]:
        db = Database(settings.database_url)
        try:
            return await import_file(db, path, settings.currency)
        finally:
            await db.dispose()

    try:
        created, updated, unchanged = asyncio.run(run())
    except CatalogError as exc:
        print(f"caredesk: {path}: {len(exc.problems)} problem(s), nothing was imported:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(f"caredesk: imported {path}: {created} new, {updated} updated, {unchanged} unchanged")
    return 0


def cmd_catalog_export(args: argparse.Namespace, settings: Settings) -> int:
    """CSV (or YAML for a .yaml/.yml FILE) to FILE, or CSV to standard output."""
    from bot.catalog import export_products, format_of
    from bot.private_files import write_private
    from storage.db import Database

    _migrate_existing(settings)
    fmt = format_of(args.file) if args.file else "csv"

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            return await export_products(db, fmt, settings.currency)
        finally:
            await db.dispose()

    text = asyncio.run(run())
    if args.file:
        write_private(Path(args.file), text)
        print(f"caredesk: catalog written to {args.file}")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caredesk", description="CareDesk: a customer-care desk inside Telegram.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot (polling, or webhook when MODE=webhook)").set_defaults(func=cmd_run)
    sub.add_parser("shell", help="the offline sandbox: try the bot with no token and no network").set_defaults(
        func=cmd_shell)
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=cmd_migrate)
    catalog = sub.add_parser("catalog", help="import or export the product catalog (CSV or YAML)")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    catalog_import = catalog_sub.add_parser("import", help="upsert products by SKU; a bad file imports nothing")
    catalog_import.add_argument("file", metavar="FILE", help="a .csv file, or .yaml/.yml")
    catalog_import.set_defaults(func=cmd_catalog_import)
    catalog_export = catalog_sub.add_parser("export", help="write the catalog (to standard output without FILE)")
    catalog_export.add_argument("file", metavar="FILE", nargs="?", help="a .csv file, or .yaml/.yml")
    catalog_export.set_defaults(func=cmd_catalog_export)
    from bot.report_cli import add_commands as add_report_commands

    add_report_commands(sub, _migrate, _migrate_existing)  # report NAME ..., demo-data ...
    from bot.predict import add_command as add_predict_command

    add_predict_command(sub)  # predict --orders FILE.csv --as-of YYYY-MM-DD ...
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.INFO if args.command == "run" else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings()
    from bot.logs import install as redact_secrets

    redact_secrets(settings.bot_token, settings.webhook_secret)  # in log lines and uncaught tracebacks
    if settings.log_format == "json":
        from bot.logs import use_json_lines

        use_json_lines()
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
