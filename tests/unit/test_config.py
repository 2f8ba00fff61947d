"""app.config: the settings added for hostile input (SPEC §2, §11a)."""

from __future__ import annotations

import pytest

from app.config import RECORD_OVERHEAD, ConfigError, Settings, load


@pytest.mark.parametrize("tokens", [("",), ("a", ""), ("  ",), (" a",), ("caf\u00e9",), ("a\x07b",)])
def test_empty_or_padded_tokens_are_a_config_error(tokens):
    # An empty token would match "Authorization: Bearer " (SPEC §2).
    with pytest.raises(ConfigError, match="api_tokens"):
        Settings(api_tokens=tokens)


def test_empty_token_in_a_toml_list_is_refused(tmp_path):
    path = tmp_path / "flare.toml"
    path.write_text('api_tokens = ["good", ""]\n')
    with pytest.raises(ConfigError, match="api_tokens"):
        load(path, environ={})


@pytest.mark.parametrize(("raw", "tokens"), [("", ()), ("a,b", ("a", "b")), (" a , b ", ("a", "b"))])
def test_tokens_from_the_environment(raw, tokens):
    assert load(environ={"FLARE_API_TOKENS": raw}).api_tokens == tokens


def test_an_empty_item_in_the_environment_is_refused():
    with pytest.raises(ConfigError, match="api_tokens"):
        load(environ={"FLARE_API_TOKENS": "a,,b"})


def test_internal_token_is_the_first_configured():
    assert Settings().internal_token is None
    assert Settings(api_tokens=("one", "two")).internal_token == "one"


def test_records_carry_a_body_of_max_body_bytes():
    settings = Settings(max_body_bytes=2048)
    assert settings.max_record_bytes == 2048 + RECORD_OVERHEAD


def test_response_read_bound():
    assert Settings().delivery_max_response_bytes == 64 * 1024
    assert load(environ={"FLARE_DELIVERY_MAX_RESPONSE_BYTES": "100"}).delivery_max_response_bytes == 100
    with pytest.raises(ConfigError):
        Settings(delivery_max_response_bytes=-1)


def test_producer_lingers_from_the_environment_and_never_negative():
    settings = load(environ={"FLARE_API_LINGER_MS": "0", "FLARE_STAGE_LINGER_MS": "1"})
    assert (settings.api_linger_ms, settings.stage_linger_ms) == (0, 1)
    for key in ("api_linger_ms", "stage_linger_ms"):
        with pytest.raises(ConfigError, match=key):
            Settings(**{key: -1})
