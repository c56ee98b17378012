"""The local tables a benchmark runs against: their DDL, how N rows are generated, the 1% edit and
the [[jobs]] mapping syncd is given for them. Plain data; the SQL takes $1 = N where it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    name: str
    summary: str
    create: str  # CREATE TABLE contacts (...)
    seed: str  # $1 = N: inserts N rows
    edit: str  # $1 = N, $2 = residue 0-99: edits the rows with id % 100 = $2 (a mapped field each)
    fields: dict[str, str]  # Selzy field -> local column ([jobs.fields], config order)
    writeback: dict[str, str] = field(default_factory=dict)  # [jobs.writeback]
    opt_out_column: str | None = None

    @property
    def user_fields(self) -> list[str]:
        """The Selzy user fields the mapping needs (created in the sandbox with createField)."""
        return [name for name in self.fields if name not in ("email", "phone")]

    def edits(self, n: int, residue: int = 0) -> int:
        """The rows `edit` changes: ids 1..n with id % 100 = residue (n // 100 for residue 0)."""
        first = residue or 100
        return 0 if n < first else (n - first) // 100 + 1


NARROW = Shape(
    name="narrow",
    summary="email + 2 user fields (Name, City), 1 writeback column (email_status)",
    create=(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, email text NOT NULL,"
        " first_name text, city text, selzy_email_status text)"
    ),
    seed=(
        "INSERT INTO contacts (email, first_name, city)"
        " SELECT 'user' || i || '@example.com', 'User ' || i, 'City ' || (i % 100)"
        " FROM generate_series(1, $1) AS i"
    ),
    edit=(
        "UPDATE contacts SET first_name = first_name || ' (edited)'"
        " WHERE id % 100 = $2 AND id <= $1"
    ),
    fields={"email": "email", "Name": "first_name", "City": "city"},
    writeback={"email_status": "selzy_email_status"},
)

WIDE = Shape(
    name="wide",
    summary=(
        "email, phone (every 4th row) + 3 user fields (Name, Surname, City), an opt-out"
        " boolean, 2 writeback columns (email_status, list_status)"
    ),
    create=(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, email text NOT NULL, phone text,"
        " first_name text, last_name text, city text,"
        " unsubscribed boolean NOT NULL DEFAULT false,"
        " selzy_email_status text, selzy_list_status text)"
    ),
    # Mixed-case addresses: syncd's key and the floor's join both lower-case them.
    seed=(
        "INSERT INTO contacts (email, phone, first_name, last_name, city)"
        " SELECT 'Contact.' || i || '@Example.org',"
        "        CASE WHEN i % 4 = 0 THEN '+1555' || lpad(i::text, 7, '0') END,"
        "        'First' || i, 'Last' || (i % 5000), 'City ' || (i % 100)"
        " FROM generate_series(1, $1) AS i"
    ),
    edit=(
        "UPDATE contacts SET last_name = last_name || '-Edited' WHERE id % 100 = $2 AND id <= $1"
    ),
    fields={
        "email": "email",
        "phone": "phone",
        "Name": "first_name",
        "Surname": "last_name",
        "City": "city",
    },
    writeback={"email_status": "selzy_email_status", "list_status": "selzy_list_status"},
    opt_out_column="unsubscribed",
)

SHAPES = {shape.name: shape for shape in (NARROW, WIDE)}


def job_config(shape: Shape, *, dsn: str, base_url: str, list_id: int) -> str:
    """The syncd config file for one job over `shape`'s table."""
    lines = [
        "[selzy]",
        f'base_url = "{base_url}"',
        "poll_interval = 0.5",
        "poll_interval_max = 2.0",
        "",
        "[database]",
        f'dsn = "{dsn}"',
        "",
        "[log]",
        'level = "info"',
        'format = "json"',
        "",
        "[[jobs]]",
        'name = "bench"',
        f"list_id = {list_id}",
        'table = "public.contacts"',
        'match = "email"',
        'schedule = "every 15m"',
        "max_deletes = 100000",
        "max_delete_fraction = 0.05",
    ]
    if shape.opt_out_column:
        lines.append(f'opt_out_column = "{shape.opt_out_column}"')
    lines += ["", "[jobs.fields]", *(f'{k} = "{v}"' for k, v in shape.fields.items())]
    if shape.writeback:
        lines += ["", "[jobs.writeback]", *(f'{k} = "{v}"' for k, v in shape.writeback.items())]
    return "\n".join(lines) + "\n"
