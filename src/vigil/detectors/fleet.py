"""Fleet training: many same-architecture PyTorch detectors fitted as one batched computation.

A plant runs one model per asset. Each of these networks is small, so fitting them one after another spends
most of its time in PyTorch's per-operation overhead rather than in arithmetic. A fleet stacks the members'
weights along a leading axis and runs every member's step as one grouped convolution per layer: the
overhead is paid once per step for the whole fleet.

Each member stays what a one-at-a-time fit makes of it: its own seed-derived initial weights and batch
order, its own validation slice and early stopping (a member that stops leaves the stack; until then a
mask keeps it from stepping when it has no batch left in an epoch), its own error model and threshold.
With the same seed the weights and scores equal the one-at-a-time fit's to float rounding (the sums run in
another order). A member whose input is refused (too few rows, NaN) or whose training diverges gets its own
error, naming it, and the others train as if it were not there: members share no arithmetic.

Fleet-capable: :class:`~vigil.detectors.forecasters.TCNForecasterDetector` and
:class:`~vigil.detectors.sequence_forecaster.SequenceTCNForecasterDetector` (full-batch steps), both
without dropout (dropout draws from one random stream in a fit, which a fleet cannot reproduce per member).
Any other detector, or a member that does not fit in the batched scheme, is fitted one at a time, so
:func:`fit_fleet` takes any detector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector
from vigil.detectors.training import EarlyStopping, require_torch
from vigil.errors import NumericalError, VigilError

__all__ = ["FleetFit", "FleetScores", "fit_fleet", "named_error", "score_fleet", "supports_fleet"]

# Windows per member in one batched forward pass when measuring validation loss (as TorchDetector's 256).
_EVAL_CHUNK = 256
# Members scored in one batched pass: bounds the memory of scoring a large fleet's long series.
_SCORING_MEMBERS = 64
# Whole-series members with more training rows than this train one at a time. A full-batch step over a long
# series is bound by arithmetic and memory, not by per-operation overhead, and there the grouped convolution
# is slower than the members' own: SMD's 19 machines (17,700 rows each) took 717 s as a fleet against 208 s
# one at a time, while SKAB's 300-row files train 1.6 times faster as a fleet.
_SEQUENCE_FLEET_ROWS = 4096


def _kind(detector: BaseDetector) -> str | None:
    """``"windowed"``, ``"sequence"`` or None: which batched training loop the detector can join."""
    from vigil.detectors.forecasters import TCNForecasterDetector
    from vigil.detectors.sequence_forecaster import SequenceTCNForecasterDetector

    if type(detector) is TCNForecasterDetector and detector.dropout == 0:
        return "windowed"
    if type(detector) is SequenceTCNForecasterDetector and detector.dropout == 0:
        return "sequence"
    return None


def supports_fleet(detector: BaseDetector) -> bool:
    """Whether ``detector``'s members train as one batched computation (others train one at a time)."""
    return _kind(detector) is not None


@dataclass
class FleetFit:
    """The outcome of :func:`fit_fleet`: each member's fitted detector, or the error that stopped it.

    Attributes
    ----------
    fitted : dict
        Member name → fitted detector, in the order the members were given.
    failed : dict
        Member name → the exception (its message names the member); the member has no model.
    batched : list of str
        The members that trained in the batched computation (the others one at a time).
    """

    fitted: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)
    batched: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> dict[str, str]:
        """Member name → why it has no model."""
        return {name: str(exc) for name, exc in self.failed.items()}


def named_error(name: str, exc: Exception) -> Exception:
    """The same kind of error, its message prefixed with the member's name (the member's own error)."""
    try:
        named = type(exc)(f"{name}: {exc}")
    except TypeError:  # an exception whose constructor wants other arguments: keep it as it is
        return exc
    named.__cause__ = exc
    return named


@dataclass
class _Member:
    name: str
    detector: Any
    values: NDArray[np.float64]
    module: Any = None
    generator: Any = None
    train: Any = None  # the training samples (windows, or the series for full batch)
    val: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def fit_fleet(template: BaseDetector, data: Mapping[str, Any], *, max_members: int | None = None) -> FleetFit:
    """Fit a clone of ``template`` on each member's rows, as one batched computation where possible.

    Parameters
    ----------
    template : BaseDetector
        The unfitted detector every member gets a clone of (same parameters, same ``random_state``).
    data : mapping of str to array-like
        Member name (an asset, a file, a machine) → its training rows.
    max_members : int, optional
        Most members in one batched computation (consecutive groups of this many train one after the
        other): bounds the memory of a large fleet's activations. None: all at once.

    Returns
    -------
    FleetFit
        Each member's fitted detector, equal to ``template.clone().fit(rows)`` to float rounding, or its
        error. Members with different feature counts train in separate batched groups.

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.detectors.forecasters import TCNForecasterDetector
    >>> t = np.arange(200) / 4
    >>> rows = {f"pump-{i}": np.column_stack([np.sin(t + i), np.cos(t)]) for i in range(3)}
    >>> rows["pump-3"] = rows["pump-0"][:5]
    >>> fleet = fit_fleet(TCNForecasterDetector(window=8, filters=4, epochs=3, random_state=0), rows)
    >>> sorted(fleet.fitted), list(fleet.failed)
    (['pump-0', 'pump-1', 'pump-2'], ['pump-3'])
    >>> fleet.reasons["pump-3"]
    'pump-3: 5 rows to fit on: TCNForecasterDetector needs at least 13 (...)'
    """
    result = FleetFit()
    kind = _kind(template)
    groups: dict[int, list[_Member]] = {}
    order = list(data)
    for name, X in data.items():
        detector = template.clone()
        if kind is None:
            try:
                result.fitted[name] = detector.fit(X)
            except VigilError as exc:
                result.failed[name] = named_error(name, exc)
            continue
        try:
            values = detector._start_fit(X)
        except VigilError as exc:
            result.failed[name] = named_error(name, exc)
            continue
        groups.setdefault(values.shape[1], []).append(_Member(name, detector, values))
    size = max_members if max_members is not None and max_members > 0 else max(len(data), 1)
    batches = [members[i : i + size] for members in groups.values() for i in range(0, len(members), size)]
    for members in batches:
        train = _train_windowed if kind == "windowed" else _train_sequence
        for member in train(members, result):
            try:
                result.fitted[member.name] = member.detector._finish_fit(member.values)
            except VigilError as exc:
                result.failed[member.name] = named_error(member.name, exc)
    result.fitted = {name: result.fitted[name] for name in order if name in result.fitted}
    result.failed = {name: result.failed[name] for name in order if name in result.failed}
    result.batched = [name for name in order if name in result.batched and name in result.fitted]
    return result


# ---------------------------------------------------------------------------------------------- the network
class _StackedTCN:
    """The weights of several :class:`~vigil.detectors.networks.TemporalConvForecaster` s stacked on a leading
    member axis, and their forward passes as grouped convolutions (member ``m`` owns channel block ``m``)."""

    def __init__(self, modules: list[Any]) -> None:
        torch = require_torch()
        first = modules[0]
        self.base = first.dilation_base
        self.levels = len(first.blocks)
        self.kernel = first.blocks[0].conv.kernel_size[0]
        self.skip_first = hasattr(first.blocks[0].skip, "weight")
        self.persistence = first.persistence is not None
        states = [m.state_dict() for m in modules]
        self.names = list(states[0])
        self.params = {k: torch.stack([s[k] for s in states]).detach().clone().requires_grad_() for k in self.names}

    def keep(self, index: Any) -> None:
        """Keep the members at stack positions ``index`` only (a new leaf per weight)."""
        self.params = {k: v.detach()[index].clone().requires_grad_() for k, v in self.params.items()}

    def state_of(self, weights: dict[str, Any], position: int) -> dict[str, Any]:
        return {k: weights[k][position].detach().clone() for k in self.names}

    def _conv(self, h: Any, i: int, *, stride: int = 1, dilation: int = 1) -> Any:
        torch = require_torch()
        w, b = self.params[f"blocks.{i}.conv.weight"], self.params[f"blocks.{i}.conv.bias"]
        m, c_out, c_in, k = w.shape
        return torch.nn.functional.conv1d(
            h, w.reshape(m * c_out, c_in, k), b.reshape(-1), stride=stride, dilation=dilation, groups=m
        )

    def _skip(self, h: Any, i: int) -> Any:
        torch = require_torch()
        if i > 0 or not self.skip_first:
            return h
        w, b = self.params["blocks.0.skip.weight"], self.params["blocks.0.skip.bias"]
        m, c_out, c_in, _ = w.shape
        return torch.nn.functional.conv1d(h, w.reshape(m * c_out, c_in, 1), b.reshape(-1), groups=m)

    def _head(self, features: Any, last_rows: Any) -> Any:
        """The output layer on features (m, n, filters), plus the persistence map of ``last_rows`` (m, n, d)."""
        torch = require_torch()
        out = torch.baddbmm(
            self.params["output.bias"].unsqueeze(1), features, self.params["output.weight"].transpose(1, 2)
        )
        if self.persistence:
            out = out + torch.bmm(last_rows, self.params["persistence.weight"].transpose(1, 2))
        return out

    def forward_last(self, x: Any) -> Any:
        """Each member's forecast of the row after each of its windows: x (m, batch, window, d) → (m, batch, d).

        The strided pass of ``TemporalConvForecaster.forward``: level i is computed at every ``base``-th step
        of the level below, counted back from the last. Each convolution is one batched matrix product of
        the taps (channels last): on a CPU that trains about a quarter faster than a grouped convolution."""
        torch = require_torch()
        m, n = x.shape[:2]
        h = x
        for i in range(self.levels):
            w, b = self.params[f"blocks.{i}.conv.weight"], self.params[f"blocks.{i}.conv.bias"]
            _, c_out, c_in, k = w.shape
            offset = (h.shape[2] - 1) % self.base
            padded = torch.nn.functional.pad(h, (0, 0, k - 1, 0))[:, :, offset:]
            steps = (padded.shape[2] - k) // self.base + 1
            span = self.base * (steps - 1) + 1
            taps = torch.cat([padded[:, :, j : j + span : self.base] for j in range(k)], dim=-1)
            weights = w.permute(0, 3, 2, 1).reshape(m, k * c_in, c_out)
            out = torch.baddbmm(b.unsqueeze(1), taps.reshape(m, -1, k * c_in), weights).reshape(m, n, steps, c_out)
            skip = h[:, :, offset :: self.base]
            if i == 0 and self.skip_first:
                sw, sb = self.params["blocks.0.skip.weight"], self.params["blocks.0.skip.bias"]
                skip = torch.baddbmm(sb.unsqueeze(1), skip.reshape(m, -1, c_in), sw[..., 0].transpose(1, 2))
                skip = skip.reshape(m, n, steps, c_out)
            h = torch.relu(torch.relu(out) + skip)
        return self._head(h[:, :, -1], x[:, :, -1])

    def predict_sequence(self, x: Any) -> Any:
        """Each member's forecast at every step of its series: x (m, time, d) → (m, time, d)."""
        torch = require_torch()
        m, t, d = x.shape
        h = x.transpose(1, 2).reshape(1, m * d, t)
        for i in range(self.levels):
            dilation = self.base**i
            padded = torch.nn.functional.pad(h, ((self.kernel - 1) * dilation, 0))
            h = torch.relu(torch.relu(self._conv(padded, i, dilation=dilation)) + self._skip(h, i))
        return self._head(h.reshape(m, -1, t).transpose(1, 2), x)


class _StackedAdam:
    """Adam over stacked weights with a per-member step count and a mask of the members that step: the same
    update, member by member, as ``torch.optim.Adam`` with default settings."""

    def __init__(self, params: dict[str, Any], lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        torch = require_torch()
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, 1e-8
        self.avg = {k: torch.zeros_like(v) for k, v in params.items()}
        self.avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
        self.steps = np.zeros(next(iter(params.values())).shape[0], dtype=np.int64)

    def keep(self, index: Any) -> None:
        self.avg = {k: v[index].clone() for k, v in self.avg.items()}
        self.avg_sq = {k: v[index].clone() for k, v in self.avg_sq.items()}
        self.steps = self.steps[index]

    def step(self, params: dict[str, Any], stepping: NDArray[np.bool_]) -> None:
        torch = require_torch()
        everyone = bool(stepping.all())
        self.steps = self.steps + stepping
        counts = np.maximum(self.steps, 1).astype(np.float64)
        # Bias corrections in float64, as torch computes them from a Python float step count.
        step_size = self.lr / (1.0 - self.beta1**counts)
        correction = np.sqrt(1.0 - self.beta2**counts)
        mask = torch.from_numpy(stepping)
        with torch.no_grad():
            for k, p in params.items():
                shape = (-1,) + (1,) * (p.dim() - 1)
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                avg = self.avg[k].lerp(grad, 1 - self.beta1)
                avg_sq = (self.avg_sq[k] * self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
                denom = (avg_sq.sqrt() / torch.from_numpy(correction).float().view(shape)).add_(self.eps)
                update = avg / denom * torch.from_numpy(-step_size).float().view(shape)
                if everyone:
                    self.avg[k], self.avg_sq[k] = avg, avg_sq
                    p.add_(update)
                else:
                    keep = mask.view(shape)
                    self.avg[k] = torch.where(keep, avg, self.avg[k])
                    self.avg_sq[k] = torch.where(keep, avg_sq, self.avg_sq[k])
                    p.add_(torch.where(keep, update, torch.zeros_like(update)))
                p.grad = None


class _EarlyStopping(EarlyStopping):
    """The trainer's stopping rule for every member at once, and each member's best weights as rows of the
    stacked tensors."""

    def __init__(self, n: int, patience: int) -> None:
        super().__init__(patience, n)
        self.best: dict[str, Any] | None = None
        self.has_best = np.zeros(n, dtype=bool)

    def record(self, stack: _StackedTCN, losses: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Record this epoch's losses; returns which members stop now."""
        torch = require_torch()
        better, stop = self.update(losses)
        if better.any():
            mask = torch.from_numpy(better)
            with torch.no_grad():
                if self.best is None:
                    self.best = {k: v.detach().clone() for k, v in stack.params.items()}
                else:
                    for k, v in stack.params.items():
                        shape = (-1,) + (1,) * (v.dim() - 1)
                        self.best[k] = torch.where(mask.view(shape), v.detach(), self.best[k])
            self.has_best |= better
        return stop

    def keep(self, index: Any) -> None:
        super().keep(index)
        self.has_best = self.has_best[index]
        if self.best is not None:
            self.best = {k: v[index].clone() for k, v in self.best.items()}

    def weights_of(self, stack: _StackedTCN, position: int) -> dict[str, Any]:
        source = self.best if self.has_best[position] and self.best is not None else stack.params
        return stack.state_of(source, position)


def _retire(stack: _StackedTCN, adam: _StackedAdam, stopping: _EarlyStopping, active: list[_Member], gone: Any):
    """Take members at stack positions ``gone`` out of the fleet, their best weights into their own networks."""
    for position in np.flatnonzero(gone):
        member = active[position]
        member.module.load_state_dict(stopping.weights_of(stack, int(position)))
    keep = np.flatnonzero(~gone)
    if len(keep) < len(active):
        stack.keep(keep)
        adam.keep(keep)
        stopping.keep(keep)
    return [active[i] for i in keep]


def _fail(member: _Member, result: FleetFit, exc: Exception) -> None:
    result.failed[member.name] = named_error(member.name, exc)


def _diverged(member: _Member, loss: float) -> NumericalError:
    msg = f"{type(member.detector).__name__} training diverged (loss {loss}); lower learning_rate"
    return NumericalError(msg)


# ---------------------------------------------------------------------------------------------- windowed
def _train_windowed(members: list[_Member], result: FleetFit) -> list[_Member]:
    """TorchDetector's loop (shuffled mini-batches of windows, early stopping on the latest windows) for
    every member at once; returns the members that trained, their detectors fitted up to ``_finish_fit``."""
    torch = require_torch()
    template = members[0].detector
    device = template._torch_device()
    for member in members:
        det, values = member.detector, member.values
        det.relative_features_ = det._drifting_features(values)
        windows = det._windows(values)
        n_val = det._split(len(windows))
        member.train = torch.from_numpy(windows[: len(windows) - n_val]).to(device)
        member.val = torch.from_numpy(windows[len(windows) - n_val :]).to(device) if n_val else member.train
        # The same seed, initial weights and batch-order generator as the member's own fit.
        with det._seeded(device) as generator:
            member.module = det._build_module(values.shape[1]).to(device)
        member.generator = generator
        member.extra["history"] = []
    batch_size, n_features = template.batch_size, members[0].values.shape[1]
    stack = _StackedTCN([m.module for m in members])
    adam = _StackedAdam(stack.params, template.learning_rate)
    stopping = _EarlyStopping(len(members), template.patience)
    active = list(members)
    done: list[_Member] = []
    # Every member's training windows in one tensor (zeros after a member's last), so that a step's batches
    # are one gather; rebuilt when members leave.
    pool_of: list[str] = []
    windows = None
    for _ in range(template.epochs):
        if not active:
            break
        if pool_of != [m.name for m in active]:
            windows, pool_of = _pool([m.train for m in active], device), [m.name for m in active]
        sizes = np.array([len(m.train) for m in active])
        orders = torch.zeros((len(active), int(sizes.max())), dtype=torch.long, device=device)
        for i, member in enumerate(active):
            orders[i, : sizes[i]] = torch.randperm(len(member.train), generator=member.generator).to(device)
        rows = torch.arange(len(active), device=device)[:, None]
        failed = np.zeros(len(active), dtype=bool)
        for start in range(0, int(sizes.max()), batch_size):
            counts = np.clip(sizes - start, 0, batch_size)
            stepping = (counts > 0) & ~failed
            width = int(counts.max())
            batch = windows[rows, orders[:, start : start + width]]
            errors = (stack.forward_last(batch[:, :, :-1]) - batch[:, :, -1]) ** 2
            if (counts == width).all():
                losses = errors.mean(dim=(1, 2))
            else:
                mask = (torch.arange(width, device=device)[None, :] < torch.from_numpy(counts)[:, None]).float()
                losses = (errors * mask[:, :, None]).sum(dim=(1, 2)) / torch.from_numpy(
                    np.maximum(counts, 1) * n_features
                ).float()
            finite = torch.isfinite(losses).cpu().numpy()
            for i in np.flatnonzero(stepping & ~finite).tolist():
                _fail(active[i], result, _diverged(active[i], float(losses[i].detach())))
                failed[i] = True
            stepping &= ~failed
            weights = torch.from_numpy(stepping.astype(np.float32)).to(device)
            (torch.where(weights > 0, losses, torch.zeros_like(losses)) * weights).sum().backward()
            adam.step(stack.params, stepping)
        val_losses = _validation_losses(stack, active, device)
        for member, loss in zip(active, val_losses, strict=True):
            member.extra["history"].append(float(loss))
        stopping_now = stopping.record(stack, np.where(failed, math.inf, val_losses))
        for i in np.flatnonzero(failed).tolist():
            stopping_now[i] = True
        done += [m for i, m in enumerate(active) if stopping_now[i] and not failed[i]]
        active = _retire(stack, adam, stopping, active, stopping_now)
    if active:  # the epochs ran out before these stopped
        done += active
        _retire(stack, adam, stopping, active, np.ones(len(active), dtype=bool))
    trained = []
    for member in done:
        det, module = member.detector, member.module.eval()
        det.module_ = module
        det.epochs_trained_ = len(member.extra["history"])
        det.validation_loss_ = np.asarray(member.extra["history"], dtype=np.float64)
        try:
            det._after_fit(module, member.val)
        except VigilError as exc:
            _fail(member, result, exc)
            continue
        trained.append(member)
        result.batched.append(member.name)
    return trained


def _pool(tensors: list[Any], device: Any) -> Any:
    """Tensors of shape (n_i, ...) stacked into one (len, max n_i, ...), zeros after each one's rows."""
    torch = require_torch()
    out = torch.zeros((len(tensors), max(len(t) for t in tensors), *tensors[0].shape[1:]), device=device)
    for i, t in enumerate(tensors):
        out[i, : len(t)] = t
    return out


def _validation_losses(stack: _StackedTCN, active: list[_Member], device: Any) -> NDArray[np.float64]:
    """Each member's mean squared error on its validation windows (float32 errors summed in float64)."""
    torch = require_torch()
    sizes = np.array([len(m.val) for m in active])
    totals = np.zeros(len(active))
    with torch.no_grad():
        for start in range(0, int(sizes.max()), _EVAL_CHUNK):
            counts = np.clip(sizes - start, 0, _EVAL_CHUNK)
            width = int(counts.max())
            batch = torch.zeros((len(active), width, *active[0].val.shape[1:]), device=device)
            for i, member in enumerate(active):
                if counts[i]:
                    batch[i, : counts[i]] = member.val[start : start + counts[i]]
            errors = ((stack.forward_last(batch[:, :, :-1]) - batch[:, :, -1]) ** 2).double().cpu().numpy()
            for i in np.flatnonzero(counts).tolist():
                totals[i] += errors[i, : counts[i]].sum()
    return totals / (sizes * active[0].val.shape[-1])


# ---------------------------------------------------------------------------------------------- sequence
def _train_sequence(members: list[_Member], result: FleetFit) -> list[_Member]:
    """SequenceTCNForecasterDetector's full-batch loop for every member at once. A member whose training rows
    exceed ``step_rows`` (several segments a pass) or ``_SEQUENCE_FLEET_ROWS`` trains one at a time."""
    torch = require_torch()
    template = members[0].detector
    device = template._torch_device()
    batched: list[_Member] = []
    trained: list[_Member] = []
    for member in members:
        det, values = member.detector, member.values
        first = det.context_rows - 1
        n_targets = len(values) - 1 - first
        n_val = math.floor(n_targets * det.validation_fraction)
        if n_val and n_targets - n_val < 2:
            n_val = 0
        split = first + n_targets - n_val
        if split - first > min(det.step_rows, _SEQUENCE_FLEET_ROWS):
            try:
                det._fit(values, None)
            except VigilError as exc:
                _fail(member, result, exc)
            else:
                trained.append(member)
            continue
        det.relative_features_ = det._drifting_features(values)
        det.receptive_field_ = det._span()
        member.train = torch.from_numpy(det._inputs(values)).to(device)
        member.extra.update(first=first, split=split, n_val=n_val, history=[])
        with det._seeded(device):
            member.module = det._build_module(values.shape[1]).to(device)
        batched.append(member)
    if not batched:
        return trained
    stack = _StackedTCN([m.module for m in batched])
    adam = _StackedAdam(stack.params, template.learning_rate)
    stopping = _EarlyStopping(len(batched), template.patience)
    active = list(batched)
    done: list[_Member] = []
    for _ in range(template.epochs):
        if not active:
            break
        length = max(len(m.train) for m in active)
        series = torch.zeros((len(active), length, active[0].train.shape[1]), device=device)
        for i, member in enumerate(active):
            series[i, : len(member.train)] = member.train
        # Causal: padding after a member's last row changes none of its predictions.
        squared = (stack.predict_sequence(series[:, :-1]) - series[:, 1:]) ** 2
        losses = torch.stack([squared[i, m.extra["first"] : m.extra["split"]].mean() for i, m in enumerate(active)])
        finite = torch.isfinite(losses).cpu().numpy()
        val_losses = np.empty(len(active))
        with torch.no_grad():
            for i, member in enumerate(active):
                x = member.extra
                rows = (
                    squared[i, x["split"] : len(member.train) - 1]
                    if x["n_val"]
                    else squared[i, x["first"] : x["split"]]
                )
                val_losses[i] = float(rows.mean())
        for i in np.flatnonzero(~finite).tolist():
            _fail(active[i], result, _diverged(active[i], float(losses[i].detach())))
        for member, loss, ok in zip(active, val_losses, finite, strict=True):
            if ok:
                member.extra["history"].append(float(loss))
        stopping_now = stopping.record(stack, np.where(finite, val_losses, math.inf)) | ~finite
        stepping = ~stopping_now
        if stepping.any():
            weights = torch.from_numpy(stepping.astype(np.float32)).to(device)
            (torch.where(weights > 0, losses, torch.zeros_like(losses)) * weights).sum().backward()
            adam.step(stack.params, stepping)
        done += [m for i, m in enumerate(active) if stopping_now[i] and finite[i]]
        active = _retire(stack, adam, stopping, active, stopping_now)
    if active:
        done += active
        _retire(stack, adam, stopping, active, np.ones(len(active), dtype=bool))
    for member in done:
        det, module, x = member.detector, member.module.eval(), member.extra
        det.module_ = module
        det.epochs_trained_ = len(x["history"])
        det.validation_loss_ = np.asarray(x["history"], dtype=np.float64)
        try:
            residuals = det._all_residuals(module, member.train).double().cpu().numpy()
            det._fit_error_model(residuals[x["split"] :] if x["n_val"] else residuals[x["first"] :])
        except VigilError as exc:
            _fail(member, result, exc)
            continue
        trained.append(member)
        result.batched.append(member.name)
    return trained


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class FleetScores:
    """The outcome of :func:`score_fleet`: each member's scores, or the error that refused its rows."""

    scores: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)


def score_fleet(detectors: Mapping[str, Any], data: Mapping[str, Any]) -> FleetScores:
    """Score each member's rows with its own fitted detector, as batched forward passes where possible.

    ``detectors`` and ``data`` map member names to a fitted detector and its rows. Each member's scores
    equal ``detectors[name].score_samples(data[name])`` to float rounding; rows it refuses (NaN, a wrong
    feature count, too few rows) give that member its error and leave the others alone.
    """
    torch = require_torch()
    out = FleetScores()
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for name, X in data.items():
        det = detectors[name]
        kind = _kind(det)
        try:
            if kind is None:
                out.scores[name] = det.score_samples(X)
                continue
            values = det._prepare(X)
            if kind == "sequence":
                det._check_score_rows(values)
                inputs = det._inputs(values)
            else:
                inputs = det._windows(values)
        except VigilError as exc:
            out.failed[name] = named_error(name, exc)
            continue
        key = (kind, type(det), repr(sorted(det.get_params().items())), values.shape[1])
        groups.setdefault(key, []).append((name, det, values, inputs))
    with torch.inference_mode():
        for (kind, *_), members in groups.items():
            for start in range(0, len(members), _SCORING_MEMBERS):
                chunk = members[start : start + _SCORING_MEMBERS]
                residuals = _windowed_residuals(chunk) if kind == "windowed" else _sequence_residuals(chunk)
                for (name, det, values, _), res in zip(chunk, residuals, strict=True):
                    try:
                        out.scores[name] = det._check_scores(det._rows_from_residuals(res).mean(axis=1), values)
                    except VigilError as exc:
                        out.failed[name] = named_error(name, exc)
    order = list(data)
    out.scores = {name: out.scores[name] for name in order if name in out.scores}
    out.failed = {name: out.failed[name] for name in order if name in out.failed}
    return out


def _windowed_residuals(members: list[tuple[Any, ...]]) -> list[NDArray[np.float64]]:
    torch = require_torch()
    device = next(members[0][1].module_.parameters()).device
    stack = _StackedTCN([m[1].module_ for m in members])
    windows = [m[3] for m in members]
    sizes = np.array([len(w) for w in windows])
    parts: list[list[NDArray[np.float64]]] = [[] for _ in members]
    for start in range(0, int(sizes.max()), _EVAL_CHUNK):
        counts = np.clip(sizes - start, 0, _EVAL_CHUNK)
        batch = np.zeros((len(members), int(counts.max()), *windows[0].shape[1:]), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : counts[i]] = w[start : start + counts[i]]
        x = torch.from_numpy(batch).to(device)
        res = (stack.forward_last(x[:, :, :-1]) - x[:, :, -1]).double().cpu().numpy()
        for i in np.flatnonzero(counts).tolist():
            parts[i].append(res[i, : counts[i]])
    return [np.concatenate(p, axis=0) for p in parts]


def _sequence_residuals(members: list[tuple[Any, ...]]) -> list[NDArray[np.float64]]:
    torch = require_torch()
    device = next(members[0][1].module_.parameters()).device
    stack = _StackedTCN([m[1].module_ for m in members])
    series = [m[3] for m in members]
    batch = np.zeros((len(members), max(len(s) for s in series), series[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(series):
        batch[i, : len(s)] = s
    x = torch.from_numpy(batch).to(device)
    # Causal: the zeros after a member's last row change none of its predictions.
    res = (stack.predict_sequence(x[:, :-1]) - x[:, 1:]).double().cpu().numpy()
    return [res[i, : len(s) - 1] for i, s in enumerate(series)]
