"""The command line: ``caredesk run | shell | migrate | ...``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.config import Settings, load_settings

log = logging.getLogger("caredesk")


def _migrate(settings: Settings) -> None:
    from storage.migrate import upgrade

    upgrade(settings.database_url)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    _migrate(settings)
    print(f"caredesk: database is up to date ({settings.database_url.split('@')[-1]})")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caredesk", description="CareDesk: a customer-care desk inside Telegram.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot (polling, or webhook when MODE=webhook)").set_defaults(func=cmd_run)
    sub.add_parser("shell", help="the offline sandbox: try the bot with no token and no network").set_defaults(
        func=cmd_shell)
    sub.add_parser("migrate", help="upgrade the database to the latest schema").set_defaults(func=cmd_migrate)
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
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
