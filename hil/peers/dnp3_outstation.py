#!/usr/bin/env python3
"""A third-party DNP3 outstation for the dcmms-dnp3 driver tests.

It runs the pure-Python outstation of the `dnp3py` package (PyPI, MIT)
unchanged, through the package's own TCP runner: this script only fills its
point database, records what reaches its command handler, and makes events
when asked. It implements no part of the protocol itself.

Usage:
    dnp3_outstation.py --log commands.jsonl [--address 1024] [--master 1]

Protocol with the test (stdin/stdout, one line each):
    stdout  "PORT <n>"       once listening on 127.0.0.1:<n> (port 0 = free port)
    stdin   "events"         make the event sequence below; answers
    stdout  "EVENTS <json>"  the events made, in order, with their times
    stdin   "quit"           stop

The database (index: value, flags):
    binary inputs    0: on, 1: off, 2: on             (online, class 1)
    analog inputs    0: 1234, 1: -56, 2: 7            (online, class 2)
                     3: 42 local-forced, 4: 9 offline (class 2)
    counters         0: 100, 1: 4000000000            (online, class 3)
    frozen counters  0: 55                            (online)
    binary outputs   0: off, 1: off, 7: off           (online, status only)
    analog outputs   0: 300                           (online)

Every call to the command handler (select, operate, direct operate) and
every time synchronisation is appended to the --log file as one JSON line.
A binary output command is accepted for indexes 0 and 1 and refused with
BLOCKED for index 7; an analog output command is accepted for index 0.
Accepted operates update the output's status point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from dnp3.core.enums import CommandStatus
from dnp3.core.flags import AnalogQuality, BinaryQuality, CounterQuality
from dnp3.core.timestamp import DNP3Timestamp
from dnp3.database import (
    AnalogInputConfig,
    BinaryInputConfig,
    CounterConfig,
    Database,
    EventClass,
)
from dnp3.outstation import (
    CommandResult,
    DefaultCommandHandler,
    Outstation,
    OutstationConfig,
    OutstationTcpRunner,
)

# Fixed, known event times (ms since the Unix epoch), so the test can compare
# exactly what the master reports: 2023-11-14T22:13:20Z + k * 10 ms.
EVENT_BASE_MS = 1_700_000_000_000

ACCEPTED_BINARY_OUTPUTS = {0, 1}
REFUSED_BINARY_OUTPUT = 7


class Log:
    """Appends JSON lines to a file, flushed at once."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


class RecordingHandler(DefaultCommandHandler):
    """Records every control and applies accepted ones to the status points."""

    def __init__(self, log: Log, database: Database) -> None:
        self._log = log
        self._db = database

    def _crob(self, function: str, index: int, code, count, on_time, off_time) -> CommandResult:
        status = (
            CommandStatus.SUCCESS
            if index in ACCEPTED_BINARY_OUTPUTS
            else CommandStatus.BLOCKED
            if index == REFUSED_BINARY_OUTPUT
            else CommandStatus.NOT_SUPPORTED
        )
        self._log.write(
            {
                "function": function,
                "object": "crob",
                "index": index,
                "code": int(code),
                "op_type": int(code) & 0x0F,
                "tcc": (int(code) >> 6) & 0x03,
                "count": count,
                "on_time": on_time,
                "off_time": off_time,
                "status": status.name,
            }
        )
        if status == CommandStatus.SUCCESS and function != "select":
            op_type, tcc = int(code) & 0x0F, (int(code) >> 6) & 0x03
            # LATCH_ON, or PULSE_ON with CLOSE, leaves the output on.
            on = op_type == 3 or (op_type == 1 and tcc == 1)
            self._db.update_binary_output(index, on, BinaryQuality.ONLINE)
        return CommandResult(status=status)

    def _analog(self, function: str, index: int, value: float) -> CommandResult:
        status = CommandStatus.SUCCESS if index == 0 else CommandStatus.NOT_SUPPORTED
        self._log.write(
            {
                "function": function,
                "object": "analog_output",
                "index": index,
                "value": value,
                "status": status.name,
            }
        )
        return CommandResult(status=status)

    def select_binary_output(self, index, code, count, on_time, off_time):
        return self._crob("select", index, code, count, on_time, off_time)

    def operate_binary_output(self, index, code, count, on_time, off_time, select_sequence):
        return self._crob("operate", index, code, count, on_time, off_time)

    def direct_operate_binary_output(self, index, code, count, on_time, off_time):
        return self._crob("direct_operate", index, code, count, on_time, off_time)

    def select_analog_output(self, index, value):
        return self._analog("select", index, value)

    def operate_analog_output(self, index, value, select_sequence):
        return self._analog("operate", index, value)

    def direct_operate_analog_output(self, index, value):
        return self._analog("direct_operate", index, value)


def build_database() -> Database:
    db = Database()
    online_b = BinaryQuality.ONLINE
    online_a = AnalogQuality.ONLINE
    online_c = CounterQuality.ONLINE
    for index, value in enumerate([True, False, True]):
        db.add_binary_input(index, BinaryInputConfig(event_class=EventClass.CLASS_1), value, online_b)
    for index, value in enumerate([1234, -56, 7]):
        db.add_analog_input(index, AnalogInputConfig(event_class=EventClass.CLASS_2), value, online_a)
    db.add_analog_input(
        3,
        AnalogInputConfig(event_class=EventClass.CLASS_2),
        42,
        AnalogQuality.ONLINE | AnalogQuality.LOCAL_FORCED,
    )
    db.add_analog_input(4, AnalogInputConfig(event_class=EventClass.CLASS_2), 9, AnalogQuality(0))
    for index, value in enumerate([100, 4_000_000_000]):
        db.add_counter(index, CounterConfig(event_class=EventClass.CLASS_3), value, online_c)
    db.add_frozen_counter(0, CounterConfig(event_class=EventClass.NONE), 55, online_c)
    for index in (0, 1, 7):
        db.add_binary_output(index, value=False, quality=online_b)
    db.add_analog_output(0, value=300, quality=online_a)
    return db


def make_events(db: Database) -> list[dict]:
    """Changes points so that the outstation buffers events, oldest first."""
    made = []
    k = 0

    def ts() -> DNP3Timestamp:
        nonlocal k
        t = DNP3Timestamp(EVENT_BASE_MS + k * 10)
        k += 1
        return t

    for value in (False, True, False, True):
        t = ts()
        db.update_binary_input(0, value, BinaryQuality.ONLINE, t)
        made.append({"kind": "binary_input", "index": 0, "value": int(value), "ts_ms": t.milliseconds})
    for value in (1300, 1400, 1500):
        t = ts()
        db.update_analog_input(0, value, AnalogQuality.ONLINE, t)
        made.append({"kind": "analog_input", "index": 0, "value": value, "ts_ms": t.milliseconds})
    for value in (101, 102, 103, 104, 105):
        t = ts()
        db.update_counter(0, value, CounterQuality.ONLINE, t)
        made.append({"kind": "counter", "index": 0, "value": value, "ts_ms": t.milliseconds})
    return made


async def read_stdin(queue: asyncio.Queue) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        await queue.put(line.strip() if line else "quit")
        if not line:
            return


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--address", type=int, default=1024)
    parser.add_argument("--master", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    log = Log(args.log)
    db = build_database()
    outstation = Outstation(
        config=OutstationConfig(address=args.address, master_address=args.master),
        database=db,
        time_handler=lambda t: log.write({"function": "time_sync", "ts_ms": t.milliseconds}),
    )
    outstation.handler = RecordingHandler(log, db)
    runner = OutstationTcpRunner(outstation, host="127.0.0.1", port=0)
    serving = asyncio.create_task(runner.run())
    while runner.local_address is None:
        if serving.done():
            serving.result()  # raises the bind error
            return
        await asyncio.sleep(0.01)
    print(f"PORT {runner.local_address[1]}", flush=True)

    commands: asyncio.Queue = asyncio.Queue()
    reader = asyncio.create_task(read_stdin(commands))
    while True:
        line = await commands.get()
        if line == "events":
            print("EVENTS " + json.dumps(make_events(db)), flush=True)
        elif line == "quit":
            break
    await runner.stop()
    serving.cancel()
    reader.cancel()


if __name__ == "__main__":
    asyncio.run(main())
