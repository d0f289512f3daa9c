"""Day one, `preview` shows types: the result's columns and types beside the table's, and
what a commit would do to each (added, widened, cast, refused, left null), printed before the
rows are read, so a route whose rows fail still shows what DuckDB made of the file. Real
files, the real local catalog, the real CLI."""

from __future__ import annotations

from tests.integration.test_cli import run
from tests.support.workspace import Workspace, orders


def columns(out: str) -> dict[str, list[str]]:
    """The rows of the columns table: name -> [result, table, change]."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    return rows


def test_preview_shows_what_duckdb_made_of_the_file_even_when_the_rows_fail(ws: Workspace) -> None:
    ws.route("eu", {"bucket": "bkt", "options": {"delim": ";", "encoding": "latin-1"}},
             {"table": "ns.eu", "columns": {"id": "long", "amount": "decimal(12,2)", "name": "string",
                                            "booked": "date"}})
    path = ws.put("bkt", "a.csv", "id;amount;name\n1;1.326,05;Müller\n2;3,5;Zoë\n".encode("latin-1"))
    code, out, err = run(ws, "preview", "eu", str(path))
    print(out + err)
    assert code == 1 and "error: route eu: column amount" in err, "the rows fail, as ingest would"
    assert columns(out) == {
        "id": ["long", "long", "keep"],
        "amount": ["string", "decimal(12,2)", "cast: each value must parse"],
        "name": ["string", "string", "keep"],
        "booked": ["-", "date", "null: not in the result"],
    }
    assert not ws.catalog().table_exists("ns.eu")


def test_preview_shows_added_widened_and_refused_columns(ws: Workspace) -> None:
    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev"}, "SELECT id::INT AS id, amount FROM source")
    path = ws.put("bkt", "a.parquet", orders(3))
    assert ws.ingest(("bkt", "a.parquet")).count("committed") == 1
    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev"}, "SELECT id, amount, 'x' AS note FROM source")
    code, out, err = run(ws, "preview", "ev", str(path))
    print(out + err)
    assert code == 0
    assert columns(out) == {"id": ["long", "int", "widened int -> long"], "amount": ["double", "double", "keep"],
                            "note": ["string", "-", "added"]}

    ws.route("ev", {"bucket": "bkt"}, {"table": "ns.ev", "schema": "strict"},
             "SELECT {'a': id} AS id, amount, 'x' AS note FROM source")
    code, out, err = run(ws, "preview", "ev", str(path))
    print(out + err)
    assert code == 1
    seen = columns(out)
    assert seen["note"] == ["string", "-", "refused: not in the table (schema: strict)"]
    assert seen["id"][:2] == ["struct<a: long>", "int"] and seen["id"][2].startswith("refused: cannot cast"), seen
    assert [f.name for f in ws.catalog().load_table("ns.ev").schema().fields] == ["id", "amount"]
