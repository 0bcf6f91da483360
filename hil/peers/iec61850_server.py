#!/usr/bin/env python3
"""IEC 61850 MMS peer for the driver tests: the libiec61850 server shipped in
the PyPI wheel pyiec61850-ng, with a data model built here at run time.

Model (IED name IED1, one logical device LD0, so the MMS domain is IED1LD0):

  LLN0           Beh (ENS)
                 data set  Measurements = MMXU1.TotW, MMXU1.Hz, MMXU1.TotVAr,
                                          GGIO1.AnIn1, GGIO1.Ind1, GGIO1.SPCSO1
                 brcb01    buffered RCB on Measurements    (RptID "brcb01")
                 urcb01    unbuffered RCB on Measurements  (RptID "urcb01")
                 urcb02    unbuffered RCB on Measurements  (RptID "urcb02")
  MMXU1          TotW (MV)   mag.f = 10 * counter + 0.5, q good
                 Hz (MV)     mag.f = 50 + (counter mod 10) / 100, q good
                 TotVAr (MV) mag.f = -counter, q = questionable | oldData
  GGIO1          AnIn1 (MV)  mag.f = counter, q = invalid every 7th step
                 Ind1 (SPS)  stVal = (counter // 5) odd
                 SPCSO1 (SPC, direct-with-normal-security): a control sets stVal
                 SPCSO2 (SPC, sbo-with-normal-security): a control sets stVal
                 SPCSO3 (SPC, sbo-with-enhanced-security): a control sets stVal
                 AnOut1 (APC, direct-with-normal-security, float setpoint): a
                             control sets mxVal.f

"counter" steps every --tick-ms (default 100) from the start. Every step
updates each mag.f/stVal together with its q and t (t = the wall clock of the
step, in ms) inside IedServer_lockDataModel/unlockDataModel, so the changes
of one step leave in one report (without the lock each update is a report
of its own). libiec61850 raises a data-change report only for attributes
whose model trigger options include dchg (the CDC_*_create helpers set them;
an attribute made with DataAttribute_create(..., triggerOptions=0, ...)
shows up in GI and integrity reports but never in data-change reports) and
only when the written value differs from the stored one.

Every control the server accepts is appended to --log as a JSON line:
  {"event": "control", "ref": "IED1LD0/GGIO1.SPCSO1", "value": true,
   "test": false, "t": unix_seconds}
and every step writes {"event": "tick", "counter": n, "t_ms": ms} when
--log-ticks is given (the tests compare sample times with them).

Usage: iec61850_server.py [--log FILE] [--log-ticks] [--tick-ms 100]
                          [--host 127.0.0.1] [--port 0]
With --port 0 a free port is picked. The first line on stdout is
"PORT <n>" once the server listens. The server stops on SIGTERM/SIGINT or
when its stdin closes (so a test harness that dies takes it along).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

import pyiec61850.pyiec61850 as iec

IED = "IED1"
LD = "LD0"
DOMAIN = IED + LD

QUESTIONABLE_OLD = iec.QUALITY_VALIDITY_QUESTIONABLE | iec.QUALITY_DETAIL_OLD_DATA


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Model:
    """The data model and the attribute handles the update loop writes."""

    def __init__(self) -> None:
        self.model = iec.IedModel_create(IED)
        ld = iec.LogicalDevice_create(LD, self.model)
        lln0 = iec.LogicalNode_create("LLN0", ld)
        iec.CDC_ENS_create("Beh", iec.toModelNode(lln0), 0)
        mmxu = iec.LogicalNode_create("MMXU1", ld)
        ggio = iec.LogicalNode_create("GGIO1", ld)
        for name in ("TotW", "Hz", "TotVAr"):
            iec.CDC_MV_create(name, iec.toModelNode(mmxu), 0, False)
        iec.CDC_MV_create("AnIn1", iec.toModelNode(ggio), 0, False)
        iec.CDC_SPS_create("Ind1", iec.toModelNode(ggio), 0)
        iec.CDC_SPC_create("SPCSO1", iec.toModelNode(ggio), 0, iec.CDC_CTL_MODEL_DIRECT_NORMAL)
        iec.CDC_SPC_create("SPCSO2", iec.toModelNode(ggio), 0, iec.CDC_CTL_MODEL_SBO_NORMAL)
        iec.CDC_SPC_create("SPCSO3", iec.toModelNode(ggio), 0, iec.CDC_CTL_MODEL_SBO_ENHANCED)
        iec.CDC_APC_create("AnOut1", iec.toModelNode(ggio), 0, iec.CDC_CTL_MODEL_DIRECT_NORMAL, False)

        ds = iec.DataSet_create("Measurements", lln0)
        for member in (
            "MMXU1$MX$TotW",
            "MMXU1$MX$Hz",
            "MMXU1$MX$TotVAr",
            "GGIO1$MX$AnIn1",
            "GGIO1$ST$Ind1",
            "GGIO1$ST$SPCSO1",
        ):
            iec.DataSetEntry_create(ds, member, -1, None)

        trg = (
            iec.TRG_OPT_DATA_CHANGED
            | iec.TRG_OPT_QUALITY_CHANGED
            | iec.TRG_OPT_INTEGRITY
            | iec.TRG_OPT_GI
        )
        opt = (
            iec.RPT_OPT_SEQ_NUM
            | iec.RPT_OPT_TIME_STAMP
            | iec.RPT_OPT_REASON_FOR_INCLUSION
            | iec.RPT_OPT_DATA_SET
            | iec.RPT_OPT_CONF_REV
        )
        iec.ReportControlBlock_create("brcb01", lln0, "brcb01", True, "Measurements", 1, trg, opt | iec.RPT_OPT_ENTRY_ID, 0, 1000)
        iec.ReportControlBlock_create("urcb01", lln0, "urcb01", False, "Measurements", 1, trg, opt, 0, 1000)
        iec.ReportControlBlock_create("urcb02", lln0, "urcb02", False, "Measurements", 1, trg, opt, 0, 1000)

    def attr(self, reference: str):
        node = iec.IedModel_getModelNodeByObjectReference(self.model, f"{DOMAIN}/{reference}")
        if not node:
            raise SystemExit(f"model has no {reference}")
        return iec.toDataAttribute(node)

    def obj(self, reference: str):
        node = iec.IedModel_getModelNodeByObjectReference(self.model, f"{DOMAIN}/{reference}")
        if not node:
            raise SystemExit(f"model has no {reference}")
        return iec.toDataObject(node)


class ControlHandler(iec.ControlHandlerForPython):
    """Called on libiec61850's own thread for every accepted operate."""

    def __init__(self, peer: "Peer", reference: str, kind: str) -> None:
        iec.ControlHandlerForPython.__init__(self)
        self.peer = peer
        self.reference = reference
        self.kind = kind

    def trigger(self):
        value = self._libiec61850_mms_value
        if self.kind == "bool":
            v = bool(iec.MmsValue_getBoolean(value))
        else:
            # APC ctlVal is an AnalogueValue structure {f}.
            f = iec.MmsValue_getElement(value, 0) if iec.MmsValue_getType(value) == iec.MMS_STRUCTURE else value
            v = float(iec.MmsValue_toFloat(f))
        self.peer.on_control(self.reference, v, bool(self._libiec61850_test))
        # The SWIG layer hands libiec61850 this field, not the return value;
        # left unset it reads as CONTROL_RESULT_FAILED, which an
        # enhanced-security control reports as a negative termination.
        self._libiec61850_control_handler_result = iec.CONTROL_RESULT_OK
        return iec.CONTROL_RESULT_OK


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else None
        self.log_lock = threading.Lock()
        self.m = Model()
        self.server = iec.IedServer_create(self.m.model)
        self.stop = threading.Event()
        self.handlers = []
        self.subscribers = []
        self.t0 = time.monotonic()
        m = self.m
        self.a = {
            name: (m.attr(f"{ref}.mag.f"), m.attr(f"{ref}.q"), m.attr(f"{ref}.t"))
            for name, ref in (
                ("TotW", "MMXU1.TotW"),
                ("Hz", "MMXU1.Hz"),
                ("TotVAr", "MMXU1.TotVAr"),
                ("AnIn1", "GGIO1.AnIn1"),
            )
        }
        self.ind1 = (m.attr("GGIO1.Ind1.stVal"), m.attr("GGIO1.Ind1.q"), m.attr("GGIO1.Ind1.t"))
        self.spc = {
            "GGIO1.SPCSO1": (m.attr("GGIO1.SPCSO1.stVal"), m.attr("GGIO1.SPCSO1.t")),
            "GGIO1.SPCSO2": (m.attr("GGIO1.SPCSO2.stVal"), m.attr("GGIO1.SPCSO2.t")),
            "GGIO1.SPCSO3": (m.attr("GGIO1.SPCSO3.stVal"), m.attr("GGIO1.SPCSO3.t")),
        }
        self.anout = (m.attr("GGIO1.AnOut1.mxVal.f"), m.attr("GGIO1.AnOut1.t"))

    def write(self, record: dict) -> None:
        if self.log is None:
            return
        with self.log_lock:
            self.log.write(json.dumps(record) + "\n")

    def on_control(self, reference: str, value, test: bool) -> None:
        now_ms = int(time.time() * 1000)
        # Inside the control handler the model is already locked by
        # libiec61850; update without taking the lock again.
        if reference in self.spc:
            st, t = self.spc[reference]
            iec.IedServer_updateBooleanAttributeValue(self.server, st, value)
            iec.IedServer_updateUTCTimeAttributeValue(self.server, t, now_ms)
        else:
            mx, t = self.anout
            iec.IedServer_updateFloatAttributeValue(self.server, mx, value)
            iec.IedServer_updateUTCTimeAttributeValue(self.server, t, now_ms)
        self.write({"event": "control", "ref": f"{DOMAIN}/{reference}", "value": value, "test": test, "t": time.time()})

    def install_controls(self) -> None:
        for reference, kind in (
            ("GGIO1.SPCSO1", "bool"),
            ("GGIO1.SPCSO2", "bool"),
            ("GGIO1.SPCSO3", "bool"),
            ("GGIO1.AnOut1", "float"),
        ):
            handler = ControlHandler(self, reference, kind)
            sub = iec.ControlSubscriberForPython()
            sub.setIedServer(self.server)
            sub.setControlObject(self.m.obj(reference))
            sub.setControlHandler(handler)
            sub.subscribe()
            self.handlers.append(handler)
            self.subscribers.append(sub)

    def start(self) -> int:
        iec.IedServer_setLocalIpAddress(self.server, self.args.host)
        self.install_controls()
        attempts = 20 if self.args.port == 0 else 1
        for _ in range(attempts):
            port = self.args.port or free_port(self.args.host)
            iec.IedServer_start(self.server, port)
            if iec.IedServer_isRunning(self.server):
                return port
        raise SystemExit("libiec61850 server did not start")

    def step(self, c: int) -> None:
        now_ms = int(time.time() * 1000)
        s = self.server
        values = {
            "TotW": (10.0 * c + 0.5, iec.QUALITY_VALIDITY_GOOD),
            "Hz": (50.0 + (c % 10) / 100.0, iec.QUALITY_VALIDITY_GOOD),
            "TotVAr": (-float(c), QUESTIONABLE_OLD),
            "AnIn1": (float(c), iec.QUALITY_VALIDITY_INVALID if c % 7 == 0 else iec.QUALITY_VALIDITY_GOOD),
        }
        iec.IedServer_lockDataModel(s)
        try:
            for name, (value, quality) in values.items():
                f, q, t = self.a[name]
                iec.IedServer_updateUTCTimeAttributeValue(s, t, now_ms)
                iec.IedServer_updateQuality(s, q, quality)
                iec.IedServer_updateFloatAttributeValue(s, f, value)
            st, q, t = self.ind1
            iec.IedServer_updateUTCTimeAttributeValue(s, t, now_ms)
            iec.IedServer_updateQuality(s, q, iec.QUALITY_VALIDITY_GOOD)
            iec.IedServer_updateBooleanAttributeValue(s, st, (c // 5) % 2 == 1)
        finally:
            iec.IedServer_unlockDataModel(s)
        if self.args.log_ticks:
            self.write({"event": "tick", "counter": c, "t_ms": now_ms})

    def run(self) -> None:
        tick = self.args.tick_ms / 1000.0
        c = 0
        self.step(c)
        port = self.start()
        print(f"PORT {port}", flush=True)
        while not self.stop.wait(max(0.0, self.t0 + (c + 1) * tick - time.monotonic())):
            c += 1
            self.step(c)
        iec.IedServer_stop(self.server)
        if self.log is not None:
            self.log.flush()
        # The SWIG control subscribers are freed in an order libiec61850 does
        # not survive (a crash at garbage collection): leave without it.
        os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--log")
    p.add_argument("--log-ticks", action="store_true")
    p.add_argument("--tick-ms", type=int, default=100)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    peer = Peer(args)
    signal.signal(signal.SIGTERM, lambda *_: peer.stop.set())
    signal.signal(signal.SIGINT, lambda *_: peer.stop.set())
    # A test harness that dies closes our stdin: stop with it.
    threading.Thread(target=lambda: (sys.stdin.read(), peer.stop.set()), daemon=True).start()
    peer.run()


if __name__ == "__main__":
    main()
