#!/usr/bin/env python3
"""Modbus RTU peer for the driver tests: a pymodbus 3.16 serial server (RTU
framer) with several unit ids on one line, values that change over time,
a log of every request it serves, and units that can be silenced at run time.

Register map of unit u (0-based protocol addresses):

  holding 0      counter, +1 every 100 ms since start, wraps at 65536
  holding 1      u (the unit id)
  holding 2      (counter * u) mod 65536
  holding 3-9    setpoints: 0 at start, keep what the client writes
  holding 10-99  static, register i holds i
  input 0-124    (7 * i + counter + 1000 * u) mod 65536
  coil 0-15      False at start, keep what the client writes
  discrete 0-15  static pattern 0b1011_0010 (bit 0 first)

A unit listed in the silence file (unit ids separated by spaces, commas or
newlines; re-read whenever the file changes) receives requests but sends no
answer, as a unit that lost power would. Removing the file or a unit from it
makes the unit answer again. Unit ids not served are never answered.

Each served request is appended to the log file as one JSON line:
  {"t": unix_seconds, "unit": 2, "fc": 3, "address": 0, "count": 4,
   "counter": 17, "write": null | [values], "silenced": false}

Usage: modbus_rtu_server.py --port /dev/pts/N [--units 1,2,3] [--baud 9600]
       [--parity N|E|O] [--stopbits 1|2] [--log FILE] [--silence-file FILE]
       modbus_rtu_server.py --tcp [--units ...] [--log FILE] [--silence-file FILE]
The first line on stdout is "READY" once the serial port is open. With
--tcp the same units are served over Modbus TCP on 127.0.0.1 (a free port)
and the first line is "PORT <n>". Needs pyserial for the serial transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

TICK_S = 0.1
HOLDING_LEN = 100
INPUT_LEN = 125
SETPOINTS = range(3, 10)
DISCRETE_PATTERN = 0b1011_0010


class Line:
    """The served units, the silence list and the log."""

    def __init__(self, units: list[int], log_path: str | None, silence_path: str | None):
        self.t0 = time.monotonic()
        self.units = set(units)
        self.log = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else None
        self.silence_path = silence_path
        self.silence_stamp: tuple[int, int] | None = None
        self.silenced: set[int] = set()
        self.unit_offset = 0
        # Setpoints and coils per unit, kept across the register refresh.
        self.setpoints = {u: [0] * len(SETPOINTS) for u in units}
        self.unit_list = units

    def counter(self) -> int:
        return int((time.monotonic() - self.t0) / TICK_S) & 0xFFFF

    def refresh_silence(self) -> set[int]:
        if not self.silence_path:
            return self.silenced
        try:
            st = os.stat(self.silence_path)
        except FileNotFoundError:
            self.silence_stamp = None
            self.silenced = set()
            return self.silenced
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self.silence_stamp:
            self.silence_stamp = stamp
            with open(self.silence_path, encoding="utf-8") as f:
                self.silenced = {int(x) for x in re.split(r"[\s,]+", f.read()) if x}
        return self.silenced

    def holding(self, unit: int, c: int) -> list[int]:
        regs = [c, unit, (c * unit) & 0xFFFF]
        regs += self.setpoints[unit]
        regs += list(range(len(regs), HOLDING_LEN))
        return regs

    def inputs(self, unit: int, c: int) -> list[int]:
        return [(7 * i + c + 1000 * unit) & 0xFFFF for i in range(INPUT_LEN)]

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        # An RTU frame starts with the unit id, a TCP frame has it at byte 6:
        # drop answers of silent units and of unit ids not served (pymodbus
        # would answer those with an exception; a real line stays quiet).
        if sending and len(data) > self.unit_offset:
            unit = data[self.unit_offset]
            if unit not in self.units or unit in self.refresh_silence():
                return b""
        return data

    def action_for(self, unit: int):
        async def action(function_code, start_address, address, count, registers, set_values):
            c = self.counter()
            if function_code in (3, 6, 16, 23):
                if set_values is not None:
                    for i, v in enumerate(set_values):
                        a = address + i
                        if a in SETPOINTS:
                            self.setpoints[unit][a - SETPOINTS.start] = int(v)
                else:
                    registers[:HOLDING_LEN] = self.holding(unit, c)
            elif function_code == 4:
                registers[:INPUT_LEN] = self.inputs(unit, c)
            if self.log is not None:
                line = {
                    "t": time.time(),
                    "unit": unit,
                    "fc": function_code,
                    "address": address,
                    "count": count,
                    "counter": c,
                    "write": None if set_values is None else [int(v) for v in set_values],
                    "silenced": unit in self.refresh_silence(),
                }
                self.log.write(json.dumps(line) + "\n")
            return None

        return action

    def devices(self) -> list[SimDevice]:
        # Device 0 takes the requests for unit ids not served (pymodbus 3.16
        # raises KeyError for them otherwise); trace_packet drops its answers.
        catch_all = SimDevice(
            id=0, simdata=[SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)]
        )
        return [catch_all] + [
            SimDevice(
                id=u,
                simdata=(
                    [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                    [
                        SimData(
                            0,
                            values=[bool((DISCRETE_PATTERN >> i) & 1) for i in range(16)],
                            datatype=DataType.BITS,
                        )
                    ],
                    [SimData(0, values=self.holding(u, 0), datatype=DataType.REGISTERS)],
                    [SimData(0, values=self.inputs(u, 0), datatype=DataType.REGISTERS)],
                ),
                action=self.action_for(u),
            )
            for u in self.unit_list
        ]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", help="serial device, e.g. a pty")
    parser.add_argument("--tcp", action="store_true", help="serve Modbus TCP instead")
    parser.add_argument("--units", default="1,2,3", help="comma-separated unit ids")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--parity", default="N", choices=["N", "E", "O"])
    parser.add_argument("--stopbits", type=int, default=1, choices=[1, 2])
    parser.add_argument("--log", help="JSON-lines file of served requests")
    parser.add_argument("--silence-file", help="file listing unit ids that must not answer")
    args = parser.parse_args()

    if not args.tcp and not args.port:
        parser.error("--port or --tcp is required")
    units = [int(u) for u in args.units.split(",") if u]
    line = Line(units, args.log, args.silence_file)
    if args.tcp:
        line.unit_offset = 6
        server = ModbusTcpServer(
            line.devices(),
            address=("127.0.0.1", 0),
            ignore_missing_devices=True,
            trace_packet=line.trace_packet,
        )
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None) or []
        if not sockets:
            print("ERROR server did not bind", flush=True)
            return 1
        print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
    else:
        server = ModbusSerialServer(
            line.devices(),
            port=args.port,
            baudrate=args.baud,
            parity=args.parity,
            stopbits=args.stopbits,
            bytesize=8,
            ignore_missing_devices=True,
            trace_packet=line.trace_packet,
        )
        await server.serve_forever(background=True)
        print("READY", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
