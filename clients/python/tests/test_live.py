"""The client against a live banditd (conftest.py starts it)."""

from __future__ import annotations

import sys
import time

import pytest

from banditd_client import (
    ApiError,
    Client,
    Event,
    EventsRejected,
    Fallback,
    Rejection,
)

DAY_MS = 24 * 3600 * 1000


def test_a_sticky_unit_keeps_its_variant_and_learns_when_its_token_expires(server):
    client = Client(server.url)
    before = int(time.time() * 1000)
    first = client.assign("alice", ["headline"])
    after = int(time.time() * 1000)
    headline = first["headline"]
    assert headline.variant in ("control", "bold")
    assert headline.payload["headline"] in ("Build faster", "Ship in a day")
    assert headline.counted and headline.sticky and headline.token
    assert before + 7 * DAY_MS <= headline.reward_until_ms <= after + 7 * DAY_MS
    again = client.assign("alice", ["headline"])["headline"]
    assert again.variant == headline.variant
    assert not again.counted
    assert again.reward_until_ms == headline.reward_until_ms


def test_unservable_experiments_come_back_as_typed_errors_with_their_fallback(server):
    answer = Client(server.url).assign("alice", ["headline", "pricing", "no-such"])
    assert [a.experiment for a in answer.assignments] == ["headline"]
    errors = {e.experiment: e for e in answer.errors}
    assert errors["pricing"].error == "experiment_not_served"
    assert errors["pricing"].fallback == Fallback("old", {"layout": "table"})
    assert errors["no-such"].error == "unknown_experiment"
    assert errors["no-such"].fallback is None
    assert answer.get("pricing") is None


def test_bad_input_raises_the_servers_problem(server):
    with pytest.raises(ApiError) as caught:
        Client(server.url).assign("", ["headline"])
    assert caught.value.status == 400
    assert "unit" in caught.value.detail


def test_events_are_applied_once_whatever_the_retries(server):
    client = Client(server.url)
    units = [f"user-{i}" for i in range(5)]
    for unit in units:
        client.assign(unit, ["headline"])
    events = [Event("headline", unit=unit) for unit in units]
    first = client.send_events(events, batch_size=2)
    assert (first.received, first.applied, first.rejected, first.batches) == (5, 5, 0, 3)
    # The same Event objects again (a retry of the whole call): nothing is applied twice.
    second = client.send_events(events)
    assert (second.applied, second.duplicate, second.rejected) == (0, 5, 0)
    report = client.experiment("headline")
    assert sum(arm["rewards"] for arm in report["arms"]) == 5
    assert sum(arm["exposures"] for arm in report["arms"]) == 5


def test_rejections_are_typed_and_indexed_across_batches(server):
    client = Client(server.url)
    client.assign("known", ["headline"])
    events = [
        {"experiment": "headline", "unit": "known"},
        {"experiment": "headline", "unit": "known", "id": "second-conversion"},
        {"experiment": "headline", "unit": "never-assigned", "id": "orphan"},
        {"experiment": "headline", "unit": "known", "reward": 7},
    ]
    result = client.send_events(events, batch_size=2)
    assert result.batches == 2
    assert result.applied == 1
    assert result.already_rewarded == 1
    assert result.rejected == 2
    assert result.rejected_by_reason == {"unit_not_assigned": 1, "reward_out_of_range": 1}
    assert [(r.index, r.reason) for r in result.rejections] == [
        (2, "unit_not_assigned"),
        (3, "reward_out_of_range"),
    ]
    assert result.rejections[0] == Rejection(
        index=2, id="orphan", reason="unit_not_assigned", detail=result.rejections[0].detail
    )
    assert result.rejections[1].id, "an event without an id got one"
    with pytest.raises(EventsRejected) as caught:
        result.raise_for_rejections()
    assert caught.value.result is result
    assert "2 of 4 events rejected" in str(caught.value)


def test_a_per_request_reward_carries_the_token(server):
    client = Client(server.url)
    ranking = client.assign("alice", ["ranking"])["ranking"]
    assert not ranking.sticky
    result = client.send_events([Event("ranking", token=ranking.token, reward=0.5)])
    assert result.applied == 1
    arms = {arm["variant"]: arm for arm in client.experiment("ranking")["arms"]}
    assert arms[ranking.variant]["rewards"] == 0.5


def test_exports_load_as_dataframes_with_exact_numbers(server):
    pandas = pytest.importorskip("pandas")
    client = Client(server.url)
    for unit in ("u1", "u2", "u3"):
        client.assign(unit, ["headline"])
    client.send_events([Event("headline", unit="u2", reward=0.1)])
    frame = client.export("headline", "assignments")
    assert isinstance(frame, pandas.DataFrame)
    assert sorted(frame["unit"]) == ["u1", "u2", "u3"]
    rewarded = frame.set_index("unit")["reward"]
    assert rewarded["u2"] == 0.1  # exact: the round-trip parser
    assert rewarded.isna().sum() == 2
    stats = client.export("headline", "stats")
    assert stats["exposures"].sum() == 3
    rows = client.export("headline", "assignments", as_frame=False)
    assert sorted(row["unit"] for row in rows) == ["u1", "u2", "u3"]
    assert {row["unit"]: row["reward"] for row in rows}["u2"] == "0.1"


def test_without_pandas_an_export_is_a_list_of_rows(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    client = Client(server.url)
    client.assign("u1", ["headline"])
    rows = client.export("headline", "assignments")
    assert isinstance(rows, list)
    assert rows[0]["unit"] == "u1"
    with pytest.raises(ImportError, match="needs pandas"):
        client.export("headline", "assignments", as_frame=True)


def test_keys_go_where_the_server_needs_them(keyed_server):
    open_client = Client(keyed_server.url)
    token = open_client.assign("alice", ["headline"])["headline"].token
    # A unit event needs the events key ...
    with pytest.raises(ApiError) as caught:
        open_client.send_events([Event("headline", unit="alice")])
    assert caught.value.status == 401
    # ... a token event does not (it proves the assignment itself).
    assert open_client.send_events([Event("headline", token=token)]).applied == 1
    with pytest.raises(ApiError):
        open_client.export("headline", "assignments", as_frame=False)
    events_client = Client(keyed_server.url, events_key="events-secret")
    assert events_client.send_events([Event("headline", unit="alice")]).already_rewarded == 1
    assert len(events_client.export("headline", "assignments", as_frame=False)) == 1
    admin = Client(keyed_server.url, key="admin-secret")
    assert len(admin.export("headline", "assignments", as_frame=False)) == 1


def test_experiments_list_every_loaded_experiment(server):
    ids = {e["id"] for e in Client(server.url).experiments()}
    assert {"headline", "ranking", "pricing"} <= ids
