"""Files the server reads at run time, shipped inside the package: ``conf/defaults.conf`` and the
schema migrations ``sql/<dialect>/*.sql``. In a checkout these are links to the top-level
``conf/`` and ``sql/`` folders (the files' one home); a wheel carries copies."""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
DEFAULTS_CONF = RESOURCES / "conf" / "defaults.conf"
SQL_ROOT = RESOURCES / "sql"
