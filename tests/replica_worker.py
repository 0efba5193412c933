"""One delivery worker as a real process, for the SIGKILL test in tests/test_scale_out.py.

Reads the usual settings from the environment (DATABASE_URL, REDIS_URL,
TELEGRAM_API_URL, BOT_TOKEN, INSTANCE_ID, RATE_*), delivers the outbox in real
time until it is killed, and prints ``delivering`` once it has started.

    python -m tests.replica_worker
"""

from __future__ import annotations

import asyncio
import sys


async def main() -> None:
    from bot.app import create_app
    from bot.config import load_settings
    from jobs.delivery import worker_for

    app = create_app(load_settings())
    worker = worker_for(app.jobs)
    print("delivering", flush=True)
    try:
        while True:
            await worker.drain()
            await asyncio.sleep(0.05)
    finally:
        await app.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
