"""The files the README's tour uses, made on the spot: a pump's telemetry, images of tiles, service tokens.

``vigil demo --examples DIR`` (and ``make demo``) calls :func:`write_examples`, so that every command of
the tour runs as printed on a fresh machine without a data set. Everything is deterministic given the seed
except the service tokens, which are secrets and drawn fresh each time.

What each file holds:

- ``pump.csv``: one hour of one pump at 1 Hz (time, speed, flow, pressure, motor temperature) with three
  labelled incidents: a clogged strainer, a stuck flow sensor and cavitation.
- ``before.csv`` / ``after.csv``: the same pump before and after its impeller was replaced, which moves its
  operating point (more flow and pressure per rpm); ``after.csv`` holds labelled incidents too. A static
  model raises false alarms after the change, an adaptive one learns the new normal.
- ``live.csv``: ten minutes of unlabelled readings to replay as a live stream.
- ``tokens``: one ``read`` and one ``write`` API token for ``vigil serve --token-file``.
- ``tiles/good`` and ``tiles/defect``: grey PNG images of machined surfaces, the defective ones with
  scratches and holes (needs Pillow: ``pip install 'vigil[vision]'``).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["simulate_pump", "write_examples"]

_START = pd.Timestamp("2026-03-02T08:00:00")


def simulate_pump(
    seconds: int,
    *,
    seed: int,
    start: pd.Timestamp = _START,
    incidents: tuple[tuple[int, int, str], ...] = (),
    gain: float = 1.0,
) -> pd.DataFrame:
    """One centrifugal pump at 1 Hz, with ``incidents`` as ``(first row, rows, kind)`` labelled 1.

    The speed follows set-point changes every few minutes; flow grows with the speed and pressure with its
    square (the affinity laws), scaled by ``gain`` (a new impeller); the motor warms up with the load.
    Kinds: ``clog`` (flow falls while pressure rises), ``stuck`` (the flow sensor repeats one value) and
    ``cavitation`` (pressure falls and flow shakes).

    Examples
    --------
    >>> frame = simulate_pump(600, seed=0, incidents=((300, 60, "stuck"),))
    >>> list(frame.columns), int(frame["label"].sum())
    (['time', 'pump_speed_rpm', 'flow_m3h', 'pressure_bar', 'motor_temp_C', 'label'], 60)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(seconds)
    # Every set point recurs within each 20 minutes, so any long enough stretch shows the whole range.
    levels = np.array([1350.0, 1400.0, 1450.0, 1500.0, 1550.0])
    setpoints = np.concatenate([rng.permutation(levels) for _ in range(seconds // 1200 + 1)])
    target = np.repeat(setpoints, 240)[:seconds]
    speed = np.empty(seconds)
    speed[0] = target[0]
    for i in range(1, seconds):  # the drive ramps to each new set point in about 20 s
        speed[i] = speed[i - 1] + (target[i] - speed[i - 1]) / 20.0
    ratio = speed / 1450.0
    flow = gain * 30.0 * ratio
    pressure = gain**2 * 4.2 * ratio**2
    load = flow * pressure
    temp = np.empty(seconds)
    temp[0] = 40.0 + 0.12 * load[0]
    for i in range(1, seconds):  # a first-order thermal lag of about a minute
        temp[i] = temp[i - 1] + (40.0 + 0.12 * load[i] - temp[i - 1]) / 60.0
    speed = speed + rng.normal(0, 2.0, seconds)
    flow = flow + rng.normal(0, 0.25, seconds)
    pressure = pressure + rng.normal(0, 0.03, seconds)
    temp = temp + rng.normal(0, 0.05, seconds)
    label = np.zeros(seconds, dtype=np.int64)
    for first, rows, kind in incidents:
        span = slice(first, first + rows)
        ramp = np.minimum(np.arange(rows) / 15.0, 1.0)
        if kind == "clog":
            flow[span] -= 7.0 * ramp
            pressure[span] += 0.6 * ramp
        elif kind == "stuck":
            flow[span] = round(float(flow[first]), 2)
        elif kind == "cavitation":
            pressure[span] -= 0.5 * ramp
            flow[span] += rng.normal(0, 2.5, rows)
        else:
            msg = f"unknown incident kind {kind!r} (clog, stuck, cavitation)"
            raise ValueError(msg)
        label[span] = 1
    return pd.DataFrame(
        {
            "time": (start + pd.to_timedelta(t, unit="s")).strftime("%Y-%m-%dT%H:%M:%S"),
            "pump_speed_rpm": speed.round(1),
            "flow_m3h": flow.round(2),
            "pressure_bar": pressure.round(3),
            "motor_temp_C": temp.round(2),
            "label": label,
        }
    )


def _write_tiles(folder: Path, seed: int) -> None:
    from vigil.vision.io import require_pillow
    from vigil.vision.synthetic import make_synthetic_set

    image_module = require_pillow()
    data = make_synthetic_set(80, 24, size=64, kinds=("scratch", "hole"), seed=seed)
    for sub in ("good", "defect"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (pixels, kind) in enumerate(zip(data.images, data.types, strict=True)):
        where = folder / "good" / f"tile_{i:03d}.png" if kind == "good" else folder / "defect" / f"{kind}_{i:03d}.png"
        image_module.fromarray(pixels).save(where)


def write_examples(folder: str | Path, *, seed: int = 7) -> list[Path]:
    """Write the tour's files into ``folder``; return what was written (see the module docstring)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    incidents = ((900, 60, "clog"), (1560, 60, "cavitation"), (2600, 90, "stuck"), (3000, 120, "cavitation"))
    pump = simulate_pump(3600, seed=seed, incidents=incidents)
    before = simulate_pump(2000, seed=seed + 1, start=_START - pd.Timedelta(days=7))
    after = simulate_pump(3000, seed=seed + 2, gain=1.03, incidents=((1200, 60, "clog"), (2400, 90, "cavitation")))
    live = simulate_pump(600, seed=seed + 3, start=_START + pd.Timedelta(hours=1), incidents=((400, 60, "clog"),))
    live = live.drop(columns="label")  # what devices send carries no label
    for name, frame in (("pump.csv", pump), ("before.csv", before), ("after.csv", after), ("live.csv", live)):
        frame.to_csv(out / name, index=False)
        written.append(out / name)
    tokens = out / "tokens"
    tokens.write_text(f"read {secrets.token_urlsafe(18)}\nwrite {secrets.token_urlsafe(18)}\n")
    tokens.chmod(0o600)
    written.append(tokens)
    _write_tiles(out / "tiles", seed)
    written.append(out / "tiles")
    return written
