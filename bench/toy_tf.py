"""The seed post's TensorFlow model, timed two ways.

tf1: the post's own code path (tf.compat.v1 graph, one `sess.run` per Adam step),
     100 full-batch steps, and the 1000x1000 mesh in one `sess.run`.
tf.function: the same model in TF2 style, one compiled step called 100 times.
Prints one JSON line per measurement. Usage: python toy_tf.py --reps 20 --threads 1
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

from toy_data import mesh, seed_data, summary

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=20)
p.add_argument("--threads", type=int, default=1, help="intra/inter-op threads for training (mesh uses --mesh-threads)")
p.add_argument("--mesh-threads", type=int, default=2)
args = p.parse_args()
x_v, x_t, c = seed_data()
vs, ts = mesh(x_v, x_t)


def tf1(threads, mesh_run):
    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    tf.compat.v1.set_random_seed(41)
    visual = tf.compat.v1.placeholder(tf.float32, shape=[None])
    textual = tf.compat.v1.placeholder(tf.float32, shape=[None])
    target = tf.compat.v1.placeholder(tf.int32, shape=[None])
    v1 = tf.compat.v1
    counter = iter(range(100))

    def dense(x, units, activation=None):
        # What tf.layers.dense builds (Keras 3 dropped it): glorot kernel, zero bias, matmul + bias_add.
        with v1.variable_scope(f"dense_{next(counter)}"):
            kernel = v1.get_variable("kernel", [x.shape[-1], units], initializer=v1.glorot_uniform_initializer())
            bias = v1.get_variable("bias", [units], initializer=v1.zeros_initializer())
            y = tf.nn.bias_add(tf.matmul(x, kernel), bias)
            return activation(y) if activation else y

    h_v = dense(tf.reshape(visual, [-1, 1]), 1, activation=tf.nn.tanh)
    h_t = dense(tf.reshape(textual, [-1, 1]), 1, activation=tf.nn.tanh)
    z = dense(tf.stack([visual, textual], axis=1), 1, activation=tf.nn.sigmoid)
    h = z * h_v + (1 - z) * h_t
    logits = dense(h, 2)
    prob = tf.nn.sigmoid(logits)
    loss = tf.compat.v1.losses.sigmoid_cross_entropy(multi_class_labels=tf.one_hot(target, depth=2), logits=logits)
    train_op = tf.compat.v1.train.AdamOptimizer(learning_rate=0.1).minimize(loss)
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    sess = tf.compat.v1.Session(config=config)
    out = []
    if not mesh_run:
        times = []
        for _ in range(args.reps + 2):
            sess.run(tf.compat.v1.global_variables_initializer())
            start = time.perf_counter()
            for _ in range(100):
                _, l = sess.run([train_op, loss], {visual: x_v, textual: x_t, target: c})
            times.append(time.perf_counter() - start)
        out.append(summary("tf1 sess.run loop 100 steps", times[2:]))
    else:
        sess.run(tf.compat.v1.global_variables_initializer())
        times = []
        for _ in range(min(args.reps, 10) + 1):
            start = time.perf_counter()
            sess.run([z, prob], {visual: vs, textual: ts})
            times.append(time.perf_counter() - start)
        out.append(summary("tf1 mesh 1000x1000 score", times[1:]))
    return out


for line in tf1(args.threads, False) + tf1(args.mesh_threads, True):
    print(json.dumps(line), flush=True)
