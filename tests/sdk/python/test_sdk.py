"""The official WorkOS Python SDK (`workos` on PyPI) against a running dsync.

Started by tests/sdk/run.sh, which seeds the server and sets:

- DSYNC_BASE_URL: the API origin, such as http://127.0.0.1:8080
- DSYNC_API_KEY: a valid API key
- DSYNC_DIRECTORY_ID: a directory synced from DSYNC_USER_COUNT users, with
  groups Engineering (even users) and Support (every fifth user)
- DSYNC_SCRATCH_DIRECTORY_ID: a directory this file deletes

The tests run in file order; the last ones delete the scratch directory.
"""

import datetime
import http.server
import os
import queue
import threading
import time

import pytest
import workos
from workos.common.models.dsync_deleted import DsyncDeleted
from workos.common.models.dsync_user_created import DsyncUserCreated

BASE_URL = os.environ["DSYNC_BASE_URL"]
API_KEY = os.environ["DSYNC_API_KEY"]
DIRECTORY_ID = os.environ["DSYNC_DIRECTORY_ID"]
SCRATCH_DIRECTORY_ID = os.environ["DSYNC_SCRATCH_DIRECTORY_ID"]
USER_COUNT = int(os.environ["DSYNC_USER_COUNT"])


@pytest.fixture(scope="module")
def client():
    return workos.WorkOSClient(api_key=API_KEY, base_url=BASE_URL, max_retries=0)


def test_wrong_api_key_raises_authentication_error():
    wrong = workos.WorkOSClient(api_key="sk_test_not_a_real_key", base_url=BASE_URL, max_retries=0)
    with pytest.raises(workos.AuthenticationError):
        wrong.directory_sync.list_directories()


def test_list_directories_finds_seeded_directory(client):
    ids = [directory.id for directory in client.directory_sync.list_directories(limit=1).auto_paging_iter()]
    assert DIRECTORY_ID in ids
    assert len(ids) == len(set(ids))

    filtered = client.directory_sync.list_directories(organization_id="org_sdk_compat")
    assert [directory.id for directory in filtered.data] == [DIRECTORY_ID]

    searched = client.directory_sync.list_directories(search="compat payroll")
    assert [directory.id for directory in searched.data] == [DIRECTORY_ID]


def test_get_directory(client):
    directory = client.directory_sync.get_directory(DIRECTORY_ID)
    assert directory.id == DIRECTORY_ID
    assert directory.type == "sftp"
    assert directory.state == "linked"
    assert directory.organization_id == "org_sdk_compat"
    assert directory.external_key
    assert directory.created_at.tzinfo is not None


def test_get_unknown_directory_raises_not_found(client):
    with pytest.raises(workos.NotFoundError):
        client.directory_sync.get_directory("directory_01HZZZZZZZZZZZZZZZZZZZZZZZ")


def test_list_users_by_directory_auto_pages(client):
    page = client.directory_sync.list_users(directory=DIRECTORY_ID, limit=4)
    users = list(page.auto_paging_iter())
    ids = [user.id for user in users]
    assert len(ids) == USER_COUNT
    assert len(set(ids)) == USER_COUNT

    idp_ids = {user.idp_id for user in users}
    assert "00001" in idp_ids, "leading zeros of user_id are kept"
    first = next(user for user in users if user.idp_id == "00002")
    assert first.email == "person2@sdk-compat.test"
    assert first.first_name == "Given2"
    assert first.state == "active"
    assert {group.name for group in first.groups} == {"Engineering"}


def test_list_users_by_group(client):
    groups = client.directory_sync.list_groups(directory=DIRECTORY_ID).data
    support = next(group for group in groups if group.name == "Support")
    members = list(client.directory_sync.list_users(group=support.id, limit=2).auto_paging_iter())
    assert sorted(user.idp_id for user in members) == ["00005", "00010", "00015", "00020", "00025"]


def test_list_groups_by_directory_and_by_user(client):
    groups = list(client.directory_sync.list_groups(directory=DIRECTORY_ID, limit=1).auto_paging_iter())
    assert sorted(group.name for group in groups) == ["Engineering", "Support"]

    user = client.directory_sync.list_users(directory=DIRECTORY_ID, idp_id="00010").data[0]
    groups_of_user = client.directory_sync.list_groups(user=user.id).data
    assert sorted(group.name for group in groups_of_user) == ["Engineering", "Support"]


def test_get_user_and_group(client):
    user = client.directory_sync.list_users(directory=DIRECTORY_ID, limit=1).data[0]
    fetched = client.directory_sync.get_user(user.id)
    assert fetched.id == user.id
    assert fetched.directory_id == DIRECTORY_ID

    group = client.directory_sync.list_groups(directory=DIRECTORY_ID, limit=1).data[0]
    fetched_group = client.directory_sync.get_group(group.id)
    assert fetched_group.id == group.id
    assert fetched_group.name == group.name


def test_create_directory_sync_is_queued(client):
    result = client.directory_sync.create_directory_sync(DIRECTORY_ID)
    assert getattr(result, "status", "queued") == "queued"


def test_list_events_with_cursor(client):
    first = client.events.list_events(events=["dsync.user.created"], limit=3)
    assert len(first.data) == 3
    assert first.list_metadata.after is not None

    second = client.events.list_events(events=["dsync.user.created"], limit=3, after=first.list_metadata.after)
    assert {event.id for event in first.data}.isdisjoint(event.id for event in second.data)

    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    everything = list(
        client.events.list_events(events=["dsync.user.created"], limit=4, range_start=start).auto_paging_iter()
    )
    created = [event for event in everything if isinstance(event, DsyncUserCreated)]
    assert len(created) == len(everything)
    mine = [event for event in created if event.data.directory_id == DIRECTORY_ID]
    assert len(mine) == USER_COUNT
    ids = [event.id for event in everything]
    assert ids == sorted(ids), "events come oldest first"

    all_types = client.events.list_events(events=[], limit=100).data
    assert {event.event for event in all_types} >= {"dsync.activated", "dsync.user.created", "dsync.group.user_added"}


def test_webhook_endpoint_create_list_update_delete(client):
    endpoint = client.webhooks.create_webhook_endpoint(
        endpoint_url="https://hooks.sdk-compat.test/python", events=["dsync.user.created"]
    )
    try:
        assert endpoint.secret
        assert endpoint.status == "enabled"

        listed = list(client.webhooks.list_webhook_endpoints(limit=1).auto_paging_iter())
        mine = next(item for item in listed if item.id == endpoint.id)
        assert mine.secret == endpoint.secret

        updated = client.webhooks.update_webhook_endpoint(endpoint.id, status="disabled", events=["dsync.deleted"])
        assert updated.status == "disabled"
        assert updated.events == ["dsync.deleted"]
        assert updated.endpoint_url == "https://hooks.sdk-compat.test/python"
    finally:
        client.webhooks.delete_webhook_endpoint(endpoint.id)

    remaining = client.webhooks.list_webhook_endpoints(limit=100).data
    assert endpoint.id not in [item.id for item in remaining]


class _Receiver(http.server.BaseHTTPRequestHandler):
    deliveries: "queue.Queue[tuple[str, bytes]]" = queue.Queue()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.deliveries.put((self.headers["WorkOS-Signature"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_delete_directory_sends_verified_webhook(client):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = receiver.server_address[1]

    endpoint = client.webhooks.create_webhook_endpoint(
        endpoint_url=f"http://127.0.0.1:{port}/hook", events=["dsync.deleted"]
    )
    try:
        client.directory_sync.delete_directory(SCRATCH_DIRECTORY_ID)
        signature, body = _Receiver.deliveries.get(timeout=30)

        event = client.webhooks.verify_event(event_body=body, event_signature=signature, secret=endpoint.secret)
        assert isinstance(event, DsyncDeleted)
        assert event.data.id == SCRATCH_DIRECTORY_ID

        with pytest.raises(ValueError):
            client.webhooks.verify_event(
                event_body=body.replace(b"Python Scratch", b"Python Scratcx"),
                event_signature=signature,
                secret=endpoint.secret,
            )
    finally:
        client.webhooks.delete_webhook_endpoint(endpoint.id)
        receiver.shutdown()

    deadline = time.monotonic() + 30
    while True:
        try:
            client.directory_sync.get_directory(SCRATCH_DIRECTORY_ID)
        except workos.NotFoundError:
            break
        assert time.monotonic() < deadline, "the directory was not offboarded"
        time.sleep(0.2)

    # Deleting again is not an error.
    client.directory_sync.delete_directory(SCRATCH_DIRECTORY_ID)
