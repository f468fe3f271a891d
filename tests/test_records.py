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


@pytest.mark.parametrize("kind", ["lines", "strip", "bars"])
def test_each_figure_kind_draws_the_posts_value_the_threshold_and_chance(kind):
    """A figure record says what it draws (``draws()``), and the drawn axes hold it: a line per reference,
    labelled, styled by its role; error bars where a bar has an interval; the page's line under the figure
    names them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.records import Ref, chance, legend_line

    refs = [Ref(y=0.7, label="posts: 70%", role="posts"), Ref(y=0.5, label="rule: >= 0.5", role="threshold"),
            chance(20)]
    fig = {"lines": Lines(title="l", series=[{"label": "a", "x": [1, 2], "y": [.3, .8], "lo": [.2, .7],
                                               "hi": [.4, .9]}], refs=refs),
           "strip": Strip(title="s", groups=[{"label": "A", "values": [.6, .8]}], refs=refs),
           "bars": Bars(title="b", labels=["a", "b"], values=[.6, .8], lo=[.5, .7], hi=[.7, .9], refs=refs)}[kind]
    assert fig.draws() == {"posts", "threshold", "chance"} | ({"interval"} if kind != "strip" else set())
    again = figure_from_dict(as_stored(fig))
    assert again == fig and again.draws() == fig.draws()
    f, ax = plt.subplots()
    try:
        again.draw(ax)
        labels = {ln.get_label(): ln for ln in ax.get_lines()}
        for r in refs:
            assert r.label in labels and labels[r.label].get_ydata()[0] == pytest.approx(r.y)
        styles = {labels[r.label].get_linestyle() for r in refs}
        assert len(styles) == 3  # posts, threshold and chance look different
        if kind == "bars":
            assert ax.containers and any(type(c).__name__ == "ErrorbarContainer" for c in ax.containers)
    finally:
        plt.close(f)
    line = legend_line(fig)
    assert "the posts' value" in line and "the rule's threshold" in line and "chance" in line
    assert ("mean over seeds" in line) if kind == "lines" else True


def test_references_stored_before_roles_read_their_role_from_the_label():
    from harness.records import Ref

    assert Ref(y=1, label="posts: ~71%").kind == "posts" and Ref(y=1, label="chance (10%)").kind == "chance"
    assert Ref(y=1, label="rule: >= 20%").kind == "threshold" and Ref(y=1, label="r").kind == "other"
    with pytest.raises(ValueError, match="lo and hi together"):
        Bars(title="b", labels=["a"], values=[1.0], lo=[0.5])


def test_a_table_beside_the_posts_says_dataset_network_source_and_whether_comparable():
    from harness.records import beside_posts_title

    scratch = {"seed": 3, "config": {"arch": "resnet10", "width": 0.25, "pretrained": False, "size": 96}}
    title = beside_posts_title("circles 45-49 (Part II)", scratch, "per epoch")
    assert "circles 45-49" in title and "ResNet-10 at 0.25 width, from scratch, 96 px" in title
    assert "their ImageNet ResNet-34 run as the post printed it" in title and "not comparable" in title
    posts_net = {"seed": 3, "config": {"arch": "resnet34", "width": 1.0, "pretrained": True, "size": 224}}
    title = beside_posts_title("paintings", posts_net, "per epoch")
    assert "ResNet-34, ImageNet-pretrained, 224 px" in title and "the same network as the posts" in title


def test_a_runs_network_is_named_in_words():
    from harness.records import network_of

    assert network_of({"arch": "resnet10", "width": 0.25, "size": 96}) == "ResNet-10 at 0.25 width, from scratch, 96 px"
    assert (network_of({"arch": "efficientnet_lite0", "width": 1.0, "pretrained": True, "size": 96})
            == "EfficientNet-Lite0, ImageNet-pretrained, 96 px")
