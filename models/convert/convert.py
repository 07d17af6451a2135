#!/usr/bin/env python3
"""Convert face-api.js (npm @vladmandic/face-api@1.7.15) weights to ONNX.

Rebuilds, op for op, two of face-api's networks as ONNX graphs (opset 13):

  * TinyFaceDetector  -> tiny_face_detector.onnx
  * FaceExpressionNet -> face_expression.onnx

The graphs are written from scratch with the `onnx` helper API, following the
structure described by face-api's TypeScript sources (tinyYolov2/,
faceFeatureExtractor/, faceProcessor/, faceExpressionNet/).  The weights are
read from the tfjs weights manifests and .bin shards shipped in the npm
package.  By default every tensor face-api ships uint8-quantised stays uint8
in the ONNX file (about 1 byte per weight instead of 4), with its scale and
min, and a small constant subgraph dequantises it the way tfjs-core's
io.decodeWeights does, bit for bit (see GraphBuilder.init); runtimes fold it
at load.  With --float32 the dequantised float32 values are stored instead
(the previous format, 4x larger, same results).

Usage:
    python models/convert/convert.py --face-api-model-dir DIR --out-dir models/ [--float32]

DIR is the `model/` directory of the unpacked npm package.  The output is
byte-for-byte reproducible: no timestamps, fixed producer name/version, and
deterministic node / initializer names and ordering.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13
PRODUCER_NAME = "smile-factor-convert"
PRODUCER_VERSION = "1.0.0"
SOURCE = "npm @vladmandic/face-api@1.7.15 (MIT)"

DETECTOR_MANIFEST = "tiny_face_detector_model-weights_manifest.json"
EXPRESSION_MANIFEST = "face_expression_model-weights_manifest.json"

EXPRESSION_SIZE = 112
EXPRESSION_LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


# ---------------------------------------------------------------------------
# tfjs weight loading
# ---------------------------------------------------------------------------

_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1}
_QUANT_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


class QuantizedWeight:
    """A tfjs-quantised weight: raw uint8 (or uint16) codes `q` plus the manifest's `scale` and `min`.

    `scale` and `min` are the manifest's JSON numbers as float64, exactly as
    JavaScript reads them.  `values` is what tfjs decodes: float32(q * scale + min),
    the product and sum evaluated in float64.
    """

    def __init__(self, q, scale, minimum):
        self.q = q
        self.scale = float(scale)
        self.min = float(minimum)
        self.values = dequantize(q, self.scale, self.min)
        self.shape = q.shape
        self.ndim = q.ndim

    def transpose(self, *axes):
        # A pure permutation: transposing the codes == transposing the values.
        return QuantizedWeight(np.ascontiguousarray(self.q.transpose(*axes)), self.scale, self.min)


def dequantize(q, scale, minimum):
    """tfjs-core decodeWeights: Float32Array of (q * scale + min) in JS (float64) arithmetic."""
    return (q.astype(np.float64) * np.float64(scale) + np.float64(minimum)).astype(np.float32)


def load_tfjs_weights(model_dir, manifest_name):
    """Return an ordered list of (name, weight) as stored by face-api.

    A weight is a QuantizedWeight for quantised tensors (the codes,
    scale and min, plus the float32 values tfjs would decode) and a float32
    ndarray for tensors stored unquantised.

    Each manifest group's shards are concatenated in `paths` order, then the
    group's weights are read sequentially from that buffer.  Quantised weights
    (uint8/uint16) are dequantised as value = q * scale + min, evaluated in
    float64 (JavaScript numbers) and stored into a float32 array (round to
    nearest), exactly as tfjs-core does.  Unquantised float32 weights are raw
    little-endian float32.
    """
    with open(os.path.join(model_dir, manifest_name), "rb") as f:
        manifest = json.loads(f.read().decode("utf-8"))

    out = []
    seen = set()
    for group in manifest:
        buf = b"".join(_read_file(os.path.join(model_dir, p)) for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], [int(d) for d in w["shape"]], w["dtype"]
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            q = w.get("quantization")
            if dtype != "float32":
                raise ValueError(f"{name}: unsupported dtype {dtype}")
            if q is not None:
                qdtype = q["dtype"]
                if qdtype not in _QUANT_DTYPES:
                    raise ValueError(f"{name}: unsupported quantization dtype {qdtype}")
                if "scale" not in q or "min" not in q:
                    raise ValueError(f"{name}: quantization without scale/min")
                np_q = np.dtype(_QUANT_DTYPES[qdtype]).newbyteorder("<")
                nbytes = size * np_q.itemsize
                raw = np.frombuffer(buf, dtype=np_q, count=size, offset=offset).copy()
                value = QuantizedWeight(raw.reshape(shape), q["scale"], q["min"])
            else:
                nbytes = size * _DTYPE_BYTES[dtype]
                value = np.frombuffer(buf, dtype="<f4", count=size, offset=offset).astype(np.float32).reshape(shape)
            offset += nbytes
            if name in seen:
                raise ValueError(f"duplicate weight {name}")
            seen.add(name)
            out.append((name, value))
        if offset != len(buf):
            raise ValueError(f"{manifest_name}: read {offset} bytes but group has {len(buf)}")
    return out


def _read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# Layout conversion (TF NHWC kernels -> ONNX NCHW kernels)
# ---------------------------------------------------------------------------

def conv_filter(w):
    """TF conv2d filter [kh, kw, cin, cout] -> ONNX [cout, cin, kh, kw]."""
    assert w.ndim == 4
    return _contiguous(w.transpose(3, 2, 0, 1))


def depthwise_filter(w):
    """TF depthwise filter [kh, kw, c, 1] -> ONNX grouped-conv weight [c, 1, kh, kw]."""
    assert w.ndim == 4 and w.shape[3] == 1
    return _contiguous(w.transpose(2, 3, 0, 1))


def _contiguous(w):
    return w if isinstance(w, QuantizedWeight) else np.ascontiguousarray(w)


def tf_same_pads(in_size, kernel, stride):
    """TF 'SAME' padding along one axis: (pad_before, pad_after)."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + kernel - in_size, 0)
    return total // 2, total - total // 2, out


# ---------------------------------------------------------------------------
# Graph builder
# ---------------------------------------------------------------------------

class GraphBuilder:
    def __init__(self, weights, quantized=True):
        self.weights = dict(weights)
        self.quantized = quantized
        self.used = set()
        self.nodes = []
        self.initializers = []
        self.dequant_nodes = []
        self.n_dequant = 0
        self.shapes = set()
        self.consts = set()

    def init(self, name, array):
        """Add weight `name`; returns the name of a float32 tensor holding its tfjs value.

        Unquantised weights become float32 initializers.  A QuantizedWeight, when
        self.quantized, is stored as its uint8 codes `name/q` (flattened, in
        the ONNX layout) plus float64 scalars `name/scale` and `name/min`, and a
        constant subgraph computes
            name = Reshape(Cast<float>(Cast<double>(name/q) * name/scale + name/min),
                           shape/<dims>)
        (no Reshape for 1-D tensors), i.e. float32(q * scale + min) with
        float64 arithmetic: the exact decodeWeights arithmetic of tfjs (JS
        numbers are float64, the Float32Array store rounds to nearest).  All
        inputs are initializers, so runtimes fold the subgraph into a
        constant at load time.
        Without self.quantized the decoded float32 values are stored directly.
        """
        if isinstance(array, QuantizedWeight):
            if not self.quantized:
                array = array.values
            else:
                q = array.q
                self.initializers.append(numpy_helper.from_array(q.reshape(-1), f"{name}/q"))
                self.initializers.append(numpy_helper.from_array(np.array(array.scale, np.float64), f"{name}/scale"))
                self.initializers.append(numpy_helper.from_array(np.array(array.min, np.float64), f"{name}/min"))
                # Unnamed nodes; the intermediate tensors get short names (dq<i>/...)
                # because every name is stored two or three times and the point
                # of this format is fewer bytes.
                t = f"dq{self.n_dequant}"
                self.n_dequant += 1
                f32 = name if q.ndim == 1 else f"{t}/f"
                self.dequant_nodes += [
                    helper.make_node("Cast", [f"{name}/q"], [f"{t}/q"], to=TensorProto.DOUBLE),
                    helper.make_node("Mul", [f"{t}/q", f"{name}/scale"], [f"{t}/s"]),
                    helper.make_node("Add", [f"{t}/s", f"{name}/min"], [f"{t}/v"]),
                    helper.make_node("Cast", [f"{t}/v"], [f32], to=TensorProto.FLOAT),
                ]
                if q.ndim != 1:
                    # The codes are stored flat and reshaped last: tract (0.23) evaluates
                    # a tensor-by-scalar Mul/Add along the last axis, which is 1 or 3
                    # long for conv kernels, and was then ~3x slower at load.
                    shape = "shape/" + "x".join(str(d) for d in q.shape)
                    if shape not in self.shapes:
                        self.shapes.add(shape)
                        self.initializers.append(numpy_helper.from_array(np.array(q.shape, np.int64), shape))
                    self.dequant_nodes.append(helper.make_node("Reshape", [f32, shape], [name]))
                return name
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def weight(self, name):
        self.used.add(name)
        return self.weights[name]

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def const(self, name, array):
        """A small constant initializer, stored once however often it is used."""
        if name not in self.consts:
            self.consts.add(name)
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def check_all_used(self):
        unused = sorted(set(self.weights) - self.used)
        if unused:
            raise ValueError(f"unused weights: {unused}")

    # --- layers ----------------------------------------------------------

    def conv(self, x, prefix, pads, stride=1, out=None):
        """Regular conv with bias: tf.add(tf.conv2d(x, filters, stride, pad), bias)."""
        w = self.weight(f"{prefix}/filters")
        b = self.weight(f"{prefix}/bias")
        kh, kw = w.shape[0], w.shape[1]
        wn = self.init(f"{prefix}/filters", conv_filter(w))
        bn = self.init(f"{prefix}/bias", b)
        return self.node("Conv", [x, wn, bn], out or f"{prefix}/conv2d",
                         kernel_shape=[kh, kw], strides=[stride, stride], pads=pads,
                         dilations=[1, 1], group=1)

    def separable_conv(self, x, prefix, pads, stride=1):
        """tf.separableConv2d (depthwise, then 1x1 pointwise 'valid') + bias."""
        dw = self.weight(f"{prefix}/depthwise_filter")
        pw = self.weight(f"{prefix}/pointwise_filter")
        b = self.weight(f"{prefix}/bias")
        c = dw.shape[2]
        assert pw.shape[:3] == (1, 1, c)
        dwn = self.init(f"{prefix}/depthwise_filter", depthwise_filter(dw))
        pwn = self.init(f"{prefix}/pointwise_filter", conv_filter(pw))
        bn = self.init(f"{prefix}/bias", b)
        y = self.node("Conv", [x, dwn], f"{prefix}/depthwise",
                      kernel_shape=[dw.shape[0], dw.shape[1]], strides=[stride, stride],
                      pads=pads, dilations=[1, 1], group=c)
        return self.node("Conv", [y, pwn, bn], f"{prefix}/pointwise",
                         kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                         dilations=[1, 1], group=1)

    def model(self, graph_name, inputs, outputs, doc, metadata):
        # The dequantisation subgraphs come first, in weight order (a topological order).
        graph = helper.make_graph(self.dequant_nodes + self.nodes, graph_name, inputs, outputs,
                                  initializer=self.initializers)
        model = helper.make_model(
            graph,
            producer_name=PRODUCER_NAME,
            producer_version=PRODUCER_VERSION,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            doc_string=doc,
        )
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model


# ---------------------------------------------------------------------------
# TinyFaceDetector (TinyYolov2Base.runMobilenet, separable convs, first layer
# a plain conv, filterSizes of length 7 => no conv6 / conv7)
# ---------------------------------------------------------------------------

def build_tiny_face_detector(weights, quantized=True):
    g = GraphBuilder(weights, quantized)
    x = "input"

    def leaky(t, prefix):
        return g.node("LeakyRelu", [t], f"{prefix}/leaky", alpha=0.1)

    def maxpool(t, name, stride):
        # tf.maxPool(x, [2, 2], stride, 'same'): TF puts the odd padding at the end.
        return g.node("MaxPool", [t], name, kernel_shape=[2, 2], strides=[stride, stride],
                      auto_pad="SAME_UPPER")

    def maxpool_s2(t, name, odd):
        # The same pool at stride 2, as Max of strided slices: tract 0.23 runs a stride-2
        # MaxPool as a scalar loop per tap (over half the detector natively), while
        # slices and Max are vectorised. Exact: max is order-independent. Rows first, so
        # the column taps read half the data. An odd side is padded at the end as TF
        # does, with -inf, which never wins.
        if odd:
            pads = g.const("pool/pads_end", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))
            t = g.node("Pad", [t, pads, g.const("pool/-inf", np.array(-np.inf, np.float32))],
                       f"{name}/pad")
        for axis, half in ((2, "rows"), (3, "cols")):
            taps = [g.node("Slice", [t, g.const(f"pool/start{k}", np.array([k], np.int64)),
                                     g.const("pool/end", np.array([2**62], np.int64)),
                                     g.const(f"pool/axis{axis}", np.array([axis], np.int64)),
                                     g.const("pool/step", np.array([2], np.int64))],
                           f"{name}/{half}{k}")
                    for k in (0, 1)]
            t = g.node("Max", taps, name if axis == 3 else f"{name}/{half}")
        return t

    out = leaky(g.conv(x, "conv0", pads=[0, 0, 0, 0]), "conv0")  # 'valid'
    # Sides for an input of s = 32k: conv0 s-2, conv1 s/2-1 (odd), conv2..4 s/4..s/16.
    out = maxpool_s2(out, "pool0", odd=False)
    for i in range(1, 6):
        # tf.pad by 1 on H and W, then separableConv2d 'valid', + bias, leaky.
        out = leaky(g.separable_conv(out, f"conv{i}", pads=[1, 1, 1, 1]), f"conv{i}")
        out = maxpool_s2(out, f"pool{i}", odd=i == 1) if i < 5 else maxpool(out, "pool5", 1)
    g.conv(out, "conv8", pads=[0, 0, 0, 0], out="grid")  # 'valid', no activation
    g.check_all_used()

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "size", "size"])]
    outputs = [helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 25, None, None])]
    doc = ("face-api.js TinyFaceDetector. input: NCHW float32 [1,3,size,size], size a multiple "
           "of 32, already normalised as (pixel - [117.001,114.697,97.404]) / 255. output 'grid': "
           "raw conv8 output [1,25,size/32,size/32], channel = anchor*5 + (x,y,w,h,objectness).")
    return g.model("tiny_face_detector", inputs, outputs, doc,
                   {"source": SOURCE, "network": "TinyFaceDetector"})


# ---------------------------------------------------------------------------
# FaceExpressionNet (FaceFeatureExtractor with 4 x denseBlock4, avgPool,
# fully connected layer, softmax)
# ---------------------------------------------------------------------------

def build_face_expression(weights, quantized=True):
    g = GraphBuilder(weights, quantized)
    size = EXPRESSION_SIZE

    def relu(t, name):
        return g.node("Relu", [t], name)

    def add(a, b, name):
        return g.node("Add", [a, b], name)

    def same_pads(in_size, kernel, stride):
        before, after, out = tf_same_pads(in_size, kernel, stride)
        # ONNX pads: [h_begin, w_begin, h_end, w_end]; square input so H == W.
        return [before, before, after, after], out

    def dense_block4(x, prefix, in_size, first):
        pads, mid = same_pads(in_size, 3, 2)
        if first:
            c0 = g.conv(x, f"{prefix}/conv0", pads=pads, stride=2)
        else:
            c0 = g.separable_conv(x, f"{prefix}/conv0", pads=pads, stride=2)
        out1 = relu(c0, f"{prefix}/out1")
        pads1, _ = same_pads(mid, 3, 1)
        out2 = g.separable_conv(out1, f"{prefix}/conv1", pads=pads1)
        in3 = relu(add(out1, out2, f"{prefix}/sum3"), f"{prefix}/in3")
        out3 = g.separable_conv(in3, f"{prefix}/conv2", pads=pads1)
        # relu(out1 + (out2 + out3)), same association as face-api
        s23 = add(out2, out3, f"{prefix}/sum23")
        in4 = relu(add(out1, s23, f"{prefix}/sum4"), f"{prefix}/in4")
        out4 = g.separable_conv(in4, f"{prefix}/conv3", pads=pads1)
        # relu(out1 + (out2 + (out3 + out4)))
        s34 = add(out3, out4, f"{prefix}/sum34")
        s234 = add(out2, s34, f"{prefix}/sum234")
        return relu(add(out1, s234, f"{prefix}/sum_out"), f"{prefix}/out"), mid

    out, s = dense_block4("input", "dense0", size, True)
    out, s = dense_block4(out, "dense1", s, False)
    out, s = dense_block4(out, "dense2", s, False)
    out, s = dense_block4(out, "dense3", s, False)
    assert s == 7, s
    out = g.node("AveragePool", [out], "avgpool", kernel_shape=[7, 7], strides=[2, 2],
                 pads=[0, 0, 0, 0])  # 'valid' -> [1,256,1,1]
    out = g.node("Flatten", [out], "flatten", axis=1)  # [1,256]; 1x1 spatial so NHWC == NCHW order
    fcw = g.init("fc/weights", g.weight("fc/weights"))  # [256, 7]
    fcb = g.init("fc/bias", g.weight("fc/bias"))
    logits = g.node("Gemm", [out, fcw, fcb], "fc", alpha=1.0, beta=1.0, transA=0, transB=0)
    g.nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], name="softmax", axis=-1))
    g.check_all_used()

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 7])]
    doc = ("face-api.js FaceExpressionNet. input: NCHW float32 [1,3,112,112], already normalised "
           "as (pixel - [122.782,117.001,104.298]) / 255. output 'probabilities': softmax [1,7] "
           "in label order " + ",".join(EXPRESSION_LABELS) + ".")
    return g.model("face_expression", inputs, outputs, doc,
                   {"source": SOURCE, "network": "FaceExpressionNet",
                    "labels": ",".join(EXPRESSION_LABELS)})


# ---------------------------------------------------------------------------

def write_model(model, path):
    data = model.SerializeToString(deterministic=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    print(f"wrote {path} ({len(data)} bytes)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--face-api-model-dir", required=True,
                    help="the model/ directory of the unpacked @vladmandic/face-api npm package")
    ap.add_argument("--out-dir", required=True, help="where to write the .onnx files")
    ap.add_argument("--float32", action="store_true",
                    help="store every weight as dequantised float32 (about 4x larger files) instead of "
                         "keeping face-api's uint8 codes and dequantising in the graph (the default)")
    args = ap.parse_args(argv)
    quantized = not args.float32

    os.makedirs(args.out_dir, exist_ok=True)
    det = build_tiny_face_detector(load_tfjs_weights(args.face_api_model_dir, DETECTOR_MANIFEST), quantized)
    write_model(det, os.path.join(args.out_dir, "tiny_face_detector.onnx"))
    expr = build_face_expression(load_tfjs_weights(args.face_api_model_dir, EXPRESSION_MANIFEST), quantized)
    write_model(expr, os.path.join(args.out_dir, "face_expression.onnx"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
