#!/usr/bin/env python3
"""Reference outputs for nanodet-m-416 from onnxruntime (PyPI), on the exact input tensors
the Rust preprocessing produces.

    cargo run -p edgecell-vision --example dump_nanodet_inputs -- /tmp/nanodet_inputs
    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime numpy
    /tmp/ortvenv/bin/python providers/inference/tools/ort_reference.py /tmp/nanodet_inputs

Writes providers/inference/testdata/nanodet_ref/<case>.json: input checksums, per output
(name, shape, sum, abs-sum, every STRIDE-th flat value, the full rows of the TOP_ROWS anchors
with the highest class score) and the post-NMS boxes in source pixels (decode + per-class NMS
written independently here in numpy). Also prints onnxruntime's single-thread time per frame; `--time SRC [CASE] [RUNS]` only
times one case (run it right after `cargo bench -p edgecell-inference` for the ratio).
Not a build dependency: only its outputs are committed.
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MODEL = os.path.join(ROOT, "models", "nanodet-m-416.onnx")
OUT = os.path.join(HERE, "..", "testdata", "nanodet_ref")
STRIDE = 193
TOP_ROWS = 12
SCORE, IOU, MAX_DET = 0.35, 0.6, 100
STRIDES = (8, 16, 32)
BINS = 11


def f9(v):
    """float32 value with 9 significant digits (round-trips exactly to the same f32)."""
    return float(f"{float(v):.9g}")


def decode(outs, score_thr):
    """NanoDet GFL head: centre ((col+0.5)s, (row+0.5)s); 4 sides x 11 bins, softmax
    expectation x stride. Candidates in the order stride -> anchor -> class."""
    by_shape = {o.shape[1:]: o[0] for o in outs}
    cands = []
    for s in STRIDES:
        g = 416 // s
        n = g * g
        scores = by_shape[(n, 80)].astype(np.float32)
        reg = by_shape[(n, 4 * BINS)].astype(np.float32).reshape(n, 4, BINS)
        for i in range(n):
            row = scores[i]
            if not (row >= score_thr).any():
                continue
            cx, cy = (i % g + 0.5) * s, (i // g + 0.5) * s
            lg = reg[i]
            e = np.exp(lg - lg.max(axis=1, keepdims=True))
            d = (e * np.arange(BINS, dtype=np.float32)).sum(axis=1) / e.sum(axis=1) * s
            box = (cx - d[0], cy - d[1], cx + d[2], cy + d[3])
            for c in np.nonzero(row >= score_thr)[0]:
                cands.append((int(c), float(row[c]), box))
    return cands


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def nms(cands):
    order = sorted(range(len(cands)), key=lambda k: -cands[k][1])  # stable
    keep = []
    for k in order:
        if len(keep) >= MAX_DET:
            break
        c, s, b = cands[k]
        if all(not (kc == c and iou(kb, b) > IOU) for kc, _, kb in keep):
            keep.append((c, s, b))
    return keep


def to_source(b, lb):
    sx = lb["new_width"] / lb["src_width"]
    sy = lb["new_height"] / lb["src_height"]
    w, h = lb["src_width"], lb["src_height"]
    return [
        float(np.clip((b[0] - lb["pad_x"]) / sx, 0, w)),
        float(np.clip((b[1] - lb["pad_y"]) / sy, 0, h)),
        float(np.clip((b[2] - lb["pad_x"]) / sx, 0, w)),
        float(np.clip((b[3] - lb["pad_y"]) / sy, 0, h)),
    ]


def time_only(src, case, runs):
    """Single-thread onnxruntime time per frame on one dumped input (for the tract ratio)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
    x = np.fromfile(os.path.join(src, case + ".f32"), dtype="<f4").reshape(1, 3, 416, 416)
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"onnxruntime {ort.__version__} 1 thread, {case}: median {1e3 * times[runs // 2]:.2f} ms/frame "
          f"(min {1e3 * times[0]:.2f}, max {1e3 * times[-1]:.2f}, n={runs})")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--time":
        # --time SRC [CASE] [RUNS]
        time_only(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "vtest_f00",
                  int(sys.argv[4]) if len(sys.argv) > 4 else 50)
        return
    src = sys.argv[1] if len(sys.argv) > 1 else "/tmp/nanodet_inputs"
    cases = json.load(open(os.path.join(src, "cases.json")))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    os.makedirs(OUT, exist_ok=True)
    times = []
    for case in cases:
        x = np.fromfile(os.path.join(src, case["name"] + ".f32"), dtype="<f4").reshape(1, 3, 416, 416)
        outs = sess.run(None, {inp.name: x})
        for _ in range(5 if case is cases[0] else 2):
            t = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append(time.perf_counter() - t)
        outputs = []
        for name, o in zip(names, outs):
            flat = o.reshape(-1).astype(np.float32)
            rows = o[0]
            entry = {
                "name": name,
                "shape": list(o.shape),
                "sum": float(flat.astype(np.float64).sum()),
                "abs_sum": float(np.abs(flat.astype(np.float64)).sum()),
                "sample_stride": STRIDE,
                "samples": [f9(v) for v in flat[::STRIDE]],
            }
            outputs.append(entry)
        # Full rows (scores and boxes) of the TOP_ROWS anchors per stride.
        by_shape = {o.shape[1:]: (nm, o[0]) for nm, o in zip(names, outs)}
        top = []
        for s in STRIDES:
            n = (416 // s) ** 2
            sn, sc = by_shape[(n, 80)]
            bn, bx = by_shape[(n, 44)]
            for i in np.argsort(-sc.max(axis=1), kind="stable")[:TOP_ROWS]:
                top.append({"stride": s, "anchor": int(i), "scores_output": sn, "boxes_output": bn,
                            "scores": [f9(v) for v in sc[i]], "boxes": [f9(v) for v in bx[i]]})
        dets = nms(decode(outs, SCORE))
        lb = case["letterbox"]
        ref = {
            "case": case["name"],
            "source": case["source"],
            "frame": case["frame"],
            "letterbox": lb,
            "onnxruntime": ort.__version__,
            "input_sum": float(x.astype(np.float64).sum()),
            "input_abs_sum": float(np.abs(x.astype(np.float64)).sum()),
            "score_threshold": SCORE,
            "iou_threshold": IOU,
            "outputs": outputs,
            "top_rows": top,
            "detections": [{"class_id": c, "score": s, "box": to_source(b, lb)} for c, s, b in dets],
        }
        with open(os.path.join(OUT, case["name"] + ".json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
        print(case["name"], len(ref["detections"]), "detections")
    times.sort()
    print(f"onnxruntime {ort.__version__} 1 thread: median {1e3 * times[len(times) // 2]:.2f} ms/frame "
          f"(min {1e3 * times[0]:.2f}, n={len(times)})")


if __name__ == "__main__":
    main()
