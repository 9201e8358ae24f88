"""The raw tables landing writes, derived from each source's contract, on both engines:

- `raw.<source>`: primary key = the idempotency key, one column per contract field (in contract order, NOT NULL
  where required), the payload hash, and how the row was landed (batch, land_seq, file, line, contract_id);
- `raw.<source>_quarantine`: the records set aside, with reason code, message and raw text as delivered.
"""
from __future__ import annotations

from dataclasses import dataclass

from evident.engines import Engine
from evident.errors import ContractError
from evident.land.contracts import Contract, FieldRule
from evident.project import Project, find_project

KEY_COLUMN = "idempotency_key"
PAYLOAD_COLUMN = "payload_sha256"
# How a row was landed, in each engine: not part of what the source delivered.
AUDIT_COLUMNS = (("batch_id", "varchar"), ("land_seq", "bigint"), ("source_file", "varchar"),
                 ("source_line", "integer"), ("contract_id", "varchar"), ("landed_at", "timestamp"))
QUARANTINE_COLUMNS = (
    "batch_id", "line_number", "source_file", "contract_id", "reason_code", "message", "raw_text",
    "idempotency_key", "quarantined_at",
)
_QUARANTINE_DDL = """create table if not exists {table} (
        batch_id varchar not null,
        line_number integer not null,
        source_file varchar not null,
        contract_id varchar not null,
        reason_code varchar not null,
        message varchar not null,
        raw_text varchar,
        idempotency_key varchar(64),
        quarantined_at timestamp not null,
        primary key (batch_id, line_number)
    )"""
_SQL_TYPES = {"string": "varchar", "integer": "bigint", "boolean": "boolean", "timestamp": "timestamp",
              "date": "date", "object": "varchar"}


def column_type(rule: FieldRule) -> str:
    """The SQL type of a field's column (decimals sized from their bounds: FieldRule.precision)."""
    if rule.type == "decimal":
        return f"decimal({rule.precision},{rule.scale or 0})"
    return _SQL_TYPES[rule.type]


@dataclass(frozen=True)
class RawColumn:
    name: str
    sql_type: str
    nullable: bool


@dataclass(frozen=True)
class RawTable:
    """`raw.<source>` and `raw.<source>_quarantine` as one contract defines them."""

    contract: Contract

    @property
    def name(self) -> str:
        return f"raw.{self.contract.name}"

    @property
    def quarantine(self) -> str:
        return f"raw.{self.contract.name}_quarantine"

    @property
    def data_columns(self) -> tuple[RawColumn, ...]:
        """The key, the contract's fields in contract order, the payload hash: what the source delivered."""
        fields = tuple(RawColumn(name, column_type(rule), not rule.required)
                       for name, rule in self.contract.fields.items())
        return (RawColumn(KEY_COLUMN, "varchar(64)", False), *fields,
                RawColumn(PAYLOAD_COLUMN, "varchar(64)", False))

    @property
    def stage_columns(self) -> tuple[tuple[str, str], ...]:
        """What landing stages per batch before the engine judges it: the data columns and each row's line."""
        return (*((c.name, c.sql_type) for c in self.data_columns), ("source_line", "integer"))

    @property
    def columns(self) -> tuple[RawColumn, ...]:
        return self.data_columns + tuple(RawColumn(n, t, False) for n, t in AUDIT_COLUMNS)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> list[str]:
        cols = ",\n        ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' not null'}"
                                  + (" primary key" if c.name == KEY_COLUMN else "") for c in self.columns)
        return ["create schema if not exists raw",
                f"create table if not exists {self.name} (\n        {cols}\n    )",
                _QUARANTINE_DDL.format(table=self.quarantine)]

    def indexes(self) -> list[str]:
        """Where the engine wants secondary indexes: land_seq (incremental models read new rows by it) and the
        first key field (staging models read an entity's history by it: a user's events, an order's
        versions). DuckDB wants none: they make its large deletes and commits far slower."""
        name, first_key = self.contract.name, self.contract.key_fields[0]
        return [f"create index if not exists {name}_land_seq on {self.name} (land_seq)",
                f"create index if not exists {name}_{first_key} on {self.name} ({first_key})"]

    def create(self, engine: Engine) -> None:
        """Create both tables where missing (a table that exists is evolved by its next batch: evolve)."""
        for statement in self.ddl() + (self.indexes() if engine.WANTS_SECONDARY_INDEXES else []):
            engine.execute(statement)
        # no index on the partition for reconciliation: landing would pay for it on every row
        contract = self.contract
        timestamp = contract.fields[contract.partition_by].type == "timestamp"
        for statement in engine.reconciliation_ddl("raw", contract.name, contract.partition_by, timestamp=timestamp,
                                                     index=False):
            engine.execute(statement)

    def evolve(self, engine: Engine) -> None:
        """Inside a batch's transaction: add the columns of the optional fields a new contract version brought.
        A column whose type differs from the contract's, a required field without a column, or a column the
        contract no longer declares is an incompatible change (exit 2) that needs a new source name."""
        schema, table = self.name.split(".")
        existing = engine.table_columns(schema, table)
        if not existing:
            self.create(engine)
            return
        for column in self.columns:
            have = existing.get(column.name)
            if have is None:
                if not column.nullable:
                    raise ContractError(f"{self.name} has no column {column.name}, which contract "
                                        f"{self.contract.contract_id} requires: a new required field is an "
                                        "incompatible change; it needs a new source name")
                engine.execute(f"alter table {self.name} add column {column.name} {column.sql_type}")
            elif have != _comparable(column.sql_type):
                raise ContractError(f"{self.name}.{column.name} is {have} but contract {self.contract.contract_id} "
                                    f"makes it {_comparable(column.sql_type)}: an incompatible change; it needs a "
                                    "new source name")
        dropped = [name for name in existing if name not in set(self.column_names)]
        if dropped:
            raise ContractError(f"{self.name} has column(s) {', '.join(dropped)} that contract "
                                f"{self.contract.contract_id} no longer declares: removing a field is an "
                                "incompatible change; it needs a new source name")


def _comparable(sql_type: str) -> str:
    """A type as Engine.table_columns spells it (varchar lengths are not kept)."""
    return "varchar" if sql_type.startswith("varchar") else sql_type


def ensure_raw_tables(engine: Engine, contracts: list[Contract]) -> None:
    """Every source's tables, created where missing (one transaction)."""
    with engine.transaction():
        for contract in contracts:
            RawTable(contract).create(engine)


def raw_ddl(project: Project | None = None) -> list[str]:
    """Every source's raw tables as DDL (for tools that set a warehouse up by hand: the dbt tests, benchmarks)."""
    from evident.land.sources import load_sources

    sources = load_sources(project or find_project())
    return [statement for source in sources.values() for statement in RawTable(source.contract).ddl()]
