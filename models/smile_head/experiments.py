"""Levers tried on top of the shipped smile head, each measured by nested 5-fold CV.

The shipped head (train.py) is a logistic regression on the 256 globally pooled
features of the last block. This script measures, with exactly the same outer folds,
inner folds, C selection (inner-CV AUC) and threshold selection (inner out-of-fold
balanced accuracy) as train.py:

  global        the shipped feature set: dense3/out averaged over all 7x7 (256)
  global+aug    the same, trained also on 6 augmented copies of every training crop
                and their mirrors (similarity transform, blur, brightness/contrast;
                examples/head_features.rs --augment 6); judged on un-augmented crops
  global+dense2 plus dense2/out averaged over its 14x14 (128 more)
  bands         dense3/out averaged over 3 bands of rows (rows 0-2, 2-4, 4-6: what an
                AveragePool with kernel 3x7 and stride 2x1 gives), 768 features
  bands+aug     bands, with the augmented copies

Every figure is judged on held-out crops, crop and mirror averaged, as shipped. Augmented
copies of a crop are only ever in its own fold's training part.

  cargo run --profile tool --example head_features -- \\
      --labelled ../shared/data/genki4k-dev --out target/smile_head_aug --augment 6
  python models/smile_head/experiments.py --features target/smile_head_aug \\
      --out models/smile_head/experiments.json

(the Python of train.py's venv, requirements.txt). About half an hour on one core.
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import train  # noqa: E402  (same folder: folds, thresholds, seed)

ROWS3, ROWS2 = 7, 14
VIEW = 256 * ROWS3 + 128 * ROWS2  # floats per view in rows.f32 / augmented.f32
C_NEW = (0.001, 0.003, 0.01)
# name, feature blocks, use the augmented copies, C grid
CONFIGS = [
    ("global", ("global3",), False, train.C_GRID),
    ("global+aug", ("global3",), True, C_NEW),
    ("global+dense2", ("global3", "global2"), False, C_NEW),
    ("bands", ("bands3",), False, C_NEW),
    ("bands+aug", ("bands3",), True, C_NEW),
]


def blocks(a, names):
    r3 = a[..., : 256 * ROWS3].reshape(a.shape[:-1] + (256, ROWS3))
    r2 = a[..., 256 * ROWS3 :].reshape(a.shape[:-1] + (128, ROWS2))
    out = []
    for n in names:
        if n == "global3":
            out.append(r3.mean(-1))
        elif n == "global2":
            out.append(r2.mean(-1))
        elif n == "bands3":
            out.append(np.concatenate([r3[..., i : i + 3].mean(-1) for i in (0, 2, 4)], -1))
    return np.concatenate(out, -1).astype(np.float64)


def run(x, xa, y, use_aug, grid):
    f = x.shape[-1]

    def fit(idx, c):
        xs, ys = x[idx].reshape(-1, f), np.repeat(y[idx], 2)
        if use_aug:
            k = xa.shape[1]
            xs = np.concatenate([xs, xa[idx].reshape(-1, f)])
            ys = np.concatenate([ys, np.repeat(y[idx], 2 * k)])
        m, s = xs.mean(0), xs.std(0) + 1e-6
        lr = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000, tol=1e-8)
        lr.fit((xs - m) / s, ys)
        w = lr.coef_[0] / s
        return w, lr.intercept_[0] - float(w @ m)

    def score(w, b, idx):
        return (1.0 / (1.0 + np.exp(-(x[idx] @ w + b)))).mean(axis=1)

    folds = []
    for k, (tr, te) in enumerate(train.folds(y, train.SEED)):
        best = None
        for c in grid:
            oof = np.zeros(len(tr))
            for itr, ite in train.folds(y[tr], train.SEED + 1 + k):
                w, b = fit(tr[itr], c)
                oof[ite] = score(w, b, tr[ite])
            auc = roc_auc_score(y[tr], oof)
            if best is None or auc > best[0] + 1e-9:
                best = (auc, c, oof)
        _, c, oof = best
        t = train.best_threshold(y[tr], oof)
        w, b = fit(tr, c)
        s = score(w, b, te)
        folds.append(
            {
                "c": c,
                "threshold": t,
                "accuracy": round(100 * train.accuracy(y[te], s, t), 2),
                "auc": round(float(roc_auc_score(y[te], s)), 4),
            }
        )
    return folds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True, help="head_features output dir (with --augment)")
    ap.add_argument("--out", help="write the figures here as JSON")
    a = ap.parse_args()
    with open(os.path.join(a.features, "index.tsv"), newline="") as f:
        y = np.array([int(r["label"]) for r in csv.DictReader(f, delimiter="\t")])
    n = len(y)
    rows = np.fromfile(os.path.join(a.features, "rows.f32"), dtype="<f4").reshape(n, 2, VIEW)
    aug = np.fromfile(os.path.join(a.features, "augmented.f32"), dtype="<f4").reshape(n, -1, 2, VIEW)
    print(f"{n} crops, {aug.shape[1]} augmented copies each; nested {train.FOLDS}-fold CV, seed {train.SEED}")
    results, base = [], None
    for name, names, use_aug, grid in CONFIGS:
        t0 = time.time()
        folds = run(blocks(rows, names), blocks(aug, names) if use_aug else None, y, use_aug, grid)
        acc = np.array([r["accuracy"] for r in folds])
        auc = np.array([r["auc"] for r in folds])
        base = acc if base is None else base
        diff = acc - base
        print(
            f"  {name:<14} features {blocks(rows[:1], names).shape[-1]:4d}  accuracy "
            f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}  AUC {auc.mean():.4f} ± {auc.std(ddof=1):.4f}  "
            f"per-fold gain over global {diff.mean():+.2f} ± {diff.std(ddof=1):.2f}  "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
        results.append(
            {
                "name": name,
                "features": int(blocks(rows[:1], names).shape[-1]),
                "augmented": bool(use_aug),
                "accuracy": round(float(acc.mean()), 2),
                "accuracy_sd": round(float(acc.std(ddof=1)), 2),
                "auc": round(float(auc.mean()), 4),
                "auc_sd": round(float(auc.std(ddof=1)), 4),
                "gain_over_global": round(float(diff.mean()), 2),
                "gain_sd": round(float(diff.std(ddof=1)), 2),
                "folds": folds,
            }
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"folds": train.FOLDS, "seed": train.SEED, "crops": int(n), "rows": results}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
