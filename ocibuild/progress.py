"""How the CLI shows a build: a live view on a terminal, grouped plain lines in a log.

The library reports ``ocibuild.events``; ``Reporter`` turns them into what a person reads on stderr:

* plain lines (stderr is not a terminal, e.g. CI): one ``layer`` line per layer, a layer every platform
  has printed once when all of them reported it; a ``push``/``pull`` line per blob actually moved; one
  ``pushed`` / ``wrote`` line per output with what its transfers cost;
* with ``live=True`` on a terminal, a ``rich`` live table: one row per layer, one column per platform,
  a progress bar per blob in flight, the output lines under it (they stay once it stops);
* ``quiet``: nothing but warnings.

The line formats are in ``docs/guides/progress.md``.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .events import (
    BaseResolved,
    BlobTransferred,
    BuildStarted,
    Event,
    LayerDone,
    LayerExplained,
    Note,
    OutputDone,
    Progress,
    Pushed,
    human_size,
)
from .spec import Reference

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = ["Reporter", "close_reporters"]

_OPEN: weakref.WeakSet[Reporter] = weakref.WeakSet()


def close_reporters() -> None:
    """Close every reporter still open: the live view stops, held layer lines are printed (``main``
    calls it before it prints an error, so the error comes last)."""
    for reporter in list(_OPEN):
        reporter.close()


@dataclass(kw_only=True, slots=True)
class _Row:
    """One layer of the build: what each platform column reported (column -1: a layer every platform shares)."""

    label: str
    cells: dict[int, LayerDone] = field(default_factory=dict)
    why: dict[str, set[str | None]] = field(default_factory=dict)
    """cause -> the platforms that gave it (None: the shared layer)."""
    told: set[str] = field(default_factory=set)
    """causes already shown"""
    printed: bool = False

    @property
    def shared(self) -> bool:
        return -1 in self.cells


def _same_platform(a: str, b: str) -> bool:
    """``linux/arm64`` (asked for) and ``linux/arm64/v8`` (what the base says) are one column."""
    pa, pb = a.split("/"), b.split("/")
    return pa[:2] == pb[:2] and (len(pa) < 3 or len(pb) < 3 or pa[2] == pb[2])


class _Layers:
    """The build's layers by label, and its platforms (the columns)."""

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.expected = 1
        self.rows: dict[str, _Row] = {}

    def started(self, platforms: tuple[str, ...]) -> None:
        self.columns = list(platforms)
        self.expected = max(1, len(platforms))
        self.rows = {}

    def column(self, platform: str | None) -> int:
        """The column of ``platform`` (-1 for None); a platform not asked for by name gets a new one."""
        if platform is None:
            return -1
        for i, name in enumerate(self.columns):
            if name == platform or _same_platform(name, platform):
                if len(platform) > len(name):
                    self.columns[i] = platform  # the base's own name (with the variant)
                return i
        self.columns.append(platform)
        return len(self.columns) - 1

    def row(self, label: str) -> _Row:
        return self.rows.setdefault(label, _Row(label=label))

    def done(self, event: LayerDone) -> _Row:
        row = self.row(event.label)
        row.cells[self.column(event.platform)] = event
        return row

    def complete(self, row: _Row) -> bool:
        """Every platform has reported ``row`` (a shared layer: at once)."""
        return row.shared or len(row.cells) >= self.expected or self.expected < 2

    def explained(self, event: LayerExplained) -> tuple[_Row, list[str]]:
        """Record ``event``'s causes; returns the row and the causes new to it."""
        row = self.row(event.label)
        new = [c for c in event.causes if c not in row.why]
        for cause in event.causes:
            row.why.setdefault(cause, set()).add(event.platform)
        return row, new

    def why_lines(self, row: _Row, causes: list[str] | None = None, *, named: bool = False) -> list[str]:
        """``why:`` lines for ``causes`` (default: every one not told yet), each once; a cause only some
        platforms of a multi-platform build gave names them. ``named``: with the layer's label (a
        line of its own, not under the layer's)."""
        out = []
        for cause in causes if causes is not None else list(row.why):
            if cause in row.told:
                continue
            row.told.add(cause)
            platforms = row.why.get(cause, set())
            some = sorted(self.columns[self.column(p)] for p in platforms if p is not None)
            suffix = f" ({', '.join(some)})" if self.expected > 1 and some and len(some) < self.expected else ""
            out.append(f"why     {row.label}: {cause}{suffix}" if named else f"        why: {cause}{suffix}")
        return out


def _state(event: LayerDone) -> str:
    return "cached" if event.cached else "built "


def _single_line(event: LayerDone) -> str:
    """The ``layer`` line of a layer of a one-platform build, or one every platform shares::

        layer   app                  built      515 B      3 files  9ced697bcbbf  0.01s
    """
    size = human_size(event.descriptor.size)
    return (f"layer   {event.label:<20} {_state(event)} {size:>9}  {event.files:>5} files  "
            f"{event.descriptor.digest.short}  {event.seconds:.2f}s")


def _grouped_line(row: _Row, columns: list[str]) -> str:
    """The one ``layer`` line of a layer built per platform: state and size in a column per platform,
    the most files, the longest time::

        layer   py:numpy             linux/amd64 built    18.2 MB  linux/arm64/v8 built    16.9 MB    812 files  2.31s
    """
    events = [row.cells[i] for i in sorted(row.cells)]
    cells = "  ".join(f"{columns[i]} {_state(e)} {human_size(e.descriptor.size):>9}"
                      for i, e in sorted(row.cells.items()))
    files = max(e.files for e in events)
    return f"layer   {row.label:<20} {cells}  {files:>5} files  {max(e.seconds for e in events):.2f}s"


@dataclass(kw_only=True, slots=True)
class _Tally:
    """What one repository's blobs cost: (count, bytes) by how they got there."""

    counts: dict[str, list[int]] = field(default_factory=lambda: {"uploaded": [0, 0], "exists": [0, 0],
                                                                  "mounted": [0, 0]})

    def add(self, event: BlobTransferred) -> None:
        entry = self.counts[event.how]
        entry[0] += 1
        entry[1] += event.size

    def merge(self, other: _Tally) -> None:
        for how, (n, size) in other.counts.items():
            self.counts[how][0] += n
            self.counts[how][1] += size

    def __str__(self) -> str:
        (up, up_b), (ex, ex_b), (mo, mo_b) = (self.counts[k] for k in ("uploaded", "exists", "mounted"))
        return (f"{up} uploaded ({human_size(up_b)}), {ex} skipped ({human_size(ex_b)}), "
                f"{mo} mounted ({human_size(mo_b)})")


class _Outputs:
    """Blob transfers by repository, until the output they belong to is done."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.pushed: dict[str, None] = {}

    def transferred(self, event: BlobTransferred) -> None:
        if event.how in ("uploaded", "exists", "mounted"):
            self.tallies.setdefault((event.registry, event.repository), _Tally()).add(event)

    def summary(self, event: OutputDone) -> str:
        """``pushed  REF@DIGEST  N uploaded (SIZE), N skipped (SIZE), N mounted (SIZE)  Ts`` for a
        registry, ``wrote   OUTPUT  DIGEST  Ts`` for a file or folder (a multi-output: both parts)."""
        parts = event.output.split(", ")
        registries = [p.removeprefix("docker://") for p in parts if p.startswith("docker://")]
        tally = _Tally()
        for text in registries:
            try:
                ref = Reference.parse(text)
            except ValueError:
                continue
            found = self.tallies.pop((ref.api_host, ref.repository), None)
            if found is not None:
                tally.merge(found)
            self.pushed.pop(f"{text}@{event.digest}", None)
        if len(parts) == 1 and registries:
            head = f"pushed  {registries[0]}@{event.digest}"
        else:
            head = f"wrote   {event.output}  {event.digest}"
        return f"{head}  {tally}  {event.seconds:.2f}s" if registries else f"{head}  {event.seconds:.2f}s"


def _transfer_line(event: BlobTransferred) -> str | None:
    """``push    DIGEST12  uploaded     SIZE  RATE/s`` (or ``pull ... downloaded``); None for a blob that
    did not move (found there, mounted, in the cache): those are counted in the output's line."""
    if event.how not in ("uploaded", "downloaded"):
        return None
    rate = f"  {human_size(int(event.size / event.seconds))}/s" if event.seconds > 0 else ""
    verb = "pull" if event.how == "downloaded" else "push"
    return f"{verb:<7} {event.digest.short}  {event.how:<10} {human_size(event.size):>9}{rate}"


class Reporter:
    """Renders events on stderr (see the module's docstring); call ``close()`` when the command ends.

    Events come from several threads (platforms are built side by side, blobs pushed side by side).
    """

    def __init__(self, quiet: bool, *, live: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._lock = threading.Lock()  # the output: one whole line at a time (a batch shares one)
        self._state = threading.RLock()  # the layers and transfers
        self._layers = _Layers()
        self._outputs = _Outputs()
        self._last = 0.0
        self._started: dict[str, float] = {}
        self._view = _LiveView(self._layers, self._state, self._outputs) if live and self.tty and not quiet else None
        self._closed = False
        _OPEN.add(self)

    def say(self, text: str) -> None:
        """Print ``text`` as one line on stdout, even with --quiet (``ocibuild dev``'s cycle lines)."""
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            text = "\r\x1b[K" + text
        with self._lock:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def __call__(self, event: Event) -> None:
        if self.quiet or self._closed:
            if isinstance(event, Note) and event.warning:
                self._line(event.text)
            return
        if self._view is not None:
            self._view.handle(event)
            return
        with self._state:
            for text in self._plain(event):
                self._line(text)
        if isinstance(event, Progress) and self.tty:
            self._progress_line(event)

    def _plain(self, event: Event) -> list[str]:
        """The plain lines ``event`` completes (called with the state held)."""
        layers = self._layers
        if isinstance(event, BuildStarted):
            out = self._flush()
            layers.started(event.platforms)
            return out
        if isinstance(event, LayerDone):
            row = layers.done(event)
            if event.platform is None or layers.expected < 2:
                row.printed = True
                return [_single_line(event), *layers.why_lines(row)]
            if row.printed or not layers.complete(row):
                return []
            row.printed = True
            return [_grouped_line(row, layers.columns), *layers.why_lines(row)]
        if isinstance(event, LayerExplained):
            row, new = layers.explained(event)
            if row.printed:
                return layers.why_lines(row, new)
            return []
        if isinstance(event, BaseResolved):
            layers.column(event.platform)
            at = f"@{event.digest}" if event.digest else ""
            return [f"base    {event.base}{at} ({event.layers} layers, {event.platform})"]
        if isinstance(event, BlobTransferred):
            self._outputs.transferred(event)
            line = _transfer_line(event)
            return [line] if line else []
        if isinstance(event, Note):
            return [event.text]
        if isinstance(event, Pushed):
            self._outputs.pushed[event.reference] = None
            return []
        if isinstance(event, OutputDone):
            return [*self._flush(), self._outputs.summary(event)]
        return []

    def _flush(self) -> list[str]:
        """The lines of layers not every platform reported (one was skipped, or failed)."""
        out = []
        for row in self._layers.rows.values():
            if row.printed:
                continue
            row.printed = True
            if row.cells:
                out += [_grouped_line(row, self._layers.columns), *self._layers.why_lines(row)]
            else:
                out += self._layers.why_lines(row, named=True)
        return out

    def _progress_line(self, event: Progress) -> None:
        """Plain mode on a terminal (``ocibuild dev``): one line per transfer, rewritten in place."""
        now = time.monotonic()
        start = self._started.setdefault(str(event.digest), now)
        if now - self._last < 0.2 and event.done < event.total:
            return
        self._last = now
        speed = event.done / max(now - start, 1e-6)
        width = 24
        filled = int(width * event.done / event.total) if event.total else width
        bar = "#" * filled + "." * (width - filled)
        with self._lock:
            sys.stderr.write(f"\r\x1b[K{event.action:<7} {event.digest.short}  [{bar}] {human_size(event.done)}/"
                             f"{human_size(event.total)}  {human_size(int(speed))}/s")
            sys.stderr.flush()

    def close(self) -> None:
        """End the view: the live display stops (its last frame stays), held layer lines are printed,
        and a push no output line named. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        if self._view is not None:
            self._view.stop()
            return
        if self.quiet:
            return
        with self._state:
            lines = [*self._flush(), *(f"pushed  {ref}" for ref in self._outputs.pushed)]
            self._outputs.pushed.clear()
        for text in lines:
            self._line(text)


@dataclass(kw_only=True, slots=True)
class _Flight:
    action: str
    done: int
    total: int
    start: float


class _LiveView:
    """The ``rich`` live display on stderr: the layer table, the blobs in flight, the output lines.

    Everything written to the terminal (a redraw, a line printed over the live area) goes out under
    one lock from whichever thread, so two writers never move the cursor for each other; the redraws
    come from a ticker thread of ours. Lock order: that lock, then the state lock (taken to draw), so
    nothing calls into rich while holding the state lock."""

    REFRESH = 1 / 8

    def __init__(self, layers: _Layers, state: threading.RLock, outputs: _Outputs) -> None:
        from rich.console import Console

        self.layers = layers
        self.state = state
        self.outputs = outputs
        self.console: Console = Console(file=sys.stderr, highlight=False, markup=False)
        self.flights: dict[str, _Flight] = {}
        self.summaries: list[str] = []
        self.live: Live | None = None
        self._out = threading.RLock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def handle(self, event: Event) -> None:
        outputs = self.outputs
        above: list[tuple[str, str]] = []  # (text, style) printed over the live area
        with self.state:
            if isinstance(event, BuildStarted):
                self.layers.started(event.platforms)
            elif isinstance(event, LayerDone):
                row = self.layers.done(event)
                if self.layers.complete(row):
                    above += [(t, "dim") for t in self.layers.why_lines(row, named=True)]
            elif isinstance(event, LayerExplained):
                row, new = self.layers.explained(event)
                if row.cells and self.layers.complete(row):
                    above += [(t, "dim") for t in self.layers.why_lines(row, new, named=True)]
            elif isinstance(event, BaseResolved):
                self.layers.column(event.platform)
                at = f"@{event.digest}" if event.digest else ""
                above.append((f"base    {event.base}{at} ({event.layers} layers, {event.platform})", ""))
            elif isinstance(event, Progress):
                flight = self.flights.setdefault(str(event.digest), _Flight(action=event.action, done=0,
                                                                            total=event.total, start=time.monotonic()))
                flight.done, flight.total = event.done, event.total
            elif isinstance(event, BlobTransferred):
                self.flights.pop(str(event.digest), None)
                outputs.transferred(event)
                if event.how == "downloaded":
                    above.append((_transfer_line(event) or "", ""))
            elif isinstance(event, Pushed):
                outputs.pushed[event.reference] = None
            elif isinstance(event, OutputDone):
                self.summaries.append(outputs.summary(event))
            elif isinstance(event, Note):
                above.append((event.text, "yellow" if event.warning else ""))
        with self._out:
            if self._stopped.is_set():
                return
            if self.live is None and not isinstance(event, Note | BaseResolved | Pushed):
                self._start()
            for text, style in above:
                self.console.print(text, style=style or None, soft_wrap=True)

    def _start(self) -> None:
        from rich.live import Live

        self.live = Live(console=self.console, get_renderable=self.render, auto_refresh=False,
                         redirect_stdout=False, redirect_stderr=True)
        self.live.start(refresh=True)
        self._ticker = threading.Thread(target=self._tick, name="ocibuild-live", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stopped.wait(self.REFRESH):
            with self._out:
                if self.live is not None and not self._stopped.is_set():
                    self.live.refresh()

    def stop(self) -> None:
        """Draw the last frame (what is still in flight failed, or was interrupted: not drawn) and stop."""
        with self.state:
            self.flights.clear()
            untold = [t for row in self.layers.rows.values() for t in self.layers.why_lines(row, named=True)]
        with self._out:
            self._stopped.set()
            if self.live is not None:
                self.live.stop()
            for text in untold:  # causes of layers some platform never reported
                self.console.print(text, style="dim", soft_wrap=True)
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self.state:
            layers = self.layers
            columns = list(layers.columns) or ["state"]
            rows = [(r.label, dict(r.cells)) for r in layers.rows.values() if r.cells]
            flights = [(d, f.action, f.done, f.total, f.start) for d, f in self.flights.items()]
            summaries = list(self.summaries)
        parts: list[RenderableType] = []
        if rows:
            table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
            table.add_column("layer", no_wrap=True)
            for name in columns:
                table.add_column(name, no_wrap=True)
            table.add_column("files", justify="right")
            table.add_column("time", justify="right")
            for label, cells in rows:
                texts = [_cell(cells, i) for i in range(len(columns))]
                files = max(e.files for e in cells.values())
                seconds = max(e.seconds for e in cells.values())
                table.add_row(label, *texts, str(files), f"{seconds:.2f}s")
            parts.append(table)
        if flights:
            grid = Table.grid(padding=(0, 2))
            now = time.monotonic()
            for digest, action, done, total, start in flights:
                rate = done / max(now - start, 1e-6)
                grid.add_row(f"{action} {digest.split(':')[-1][:12]}",
                             ProgressBar(total=max(total, 1), completed=done, width=30),
                             f"{human_size(done)}/{human_size(total)}", f"{human_size(int(rate))}/s")
            parts.append(grid)
        parts += [Text(s, style="bold") for s in summaries]
        return Group(*parts)


def _cell(cells: dict[int, LayerDone], column: int) -> RenderableType:
    from rich.text import Text

    if -1 in cells:  # a layer every platform shares: shown once
        if column:
            return Text("shared", style="dim")
        event: LayerDone | None = cells[-1]
    else:
        event = cells.get(column)
    if event is None:
        return Text("building…", style="dim")
    state = "cached" if event.cached else "built"
    return Text(f"{state} {human_size(event.descriptor.size)}", style="green" if event.cached else "yellow")
