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
- Match model: every byte goes to a ring of 8 * buckets past bytes (positions count from 0 and
  never restart). A match is an earlier ring position whose byte is predicted next, with a length.
  After a byte is written: a match whose predicted byte was the byte grows by one (at most 65535)
  and moves on one position, else it ends. Once 6 bytes have been seen since the last reset, the
  6-byte context's hash picks a slot of a table of 2 * buckets entries, each the low 32 bits of
  the ring position just after an earlier occurrence (0: none); with no match, that position is
  followed if it is still in the ring, and at least 6 (counting at most 32) of the bytes before it
  equal the bytes before the present position (that count is the match length). The slot then
  records the present position (unless its low 32 bits are 0). A reset ends the match.
- With a match, the published distribution is the mixture above with the predicted byte set to
  c and every other byte scaled by (1 - c) / (1 - q), q the mixture's probability of the
  predicted byte. c is read from a table of 16 length classes (lengths 6..11 one each, then one
  per doubling of length - 11, the last from 523) x 33 cells; cell j stands for log-odds j/2 - 8,
  holds sigmoid(j/2 - 8) until trained, and c interpolates linearly between the two cells around
  clamp(logit(q), -8, 8), clamped to [1/4096, 1 - 1/4096]. After the byte each of the two moves
  towards 1 (hit) or 0 by its interpolation share times the difference over (n + 1.5), n its
  count (the sum of its shares, at most 255).
"""
import math

ORDERS, D, A, SLOTS, MAX_LOG_ODDS = 8, 0.75, 0.5, 14, 8.0
MIN_MATCH, VERIFY, CLASSES, CELLS = 6, 32, 16, 33
M64 = (1 << 64) - 1


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def length_class(n):
    if n < MIN_MATCH + 6:
        return max(n - MIN_MATCH, 0)
    return min(CLASSES - 1, 6 + (n - MIN_MATCH - 5).bit_length() - 1)


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
        self.ring = bytearray(8 * buckets)
        self.written = 0
        self.table = [0] * (2 * buckets)
        self.match_len = 0
        self.match_at = 0
        self.cells = [[[sigmoid(j / 2 - 8), 0.0] for j in range(CELLS)] for _ in range(CLASSES)]

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

    def _mixture(self, base):
        p = self.counts_distribution()
        w = self.weight()
        return p, [w * a + (1 - w) * b for a, b in zip(p, base)]

    def _predicted(self):
        if self.match_len == 0:
            return None
        return self.ring[self.match_at % len(self.ring)]

    def _interpolation(self, q):
        x = (min(max(math.log(q / max(1 - q, 1e-300)), -8.0), 8.0) + 8) * 2
        j = min(int(x), CELLS - 2)
        return j, x - j

    def _c(self, q):
        j, f = self._interpolation(q)
        row = self.cells[length_class(self.match_len)]
        return min(max((1 - f) * row[j][0] + f * row[j + 1][0], 1 / 4096), 1 - 1 / 4096)

    def _adjust(self, mixed):
        b = self._predicted()
        if b is None:
            return mixed
        q = mixed[b]
        c = self._c(q)
        out = [v * (1 - c) / max(1 - q, 1e-9) for v in mixed]
        out[b] = c
        return out

    def distribution(self, base):
        _, mixed = self._mixture(base)
        total = sum(mixed)
        return self._adjust([v / total for v in mixed])

    def observe(self, symbol, base):
        """base: the network's full distribution."""
        p, mixed = self._mixture([max(v, 1e-30) for v in base])
        published = self._adjust(mixed)[symbol]
        b = self._predicted()
        if b is not None:
            j, f = self._interpolation(mixed[b])
            row = self.cells[length_class(self.match_len)]
            hit = 1.0 if b == symbol else 0.0
            for i, share in ((j, 1 - f), (j + 1, f)):
                row[i][0] += share * (hit - row[i][0]) / (row[i][1] + 1.5)
                row[i][1] = min(row[i][1] + share, 255)
        self.log_odds = min(max(self.log_odds + math.log(p[symbol]) - math.log(max(base[symbol], 1e-30)), -MAX_LOG_ODDS), MAX_LOG_ODDS)
        self.learn(symbol)
        return published

    def reset(self):
        self.history = 0
        self.seen = 0
        self.match_len = 0

    def _follow(self, symbol):
        size = len(self.ring)
        if self.match_len > 0:
            if self.ring[self.match_at % size] == symbol:
                self.match_len = min(self.match_len + 1, 65535)
                self.match_at += 1
            else:
                self.match_len = 0
        self.ring[self.written % size] = symbol
        self.written += 1
        if self.seen < MIN_MATCH:
            return
        slot = context_hash(self.history, MIN_MATCH) % len(self.table)
        low = self.written & 0xFFFFFFFF
        stored = self.table[slot]
        distance = (low - stored) & 0xFFFFFFFF
        if self.match_len == 0 and stored != 0 and 1 <= distance < size:
            cand = self.written - distance
            agree = 0
            while (agree < VERIFY and cand - 1 - agree >= 0 and cand - 1 - agree >= self.written - size
                   and self.ring[(cand - 1 - agree) % size] == self.ring[(self.written - 1 - agree) % size]):
                agree += 1
            if agree >= MIN_MATCH:
                self.match_len, self.match_at = agree, cand
        if low != 0:
            self.table[slot] = low

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
        self._follow(symbol)
