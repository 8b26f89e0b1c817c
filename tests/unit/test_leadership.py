"""The leader lock: one beat takes it, keeps it by extending, loses it when it expires, hands it over on release."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from sp_scheduler import keys
from sp_scheduler.leadership import Leadership


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def test_one_beat_takes_the_lead_the_other_stands_by(client: fakeredis.FakeRedis) -> None:
    first, second = Leadership("one", clock=lambda: 100.0), Leadership("two", clock=lambda: 101.0)
    assert first.take(client) and first.leader
    assert not second.take(client) and not second.leader
    second.standby(client)
    assert client.hget(keys.BEAT_LEADER, "id") == "one"
    assert client.zscore(keys.BEAT_INSTANCES, "two") == 101.0


def test_keeping_the_lead_extends_the_lock_to_a_full_ttl(client: fakeredis.FakeRedis) -> None:
    beat = Leadership("one", ttl=10.0)
    beat.take(client)
    client.pexpire(keys.LEADER_LOCK, 2000)
    assert beat.keep()
    assert 9000 < client.pttl(keys.LEADER_LOCK) <= 10000


def test_a_lock_that_expired_is_lost_and_another_beat_takes_it(client: fakeredis.FakeRedis) -> None:
    first, second = Leadership("one"), Leadership("two")
    first.take(client)
    client.delete(keys.LEADER_LOCK)  # expired (or Redis restarted without it)
    assert second.take(client)
    with pytest.raises(redis.exceptions.LockError):
        first.keep()
    first.step_down("lost the leader lock", None)
    assert not first.leader and second.leader


def test_release_hands_the_lock_over_at_once(client: fakeredis.FakeRedis) -> None:
    first, second = Leadership("one"), Leadership("two")
    first.take(client)
    first.release()
    assert not first.leader and not client.exists(keys.LEADER_LOCK)
    assert second.take(client)
    first.release()  # not leading: leaves the other beat's lock alone
    assert client.exists(keys.LEADER_LOCK)


def test_heartbeat_refreshes_the_leader_hash_and_instances(client: fakeredis.FakeRedis) -> None:
    beat = Leadership("one", ttl=10.0, clock=lambda: 250.0)
    beat.take(client)
    beat.heartbeat(client)
    assert client.hget(keys.BEAT_LEADER, "last_tick") == "250.0"
    assert 0 < client.ttl(keys.BEAT_LEADER) <= 30
    assert client.zscore(keys.BEAT_INSTANCES, "one") == 250.0


def test_a_leader_cut_off_from_redis_resumes_the_lock_it_still_holds(client: fakeredis.FakeRedis) -> None:
    # After a Sentinel failover the promoted replica holds the lock under the old leader's token:
    # that leader resumes at once instead of everyone waiting out the TTL.
    first, second = Leadership("one", ttl=10.0), Leadership("two", ttl=10.0)
    first.take(client)
    first.step_down("Redis unreachable", ConnectionError("gone"))
    client.pexpire(keys.LEADER_LOCK, 3000)
    assert not second.take(client)
    assert first.take(client) and first.leader
    assert 9000 < client.pttl(keys.LEADER_LOCK) <= 10000


def test_a_leader_whose_lock_vanished_takes_a_new_one(client: fakeredis.FakeRedis) -> None:
    beat = Leadership("one")
    beat.take(client)
    beat.step_down("Redis unreachable", None)
    client.delete(keys.LEADER_LOCK)  # Redis restarted without persistence
    assert beat.take(client) and beat.leader and client.exists(keys.LEADER_LOCK)


def test_a_former_leader_does_not_resume_a_lock_another_beat_took(client: fakeredis.FakeRedis) -> None:
    first, second = Leadership("one"), Leadership("two")
    first.take(client)
    first.step_down("Redis unreachable", None)
    client.delete(keys.LEADER_LOCK)
    assert second.take(client)
    assert not first.take(client) and not first.leader and second.keep()


def test_take_says_whether_it_resumed_the_lock_or_took_a_new_one(client: fakeredis.FakeRedis) -> None:
    beat = Leadership("one")
    beat.take(client)
    assert not beat.resumed
    beat.step_down("Redis unreachable", None)
    assert beat.take(client) and beat.resumed
    beat.step_down("Redis unreachable", None)
    client.delete(keys.LEADER_LOCK)
    assert beat.take(client) and not beat.resumed
