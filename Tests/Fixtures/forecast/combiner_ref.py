"""Reference implementation of recurd's per-stream forecast combiner (DESIGN §3.7 (b)).

One `Combiner` per stream (and per feature).  At every step t call

    published = comb.step(x_t, net_forecast)

with the stream's reading x_t and the network's forecast of x_{t+1} (made after consuming x_t, in the
stream's units; pass None if the stream has no network forecast — construct with network=False then).
It returns the published forecast of x_{t+1}.  The progressive loss of step t+1 is then the loss of
`published` against x_{t+1}.  Pure Python floats, no dependencies.

Structure
  Experts (each forecasts x_{t+1} from x_0..x_t):
    0 persistence x_t            1 running mean            2-4 EWMA, rates 0.5 / 0.1 / 0.02
    5 RLS-AR(8) with intercept on differences (scaled by a running mean |difference|), forgetting 0.999
    6 persistence + drift (EWMA .02 of differences)        7 slow EWMA, rate 0.005
    8 spike-robust persistence  L + clip(x_t - L, ±3 s)   (L, s: EWMA .02 level and mean |deviation|)
    9 the network (optional)
  Level 1: discounted Hedge over the experts on squared errors divided by s_t (EW mean, rate
           max(0.01, 1/t), of persistence's squared error), each step's loss capped at CLIP1:
           L_i <- GAMMA1 L_i + min(CLIP1, e_i^2 / s_t);  w_i ∝ exp(-ETA1 (L_i - min L)).
  Level 2: the same, uncapped and slow (GAMMA2, ETA2), over {level-1 mix, persistence, running
           mean}, starting from weights (0.25, 0.5, 0.25) (a fresh stream publishes ~persistence);
           this is the safety net that keeps the published forecast close to the better baseline
           whenever the mix loses to it over the long run.
  published = level-2 weighted average.
  Outlier gate (a lone sensor glitch such as 1e9 or -9999 must not poison the experts and the
  loss scale for thousands of steps): after WARMUP steps, a value farther than OUT_K running mean
  |differences| from the last value the experts saw, and no nearer the spike-robust level L than
  LEVEL_SHARE of that distance, is held back: nothing learns from it, and the forecast published
  is the previous one, or x when most of this stream's far values were confirmed (discounted
  counts, prior 1/2, so a stream's first far value publishes the previous forecast). The next
  value confirms it (a level shift or a burst) when it is also far from the value before the held
  one: then the held value is replayed first, exactly as if it had not been held. Otherwise it
  was a lone outlier and is never seen. Persistence's squared error is capped at HUBER times the
  (floored) scale before it updates the scale, so that a run of glitches accepted as a shift
  cannot inflate it for thousands of steps.
Cost per step: ~2 d^2 = 160 multiply-adds for the RLS (d = 9), 13 exp(), ~60 other flops.
State: RLS 81 + 9 + 8 + 4, other experts 7, level 1 2x10, level 2 3x3, pending forecasts 13, 2 scalars,
the gate 6 ~ 161 numbers.  A missing network forecast (None / NaN) counts as persistence.
"""
import math

ETA1, GAMMA1, CLIP1 = 0.25, 0.98, 16.0
ETA2, GAMMA2, PRIOR = 1.0, 0.9995, 0.5
A_SC = 0.01
AR_ORDER, AR_LAM, AR_DELTA, AR_PCAP, AR_CLIP = 8, 0.999, 10.0, 1e3, 5.0
ROBUST_C, ROBUST_A = 3.0, 0.02
# the outlier gate (chosen on the 58 NAB series with glitches injected: Benchmarks/forecast.py --glitch)
OUT_K, LEVEL_SHARE, WARMUP, CONFIRM_DISCOUNT, HUBER = 40.0, 0.5, 10, 0.9, 1000.0


# level 2's per-step loss is capped only so that no loss becomes infinite (it never binds on
# real data); the scale's floor, relative to x and absolute
CLIP2 = 1e6
SCALE_FLOOR_REL, SCALE_FLOOR_ABS = 1e-12, 1e-30


class _Hedge:
    def __init__(self, m, eta, gamma, clip, w0=None):
        self.eta, self.gamma, self.clip = eta, gamma, clip
        self.w = list(w0) if w0 else [1.0 / m] * m
        self.L0 = [-math.log(v) / eta for v in self.w] if w0 else [0.0] * m
        self.L = [0.0] * m

    def mix(self, f):
        return sum(wi * fi for wi, fi in zip(self.w, f))

    def learn(self, x, f, s):
        g = self.gamma
        for i in range(len(f)):
            self.L[i] = g * self.L[i] + min(self.clip, (x - f[i]) ** 2 / s)
        v = [a + b for a, b in zip(self.L, self.L0)]
        vm = min(v)
        e = [math.exp(-self.eta * (vi - vm)) for vi in v]
        tot = sum(e)
        self.w = [ei / tot for ei in e]


class Combiner:
    def __init__(self, network=True):
        self.network = network
        self.m = 9 + (1 if network else 0)
        self.t = 0
        self.h1 = _Hedge(self.m, ETA1, GAMMA1, CLIP1)
        self.h2 = _Hedge(3, ETA2, GAMMA2, CLIP2, [(1 - PRIOR) / 2, PRIOR, (1 - PRIOR) / 2])
        self.sc = 0.0
        self.f = None          # expert forecasts of the coming value
        self.g = None          # level-2 inputs for the coming value
        # expert state
        self.prev = 0.0; self.sum = 0.0
        self.e5 = self.e1 = self.e02 = self.e005 = 0.0
        self.dr = 0.0
        d = AR_ORDER + 1
        self.w = [0.0] * d
        self.P = [[AR_DELTA if i == j else 0.0 for j in range(d)] for i in range(d)]
        self.hist = [0.0] * AR_ORDER
        self.dsc = 0.0; self.dcnt = 0
        self.lvl = 0.0; self.dev = 0.0
        # the gate: a value held back, the last value seen before it, the network's forecast made
        # with it; discounted counts of far values and of confirmed ones
        self.held = False; self.hx = 0.0; self.hprev = 0.0; self.hnet = None
        self.far = 0.0; self.confirmed = 0.0

    # ------------------------------------------------------------------------------------------
    def step(self, x, net_forecast=None):
        x = float(x)
        kind = self._gate(x)
        if kind == "hold":
            self.hnet = net_forecast
            # the previous forecast, or x when this stream's far values have mostly lasted
            return x if (self.confirmed + 1) / (self.far + 2) > 0.5 else self.h2.mix(self.g)
        if kind == "confirm":
            self._process(self.hx, self.hnet)
        return self._process(x, net_forecast)

    def _gate(self, x):
        """'hold' x back, 'confirm' the value held back (replay it, then x), or 'pass'."""
        limit = OUT_K * self.dsc
        if self.held:
            self.held = False
            if abs(x - self.hprev) > limit:
                self.confirmed += 1
                return "confirm"
        if self.t < WARMUP or self.dsc <= 0 or abs(x - self.prev) <= limit \
                or abs(x - self.lvl) <= LEVEL_SHARE * abs(x - self.prev):
            return "pass"
        self.far = CONFIRM_DISCOUNT * self.far + 1
        self.confirmed *= CONFIRM_DISCOUNT
        self.held, self.hx, self.hprev = True, x, self.prev
        return "hold"

    def _process(self, x, net_forecast):
        t = self.t
        if t >= 1:
            # losses of the forecasts made for x (persistence's squared error sets the scale)
            e0 = (x - self.f[0]) ** 2
            if t >= WARMUP:
                e0 = min(e0, HUBER * max(self.sc, SCALE_FLOOR_REL * x * x, SCALE_FLOOR_ABS))
            self.sc += (e0 - self.sc) * max(A_SC, 1.0 / t)
            # floored at float32's resolution of x (and 1e-30): after a long constant run the
            # running MSE decays towards 0, and every tiny error would look enormous
            s = max(self.sc, SCALE_FLOOR_REL * x * x, SCALE_FLOOR_ABS)
            self.h1.learn(x, self.f, s)
            self.h2.learn(x, self.g, s)
        f = self._experts(x, t)
        if self.network:
            f.append(x if net_forecast is None or math.isnan(net_forecast) else float(net_forecast))
        mix = self.h1.mix(f)
        self.f = f
        self.g = [mix, f[0], f[1]]
        self.t = t + 1
        return self.h2.mix(self.g)

    # ------------------------------------------------------------------------------------------
    def _experts(self, x, t):
        """update with x = x_t, return the 9 forecasts of x_{t+1}"""
        if t == 0:
            self.e5 = self.e1 = self.e02 = self.e005 = self.lvl = x
        self.sum += x
        self.e5 += 0.5 * (x - self.e5); self.e1 += 0.1 * (x - self.e1); self.e02 += 0.02 * (x - self.e02)
        self.e005 += 0.005 * (x - self.e005)
        ar = x
        if t >= 1:
            dd = x - self.prev
            self.dr += 0.02 * (dd - self.dr)
            self.dcnt += 1
            self.dsc += (abs(dd) - self.dsc) / min(self.dcnt, 1000)
            sca = self.dsc if self.dsc > 0 else 1.0
            # the gate's bound on a difference the regression sees (a confirmed jump)
            ar = x + self._rls(max(-OUT_K, min(OUT_K, dd / sca))) * sca
        # spike-robust persistence: forecast from the state before x, then update the state
        dev = x - self.lvl
        if self.dev > 0:
            dev = max(-ROBUST_C * self.dev, min(ROBUST_C * self.dev, dev))
            rob = self.lvl + dev
        else:
            rob = x
        self.dev += ROBUST_A * (abs(x - self.lvl) - self.dev)
        self.lvl += ROBUST_A * (x - self.lvl)
        self.prev = x
        return [x, self.sum / (t + 1), self.e5, self.e1, self.e02, ar, x + self.dr, self.e005, rob]

    def _rls(self, y):
        d = AR_ORDER + 1
        P, w = self.P, self.w
        phi = [1.0] + self.hist
        Pphi = [sum(P[i][j] * phi[j] for j in range(d)) for i in range(d)]
        den = AR_LAM + sum(phi[i] * Pphi[i] for i in range(d))
        g = [v / den for v in Pphi]
        err = y - sum(w[i] * phi[i] for i in range(d))
        for i in range(d):
            w[i] += g[i] * err
        for i in range(d):
            Pi = P[i]
            for j in range(d):
                Pi[j] = (Pi[j] - g[i] * Pphi[j]) / AR_LAM
        tr = sum(P[i][i] for i in range(d))
        if tr > AR_PCAP * d:
            k = AR_PCAP * d / tr
            for i in range(d):
                for j in range(d):
                    P[i][j] *= k
        self.hist = [y] + self.hist[:-1]
        pr = w[0] + sum(w[k + 1] * self.hist[k] for k in range(AR_ORDER))
        return max(-AR_CLIP, min(AR_CLIP, pr))


if __name__ == "__main__":
    import csv, sys
    xs = [float(r["value"]) for r in csv.DictReader(open(sys.argv[1]))]
    c = Combiner(network=False); p = None; se = sp = 0.0; h = len(xs) // 2
    for t, x in enumerate(xs):
        if t >= h and p is not None:
            se += (x - p) ** 2; sp += (x - xs[t - 1]) ** 2
        p = c.step(x)
    print("second-half MSE / persistence MSE = %.4f" % (se / sp))
