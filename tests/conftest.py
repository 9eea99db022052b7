from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

#: Set (to 1) by .ci/run: a broker or database that is not there fails its tests instead of skipping them,
#: so that CI cannot pass without Mosquitto and PostgreSQL.
REQUIRE_SERVICES = "VIGIL_REQUIRE_SERVICES"


def _service_missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_SERVICES, "") not in ("", "0"):
        pytest.fail(f"{reason}, and {REQUIRE_SERVICES} is set: this run needs it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def service_missing() -> Callable[[str], NoReturn]:
    """Skip, or fail under VIGIL_REQUIRE_SERVICES=1, because a service the test needs is not available."""
    return _service_missing


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data folder from VIGIL_DATA_DIR; tests that need it skip with the reason when unset."""
    value = os.environ.get("VIGIL_DATA_DIR")
    if not value:
        pytest.skip("VIGIL_DATA_DIR is not set: the benchmark data sets are not available")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"VIGIL_DATA_DIR={value} is not a directory")
    return path


def pytest_configure(config):
    """One intra-op thread for PyTorch in tests: on a busy 2-core machine its default thread pool
    oversubscribes the cores and slows the suite several-fold. Library code never sets this."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


#: The PostgreSQL server of the dev/CI machine (trust auth, database "test").
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL naming a fresh schema of its own on the PostgreSQL server; the schema is dropped afterwards."""
    if not _postgres_up():
        _service_missing("no PostgreSQL server at 127.0.0.1:5432 (database 'test', trust auth)")
    import uuid

    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store tests run against both backends: a SQLite file (WAL) and a PostgreSQL schema."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'alerts.db'}"
