#!/usr/bin/env python3
"""The textbook Keras sequence classifier, served step by step by recurd.

    LSTM(128, return_sequences=True) → LSTM(64) → Dense(10, softmax)

1. makes a small sequence task (which of 10 frequencies does a noisy wave have?),
2. builds and trains the model for a few epochs with Keras 3,
3. exports it with `python -m recurd.export` (model.safetensors),
4. starts `recurd serve --model model.safetensors --no-learn --no-normalize`,
5. publishes a few test sequences one step per message with recurd's Python client, and
6. checks that the prediction streamed at step t equals Keras' prediction on the prefix x_1..x_t.

It prints the largest difference and exits non-zero if it is above 2e-5.

    KERAS_BACKEND=torch python keras_seed.py --recurd /path/to/recurd      (or RECURD_BIN=…)

Needs: keras (3), a Keras backend (torch, jax or tensorflow), numpy, pyzmq, and the recurd package
(pip install -e Clients/python).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

TOLERANCE = 2e-5
CLASSES, STEPS, FEATURES = 10, 24, 2


def make_task(n, rng):
    """Sequences of STEPS steps: a sine of one of 10 frequencies with a random phase, amplitude
    and noise; features (value, change since the last step). Label: the frequency's index."""
    labels = rng.integers(0, CLASSES, n)
    t = np.arange(STEPS)
    freq = 0.03 + 0.025 * labels[:, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    amp = rng.uniform(0.5, 1.5, (n, 1))
    v = amp * np.sin(2 * np.pi * freq * t + phase) + rng.normal(0, 0.1, (n, STEPS))
    dv = np.diff(v, axis=1, prepend=v[:, :1])
    return np.stack([v, dv], axis=-1).astype(np.float32), labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recurd", default=os.environ.get("RECURD_BIN"), help="the recurd binary (default $RECURD_BIN, else recurd on PATH)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=1200, help="training sequences")
    ap.add_argument("--streams", type=int, default=4, help="test sequences to stream")
    ap.add_argument("--workdir", default=None, help="where to write and keep model.keras and model.safetensors (default: a temporary folder, removed at the end)")
    args = ap.parse_args()

    try:
        import keras
    except ImportError:
        sys.exit("Error: keras is not installed: pip install keras torch (any Keras 3 backend works; torch is the default)")
    try:
        from recurd.serve import Serve, find_binary
    except ImportError:
        sys.exit("Error: the recurd Python package is not installed: pip install ./Clients/python (from the recurd checkout)")
    try:
        binary = find_binary(args.recurd)
    except FileNotFoundError as e:
        sys.exit(f"Error: {e}")
    if args.workdir:
        work = args.workdir
        os.makedirs(work, exist_ok=True)
    else:  # removed at exit
        scratch = tempfile.TemporaryDirectory(prefix="keras-seed-")
        work = scratch.name
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    # 1–2. The task and the textbook model.
    x_train, y_train = make_task(args.train, rng)
    x_test, y_test = make_task(200, rng)
    model = keras.Sequential([
        keras.Input((None, FEATURES)),
        keras.layers.LSTM(128, return_sequences=True),
        keras.layers.LSTM(64),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=2)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained {args.epochs} epochs in {time.time() - t0:.0f} s; test accuracy on whole sequences {acc:.2f}")
    keras_path = os.path.join(work, "model.keras")
    model.save(keras_path)

    # 3. Export (the converter runs Keras on a random sequence and checks its own work too).
    recurd_path = os.path.join(work, "model.safetensors")
    subprocess.run([sys.executable, "-m", "recurd.export", "--from", "keras", keras_path, "-o", recurd_path], check=True)

    # 4–5. Serve it and stream test sequences, one step per message, interleaved.
    streams = {f"seq-{i}": x_test[i] for i in range(args.streams)}
    got = {k: np.zeros((STEPS, CLASSES), np.float32) for k in streams}
    with Serve(binary, model=recurd_path, args=["--no-learn", "--no-normalize"]) as daemon:
        pub, sub, ctl = daemon.connect(probe={"x": np.zeros(FEATURES, np.float32)})
        for t in range(STEPS):
            for key, x in streams.items():
                pub.send(key, x[t])
        for _ in range(STEPS * len(streams)):
            p = sub.recv(timeout=10)
            if p is None:
                sys.exit(f"no prediction within 10 s; daemon log:\n{daemon.log}")
            got[p.key][p.seq:p.seq + p.steps] = p.y
        stats = ctl.stats()
        for c in (pub, sub, ctl):
            c.close()
    print(f"daemon: {stats['messages']} messages, {stats['predictions']} predictions, {stats['rejected_total']} rejected")

    # 6. Keras on every prefix.
    worst = 0.0
    for i, (key, x) in enumerate(streams.items()):
        prefixes = np.array([keras.ops.convert_to_numpy(model(x[None, :t + 1], training=False))[0] for t in range(STEPS)])
        diff = float(np.max(np.abs(prefixes - got[key])))
        worst = max(worst, diff)
        guess = got[key][-1].argmax()
        trail = " ".join(str(int(a)) for a in got[key][::4].argmax(axis=1))
        print(f"{key}: label {y_test[i]}, streamed class at steps 1,5,9,…: {trail} → final {guess} (p={got[key][-1].max():.2f}); "
              f"max |recurd − keras| = {diff:.2e}")
    print(f"max difference between the streamed predictions and Keras on the prefixes: {worst:.3g} (tolerance {TOLERANCE:g})")
    if not worst <= TOLERANCE:
        print("FAIL", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
