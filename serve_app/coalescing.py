"""Single rows coalesced into few model calls: more rows per call under load, no wait when idle."""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Row = TypeVar("Row")
Result = TypeVar("Result")


@dataclass(frozen=True)
class CoalescingLimits:
    """How the Ingress groups single transactions into model calls.

    Each call to the model deployment costs far more than scoring a row in it
    (docs/BENCHMARKS.md), so rows should share calls; but a timer that waits for company would
    add its wait to every request when traffic is light. Instead, a row goes at once while
    fewer than `max_calls_in_flight` calls are out; beyond that it waits for the next call to
    return and leaves with every row that arrived meanwhile. A lone request never waits, and
    under load the rows per call grow with the load.
    """

    max_rows_per_call: int = 64
    # One call out per Ingress replica: the model replica still has a call from each Ingress
    # replica to score, and a second call out from the same replica only splits the rows that
    # would have shared the next call (more CPU per row in both replicas; docs/BENCHMARKS.md).
    max_calls_in_flight: int = 1
    # A call out for longer than this stops holding its slot, and the rows behind it go in a
    # new call: one stalled call (its replica lost mid-call) then delays the Ingress's rows by
    # this much, not by the request timeout. Far above a call's time under load.
    stall_s: float = 0.05


class RowCoalescer(Generic[Row, Result]):
    """Sends rows through `send` (rows in, one result per row out, in order), grouped as
    `CoalescingLimits` says. One per event loop; not thread-safe."""

    def __init__(
        self,
        send: Callable[[list[Row]], Awaitable[list[Result]]],
        limits: CoalescingLimits | None = None,
    ) -> None:
        self._send = send
        self._limits = limits if limits is not None else CoalescingLimits()
        self._waiting: deque[tuple[Row, asyncio.Future[Result]]] = deque()
        self._in_flight = 0
        self._calls: set[asyncio.Task[None]] = set()  # strong references while they run

    async def submit(self, row: Row) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._in_flight < self._limits.max_calls_in_flight:
            self._start_call()
        return await future

    def _start_call(self) -> None:
        rows: list[Row] = []
        futures: list[asyncio.Future[Result]] = []
        while self._waiting and len(rows) < self._limits.max_rows_per_call:
            row, future = self._waiting.popleft()
            if future.done():  # its request was cancelled (timed out) while it waited
                continue
            rows.append(row)
            futures.append(future)
        if not rows:
            return
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        slot = _Slot()
        slot.timer = loop.call_later(self._limits.stall_s, self._free, slot)
        call = loop.create_task(self._call(rows, futures, slot))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    def _free(self, slot: "_Slot") -> None:
        """The call's slot given back, once: when it returns, or when it stalls."""
        if slot.held:
            slot.held = False
            self._in_flight -= 1
            if self._waiting:
                self._start_call()

    async def _call(
        self, rows: list[Row], futures: list[asyncio.Future[Result]], slot: "_Slot"
    ) -> None:
        try:
            results = await self._send(rows)
            if len(results) != len(rows):
                raise RuntimeError(f"{len(rows)} rows sent, {len(results)} results back")
        except BaseException as error:  # every waiting request gets the failure, whatever it is
            for future in futures:
                if not future.done():
                    future.set_exception(_copy(error))
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            if slot.timer is not None:
                slot.timer.cancel()
            self._free(slot)


class _Slot:
    """One call's hold on a place among the calls in flight."""

    __slots__ = ("held", "timer")

    def __init__(self) -> None:
        self.held = True
        self.timer: asyncio.TimerHandle | None = None


def _copy(error: BaseException) -> BaseException:
    # A cancelled model call fails its requests as a plain error: cancelling them would read as
    # the client having gone away.
    if isinstance(error, asyncio.CancelledError):
        return RuntimeError("the model call was cancelled")
    return error
