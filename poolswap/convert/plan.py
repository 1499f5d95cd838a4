"""The plan: one row per site, plain data only (str/int/float/bool/list/dict/None), so it serialises into a
checkpoint that ``torch.load(weights_only=True)`` opens, and ``print(plan)`` shows a readable table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Site", "Plan", "PLAN_VERSION"]

PLAN_VERSION = 1


@dataclass
class Site:
    """One pooling / upsampling site.

    name: module path, or ``<enclosing path>/<fn>/<index>`` for a functional call.
    kind: ``"module"`` or ``"functional"``; path: the module (or the enclosing module of a functional call).
    target: ``"max"``, ``"avg"``, ``"adaptive"`` or ``"upsample"``; op: class name or ``F.<fn>``.
    nd: spatial dims; args: the original geometry (pools) or size/scale/mode (upsample).
    calls: ``[{"input": [N, C, *S], "output": [N, C, *O]}, ...]``, one per call in the example forward.
    status: ``"convert"`` or ``"skip"``; reason: why skipped (or a note on a converted site).
    method: the replacement's registry name (``"callable:<qualname>"`` for a callable); replacement: its
    class name; kwargs: the keyword extras it was built with (plain data, re-applied on load).
    same_padding: the original pads dynamically like TensorFlow's "SAME" (timm's ``*Same`` pools).
    beta_shape / params: shape of the added β logit (None without β) and the number of added parameters.
    paired_with: for an upsample site, the pool site it inverts; for a pool, the upsample sites using it.
    """

    name: str
    kind: str
    path: str
    target: str
    op: str
    nd: int
    args: dict[str, Any]
    calls: list[dict[str, list[int]]] = field(default_factory=list)
    status: str = "skip"
    reason: str = ""
    method: str | None = None
    replacement: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    same_padding: bool = False
    beta_shape: list[int] | None = None
    params: int = 0
    paired_with: list[str] = field(default_factory=list)
    fn: str | None = None
    index: int | None = None

    @property
    def converted(self) -> bool:
        return self.status == "convert"

    @property
    def input_shape(self) -> list[int] | None:
        return self.calls[0]["input"] if self.calls else None

    @property
    def output_shape(self) -> list[int] | None:
        return self.calls[0]["output"] if self.calls else None

    def geometry_text(self) -> str:
        a = self.args
        if self.target == "upsample":
            how = f"size={a.get('size')}" if a.get("size") is not None else f"x{_fmt(a.get('scale_factor'))}"
            return f"{how} {a.get('mode') or 'nearest'}"
        if self.target == "adaptive":
            return f"out={_fmt(a.get('output_size'))}"
        parts = [f"k{_fmt(a.get('kernel_size'))}", f"s{_fmt(a.get('stride'))}", f"p{_fmt(a.get('padding'))}"]
        if _fmt(a.get("dilation", 1)) not in ("1", "None"):
            parts.append(f"d{_fmt(a.get('dilation'))}")
        if a.get("ceil_mode"):
            parts.append("ceil")
        if self.same_padding:
            parts.append("same")
        return " ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        if value and all(v == value[0] for v in value):
            return _fmt(value[0])
        return "x".join(_fmt(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shape(shape: list[int] | None) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)


@dataclass
class Plan:
    """The conversion plan of a model: what :func:`poolswap.convert` does (or did).

    ``sites``: every site (converted and skipped); ``unreached``: ``[{"where": ..., "reason": ...}]`` for what
    discovery could not see or FX could not rewrite; ``options``: the rules it was made with (plain data);
    ``example``: the example input shapes.
    """

    method: str
    sites: list[Site]
    options: dict[str, Any] = field(default_factory=dict)
    example: list[list[int]] = field(default_factory=list)
    unreached: list[dict[str, str]] = field(default_factory=list)
    version: int = PLAN_VERSION

    # -- queries -----------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site named {name!r}; sites: {', '.join(s.name for s in self.sites)}")

    def __iter__(self):
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    @property
    def converted(self) -> list[Site]:
        return [s for s in self.sites if s.converted]

    @property
    def skipped(self) -> list[Site]:
        return [s for s in self.sites if not s.converted]

    @property
    def params(self) -> int:
        """Parameters the conversion adds (β logits, LiftPool's predictors)."""
        return sum(s.params for s in self.converted)

    # -- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (str/int/float/bool/None/list/dict): safe for ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        if not isinstance(data, dict) or "sites" not in data:
            raise ValueError("plan must be a dict made by Plan.to_dict()")
        if data.get("version", PLAN_VERSION) > PLAN_VERSION:
            raise ValueError(f"plan version {data['version']} is newer than this poolswap ({PLAN_VERSION})")
        fields = {k: v for k, v in data.items() if k != "sites"}
        return cls(sites=[Site(**s) for s in data["sites"]], **fields)

    # -- table -------------------------------------------------------------------------------------------
    def table(self) -> str:
        header = ("site", "kind", "op", "geometry", "in -> out", "replacement", "beta", "+params", "status", "reason")
        rows: list[tuple[str, ...]] = []
        for s in self.sites:
            shapes = f"{_shape(s.input_shape)} -> {_shape(s.output_shape)}" if s.calls else "(not called)"
            beta = _shape(s.beta_shape) if s.beta_shape is not None else "-"
            rows.append((
                s.name, s.kind[:3], s.op, s.geometry_text(), shapes, s.replacement or "-", beta,
                f"{s.params:,}" if s.converted else "-", s.status, s.reason,
            ))  # fmt: skip
            for i, call in enumerate(s.calls[1:], 2):
                rows.append((f"  call {i}", "", "", "", f"{_shape(call['input'])} -> {_shape(call['output'])}",
                             "", "", "", "", ""))  # fmt: skip
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        out = [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]
        n_conv, n_skip = len(self.converted), len(self.skipped)
        out.append(
            f"{n_conv} converted, {n_skip} skipped, {self.params:,} parameters added "
            f"(method={self.method}, example input {', '.join(_shape(e) for e in self.example) or '-'})"
        )
        for item in self.unreached:
            out.append(f"not reached: {item['where']}: {item['reason']}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"Plan(method={self.method!r}, converted={len(self.converted)}, skipped={len(self.skipped)})"
