"""Trains the smile head and writes it into face_expression.onnx as a second output.

The head is class-balanced logistic regression on FaceExpressionNet's 256 pooled
features (the graph value `flatten`), of every dev crop and of its mirror image. In
the graph it is Gemm(flatten, W[256,1], b) -> Sigmoid -> output `smile` in [0, 1];
the standardisation the regression was fitted with is folded into W and b.

  ./run train-head DIR     (DIR: GENKI-4K dev, with smile/ and non_smile/)

runs examples/head_features.rs (our engine) into target/smile_head/, then this
script in a venv with requirements.txt's pins. By hand:

  python models/smile_head/train.py --features target/smile_head \
      --model models/face_expression.onnx --out models/face_expression.onnx

Figures are 5-fold cross-validated over crops, each crop and its mirror in the same
fold. In each outer fold the regularisation C and the threshold are chosen by an inner
5-fold CV on the training part only (the threshold maximising balanced accuracy of the
inner out-of-fold scores), then judged on the held-out part. The shipped head is fitted
on all of dev with C chosen the same way; the default threshold is the mean of the five
folds' thresholds, rounded to 0.01 (each chosen without seeing its held-out part).

Re-running gives a byte-identical model: fixed seeds, one BLAS thread, and a
deterministic solver (lbfgs).
"""

import os

# One thread: float sums in a fixed order, so a re-run gives the same bytes.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

SEED = 20261201
FOLDS = 5
C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
FEATURES = 256
POOLED = "flatten"  # the graph value after AveragePool + Flatten
HEAD = "smile_head/"  # prefix of every node and initializer this script adds
OUTPUT = "smile"


def load_features(d):
    with open(os.path.join(d, "index.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    x = np.fromfile(os.path.join(d, "features.f32"), dtype="<f4")
    x = x.reshape(len(rows), 2, FEATURES).astype(np.float64)
    y = np.array([int(r["label"]) for r in rows])
    happy = np.array([[float(r["happy"]), float(r["happy_mirror"])] for r in rows])
    return x, y, happy


def fit(x, y, c):
    """x: [crops, 2, 256]; both the crop and its mirror are training samples."""
    xs = x.reshape(-1, FEATURES)
    ys = np.repeat(y, 2)
    mean, std = xs.mean(axis=0), xs.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000, tol=1e-8)
    lr.fit((xs - mean) / std, ys)
    w = lr.coef_[0] / std
    b = lr.intercept_[0] - float(w @ mean)
    return w, b


def scores(w, b, x):
    """[crops, 2]: the head's sigmoid on each crop and on its mirror."""
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def folds(y, seed):
    return list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def balanced_accuracy(y, s, t):
    return 0.5 * (np.mean(s[y == 1] > t) + np.mean(s[y == 0] <= t))


def accuracy(y, s, t):
    return float(np.mean((s > t) == (y == 1)))


def best_threshold(y, s):
    """Maximises balanced accuracy; midway between neighbouring scores, rounded to 0.01."""
    u = np.unique(s)
    cands = np.concatenate([[0.5], (u[1:] + u[:-1]) / 2])
    ba = np.array([balanced_accuracy(y, s, t) for t in cands])
    return float(np.round(cands[int(np.argmax(ba))], 2))


def out_of_fold(x, y, c, seed):
    oof = np.zeros((len(y), 2))
    for tr, te in folds(y, seed):
        w, b = fit(x[tr], y[tr], c)
        oof[te] = scores(w, b, x[te])
    return oof


def choose(x, y, seed):
    """C by inner-CV AUC of mirror-averaged scores; then the threshold on those scores."""
    best = None
    for c in C_GRID:
        oof = out_of_fold(x, y, c, seed)
        auc = roc_auc_score(y, oof.mean(axis=1))
        if best is None or auc > best[0] + 1e-9:
            best = (auc, c, oof)
    _, c, oof = best
    return c, best_threshold(y, oof.mean(axis=1))


def mean_sd(v):
    v = np.asarray(v, dtype=np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}"


def cross_validate(x, y, happy):
    rows = {k: [] for k in ("faceapi", "head", "head_mirror", "head_mirror_t", "faceapi_mirror")}
    thresholds, cs = [], []
    oof = np.zeros((len(y), 2))
    for k, (tr, te) in enumerate(folds(y, SEED)):
        c, t = choose(x[tr], y[tr], SEED + 1 + k)
        w, b = fit(x[tr], y[tr], c)
        s = scores(w, b, x[te])
        oof[te] = s
        yt = y[te]
        thresholds.append(t)
        cs.append(c)
        avg = s.mean(axis=1)
        rows["faceapi"].append((accuracy(yt, happy[te, 0], 0.5), roc_auc_score(yt, happy[te, 0])))
        fm = happy[te].mean(axis=1)
        rows["faceapi_mirror"].append((accuracy(yt, fm, 0.5), roc_auc_score(yt, fm)))
        rows["head"].append((accuracy(yt, s[:, 0], 0.5), roc_auc_score(yt, s[:, 0])))
        rows["head_mirror"].append((accuracy(yt, avg, 0.5), roc_auc_score(yt, avg)))
        rows["head_mirror_t"].append((accuracy(yt, avg, t), roc_auc_score(yt, avg)))
    return rows, thresholds, cs, oof


def ship(base, out, w, b, threshold, c):
    m = onnx.load(base)
    g = m.graph
    # Drop a head written by an earlier run, so the script is idempotent on its own output.
    keep = [n for n in g.node if not n.name.startswith(HEAD)]
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if not i.name.startswith(HEAD)]
    del g.initializer[:]
    g.initializer.extend(inits)
    outs = [o for o in g.output if o.name != OUTPUT]
    del g.output[:]
    g.output.extend(outs)
    if POOLED not in {o for n in g.node for o in n.output}:
        sys.exit(f"{base}: no value named {POOLED}")
    g.initializer.extend(
        [
            numpy_helper.from_array(w.astype(np.float32).reshape(FEATURES, 1), HEAD + "weights"),
            numpy_helper.from_array(np.array([b], dtype=np.float32), HEAD + "bias"),
        ]
    )
    g.node.extend(
        [
            helper.make_node(
                "Gemm", [POOLED, HEAD + "weights", HEAD + "bias"], [HEAD + "logit"], name=HEAD + "gemm"
            ),
            helper.make_node("Sigmoid", [HEAD + "logit"], [OUTPUT], name=HEAD + "sigmoid"),
        ]
    )
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 1]))
    props = {p.key: p.value for p in m.metadata_props}
    props["smile_head"] = (
        "logistic regression (class-balanced, C=%g) on the 256 pooled features, trained by "
        "models/smile_head/train.py on the GENKI-4K dev split (2,800 crops and their mirrors); "
        "default threshold %.2f" % (c, threshold)
    )
    del m.metadata_props[:]
    for k in sorted(props):
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=props[k]))
    onnx.checker.check_model(m)
    onnx.save(m, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True, help="examples/head_features.rs output dir")
    ap.add_argument("--model", required=True, help="face_expression.onnx to add the head to")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cv-out", help="write the CV figures here as JSON (examples/score.rs prints them)")
    a = ap.parse_args()
    x, y, happy = load_features(a.features)
    print(f"{len(y)} crops ({y.sum()} smile, {len(y) - y.sum()} non-smile), and their mirrors")
    rows, thresholds, cs, oof = cross_validate(x, y, happy)
    print(f"{FOLDS}-fold CV (crops and mirrors in the same fold; seed {SEED}), mean ± sd over folds:")
    names = {
        "faceapi": "face-api happy > 0.5",
        "faceapi_mirror": "face-api happy, mirror-averaged > 0.5",
        "head": "head > 0.5, crop only",
        "head_mirror": "head > 0.5, mirror-averaged",
        "head_mirror_t": "head > fold threshold, mirror-averaged",
    }
    table = []
    for k, label in names.items():
        acc = [100 * r[0] for r in rows[k]]
        auc = [r[1] for r in rows[k]]
        print(f"  {label:<40} accuracy {mean_sd(acc)} %   AUC {mean_sd(auc)}")
        table.append(
            {
                "name": label,
                "accuracy": round(float(np.mean(acc)), 2),
                "accuracy_sd": round(float(np.std(acc, ddof=1)), 2),
                "auc": round(float(np.mean(auc)), 4),
                "auc_sd": round(float(np.std(auc, ddof=1)), 4),
            }
        )
    print(f"  thresholds chosen in the folds' training parts: {thresholds} -> {mean_sd(thresholds)}")
    print(f"  C chosen in the folds' training parts: {cs}")
    threshold = float(np.round(np.mean(thresholds), 2))
    avg = oof.mean(axis=1)
    print(
        f"pooled out-of-fold, mirror-averaged: AUC {roc_auc_score(y, avg):.4f}, "
        f"accuracy {100 * accuracy(y, avg, threshold):.2f}% at the default threshold {threshold:.2f}; "
        f"the pooled scores' own best balanced-accuracy threshold would be {best_threshold(y, avg):.2f}"
    )
    one = oof.reshape(-1)
    print(
        f"pooled out-of-fold, one view a frame (crops and mirrors as separate frames): "
        f"AUC {roc_auc_score(np.repeat(y, 2), one):.4f}, accuracy "
        f"{100 * accuracy(np.repeat(y, 2), one, threshold):.2f}% at {threshold:.2f}"
    )
    c, _ = choose(x, y, SEED)
    w, b = fit(x, y, c)
    ship(a.model, a.out, w, b, threshold, c)
    with open(a.out, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {a.out}: head fitted on all {len(y)} crops with C={c}; default threshold {threshold:.2f}")
    if a.cv_out:
        cv = {
            "folds": FOLDS,
            "seed": SEED,
            "crops": int(len(y)),
            "rows": table,
            "thresholds": thresholds,
            "threshold_mean": round(float(np.mean(thresholds)), 4),
            "threshold_sd": round(float(np.std(thresholds, ddof=1)), 4),
            "default_threshold": threshold,
            "c": c,
            "model_sha256": sha,
        }
        with open(a.cv_out, "w") as f:
            json.dump(cv, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
