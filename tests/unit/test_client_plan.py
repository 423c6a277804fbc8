"""token_client's plan (`token_client.tokens.next_move`): from what a client holds for a key and
the clock, what a caller does next. Plain data in, a move out: no broker, no threads, no sleeping."""

from __future__ import annotations

import pytest

from token_client.tokens import ADVISORY_SECONDS, Ask, AskAhead, Held, Token, UseKept, WaitForOther, next_move

NOW = 1_800_000_000.0
FLOOR = 60


def token(life_left: float, lifetime: float = 3600, value: str = "t") -> Token:
    return Token(value, NOW + life_left, "", received_at=NOW + life_left - lifetime)


class TestTheWindows:
    def test_a_token_outside_the_advisory_window_is_used(self) -> None:
        kept = token(3000)
        assert next_move(Held(kept), FLOOR, NOW) == UseKept(kept)

    def test_in_the_advisory_window_one_caller_asks_ahead_for_the_floor_and_the_window(self) -> None:
        kept = token(FLOOR + ADVISORY_SECONDS - 1)
        assert next_move(Held(kept), FLOOR, NOW) == AskAhead(kept, FLOOR + int(ADVISORY_SECONDS))

    @pytest.mark.parametrize(
        "held",
        [Held(token(100), calling=True), Held(token(100), advised_for="t")],
        ids=["another-asks-already", "asked-ahead-for-this-token-already"],
    )
    def test_in_the_advisory_window_the_others_keep_the_token(self, held: Held) -> None:
        assert next_move(held, FLOOR, NOW) == UseKept(held.token)  # type: ignore[arg-type]

    def test_a_short_lived_tokens_advisory_window_is_a_quarter_of_its_life(self) -> None:
        kept = token(FLOOR + 20, lifetime=100)  # a quarter of 100 s is 25 s: inside the window
        assert next_move(Held(kept), FLOOR, NOW) == AskAhead(kept, FLOOR + 25)
        assert next_move(Held(token(FLOOR + 30, lifetime=100)), FLOOR, NOW) == UseKept(token(FLOOR + 30, lifetime=100))


class TestTheMandatoryWindow:
    @pytest.mark.parametrize("held", [Held(None), Held(token(FLOOR - 1))], ids=["nothing", "below-the-floor"])
    def test_with_no_token_that_serves_one_caller_asks(self, held: Held) -> None:
        assert next_move(held, FLOOR, NOW) == Ask(force_refresh=False)

    def test_the_others_wait_for_it(self) -> None:
        assert next_move(Held(None, calling=True), FLOOR, NOW) == WaitForOther()

    def test_a_refused_token_is_never_used_and_the_next_ask_forces_a_refresh(self) -> None:
        assert next_move(Held(token(3000), refused=True), FLOOR, NOW) == Ask(force_refresh=True)

    def test_a_caller_asking_for_more_than_the_kept_token_has_asks_anew(self) -> None:
        assert next_move(Held(token(300)), 600, NOW) == Ask(force_refresh=False)
