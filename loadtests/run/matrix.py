"""Matrices: TOML files that declare what a run measures, validated before anything starts.

A matrix has ``[defaults]`` and one or more ``[[cells]]`` groups; each group crosses its
``schemes``, ``topologies`` (and ``nodes`` for multi), ``scenarios`` and ``users`` and may override
any default. An open-model group with ``equal_load = true`` has no fixed rate: the runner sets one
rate for the whole group, below every scheme's measured capacity, so latency is compared at equal
load. An optional ``[capacity]`` table asks for a capacity search per scheme
(``loadtests/measure/capacity.py``). A ``fault`` (``redis-outage``, ``redis-stall``, ``node-kill``)
is injected ``fault_at_s`` into the measured window and lasts ``fault_s``; each fault cell gets
fresh services of its own. The axes keep the same names everywhere: in the file, the cell id, the
CSV columns and the charts. Every value is checked by pydantic (``SettingsTable``, ``SearchTable``
and ``common.validation``: strict TOML types, bounds, choices); any problem is one line naming
the file, the key and the choices.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common.outcomes import BadInput
from common.schemes import (
    ALGORITHMS,
    DEFAULT_JWT_LIBRARY,
    JWT_LIBRARIES,
    Scheme,
    parse_scheme,
    valid_scheme,
)
from common.validation import STRICT, TableError, checked, choice, number, validated
from loadtests.faults import NAMES, fault_named
from loadtests.run.schedule import ARRIVALS
from loadtests.run.thresholds import ThresholdError, parse_threshold

MATRICES_DIR = Path(__file__).parent.parent / "matrices"
TOPOLOGIES = ("single", "multi", "split")
SCENARIOS = ("read", "login", "refresh", "logout", "mixed", "revocation", "validation")
FAULTS = ("", *NAMES)
PERSISTENCE = ("none", "aof")
SESSION_TTL_S = 1800  # the server's default session lifetime
MODELS = ("closed", "open")
BALANCERS = ("client", "nginx")
SCHEME_CHOICES = (
    "none", "session-memory", "session-redis", "jwt-<ALG>", "jwt-<ALG>+deny",
    "jwt-<ALG>+introspect",
)  # fmt: skip
TOP_LEVEL_KEYS = (
    "description", "defaults", "cells", "generator_ceiling_rps", "capacity", "include",
    "margins", "equal_load_rate", "selftest", "primary", "thresholds",
)  # fmt: skip
# The comparison families a run may repeat until decided (``until-decided``): the seed's claims
# on per-request latency (sessions vs JWTs at equal load) and on CPU (HMAC vs asymmetric).
PRIMARY_COMPARISONS = ("sessions-latency", "hmac-cpu")
# The smallest effect of interest per metric family, as a share of the reference figure (and
# for latency at least an absolute amount): what "equivalent within ±m" means in verdicts.
DEFAULT_MARGINS: dict[str, dict[str, float]] = {
    "cpu": {"relative": 0.10, "absolute": 0.0},
    "throughput": {"relative": 0.10, "absolute": 0.0},
    "capacity": {"relative": 0.10, "absolute": 0.0},
    "latency": {"relative": 0.10, "absolute": 0.1},  # ms
}
DEFAULT_USERS = 20
AXIS_KEYS = ("schemes", "topologies", "nodes", "scenarios", "users")


def nginx_installed() -> bool:
    """Whether an nginx binary is available for the nginx balancer."""
    return bool(shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"))


class MatrixError(BadInput):
    """The matrix cannot be run; the message is one line for the user."""


@dataclass(frozen=True)
class CellSettings:
    """Per-cell settings a group may override."""

    warmup_s: float = 2.0
    duration_s: float = 5.0
    repetitions: int = 1
    model: str = "closed"
    rate: float = 0.0
    arrivals: str = ARRIVALS[0]
    population: int = 1000
    kdf_iterations: int = 10_000
    access_ttl: int = 300
    generator_processes: int = 1
    balancer: str = "client"
    equal_load: bool = False
    store_delay_ms: float = 0.0
    fault: str = ""
    fault_at_s: float = 2.0
    fault_s: float = 1.5
    persistence: str = "none"
    sliding_session: bool = False
    store_cache_s: int = 0
    library: str = DEFAULT_JWT_LIBRARY  # the JWT library of the servers (JWT schemes only)
    hops: int = 1
    introspect_cache_s: int = 0
    jwks_cooldown_s: float = 2.0
    jwks_ttl_s: int = 300
    kid_flood_share: float = 0.2
    planted_cost_us: int = 0  # a self-test's known extra CPU per auth step (self-tests only)


SETTING_KEYS = tuple(asdict(CellSettings()))


class SettingsTable(BaseModel):
    """What a matrix may set of CellSettings, key by key: type, bound, choices (same order)."""

    model_config = STRICT

    warmup_s: number(at_least=0) | None = None
    duration_s: number(at_least=0.5) | None = None
    repetitions: number(at_least=1, whole=True) | None = None
    model: choice(MODELS) | None = None
    rate: number(at_least=0) | None = None
    arrivals: choice(ARRIVALS) | None = None
    population: number(at_least=1, whole=True) | None = None
    kdf_iterations: number(at_least=1000, whole=True) | None = None
    access_ttl: number(at_least=1, whole=True) | None = None
    generator_processes: number(at_least=1, whole=True) | None = None
    balancer: choice(BALANCERS) | None = None
    equal_load: bool | None = None
    store_delay_ms: number(at_least=0) | None = None
    fault: choice(FAULTS[1:]) | None = None
    fault_at_s: number(at_least=0.5) | None = None
    fault_s: number(at_least=0.1) | None = None
    persistence: choice(PERSISTENCE) | None = None
    sliding_session: bool | None = None
    store_cache_s: number(at_least=0, whole=True) | None = None
    library: choice(JWT_LIBRARIES) | None = None
    hops: number(at_least=1, whole=True) | None = None
    introspect_cache_s: number(at_least=0, whole=True) | None = None
    jwks_cooldown_s: number(at_least=0.05) | None = None
    jwks_ttl_s: number(at_least=1, whole=True) | None = None
    kid_flood_share: number(at_least=0) | None = None
    planted_cost_us: number(at_least=0, whole=True) | None = None


SETTING_NOUNS = {
    "model": "model",
    "arrivals": "arrival process",
    "balancer": "balancer",
    "fault": "fault",
    "persistence": "persistence",
    "library": "JWT library",
}
GROUP_KEYS = AXIS_KEYS + SETTING_KEYS

# A cell's identity, defined once for the runner, the metrics, the analysis and compare. The
# measurement axes say what was measured (compare matches two runs on them); the conditions say
# how (window, population, generator): within a run, cells pool only when both agree.
MEASUREMENT_AXES = (
    "scheme", "topology", "nodes", "balancer", "scenario", "users", "model", "rate", "arrivals",
    "equal_load", "access_ttl", "store_delay_ms", "fault", "fault_s", "persistence",
    "sliding_session", "store_cache_s", "library", "hops", "introspect_cache_s",
    "jwks_cooldown_s", "jwks_ttl_s", "kid_flood_share",
)  # fmt: skip
CONDITIONS = (
    "warmup_s", "duration_s", "kdf_iterations", "population", "generator_processes", "fault_at_s",
)  # fmt: skip
# A self-test's planted cost: part of the cell, but what compare must find, not match on.
PLANTED = ("planted_cost_us",)
IDENTITY = (*MEASUREMENT_AXES, *CONDITIONS, *PLANTED)
# Settings that only a scheme with credentials reads: the ``none`` baseline ignores them.
CREDENTIAL_SETTINGS = (
    "access_ttl", "sliding_session", "store_cache_s", "library", "persistence",
    "introspect_cache_s", "jwks_cooldown_s", "jwks_ttl_s",
)  # fmt: skip
# Every setting but the repetition count is part of the identity: a new one must be placed.
assert set(IDENTITY) == {"scheme", "topology", "nodes", "scenario", "users"} | (
    set(SETTING_KEYS) - {"repetitions"}
), "every cell setting must be a measurement axis or a condition"


@dataclass(frozen=True)
class Cell:
    """One thing to measure (without its repetition number)."""

    scheme: str
    topology: str
    nodes: int
    scenario: str
    users: int
    settings: CellSettings
    tag: str = ""  # set when another cell of the matrix has the same readable id

    @property
    def kind(self) -> Scheme:
        """The parsed scheme id."""
        return parse_scheme(self.scheme)

    @property
    def alg(self) -> str:
        """The JWT algorithm, '' for other schemes."""
        return self.kind.alg

    @property
    def is_jwt(self) -> bool:
        return self.kind.is_jwt

    @property
    def store(self) -> str:
        """Where state lives: memory, redis (sessions, and a JWT's refresh tokens), '' for none."""
        if self.kind.is_session:
            return self.kind.store
        return "redis" if self.kind.is_jwt else ""

    @property
    def denylist(self) -> bool:
        return self.kind.denylist

    @property
    def introspect(self) -> bool:
        """Whether resource nodes ask the issuer about every token (split only)."""
        return self.kind.introspect

    @property
    def is_split(self) -> bool:
        return self.topology == "split"

    @property
    def sticky_users(self) -> bool:
        """Memory sessions on several nodes: each user keeps to one node (a sticky balancer)."""
        return self.store == "memory" and self.nodes > 1

    def cell_id(self, repetition: int) -> str:
        """Folder name: the axes in a fixed order (a JWT's non-default TTL too), the repetition."""
        balancer = "-nginx" if self.settings.balancer == "nginx" else ""
        processes = self.settings.generator_processes
        generator = f"-g{processes}" if processes > 1 else ""
        lifetime = f"-ttl{self.settings.access_ttl}" if self._short_lived else ""
        delay = self.settings.store_delay_ms
        distance = f"-d{delay:g}ms" if delay and self.store == "redis" else ""
        sliding = "-sliding" if self.settings.sliding_session else ""
        sliding += f"-cache{self.settings.store_cache_s}s" if self.settings.store_cache_s else ""
        library = self.settings.library
        sliding += f"-{library}" if library != CellSettings.library else ""
        hops = f"-h{self.settings.hops}" if self.settings.hops > 1 else ""
        jwks_ttl = self.settings.jwks_ttl_s
        hops += f"-jwks{jwks_ttl}s" if jwks_ttl != CellSettings.jwks_ttl_s else ""
        planted = self.settings.planted_cost_us
        lifetime += f"-planted{planted}us" if planted else ""
        return (
            f"{self.scheme}{sliding}__{self.topology}-{self.nodes}{hops}{balancer}{distance}"
            f"__{self.scenario}"
            f"{self.fault_label}__{self.load_label}-{self.users}u{generator}{lifetime}"
            f"{'-' + self.tag if self.tag else ''}__r{repetition}"
        )

    def identity(self) -> dict[str, Any]:
        """The values that make this cell a measurement of its own (see ``IDENTITY``)."""
        described = self.describe()
        return {key: described[key] for key in IDENTITY}

    def conditions_tag(self) -> str:
        """A short stable digest of the conditions, to tell apart cells of one readable id."""
        identity = self.identity()
        conditions = {key: identity[key] for key in CONDITIONS}
        text = json.dumps(conditions, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    @property
    def _short_lived(self) -> bool:
        """Whether the credential lifetime differs from the default (JWTs and sessions)."""
        return self.scheme != "none" and self.settings.access_ttl != CellSettings.access_ttl

    @property
    def credential_ttl(self) -> int:
        """How long a credential lives, in seconds: the access token's or the session's.

        ``access_ttl`` sets both when it is not the default; a session otherwise keeps the
        server's own default (DESIGN §2: 1800 s).
        """
        return self.settings.access_ttl if self._short_lived or self.is_jwt else SESSION_TTL_S

    @property
    def fault_label(self) -> str:
        """'' without a fault, else e.g. ``-redis-outage1.5s-aof`` or ``-node-kill``."""
        fault = self.settings.fault
        if not fault:
            return ""
        length = fault_named(fault).label(self.settings)
        aof = "-aof" if self.settings.persistence == "aof" else ""
        return f"-{fault}{length}{aof}"

    @property
    def load_label(self) -> str:
        """closed, open-<rate>r, or open-eq (the equal-load rate the runner chooses).

        Evenly spaced arrivals add ``-uniform``; Poisson arrivals are the default.
        """
        if self.settings.model == "closed":
            return "closed"
        load = "open-eq" if self.settings.equal_load else f"open-{self.settings.rate:g}r"
        return load if self.settings.arrivals == ARRIVALS[0] else f"{load}-{self.settings.arrivals}"

    def server_args(self) -> list[str]:
        """The ``python -m targets`` options of this cell's scheme."""
        common = [
            "--users", str(self.settings.population),
            "--kdf-iterations", str(self.settings.kdf_iterations),
        ]  # fmt: skip
        if self.settings.planted_cost_us:
            common += ["--planted-cost-us", str(self.settings.planted_cost_us)]
        if self.settings.store_cache_s:
            common += ["--store-cache", str(self.settings.store_cache_s)]
        if self.scheme == "none":
            return ["--scheme", "none", *common]
        if self.kind.is_session:
            lifetime = ["--session-ttl", str(self.credential_ttl)] if self._short_lived else []
            sliding = ["--sliding-session"] if self.settings.sliding_session else []
            return ["--scheme", "session", "--store", self.store, *lifetime, *sliding, *common]
        # An introspecting issuer keeps the denylist: it is what makes logout answer "inactive".
        deny = ["--denylist"] if self.denylist or self.introspect else []
        ttl = ["--access-ttl", str(self.settings.access_ttl)]
        return ["--scheme", "jwt", "--alg", self.alg, *deny, *ttl, *self.library_args(), *common]

    def library_args(self) -> list[str]:
        """``--jwt-library`` when the cell's is not the servers' default."""
        library = self.settings.library
        return ["--jwt-library", library] if library != CellSettings.library else []

    def describe(self) -> dict[str, Any]:
        """The cell's axes and settings, for cell.json and the manifest."""
        return {
            "scheme": self.scheme,
            "alg": self.alg,
            "store": self.store,
            "denylist": self.denylist,
            "topology": self.topology,
            "nodes": self.nodes,
            "scenario": self.scenario,
            "users": self.users,
            **asdict(self.settings),
        }


@dataclass(frozen=True)
class SearchSettings:
    """How a capacity search steps (rates in requests/s) and the SLO each step must hold.

    A start of 0 starts at 0.6 of the closed-model throughput of the same scheme in this run
    (or 600 without one); step and resolution of 0 are a third and a sixth of the start.
    """

    start_rps: float = 0.0
    step_rps: float = 0.0
    resolution_rps: float = 0.0
    max_steps: int = 8
    searches: int = 3
    # A probe lasts until it holds this many requests at least: a p99 with 50 above it.
    min_requests: int = 5000
    slo_p99_ms: float = 20.0
    slo_error_rate: float = 0.001
    min_achieved: float = 0.95


SEARCH_KEYS = tuple(asdict(SearchSettings()))


class SearchTable(BaseModel):
    """What ``[capacity]`` may set of SearchSettings, key by key (same order)."""

    model_config = STRICT

    start_rps: number(at_least=0) | None = None
    step_rps: number(at_least=0) | None = None
    resolution_rps: number(at_least=0) | None = None
    max_steps: number(at_least=1, whole=True) | None = None
    searches: number(at_least=1, whole=True) | None = None
    min_requests: number(at_least=0, whole=True) | None = None
    slo_p99_ms: number(at_least=0) | None = None
    slo_error_rate: number(at_least=0) | None = None
    min_achieved: number(at_least=0) | None = None


FIXED_IN_SEARCH = ("model", "rate", "repetitions", "equal_load")
CAPACITY_KEYS = (
    *AXIS_KEYS,
    *(key for key in SETTING_KEYS if key not in FIXED_IN_SEARCH),
    *SEARCH_KEYS,
)


@dataclass(frozen=True)
class Matrix:
    """A validated matrix: its cells in file order and run-wide options."""

    name: str
    source: str
    description: str
    cells: tuple[Cell, ...]
    repetitions: int
    generator_ceiling_rps: float | None
    capacity: tuple[Cell, ...] = ()
    search: SearchSettings | None = None
    included: tuple[str, ...] = ()  # the files of the included matrices
    margins: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    equal_load_rate: float | None = None  # None: chosen from the run's capacities ("auto")
    selftest: bool = False  # only a self-test matrix may plant a known cost
    primary: tuple[str, ...] = PRIMARY_COMPARISONS  # what until-decided repeats until decided
    thresholds: tuple[str, ...] = ()  # rules the finished run must meet (loadtests.run.thresholds)


def _fail(source: str, key: str, problem: str) -> MatrixError:
    return MatrixError(f"{source}: {key}: {problem}")


def _check_choice(source: str, key: str, value: Any, choices: tuple[str, ...], noun: str) -> None:
    _checked(source, key, choice(choices), value, noun)


def _checked(source: str, key: str, annotation: Any, value: Any, noun: str = "") -> Any:
    """One value checked by pydantic (``common.validation``), or the one-line MatrixError."""
    try:
        return checked(key, annotation, value, noun)
    except TableError as exc:
        raise _fail(source, exc.key, exc.problem) from None


def _table(
    source: str,
    prefix: str,
    model: type[BaseModel],
    table: dict[str, Any],
    keys: tuple[str, ...],
    nouns: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``keys`` a table gives, checked by ``model``: only what was given, as given
    (``nouns``: what a choice is called in its message)."""
    given = {key: table[key] for key in keys if key in table}
    try:
        return validated(model, given, nouns).model_dump(exclude_unset=True)
    except TableError as exc:
        raise _fail(source, prefix + exc.key, exc.problem) from None


def _as_list(source: str, key: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _fail(source, key, "must not be empty")
    return values


def _settings(source: str, table: dict[str, Any], base: CellSettings) -> CellSettings:
    updates = _table(source, "", SettingsTable, table, SETTING_KEYS, SETTING_NOUNS)
    if updates.get("balancer") == "nginx" and not nginx_installed():
        raise _fail(source, "balancer", "nginx is not installed (apt-get install nginx)")
    merged = replace(base, **updates)
    if merged.equal_load and merged.model != "open":
        raise _fail(source, "equal_load", "equal load is an open-model setting (model = 'open')")
    if merged.model == "open" and merged.rate <= 0 and not merged.equal_load:
        raise _fail(
            source, "rate", "the open model needs a rate above 0 (requests/s) or equal_load = true"
        )
    return merged


def _check_keys(source: str, where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(source, f"{where}{key}", f"unknown key (valid: {', '.join(allowed)})")


def _group_cells(
    source: str, index: int | str, group: dict[str, Any], base: CellSettings
) -> list[Cell]:
    where = f"cells[{index}]." if isinstance(index, int) else f"{index}."
    _check_keys(source, where, group, GROUP_KEYS)
    for key in ("schemes", "topologies", "scenarios"):
        if key not in group:
            raise _fail(source, where + key, "is required")
    settings = _settings(source, group, base)
    schemes = _as_list(source, where + "schemes", group["schemes"])
    for scheme in schemes:
        if not isinstance(scheme, str) or not valid_scheme(scheme):
            choices = f"{', '.join(SCHEME_CHOICES)} with ALG in {' '.join(ALGORITHMS)}"
            raise _fail(source, where + "schemes", f"unknown scheme {scheme!r} (valid: {choices})")
    topologies = _as_list(source, where + "topologies", group["topologies"])
    for topology in topologies:
        _check_choice(source, where + "topologies", topology, TOPOLOGIES, "topology")
    scenarios = _as_list(source, where + "scenarios", group["scenarios"])
    for scenario in scenarios:
        _check_choice(source, where + "scenarios", scenario, SCENARIOS, "scenario")
    fewest = 1 if "split" in topologies else 2  # a split may have one resource node
    node_counts = [
        _checked(source, where + "nodes", number(at_least=fewest, whole=True), n)
        for n in _as_list(source, where + "nodes", group.get("nodes", [2]))
    ]
    users = [
        _checked(source, where + "users", number(at_least=1, whole=True), n)
        for n in _as_list(source, where + "users", group.get("users", DEFAULT_USERS))
    ]
    cells = []
    for scheme, topology, scenario, user_count in itertools.product(
        schemes, topologies, scenarios, users
    ):
        for nodes in node_counts if topology in ("multi", "split") else [1]:
            cell = Cell(scheme, topology, nodes, scenario, user_count, settings)
            _check_combination(source, where, cell)
            cells.append(cell)
    return cells


def _check_combination(source: str, where: str, cell: Cell) -> None:
    if cell.scheme == "session-memory" and cell.settings.balancer == "nginx":
        raise _fail(
            source,
            where + "balancer",
            "session-memory keeps sessions in one process: its users stick to one node",
        )
    if cell.scenario == "refresh" and not cell.is_jwt:
        raise _fail(source, where + "scenarios", f"refresh needs a jwt scheme, not {cell.scheme}")
    if cell.settings.balancer == "nginx" and cell.topology != "multi":
        raise _fail(source, where + "balancer", "nginx balances several nodes: use it on multi")
    if cell.scenario in ("revocation", "validation") and cell.scheme == "none":
        raise _fail(source, where + "scenarios", f"{cell.scenario} needs a scheme with credentials")
    _check_split(source, where, cell)
    _check_fault(source, where, cell)


def _check_split(source: str, where: str, cell: Cell) -> None:
    """The split topology needs an issuer; its settings mean nothing elsewhere."""
    settings = cell.settings
    if not cell.is_split:
        for key in ("hops", "introspect_cache_s", "jwks_ttl_s"):
            if getattr(settings, key) != getattr(CellSettings, key):
                raise _fail(source, where + key, "applies to the split topology only")
        if cell.introspect:
            raise _fail(source, where + "schemes", f"{cell.scheme} runs on the split topology")
        return
    if cell.scheme in ("none", "session-memory"):
        raise _fail(
            source, where + "schemes", f"split needs an issuer and a shared view: not {cell.scheme}"
        )
    if cell.scenario not in ("read", "validation"):
        raise _fail(source, where + "scenarios", "split measures resource reads: read, validation")
    if settings.balancer == "nginx":
        raise _fail(
            source, where + "balancer", "split spreads reads over its resource nodes itself"
        )
    if settings.hops > 1 and cell.nodes < 2:
        raise _fail(source, where + "hops", "a call chain needs at least 2 resource nodes")


def _check_fault(source: str, where: str, cell: Cell) -> None:
    """A fault must fit in the window and hit something the cell has."""
    settings = cell.settings
    if settings.sliding_session and not cell.kind.is_session:
        raise _fail(source, where + "sliding_session", f"{cell.scheme} has no sessions to renew")
    if settings.store_cache_s and not cell.kind.reads_shared_store:
        raise _fail(
            source,
            where + "store_cache_s",
            f"{cell.scheme} reads no shared store to cache (session-redis or jwt-ALG+deny)",
        )
    if settings.library != CellSettings.library and not cell.is_jwt:
        raise _fail(source, where + "library", f"{cell.scheme} signs and verifies no JWT")
    if settings.persistence == "aof" and cell.store != "redis":
        raise _fail(source, where + "persistence", f"{cell.scheme} keeps nothing in Redis")
    if not settings.fault:
        return
    fault = fault_named(settings.fault)
    problem = fault.problem(cell)
    if problem:
        raise _fail(source, where + "fault", problem)
    if not fault.injected:
        return  # the load itself is the fault, for the whole window
    length = settings.fault_s if fault.lasts else 0.0
    if settings.fault_at_s + length + 1.0 > settings.duration_s:
        raise _fail(
            source,
            where + "fault_at_s",
            f"the fault ({settings.fault_at_s:g} s in, {length:g} s long) must end at least 1 s "
            f"before the window does ({settings.duration_s:g} s)",
        )


def load_matrix(name_or_path: str, target: tuple[str, int] | None = None) -> Matrix:
    """Read and validate a shipped matrix by name (quick, full) or a TOML file by path;
    ``target`` (its scheme id and node count) stands for ``"target"`` in the groups."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = MATRICES_DIR / f"{name_or_path}.toml"
    source = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        shipped = ", ".join(sorted(p.stem for p in MATRICES_DIR.glob("*.toml")))
        raise MatrixError(
            f"{source}: no such matrix (shipped: {shipped}; or a .toml path)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MatrixError(f"{source}: cannot read: {exc}") from None
    return parse_matrix(for_target(data, source, target), source, path.stem)


# What the runner gives its own servers, which --target-url cannot give yours.
RUNNER_SERVER_KEYS = (
    "kdf_iterations", "access_ttl", "balancer", "store_delay_ms", "fault", "persistence",
    "sliding_session", "store_cache_s", "library", "hops", "introspect_cache_s",
    "jwks_cooldown_s", "jwks_ttl_s", "planted_cost_us",
)  # fmt: skip


def for_target(data: dict[str, Any], source: str, target: tuple[str, int] | None) -> dict[str, Any]:
    """The matrix with ``"target"`` (the server of --target-url) replaced by its scheme id and
    its nodes; without a target, ``"target"`` is refused with the way to name one."""
    cells = data.get("cells", [])
    groups = [*cells, data.get("capacity", {})] if isinstance(cells, list) else []
    named = any(_names_target(group) for group in groups)
    if target is None:
        if named:
            raise _fail(source, "schemes", "'target' is the server of --target-url "
                        "(authbench run --target-url URL)")  # fmt: skip
        return data
    if not all(_names_target(group) for group in groups if group) or "include" in data:
        raise _fail(
            source,
            "cells",
            '--target-url measures its server alone: every group needs schemes = ["target"] '
            'and topologies = ["target"], no include',
        )
    tables = {"defaults": data.get("defaults", {})}
    tables.update((f"cells[{index}]", group) for index, group in enumerate(cells))
    for where, table in tables.items():
        for key in RUNNER_SERVER_KEYS:
            if isinstance(table, dict) and key in table:
                raise _fail(source, f"{where}.{key}", "the runner gives it to its own servers "
                            "only; --target-url measures yours as it runs")  # fmt: skip
    scheme_id, nodes = target
    as_target = {"schemes": [scheme_id], "topologies": ["multi" if nodes > 1 else "single"]}
    as_target.update({"nodes": [nodes]} if nodes > 1 else {})
    rewritten = {**data, "cells": [{**group, **as_target} for group in cells]}
    if "capacity" in data:
        rewritten["capacity"] = {**data["capacity"], **as_target}
    return rewritten


def _names_target(group: Any) -> bool:
    """Whether a group measures the --target-url server: "target" as its scheme and topology."""
    if not isinstance(group, dict):
        return False
    return group.get("schemes") == ["target"] and group.get("topologies") == ["target"]


def parse_matrix(data: dict[str, Any], source: str, name: str) -> Matrix:
    """Validate parsed TOML into a Matrix."""
    _check_keys(source, "", data, TOP_LEVEL_KEYS)
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise _fail(source, "defaults", "must be a table")
    _check_keys(source, "defaults.", defaults, (*SETTING_KEYS, "users"))
    base = _settings(source, defaults, CellSettings())
    groups = data.get("cells")
    if not isinstance(groups, list) or not groups:
        raise _fail(source, "cells", "needs at least one [[cells]] group")
    if "users" in defaults:
        groups = [{"users": defaults["users"], **group} for group in groups]
    cells: list[Cell] = []
    for index, group in enumerate(groups):
        for cell in _group_cells(source, index, group, base):
            if cell not in cells:
                cells.append(cell)
    included = []
    for other in _includes(source, data.get("include", [])):
        included.append(other.source)
        cells += [cell for cell in other.cells if cell not in cells]
    cells = _distinct_ids(cells)
    capacity, search = _capacity(source, data.get("capacity"), base)
    ceiling = data.get("generator_ceiling_rps")
    if ceiling is not None:
        ceiling = float(_checked(source, "generator_ceiling_rps", number(at_least=1), ceiling))
    repetitions = max(cell.settings.repetitions for cell in cells)
    margins = _margins(source, data.get("margins", {}))
    primary = data.get("primary", list(PRIMARY_COMPARISONS))
    if not isinstance(primary, list) or not primary:
        raise _fail(source, "primary", "must be a non-empty list of comparison names")
    for comparison in primary:
        _check_choice(source, "primary", comparison, PRIMARY_COMPARISONS, "primary comparison")
    selftest = _checked(source, "selftest", bool, data.get("selftest", False))
    planted = [c for c in (*cells, *capacity) if c.settings.planted_cost_us]
    if planted and not selftest:
        raise _fail(
            source,
            "planted_cost_us",
            "only a self-test matrix (selftest = true) may plant a cost: it falsifies figures",
        )
    equal_rate = data.get("equal_load_rate", "auto")
    if equal_rate != "auto":
        equal_rate = float(_checked(source, "equal_load_rate", number(at_least=1), equal_rate))
    return Matrix(
        name,
        source,
        str(data.get("description", "")),
        tuple(cells),
        repetitions,
        ceiling,
        capacity,
        search,
        tuple(included),
        margins,
        None if equal_rate == "auto" else equal_rate,
        selftest,
        tuple(primary),
        _thresholds(source, data.get("thresholds", {})),
    )


def _thresholds(source: str, table: Any) -> tuple[str, ...]:
    """``[thresholds] fail_on = ["p99_ms@equal_load<10", ...]``: each rule parsed now, so a
    typo is refused before the run starts."""
    if not isinstance(table, dict):
        raise _fail(source, "thresholds", "must be a table")
    _check_keys(source, "thresholds.", table, ("fail_on",))
    if "fail_on" not in table:
        return ()
    rules = _as_list(source, "thresholds.fail_on", table["fail_on"])
    for rule in rules:
        if not isinstance(rule, str):
            raise _fail(source, "thresholds.fail_on", f"{rule!r} is not a string")
        try:
            parse_threshold(rule)
        except ThresholdError as exc:
            raise _fail(source, "thresholds.fail_on", str(exc)) from None
    return tuple(rules)


def _margins(source: str, table: Any) -> dict[str, dict[str, float]]:
    """``[margins]``: per family a relative margin (``cpu = 0.1``), or a table with
    ``relative`` and ``absolute`` (``latency = {relative = 0.1, absolute = 0.1}``, in ms)."""
    if not isinstance(table, dict):
        raise _fail(source, "margins", "must be a table")
    _check_keys(source, "margins.", table, tuple(DEFAULT_MARGINS))
    margins = {family: dict(margin) for family, margin in DEFAULT_MARGINS.items()}
    for family, value in table.items():
        given = value if isinstance(value, dict) else {"relative": value}
        _check_keys(source, f"margins.{family}.", given, ("relative", "absolute"))
        for part, amount in given.items():
            key = f"margins.{family}.{part}"
            margins[family][part] = float(_checked(source, key, number(at_least=0), amount))
        if not 0 < margins[family]["relative"] < 1:
            raise _fail(source, f"margins.{family}", "relative margin must lie between 0 and 1")
    return margins


def _distinct_ids(cells: list[Cell]) -> list[Cell]:
    """Cells of one readable id but other conditions (say a 10 s and a 3 s window) get a tag.

    Without it they would share a folder, and the second would be taken for the first's result.
    """
    by_id: dict[str, set[tuple[Any, ...]]] = {}
    for cell in cells:
        by_id.setdefault(cell.cell_id(1), set()).add(tuple(cell.identity().items()))
    return [
        replace(cell, tag=cell.conditions_tag()) if len(by_id[cell.cell_id(1)]) > 1 else cell
        for cell in cells
    ]


def _includes(source: str, names: Any) -> list[Matrix]:
    """The matrices named by ``include``: beside this file first (a run folder keeps copies),
    else shipped. Their cells keep their own defaults; an included matrix includes nothing."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(source, "include", "must be a list of matrix names, e.g. ['faults']")
    found = []
    for name in names:
        beside = Path(source).with_name(f"{name}.toml")
        shipped = MATRICES_DIR / f"{name}.toml"
        if not beside.exists() and not shipped.exists():
            choices = ", ".join(sorted(p.stem for p in MATRICES_DIR.glob("*.toml")))
            raise _fail(source, "include", f"no such matrix {name!r} (shipped: {choices})")
        other = load_matrix(str(beside if beside.exists() else shipped))
        if other.included:
            raise _fail(source, "include", f"{name} includes other matrices: include those")
        if other.capacity:
            raise _fail(source, "include", f"{name} has a [capacity] table: not includable")
        found.append(other)
    return found


def _capacity(
    source: str, table: Any, base: CellSettings
) -> tuple[tuple[Cell, ...], SearchSettings | None]:
    """The ``[capacity]`` table: which cells to search, and how (open model, one repetition)."""
    if table is None:
        return (), None
    if not isinstance(table, dict):
        raise _fail(source, "capacity", "must be a table")
    _check_keys(source, "capacity.", table, CAPACITY_KEYS)
    group = {key: table[key] for key in table if key not in SEARCH_KEYS}
    group.update(model="open", rate=1.0, repetitions=1, equal_load=False)
    cells = _group_cells(source, "capacity", group, base)
    if any(cell.settings.library != CellSettings.library for cell in cells):
        raise _fail(source, "capacity.library", f"capacity.csv holds {CellSettings.library}'s "
                    "capacity only: compare libraries in cells")  # fmt: skip
    search = SearchSettings(**_table(source, "capacity.", SearchTable, table, SEARCH_KEYS))
    if search.min_achieved > 1:
        raise _fail(source, "capacity.min_achieved", "is a share of the offered rate (at most 1)")
    return tuple(cells), search


def with_planted_cost(matrix: Matrix, scheme: str, cost_us: int) -> Matrix:
    """The matrix with a planted arm: one scheme's cells again, with a known extra CPU cost in
    their auth step, interleaved with the rest (self-tests only)."""
    if not matrix.selftest:
        raise MatrixError(
            f"{matrix.source}: --plant: only a self-test matrix (selftest = true) may plant a cost"
        )
    if not 1 <= cost_us <= 100_000:
        raise MatrixError(f"--plant: {cost_us} µs must be between 1 and 100000")
    if scheme not in {cell.scheme for cell in matrix.cells}:
        schemes = ", ".join(sorted({cell.scheme for cell in matrix.cells}))
        raise MatrixError(f"--plant: {scheme!r} is not in the matrix (its schemes: {schemes})")

    arm = [
        replace(cell, settings=replace(cell.settings, planted_cost_us=cost_us))
        for cell in matrix.cells
        if cell.scheme == scheme
    ]
    return replace(matrix, cells=(*matrix.cells, *arm))


def parse_plant(text: str) -> tuple[str, int]:
    """``jwt-HS256=30`` → (scheme, µs); MatrixError in one line otherwise."""
    scheme, _, cost = text.partition("=")
    if not scheme or not cost.strip().isdigit():
        raise MatrixError(f"--plant {text!r}: expected SCHEME=MICROSECONDS, e.g. jwt-HS256=30")
    return scheme.strip(), int(cost)
