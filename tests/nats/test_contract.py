"""The contract suite: every JobService behaviour of tests/test_job_service.py, on SQLite and on NATS.

The tests are the same functions; tests/nats/conftest.py parametrizes the ``settings`` they build their server
from. A behaviour that one backend has and the other lacks fails here.
"""

from tests.test_job_service import *  # noqa: F403
