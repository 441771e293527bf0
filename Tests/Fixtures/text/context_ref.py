"""Independent reference of recurd's text context model (Sources/RecurdForecast/TextContextModel.swift).

Written from this description, not from the Swift code's structure:

- Counts of the bytes that followed each context of the last k bytes, k = 0..8: order 0 a dense
  table of 256 counts, order 1 a dense 256 x 256 table (u16; a count reaching 65535 halves its row,
  rounding up), orders 2..8 in a hash table of `buckets` buckets of 14 (symbol, u8 count) slots
  (a count reaching 255 halves the bucket, rounding up; a new symbol in a full bucket replaces
  the least counted, the first of equals). A context's pair of buckets is 2 * (hash mod buckets/2)
  and the next one; a new context takes the one with the smaller total count (the first of equals)
  and empties it.
- Prediction: starting from the uniform distribution, each order in turn (0, 1, 2, ...; a context
  with no bucket or no counts is skipped) gives p(s) = (max(c(s) - 0.75, 0) + (0.5 + 0.75 u) p'(s)) /
  (n + 0.5), where p' is the distribution so far, n the context's total count and u its distinct
  symbols (hierarchical Pitman-Yor smoothing).
- The published distribution is w p + (1 - w) q, q the network's, w = sigmoid(L); after each byte
  L += ln p(byte) - ln q(byte), clamped to [-8, 8].
- Learning a byte: the longest context counted is one longer than the longest context (from order
  2 up, contiguous) that already has a bucket, at most 8 and at most the bytes seen. From it down,
  each context counts the byte; counting stops after the first context that already knew it
  (update exclusion); orders 1 and 0 likewise.
"""
import math

ORDERS, D, A, SLOTS, MAX_LOG_ODDS = 8, 0.75, 0.5, 14, 8.0
M64 = (1 << 64) - 1


def context_hash(history, k):
    mask = M64 if k >= 8 else (1 << (8 * k)) - 1
    z = ((history & mask) + k * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def smooth(counts, lower):
    """Pitman-Yor blend of a context's counts {symbol: count} over the distribution `lower`."""
    n = sum(counts.values())
    if n == 0:
        return lower
    u = sum(1 for c in counts.values() if c > 0)
    out = [(A + D * u) * p / (n + A) for p in lower]
    for s, c in counts.items():
        if c > 0:
            out[s] += (c - D) / (n + A)
    return out


class ContextModel:
    def __init__(self, buckets):
        self.n = buckets
        self.check = [0] * buckets
        self.slots = [[] for _ in range(buckets)]  # [symbol, count] pairs, at most SLOTS, in slot order
        self.order0 = [0] * 256
        self.order1 = [[0] * 256 for _ in range(256)]
        self.history = 0
        self.seen = 0
        self.log_odds = 0.0

    # hashed contexts
    def _pair_check(self, h):
        return 2 * (h % (self.n // 2)), ((h >> 32) & 0xFFFFFFFF) | 1

    def _find(self, k):
        i, c = self._pair_check(context_hash(self.history, k))
        for j in (i, i + 1):
            if self.check[j] == c:
                return j
        return None

    def _claim(self, k):
        j = self._find(k)
        if j is not None:
            return j
        i, c = self._pair_check(context_hash(self.history, k))
        total = lambda j: sum(cnt for _, cnt in self.slots[j])
        v = i if total(i) <= total(i + 1) else i + 1
        self.check[v] = c
        self.slots[v] = []
        return v

    def _bucket_counts(self, j):
        out = {}
        for s, c in self.slots[j]:
            if c > 0:
                out[s] = c
        return out

    def _count_in_bucket(self, j, symbol):
        """Counts symbol in bucket j; returns whether it was there."""
        slots = self.slots[j]
        live = [(i, sc) for i, sc in enumerate(slots) if sc[1] > 0]
        hit = next((sc for _, sc in live if sc[0] == symbol), None)
        if hit is None:
            empty = next((sc for sc in slots if sc[1] == 0), None)
            if empty is None and len(slots) < SLOTS:
                empty = [symbol, 0]
                slots.append(empty)
            if empty is None:
                empty = min(slots, key=lambda sc: sc[1])  # the first of equals
            empty[0], empty[1] = symbol, 0
            hit = empty
        known = hit[1] > 0
        hit[1] += 1
        if hit[1] == 255:
            for sc in slots:
                sc[1] = (sc[1] + 1) // 2
        return known

    def _levels(self):
        """The counts of each order that predicts, shortest first."""
        levels = [{s: c for s, c in enumerate(self.order0) if c > 0}]
        if self.seen >= 1:
            levels.append({s: c for s, c in enumerate(self.order1[self.history & 0xFF]) if c > 0})
        for k in range(2, ORDERS + 1):
            if k > self.seen:
                break
            j = self._find(k)
            if j is not None:
                levels.append(self._bucket_counts(j))
        return levels

    def counts_distribution(self):
        p = [1.0 / 256] * 256
        for counts in self._levels():
            p = smooth(counts, p)
        return p

    def weight(self):
        return 1.0 / (1.0 + math.exp(-self.log_odds))

    def distribution(self, base):
        p = self.counts_distribution()
        w = self.weight()
        mixed = [w * a + (1 - w) * b for a, b in zip(p, base)]
        total = sum(mixed)
        return [v / total for v in mixed]

    def observe(self, symbol, p_base):
        p_base = max(p_base, 1e-30)
        p = self.counts_distribution()[symbol]
        w = self.weight()
        published = w * p + (1 - w) * p_base
        self.log_odds = min(max(self.log_odds + math.log(p) - math.log(p_base), -MAX_LOG_ODDS), MAX_LOG_ODDS)
        self.learn(symbol)
        return published

    def learn(self, symbol):
        longest = min(ORDERS, self.seen)
        top = min(1, longest)
        while top < longest and self._find(top + 1) is not None:
            top += 1
        top = min(top + 1, longest)
        known = False
        for k in range(top, 1, -1):
            known = self._count_in_bucket(self._claim(k), symbol)
            if known:
                break
        if not known and self.seen >= 1:
            row = self.order1[self.history & 0xFF]
            known = row[symbol] > 0
            row[symbol] += 1
            if row[symbol] == 65535:
                for s in range(256):
                    row[s] = (row[s] + 1) // 2
        if not known:
            self.order0[symbol] += 1
        self.history = ((self.history << 8) | symbol) & M64
        self.seen += 1
