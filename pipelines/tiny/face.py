"""Tiny ONNX stand-ins for an insightface pack (SCRFD detector + ArcFace recogniser).

``write_tiny_face_pack(dir)`` writes two small graphs that
``insightface.app.FaceAnalysis(name=str(dir))`` routes to its own ``SCRFD`` and ``ArcFaceONNX``
classes, so the app's real face path (letterboxing, anchor decoding, NMS, keypoint alignment,
embedding normalisation) runs in tests and on machines without the real weights.

Detector. The graph reads the input, not a fixed answer:

* Content extent. SCRFD letterboxes: the image is resized to fit ``det_size`` and padded with
  black at the right and bottom. The graph takes the content width/height as the last column/row
  holding a non-black pixel, and places each face box as fractions of that content, so boxes land
  on the photo, not on the canvas. (A photo whose right or bottom border is pure black is read
  as slightly smaller; harmless for a stand-in.)
* Contrast gate. Each box's score is ``sigmoid(k * (std - t))`` of the grey-level standard
  deviation inside that box, so a flat/blank image (or a box over a flat wall) gives no face.
* Outputs. For strides 8/16/32 with 2 anchors per cell, every anchor near a box centre scores a
  Gaussian bump times the gate and regresses distances to that box and its 5 keypoints, exactly
  what SCRFD decodes; many anchors fire per face and SCRFD's own NMS merges them.

Recogniser. ``(N, 3, 112, 112) -> (N, 512)``: a random conv, instance norm, tanh and a separable
random projection (28x28 -> 8x8 per channel), deterministic for a seed. Different crops give
different embeddings; it knows nothing about identity.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipelines.faces.analysis import STAND_IN_PRODUCER

# (x1, y1, x2, y2) as fractions of the image content: a face over the centre-upper part
DEFAULT_BOXES: tuple[tuple[float, float, float, float], ...] = ((0.28, 0.14, 0.72, 0.66),)

# 5 keypoints (left eye, right eye, nose, left/right mouth corner) as fractions of the box
KPS_IN_BOX = np.array(
    [[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32
)

DET_FILE = "det_scrfd_tiny.onnx"
REC_FILE = "rec_arcface_tiny.onnx"
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
OPSET = 17

# SCRFD feeds (pixel - 127.5) / 128: padding (pixel 0) is -0.996, pixel 1 is -0.988
_PAD_THRESHOLD = -0.992
# Contrast gate on the grey std inside a box, in SCRFD input units (1/128 per grey level):
# std 0 -> 0.018, std 0.1 (13 levels) -> 0.98; faces are far above that.
_GATE_CENTRE = 0.05
_GATE_SLOPE = 80.0
_BUMP_SIGMA = 0.2  # of the box's shorter side; at least one stride so some anchor always fires


def write_tiny_face_pack(
    directory: Path,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
    seed: int = 0,
) -> Path:
    """Write a detection + recognition pack into ``directory`` and return it.

    ``boxes`` are ``(x1, y1, x2, y2)`` fractions of the image content (0..1), one per face the
    detector reports; default: one face-sized box over the centre-upper part. ``seed`` sets the
    recogniser's random weights. Same arguments, same bytes.
    """
    box_array = _check_boxes(DEFAULT_BOXES if boxes is None else boxes)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _save(build_detector(box_array), directory / DET_FILE)
    _save(build_recognizer(seed), directory / REC_FILE)
    return directory


def _check_boxes(boxes: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    if len(boxes) == 0:
        raise ValueError("boxes is empty: give at least one (x1, y1, x2, y2) box")
    out = []
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"box {box!r} is not allowed: use (x1, y1, x2, y2)")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
            raise ValueError(
                f"box {box!r} is not allowed: use fractions with 0 <= x1 < x2 <= 1 "
                "and 0 <= y1 < y2 <= 1"
            )
        out.append((x1, y1, x2, y2))
    return np.asarray(out, dtype=np.float32)  # (K, 4)


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    # write then rename, so a reader never sees a half-written graph
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)


class _Graph:
    """Small helper: named nodes and constants, so the graphs below read like numpy."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, value: np.ndarray | float | int | Sequence[float], name: str = "") -> str:
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        name = name or f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, name: str = "", **attrs: object) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        node_name = name or f"n{self._n}_{op_type.lower()}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out

    def output(self, src: str, name: str) -> None:
        self.nodes.append(helper.make_node("Identity", [src], [name], name=f"out_{name}"))

    def model(self, name: str, inputs: list, outputs: list, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=STAND_IN_PRODUCER,  # how FaceAnalyzer tells a stand-in
            doc_string=doc,
        )
        model.ir_version = 8  # readable by older onnxruntime builds too
        return model


def build_detector(boxes: np.ndarray) -> onnx.ModelProto:
    """SCRFD-signature graph: ``input.1`` (1, 3, H, W) -> 9 outputs (score/bbox/kps x 3 strides)."""
    g = _Graph()
    k = boxes.shape[0]
    x = "input.1"  # (1, 3, H, W), (pixel - 127.5) / 128, RGB

    shape = g.op("Shape", x)
    h_i = g.op("Gather", shape, g.const(np.int64(2)))  # scalar int64
    w_i = g.op("Gather", shape, g.const(np.int64(3)))
    h_f = g.op("Cast", h_i, to=TensorProto.FLOAT)
    w_f = g.op("Cast", w_i, to=TensorProto.FLOAT)
    one, zero = g.const(np.float32(1.0)), g.const(np.float32(0.0))

    # Content extent: last row / column with a non-padding pixel (1-based index, 0 if none)
    nonpad = g.op("Cast", g.op("Greater", x, g.const(np.float32(_PAD_THRESHOLD))), to=1)
    mask = g.op("ReduceMax", nonpad, axes=[0, 1], keepdims=0)  # (H, W)
    iy = g.op("Range", zero, h_f, one)  # (H,) 0..H-1
    ix = g.op("Range", zero, w_f, one)  # (W,)
    rows = g.op("ReduceMax", mask, axes=[1], keepdims=0)  # (H,)
    cols = g.op("ReduceMax", mask, axes=[0], keepdims=0)  # (W,)
    hc = g.op("ReduceMax", g.op("Mul", rows, g.op("Add", iy, one)), keepdims=0)  # scalar
    wc = g.op("ReduceMax", g.op("Mul", cols, g.op("Add", ix, one)), keepdims=0)

    # Boxes and keypoints in canvas pixels
    ax0 = g.const(np.array([0], dtype=np.int64))
    hc1, wc1 = g.op("Unsqueeze", hc, ax0), g.op("Unsqueeze", wc, ax0)  # (1,)
    wh = g.op("Concat", wc1, hc1, axis=0)  # (2,)
    box_px = g.op("Mul", g.const(boxes), g.op("Tile", wh, g.const(np.array([2]))))  # (K, 4)
    kps_frac = boxes[:, None, :2] + KPS_IN_BOX[None] * (boxes[:, None, 2:] - boxes[:, None, :2])
    kps_px = g.op(
        "Mul", g.const(kps_frac.reshape(k, 10)), g.op("Tile", wh, g.const(np.array([5])))
    )  # (K, 10)
    to_centre = np.array([[0.5, 0], [0, 0.5], [0.5, 0], [0, 0.5]], dtype=np.float32)
    to_size = np.array([[-1, 0], [0, -1], [1, 0], [0, 1]], dtype=np.float32)
    centre = g.op("MatMul", box_px, g.const(to_centre))  # (K, 2)
    short = g.op("ReduceMin", g.op("MatMul", box_px, g.const(to_size)), axes=[1], keepdims=0)

    # Contrast gate per box: grey std inside the box, from row/column masks (no (K, H, W) tensor)
    grey = g.op("ReduceMean", x, axes=[0, 1], keepdims=0)  # (H, W)

    def inside(coords: str, lo: int, hi: int) -> str:  # (K, H) or (K, W) 0/1
        a = g.op("Gather", box_px, g.const(np.array([lo])), axis=1)  # (K, 1)
        b = g.op("Gather", box_px, g.const(np.array([hi])), axis=1)
        ok = g.op("And", g.op("GreaterOrEqual", coords, a), g.op("Less", coords, b))
        return g.op("Cast", ok, to=TensorProto.FLOAT)

    in_rows = inside(g.op("Unsqueeze", iy, ax0), 1, 3)  # (K, H)
    in_cols = inside(g.op("Unsqueeze", ix, ax0), 0, 2)  # (K, W)
    ax1 = g.const(np.array([1], dtype=np.int64))

    def box_sum(img: str) -> str:  # (K,) sum of img over each box
        per_col = g.op("MatMul", in_rows, img)  # (K, W)
        return g.op("ReduceSum", g.op("Mul", per_col, in_cols), ax1, keepdims=0)

    count = g.op("Max", box_sum(g.op("Expand", one, g.op("Shape", grey))), one)
    mean = g.op("Div", box_sum(grey), count)
    mean_sq = g.op("Div", box_sum(g.op("Mul", grey, grey)), count)
    var = g.op("Relu", g.op("Sub", mean_sq, g.op("Mul", mean, mean)))
    std = g.op("Sqrt", var)  # (K,)
    gate = g.op(
        "Sigmoid",
        g.op("Mul", g.op("Sub", std, g.const(np.float32(_GATE_CENTRE))), g.const(_GATE_SLOPE)),
    )  # (K,)

    scores, bboxes, kpss = [], [], []
    for s in STRIDES:
        s_i, s_f = g.const(np.int64(s)), g.const(np.float32(s))
        fh, fw = g.op("Div", h_i, s_i), g.op("Div", w_i, s_i)  # feature map size
        ay = g.op(
            "Mul",
            g.op("Cast", g.op("Range", g.const(np.int64(0)), fh, g.const(np.int64(1))), to=1),
            s_f,
        )
        ax = g.op(
            "Mul",
            g.op("Cast", g.op("Range", g.const(np.int64(0)), fw, g.const(np.int64(1))), to=1),
            s_f,
        )
        grid = g.op("Concat", g.op("Unsqueeze", fh, ax0), g.op("Unsqueeze", fw, ax0), axis=0)
        gx = g.op("Expand", g.op("Unsqueeze", ax, ax0), grid)  # (fh, fw)
        gy = g.op("Expand", g.op("Unsqueeze", ay, ax1), grid)
        ax2 = g.const(np.array([2], dtype=np.int64))
        pts = g.op("Concat", g.op("Unsqueeze", gx, ax2), g.op("Unsqueeze", gy, ax2), axis=2)
        # SCRFD's anchor order: row-major cells, NUM_ANCHORS consecutive anchors per cell
        per_anchor = g.op("Concat", grid, g.const(np.array([NUM_ANCHORS, 2])), axis=0)
        pts = g.op("Expand", g.op("Unsqueeze", pts, ax2), per_anchor)  # (fh, fw, A, 2)
        pts = g.op("Reshape", pts, g.const(np.array([-1, 2])))  # (N, 2)

        diff = g.op("Sub", g.op("Unsqueeze", pts, ax1), g.op("Unsqueeze", centre, ax0))  # (N, K, 2)
        d2 = g.op("ReduceSum", g.op("Mul", diff, diff), ax2, keepdims=0)  # (N, K)
        sigma = g.op("Max", g.op("Mul", short, g.const(np.float32(_BUMP_SIGMA))), s_f)  # (K,)
        two_var = g.op("Mul", g.op("Mul", sigma, sigma), g.const(np.float32(2.0)))
        bump = g.op("Mul", g.op("Exp", g.op("Neg", g.op("Div", d2, two_var))), gate)  # (N, K)
        score = g.op("ReduceMax", bump, axes=[1], keepdims=1)  # (N, 1)
        best = g.op("ArgMax", bump, axis=1, keepdims=0)  # (N,) the box each anchor regresses

        # distances in stride units: (cx - x1, cy - y1, x2 - cx, y2 - cy) / s
        sel_box = g.op("Gather", box_px, best, axis=0)  # (N, 4)
        pts4 = g.op("Concat", pts, pts, axis=1)  # (N, 4)
        sign = g.const(np.array([1, 1, -1, -1], dtype=np.float32))
        bbox = g.op("Div", g.op("Mul", g.op("Sub", pts4, sel_box), sign), s_f)
        sel_kps = g.op("Gather", kps_px, best, axis=0)  # (N, 10)
        pts10 = g.op("Tile", pts, g.const(np.array([1, 5])))  # (N, 10)
        kps = g.op("Div", g.op("Sub", sel_kps, pts10), s_f)
        scores.append((score, s, 1))
        bboxes.append((bbox, s, 4))
        kpss.append((kps, s, 10))

    outputs = []
    for kind, items in (("score", scores), ("bbox", bboxes), ("kps", kpss)):
        for src, s, width in items:
            name = f"{kind}_{s}"
            g.output(src, name)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{s}", width]))
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "height", "width"])]
    doc = f"tiny SCRFD stand-in; boxes (x1, y1, x2, y2 of content) = {boxes.round(4).tolist()}"
    return g.model("tiny_scrfd", inputs, outputs, doc)


def build_recognizer(seed: int = 0) -> onnx.ModelProto:
    """ArcFace-signature graph: ``input.1`` (N, 3, 112, 112) -> ``embedding`` (N, 512)."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    channels, side, proj = 8, 28, 8  # 8 channels x 8 x 8 = 512
    conv_w = rng.standard_normal((channels, 3, 8, 8)).astype(np.float32) / np.sqrt(3 * 8 * 8)
    left = rng.standard_normal((proj, side)).astype(np.float32) / np.sqrt(side)  # (8, 28)
    right = rng.standard_normal((side, proj)).astype(np.float32) / np.sqrt(side)  # (28, 8)
    # Node names must not start with "Sub"/"Mul": ArcFaceONNX would then assume an mxnet
    # model with in-graph normalisation and skip its (x - 127.5) / 127.5.
    x = "input.1"
    h = g.op("Conv", x, g.const(conv_w), name="conv0", strides=[4, 4], pads=[2, 2, 2, 2])
    h = g.op(  # (N, 8, 28, 28); per-channel standardisation removes the shared brightness term
        "InstanceNormalization",
        h,
        g.const(np.ones(channels, np.float32)),
        g.const(np.zeros(channels, np.float32)),
        name="norm0",
    )
    h = g.op("Tanh", h, name="act0")
    h = g.op("MatMul", g.const(left), h, name="proj_rows")  # (N, 8, 8, 28)
    h = g.op("MatMul", h, g.const(right), name="proj_cols")  # (N, 8, 8, 8)
    h = g.op("Flatten", h, name="flatten", axis=1)  # (N, 512)
    g.output(h, "embedding")
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 3, 112, 112])]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])]
    return g.model("tiny_arcface", inputs, outputs, f"tiny ArcFace stand-in; seed={seed}")
