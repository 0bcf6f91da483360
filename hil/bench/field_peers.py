#!/usr/bin/env python3
"""Large third-party peers for the gateway's field-protocol benchmark.

scripts/bench-gateway.sh starts one peer per protocol, each serving
--points values that change every --tick-ms, and points the gateway at
all of them. The protocol stacks are the PyPI packages the driver tests
use (pymodbus, pyiec61850-ng), unchanged; this script only builds their
data models and changes the values.

Usage:
  field_peers.py modbus   [--points 1000] [--tick-ms 1000]
  field_peers.py iec61850 [--points 1000] [--tick-ms 1000]

The first line on stdout is "PORT <n>" once the peer listens on
127.0.0.1:<n>. Then, for the benchmark's configuration, one line
"POINT <name> <address>" per point, and "END". The peer stops on
SIGTERM/SIGINT or when its stdin closes.

Point addresses:
  modbus    holding register index (unit 1), int16, value (k + i) mod 30000
  iec61850  LD0/GGIO<n>.AnIn<j>.mag.f (FC MX), 4 per logical node
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time


def emit_points(lines: list[tuple[str, str]]) -> None:
    for name, address in lines:
        print(f"POINT {name} {address}")
    print("END", flush=True)


def stop_on_stdin_close(stop: threading.Event) -> None:
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())


async def wait_stop(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.2)


# ---- Modbus TCP (pymodbus) -------------------------------------------------


async def run_modbus(args: argparse.Namespace, stop: threading.Event) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    n = args.points
    t0 = time.monotonic()
    tick = args.tick_ms / 1000.0

    def values() -> list[int]:
        k = int((time.monotonic() - t0) / tick)
        return [(k + i) % 30000 for i in range(n)]

    async def action(function_code, start_address, address, count, registers, set_values):
        if function_code == 3 and set_values is None:
            registers[:n] = values()
        return None

    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=values(), datatype=DataType.REGISTERS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    sockets = getattr(server.transport, "sockets", None) or []
    if not sockets:
        raise SystemExit("modbus server did not bind")
    print(f"PORT {sockets[0].getsockname()[1]}")
    emit_points([(f"r{i}", str(i)) for i in range(n)])
    await wait_stop(stop)
    await server.shutdown()


# ---- IEC 61850 (libiec61850 in pyiec61850-ng) -------------------------------


def run_iec61850(args: argparse.Namespace, stop: threading.Event) -> None:
    import pyiec61850.pyiec61850 as iec

    per_ln = 4
    lns = (args.points + per_ln - 1) // per_ln
    model = iec.IedModel_create("IED1")
    ld = iec.LogicalDevice_create("LD0", model)
    lln0 = iec.LogicalNode_create("LLN0", ld)
    iec.CDC_ENS_create("Beh", iec.toModelNode(lln0), 0)
    refs = []
    for n in range(1, lns + 1):
        ln = iec.LogicalNode_create(f"GGIO{n}", ld)
        for j in range(1, per_ln + 1):
            if len(refs) == args.points:
                break
            iec.CDC_MV_create(f"AnIn{j}", iec.toModelNode(ln), 0, False)
            refs.append(f"GGIO{n}.AnIn{j}")
    attrs = []
    for ref in refs:
        node = iec.IedModel_getModelNodeByObjectReference(model, f"IED1LD0/{ref}.mag.f")
        t = iec.IedModel_getModelNodeByObjectReference(model, f"IED1LD0/{ref}.t")
        attrs.append((iec.toDataAttribute(node), iec.toDataAttribute(t)))
    server = iec.IedServer_create(model)
    iec.IedServer_setLocalIpAddress(server, "127.0.0.1")
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        iec.IedServer_start(server, port)
        if iec.IedServer_isRunning(server):
            break
    else:
        raise SystemExit("libiec61850 server did not start")
    print(f"PORT {port}")
    emit_points([(ref.replace(".", "_"), f"LD0/{ref}.mag.f") for ref in refs])
    tick = args.tick_ms / 1000.0
    k = 0
    next_at = time.monotonic()
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        k += 1
        now_ms = int(time.time() * 1000)
        iec.IedServer_lockDataModel(server)
        try:
            for i, (f, t) in enumerate(attrs):
                iec.IedServer_updateUTCTimeAttributeValue(server, t, now_ms)
                iec.IedServer_updateFloatAttributeValue(server, f, float((k + i) % 30000))
        finally:
            iec.IedServer_unlockDataModel(server)
        next_at += tick
    iec.IedServer_stop(server)
    os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("protocol", choices=["modbus", "iec61850"])
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--tick-ms", type=int, default=1000)
    args = p.parse_args()
    if not 1 <= args.points <= 100_000:
        p.error("--points must be 1 to 100000")
    stop = threading.Event()
    stop_on_stdin_close(stop)
    if args.protocol == "iec61850":
        run_iec61850(args, stop)
    else:
        asyncio.run(run_modbus(args, stop))


if __name__ == "__main__":
    main()
