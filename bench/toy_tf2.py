"""The seed's model in TF2 style: one `tf.function` Adam step, called 100 times.
Usage: python toy_tf2.py --reps 20 --threads 1
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

from toy_data import seed_data, summary

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=20)
p.add_argument("--threads", type=int, default=1)
args = p.parse_args()
tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)
x_v, x_t, c = seed_data()
xv = tf.constant(x_v.reshape(-1, 1))
xt = tf.constant(x_t.reshape(-1, 1))
xz = tf.constant(tf.concat([xv, xt], axis=1))
y = tf.one_hot(c, 2)
glorot = tf.keras.initializers.GlorotUniform(seed=41)
shapes = {"wv": [1, 1], "wt": [1, 1], "wz": [2, 1], "wo": [1, 2]}
params = {k: tf.Variable(glorot(s)) for k, s in shapes.items()}
params.update({"bv": tf.Variable(tf.zeros([1])), "bt": tf.Variable(tf.zeros([1])), "bz": tf.Variable(tf.zeros([1])), "bo": tf.Variable(tf.zeros([2]))})
opt = tf.keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8)
variables = list(params.values())


@tf.function
def step():
    with tf.GradientTape() as tape:
        p = params
        h_v = tf.tanh(xv @ p["wv"] + p["bv"])
        h_t = tf.tanh(xt @ p["wt"] + p["bt"])
        z = tf.sigmoid(xz @ p["wz"] + p["bz"])
        logits = (z * h_v + (1 - z) * h_t) @ p["wo"] + p["bo"]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss


times = []
for _ in range(args.reps + 2):
    start = time.perf_counter()
    for _ in range(100):
        loss = step()
    loss.numpy()
    times.append(time.perf_counter() - start)
print(json.dumps(summary("tf.function loop 100 steps", times[2:])), flush=True)
