import pytest
import torch

from gpproxy.errors import GpproxyError
from gpproxy.pack import ALL, MATRIX, Layer, Pack, Weight, load_pack, validate_primitive


def test_default_pack_every_type_has_terminals():
    pack = load_pack("default")
    ps = pack.pset()
    for typ in ALL:
        assert ps.terminals[typ], typ


def test_unguarded_log_is_rejected():
    pack = Pack("bad", stats={"W": Weight})
    with pytest.raises(GpproxyError, match="non-finite.*zeros|zeros.*non-finite|non-finite"):
        pack.unary("rawlog", on=MATRIX)(lambda x: x.log())


def test_wrong_shape_is_rejected():
    pack = Pack("bad", stats={"W": Weight})
    with pytest.raises(GpproxyError, match="shape"):
        pack.unary("flat", on=MATRIX)(lambda x: x.reshape(-1))


def test_division_by_zero_is_rejected():
    pack = Pack("bad", stats={"W": Weight})
    with pytest.raises(GpproxyError, match="second input is all zeros"):
        pack.binary("rawdiv", on=(Layer,))(lambda x, y: x / y)


def test_reduction_must_return_one_value_per_layer():
    pack = Pack("bad", stats={"W": Weight})
    with pytest.raises(GpproxyError, match="expected"):
        pack.reduce("whole")(lambda x, scale: x.sum())


def test_default_primitives_pass_validation_again():
    for prim in load_pack("default").prims.values():
        validate_primitive(prim)


def test_user_pack_from_file(tmp_path):
    f = tmp_path / "mypack.py"
    f.write_text(
        "import torch\n"
        "from gpproxy.pack import Pack, Weight\n"
        "PACK = Pack('mine', stats={'W': Weight, 'dW': Weight}, layer_terminals=())\n"
        "@PACK.unary('abs')\n"
        "def abs_(x):\n    return x.abs()\n"
        "@PACK.binary('mul')\n"
        "def mul(x, y):\n    return x * y\n"
        "@PACK.reduce('total')\n"
        "def total(x, scale):\n    return x.sum(dim=(1, 2)) * scale\n"
        "@PACK.aggregate('sum_layers')\n"
        "def sum_layers(v, seg, counts):\n    return torch.zeros_like(counts).index_add(0, seg, v)\n"
    )
    pack = load_pack(str(f))
    assert pack.name == "mine"
    from gpproxy.formula import parse_formula
    assert str(parse_formula("sum_layers(total(abs(mul(W, dW))))", pack)) == "sum_layers(total(abs(mul(W, dW))))"


def test_a_relative_pack_file_is_the_one_in_the_current_directory(tmp_path, monkeypatch):
    """The same relative file name in another directory is another pack, not the one loaded first."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mypack.py").write_text(
            "from gpproxy.pack import Pack, Weight\n"
            f"PACK = Pack('{name}', stats={{'W': Weight}}, layer_terminals=())\n")
    for name in ("one", "two", "one"):
        monkeypatch.chdir(tmp_path / name)
        assert load_pack("mypack.py").name == name


def test_unknown_pack():
    with pytest.raises(GpproxyError, match="unknown primitive pack 'nope'.*default"):
        load_pack("nope")


def _roles_pack(product=True, additive=True):
    """A user pack whose product and layer sum are not called mul / sum_layers."""
    pack = Pack("roles", stats={"P": Weight, "Q": Weight}, layer_terminals=(),
                stat_latex={"Q": r"\partial P"}, stat_math={"Q": "∂P"})
    pack.binary("times", product=product)(lambda x, y: x * y)
    pack.binary("plus")(lambda x, y: x + y)

    def exact_total(m):
        return m[:, 0]

    pack.reduce("total", exact=exact_total)(lambda x, scale: x.sum(dim=(1, 2)) * scale)
    pack.aggregate("layers_total", additive=additive)(
        lambda v, seg, counts: torch.zeros_like(counts).index_add(0, seg, v))
    return pack


def test_roles_are_read_from_the_pack_not_from_names():
    from gpproxy.formula import exact_stat, parse_formula, to_math

    pack = _roles_pack()
    # exact product moments follow the declared product, whatever it is called
    tree = parse_formula("layers_total(total(times(P, Q)))", pack)
    assert exact_stat(tree, 1, pack) is None  # P*Q is no probe pair: the sample
    pack.stats = {"W": Weight, "dW": Weight}
    tree = parse_formula("layers_total(total(times(W, dW)))", pack)
    assert exact_stat(tree, 1, pack) == "W*dW"
    assert exact_stat(parse_formula("layers_total(total(plus(W, dW)))", pack), 1, pack) is None
    assert not _roles_pack(product=False).prims["times"].product
    pack = _roles_pack()
    tree = parse_formula("layers_total(total(times(P, Q)))", pack)
    assert "∂P" in to_math(tree, pack) and r"\partial P" in to_math(tree, pack, latex=True)
    assert to_math(tree, pack, latex=True) == (r"\operatorname{layers\_total}(\operatorname{total}("
                                               r"times(\mathrm{P}, \partial P)))")  # undeclared: \mathrm


def test_false_role_declarations_are_rejected():
    pack = Pack("bad", stats={"W": Weight})
    with pytest.raises(GpproxyError, match="declared product=True"):
        pack.binary("plus", product=True)(lambda x, y: x + y)
    with pytest.raises(GpproxyError, match="declared additive=True"):
        pack.aggregate("mean_l", additive=True)(
            lambda v, seg, counts: torch.zeros_like(counts).index_add(0, seg, v) / counts)


def test_default_pack_declares_its_roles():
    pack = load_pack("default")
    assert [n for n, p in pack.prims.items() if p.product] == ["mul"]
    assert [n for n, p in pack.prims.items() if p.additive] == ["sum_layers"]


def test_restrict_keeps_roles_and_drops_seeds_that_no_longer_parse():
    from gpproxy.formula import restrict

    small = restrict(load_pack("default"), "wg", stats=("W", "dW"))
    assert set(small.stats) == {"W", "dW"} and small.prims["mul"].product
    assert "snip" in small.seeds and "nwot_layerwise" not in small.seeds
    assert small.symbol("dW", latex=True) == r"\nabla W"
    with pytest.raises(GpproxyError, match="no primitive"):
        restrict(load_pack("default"), "x", drop=("nope",))
