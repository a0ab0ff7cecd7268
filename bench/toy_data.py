"""The seed post's synthetic data (numpy seed 41), shared by the reference scripts."""
import numpy as np


def seed_data(n=400, seed=41):
    rng = np.random.RandomState(seed)
    c = rng.binomial(n=1, p=0.5, size=n)
    m = rng.binomial(n=1, p=0.5, size=n)
    y_v = rng.randn(n) + np.where(c == 0, 1.0, 8.0)
    y_t = rng.randn(n) + np.where(c == 0, 13.0, 19.0)
    y_v_noise = rng.randn(n) + 17.0
    y_t_noise = rng.randn(n) + 10.0
    x_v = m * y_v + (1 - m) * y_v_noise
    x_t = m * y_t_noise + (1 - m) * y_t
    x_v = (x_v - x_v.mean()).astype(np.float32)
    x_t = (x_t - x_t.mean()).astype(np.float32)
    return x_v, x_t, c.astype(np.int32)


def mesh(x_v, x_t, resolution=1000):
    vs = np.linspace(x_v.min(), x_v.max(), resolution)
    ts = np.linspace(x_t.min(), x_t.max(), resolution)
    vs, ts = np.meshgrid(vs, ts)
    return np.ravel(vs).astype(np.float32), np.ravel(ts).astype(np.float32)


def summary(name, times_s):
    t = sorted(x * 1e3 for x in times_s)
    q = lambda p: t[round((len(t) - 1) * p)]
    return {"impl": name, "median_ms": round(q(0.5), 3), "q1_ms": round(q(0.25), 3), "q3_ms": round(q(0.75), 3), "reps": len(t)}
