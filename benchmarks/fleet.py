"""Closed loop vs open loop over a simulated fleet: forward bytes at equal delivery, convergence, the ledger.

A fleet of devices (own state folders, one shared reference store) runs six rounds of one campaign: a full
payload, added items, relabels, a new class, a payload the devices refuse (signed by a key they do not
trust), and the same content sent again correctly. The forward link loses frames independently at rate L
and reorders them; the return link loses receipts at the same rate.

* **closed loop** — ``send --to`` with no parity (``--overhead 0``), the devices' watchers report partial
  payloads (a NAK: what each stripe still needs and which frames are held), ``ingest`` reads what survives
  the return link, ``repair --to`` sends fresh erasure-code blocks for exactly that; the next payload is a
  delta on the head each device *reported* (devices grouped by head; a full payload where none is known).
* **open loop** — parity for P(delivery) ≥ 0.999 on every payload, no return link; the ground assumes every
  device holds the previous payload (and, generously, knows the refused round did not count).

Everything is the real code: frames, erasure code, signatures, the device's order of trust and chains
(``verify_and_decode``, ``Chains.commit``), receipts, the SQLite ledger. Training is left out (it does not
move a byte of either link): a device "applies" a payload as ``receive`` does, up to the student.

    python benchmarks/fleet.py [--devices 50] [--loss 0.1 0.3] [--json docs/results/fleet.json]
    python benchmarks/fleet.py --render docs/results/fleet.json   # only rewrite docs/receipts.md's table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import machine, md_grid, render_into, splice_block  # noqa: E402

from labelcast.codec.delta import LabelledSet, diff_sets  # noqa: E402
from labelcast.codec.errors import LabelcastError, MissingParentError  # noqa: E402
from labelcast.codec.framing import Reassembler, make_frames, make_repair_frames  # noqa: E402
from labelcast.codec.keys import TrustSet, generate_keypair, key_id, load_private_key  # noqa: E402
from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest  # noqa: E402
from labelcast.codec.payload import build_payload  # noqa: E402
from labelcast.codec.receipts import Event  # noqa: E402
from labelcast.profiles import load_link  # noqa: E402
from labelcast.receiver.chain import Chains  # noqa: E402
from labelcast.receiver.receipts import Reporter, partial_event, refused_event, status_events  # noqa: E402
from labelcast.receiver.receive import verify_and_decode  # noqa: E402
from labelcast.receiver.state import ReplayState  # noqa: E402
from labelcast.sender.budget import link_budget  # noqa: E402
from labelcast.sender.ledger import Ledger, LedgerError  # noqa: E402

LINK = "lora-eu868-dr5"  # 222 B frames forward, 222 B receipts back
N_ITEMS, CLASSES = 20_000, 4


def make_store(path: Path, n: int = N_ITEMS) -> ReferenceStore:
    rng = np.random.default_rng(0)
    items = rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
    path.mkdir(parents=True)
    (path / "items.u8").write_bytes(items.tobytes())
    groups = np.zeros(n, np.uint32)
    write_manifest(path / "manifest.lcm", hash_items(items), groups, ["pool"], (8, 8, 1))
    return ReferenceStore(path)


def campaign(n_items: int) -> list[LabelledSet]:
    """The labelled set after each round: full, added items, relabels, a new class, (refused), resent."""
    rng = np.random.default_rng(1)
    idx = np.sort(rng.choice(n_items, 1500, replace=False))
    lab = rng.integers(0, CLASSES, idx.size)
    sets = [LabelledSet(n_items, CLASSES, idx, lab)]
    more = np.sort(np.concatenate([idx, rng.choice(np.setdiff1d(np.arange(n_items), idx), 600, replace=False)]))
    lab2 = np.where(np.isin(more, idx), 0, rng.integers(0, CLASSES, more.size))
    lab2[np.isin(more, idx)] = lab
    sets.append(LabelledSet(n_items, CLASSES, more, lab2))
    lab3 = lab2.copy()
    flip = rng.choice(more.size, 150, replace=False)
    lab3[flip] = (lab3[flip] + 1) % CLASSES
    sets.append(LabelledSet(n_items, CLASSES, more, lab3))
    add = rng.choice(np.setdiff1d(np.arange(n_items), more), 300, replace=False)
    idx4 = np.concatenate([more, add])
    lab4 = np.concatenate([lab3, np.full(add.size, CLASSES)])
    o = np.argsort(idx4)
    sets.append(LabelledSet(n_items, CLASSES + 1, idx4[o], lab4[o]))
    return sets


def payload_for(store, key, seq: int, target: LabelledSet, parent: LabelledSet | None) -> bytes:
    args = dict(n_items=store.n, root=store.root, key=key, sequence=seq, expires_at=int(time.time()) + 86400,
                segments=store.manifest.segments)  # fmt: skip
    if parent is None:
        return build_payload(target.indices, target.labels, classes=target.classes, **args)[0]
    changes, add_idx, add_lab = diff_sets(parent, target.indices, target.labels, target.classes)
    delta = {"parent": parent.digest, "changes": changes, "base": parent.indices}
    return build_payload(add_idx, add_lab, classes=target.classes, delta=delta, **args)[0]


class Device:
    """One device: its frames, state folder, chains and receipts (the watcher's steps, without training)."""

    def __init__(self, name: str, d: Path, store, trust: TrustSet, ret) -> None:
        self.name, self.store, self.trust = name, store, trust
        self.state = d / "state"
        self.frames = Reassembler()
        self.done: set[bytes] = set()
        self.waiting: set[bytes] = set()
        self.rx = d / "rx"
        self.reporter = Reporter(self.rx, d / "keys" / "device.key", self.state, ret) if ret is not None else None

    def receive(self, frames: list[bytes]) -> None:
        for f in frames:
            pid = self.frames.add(f)
            if pid is None or pid in self.done or not self.frames.complete(pid):
                continue
            self.apply(pid, self.frames.payload(pid))

    def apply(self, pid: bytes, data: bytes) -> None:
        chains, state = Chains(self.state), ReplayState(self.state)
        try:
            p, _, step = verify_and_decode(data, self.store, self.trust, state, chains=chains)
        except MissingParentError as e:
            if pid not in self.waiting:  # waits for its parent (the open loop's deadlock when it was lost)
                self.waiting.add(pid)
                self.report([refused_event(pid, e, retryable=True)])  # the closed loop hears of it
            return
        except LabelcastError as e:
            self.done.add(pid)
            self.report([refused_event(pid, e, retryable=True)])
            return
        kid, seq = p.header.key_id, p.header.sequence
        state.begin(kid, seq, hashlib.sha256(data).hexdigest())
        chains.commit(kid, seq, step, None)
        state.accept(kid, seq)
        self.done.add(pid)
        self.frames.forget(pid)
        head = chains.head_info(kid)
        self.report([Event("accepted", pid, sequence=seq),
                     Event("head", sender=kid, sequence=seq, digest=bytes.fromhex(head["digest"]))])  # fmt: skip

    def report(self, events) -> None:
        if self.reporter is not None:
            self.reporter.add(events)

    def nak(self, now: float) -> None:
        for pid in self.frames.payload_ids():
            if pid not in self.done and not self.frames.complete(pid):
                self.report([partial_event(pid, self.frames.needs(pid), self.frames.held(pid))])

    def head(self, kid: bytes) -> str | None:
        h = Chains(self.state).head_info(kid)
        return h["digest"] if h else None


def lossy(frames: list[bytes], loss: float, rng) -> list[bytes]:
    kept = [f for f in frames if rng.random() >= loss]
    rng.shuffle(kept)
    return kept


def run(n_devices: int, loss: float, closed: bool, work: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    store = make_store(work / "ref")
    generate_keypair(work / "ground")
    generate_keypair(work / "stranger")
    key, stranger = load_private_key(work / "ground" / "sender.key"), load_private_key(work / "stranger" / "sender.key")
    trust = TrustSet.from_files([work / "ground" / "sender.pub"])
    link = replace(load_link(LINK), loss_rate=loss)
    ret = replace(link.return_link, nak_after_s=0, bytes_per_hour=1 << 30, loss_rate=loss) if closed else None
    ledger = Ledger(work / "ledger.sqlite") if closed else None
    devices = []
    for i in range(n_devices):
        d = work / f"dev{i:03d}"
        generate_keypair(d / "keys", role="device")
        if ledger is not None:
            ledger.add_device(d.name, d / "keys" / "device.pub", work / "ref", LINK, "cpu-small")
        devices.append(Device(d.name, d, store, trust, ret))
    budget = link_budget(link, 1 << 20, delivery=0.999, overhead=0 if closed else None)
    sets = campaign(store.n)
    rounds = [(sets[0], key), (sets[1], key), (sets[2], key), (sets[3], key), (sets[3], stranger), (sets[3], key)]
    if closed:  # `send --to` again for any device whose reported head is not the final one (none, when all went)
        rounds += [(sets[3], key)] * 3
    stats = {"forward_bytes": 0, "repair_bytes": 0, "return_bytes": 0, "receipts": 0, "lost_receipts": 0,
             "ingest_seconds": 0.0, "rounds_to_delivery": [], "payloads": 0}  # fmt: skip
    held: dict[str, LabelledSet] = {}  # the open loop's assumption: what every device holds
    seq = 0
    for target, signer in rounds:
        seq += 1
        if closed:
            groups = _groups(devices, ledger, sets, key, held)
            if len(rounds) - seq < 3:  # a catch-up round: only the devices not at the final head
                groups = {h: g for h, g in groups.items() if h != sets[3].digest.hex()[:16]}
        else:
            groups = {"all": (devices, held.get("all"))}
        for members, parent in groups.values():
            data = payload_for(store, signer, seq, target, parent)
            lay = budget.layout(len(data))  # the parity the delivery target needs (none in the closed loop)
            frames = make_frames(data, link.frame_bytes, parity=lay.parity)
            stats["payloads"] += 1
            if ledger is not None:
                _record(ledger, [m.name for m in members], data, frames, link, lay.parity, target, work / f"o{seq}")
            for m in members:
                stats["forward_bytes"] += len(frames) * link.frame_bytes
                m.receive(lossy(frames, loss, rng))
            if closed:
                stats["rounds_to_delivery"].append(_close(members, ledger, data, link, loss, rng, stats, lay.parity))
        if signer is key and not closed:
            held["all"] = target
    final = sets[3].digest.hex()
    kid = key_id(key.public_key())
    at_final = sum(d.head(kid) == final for d in devices)
    out = {
        "devices": n_devices, "loss": loss, "loop": "closed" if closed else "open", **stats,
        "converged": at_final, "stuck": n_devices - at_final,
        "ledger_bytes_per_device": round(ledger.size() / n_devices) if ledger else None,
        "ingest_receipts_per_second": round(stats["receipts"] / stats["ingest_seconds"], 1)
        if stats["ingest_seconds"] else None,
    }  # fmt: skip
    if ledger is not None:
        ledger.close()
    return out


def _groups(devices, ledger: Ledger, sets, key, held) -> dict:
    """Devices grouped by the head they reported; a group's parent is the set with that digest (or none)."""
    known = {s.digest.hex()[:16]: s for s in sets}
    groups: dict = {}
    for d in devices:
        head = ledger.device(d.name).head_digest
        groups.setdefault(head, ([], known.get(head) if head else None))[0].append(d)
    return groups


def _record(ledger: Ledger, names, data: bytes, frames, link, parity: int, target: LabelledSet, out: Path) -> None:
    out = out / hashlib.sha256(data).hexdigest()[:8]
    out.mkdir(parents=True, exist_ok=True)
    (out / "payload.lcst").write_bytes(data)
    rep = {"payload_id": hashlib.sha256(data).hexdigest()[:8], "payload_sha256": hashlib.sha256(data).hexdigest(),
           "sequence": 0, "key_id": "", "reference_root": "", "link": link.name, "frame_bytes": link.frame_bytes,
           "parity_frames": parity, "frames": len(frames), "framed_bytes": len(frames) * link.frame_bytes}  # fmt: skip
    ledger.record_payload(names, rep, out, target.digest.hex())


def _close(members, ledger: Ledger, data: bytes, link, loss: float, rng, stats: dict, parity: int) -> int:
    """NAK → ingest → repair cycles until every member holds the payload; returns the cycles it took."""
    pid = hashlib.sha256(data).digest()[:4]
    for cycle in range(1, 60):
        for m in members:
            m.nak(cycle)
            for f in m.reporter.flush(now=float(cycle), status=status_events(m.state, m.store.root)):
                stats["return_bytes"] += f.stat().st_size
                if rng.random() < loss:
                    stats["lost_receipts"] += 1
                    continue
                t = time.perf_counter()
                try:
                    ledger.ingest(f.read_bytes())
                except (LabelcastError, LedgerError):
                    pass
                stats["ingest_seconds"] += time.perf_counter() - t
                stats["receipts"] += 1
        if all(pid in m.done or pid in m.waiting for m in members):
            return cycle
        for m in members:
            if pid in m.done or pid in m.waiting:
                continue
            plan = ledger.repair_plan([m.name]).get(pid.hex())
            if not plan:
                continue  # its NAK was lost: it reports again next cycle
            frames = make_repair_frames(data, link.frame_bytes, parity, plan)
            ledger.record_repair([m.name], {pid.hex(): plan})
            stats["forward_bytes"] += len(frames) * link.frame_bytes
            stats["repair_bytes"] += len(frames) * link.frame_bytes
            m.receive(lossy(frames, loss, rng))
    return -1


def render(result: dict) -> str:
    """docs/receipts.md's closed-vs-open table, and the forward-byte ratio per loss rate, from a JSON this wrote."""

    def dash(v, fmt="{:,}"):
        return "—" if v is None else fmt.format(v)

    closed = lambda r: r["loop"] == "closed"  # noqa: E731
    tab = md_grid(
        result["rows"],
        [
            ("L", "loss"),
            ("loop", "loop"),
            ("forward bytes", "forward_bytes"),
            ("of which repair", lambda r: dash(r["repair_bytes"] if closed(r) else None)),
            ("return bytes", lambda r: dash(r["return_bytes"] if closed(r) else None)),
            ("payloads", "payloads"),
            ("devices at the final head", "converged"),
            ("stuck", "stuck"),
            ("NAK cycles (max)", lambda r: dash(max(r["rounds_to_delivery"]) if closed(r) else None)),
            ("ingest", lambda r: dash(r["ingest_receipts_per_second"], "{:,.0f} receipts/s")),
            (
                "ledger per device",
                lambda r: dash(r["ledger_bytes_per_device"] and r["ledger_bytes_per_device"] / 1000, "{:.0f} KB"),
            ),
        ],
    )
    ratios = ", ".join(f"**{v:.3f}×** at {float(k):.0%} loss" for k, v in result["closed_over_open"].items())
    return tab + f"\n\nClosed loop over open loop, forward bytes: {ratios}."


def splice(doc: str, text: str) -> str:
    return splice_block(doc, "fleet:table", text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--loss", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--json", dest="out", default="out/bench/fleet.json")
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/receipts.md")
    a = ap.parse_args(argv)
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return 0
    rows = []
    for loss in a.loss:
        for closed in (False, True):
            work = Path(tempfile.mkdtemp(prefix="lc-fleet-"))
            try:
                rows.append(run(a.devices, loss, closed, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(f"{'loss':>5} {'loop':>6} {'forward B':>10} {'repair B':>9} {'return B':>9} {'payloads':>8} "
          f"{'converged':>9} {'stuck':>5} {'cycles max':>10} {'ingest/s':>9} {'ledger B/dev':>12}")  # fmt: skip
    for r in rows:
        cyc = max(r["rounds_to_delivery"]) if r["rounds_to_delivery"] else "-"
        print(f"{r['loss']:>5} {r['loop']:>6} {r['forward_bytes']:>10,} {r['repair_bytes']:>9,} "
              f"{r['return_bytes']:>9,} "
              f"{r['payloads']:>8} {r['converged']:>9} {r['stuck']:>5} {cyc:>10} "
              f"{r['ingest_receipts_per_second'] or '-':>9} {r['ledger_bytes_per_device'] or '-':>12}")  # fmt: skip
    ratios = {}
    for loss in a.loss:
        o, c = (next(r for r in rows if r["loss"] == loss and r["loop"] == lp) for lp in ("open", "closed"))
        ratios[str(loss)] = round(c["forward_bytes"] / o["forward_bytes"], 3)
        print(f"loss {loss}: closed / open forward bytes = {ratios[str(loss)]}")
    out = {"command": " ".join(sys.argv), "machine": machine(), "rows": rows, "closed_over_open": ratios}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
