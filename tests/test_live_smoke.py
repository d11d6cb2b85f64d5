import json
import urllib.request

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_server_process_answers_health(live_server_proc):
    with urllib.request.urlopen(live_server_proc.url + "/health/", timeout=5) as response:
        body = json.loads(response.read())
    assert body["ok"] is True
    assert body["checks"]["database"]["ok"] is True
