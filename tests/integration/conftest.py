"""Fixtures shared by the integration tests: one real PostgreSQL per test
module, and a fresh database per test."""
import itertools
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "k8s_sim"))

from pgserver import PgServer  # noqa: E402
from simctl import Sim  # noqa: E402

# The namespace the simulated holder pods live in.
SIM_NS = "shop"

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


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulated Kubernetes API, one per test module, with SIM_NS."""
    with Sim(tmp_path_factory.mktemp("sim"), namespaces=[SIM_NS]) as s:
        yield s
