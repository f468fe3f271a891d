"""Typed tables and figures: checked where they are made, stored as JSON, drawn again from the store."""
import pytest

from harness.records import Bars, Lines, Paths, Strip, Table, as_stored, figure_from_dict, table_from_dict


def test_malformed_records_fail_where_they_are_made():
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        Table("t", ["a", "b"], [[1]])
    with pytest.raises(ValueError, match="3 x values for 2 y values"):
        Lines(title="l", series=[{"label": "a", "x": [1, 2, 3], "y": [1, 2]}])
    with pytest.raises(TypeError):
        Lines(title="l", series=[{"label": "a", "x": [1], "y": [1], "colour": "red"}])  # no such field
    with pytest.raises(ValueError, match="2 labels for 1 values"):
        Bars(title="b", labels=["a", "b"], values=[1.0])
    with pytest.raises(TypeError, match="harness.records types"):
        as_stored({"kind": "lines", "title": "a free dict"})


@pytest.mark.parametrize("fig", [
    Lines(title="l", series=[{"label": "a", "x": [1, 2], "y": [2, 1], "lo": [1, 0], "hi": [3, 2]}], xlog=True),
    Strip(title="s", groups=[{"label": "A", "values": [1.0, 2.0]}], refs=[{"y": 1.5, "label": "posts"}]),
    Bars(title="b", labels=["a"], values=[1.0], refs=[{"y": 2, "label": "r", "color": "red"}]),
    Paths(title="p", paths=[{"label": "sgd", "x": [0, 1], "y": [0, 1]}], start=[0, 0], minimum=[1, 1]),
])
def test_records_round_trip_through_the_store_and_draw(fig, tmp_path):
    stored = as_stored(fig)
    assert figure_from_dict(stored) == fig
    figure_from_dict(stored).render(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    t = Table("t", ["a"], [[1], [2]])
    assert table_from_dict(as_stored(t)) == t
