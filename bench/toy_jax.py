"""The seed's model in JAX + optax: a jitted Adam step called 100 times, and
(the fastest way to write it) all 100 steps in one jitted `lax.scan`.
Usage: python toy_jax.py --reps 20   (threads: set XLA_FLAGS, see run.sh)
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import optax

from toy_data import seed_data, summary

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=20)
args = p.parse_args()
x_v, x_t, c = seed_data()
xv, xt = jnp.asarray(x_v).reshape(-1, 1), jnp.asarray(x_t).reshape(-1, 1)
xz = jnp.concatenate([xv, xt], axis=1)
y = jax.nn.one_hot(c, 2)
keys = jax.random.split(jax.random.PRNGKey(41), 4)
glorot = jax.nn.initializers.glorot_uniform()
params = {
    "wv": glorot(keys[0], (1, 1)), "bv": jnp.zeros(1),
    "wt": glorot(keys[1], (1, 1)), "bt": jnp.zeros(1),
    "wz": glorot(keys[2], (2, 1)), "bz": jnp.zeros(1),
    "wo": glorot(keys[3], (1, 2)), "bo": jnp.zeros(2),
}
opt = optax.adam(0.1, eps=1e-8)


def loss_fn(p):
    h_v = jnp.tanh(xv @ p["wv"] + p["bv"])
    h_t = jnp.tanh(xt @ p["wt"] + p["bt"])
    z = jax.nn.sigmoid(xz @ p["wz"] + p["bz"])
    logits = (z * h_v + (1 - z) * h_t) @ p["wo"] + p["bo"]
    return optax.sigmoid_binary_cross_entropy(logits, y).mean()


@jax.jit
def step(p, s):
    loss, g = jax.value_and_grad(loss_fn)(p)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss


@jax.jit
def hundred(p, s):
    def body(carry, _):
        p, s, loss = step(*carry)
        return (p, s), loss
    (p, s), losses = jax.lax.scan(body, (p, s), None, length=100)
    return p, losses


def timed(run):
    times = []
    for _ in range(args.reps + 2):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times[2:]


def loop():
    p, s = params, opt.init(params)
    for _ in range(100):
        p, s, loss = step(p, s)
    loss.block_until_ready()


def scan():
    p, losses = hundred(params, opt.init(params))
    losses.block_until_ready()


print(json.dumps(summary("jax jit step loop 100 steps", timed(loop))), flush=True)
print(json.dumps(summary("jax jit lax.scan 100 steps", timed(scan))), flush=True)
