"""Reference implementation of recurd's per-stream anomaly score (`--anomaly-scores`).

One `AnomalyScorer` per stream.  At every step t call

    score = scorer.update(value, prediction)

`value` is the stream's reading x_t; `prediction` is the forecast of x_t published at step t-1 (None or
NaN when there was none).  The first step of a stream returns NaN (DESIGN §4: "NaN where there was no
prediction"); every other step returns a score in [0, 1).  Pure Python floats (IEEE double), no numpy.

Per step: O(1) — a handful of compares; once per completed block of B1 (resp. B2) steps, K*W = 64
absolute differences.  State: 3 (range) + 1 (error record) + 2 x 95 (motif memories) + 30 (ring)
+ 2 counters = 226 numbers (see `state_size()`); all of it can be float32 except the counters.

The score (all constants below):
  S_v  value range:  ex = how far x_t lies outside [mn, mx] (the range of the earlier values, shrunk by
                     DEC_R per step toward their running mean), in units of mx - mn.
                     S_v = WV * (1 + ex)  if ex > TOL_R.
  S_r  error record: a = |x_t - p_t|;  S_r = WER * a / Me  if a > Me, Me = the earlier |errors|' maximum,
                     decaying by the factor (1 - DEC_E) per step.
  S_m  motif (two independent memories, block lengths B1 and B2): the last W block means, scaled to
                     the range of all earlier block means, are compared with K prototype patterns; d =
                     mean |difference| to the nearest one (0 while there is none); S_m = WM * decades(d)
                     where decades() is -log10 of d's upper-tail probability under an online
                     peaks-over-threshold (exponential) tail fit; the nearest prototype learns (rate
                     ETA) when d < RHO, otherwise the least-used prototype is replaced by the pattern.
  S   = max(S_v, S_r, S_m1, S_m2) (0 in the first WARM steps);  raw = S / (S + CSQ)
  After scoring, the range, the error record and the block means' range take the value in with
  bounded growth (GROW_*), so that one glitch cannot blind the score afterwards.
  score = raw if raw > every raw of the previous KS steps, else 0   (one alarm per episode).
"""
import math

# ---- the chosen constants ------------------------------------------------------------------
DEC_R = 3e-6       # value range: per-step shrink of [mn, mx] toward the running mean
AMEAN_R = 0.001    # value range: EW rate of that running mean (max(AMEAN_R, 1/(t+1)))
TOL_R = 0.02       # value range: exceedance needed, as a fraction of the range
WV = 5.0           # value range: weight
WER = 2.5          # error record: weight (0 disables the only forecast-dependent part)
DEC_E = 1e-4       # error record: per-step decay factor of the running maximum |error|
B1, B2 = 12, 24    # motif: block lengths (steps) of the two memories
W = 4              # motif: pattern length (blocks)
K = 16             # motif: prototypes per memory
ETA = 0.035        # motif: prototype learning rate
RHO = 0.2          # motif: novelty distance above which a prototype is replaced
UDECAY = 0.999     # motif: per-block decay of usage counts
TAU_M = 0.95       # motif tail: quantile level of the POT threshold u
KAPPA_M = 0.06     # motif tail: threshold step, in units of the running mean distance s
ABETA_M = 0.015    # motif tail: EW rate of the mean excess beta (max(ABETA_M, 1/n_excesses))
AS_M = 0.05        # motif tail: EW rate of s (max(AS_M, 1/(n+1)))
WM = 3.0           # motif: weight
CSQ = 10.0         # raw = S / (S + CSQ)
KS = 30            # suppression window (steps)
WARM = 50          # steps before any score can be > 0
LN10 = math.log(10.0)
# Bounded growth (a sensor's glitch must not blind the score for the rest of the stream): once
# scoring, the range grows by at most GROW_R of itself a step, the error record by at most a factor
# GROW_E, and (after GROW_BLOCKS_AFTER blocks) the block means' range by GROW_BLOCKS of itself a
# block. The step's own score still sees the value as it is.
GROW_R, GROW_E, GROW_BLOCKS, GROW_BLOCKS_AFTER = 1.0, 4.0, 2.0, 200


class _Motif:
    """A tiny online clustering memory of W-block patterns with a POT tail on its novelty distance."""

    def __init__(self, B):
        self.B = B
        self.acc = 0.0; self.cnt = 0            # block accumulation
        self.win = [0.0] * W                    # last W block means
        self.nb = 0                             # blocks seen
        self.blo = 0.0; self.bhi = 0.0          # range of block means seen before the current one
        self.C = [[0.0] * W for _ in range(K)]  # prototypes
        self.used = [0.0] * K
        self.nproto = 0
        self.nm = 0                             # patterns scored
        self.u = 0.0; self.beta = 0.0; self.s = 0.0; self.nexc = 0   # POT tail of the distance

    def step(self, x, t):
        """Feed x_t (t = 0-based step index); returns S_m (> 0 only at a block end)."""
        self.acc += x; self.cnt += 1
        if self.cnt < self.B:
            return 0.0
        v = self.acc / self.B
        self.acc = 0.0; self.cnt = 0
        if self.nb == 0:
            self.blo = self.bhi = v
        self.win = self.win[1:] + [v]
        self.nb += 1
        S = 0.0
        rng = self.bhi - self.blo
        if self.nb >= W and rng > 0.0:
            f = [min(1.5, max(-0.5, (w - self.blo) / rng)) for w in self.win]
            best, bk = 1e9, -1
            for k in range(self.nproto):
                c = self.C[k]
                d = 0.0
                for j in range(W):
                    d += abs(f[j] - c[j])
                d /= W
                if d < best:
                    best, bk = d, k
            if bk < 0:
                best = 0.0
            self.nm += 1
            # score against the tail fitted so far, then update the tail
            if t > WARM and self.nm > 2 * W and self.beta > 0.0 and best > self.u:
                S = WM * (-math.log10(1.0 - TAU_M) + (best - self.u) / self.beta / LN10)
            self.s += (abs(best) - self.s) * max(AS_M, 1.0 / (self.nm + 1))
            if best > self.u:
                self.nexc += 1
                self.beta += ((best - self.u) - self.beta) * max(ABETA_M, 1.0 / self.nexc)
                self.u += KAPPA_M * self.s * TAU_M
            else:
                self.u -= KAPPA_M * self.s * (1.0 - TAU_M)
            # learn
            for k in range(self.nproto):
                self.used[k] *= UDECAY
            if bk >= 0 and best < RHO:
                c = self.C[bk]
                for j in range(W):
                    c[j] += ETA * (f[j] - c[j])
                self.used[bk] += 1.0
            else:
                if self.nproto < K:
                    kk = self.nproto; self.nproto += 1
                else:
                    kk = 0
                    for k in range(1, K):          # first least-used prototype
                        if self.used[k] < self.used[kk]:
                            kk = k
                self.C[kk] = list(f)
                self.used[kk] = 1.0
        if self.nb > GROW_BLOCKS_AFTER and self.bhi > self.blo:
            r = GROW_BLOCKS * (self.bhi - self.blo)
            v = min(max(v, self.blo - r), self.bhi + r)
        self.blo = min(self.blo, v); self.bhi = max(self.bhi, v)
        return S


class AnomalyScorer:
    def __init__(self):
        self.t = 0
        self.mn = self.mx = self.mean = 0.0
        self.Me = 0.0
        self.m1 = _Motif(B1)
        self.m2 = _Motif(B2)
        self.ring = [0.0] * KS; self.rpos = 0
        self.parts = (0.0, 0.0, 0.0)   # last (S_v, S_r, S_m), for debugging / vectors.csv

    @staticmethod
    def state_size():
        motif = K * W + K + W + 2 + 2 + 3 + 4      # protos, usage, window, acc/cnt, lo/hi, counters, tail
        return 3 + 1 + 2 * motif + KS + 2

    def update(self, value, prediction=None):
        x = float(value)
        t = self.t
        S_v = S_r = 0.0
        if t == 0:
            self.mn = self.mx = self.mean = x
        else:
            # error record (needs a prediction)
            if prediction is not None and not math.isnan(prediction):
                a = abs(x - float(prediction))
                if t > WARM and self.Me > 0.0 and a > self.Me:
                    S_r = WER * a / self.Me
                if t > WARM and self.Me > 0.0:
                    a = min(a, GROW_E * self.Me)
                self.Me = max(a, self.Me * (1.0 - DEC_E))
            # value range
            rng = self.mx - self.mn
            if rng > 0.0:
                ex = max(x - self.mx, self.mn - x) / rng
            elif x != self.mx:
                ex = 1.0
            else:
                ex = 0.0
            if ex > TOL_R and t > WARM:
                S_v = WV * (1.0 + ex)
            xc = x
            if t > WARM and rng > 0.0:
                xc = min(max(x, self.mn - GROW_R * rng), self.mx + GROW_R * rng)
            self.mean += (xc - self.mean) * max(AMEAN_R, 1.0 / (t + 1))
            self.mx -= DEC_R * (self.mx - self.mean)
            self.mn -= DEC_R * (self.mn - self.mean)
            self.mx = max(self.mx, xc); self.mn = min(self.mn, xc)
        S_m = max(self.m1.step(x, t), self.m2.step(x, t))
        S = max(S_v, S_r, S_m)
        raw = S / (S + CSQ)
        score = raw if raw > max(self.ring) else 0.0
        self.ring[self.rpos] = raw; self.rpos = (self.rpos + 1) % KS
        self.parts = (S_v, S_r, S_m)
        self.t = t + 1
        return float("nan") if t == 0 else score


if __name__ == "__main__":
    # tiny demo: python anomaly_ref.py FILE.csv  (column 'value'; persistence forecasts)
    import csv, sys
    sc = AnomalyScorer(); prev = None
    with open(sys.argv[1]) as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            x = float(row["value"])
            s = sc.update(x, prev)
            if s > 0.5:
                print(i, row.get("timestamp", ""), x, round(s, 4))
            prev = x
