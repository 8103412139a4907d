"""``SignBatches``: the signatures one event-loop turn asks for are made in one executor job,
and each caller gets exactly its own result or exception."""

import asyncio
import threading

import pytest

from sealmail.delivery.signing import SignBatches


def test_one_turns_signatures_share_one_job_and_each_gets_its_own() -> None:
    threads: list[int] = []

    def sign(payload: bytes) -> bytes:
        threads.append(threading.get_ident())
        if payload == b"bad":
            raise ValueError("no key for this one")
        return b"sig:" + payload

    async def main() -> tuple[list[object], list[object]]:
        batches = SignBatches()
        first = await asyncio.gather(
            *(batches.run(sign, p) for p in (b"a", b"bad", b"c")), return_exceptions=True
        )
        # A later turn: a job of its own.
        second = await asyncio.gather(batches.run(sign, b"d"), return_exceptions=True)
        return first, second

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
