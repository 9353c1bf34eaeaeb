"""Link benchmark: what labels save. The built-in `fashion` payload on every link profile,
next to sending the equivalent images (PNG) or the student model (ONNX fp32/fp16/int8).

    python benchmarks/link.py [--workdir out/bench/link-demo] [--json out/bench/link.json]

It runs the demo once (sender and receiver) to get the real payload, the selected
items and the trained student, then plans each alternative on each profile:
frames, bytes on the link with per-frame overhead, seconds on the link (duty
cycle and passes included), messages, passes, and the probability that enough
frames arrive at the profile's loss rate. Every alternative is framed the same
way (the profile's frame size and default erasure-code overhead).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, write_json  # noqa: E402

from labelcast.codec.payload import open_payload  # noqa: E402
from labelcast.profiles import list_profiles, load_link  # noqa: E402
from labelcast.sender.link import plan  # noqa: E402


def png_bytes(images: np.ndarray) -> int:
    """Total size of one optimised PNG file per image (what a sender of pixels would send)."""
    from PIL import Image

    total = 0
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(buf, format="PNG", optimize=True)
        total += buf.tell()
    return total


def model_sizes(onnx_path: Path, work: Path) -> dict[str, int]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import float16

    sizes = {"model fp32 (ONNX)": onnx_path.stat().st_size}
    m16 = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    onnx.save(m16, str(work / "student.fp16.onnx"))
    sizes["model fp16 (ONNX)"] = (work / "student.fp16.onnx").stat().st_size
    quantize_dynamic(str(onnx_path), str(work / "student.int8.onnx"), weight_type=QuantType.QInt8)
    sizes["model int8 (ONNX)"] = (work / "student.int8.onnx").stat().st_size
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="out/bench/link-demo")
    ap.add_argument("--reuse", action="store_true", help="reuse a demo run already in --workdir")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from labelcast.codec.keys import TrustSet
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.datasets.builtin import target
    from labelcast.demo import run_demo

    wd = Path(a.workdir) / "fashion"
    if not (a.reuse and (wd / "demo-report.json").exists()):
        run_demo("fashion", a.workdir)
    rep = json.loads((wd / "demo-report.json").read_text())
    payload = (wd / "ground" / "outbox" / "payload.lcst").read_bytes()
    store = ReferenceStore(wd / "device" / "reference")
    trust = TrustSet.from_files([wd / "device" / "sender.pub"])
    p = open_payload(payload, trust, store.root, segments=store.manifest.segments, now=0)
    x_sel = np.asarray(store.items[p.indices])
    x_train, _, _ = target("fashion", "train")
    sizes = {
        "labelcast payload": len(payload),
        f"PNG of the {p.indices.size} selected items": png_bytes(x_sel),
        f"PNG of the target train set ({len(x_train)})": png_bytes(x_train),
    }
    sizes.update(model_sizes(wd / "device" / "model" / "student.onnx", wd))
    for k in [k for k in sizes if k.startswith("model")]:
        data = (
            wd
            / {
                "model fp32 (ONNX)": "device/model/student.onnx",
                "model fp16 (ONNX)": "student.fp16.onnx",
                "model int8 (ONNX)": "student.int8.onnx",
            }[k]
        ).read_bytes()
        sizes[k] = min(len(data), len(zlib.compress(data, 9)))
    rows = []
    for name in list_profiles("links"):
        link = load_link(name)
        for what, nbytes in sizes.items():
            try:
                pl = plan(nbytes, link)
            except ValueError as e:  # too many frames for one payload on this link
                rows.append({"link": name, "what": what, "bytes": nbytes, "frames": f"n/a ({e})"[:40]})
                continue
            rows.append(
                {
                    "link": name,
                    "what": what,
                    "bytes": nbytes,
                    "frames": pl["frames"],
                    "bytes_on_link": pl["bytes_on_link"],
                    "link_seconds": pl["link_seconds"],
                    "hours": round(pl["link_seconds"] / 3600, 2),
                    "messages": pl["messages"],
                    "passes": pl["passes"],
                    "p_success": pl["success_probability"],
                    "x_labelcast_time": None,
                }
            )
        base = next(r for r in rows if r["link"] == name and r["what"] == "labelcast payload")
        for r in rows:
            if r["link"] == name and "link_seconds" in r:
                r["x_labelcast_time"] = round(r["link_seconds"] / base["link_seconds"], 1)
    cols = [
        "link",
        "what",
        "bytes",
        "frames",
        "bytes_on_link",
        "link_seconds",
        "hours",
        "messages",
        "passes",
        "p_success",
        "x_labelcast_time",
    ]
    table(rows, cols, f"fashion: student accuracy {rep['student_accuracy']} from a {len(payload)} B payload")
    write_json(a.json, {"demo": rep, "sizes": sizes, "rows": rows})


if __name__ == "__main__":
    main()
