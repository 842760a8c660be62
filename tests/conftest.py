import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A shared read-only-by-convention busybox rootfs; copy it if a test writes into it."""
    from tests.support.containers import busybox_rootfs as build
    return build(str(tmp_path_factory.mktemp("busybox") / "rootfs"))
