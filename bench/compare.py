"""Runs gmu's toy benchmark and the reference implementations side by side and
prints one table with ratios. Usage (from the repository root):

    bench/run.sh            # sets up bench/.venv, then runs this
    python bench/compare.py --reps 20

Training runs on one thread everywhere; the mesh is scored on all cores
(2 here) by both gmu and TensorFlow. Results go to bench/results/toy.json.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def lines(cmd, env=None):
    merged = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, cwd=ROOT, env=merged, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--skip-ndarray", action="store_true", help="skip the burn ndarray build (a second full build)")
    args = p.parse_args()
    py = sys.executable
    one_thread = {"OMP_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
    results = []
    results += lines(["cargo", "bench", "--quiet", "--bench", "toy", "--", "--reps", str(args.reps)])
    if not args.skip_ndarray:
        results += lines(
            ["cargo", "bench", "--quiet", "--no-default-features", "--features", "ndarray", "--bench", "toy", "--", "--reps", str(args.reps), "--only", "gmu-burn"],
            {"CARGO_TARGET_DIR": os.path.join(ROOT, "target", "ndarray")},
        )
    results += lines([py, os.path.join(HERE, "toy_tf.py"), "--reps", str(args.reps), "--threads", "1", "--mesh-threads", "2"], one_thread)
    results += lines([py, os.path.join(HERE, "toy_tf2.py"), "--reps", str(args.reps), "--threads", "1"], one_thread)
    results += lines([py, os.path.join(HERE, "toy_jax.py"), "--reps", str(args.reps)], one_thread)

    by = {r["impl"]: r for r in results}
    base_train = by["gmu-native 100 steps"]["median_ms"]
    base_mesh = by["gmu-native mesh 1000x1000 score"]["median_ms"]
    print(f"{'implementation':<38} {'median ms':>10} {'IQR ms':>16} {'x slower than gmu':>18}")
    for r in results:
        if "median_ms" not in r:
            # a value, not a timing (the native engine's loss, beside the dense engine's line)
            print(f"{r['impl']:<38} " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "impl"))
            continue
        base = base_mesh if "mesh" in r["impl"] else base_train
        ratio = "" if "build inputs" in r["impl"] else f"{r['median_ms'] / base:.1f}"
        print(f"{r['impl']:<38} {r['median_ms']:>10.2f} {r['q1_ms']:>7.2f} - {r['q3_ms']:<7.2f} {ratio:>18}")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "toy.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
