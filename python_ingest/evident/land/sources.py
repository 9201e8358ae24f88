"""Sources: the contracts under python_ingest/contracts/, one source per name, and which files each one owns.

`<name>.v<version>.yml` files; the highest version of a source is pinned to new batches, and every version
after the first must be a compatible evolution of the one before (evident.land.evolution). A file under the
landing dir belongs to the source whose `landing` glob matches its path (relative to the landing dir); a
file matched by no contract is reported and left alone, one matched by two is a configuration error.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from evident.errors import ConfigError, ContractError
from evident.land.contracts import Contract, load_contract
from evident.land.evolution import check_evolution
from evident.project import Project

_CONTRACT_FILE = re.compile(r"(?P<name>[a-z][a-z0-9_]{0,62})\.v(?P<version>[1-9][0-9]*)\.ya?ml")
SUPPORTED_SUFFIXES = {"jsonl": (".jsonl", ".ndjson"), "csv": (".csv",)}


@dataclass(frozen=True)
class Source:
    name: str
    versions: tuple[Contract, ...]  # ascending

    @property
    def contract(self) -> Contract:
        """The pinned contract: the highest version."""
        return self.versions[-1]

    def owns(self, relative_path: str) -> bool:
        return glob_regex(self.contract.landing).fullmatch(relative_path) is not None


@dataclass
class Routing:
    """Files under the landing dir, in lexicographic path order, by the source that owns them."""

    files: dict[str, list[Path]] = field(default_factory=dict)  # source name → files
    unrouted: list[Path] = field(default_factory=list)  # matched by no contract: reported, left alone

    def ordered(self) -> list[tuple[str, Path]]:
        """(source, file) of every routed file, in lexicographic path order (first delivery wins)."""
        return sorted(((name, path) for name, paths in self.files.items() for path in paths),
                      key=lambda item: item[1].as_posix())


@functools.lru_cache(maxsize=64)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A `landing` glob as a regex over '/'-separated relative paths: `**` spans any number of folders
    (`orders/**` is everything under orders/), `*` and `?` stay within one path segment."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def load_sources(project: Project) -> dict[str, Source]:
    """Every source of the project, by name; ContractError (exit 2) for an unusable or incompatible file."""
    folder = project.contracts_dir
    by_name: dict[str, list[Contract]] = {}
    for path in sorted(folder.glob("*.y*ml")):
        match = _CONTRACT_FILE.fullmatch(path.name)
        if not match:
            raise ContractError(f"{path}: contract files are named <source>.v<version>.yml "
                                "(lowercase letters, digits and _; versions from 1)")
        by_name.setdefault(match["name"], []).append(
            load_contract(match["name"], int(match["version"]), path=path))
    if not by_name:
        raise ConfigError(f"no contracts under {folder}: add one YAML file per source (see DESIGN.md)")
    sources = {}
    for name, versions in sorted(by_name.items()):
        versions.sort(key=lambda c: c.version)
        check_evolution(versions)
        sources[name] = Source(name, tuple(versions))
    return sources


def route(sources: dict[str, Source], landing_dir: Path) -> Routing:
    """Assign every file under the landing dir to the one source whose glob matches it."""
    routing = Routing({name: [] for name in sources})
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(landing_dir).as_posix()
        if any(part.startswith((".", "_")) for part in PurePosixPath(relative).parts):
            continue  # hidden files and _manifests (e.g. a sample's _planted_defects.json) are not deliveries
        owners = [s for s in sources.values() if s.owns(relative)]
        if len(owners) > 1:
            raise ConfigError(f"{relative} is matched by the landing globs of {owners[0].name} "
                              f"({owners[0].contract.landing}) and {owners[1].name} "
                              f"({owners[1].contract.landing}); make the globs disjoint")
        if not owners:
            routing.unrouted.append(path)
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES[owners[0].contract.format]:
            routing.unrouted.append(path)  # e.g. a README beside the deliveries
        else:
            routing.files[owners[0].name].append(path)
    return routing
