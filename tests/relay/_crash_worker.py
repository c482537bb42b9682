"""Run by test_sqlite_crash.py in a subprocess that the test kills with SIGKILL.

Enqueues, claims and delivers as fast as it can, and prints a line for every write only after
the store has answered, that is once the write is committed: ``enqueued ID``, ``claimed ID``,
``delivered ID``.
"""

from __future__ import annotations

import asyncio
import sys

from dingpush.relay.stores import NewMessage, SQLiteStore


async def main(path: str, lease: float) -> None:
    async with SQLiteStore(path) as store:
        number = 0
        while True:
            batch = []
            for _ in range(16):
                number += 1
                payload = f'{{"msgtype":"text","text":{{"content":"alert {number}"}}}}'
                batch.append(NewMessage(target=f"t{number % 3}", kind="text", payload=payload))
            answers = await asyncio.gather(*(store.enqueue(m) for m in batch))
            lines = [f"enqueued {a.id}" for a in answers]
            claims = await store.claim(5, lease=lease)
            lines += [f"claimed {c.id}" for c in claims]
            if claims:
                await store.mark_delivered(claims[0], reply={"errcode": 0})
                lines.append(f"delivered {claims[0].id}")
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
