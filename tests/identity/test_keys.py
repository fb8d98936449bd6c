"""API keys: shown once, stored hashed, expiry, revocation (here and from another process), scopes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from aerodrome.identity import keys as keymat
from aerodrome.identity import store
from aerodrome.storage.engine import make_engine
from tests.harness import Gateway

CHAT = {"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]}


def _assert_openai_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


def test_key_is_shown_once_and_stored_hashed(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        r = c.post("/api/keys", json={"department": "hr", "role": "user", "name": "once"})
        assert r.status_code == 201, r.text
        created = r.json()
        plaintext = created["key"]
        assert plaintext.startswith("ak_") and keymat.parse_prefix(plaintext) == created["prefix"]
        assert "hash" not in created
        listed = c.get("/api/keys")
        assert listed.status_code == 200
        assert plaintext not in listed.text
        secret_part = plaintext.split("_")[-1]
        assert secret_part not in listed.text
        for item in listed.json()["data"]:
            assert "key" not in item and "hash" not in item
        (mine,) = [k for k in listed.json()["data"] if k["id"] == created["id"]]
        assert mine["prefix"] == created["prefix"]
    # In the database: only the prefix and a hash; the key itself appears nowhere.
    with gateway.runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    dump = repr([dict(r) for r in rows])
    assert plaintext not in dump and secret_part not in dump
    (row,) = [r for r in rows if r["id"] == created["id"]]
    assert row["prefix"] == created["prefix"]
    assert row["hash"] == keymat.hash_key(plaintext) and len(row["hash"]) == 64
    # ... and the key works
    with gateway.client(plaintext) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_expired_key_is_refused(gateway: Gateway) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1)
    key = gateway.make_key("hr", "user", expires_at=expires.isoformat())
    with gateway.client(key) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
        _assert_openai_error(c.post("/v1/chat/completions", json=CHAT), 401, "expired_api_key")
        _assert_openai_error(c.get("/v1/models"), 401, "expired_api_key")
        _assert_openai_error(c.get("/api/keys"), 401, "expired_api_key")


def test_key_expiring_in_the_past_is_refused_at_creation(gateway: Gateway) -> None:
    with gateway.client(gateway.admin_key) as c:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = c.post("/api/keys", json={"department": "hr", "role": "user", "expires_at": past})
        _assert_openai_error(r, 400, "invalid_request")
        assert r.json()["error"]["param"] == "expires_at"


def test_revoked_via_api_is_refused_at_once(gateway: Gateway) -> None:
    key = gateway.make_key("hr", "user")
    with gateway.client(key) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200  # cached as valid now
        with gateway.client(gateway.admin_key) as admin:
            r = admin.delete(f"/api/keys/{keymat.parse_prefix(key)}")
            assert r.status_code == 200, r.text
            assert r.json()["revoked_at"] is not None
            again = admin.delete(f"/api/keys/{keymat.parse_prefix(key)}")
            _assert_openai_error(again, 409, "key_already_revoked")
        _assert_openai_error(c.post("/v1/chat/completions", json=CHAT), 401, "revoked_api_key")
        _assert_openai_error(c.get("/v1/models"), 401, "revoked_api_key")


def test_revoked_by_another_process_is_refused_within_5_seconds(gateway: Gateway) -> None:
    key = gateway.make_key("hr", "user")
    with gateway.client(key) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200  # cached as valid now
        # another process: its own engine on the same database, as `aerodrome keys revoke` does
        other = make_engine(gateway.runtime.config.resolved_database_url())
        try:
            store.revoke_key(other, keymat.parse_prefix(key) or "", actor="other-replica")
        finally:
            other.dispose()
        start = time.monotonic()
        while True:
            r = c.get("/v1/models")
            if r.status_code == 401:
                break
            assert r.status_code == 200
            assert time.monotonic() - start < 5, "a key revoked elsewhere still works after 5 s"
            time.sleep(0.05)
        took = time.monotonic() - start
        _assert_openai_error(r, 401, "revoked_api_key")
        print(f"revocation by another process took effect after {took:.2f} s")
        assert took <= 5


def test_key_scoped_to_aliases(gateway: Gateway) -> None:
    key = gateway.make_key("hr", "user", aliases=["chat-small", "embed-small"])
    with gateway.client(key) as c:
        models = c.get("/v1/models")
        assert models.status_code == 200
        assert sorted(m["id"] for m in models.json()["data"]) == ["chat-small", "embed-small"]
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "chat-ha"})
        _assert_openai_error(r, 403, "model_not_permitted")
        assert r.json()["error"]["param"] == "model"
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"})
        _assert_openai_error(r, 404, "model_not_found")
    with gateway.client(gateway.make_key("hr", "user")) as c:  # no alias scope: everything
        ids = {m["id"] for m in c.get("/v1/models").json()["data"]}
        assert {"chat-small", "chat-ha", "chat-local", "embed-small"} <= ids


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer ak_short_key", "invalid_api_key"),
        ("Bearer ak_" + "A" * 10 + "_" + "B" * 32, "invalid_api_key"),  # well formed, unknown
    ],
)
def test_missing_malformed_or_unknown_key(gateway: Gateway, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/api/keys")):
            r = c.request(method, path, headers=headers, json=CHAT if method == "POST" else None)
            _assert_openai_error(r, 401, code)
            assert r.json()["error"]["type"] == "authentication_error"


def test_wrong_secret_with_a_known_prefix_is_refused(gateway: Gateway) -> None:
    key = gateway.make_key("hr", "user")
    forged = key[:14] + ("x" if key[14] != "x" else "y") + key[15:]
    with gateway.client(forged) as c:
        _assert_openai_error(c.get("/v1/models"), 401, "invalid_api_key")
    with gateway.client(key) as c:
        assert c.get("/v1/models").status_code == 200
