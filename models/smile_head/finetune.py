"""Fine-tunes a smile branch of the expression net's last block, measured by nested 5-fold CV.

The 7 face-api expressions must stay bit-identical, so the net's weights are not touched.
The branch is a trainable copy of the last separable conv of the last dense block
(`dense3/conv3`: depthwise 3x3 on 256 channels, pointwise 256->256 with bias), fed by the
same input and added the way the block adds it:

    in4   = Relu(sum4)                  sum4 = dense3/sum4 (out1 + conv1 + conv2)
    out'  = Relu(sum4 + conv3'(in4))    (the net: dense3/out = Relu(sum4 + conv3(in4)))
    smile = Sigmoid(mean_7x7(out') . w + b)

conv3' starts from conv3's weights and (w, b) from the shipped head's logistic regression
fitted on the same training part (its C chosen by inner CV, as train.py does), so before
the first step the branch is the shipped head. Then conv3's pointwise weights and bias and
the head are trained together (the depthwise part stays conv3's: in a model the branch
would reuse the net's own depthwise output) with Adam on a class-balanced logistic loss
over every training crop, its mirror, its augmented copies and their mirrors, with a mild
L2 toward conv3's weights and the regression's own L2 on the head.

The CV is train.py's: the same outer folds (a crop, its mirror and its augmented copies in
the same fold; augmented copies only ever in training parts), judged on un-augmented
held-out crops, crop and mirror averaged, at a threshold chosen inside the training part.
Inside each outer fold, inner splits of the training part (train.py's inner folds; the
first INNER of them, for time) pick the Adam step from LRS and the number of epochs (best
pooled inner held-out AUC, read after every epoch) and the threshold (best balanced
accuracy of those inner held-out scores); then the branch is trained on the whole training
part with them. The outer held-out crops are never seen before the final scoring. The rest
(L2, batch, epoch cap) is fixed here. Each fold also reports the pointwise weights stored
as uint8 codes (the models' weight storage) and both heads at a fixed 0.5.

  cargo run --profile tool --example head_features -- --labelled ../shared/data/genki4k-dev \\
      --out $CARGO_TARGET_DIR/smile_head_maps --augment 6 --maps
  taskset -c 1 ~/.cache/smile-factor/finetune-venv/bin/python models/smile_head/finetune.py \\
      --features $CARGO_TARGET_DIR/smile_head_maps [--lrs 0.001,0.003] \\
      --out models/smile_head/finetune.json

(`./run finetune-head DIR` does both, with requirements-finetune.txt's pins in a venv.)
JAX on the CPU, one thread, fixed seeds (a re-run of a fold gave the same figures); about
25 minutes (5 folds x (4 inner + 1 final trainings), 10-12 s an epoch over the 14 views of
1,792-2,240 crops).
"""

import os

# One core, one thread: another process benchmarks on the other core, and sums in a fixed
# order make a re-run give the same figures.
os.environ["XLA_FLAGS"] = (
    "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false"
)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.environ["JAX_PLATFORMS"] = "cpu"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import train  # noqa: E402  (same folder: folds, C choice, thresholds, seed)

C, H, W = 256, 7, 7
CONV = "dense3/conv3/"
# A priori, not tuned on any held-out crops.
LRS = (1e-4, 3e-4)  # Adam steps tried, every parameter; the inner CV picks one
L2_CONV = 1e-2  # times the mean squared drift of conv3's trained weights from conv3's
BATCH = 128
MAX_EPOCHS = 6
TRAINED = ("pw", "b")  # conv3's pointwise weights and bias; the head's w, hb too
INNER = 2  # inner folds used to pick LR, epochs and threshold (of train.py's 5: time)


def dequantised(m, name):
    """A weight the way the graph computes it: float64 q * scale + min, rounded to float32."""
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    if name in init:
        return init[name].astype(np.float32)
    q = init[name + "/q"].astype(np.float64)
    return (q * float(init[name + "/scale"]) + float(init[name + "/min"])).astype(np.float32)


def conv3_weights(model):
    m = onnx.load(model)
    dw = dequantised(m, CONV + "depthwise_filter").reshape(C, 3, 3)
    pw = dequantised(m, CONV + "pointwise_filter").reshape(C, C)  # [out, in]
    b = dequantised(m, CONV + "bias").reshape(C)
    return {"dw": dw.transpose(1, 2, 0), "pw": pw.T.copy(), "b": b}  # dw [3,3,c], pw [in,out]


def load(d):
    with open(os.path.join(d, "index.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    n = len(rows)
    y = np.array([int(r["label"]) for r in rows])
    feats = np.fromfile(os.path.join(d, "features.f32"), dtype="<f4").reshape(n, 2, C).astype(np.float64)
    # NCHW per view on disk; NHWC here (channels last: the pointwise conv is one matmul).
    maps = np.fromfile(os.path.join(d, "maps.f32"), dtype="<f4").reshape(n, 2, C, H, W)
    maps = np.ascontiguousarray(maps.transpose(0, 1, 3, 4, 2))
    aug = np.fromfile(os.path.join(d, "maps_augmented.f32"), dtype="<f4")
    aug = aug.reshape(n, -1, C, H, W)  # per crop: copy 0, its mirror, copy 1, ...
    aug = np.ascontiguousarray(aug.transpose(0, 1, 3, 4, 2))
    return y, feats, maps, aug


@jax.jit
def depthwise(dw, s):
    """conv3's depthwise part on Relu(sum4): [B, 7, 7, 256] -> the same shape."""
    xp = jnp.pad(jax.nn.relu(s), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(xp[:, i : i + H, j : j + W, :] * dw[i, j] for i in range(3) for j in range(3))


def with_depthwise(dw, maps):
    """[..., 7, 7, 256] sum4 -> [..., 7, 7, 2, 256]: sum4 and conv3's depthwise output,
    side by side. The depthwise part is not trained (it is 3% of the branch's work and
    2,304 weights), so it is computed once."""
    flat = maps.reshape(-1, H, W, C)
    out = np.empty((flat.shape[0], H, W, 2, C), dtype=np.float32)
    for i in range(0, len(flat), 512):
        chunk = jnp.asarray(flat[i : i + 512])
        out[i : i + 512, :, :, 0] = flat[i : i + 512]
        out[i : i + 512, :, :, 1] = np.asarray(depthwise(dw, chunk))
    return out.reshape(maps.shape[:-1] + (2, C))


def branch(p, sd):
    """sd: [B, 7, 7, 2, 256] (sum4, depthwise) -> [B] logits."""
    s, d = sd[..., 0, :], sd[..., 1, :]
    out = jax.nn.relu(s + d @ p["pw"] + p["b"])
    return out.mean(axis=(1, 2)) @ p["w"] + p["hb"]


def make_step(p0, std, l2_head, lr):
    n_conv = sum(p0[k].size for k in TRAINED)

    def loss(p, s, y, wt):
        z = branch(p, s)
        nll = jnp.sum(wt * (jax.nn.softplus(z) - y * z)) / jnp.sum(wt)
        drift = sum(jnp.sum((p[k] - p0[k]) ** 2) for k in TRAINED) / n_conv
        return nll + L2_CONV * drift + l2_head * jnp.sum((p["w"] * std) ** 2)

    @jax.jit
    def step(p, m, v, t, s, y, wt):
        g = jax.grad(loss)(p, s, y, wt)
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = jax.tree.map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree.map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        corr = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        p = jax.tree.map(lambda a, mm, vv: a - lr * corr * mm / (jnp.sqrt(vv) + eps), p, m, v)
        return p, m, v

    return step


_score = jax.jit(lambda p, s: jax.nn.sigmoid(branch(p, s)))


def score(p, maps, idx):
    """[len(idx)] crop-and-mirror-averaged scores of the un-augmented views."""
    out = np.zeros((len(idx), 2))
    for i in range(0, len(idx), 256):
        chunk = idx[i : i + 256]
        s = maps[chunk].reshape((-1,) + maps.shape[2:])
        out[i : i + len(chunk)] = np.asarray(_score(p, jnp.asarray(s))).reshape(-1, 2)
    return out.mean(axis=1)


def train_branch(conv0, feats, maps, aug, y, tr, c, seed, lr, epochs, watch=None):
    """Fits the branch on crops `tr` (all their views); returns the parameters after each
    epoch's end for which `watch` (held-out crops) is scored: [(epoch, scores)]."""
    w, hb = train.fit(feats[tr], y[tr], c)
    xs = feats[tr].reshape(-1, C)
    std = xs.std(axis=0) + 1e-6
    p = {k: jnp.asarray(conv0[k]) for k in TRAINED}
    p["w"], p["hb"] = jnp.asarray(w, dtype=jnp.float32), jnp.asarray(hb, dtype=jnp.float32)
    p0 = dict(p)
    # sklearn's objective 0.5|w_std|^2 + C sum(loss) as a mean over the un-augmented views.
    l2_head = 1.0 / (2.0 * c * 2 * len(tr))
    step = make_step(p0, jnp.asarray(std, dtype=jnp.float32), l2_head, lr)
    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    k = aug.shape[1]
    views = 2 + k
    # Class-balanced weights, as class_weight="balanced".
    pos = y[tr].mean()
    cw = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos)).astype(np.float32)
    rng = np.random.RandomState(seed)
    history = []
    if watch is not None:
        history.append((0, score(p, maps, watch)))
    t = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(tr) * views)
        for i in range(0, len(order) - BATCH + 1, BATCH):
            sel = order[i : i + BATCH]
            crop, view = tr[sel // views], sel % views
            plain = view < 2
            s = np.empty((len(sel),) + maps.shape[2:], dtype=np.float32)
            s[plain] = maps[crop[plain], view[plain]]
            s[~plain] = aug[crop[~plain], view[~plain] - 2]
            t += 1
            p, m, v = step(p, m, v, t, jnp.asarray(s), jnp.asarray(y[crop], jnp.float32), jnp.asarray(cw[crop]))
        if watch is not None:
            history.append((epoch, score(p, maps, watch)))
    return p, history


def quantised(x):
    """uint8 codes with a float64 scale and min, dequantised as the graph does (Weight storage)."""
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / 255.0
    q = np.clip(np.round((x.astype(np.float64) - lo) / scale), 0, 255).astype(np.uint8)
    return q, scale, lo, (q.astype(np.float64) * scale + lo).astype(np.float32)


def check(conv0, feats, maps):
    """The branch at conv3's weights recomputes the pooled features the shipped head reads."""
    p = {k: jnp.asarray(conv0[k]) for k in TRAINED}
    s = maps[:64].reshape((-1,) + maps.shape[2:])
    sd, d = jnp.asarray(s[..., 0, :]), jnp.asarray(s[..., 1, :])
    pooled = np.asarray(jax.nn.relu(sd + d @ p["pw"] + p["b"]).mean(axis=(1, 2)))
    err = np.abs(pooled - feats[:64].reshape(-1, C)).max()
    print(f"pooled features recomputed from dense3/sum4: max |diff| {err:.2e}", flush=True)
    if err > 1e-3:
        raise SystemExit("the maps do not match the features: wrong value or layout")


def select(conv0, feats, maps, aug, y, tr, c, fold_seed, offset):
    """LR, epochs (best pooled AUC of the first INNER inner folds' held-out crops; ties to
    fewer steps) and the threshold (best balanced accuracy of those scores), from crops
    `tr` only."""
    inner_scores = {}
    inner_y = []
    for j, (itr, ite) in enumerate(train.folds(y[tr], fold_seed)):
        if j >= INNER:
            break
        for lr in LRS:
            seed = train.SEED + offset + j
            _, hist = train_branch(conv0, feats, maps, aug, y, tr[itr], c, seed, lr, MAX_EPOCHS, tr[ite])
            for e, s in hist:
                inner_scores.setdefault((lr, e), []).append(s)
        inner_y.append(y[tr[ite]])
    iy = np.concatenate(inner_y)
    inner_auc = {key: roc_auc_score(iy, np.concatenate(s)) for key, s in inner_scores.items()}
    best_lr, best_e = max(inner_auc, key=lambda key: (round(inner_auc[key], 6), -key[0] * key[1]))
    t = train.best_threshold(iy, np.concatenate(inner_scores[(best_lr, best_e)]))
    return best_lr, best_e, t, inner_auc


def main():
    global LRS
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True, help="head_features --maps output dir")
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "face_expression.onnx"))
    ap.add_argument("--augment", type=int, default=None, help="use only the first K augmented copies")
    ap.add_argument("--folds", type=int, default=train.FOLDS, help="outer folds to run (all: 5)")
    ap.add_argument("--out", help="write the figures here as JSON")
    ap.add_argument("--save", help="write each fold's trained branch here (npz)")
    ap.add_argument(
        "--lrs", help=f"comma-separated Adam steps for the inner CV to pick from (default {LRS})"
    )
    a = ap.parse_args()
    if a.lrs:
        LRS = tuple(float(v) for v in a.lrs.split(","))
    y, feats, maps, aug = load(a.features)
    if a.augment is not None:
        aug = aug[:, : 2 * a.augment]
    conv0 = conv3_weights(a.model)
    t0 = time.time()
    maps = with_depthwise(conv0["dw"], maps)
    aug = with_depthwise(conv0["dw"], aug)
    print(f"depthwise outputs computed ({time.time() - t0:.0f} s)", flush=True)
    check(conv0, feats, maps)
    print(
        f"{len(y)} crops, {aug.shape[1] // 2} augmented copies each (and mirrors); "
        f"LR {LRS}, L2 to conv3 {L2_CONV}, batch {BATCH}, epochs <= {MAX_EPOCHS}, inner folds used {INNER}",
        flush=True,
    )
    folds = []
    for k, (tr, te) in enumerate(train.folds(y, train.SEED)):
        if k >= a.folds:
            break
        t0 = time.time()
        c, t_head = train.choose(feats[tr], y[tr], train.SEED + 1 + k)
        w, hb = train.fit(feats[tr], y[tr], c)
        shipped = train.scores(w, hb, feats[te]).mean(axis=1)
        best_lr, best_e, t_branch, inner_auc = select(conv0, feats, maps, aug, y, tr, c, train.SEED + 1 + k, 100 * k)
        t_inner = time.time() - t0
        p, _ = train_branch(conv0, feats, maps, aug, y, tr, c, train.SEED + 100 * k + 99, best_lr, best_e)
        s = score(p, maps, te)
        yt = y[te]
        pq = dict(p)
        pq["pw"] = jnp.asarray(quantised(np.asarray(p["pw"]))[3])
        sq = score(pq, maps, te)
        if a.save:
            np.savez(os.path.join(a.save, f"fold{k}.npz"), **{n: np.asarray(v) for n, v in p.items()})
        row = {
            "c": c,
            "lr": best_lr,
            "epochs": best_e,
            "inner_auc": {f"{lr:g}/{e}": round(float(v), 4) for (lr, e), v in inner_auc.items()},
            "threshold": t_branch,
            "accuracy": round(100 * train.accuracy(yt, s, t_branch), 2),
            "accuracy_at_0.5": round(100 * train.accuracy(yt, s, 0.5), 2),
            "auc": round(float(roc_auc_score(yt, s)), 4),
            "accuracy_uint8": round(100 * train.accuracy(yt, sq, t_branch), 2),
            "auc_uint8": round(float(roc_auc_score(yt, sq)), 4),
            "shipped_threshold": t_head,
            "shipped_accuracy": round(100 * train.accuracy(yt, shipped, t_head), 2),
            "shipped_accuracy_at_0.5": round(100 * train.accuracy(yt, shipped, 0.5), 2),
            "shipped_auc": round(float(roc_auc_score(yt, shipped)), 4),
            "seconds": round(time.time() - t0),
            "seconds_inner": round(t_inner),
        }
        folds.append(row)
        print(f"fold {k}: {json.dumps(row)}", flush=True)
    acc = np.array([r["accuracy"] for r in folds])
    base = np.array([r["shipped_accuracy"] for r in folds])
    auc = np.array([r["auc"] for r in folds])
    acc_q = np.array([r["accuracy_uint8"] for r in folds])
    auc_q = np.array([r["auc_uint8"] for r in folds])
    acc5 = np.array([r["accuracy_at_0.5"] for r in folds])
    base5 = np.array([r["shipped_accuracy_at_0.5"] for r in folds])
    gain = acc - base
    sd = (lambda v: float(v.std(ddof=1))) if len(folds) > 1 else (lambda v: 0.0)
    summary = {
        "name": f"branch (conv3 pointwise + bias + head fine-tuned), LR from {list(LRS)}, <= {MAX_EPOCHS} epochs",
        "augmented_copies": int(aug.shape[1] // 2),
        "lrs": list(LRS),
        "l2_conv": L2_CONV,
        "batch": BATCH,
        "max_epochs": MAX_EPOCHS,
        "inner_folds_used": INNER,
        "accuracy": round(float(acc.mean()), 2),
        "accuracy_sd": round(sd(acc), 2),
        "auc": round(float(auc.mean()), 4),
        "auc_sd": round(sd(auc), 4),
        "accuracy_at_0.5": round(float(acc5.mean()), 2),
        "accuracy_at_0.5_sd": round(sd(acc5), 2),
        "accuracy_uint8": round(float(acc_q.mean()), 2),
        "accuracy_uint8_sd": round(sd(acc_q), 2),
        "auc_uint8": round(float(auc_q.mean()), 4),
        "shipped_accuracy": round(float(base.mean()), 2),
        "gain": round(float(gain.mean()), 2),
        "gain_sd": round(sd(gain), 2),
        "shipped_accuracy_at_0.5": round(float(base5.mean()), 2),
        "gain_at_0.5": round(float((acc5 - base5).mean()), 2),
        "gain_at_0.5_sd": round(sd(acc5 - base5), 2),
        "folds": folds,
    }
    print(
        f"branch: accuracy {acc.mean():.2f} ± {sd(acc):.2f}  AUC {auc.mean():.4f} ± {sd(auc):.4f}  "
        f"gain over the shipped head {gain.mean():+.2f} ± {sd(gain):.2f} (per fold {gain.round(2).tolist()})\n"
        f"  at 0.5: {acc5.mean():.2f} ± {sd(acc5):.2f} (the shipped head at 0.5: {base5.mean():.2f}, gain "
        f"{(acc5 - base5).mean():+.2f} ± {sd(acc5 - base5):.2f}); pointwise weights stored uint8: accuracy "
        f"{acc_q.mean():.2f} ± {sd(acc_q):.2f}, AUC {auc_q.mean():.4f}"
    )
    if a.out:
        rows = []
        if os.path.exists(a.out):  # one row per configuration: replace this one's
            with open(a.out) as f:
                rows = [r for r in json.load(f)["rows"] if r["name"] != summary["name"]]
        with open(a.out, "w") as f:
            doc = {"folds": train.FOLDS, "seed": train.SEED, "crops": int(len(y)), "rows": rows + [summary]}
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
