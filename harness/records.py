"""Typed tables and figures that a claim hands over beside its runs, and how each draws itself.

A claim test builds ``Table`` and figure records (``Lines``, ``Strip``, ``Bars``, ``Paths``, ``Images``);
construction checks them (unknown fields are a TypeError, mismatched lengths a ValueError), so a malformed
figure fails where it is made, not when the report is drawn. They are stored as plain JSON in the verdict
record (``as_dict``) and come back typed (``table_from_dict`` / ``figure_from_dict``) when the report is
rebuilt from the store. Nested parts (series, groups, reference lines, paths) may be given as records or
as dicts with the same fields.
"""
from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np


def _coerce(cls, value):
    return value if isinstance(value, cls) else cls(**value)


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.title!r}: row {i} has {len(row)} cells for {len(self.columns)} columns")

    def as_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True)
class Series:
    label: Optional[str]
    x: Sequence[float]
    y: Sequence[float]
    lo: Optional[Sequence[float]] = None  # band (e.g. min..max over seeds)
    hi: Optional[Sequence[float]] = None
    marker: Optional[str] = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: {len(self.x)} x values for {len(self.y)} y values")


@dataclass(frozen=True)
class Group:
    label: str
    values: Sequence[float]


ROLES = ("posts", "threshold", "chance", "other")  # what a reference line stands for
_STYLE = {"posts": dict(ls="--"), "threshold": dict(ls=":", lw=1.6), "chance": dict(ls="-.", lw=1.0),
          "other": dict(ls="--")}


@dataclass(frozen=True)
class Ref:
    """A horizontal reference line: the posts' value, the rule's threshold, chance, or another level."""
    y: float
    label: str
    color: str = "gray"
    role: str = ""  # one of ROLES; "" (records stored before roles) is read from the label

    def __post_init__(self) -> None:
        if self.role and self.role not in ROLES:
            raise ValueError(f"reference line {self.label!r}: role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def kind(self) -> str:
        if self.role:
            return self.role
        low = self.label.lower()
        return next((r for r, words in (("posts", ("posts",)), ("chance", ("chance",)),
                                        ("threshold", ("rule", "threshold"))) if any(w in low for w in words)),
                    "other")

    def draw(self, ax) -> None:
        ax.axhline(self.y, color=self.color, label=self.label, **_STYLE[self.kind])


def chance(percent: float, scale: float = 1.0) -> Ref:
    """The chance level of a classifier, ``percent`` in %, on an axis in fractions (``scale`` 1) or in
    percent (``scale`` 100)."""
    return Ref(y=percent * scale / 100, label=f"chance ({percent:.3g}%)", color="black", role="chance")


@dataclass(frozen=True)
class Path2D:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: Optional[str] = None


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = ""
    title: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def draws(self) -> set[str]:
        """What the figure draws besides its data, for a reader and for the tests: the roles of its reference
        lines ("posts", "threshold", "chance"), "interval" where it shows one, "posts" for a shaded reading."""
        out = {r.kind for r in getattr(self, "refs", [])}
        if getattr(self, "vspan", None):
            out.add("posts")
        if any(s.lo is not None for s in getattr(self, "series", [])) or getattr(self, "lo", None):
            out.add("interval")
        return out

    def draw(self, ax) -> None:  # one matplotlib Axes
        raise NotImplementedError

    def render(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=getattr(self, "size", None) or (6.4, 4.2), dpi=100)
        try:
            self.draw(ax)
            ax.set_title(self.title, fontsize=10)
            ax.set_xlabel(getattr(self, "xlabel", ""))
            ax.set_ylabel(getattr(self, "ylabel", ""))
            handles, _ = ax.get_legend_handles_labels()
            if len(handles) > 4:  # many series: the legend goes beside the axes, never over a curve
                fig.set_size_inches(fig.get_size_inches()[0] + 2.6, fig.get_size_inches()[1])
                ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
            elif handles:
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(path, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)


@dataclass(frozen=True)
class Lines(Figure):
    kind: ClassVar[str] = "lines"
    series: list[Series] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    vspan: Optional[Sequence[float]] = None  # a shaded x range (e.g. the posts' reading of an LR plot)
    size: Optional[Sequence[float]] = None
    refs: list[Ref] = field(default_factory=list)
    caption: str = ""  # what a band or a subset is; shown under the figure

    def __post_init__(self) -> None:
        object.__setattr__(self, "series", [_coerce(Series, s) for s in self.series])
        object.__setattr__(self, "refs", [_coerce(Ref, r) for r in self.refs])

    def draw(self, ax) -> None:
        for s in self.series:
            ax.plot(s.x, s.y, label=s.label, marker=s.marker or ("o" if len(s.x) < 3 else None),
                    lw=1.5)  # few points: dots
            if s.lo is not None and s.hi is not None:
                ax.fill_between(s.x, s.lo, s.hi, alpha=0.2)
        if self.xlog:
            ax.set_xscale("log")
        if self.vspan:
            ax.axvspan(*self.vspan, color="tab:green", alpha=0.12, label="posts' reading")
        for r in self.refs:
            r.draw(ax)
        if self.ylog:
            ax.set_yscale("log")


@dataclass(frozen=True)
class Strip(Figure):
    """Per-seed values of each group as dots, the group mean as a bar, reference levels as dashed lines."""

    kind: ClassVar[str] = "strip"
    groups: list[Group] = field(default_factory=list)
    ylabel: str = ""
    refs: list[Ref] = field(default_factory=list)
    caption: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", [_coerce(Group, g) for g in self.groups])
        object.__setattr__(self, "refs", [_coerce(Ref, r) for r in self.refs])

    def draw(self, ax) -> None:
        for i, g in enumerate(self.groups):
            xs = [i + 0.08 * ((j % 5) - 2) for j in range(len(g.values))]
            ax.plot(xs, list(g.values), "o", alpha=0.7)
            if len(g.values):
                ax.hlines(sum(g.values) / len(g.values), i - 0.25, i + 0.25, color="k")
        ax.set_xticks(range(len(self.groups)), [g.label for g in self.groups])
        for r in self.refs:
            r.draw(ax)


@dataclass(frozen=True)
class Bars(Figure):
    kind: ClassVar[str] = "bars"
    labels: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ylabel: str = ""
    colors: Optional[list[str]] = None
    refs: list[Ref] = field(default_factory=list)
    ylog: bool = False
    rotate: float = 0
    size: Optional[Sequence[float]] = None
    lo: Optional[list[float]] = None  # each bar's interval (an effect's 95% CI), drawn as an error bar
    hi: Optional[list[float]] = None
    caption: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.values):
            raise ValueError(f"bars {self.title!r}: {len(self.labels)} labels for {len(self.values)} values")
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and not (
                len(self.lo) == len(self.hi) == len(self.values))):
            raise ValueError(f"bars {self.title!r}: give lo and hi together, one per bar")
        object.__setattr__(self, "refs", [_coerce(Ref, r) for r in self.refs])

    def draw(self, ax) -> None:
        err = None
        if self.lo is not None:
            err = [[v - lo for v, lo in zip(self.values, self.lo)], [hi - v for v, hi in zip(self.values, self.hi)]]
        ax.bar(self.labels, self.values, color=self.colors, yerr=err, capsize=4 if err else 0)
        for r in self.refs:
            r.draw(ax)
        if self.ylog:
            ax.set_yscale("log")
        ax.tick_params(axis="x", labelrotation=self.rotate)


@dataclass(frozen=True)
class Paths(Figure):
    """Optimiser paths on a 2-D surface over its (log-scaled) contour."""

    kind: ClassVar[str] = "trajectories2d"
    paths: list[Path2D] = field(default_factory=list)
    contour: Optional[dict] = None  # {"x", "y", "z", "levels"}
    start: Optional[Sequence[float]] = None
    minimum: Optional[Sequence[float]] = None
    xlim: Optional[Sequence[float]] = None
    ylim: Optional[Sequence[float]] = None
    xlabel: str = ""
    ylabel: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", [_coerce(Path2D, p) for p in self.paths])

    def draw(self, ax) -> None:
        from matplotlib.colors import LogNorm

        c = self.contour
        if c:
            ax.contour(c["x"], c["y"], c["z"], levels=c.get("levels", 30), norm=LogNorm(), cmap="jet",
                       linewidths=0.7)
        for p in self.paths:
            ax.plot(p.x, p.y, label=p.label, lw=1.8, color=p.color)
            ax.plot(p.x[-1], p.y[-1], "o", color=p.color, ms=4)
        if self.start is not None:
            ax.plot(*self.start, "ko", ms=5, label="start")
        if self.minimum is not None:
            ax.plot(*self.minimum, "r*", ms=14, label="global minimum")
        if self.xlim is not None and self.ylim is not None:
            ax.set_xlim(*self.xlim)
            ax.set_ylim(*self.ylim)


@dataclass(frozen=True)
class Images(Figure):
    """A row of sample images, kept as base64 PNGs so the report redraws them from the store alone."""

    kind: ClassVar[str] = "images"
    images: list[dict] = field(default_factory=list)  # {"label", "png"}

    @classmethod
    def of(cls, title: str, items) -> "Images":
        """From (label, HxWx3 array, uint8 or floats in [0, 1]) pairs."""
        import matplotlib.image as mpimg

        images = []
        for label, arr in items:
            buf = io.BytesIO()
            mpimg.imsave(buf, arr, format="png")
            images.append({"label": label, "png": base64.b64encode(buf.getvalue()).decode()})
        return cls(title=title, images=images)

    def render(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(self.images), figsize=(1.6 * len(self.images), 2.0), dpi=100,
                                 squeeze=False)
        try:
            for ax, im in zip(axes[0], self.images):
                ax.imshow(mpimg.imread(io.BytesIO(base64.b64decode(im["png"])), format="png"))
                ax.set_title(im["label"], fontsize=9)
                ax.axis("off")
            fig.suptitle(self.title, fontsize=9)
            fig.tight_layout()
            fig.savefig(path, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)


FIGURES = {cls.kind: cls for cls in (Lines, Strip, Bars, Paths, Images)}


DRAWN = {"posts": "the posts' value", "threshold": "the rule's threshold", "chance": "chance"}


def legend_line(fig: Figure) -> str:
    """The line under a figure on its page: what it draws besides the data, what a band or an error bar is,
    and its caption."""
    d = fig.draws()
    drawn = [DRAWN[k] for k in DRAWN if k in d]
    parts = [f"drawn: {', '.join(drawn)}"] if drawn else []
    if "interval" in d:  # bands come from accuracy_bands only; error bars are effects' intervals
        parts.append(BANDS if isinstance(fig, Lines) else "error bars: each bar's 95% interval")
    if getattr(fig, "caption", ""):
        parts.append(fig.caption)
    return "; ".join(parts)


def figure_from_dict(d: dict) -> Figure:
    kind = d.get("kind")
    if kind not in FIGURES:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(sorted(FIGURES))}")
    cls = FIGURES[kind]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def table_from_dict(d: dict) -> Table:
    return Table(d["title"], d["columns"], d["rows"])


def as_stored(item) -> dict:
    """A table or figure as the verdict record stores it (typed records only)."""
    if isinstance(item, (Table, Figure)):
        return item.as_dict()
    raise TypeError(f"hand over tables and figures as harness.records types, not {type(item).__name__}")


# figure builders the benchmarks use (from runs as stored)

def accuracy_bands(runs_by_arm: dict[str, list[dict]], x: str = "step", percent: bool = False) -> list[Series]:
    """"lines" series of accuracy (1 - error_rate) per evaluation point (history key ``x``: "step" or
    "epoch"): the mean over seeds with a min..max band; runs whose history is shorter than the first
    run's (diverged) are left out, and arms without runs."""
    series = []
    for arm, runs in runs_by_arm.items():
        if not runs:
            continue
        xs = [h[x] for h in runs[0]["history"]]
        ys = np.array([[1 - h.get("error_rate", 1.0) for h in r["history"]] for r in runs
                       if len(r["history"]) == len(xs)]) * (100.0 if percent else 1.0)
        series.append(Series(arm, xs, ys.mean(0).tolist(), lo=ys.min(0).tolist(), hi=ys.max(0).tolist()))
    return series


BANDS = "lines: the mean over seeds; shaded: the lowest to the highest seed at each point"


def epoch_history(run: dict) -> list[dict]:
    """A fastai-style run's history over all its stages, each entry with its 1-based epoch."""
    if run.get("history") and "epoch" in run["history"][0]:
        return run["history"]
    return [dict(h, epoch=i + 1) for i, h in enumerate(h for st in run.get("stages", []) for h in st["history"])]


def accuracy_curves(title: str, runs_by_arm: dict[str, list[dict]], *, x: str = "epoch",
                    ylabel: str = "validation accuracy", percent: bool = False, bands: bool = True,
                    refs: Sequence[Ref] = (), note: str = "") -> Lines:
    """Accuracy per evaluation point (``x``: "epoch" over all stages, or "step"): each arm's mean over seeds,
    with the seeds' range as a band unless ``bands`` is off (many arms: their bands hide each other). Diverged
    runs are left out and counted in the caption, after ``note``."""
    ok = {arm: [dict(r, history=epoch_history(r)) if x == "epoch" else r for r in runs if r.get("diverged") is None]
          for arm, runs in runs_by_arm.items()}
    left_out = sum(len(runs) - len(ok[arm]) for arm, runs in runs_by_arm.items())
    series = accuracy_bands(ok, x=x, percent=percent)
    if not bands:
        series = [Series(s.label, s.x, s.y) for s in series]
    caption = "; ".join(c for c in (note, "" if bands else "lines: the mean over seeds of each arm (no bands)",
                                    f"{left_out} diverged run(s) left out" if left_out else "") if c)
    return Lines(title=title, xlabel=x, ylabel=ylabel, series=series, refs=list(refs), caption=caption)


def epoch_table(run: dict, dataset: str, posts_error: Sequence[float] = (), what: str = "per epoch in the posts' "
                "format") -> Table:
    """One seed's per-epoch numbers in the posts' format (all stages in order), with the posts' error_rate beside
    ours where the posts printed one (a scaled-down run has fewer epochs: then the columns are not aligned in
    time); the title names the dataset, our network and the posts' (``beside_posts_title``)."""
    rows = [[h["epoch"], f"{h['train_loss']:.6f}", f"{h.get('valid_loss', float('nan')):.6f}",
             f"{h['error_rate']:.6f}" if "error_rate" in h else "—",
             f"{posts_error[i]:.6f}" if i < len(posts_error) else "—"] for i, h in enumerate(epoch_history(run))]
    title = (beside_posts_title(dataset, run, what) if posts_error else
             f"{dataset}: per epoch, seed {run['seed']}, {network_of(run.get('config') or {})}")
    return Table(title=title, columns=["epoch", "train_loss", "valid_loss", "error_rate", "posts' error_rate"],
                 rows=rows)


def network_of(config: dict) -> str:
    """A run's network in words, from its config: e.g. "ResNet-10 at 1/4 width, from scratch, 96 px" or
    "EfficientNet-Lite0, ImageNet-pretrained, 96 px"."""
    arch = str(config.get("arch", "?")).replace("resnet", "ResNet-").replace("efficientnet_lite", "EfficientNet-Lite")
    width = config.get("width", 1.0)
    w = "" if width in (1, 1.0, None) else f" at {width:g} width"
    how = "ImageNet-pretrained" if config.get("pretrained") else "from scratch"
    size = f", {config['size']} px" if config.get("size") else ""
    return f"{arch}{w}, {how}{size}"


def beside_posts_title(dataset: str, run: dict, what: str) -> str:
    """The title of a table that puts our run beside the posts' printed one: which dataset, which network, which
    source, and "not comparable" where our network is not the posts' (an ImageNet ResNet-34)."""
    cfg = run.get("config") or {}
    ours = network_of(cfg)
    same = cfg.get("arch") == "resnet34" and cfg.get("pretrained") and cfg.get("width", 1.0) == 1.0
    verdict = "the same network as the posts" if same else "not comparable: a different network, shown for its shape"
    return (f"{dataset}, {what}: ours = {ours}, seed {run.get('seed')}; posts' column = their ImageNet ResNet-34 run "
            f"as the post printed it ({verdict})")


def lr_finder_figure(title: str, runs: list[dict], span: list[float] | None = None) -> Lines | None:
    """Each run's LR-finder curve as fastai's recorder.plot() showed it (log lr vs smoothed loss), ``span``
    shaded (the posts' reading); None when no run has a curve."""
    series = [Series(f"seed {r['seed']}", r["lr_find"]["plot_lr"], r["lr_find"]["plot_loss"])
              for r in runs if r.get("lr_find") and r["lr_find"]["plot_lr"]]
    if not series:
        return None
    return Lines(title=title, series=series, xlabel="learning rate", ylabel="smoothed training loss", xlog=True,
                 vspan=span)


def images_figure(title: str, items: list[tuple[str, np.ndarray]]) -> Images:
    """Sample images (label, HxWx3 array) kept in the record, so the report draws them from the store alone."""
    return Images.of(title, items)
