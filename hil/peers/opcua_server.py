#!/usr/bin/env python3
"""OPC UA peer for the client driver tests: an asyncua 2.1.0 server whose
values change over time, with the security policies and identities a real
plant server offers.

Endpoint:  opc.tcp://HOST:PORT/dcmms/
Security:  None, Basic256Sha256 Sign, Basic256Sha256 SignAndEncrypt
Identity:  anonymous (unless --no-anonymous) and user "operator" with the
           password given by --password; any other user/password is refused
           with BadUserAccessDenied.
App URI:   urn:dcmms:test:opcua-server

Address space (namespace "urn:dcmms:test", normally ns=2), under Objects:

  Plant (object)
    ns=2;s=Plant.Sine        Double   100*sin(t), t = seconds since start;
                                      SourceTimestamp + ServerTimestamp
    ns=2;s=Plant.Counter     UInt32   +1 every period (wraps at 2**32)
    ns=2;s=Plant.Toggle      Boolean  flips every 10 periods
    ns=2;s=Plant.Setpoint    Double   writable, initial 0.0
    ns=2;s=Plant.Enabled     Boolean  writable, initial false
    ns=2;s=Plant.NoSourceTs  Int32    counter mod 2**31, ServerTimestamp only
                                      (no SourceTimestamp)
  Bulk (object, only with --bulk N > 0)
    ns=2;s=Bulk.V0000 ..     Double   counter + i/1000 (i = index), all
                                      changed every period, with timestamps

PKI: --pki DIR holds the server's own certificate (DER, server_cert.der) and
private key (PEM, server_key.pem); both are generated at start if one of them
is missing (self-signed, RSA 2048, SAN: the application URI, DNS localhost,
DNS 127.0.0.1, DNS <this host name>, IP 127.0.0.1).
Without --trust-dir any client certificate is accepted. With --trust-dir DIR
only client certificates found in DIR (*.der / *.pem; re-read at each
CreateSession) are accepted; others get BadCertificateUntrusted on
CreateSession.

--log-writes FILE: each successful client write to Setpoint or Enabled
appends one line "Setpoint=12.5" / "Enabled=true" (floats as Python repr,
booleans lower case), flushed at once.

--stats: on exit, print one line with update-loop timings to stderr.

Usage: opcua_server.py [--host 127.0.0.1] [--port 0] [--pki DIR]
                       [--trust-dir DIR] [--no-anonymous] [--password PW]
                       [--period-ms 100] [--bulk N] [--log-writes FILE] [--stats]
Once the server listens, the only line on stdout is
  READY opc.tcp://HOST:PORT/dcmms/
The server runs until SIGTERM or SIGINT, then stops and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import hmac
import ipaddress
import logging
import math
import signal
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server import monitored_item_service

def _speed_up_monitored_items() -> None:
    """asyncua deep-copies every DataValue it hands to a monitored item
    (~55 us each): 1000 monitored variables at 100 ms would cost ~60 % of a
    core in the update loop alone. The DataValues written here and those
    decoded from client writes are never mutated afterwards, so a shallow
    copy is enough."""
    cls = getattr(monitored_item_service, "MonitoredItemValues", None)
    if cls is None or not hasattr(cls, "set_current_datavalue"):
        return

    def set_current_datavalue(self, cur_val: ua.DataValue) -> None:
        self.old_dvalue = self.current_dvalue
        self.current_dvalue = copy.copy(cur_val)

    cls.set_current_datavalue = set_current_datavalue


APP_URI = "urn:dcmms:test:opcua-server"
NAMESPACE = "urn:dcmms:test"
USERNAME = "operator"
ENDPOINT_PATH = "/dcmms/"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_server_cert(pki: Path) -> tuple[Path, Path]:
    """Write a self-signed server certificate and key into pki if absent."""
    pki.mkdir(parents=True, exist_ok=True)
    cert_path = pki / "server_cert.der"
    key_path = pki / "server_key.pem"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = cert_gen.generate_private_key()
    dns = ["localhost", "127.0.0.1"]
    hostname = socket.gethostname()
    if hostname and hostname not in dns:
        dns.append(hostname)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(APP_URI)]
    sans += [x509.DNSName(d) for d in dns]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "dcmms test OPC UA server",
        {"organizationName": "dcmms", "countryName": "DE"},
        sans,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=3650,
    )
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    return cert_path, key_path


class UserManager:
    """Anonymous (if allowed) and operator/<password>; nobody else."""

    def __init__(self, password: str, allow_anonymous: bool) -> None:
        self.password = password.encode()
        self.allow_anonymous = allow_anonymous

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None and password is None:
            # Anonymous token. Role User: asyncua's default permission ruleset
            # lets the Anonymous role do nothing at all.
            return User(role=UserRole.User, name="anonymous") if self.allow_anonymous else None
        if username != USERNAME or password is None:
            return None
        pw = password.encode() if isinstance(password, str) else bytes(password)
        if not hmac.compare_digest(pw, self.password):
            return None
        return User(role=UserRole.User, name=USERNAME)


class TrustDirValidator:
    """Accept only client certificates present in (or issued by a CA in) a dir."""

    def __init__(self, trust_dir: Path) -> None:
        self.trust_dir = trust_dir
        self.options = (
            CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.TRUSTED
            | CertificateValidatorOptions.PEER_CLIENT
        )

    def _exact_match(self, cert: x509.Certificate) -> bool:
        der = cert.public_bytes(Encoding.DER)
        for f in self.trust_dir.glob("*"):
            name = f.name.lower()
            if not f.is_file() or not (name.endswith(".der") or name.endswith(".pem")):
                continue
            try:
                data = f.read_bytes()
                c = x509.load_pem_x509_certificate(data) if name.endswith(".pem") else x509.load_der_x509_certificate(data)
            except ValueError:
                continue
            if c.public_bytes(Encoding.DER) == der:
                return True
        return False

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        if self._exact_match(cert):
            # The very certificate is in the trust dir: only check validity time.
            await CertificateValidator(CertificateValidatorOptions.TIME_RANGE)(cert, app_description)
            return
        store = TrustStore([self.trust_dir], [])
        try:
            await store.load()
        except ValueError:  # no certificate at all in the trust dir
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted) from None
        await CertificateValidator(self.options, store)(cert, app_description)


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.period = args.period_ms / 1000.0
        self.log = open(args.log_writes, "a", buffering=1, encoding="utf-8") if args.log_writes else None
        self.names: dict[ua.NodeId, str] = {}
        self.durations: list[float] = []
        self.overruns = 0

    async def build(self, host: str, port: int) -> Server:
        args = self.args
        server = Server(user_manager=UserManager(args.password, not args.no_anonymous))
        await server.init()
        server.set_endpoint(f"opc.tcp://{host}:{port}{ENDPOINT_PATH}")
        server.set_server_name("dcmms test OPC UA server")
        await server.set_application_uri(APP_URI)
        server.product_uri = "urn:dcmms:test:opcua-server:product"

        pki = Path(args.pki) if args.pki else Path(tempfile.mkdtemp(prefix="opcua-pki-"))
        cert_path, key_path = ensure_server_cert(pki)
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
        server.set_security_policy(
            [
                ua.SecurityPolicyType.NoSecurity,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
        )
        tokens: list[type] = [ua.UserNameIdentityToken]
        if not args.no_anonymous:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if args.trust_dir:
            server.set_certificate_validator(TrustDirValidator(Path(args.trust_dir)))

        idx = await server.register_namespace(NAMESPACE)
        self.idx = idx
        objects = server.nodes.objects
        plant = await objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))

        async def var(name: str, value, vtype: ua.VariantType, writable: bool = False):
            node = await plant.add_variable(
                ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx), ua.Variant(value, vtype)
            )
            if writable:
                await node.set_writable()
            self.names[node.nodeid] = name
            return node.nodeid

        self.sine = await var("Sine", 0.0, ua.VariantType.Double)
        self.counter_id = await var("Counter", 0, ua.VariantType.UInt32)
        self.toggle = await var("Toggle", False, ua.VariantType.Boolean)
        self.setpoint = await var("Setpoint", 0.0, ua.VariantType.Double, writable=True)
        self.enabled = await var("Enabled", False, ua.VariantType.Boolean, writable=True)
        self.nosrc = await var("NoSourceTs", 0, ua.VariantType.Int32)
        self.logged = {self.setpoint: "Setpoint", self.enabled: "Enabled"}

        self.bulk: list[ua.NodeId] = []
        if args.bulk > 0:
            bulk = await objects.add_object(ua.NodeId("Bulk", idx), ua.QualifiedName("Bulk", idx))
            for i in range(args.bulk):
                node = await bulk.add_variable(
                    ua.NodeId(f"Bulk.V{i:04d}", idx),
                    ua.QualifiedName(f"V{i:04d}", idx),
                    ua.Variant(i / 1000.0, ua.VariantType.Double),
                )
                self.bulk.append(node.nodeid)

        if self.log is not None:
            server.subscribe_server_callback(CallbackType.PostWrite, self.on_write)
        self.server = server
        return server

    def on_write(self, event, _dispatcher) -> None:
        if not event.is_external or self.log is None:
            return
        results = event.response_params or []
        for i, wv in enumerate(event.request_params.NodesToWrite):
            name = self.logged.get(wv.NodeId)
            if name is None or wv.AttributeId != ua.AttributeIds.Value:
                continue
            if i < len(results) and not results[i].is_good():
                continue
            v = wv.Value.Value.Value if wv.Value is not None and wv.Value.Value is not None else None
            text = ("true" if v else "false") if isinstance(v, bool) else repr(v)
            self.log.write(f"{name}={text}\n")
            self.log.flush()

    async def tick(self, counter: int, t: float) -> None:
        write = self.server.iserver.aspace.write_attribute_value
        V = ua.AttributeIds.Value
        now = datetime.now(timezone.utc)

        def dv(value, vtype, source=True):
            return ua.DataValue(
                ua.Variant(value, vtype), SourceTimestamp=now if source else None, ServerTimestamp=now
            )

        updates = [
            (self.sine, dv(100.0 * math.sin(t), ua.VariantType.Double)),
            (self.counter_id, dv(counter & 0xFFFFFFFF, ua.VariantType.UInt32)),
            (self.toggle, dv((counter // 10) % 2 == 1, ua.VariantType.Boolean)),
            (self.nosrc, dv(counter & 0x7FFFFFFF, ua.VariantType.Int32, source=False)),
        ]
        base = float(counter)
        updates += [(nid, dv(base + i / 1000.0, ua.VariantType.Double)) for i, nid in enumerate(self.bulk)]
        for nid, value in updates:
            status = await write(nid, V, value)
            if counter == 1 and not status.is_good():
                raise RuntimeError(f"update of {nid} failed: {status}")

    async def run_updates(self, stop: asyncio.Event) -> None:
        t0 = time.monotonic()
        deadline = t0
        counter = 0
        while not stop.is_set():
            deadline += self.period
            now = time.monotonic()
            if deadline > now:
                try:
                    await asyncio.wait_for(stop.wait(), deadline - now)
                    return
                except asyncio.TimeoutError:
                    pass
            else:
                # Behind schedule: skip the missed periods, but still yield so
                # clients (and the signal handlers) get served.
                self.overruns += 1
                deadline = now
                await asyncio.sleep(0)
                if stop.is_set():
                    return
            counter += 1
            start = time.monotonic()
            await self.tick(counter, start - t0)
            self.durations.append(time.monotonic() - start)

    def stats_line(self) -> str:
        d = sorted(self.durations) or [0.0]
        return (
            f"STATS ticks={len(self.durations)} vars={4 + len(self.bulk)} "
            f"mean_ms={1000 * sum(d) / len(d):.2f} p99_ms={1000 * d[int(0.99 * (len(d) - 1))]:.2f} "
            f"max_ms={1000 * d[-1]:.2f} overruns={self.overruns}"
        )


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--pki", help="dir for server_cert.der / server_key.pem (default: a temp dir)")
    ap.add_argument("--trust-dir", help="accept only client certificates found in this dir")
    ap.add_argument("--no-anonymous", action="store_true")
    ap.add_argument("--password", default="s3cret-pass", help=f"password of user {USERNAME!r}")
    ap.add_argument("--period-ms", type=float, default=100.0)
    ap.add_argument("--bulk", type=int, default=0, help="number of Bulk.Vnnnn Double variables")
    ap.add_argument("--log-writes", help="append NAME=VALUE for client writes to Setpoint/Enabled")
    ap.add_argument("--stats", action="store_true", help="print update-loop timings to stderr on exit")
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("asyncua").setLevel(logging.WARNING)

    _speed_up_monitored_items()
    port = args.port or free_port(args.host)
    peer = Peer(args)
    server = await peer.build(args.host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await server.start()
    # The standard address space is a few hundred thousand long-lived objects;
    # without freezing them a full GC pass stalls the update loop ~200 ms.
    gc.collect()
    gc.freeze()
    sys.stdout.write(f"READY opc.tcp://{args.host}:{port}{ENDPOINT_PATH}\n")
    sys.stdout.flush()
    try:
        await peer.run_updates(stop)
    finally:
        await server.stop()
        if peer.log is not None:
            peer.log.close()
        if args.stats:
            print(peer.stats_line(), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
