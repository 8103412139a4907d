"""``SignBatches``: the signatures one event-loop turn asks for are made in one executor job,
and each caller gets exactly its own result or exception."""

import asyncio
import threading
from typing import Any

import pytest

from sealmail.delivery.signing import SignBatches


def test_one_turns_signatures_share_one_job_and_each_gets_its_own() -> None:
    threads: list[int] = []

    def sign(payload: bytes) -> bytes:
        threads.append(threading.get_ident())
        if payload == b"bad":
            raise ValueError("no key for this one")
        return b"sig:" + payload

    async def main() -> tuple[list[Any], list[Any]]:
        batches = SignBatches()
        first = await asyncio.gather(
            *(batches.run(sign, p) for p in (b"a", b"bad", b"c")), return_exceptions=True
        )
        # A later turn: a job of its own.
        second = await asyncio.gather(batches.run(sign, b"d"), return_exceptions=True)
        return list(first), list(second)

    first, second = asyncio.run(main())
    assert first[0] == b"sig:a" and first[2] == b"sig:c"
    assert isinstance(first[1], ValueError) and str(first[1]) == "no key for this one"
    assert second == [b"sig:d"]
    # Off the loop's thread, the first turn's three in one job (one thread, in order).
    assert threading.get_ident() not in threads
    assert len(threads) == 4 and len(set(threads[:3])) == 1


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    release = threading.Event()

    def slow(payload: bytes) -> bytes:
        release.wait(5)
        return payload.upper()

    async def main() -> tuple[bytes, bool]:
        batches = SignBatches()
        gone = asyncio.ensure_future(batches.run(slow, b"x"))
        kept = asyncio.ensure_future(batches.run(slow, b"y"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept, gone.cancelled()

    assert asyncio.run(main()) == (b"Y", True)


def test_an_executor_that_refuses_the_job_fails_every_caller_instead_of_leaving_them_waiting() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        await loop.shutdown_default_executor()  # run_in_executor now raises RuntimeError
        batches = SignBatches()
        calls = (batches.run(bytes.upper, b"a"), batches.run(bytes.upper, b"b"))
        both = asyncio.gather(*calls, return_exceptions=True)
        return list(await asyncio.wait_for(both, 5))

    results = asyncio.run(main())
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
