"""Writes context_vectors.csv: recurd's text context model, run by context_ref.py, over a text.

The base (network) distribution at step t is softmax(l) with l[s] = sin(0.37 s + 0.011 t) * 2, so the
Swift test can compute the same base without the network. Each row: step, byte, the published
probability of the byte before it came (observe), the same from the full distribution, and the
mixture weight after it. 64 buckets: collisions, replacements and (with the run of 'a's) halving
are all exercised, and the repeats and the ring of 512 bytes wrapping exercise the match model.

    python3 Tests/Fixtures/text/generate.py
"""
import math, os
from context_ref import ContextModel

HERE = os.path.dirname(os.path.abspath(__file__))


def base(t):
    l = [math.sin(0.37 * s + 0.011 * t) * 2 for s in range(256)]
    top = max(l)
    e = [math.exp(v - top) for v in l]
    z = sum(e)
    return [v / z for v in e]


def text():
    verse = ("Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
             "Rough winds do shake the darling buds of May, And summer's lease hath all too short a date.\n")
    return (verse * 3 + "a" * 600 + verse + "".join(chr(32 + (i * 7919) % 90) for i in range(300))).encode()


def main():
    data = text()
    m = ContextModel(64)
    rows = ["step,byte,observed,distribution,weight"]
    for t, b in enumerate(data):
        if t == 0:
            m.learn(b)
            rows.append(f"{t},{b},nan,nan,{m.weight():.17g}")
            continue
        q = base(t - 1)  # the distribution published after step t-1, for step t's byte
        d = m.distribution(q)[b]
        p = m.observe(b, q)
        rows.append(f"{t},{b},{p:.17g},{d:.17g},{m.weight():.17g}")
    with open(os.path.join(HERE, "context_vectors.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(data)} steps")


if __name__ == "__main__":
    main()
