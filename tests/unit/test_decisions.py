"""The broker's rules as pure functions, with the clock passed in."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from broker.client_auth import SecretBasic
from broker.decisions import (
    DEFAULT_LIFETIME_SECONDS,
    CachedToken,
    effective_min_ttl,
    expires_in,
    is_usable,
    needs_refresh,
    token_lifetime,
    unreachable_min_ttl,
)
from broker.failures import outage_backoff
from broker.profiles import Profile, cache_key
from broker.sensitive import Sensitive
from broker.token_binding import Dpop

NOW = 1_800_000_000.0


def token(expires_at: float, fetched_at: float = NOW) -> CachedToken:
    return CachedToken(Sensitive("t"), "Bearer", "s", int(expires_at), fetched_at)


def profile(**changes: object) -> Profile:
    fields: dict[str, object] = {
        "name": "p",
        "token_url": "https://idp.example.com/token",
        "client_id": "c",
        "client_auth": SecretBasic(Sensitive("s")),
    }
    return Profile(**{**fields, **changes})  # type: ignore[arg-type]


def jwt_with(claims: dict[str, object]) -> str:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


class TestCacheKey:
    def test_scope_order_does_not_matter(self) -> None:
        assert cache_key(profile(), frozenset({"a", "b"})) == cache_key(profile(), frozenset({"b", "a"}))

    @pytest.mark.parametrize(
        "change",
        [
            {"client_id": "other"},
            {"token_url": "https://idp.example.com/other"},
            {"token_params": {"audience": "https://api.example.com"}},
        ],
    )
    def test_identity_and_params_make_different_keys(self, change: dict[str, object]) -> None:
        assert cache_key(profile(), frozenset({"a"})) != cache_key(profile(**change), frozenset({"a"}))

    def test_a_rotated_secret_keeps_the_key_and_the_key_reveals_nothing(self) -> None:
        old = profile(client_auth=SecretBasic(Sensitive("old")))
        key = cache_key(old, frozenset({"orders.read"}))
        assert key == cache_key(profile(client_auth=SecretBasic(Sensitive("new"))), frozenset({"orders.read"}))
        assert "orders" not in key
        assert "idp" not in key
        assert len(key) == 64

    def test_a_bearer_profile_keeps_the_key_it_had_before_token_bindings_so_an_upgrade_refetches_nothing(
        self,
    ) -> None:
        # the version 3 key: name, token URL, client id, auth method, scopes, params
        identity = ["p", "https://idp.example.com/token", "c", "client_secret_basic", ["a"], []]
        v3 = hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()
        assert cache_key(profile(), frozenset({"a"})) == v3

    @pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
    def test_bearer_and_dpop_profiles_never_share_a_key_nor_do_dpop_algorithms(self, algorithm: str) -> None:
        keys = {cache_key(profile(binding=Dpop(other)), frozenset()) for other in ("ES256", "RS256", "PS256")}
        assert cache_key(profile(), frozenset()) not in keys
        assert len(keys) == 3
        assert cache_key(profile(binding=Dpop(algorithm)), frozenset()) in keys

    def test_scope_sets_differ(self) -> None:
        assert cache_key(profile(), frozenset({"a"})) != cache_key(profile(), frozenset({"a", "b"}))


class TestUsable:
    def test_min_ttl_is_the_floor_and_a_request_may_ask_for_more(self) -> None:
        assert effective_min_ttl(60, None) == 60
        assert effective_min_ttl(60, 10) == 60
        assert effective_min_ttl(60, 600) == 600

    def test_a_token_with_exactly_min_ttl_left_is_usable_and_one_second_less_is_not(self) -> None:
        assert is_usable(token(NOW + 60), NOW, 60)
        assert not is_usable(token(NOW + 59), NOW, 60)
        assert not is_usable(None, NOW, 0)

    def test_expires_in_rounds_down(self) -> None:
        assert expires_in(CachedToken(Sensitive("t"), "Bearer", "", 1000, 0), 899.4) == 100
        assert expires_in(token(NOW - 5), NOW) == 0


class TestRefreshAhead:
    def test_a_token_enters_the_window_refresh_ahead_seconds_before_expiry(self) -> None:
        hour = token(NOW + 3600)
        assert not needs_refresh(hour, NOW + 3600 - 301, 300)
        assert needs_refresh(hour, NOW + 3600 - 299, 300)

    def test_a_short_lived_token_is_renewed_at_half_life_not_on_every_request(self) -> None:
        short = token(NOW + 120)
        assert not needs_refresh(short, NOW + 59, 300)
        assert needs_refresh(short, NOW + 61, 300)


class TestLifetime:
    def test_expires_in_wins(self) -> None:
        assert token_lifetime(3600, jwt_with({"exp": NOW + 60}), NOW) == 3600

    def test_a_digit_string_is_accepted(self) -> None:
        assert token_lifetime("3599", "opaque", NOW) == 3599

    @pytest.mark.parametrize("bad", [0, -1, "soon", True, 1.5, None.__class__])
    def test_an_unusable_expires_in_is_refused(self, bad: object) -> None:
        assert token_lifetime(bad, "opaque", NOW) is None

    def test_a_missing_expires_in_comes_from_the_jwt_exp(self) -> None:
        assert token_lifetime(None, jwt_with({"exp": int(NOW) + 1200}), NOW) == 1200

    def test_an_expired_jwt_has_no_usable_lifetime(self) -> None:
        assert token_lifetime(None, jwt_with({"exp": int(NOW) - 1}), NOW) is None

    @pytest.mark.parametrize("opaque", ["abc", "a.b.c", jwt_with({"sub": "x"}), "e30.!!!.x"])
    def test_a_missing_expires_in_without_a_jwt_exp_means_300_seconds(self, opaque: str) -> None:
        assert token_lifetime(None, opaque, NOW) == DEFAULT_LIFETIME_SECONDS


@pytest.mark.parametrize(("retry_after", "backoff"), [(None, 5), (1, 5), (17, 17), (600, 60)])
def test_the_fleet_backs_off_for_the_servers_wish_within_bounds(retry_after: int | None, backoff: int) -> None:
    assert outage_backoff(retry_after) == backoff


def test_a_min_ttl_is_unreachable_only_beyond_what_the_keys_current_token_lived() -> None:
    token = CachedToken(Sensitive("t"), "Bearer", "", expires_at=1_600, fetched_at=1_000.0)  # lived 600 s
    assert unreachable_min_ttl(token, now=1_100.0, min_ttl=600)
    assert not unreachable_min_ttl(token, now=1_100.0, min_ttl=599)
    assert not unreachable_min_ttl(None, now=1_100.0, min_ttl=10_000)
    # an expired token no longer says what the next one will live: the server may have changed
    assert not unreachable_min_ttl(token, now=1_600.0, min_ttl=10_000)


class TestBoundedMap:
    def test_it_is_bounded_however_it_is_written_and_forgets_the_oldest_written(self) -> None:
        from broker.bounded import BoundedMap

        kept: BoundedMap[str, int] = BoundedMap(2)
        kept["a"] = 1
        kept.put("b", 2)
        assert kept.get("a") == 1  # reading moves nothing: eviction is by write
        kept["c"] = 3
        assert list(kept) == ["b", "c"]
        kept["b"] = 20  # an update is no new entry
        assert dict(kept) == {"b": 20, "c": 3}
