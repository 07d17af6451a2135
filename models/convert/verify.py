#!/usr/bin/env python3
"""Check the converted ONNX models against an independent numpy forward pass.

Usage:
    python models/convert/verify.py --face-api-model-dir DIR --models-dir models/ [--tract]

For each model:
  1. decodes the tfjs weights a second time, independently of convert.py
     (per-element float64 q*scale+min -> float32), and checks how each weight
     is stored: float32 initializers equal to the decoded weight after the
     expected layout change, or (the default format) the uint8 codes, the
     manifest's scale and min, and the Cast/Mul/Add/Cast(/Reshape) dequantisation
     subgraph, whose results (recomputed here, and by onnxruntime) must equal
     the decoded weights bit for bit;
  2. runs the ONNX graph with onnxruntime on a random normalised input and
     compares it with a numpy re-implementation of face-api's forward pass
     written in TF semantics (NHWC tensors, TF kernels, TF 'same'/'valid'
     padding, max-pool padding ignored), computed in float64;
  3. checks the detector's output grid shape at sizes 224, 320, 416;
  4. with --tract, also runs both graphs with tract (PyPI package `tract`,
     the Python binding of the same tract version the Rust crate uses) and
     compares them with the numpy reference;
  5. with --tfjs-golden DIR, compares with outputs of the original face-api
     running on tfjs (written by `node tfjs_golden.mjs PACKAGE_DIR DIR`),
     feeding the same pixels normalised the way the Rust side must do it.
Exits non-zero on any mismatch above tolerance.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort

DET_MEAN = np.array([117.001, 114.697, 97.404])
EXPR_MEAN = np.array([122.782, 117.001, 104.298])
TOL_DETECTOR = 2e-3   # absolute, on raw logits (magnitudes of a few units)
TOL_EXPRESSION = 1e-4  # absolute, on probabilities


# --- independent tfjs weight decoding --------------------------------------

def decode_weights(model_dir, manifest_name):
    """Return ({name: float32 value as tfjs decodes it}, {name: (codes, scale, min)} for quantised ones)."""
    manifest = json.load(open(os.path.join(model_dir, manifest_name)))
    weights, quant = {}, {}
    for group in manifest:
        data = bytearray()
        for p in group["paths"]:
            data += open(os.path.join(model_dir, p), "rb").read()
        pos = 0
        for w in group["weights"]:
            n = 1
            for d in w["shape"]:
                n *= d
            q = w.get("quantization")
            if q:
                assert q["dtype"] == "uint8"
                scale, mn = q["scale"], q["min"]
                codes = bytes(data[pos:pos + n])
                vals = dequant_js(codes, scale, mn)
                quant[w["name"]] = (np.frombuffer(codes, np.uint8).reshape(w["shape"]), scale, mn)
                pos += n
            else:
                vals = list(struct.unpack("<%df" % n, bytes(data[pos:pos + 4 * n])))
                pos += 4 * n
            weights[w["name"]] = np.array(vals, dtype=np.float32).reshape(w["shape"])
        assert pos == len(data), (manifest_name, pos, len(data))
    return weights, quant


def dequant_js(codes, scale, mn):
    # Python floats are IEEE doubles like JS numbers; struct 'f' rounds to float32.
    return [struct.unpack("<f", struct.pack("<f", b * scale + mn))[0] for b in codes]


def to_tf_layout(name, a):
    """Undo the converter's layout change: ONNX kernel -> TF kernel."""
    if name.endswith("depthwise_filter"):
        return a.transpose(2, 3, 0, 1)              # [c,1,kh,kw] -> [kh,kw,c,1]
    if a.ndim == 4:
        return a.transpose(2, 3, 1, 0)              # [cout,cin,kh,kw] -> [kh,kw,cin,cout]
    return a


def check_initializers(onnx_path, weights, quant):
    """Check how every weight is stored.

    A weight face-api stores unquantised must be a float32 initializer equal to
    the decoded value.  A quantised one must either be stored the same way
    (files written with convert.py --float32) or, in the default format, as
    uint8 codes `name/q` (the .bin bytes, permuted to the ONNX layout, stored
    flat) with float64 scalars `name/scale` and `name/min` equal to the
    manifest's, feeding exactly Cast(double) -> Mul(scale) -> Add(min) ->
    Cast(float) [-> Reshape to the ONNX shape, for rank > 1] -> `name`.
    The codes are decoded again here, per element, in float64 and must give the
    tfjs values bit for bit.  onnxruntime then evaluates the dequantisation
    subgraphs and its results must match too.
    """
    model = onnx.load(onnx_path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {n.output[0]: n for n in model.graph.node}
    order = {id(n): i for i, n in enumerate(model.graph.node)}
    expected_inits = set()
    n_quant = 0
    dq_nodes = []
    for name, w in weights.items():
        if name in inits or name not in quant:
            expected_inits.add(name)
            back = to_tf_layout(name, inits[name])
            assert back.shape == w.shape and back.dtype == np.float32, name
            assert np.array_equal(back, w), f"{name}: initializer differs from decoded weight"
            continue
        n_quant += 1
        codes, scale, mn = quant[name]
        expected_inits |= {f"{name}/q", f"{name}/scale", f"{name}/min"}
        q, s, m = inits[f"{name}/q"], inits[f"{name}/scale"], inits[f"{name}/min"]
        assert q.dtype == np.uint8 and s.dtype == np.float64 and m.dtype == np.float64, name
        assert s.shape == () and m.shape == (), name
        assert float(s) == scale and float(m) == mn, f"{name}: scale/min differ from the manifest"
        # The subgraph: Cast(to=DOUBLE) -> Mul(scale) -> Add(min) -> Cast(to=FLOAT)
        # [-> Reshape(shape/<dims>) for tensors of rank > 1, whose codes are stored flat] -> name.
        c2 = producer[name]
        assert q.ndim == 1, name
        if w.ndim > 1:
            assert c2.op_type == "Reshape", name
            shape = [int(d) for d in inits[c2.input[1]]]
            expected_inits.add(c2.input[1])
            dq_nodes.append(c2)
            q = q.reshape(shape)
            c2 = producer[c2.input[0]]
        back = to_tf_layout(name, q)
        assert np.array_equal(back, codes), f"{name}: codes differ from the .bin bytes"
        vals = np.array(dequant_js(back.reshape(-1).tolist(), float(s), float(m)), np.float32)
        assert np.array_equal(vals.reshape(w.shape), w), f"{name}: stored codes do not decode to the tfjs values"
        add = producer[c2.input[0]]
        mul = producer[add.input[0]]
        c1 = producer[mul.input[0]]
        attr = lambda n: {a.name: a.i for a in n.attribute}
        assert (c2.op_type, attr(c2)) == ("Cast", {"to": onnx.TensorProto.FLOAT}), name
        assert add.op_type == "Add" and add.input[1] == f"{name}/min", name
        assert mul.op_type == "Mul" and mul.input[1] == f"{name}/scale", name
        assert (c1.op_type, attr(c1), list(c1.input)) == ("Cast", {"to": onnx.TensorProto.DOUBLE}, [f"{name}/q"]), name
        dq_nodes += [c1, mul, add, c2]
    # Small index constants of the detector's pooling (slice starts, steps, pads): not
    # weights; the forward-pass comparison below checks what they do.
    expected_inits |= {n for n in inits if n.startswith("pool/") and inits[n].size <= 8}
    assert set(inits) == expected_inits, set(inits) ^ expected_inits
    if n_quant:
        # Let onnxruntime compute the dequantised weights and compare them too.
        used = {i for n in dq_nodes for i in n.input}
        outs = [onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None)
                for n in dq_nodes if n.output[0] in weights]
        dq_nodes.sort(key=lambda n: order[id(n)])
        g = onnx.helper.make_graph(dq_nodes, "dequant", [], outs,
                                   initializer=[t for t in model.graph.initializer if t.name in used])
        m2 = onnx.helper.make_model(g, opset_imports=model.opset_import, ir_version=model.ir_version)
        sess = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        for name, got in zip(names, sess.run(None, {})):
            assert np.array_equal(to_tf_layout(name, got), weights[name]), f"{name}: onnxruntime dequantises differently"
    print(f"  {len(weights)} weights match the tfjs-decoded weights bit for bit "
          f"({n_quant} stored as uint8 + scale/min, {len(weights) - n_quant} as float32; "
          f"onnxruntime's dequantisation also bit-exact)" if n_quant else
          f"  {len(weights)} float32 initializers match the tfjs-decoded weights bit for bit")


# --- numpy ops with TF semantics (NHWC, float64) ----------------------------

def same_pad_amounts(n, k, s):
    out = (n + s - 1) // s
    total = max(0, (out - 1) * s + k - n)
    return total // 2, total - total // 2


def pad_hw(x, padding, k, s, value=0.0):
    if padding == "valid":
        return x
    ph = same_pad_amounts(x.shape[1], k, s)
    pw = same_pad_amounts(x.shape[2], k, s)
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def windows(x, k, s):
    # x [N,H,W,C] -> [N,OH,OW,C,k,k]
    v = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    return v[:, ::s, ::s]


def conv2d(x, f, s, padding):
    k = f.shape[0]
    w = windows(pad_hw(x, padding, k, s), k, s)       # N,OH,OW,Cin,kh,kw
    return np.einsum("nhwcij,ijco->nhwo", w, f.astype(np.float64))


def depthwise_conv2d(x, f, s, padding):
    k = f.shape[0]
    w = windows(pad_hw(x, padding, k, s), k, s)
    return np.einsum("nhwcij,ijc->nhwc", w, f[:, :, :, 0].astype(np.float64))


def separable_conv2d(x, dw, pw, s, padding):
    return conv2d(depthwise_conv2d(x, dw, s, padding), pw, 1, "valid")


def max_pool(x, k, s):
    w = windows(pad_hw(x, "same", k, s, value=-np.inf), k, s)
    return w.max(axis=(4, 5))


def avg_pool_valid(x, k, s):
    return windows(x, k, s).mean(axis=(4, 5))


def relu(x):
    return np.maximum(x, 0)


def leaky(x):
    m = x * 0.10000000149011612
    return relu(x - m) + m


def ref_detector(x, W):
    out = leaky(conv2d(x, W["conv0/filters"], 1, "valid") + W["conv0/bias"])
    out = max_pool(out, 2, 2)
    for i in range(1, 6):
        p = np.pad(out, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = separable_conv2d(p, W[f"conv{i}/depthwise_filter"], W[f"conv{i}/pointwise_filter"], 1, "valid")
        out = leaky(out + W[f"conv{i}/bias"])
        out = max_pool(out, 2, 2 if i < 5 else 1)
    return conv2d(out, W["conv8/filters"], 1, "valid") + W["conv8/bias"]


def ref_expression(x, W):
    def sep(t, name, s):
        return separable_conv2d(t, W[f"{name}/depthwise_filter"], W[f"{name}/pointwise_filter"], s, "same") + W[f"{name}/bias"]

    out = x
    for b in range(4):
        p = f"dense{b}"
        if b == 0:
            out1 = relu(conv2d(out, W[f"{p}/conv0/filters"], 2, "same") + W[f"{p}/conv0/bias"])
        else:
            out1 = relu(sep(out, f"{p}/conv0", 2))
        out2 = sep(out1, f"{p}/conv1", 1)
        in3 = relu(out1 + out2)
        out3 = sep(in3, f"{p}/conv2", 1)
        in4 = relu(out1 + (out2 + out3))
        out4 = sep(in4, f"{p}/conv3", 1)
        out = relu(out1 + (out2 + (out3 + out4)))
    out = avg_pool_valid(out, 7, 2)
    logits = out.reshape(out.shape[0], -1) @ W["fc/weights"] + W["fc/bias"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- runners -----------------------------------------------------------------

def random_image(rng, size, mean):
    """A random RGB image in [0,255], normalised like the callers do, as NHWC float32."""
    pixels = rng.integers(0, 256, size=(1, size, size, 3)).astype(np.float32)
    return ((pixels - mean.astype(np.float32)) / np.float32(255)).astype(np.float32)


def run_ort(path, x_nchw):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x_nchw})[0]


def run_tract(path, x_nchw):
    import tract
    m = tract.onnx().load(path)
    m.set_input_fact(0, ",".join(str(d) for d in x_nchw.shape) + ",f32")
    r = m.into_model().into_runnable()
    return r.run([x_nchw])[0].to_numpy()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--face-api-model-dir", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--tract", action="store_true", help="also run the models with tract (pip package)")
    ap.add_argument("--tfjs-golden", metavar="DIR", help="outputs written by tfjs_golden.mjs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    ok = True

    det_path = os.path.join(args.models_dir, "tiny_face_detector.onnx")
    expr_path = os.path.join(args.models_dir, "face_expression.onnx")

    print("tiny_face_detector.onnx")
    Wd, Qd = decode_weights(args.face_api_model_dir, "tiny_face_detector_model-weights_manifest.json")
    check_initializers(det_path, Wd, Qd)
    for size, grid in ((224, 7), (320, 10), (416, 13)):
        x = random_image(rng, size, DET_MEAN)
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        got = run_ort(det_path, x_nchw)
        ref = ref_detector(x.astype(np.float64), Wd).transpose(0, 3, 1, 2)  # NHWC -> NCHW
        diff = float(np.abs(got - ref).max())
        shape_ok = got.shape == (1, 25, grid, grid)
        ok &= shape_ok and diff < TOL_DETECTOR
        print(f"  size {size}: onnxruntime grid {got.shape} (expect (1, 25, {grid}, {grid})) "
              f"max|ort - numpy| = {diff:.3e} (max|ref| = {np.abs(ref).max():.2f})")
        if args.tract:
            t = run_tract(det_path, x_nchw)
            td = float(np.abs(t - ref).max())
            ok &= t.shape == got.shape and td < TOL_DETECTOR
            print(f"           tract grid {t.shape} max|tract - numpy| = {td:.3e}")

    print("face_expression.onnx")
    We, Qe = decode_weights(args.face_api_model_dir, "face_expression_model-weights_manifest.json")
    check_initializers(expr_path, We, Qe)
    for trial in range(3):
        x = random_image(rng, 112, EXPR_MEAN)
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        got = run_ort(expr_path, x_nchw)
        ref = ref_expression(x.astype(np.float64), We)
        diff = float(np.abs(got - ref).max())
        ok &= got.shape == (1, 7) and diff < TOL_EXPRESSION
        print(f"  trial {trial}: probabilities {np.round(got[0], 4).tolist()} max|ort - numpy| = {diff:.3e}")
        if args.tract:
            t = run_tract(expr_path, x_nchw)
            td = float(np.abs(t - ref).max())
            ok &= t.shape == (1, 7) and td < TOL_EXPRESSION
            print(f"           max|tract - numpy| = {td:.3e}")

    if args.tfjs_golden:
        print("original face-api on tfjs (cpu backend) vs onnxruntime")
        gd = args.tfjs_golden
        for size in (224, 320, 416):
            px = np.fromfile(os.path.join(gd, f"det_px_{size}.f32"), "<f4").reshape(1, size, size, 3)
            x = ((px - DET_MEAN.astype(np.float32)) / np.float32(255)).transpose(0, 3, 1, 2)
            got = run_ort(det_path, np.ascontiguousarray(x, dtype=np.float32))
            g = size // 32
            ref = np.fromfile(os.path.join(gd, f"det_out_{size}.f32"), "<f4").reshape(1, g, g, 25).transpose(0, 3, 1, 2)
            diff = float(np.abs(got - ref).max())
            ok &= diff < TOL_DETECTOR
            print(f"  detector {size}: max|ort - tfjs| = {diff:.3e}")
        px = np.fromfile(os.path.join(gd, "expr_px.f32"), "<f4").reshape(1, 112, 112, 3)
        x = ((px - EXPR_MEAN.astype(np.float32)) / np.float32(255)).transpose(0, 3, 1, 2)
        got = run_ort(expr_path, np.ascontiguousarray(x, dtype=np.float32))
        ref = np.fromfile(os.path.join(gd, "expr_out.f32"), "<f4").reshape(1, 7)
        diff = float(np.abs(got - ref).max())
        ok &= diff < TOL_EXPRESSION
        print(f"  expression: max|ort - tfjs| = {diff:.3e}")

    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
