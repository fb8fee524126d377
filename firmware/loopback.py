"""Run the simulated board top behind a pseudo-terminal, so the REAL host driver can talk to it.

The simulation (Amaranth's simulator) bit-bangs the board's ``rx`` line with the bytes the
host writes to the pty, and decodes the board's ``tx`` line back into bytes for the host: the
host side is the unmodified :class:`~bs4nn.firmware.host.BoardLink` on a pyserial port.
"""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Callable, Sequence
from typing import TypeVar

from amaranth.sim import Simulator

from bs4nn.firmware.board import BoardTop
from bs4nn.firmware.uart import DATA_BITS

T = TypeVar("T")
CLOCK_PERIOD_S = 1e-7
POLL_BYTES = 4  # when the host is silent, look for new bytes every this many byte times
BITS_PER_UART_FRAME = DATA_BITS + 2


def _uart_bits(value: int) -> list[int]:
    return [0, *((value >> bit) & 1 for bit in range(DATA_BITS)), 1]


def run_with_host(
    board: BoardTop,
    host: Callable[[str], T],
    max_cycles: int = 50_000_000,
    monitors: Sequence[Callable] = (),
) -> tuple[T, int]:
    """Simulate ``board`` while ``host(pty_path)`` runs in a thread; return its value and the cycles.

    The simulation stops when the host function returns (or raises: the exception is re-raised).
    ``monitors`` are extra simulator processes (``async def monitor(ctx)``) watching the board.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    outcome: dict[str, object] = {}

    def host_thread() -> None:
        try:
            outcome["value"] = host(path)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    divisor = board.divisor
    cycles = 0

    async def drive_rx(ctx) -> None:
        nonlocal cycles
        ctx.set(board.rx, 1)
        while thread.is_alive():
            if cycles > max_cycles:
                raise RuntimeError(f"board simulation exceeded {max_cycles} cycles")
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                data = b""
            if not data:
                await ctx.tick().repeat(POLL_BYTES * BITS_PER_UART_FRAME * divisor)
                cycles += POLL_BYTES * BITS_PER_UART_FRAME * divisor
                continue
            for value in data:
                for bit in _uart_bits(value):
                    ctx.set(board.rx, bit)
                    await ctx.tick().repeat(divisor)
                cycles += BITS_PER_UART_FRAME * divisor

    async def decode_tx(ctx) -> None:
        while True:
            _, _, line = await ctx.tick().sample(board.tx)
            if line:
                continue
            # start bit seen: sample the data bits in their middle
            await ctx.tick().repeat(divisor + divisor // 2 - 1)
            value = 0
            for bit in range(DATA_BITS):
                _, _, line = await ctx.tick().sample(board.tx)
                value |= int(line) << bit
                if bit < DATA_BITS - 1:
                    await ctx.tick().repeat(divisor - 1)
            os.write(master, bytes([value]))
            await ctx.tick().repeat(divisor)  # into the stop bit

    thread = threading.Thread(target=host_thread, name="bs4nn-host", daemon=True)
    simulator = Simulator(board)
    simulator.add_clock(CLOCK_PERIOD_S)
    simulator.add_testbench(drive_rx)
    simulator.add_process(decode_tx)  # not critical: stops with the testbench
    for monitor in monitors:
        simulator.add_process(monitor)
    thread.start()
    try:
        simulator.run()
    finally:
        thread.join(timeout=1.0)
        os.close(master)
        os.close(slave)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"], cycles  # type: ignore[return-value]
