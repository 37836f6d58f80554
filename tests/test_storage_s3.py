"""The S3 store against real S3 servers over HTTP on 127.0.0.1:
rclone (verifies SigV4 signatures) and moto (behaviour, metadata, lifecycle)."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta

import pytest

from storage import StorageError, open_store
from storage.s3 import S3Store, parse_endpoint
from tests.conftest import S3_ACCESS, S3_SECRET, use_s3
from tests.servers import http_get
from tests.storage_contract import LeaseContract, StoreContract


def md5(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
def test_200_mb_multipart_round_trip_and_presigned_links(rclone_s3, monkeypatch, tmp_path):
    use_s3(monkeypatch, rclone_s3.endpoint, "big")
    store = open_store()
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1024 * 1024))
    assert store.part_size < src.stat().st_size          # so fput_object uploads in parts
    store.put_file("renders/big/1/final.mp4", src, {"scene": "all"})
    assert store.list("renders") == ["renders/big/1/final.mp4"]
    back = store.fetch("renders/big/1/final.mp4", tmp_path / "down")
    assert md5(back) == md5(src)

    link = store.url("renders/big/1/final.mp4")
    status, body = http_get(link)
    assert status == 200 and hashlib.md5(body).hexdigest() == md5(src)
    # A tampered link is refused: another object, a changed signature, a longer expiry.
    assert http_get(link.replace("final.mp4", "other.mp4"))[0] == 403
    assert http_get(link[:-4] + ("0000" if not link.endswith("0000") else "1111"))[0] == 403
    assert http_get(link.replace("X-Amz-Expires=604800", "X-Amz-Expires=604801"))[0] == 403


def test_wrong_keys_are_refused_with_a_clear_error(rclone_s3, monkeypatch):
    use_s3(monkeypatch, rclone_s3.endpoint, "any", secret="not-the-right-secret-123")
    with pytest.raises(StorageError) as info:
        open_store()
    message = str(info.value)
    assert "refused the credentials" in message and "REELFLOW_S3_SECRET_KEY" in message
    assert "not-the-right-secret-123" not in message and S3_SECRET not in message


def test_missing_credentials_say_how_to_set_them(monkeypatch, moto_s3):
    use_s3(monkeypatch, moto_s3.endpoint, "no-secret")      # (a bucket name S3 accepts: 3 characters or more)
    monkeypatch.delenv("REELFLOW_S3_SECRET_KEY")
    from reelflow.settings import reload_settings

    reload_settings()
    with pytest.raises(StorageError, match="REELFLOW_S3_SECRET_KEY.*Prefect Secret blocks"):
        open_store()


@pytest.mark.parametrize("storage,endpoint,said", [
    ("s3://Bad_Bucket/x", "127.0.0.1:9", "REELFLOW_STORAGE='s3://Bad_Bucket/x': 'Bad_Bucket' is not an S3 bucket name"),
    ("s3://sweep/../x", "127.0.0.1:9", "REELFLOW_STORAGE='s3://sweep/../x': the prefix '../x' has an empty, '.' or '..' segment"),
    ("s3://sweep/a//b", "127.0.0.1:9", "the prefix 'a//b' has an empty"),
    ("s3://AKID:hunter2pass99@sweep/p", "127.0.0.1:9", "REELFLOW_STORAGE='s3://AKID:***@sweep/p': credentials do not go"),
    ("s3://sweep/p", "http://admin:hunter2pass99@127.0.0.1:9", "REELFLOW_S3_ENDPOINT='http://admin:***@127.0.0.1:9'"),
    ("s3://sweep/p", "not a host", "REELFLOW_S3_ENDPOINT='not a host': not an S3 endpoint"),
    ("s3://sweep/p", "http://127.0.0.1:99999", "not an S3 endpoint"),
    ("s3://sweep/p", "http://[::1", "not an S3 endpoint"),                  # was 'internal error: ValueError'
])
def test_storage_settings_s3_cannot_address_are_one_line_exit_2_at_once(small_project, monkeypatch, storage,
                                                                       endpoint, said):
    """minio's own refusals were tracebacks (exit 1), one with the password in it; a malformed
    endpoint was retried as an outage. Nothing is contacted: the port is closed."""
    import time

    from typer.testing import CliRunner

    from reelflow.cli import app

    use_s3(monkeypatch, endpoint, "unused", REELFLOW_STORAGE=storage)
    started = time.monotonic()
    for command in (["render", str(small_project)], ["takes", str(small_project)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert said in result.output and "Traceback" not in result.output and "hunter2pass99" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_render_gives_up_on_an_unreachable_store_once(small_project, monkeypatch):
    """The unchanged-render lookup opened the store, waited out its retries, kept quiet, and the
    render opened it again: twice the time the message gave."""
    import time

    from typer.testing import CliRunner

    from reelflow.cli import app
    from storage.s3 import OPEN_RETRY_SECONDS

    use_s3(monkeypatch, "http://127.0.0.1:1", "sweep")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert result.exit_code == 3 and f"gave up after {OPEN_RETRY_SECONDS:.0f} s" in result.output
    assert time.monotonic() - started < OPEN_RETRY_SECONDS * 1.5


class TestS3StoreOnMoto(StoreContract):
    """The shared contract on moto's S3 server over HTTP (conditional writes included)."""

    @pytest.fixture
    def store_env(self, moto_s3, monkeypatch):
        bucket = f"c-{uuid.uuid4().hex[:10]}"
        use_s3(monkeypatch, moto_s3.endpoint, bucket)
        return {k: os.environ[k] for k in os.environ if k.startswith("REELFLOW_")}

    @pytest.fixture
    def store(self, store_env):
        return open_store()


class TestS3LeasesOnRclone(LeaseContract):
    """Leases on rclone's S3, which ignores conditional writes: the fallback (write, settle, re-read).
    (rclone's local-folder backend keeps no user metadata, so it is no full backend for reelflow.)"""

    @pytest.fixture
    def store_env(self, rclone_s3, monkeypatch):
        use_s3(monkeypatch, rclone_s3.endpoint, "contract")
        return {k: os.environ[k] for k in os.environ if k.startswith("REELFLOW_")}

    @pytest.fixture
    def store(self, store_env):
        return open_store()

    def test_the_server_is_known_to_ignore_conditional_writes(self, store):
        from storage.s3_lease import S3Leases

        assert S3Leases(store).conditional() is False


def test_moto_honours_conditional_writes(moto_s3, monkeypatch):
    from storage.s3_lease import S3Leases

    use_s3(monkeypatch, moto_s3.endpoint, f"p-{uuid.uuid4().hex[:10]}")
    assert S3Leases(open_store()).conditional() is True


@pytest.fixture
def moto_store(moto_s3, monkeypatch) -> S3Store:
    use_s3(monkeypatch, moto_s3.endpoint, f"b-{uuid.uuid4().hex[:10]}", REELFLOW_S3_RETENTION_DAYS="3")
    return open_store()


def test_store_behaviour_on_moto(moto_store, tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00" * 5000)
    assert not moto_store.exists("clips/abc.mp4")
    moto_store.put_file("clips/abc.mp4", src, {"project": "demo", "scene": "win", "engine": "animatic"})
    assert moto_store.exists("clips/abc.mp4")
    assert moto_store.metadata("clips/abc.mp4") == {"project": "demo", "scene": "win", "engine": "animatic"}
    assert moto_store.stat("clips/abc.mp4").content_type == "video/mp4"
    assert moto_store.list() == ["clips/abc.mp4"]            # no temporary objects left behind
    raw = [o.object_name for o in moto_store.client.list_objects(moto_store.bucket, recursive=True)]
    assert raw == ["reels/clips/abc.mp4"]
    moto_store.delete("clips/abc.mp4")
    assert moto_store.list() == []
    with pytest.raises(StorageError, match="not in s3://"):
        moto_store.fetch("clips/abc.mp4", tmp_path)


def test_bucket_is_created_and_retention_rules_are_set(moto_store):
    assert moto_store.client.bucket_exists(moto_store.bucket)
    rules = {r.rule_id: r for r in moto_store.client.get_bucket_lifecycle(moto_store.bucket).rules}
    assert rules["reelflow-clips-retention"].expiration.days == 3
    assert rules["reelflow-clips-retention"].rule_filter.prefix == "reels/clips/"
    assert rules["reelflow-tmp-cleanup"].rule_filter.prefix == "reels/.tmp/"


def test_presigned_links_are_signed_for_the_public_host(moto_s3, monkeypatch):
    use_s3(monkeypatch, moto_s3.endpoint, f"p-{uuid.uuid4().hex[:8]}",
           REELFLOW_S3_PUBLIC_ENDPOINT="https://media.example.org")
    link = open_store().url("clips/a.mp4")
    assert link.startswith("https://media.example.org/") and "X-Amz-Signature=" in link
    assert S3_SECRET not in link


@pytest.mark.parametrize("endpoint,secure,expected", [
    ("127.0.0.1:9000", None, ("127.0.0.1:9000", True)),
    ("http://minio:9000", None, ("minio:9000", False)),
    ("https://acc123.r2.cloudflarestorage.com", None, ("acc123.r2.cloudflarestorage.com", True)),
    ("minio.local:9000", False, ("minio.local:9000", False)),
])
def test_endpoint_parsing_covers_minio_aws_and_r2(endpoint, secure, expected):
    assert parse_endpoint(endpoint, secure) == expected


def test_link_expiry_is_the_setting(moto_s3, monkeypatch):
    use_s3(monkeypatch, moto_s3.endpoint, f"e-{uuid.uuid4().hex[:8]}", REELFLOW_S3_LINK_EXPIRY_HOURS="2")
    store = open_store()
    assert store.link_expiry == timedelta(hours=2) and "X-Amz-Expires=7200" in store.url("k.mp4")
    assert S3_ACCESS in store.url("k.mp4")   # the key ID is part of every presigned link, by S3's design


@pytest.mark.parametrize("fault", [dict(status=503), dict(status=500), dict(status=429), dict(stall=2.5)],
                         ids=["503", "500", "429", "timeout"])
@pytest.mark.slow
def test_5xx_throttling_and_timeouts_are_retried(moto_s3, monkeypatch, tmp_path, fault):
    from tests.servers import FaultProxy

    bucket = f"f-{uuid.uuid4().hex[:8]}"
    with FaultProxy(moto_s3.endpoint, fail=4, **fault) as proxy:
        store = S3Store(f"s3://{bucket}/reels", endpoint=proxy.endpoint, access_key=S3_ACCESS,
                        secret_key=S3_SECRET, region="us-east-1", retry_seconds=60, timeout=1.0)
        src = tmp_path / "a.mp4"
        src.write_bytes(b"clip" * 1000)
        store.put_file("clips/a.mp4", src)
        assert store.fetch("clips/a.mp4", tmp_path / "d").read_bytes() == b"clip" * 1000
        assert proxy.seen > 4


@pytest.mark.slow
def test_a_store_that_stays_down_gives_up_with_a_clear_error(moto_s3, tmp_path):
    from storage import TransientStorageError
    from tests.servers import FaultProxy

    with FaultProxy(moto_s3.endpoint, fail=10**6) as proxy:
        with pytest.raises(TransientStorageError, match=r"HTTP 503.*gave up after 2 s"):
            S3Store("s3://down/reels", endpoint=proxy.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET,
                    region="us-east-1", retry_seconds=2)


@pytest.mark.usefixtures("prefect_harness")
def test_credentials_from_prefect_secret_blocks(moto_s3, monkeypatch, tmp_path):
    from prefect.blocks.system import Secret

    from reelflow import secrets
    from reelflow.settings import reload_settings

    monkeypatch.setattr(secrets, "_BLOCKS", {})         # this test's block values stay in this test
    use_s3(monkeypatch, moto_s3.endpoint, f"blk-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("REELFLOW_S3_ACCESS_KEY")
    monkeypatch.delenv("REELFLOW_S3_SECRET_KEY")
    reload_settings()
    Secret(value=S3_ACCESS).save("reelflow-s3-access-key", overwrite=True)
    Secret(value="block-secret-value-42").save("reelflow-s3-secret-key", overwrite=True)
    store = open_store()
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    store.put_file("clips/a.mp4", src)
    assert store.exists("clips/a.mp4")
    assert secrets.redact("key block-secret-value-42") == "key ***"   # a block's secret is redacted too


@pytest.mark.slow
def test_a_failed_publish_reports_its_own_error_quickly(moto_s3, tmp_path):
    """Upload works, the server-side copy keeps failing: the copy's error comes back, not a
    cleanup error after a second wait."""
    import time

    from storage import TransientStorageError

    store = S3Store(f"s3://pub-{uuid.uuid4().hex[:8]}/reels", endpoint=moto_s3.endpoint, access_key=S3_ACCESS,
                    secret_key=S3_SECRET, region="us-east-1", retry_seconds=2)
    src = tmp_path / "a.mp4"
    src.write_bytes(b"x" * 100)
    original = store.client.copy_object
    store.client.copy_object = lambda *a, **kw: (_ for _ in ()).throw(ConnectionResetError("reset"))
    started = time.monotonic()
    with pytest.raises(TransientStorageError, match="publish clips/a.mp4"):
        store.put_file("clips/a.mp4", src)
    assert time.monotonic() - started < 5
    store.client.copy_object = original
    assert not store.exists("clips/a.mp4")
    assert list(store.client.list_objects(store.bucket, recursive=True)) == []   # the .tmp/ upload was discarded
