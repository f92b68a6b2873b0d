"""Fixtures shared by the integration tests: one real PostgreSQL per test
module, and a fresh database per test."""
import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgserver import PgServer  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture
def db(pg):
    """A new database; returns its name."""
    name = "t%d" % next(_counter)
    pg.create_database(name)
    return name
