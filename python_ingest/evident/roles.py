"""`evident setup-roles`: a Postgres role that can read published.* and nothing else."""
from __future__ import annotations

import re

from evident.engines import Engine
from evident.errors import ConfigError
from evident.pipeline.context import prepare_engine

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def setup_reader_role(engine: Engine, role: str = "evident_reader") -> list[str]:
    """Create (or repair) a NOLOGIN group role with read access to published.* only; grant it to login roles.

    Returns the statements run. The role name is validated (it is an identifier, not a parameter).
    """
    if not _ROLE_NAME.fullmatch(role):
        raise ConfigError(f"invalid role name {role!r}: use lowercase letters, digits and _")
    statements = [
        f"do $$ begin if not exists (select from pg_roles where rolname = '{role}') then "
        f"create role {role} nologin; end if; end $$",
        "create schema if not exists published",
        f"revoke all on schema raw, evident from {role}",
        f"grant usage on schema published to {role}",
        f"grant select on all tables in schema published to {role}",
        f"alter default privileges in schema published grant select on tables to {role}",
    ]
    prepare_engine(engine)
    with engine.transaction():
        for statement in statements:
            engine.execute(statement)
    return statements
