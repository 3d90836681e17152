"""Key names and cluster targets, without a server: every key of a stream in
one hash slot, lease keys per master, --store redis-cluster:// parsed."""

from __future__ import annotations

from redis.crc import key_slot

from server.store.redis.connection import Target
from server.store.redis.keys import Keys

KEYS = Keys("twinstream:")


def test_every_key_and_channel_of_a_stream_shares_one_slot() -> None:
    for stream_id in ("abc", "abcd", "Zk3-_q9", "x" * 22, "a}b", "{weird", "ab}d}fg"):
        names = [
            KEYS.stream(stream_id),
            KEYS.meta(stream_id),
            KEYS.channel(stream_id),
            KEYS.read(stream_id),
            KEYS.record("response", stream_id),
        ]
        assert len({key_slot(name.encode()) for name in names}) == 1, names
        assert KEYS.stream_of_channel(KEYS.channel(stream_id)) == stream_id
        assert KEYS.of_record("response", KEYS.record("response", stream_id)) == stream_id


def test_control_channels_are_told_apart_from_stream_channels() -> None:
    assert KEYS.is_control(KEYS.control("0123abcd.4.9"))
    assert not KEYS.is_control(KEYS.channel("k"))


def test_a_token_names_its_lease_keys() -> None:
    assert KEYS.leases("0123abcd") == ["twinstream:o:{0123abcd}"]
    assert KEYS.leases("0123abcd.0.5.17") == [
        "twinstream:o:{0123abcd.0}",
        "twinstream:o:{0123abcd.5}",
        "twinstream:o:{0123abcd.17}",
    ]


def test_targets() -> None:
    one = Target("redis://127.0.0.1:6379/0")
    assert not one.cluster and one.publish == "PUBLISH" and one.slot("anything") == 0
    cluster = Target("redis-cluster://user:pw@10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002")
    assert cluster.cluster and cluster.publish == "SPUBLISH"
    assert cluster.nodes() == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert cluster.slot(KEYS.stream("abc")) == key_slot(b"abc")
    # an id's first four characters are its hash tag: ids that share them share a slot
    assert cluster.slot(KEYS.stream("abcdefghijkl")) == key_slot(b"abcd")
    assert cluster.slot(KEYS.meta("abcdZZZZ")) == cluster.slot(KEYS.channel("abcdYYYY"))
