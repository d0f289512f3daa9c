"""The quarantine closes (issue 22, point 4), on the embedded default through the CLI: an entry
is resolved when its version lands, superseded when a newer version of its key lands,
dismissed by hand with a journaled reason; `replay` skips closed entries."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.integration.test_cli import run
from tests.support.workspace import Workspace

STRICT = {"table": "ns.o", "columns": {"id": "long", "amount": "double"}}


def listed(ws: Workspace, *args: str) -> list[dict[str, Any]]:
    code, out, err = run(ws, "quarantine", "ls", "--format", "json", *args)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def journal(ws: Workspace, table: str, *args: str) -> list[dict[str, Any]]:
    code, out, err = run(ws, "history", table, "--format", "json", *args)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_a_newer_version_that_lands_supersedes_the_quarantined_one(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "format": "csv"}, STRICT)
    ws.put("bkt", "a.csv", b"id,amount\n1,x\n")  # amount: not a double
    code, _, err = run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.csv"))
    assert code == 1 and "quarantined bkt/a.csv" in err
    [broken] = listed(ws)
    assert broken["state"] == "open"
    ws.put("bkt", "a.csv", b"id,amount\n1,2.5\n")  # the producer re-sends it fixed
    code, out, _ = run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.csv"))
    assert code == 0 and "ingested bkt/a.csv" in out
    assert listed(ws) == []
    [closed] = listed(ws, "--all")
    print("closed:", closed["state"], closed["resolution"])
    assert closed["state"] == "superseded" and closed["version"] == broken["version"]
    assert closed["superseded_by"] != broken["version"] and "landed" in closed["resolution"]
    code, out, err = run(ws, "replay")
    print("replay:", out.strip(), "|", err.strip())
    assert code == 0 and "nothing to replay" in out and "skipped 1 closed entry" in err
    statuses = [(a["status"], a["version"][:12]) for a in journal(ws, "ns.o")]
    print("history:", statuses)
    assert [s for s, _ in statuses] == ["quarantined", "committed", "superseded"]
    code, out, err = run(ws, "quarantine", "ls", "--all")
    assert code == 0 and "superseded" in out and "1 superseded" in err
    # the broken version delivered again fails again: counted, but its entry stays closed
    ws.put("bkt", "a.csv", b"id,amount\n1,x\n")
    assert run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.csv"))[0] == 1
    [again] = listed(ws, "--all")
    assert again["attempts"] == 2 and again["state"] == "superseded" and listed(ws) == []


def test_the_same_version_ingested_after_a_fix_resolves_its_entry(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt"}, STRICT, "SELECT id, amount, 1 AS oops FROM source")
    from tests.support.workspace import orders

    ws.put("bkt", "a.parquet", orders(2))
    assert run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.parquet"))[0] == 1
    ws.route("o", {"bucket": "bkt"}, STRICT)
    assert run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.parquet"))[0] == 0  # not `replay`
    [entry] = listed(ws, "--all")
    assert entry["state"] == "resolved" and entry["resolution"] == "ingested: committed"


def test_dismiss_closes_entries_with_a_reason_kept_in_history(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "prefix": "orders/", "format": "csv"}, STRICT)
    ws.route("p", {"bucket": "bkt", "prefix": "parts/", "format": "csv"}, {"table": "ns.p", "columns": {"id": "long"}})
    ws.put("bkt", "misplaced.csv", b"id,amount\n1,2.5\n")  # no route matches
    ws.put("bkt", "orders/1.csv", b"id,amount\n1,x\n")
    ws.put("bkt", "orders/2.csv", b"id,amount\n2,y\n")
    ws.put("bkt", "parts/1.csv", b"id\nz\n")
    assert run(ws, "ingest", str(ws.paths.landing / "bkt"))[0] == 1
    code, out, _ = run(ws, "quarantine", "ls")
    print(out)
    assert code == 0 and "no route" in out and "None" not in out
    assert len(listed(ws)) == 4

    code, _, err = run(ws, "quarantine", "dismiss", "bkt/misplaced.csv")  # no terminal, no --yes
    print("without --yes:", err.strip())
    assert code == 2 and "--yes" in err and len(listed(ws)) == 4
    code, out, _ = run(ws, "quarantine", "dismiss", "bkt/misplaced.csv", "--reason", "moved to orders/3.csv",
                       "--yes")
    print(out.strip())
    assert code == 0 and out.startswith("dismissed 1 entry (bkt/misplaced.csv): moved to orders/3.csv")
    code, out, _ = run(ws, "quarantine", "dismiss", "--route", "o", "--reason", "test data", "--yes")
    assert code == 0 and out.startswith("dismissed 2 entries")
    assert [(r["key"], r["route"]) for r in listed(ws)] == [("parts/1.csv", "p")]
    states = sorted((r["key"], r["state"], r["resolution"]) for r in listed(ws, "--state", "dismissed"))
    assert states == [("misplaced.csv", "dismissed", "dismissed: moved to orders/3.csv"),
                      ("orders/1.csv", "dismissed", "dismissed: test data"),
                      ("orders/2.csv", "dismissed", "dismissed: test data")]
    assert all(r.get("dismissed_by") for r in listed(ws, "--all") if r["state"] == "dismissed")
    # nothing open left for them: dismissing again finds nothing, replay skips them
    assert run(ws, "quarantine", "dismiss", "--route", "o", "--yes")[0] == 1
    code, out, err = run(ws, "replay", "--route", "o")
    assert code == 0 and "nothing to replay" in out and "skipped 2 closed entries" in err
    lines = journal(ws, "ns.o", "--status", "dismissed")
    print("history --status dismissed:", [(a["key"], a["message"]) for a in lines])
    assert sorted(a["key"] for a in lines) == ["misplaced.csv", "orders/1.csv", "orders/2.csv"]  # no table: every table
    assert all("(by " in a["message"] for a in lines)
    assert "moved to orders/3.csv" in next(a["message"] for a in lines if a["key"] == "misplaced.csv")

    code, out, _ = run(ws, "quarantine", "purge", "--dismissed")
    assert code == 0 and out.startswith("removed 3 dismissed entries")
    assert [r["key"] for r in listed(ws, "--all")] == ["parts/1.csv"]
    code, _, err = run(ws, "quarantine", "purge")
    assert code == 2 and "--closed" in err


def test_replay_takes_the_newest_open_version_of_a_key_and_supersedes_the_older(ws: Workspace) -> None:
    ws.route("o", {"bucket": "bkt", "format": "csv"}, STRICT, "SELECT id, amount, 1 AS oops FROM source")
    for body in (b"id,amount\n1,1.5\n", b"id,amount\n1,2.5\n"):  # two versions, both refused
        ws.put("bkt", "a.csv", body)
        assert run(ws, "ingest", str(ws.paths.landing / "bkt" / "a.csv"))[0] == 1
    assert len(listed(ws)) == 2
    ws.route("o", {"bucket": "bkt", "format": "csv"}, STRICT)
    code, out, err = run(ws, "replay")
    print(out.strip(), "|", err.strip())
    assert code == 0 and "replayed 1: 1 resolved, 0 still failing" in out and "left 1 older version" in err
    assert [r["amount"] for r in ws.rows("ns.o")] == [2.5], "the newer version landed, the older did not"
    states = sorted((r["state"], r.get("resolution", "")) for r in listed(ws, "--all"))
    assert [s for s, _ in states] == ["resolved", "superseded"] and states[0][1] == "replayed: committed"


def test_a_fan_out_replay_resolves_only_when_no_target_fails_again(ws: Workspace) -> None:
    def route(skus: list[str]) -> None:
        doc = {"name": "shop", "source": {"bucket": "shop", "format": "json"},
               "targets": [{"table": "shop.orders", "sql": "SELECT order_id FROM source"},
                           {"table": "shop.lines", "expect": {"accepted_values": {"sku": skus}},
                            "sql": "SELECT order_id, sku FROM source"}]}
        ws.paths.routes.mkdir(parents=True, exist_ok=True)
        (ws.paths.routes / "shop.yaml").write_text(yaml.safe_dump(doc))

    route(["a"])
    ws.put("shop", "1.json", b'{"order_id": 1, "sku": "a"}\n{"order_id": 2, "sku": "b"}\n')
    assert run(ws, "ingest", str(ws.paths.landing / "shop" / "1.json"))[0] == 1
    code, out, _ = run(ws, "replay")  # shop.orders: skipped (already in); shop.lines: fails again
    print(out.strip())
    assert code == 1 and "0 resolved, 1 still failing" in out
    [entry] = listed(ws)
    assert entry["state"] == "open" and entry["attempts"] == 2
    route(["a", "b"])
    assert run(ws, "replay")[0] == 0
    [entry] = listed(ws, "--all")
    assert entry["state"] == "resolved" and entry["resolution"] == "replayed: committed"
