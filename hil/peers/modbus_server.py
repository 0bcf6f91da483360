#!/usr/bin/env python3
"""Modbus TCP peer for the driver tests: a pymodbus 3.16 server whose values
change over time and which logs every read it serves.

Register map (unit id 1, 0-based protocol addresses):

  holding 0      counter, +1 every 100 ms since start, wraps at 65536
  holding 1      (3 * counter) mod 65536
  holding 2-3    float32, counter * 0.5, high word first
  holding 4-5    uint32, counter * 100000 mod 2**32, high word first
  holding 6      int16, -(counter mod 1000)
  holding 7-199  static, register i holds i
  input 0-124    (7 * i + counter) mod 65536
  coil 0         toggles every 500 ms: (counter // 5) % 2
  coil 1         counter % 2 == 0
  coil 2-15      static False
  discrete 0-15  static pattern 0b1011_0010 (bit 0 first: F T F F T T F T ...)

Each served read is appended to the log file as one JSON line:
  {"t": unix_seconds, "unit": 1, "table": "holding", "address": 0,
   "values": [...]}
For coils and discrete inputs, "values" holds the bits from "address" to the
end of the 16-bit words that cover the request (at least the requested bits).

Usage: modbus_server.py [--log FILE] [--host 127.0.0.1] [--port 0]
Without --log nothing is logged (for benchmarks).
The first line on stdout is "PORT <n>" once the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

TICK_S = 0.1
HOLDING_LEN = 200
INPUT_LEN = 125
DISCRETE_PATTERN = 0b1011_0010

FC_TABLE = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def words_f32(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def words_u32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


class Peer:
    def __init__(self, log_path: str | None) -> None:
        self.t0 = time.monotonic()
        self.log = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else None

    def counter(self) -> int:
        return int((time.monotonic() - self.t0) / TICK_S) & 0xFFFF

    def holding(self, c: int) -> list[int]:
        regs = [c, (3 * c) & 0xFFFF]
        regs += words_f32(c * 0.5)
        regs += words_u32((c * 100000) & 0xFFFFFFFF)
        regs.append((-(c % 1000)) & 0xFFFF)
        regs += list(range(7, HOLDING_LEN))
        return regs

    def inputs(self, c: int) -> list[int]:
        return [(7 * i + c) & 0xFFFF for i in range(INPUT_LEN)]

    def coil_word(self, c: int) -> int:
        bit0 = (c // 5) % 2
        bit1 = 1 if c % 2 == 0 else 0
        return bit0 | (bit1 << 1)

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values,
    ):
        table = FC_TABLE.get(function_code)
        if table is None or set_values is not None:
            return None
        c = self.counter()
        if table == "holding":
            registers[: HOLDING_LEN] = self.holding(c)
        elif table == "input":
            registers[: INPUT_LEN] = self.inputs(c)
        elif table == "coil":
            registers[0] = self.coil_word(c)
        # Discrete inputs are static.
        if self.log is None:
            return None
        if table in ("holding", "input"):
            offset = address - start_address
            values = registers[offset : offset + count]
        else:
            # For bit tables pymodbus passes the bit address and the number of
            # 16-bit words that cover the request.
            offset = address // 16 - start_address
            bits: list[bool] = []
            for word in registers[offset : offset + count]:
                bits += [bool((word >> i) & 1) for i in range(16)]
            values = bits[address % 16 :]
        line = {
            "t": time.time(),
            "unit": 1,
            "table": table,
            "address": address,
            "counter": c,
            "values": values,
        }
        self.log.write(json.dumps(line) + "\n")
        return None

    def device(self) -> SimDevice:
        c = 0
        return SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                [
                    SimData(
                        0,
                        values=[bool((DISCRETE_PATTERN >> i) & 1) for i in range(16)],
                        datatype=DataType.BITS,
                    )
                ],
                [SimData(0, values=self.holding(c), datatype=DataType.REGISTERS)],
                [SimData(0, values=self.inputs(c), datatype=DataType.REGISTERS)],
            ),
            action=self.action,
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="JSON-lines file of served reads")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    peer = Peer(args.log)
    server = ModbusTcpServer(peer.device(), address=(args.host, args.port))
    await server.serve_forever(background=True)
    sockets = getattr(server.transport, "sockets", None) or []
    if not sockets:
        print("ERROR server did not bind", flush=True)
        return 1
    port = sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
