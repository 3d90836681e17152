"""Settings declared once: flags, environment variables and help all come from server.config."""

from __future__ import annotations

import dataclasses

import pytest

from server.config import Settings, build_parser, env_name, settings_from_args


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    return settings_from_args(build_parser(environ or {}).parse_args(argv))


def test_defaults_match_the_dataclass() -> None:
    assert parse([]) == Settings()


def test_every_setting_has_a_flag_or_variable_named_in_help() -> None:
    text = build_parser({}).format_help()
    for item in dataclasses.fields(Settings):
        assert env_name(item) in text, item.name


def test_flag_wins_over_environment() -> None:
    environ = {"TWINSTREAM_PORT": "9001", "TWINSTREAM_HEARTBEAT": "3"}
    settings = parse(["--port", "9002"], environ)
    assert (settings.port, settings.heartbeat) == (9002, 3.0)


def test_sizes_booleans_and_lists() -> None:
    settings = parse(
        ["--max-pending-bytes", "2M", "--debug", "--allowed-origin", "http://a,http://b"],
        {"TWINSTREAM_SSE_COMPRESSION": "yes", "TWINSTREAM_ALLOWED_ORIGINS": "http://c"},
    )
    assert settings.max_pending_bytes == 2 << 20
    assert settings.debug_drop is True
    assert settings.sse_compression is True
    assert settings.allowed_origins == ("http://c", "http://a", "http://b")


def test_secrets_are_never_shown() -> None:
    text = build_parser({"TWINSTREAM_API_KEY": "hunter2", "OPENAI_API_KEY": "sk-x"}).format_help()
    assert "hunter2" not in text and "sk-x" not in text
    assert "(default: set)" in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TWINSTREAM_PORT", "abc"), ("TWINSTREAM_STORE", "disk"), ("TWINSTREAM_API_KEY", "")],
)
def test_bad_environment_is_a_one_line_error(variable: str, value: str) -> None:
    if value == "":
        assert parse([], {variable: value}).api_key is None  # empty means unset
        return
    with pytest.raises(SystemExit, match=variable):
        build_parser({variable: value})


def test_limits_follow_the_prompt_setting() -> None:
    assert Settings(max_prompt_bytes=10).limits.max_prompt_bytes == 10


def test_store_is_memory_or_a_redis_url() -> None:
    assert parse(["--store", "redis://127.0.0.1:6379/2"]).store == "redis://127.0.0.1:6379/2"
    assert parse([], {"TWINSTREAM_STORE": "redis://h:1/0"}).store == "redis://h:1/0"
    cluster = "redis-cluster://10.0.0.1:7000,10.0.0.2:7001"
    assert parse(["--store", cluster]).store == cluster
    for bad in ("redis-cluster://", "redis-cluster://h", "redis-cluster://h:1,h:x"):
        with pytest.raises(SystemExit):
            parse(["--store", bad])
    for bad in ("http://x:1/0", "redis://:6379/0", "redis://h:99999/0", "redis://h:1/x", "disk"):
        with pytest.raises(SystemExit):
            parse(["--store", bad])
