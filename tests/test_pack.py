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


def test_unknown_pack():
    with pytest.raises(GpproxyError, match="unknown primitive pack 'nope'.*default"):
        load_pack("nope")
