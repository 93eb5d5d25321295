"""authbench's Locust entry point: every scenario, plus exact HDR recording of the window.

Works on its own against any running target (web UI or headless); name a scenario's user class
to run just that one, e.g.:

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 ReadUser --headless -u 20 -t 30s

Scenarios: ReadUser (read), LoginUser (login), RefreshUser (refresh), LogoutUser (logout),
MixedUser (mixed), RevocationUser (revocation), ValidationUser (validation). Settings come
from AUTHBENCH_* environment variables (see loadtests/load/scenarios/base.py and
loadtests/load/recorder.py).
"""

import os
import sys

# Locust imports this file by path: make the project importable however it was started.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loadtests.load import recorder  # noqa: F401 - registers the HDR listeners
from loadtests.load.scenarios.login import LoginUser
from loadtests.load.scenarios.logout import LogoutUser
from loadtests.load.scenarios.mixed import MixedUser
from loadtests.load.scenarios.read import ReadUser
from loadtests.load.scenarios.refresh import RefreshUser
from loadtests.load.scenarios.revocation import RevocationUser
from loadtests.load.scenarios.validation import ValidationUser

__all__ = [
    "LoginUser",
    "LogoutUser",
    "MixedUser",
    "ReadUser",
    "RefreshUser",
    "RevocationUser",
    "ValidationUser",
]
