"""The JSON line a step peer prints: the same keys, computed the same way, as `recurd bench step`.

us_per_step = wall time of the whole timed loop / steps (per-step clock reads included, as in
recurd); p50_us / p99_us = the sorted per-step latencies at index steps/2 and steps*99/100;
stream_steps_per_second = steps * batch / wall time.
"""
import json


def ring_inputs(rng, batch, n_in, ring=64):
    """A ring of `ring` pre-generated input steps, uniform in [-1, 1), shape (ring, 1, batch, n_in)."""
    return (rng.random((ring, 1, batch, n_in), dtype="float32") * 2 - 1)


def emit(impl, model, batch, steps, latencies_ns, total_ns, finite, **extra):
    lat = sorted(latencies_ns)
    seconds = total_ns / 1e9
    fields = {
        "bench": "step", "impl": impl, "cell": "lstm", "hidden": [model["hidden"]] * model["layers"],
        "input": model["input"], "outputs": model["outputs"], "batch": batch, "steps": steps,
        "us_per_step": seconds / steps * 1e6,
        "p50_us": lat[steps // 2] / 1e3, "p99_us": lat[steps * 99 // 100] / 1e3,
        "stream_steps_per_second": steps * batch / seconds,
        "checksum_finite": bool(finite),
    }
    fields.update(extra)
    print(json.dumps(fields, sort_keys=True), flush=True)
