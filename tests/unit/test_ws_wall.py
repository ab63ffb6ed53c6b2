"""The wall's trends and top grids, built from what the worker keeps (pure)."""

from __future__ import annotations

from gridwatch.ws import wall

from gridwatch.risk import load_risk_config, score_grid

H = 500_000  # an event-time hour number
NOW = H * 3600 + 1800  # half past that hour


def alert(aid: str, kind: str, ts: float, closed: float | None = None) -> dict[str, object]:
    audit = [{"action": "raise", "to_state": "new", "ts": ts}]
    if closed is not None:
        audit.append({"action": "dismiss", "to_state": "dismissed", "ts": closed})
    return {"id": aid, "kind": kind, "ts_raised": ts, "audit": audit,
            "status": "dismissed" if closed is not None else "new"}


def test_scans_by_colour_alerts_by_kind_and_open_alerts_per_hour() -> None:
    rows = [(H, {"scan:red:in": "2", "scan:green:in": "10", "late:scan:red:out": "1",
                 "loiter": "4"}),
            (H - 1, {b"scan:green:out": b"5"}), (H, {"scan:green:in": "3"}),
            (H - 24, {"scan:red:in": "99"})]  # before the window: left out
    alerts = [alert("a", "red_code", (H - 30) * 3600, closed=(H - 2) * 3600 + 10),  # before
              alert("b", "loiter", (H - 1) * 3600 + 5),
              alert("c", "loiter", H * 3600 + 5, closed=H * 3600 + 60),
              alert("d", "red_code", H * 3600 + 7)]
    out = wall.trends(H, rows, alerts, NOW)
    assert out["window"] == "last_24h" and len(out["hours"]) == 24
    assert out["hours"][-1] == H * 3600 and out["hours"][0] == (H - 23) * 3600
    assert out["scans"]["red"][-1] == 3 and sum(out["scans"]["red"]) == 3
    assert out["scans"]["green"][-2:] == [5, 13]
    assert out["alerts"] == {"loiter": [0] * 22 + [1, 1], "red_code": [0] * 23 + [1]}
    # "a" open until (H-2)+10 s: open at the end of hours up to H-3; "b" from H-1 on;
    # "c" closed within its hour; "d" open at now.
    assert out["open"][-4:] == [1, 0, 1, 2]
    assert out["open"][0] == 1


def test_top_grids_name_their_main_reason_in_both_languages() -> None:
    config = load_risk_config()
    red = score_grid({"red_scans": 6, "loiter_alerts": 1}, config).to_dict()
    calm = score_grid({}, config).to_dict()
    names = {"G1": {"name": "North grid 1", "name_zh": "北街道第1网格"}}
    out = wall.top([{"grid_id": "G1", **red}, {"grid_id": "G2", **calm}], names)
    assert [g["grid_id"] for g in out] == ["G1", "G2"]
    assert out[0]["indicator"] == "red_scans" and out[0]["name_zh"] == "北街道第1网格"
    assert out[0]["reason"]["zh"].startswith("红码扫码") and out[0]["reason"]["en"].startswith("red-code scans")
    assert out[1]["indicator"] is None
    assert out[1]["reason"] == {"zh": "各项指标均为 0。", "en": "No indicator adds any points."}
    assert len(wall.top([{"grid_id": f"G{i}", **red} for i in range(30)], {})) == 10
