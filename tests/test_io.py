"""Tests for sensinet.io: bitwise save/load round trips and the validation of every field of the file."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

import sensinet
from sensinet import Dense, Network, Residual
from sensinet.io import FORMAT_VERSION, load, save

ACTS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def _assert_same(a: Network, b: Network) -> None:
    assert b.dtype == a.dtype
    assert b.loss == a.loss
    assert b.specs == a.specs
    assert b.n_params == a.n_params
    assert b.parameters.dtype == a.parameters.dtype
    np.testing.assert_array_equal(_bits(b.parameters), _bits(a.parameters))


def _nets(dtype):
    """Dense (every activation), residual (both kinds) and classification networks."""
    yield Network(3, [Dense(5, a, alpha=0.3, l2=1e-3) for a in ACTS] + [Dense(2)], dtype=dtype, seed=1)
    yield Network(4, [Dense(6, "relu"), Residual(6, "tanh", hidden=3), Residual(6, "softplus", weights=1),
                      Residual(6, "leaky_relu", alpha=0.07, l2=0.1), Dense(1)], dtype=dtype, seed=2)
    yield Network(2, [Dense(7, "sigmoid"), Dense(4)], loss="cross_entropy", dtype=dtype, seed=3)
    yield Network(2, [Dense(3, "tanh"), Residual(3, "relu", hidden=8), Dense(3)], loss="binary_cross_entropy",
                  dtype=dtype, seed=4)
    yield Network(1, [Dense(1)], dtype=dtype, seed=5)


NETS = [(dt, i) for dt in (np.float64, np.float32) for i in range(5)]


@pytest.fixture
def saved(tmp_path):
    """A saved residual float64 network and its path."""
    net = Network(3, [Dense(4, "relu"), Residual(4, "tanh", hidden=2), Residual(4, "sigmoid", weights=1),
                      Dense(2)], seed=0)
    path = tmp_path / "net.npz"
    save(net, path)
    return net, path


def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _header(path) -> dict:
    return json.loads(_members(path)["header"].tobytes().decode("utf-8"))


def _write(path, header=None, parameters=None, **extra) -> None:
    """Write an archive member by member: header may be a dict (JSON-encoded), bytes or an array."""
    arrays = dict(extra)
    if header is not None:
        if isinstance(header, dict):
            header = json.dumps(header).encode("utf-8")
        if isinstance(header, (bytes, bytearray)):
            header = np.frombuffer(header, dtype=np.uint8)
        arrays["header"] = header
    if parameters is not None:
        arrays["parameters"] = parameters
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _rewrite(path, edit) -> None:
    """Load a valid file's header dict, apply ``edit(header, params)`` and write it back."""
    m = _members(path)
    h = json.loads(m["header"].tobytes().decode("utf-8"))
    params = m["parameters"].copy()
    out = edit(h, params)
    if out is not None:
        h, params = out
    _write(path, h, params)


def _sha(params: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(params).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype, which", NETS)
def test_round_trip_bitwise(tmp_path, dtype, which):
    net = list(_nets(dtype))[which]
    path = tmp_path / "m.npz"
    save(net, path)
    back = load(path)
    _assert_same(net, back)
    X = np.random.default_rng(0).normal(size=(17, net.n_inputs))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.metadata == {}
    # a second save of the loaded network writes the same bytes' worth of content
    save(back, tmp_path / "again.npz")
    assert _members(tmp_path / "again.npz")["parameters"].tobytes() == _members(path)["parameters"].tobytes()


def test_round_trip_after_training(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = np.sin(X).sum(axis=1)
    net = Network(3, [Dense(8, "tanh"), Residual(8, "relu"), Dense(1)], seed=0)
    net.fit(X, y, epochs=3, batch_size=16)
    save(net, tmp_path / "trained.npz")
    back = load(tmp_path / "trained.npz")
    _assert_same(net, back)
    assert back.objective(X, y) == net.objective(X, y)


def test_layer_objects_rebuilt(saved):
    net, path = saved
    back = load(path)
    assert back.layers == net.layers
    assert repr(back) == repr(net)


def test_alpha_and_l2_exact(tmp_path):
    net = Network(2, [Dense(3, "leaky_relu", alpha=0.1 + 0.2, l2=1 / 3), Dense(1, l2=1e-300)], seed=0)
    save(net, tmp_path / "a.npz")
    assert load(tmp_path / "a.npz").specs == net.specs


def test_header_contents(saved):
    net, path = saved
    h = _header(path)
    assert h["format"] == "sensinet-network"
    assert h["version"] == 1 and FORMAT_VERSION == 2  # a network alone stays version 1 (older releases read it)
    assert h["sensinet_version"] == sensinet.__version__
    assert h["dtype"] == "float64"
    assert h["loss"] == "mse"
    assert h["n_inputs"] == 3
    assert h["n_params"] == net.n_params
    assert [l["kind"] for l in h["layers"]] == ["dense", "residual2", "residual1", "dense"]
    assert h["layers"][1]["hidden"] == 2
    assert set(h["layers"][0]) == {"kind", "n_in", "n_out", "hidden", "activation", "alpha", "l2"}
    assert h["sha256"] == _sha(net.parameters)
    m = _members(path)
    assert set(m) == {"header", "parameters"}
    assert m["header"].dtype == np.uint8
    assert m["parameters"].dtype == np.float64 and m["parameters"].shape == (net.n_params,)


def test_float32_stored_as_float32(tmp_path):
    net = Network(2, [Dense(3, "relu"), Dense(1)], dtype=np.float32, seed=0)
    save(net, tmp_path / "f.npz")
    m = _members(tmp_path / "f.npz")
    assert m["parameters"].dtype == np.float32
    assert _header(tmp_path / "f.npz")["dtype"] == "float32"


def test_no_pickle_in_archive(saved):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["header.npy", "parameters.npy"]
    _members(path)  # loads with allow_pickle=False


# ------------------------------------------------------------------------------------------- paths
def test_path_is_exact_no_suffix_added(tmp_path):
    net = Network(2, [Dense(1)], seed=0)
    save(net, tmp_path / "model.bin")
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    _assert_same(net, load(tmp_path / "model.bin"))
    save(net, str(tmp_path / "plain"))
    assert (tmp_path / "plain").exists() and not (tmp_path / "plain.npz").exists()
    _assert_same(net, load(str(tmp_path / "plain")))


def test_str_path_and_file_objects(tmp_path):
    net = Network(2, [Dense(3, "tanh"), Dense(1)], seed=0)
    save(net, str(tmp_path / "s.npz"))
    _assert_same(net, load(str(tmp_path / "s.npz")))
    _assert_same(net, load(pathlib.Path(tmp_path / "s.npz")))
    buf = io.BytesIO()
    save(net, buf)
    buf.seek(0)
    _assert_same(net, load(buf))


def test_overwrite_and_no_temporary_left(tmp_path):
    a = Network(2, [Dense(1)], seed=0)
    b = Network(2, [Dense(3, "relu"), Dense(1)], seed=1)
    save(a, tmp_path / "x.npz")
    save(b, tmp_path / "x.npz")
    _assert_same(b, load(tmp_path / "x.npz"))
    assert os.listdir(tmp_path) == ["x.npz"]


def test_failed_save_keeps_old_file(tmp_path):
    a = Network(2, [Dense(1)], seed=0)
    save(a, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="metadata"):
        save(a, tmp_path / "x.npz", metadata={"f": object()})
    _assert_same(a, load(tmp_path / "x.npz"))
    assert os.listdir(tmp_path) == ["x.npz"]


def test_save_and_load_have_one_spelling(tmp_path):
    net = Network(2, [Dense(4, "softplus"), Dense(2)], loss="cross_entropy", seed=0)
    assert not hasattr(Network, "save") and not hasattr(Network, "load")
    sensinet.save(net, tmp_path / "m.npz")
    _assert_same(net, sensinet.load(tmp_path / "m.npz"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="net"):
        save("not a net", tmp_path / "x.npz")
    net = Network(2, [Dense(1)], seed=0)
    with pytest.raises(TypeError, match="path"):
        save(net, 123)
    with pytest.raises(TypeError, match="path"):
        load(123)


# ------------------------------------------------------------------------------------------- metadata
def test_metadata_round_trip(tmp_path):
    net = Network(2, [Dense(3, "relu"), Dense(1)], seed=0)
    meta = {"epochs": 12, "lr": 1e-3, "note": "ünïcode ✓", "curve": [1.5, 0.25], "nested": {"a": None, "b": True}}
    save(net, tmp_path / "m.npz", metadata=meta)
    back = load(tmp_path / "m.npz")
    assert back.metadata == meta
    # the loaded network's metadata is saved again by default
    save(back, tmp_path / "m2.npz")
    assert load(tmp_path / "m2.npz").metadata == meta
    # an explicit argument wins
    save(back, tmp_path / "m3.npz", metadata={"x": 1})
    assert load(tmp_path / "m3.npz").metadata == {"x": 1}


def test_metadata_numpy_values(tmp_path):
    net = Network(2, [Dense(1)], seed=0)
    save(net, tmp_path / "m.npz", metadata={"n": np.int64(3), "v": np.float32(0.5), "a": np.arange(3),
                                            "t": (1, 2)})
    assert load(tmp_path / "m.npz").metadata == {"n": 3, "v": 0.5, "a": [0, 1, 2], "t": [1, 2]}


@pytest.mark.parametrize("meta, exc", [
    ([1, 2], TypeError),
    ({1: "int key"}, TypeError),
    ({"f": object()}, TypeError),
    ({"nan": float("nan")}, ValueError),
    ({"inf": [float("inf")]}, ValueError),
])
def test_metadata_rejected(tmp_path, meta, exc):
    net = Network(2, [Dense(1)], seed=0)
    with pytest.raises(exc, match="metadata"):
        save(net, tmp_path / "m.npz", metadata=meta)


# ------------------------------------------------------------------------------------------- not an archive
def test_empty_file(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="file: .*empty"):
        load(p)


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("hello, I am not an archive\n")
    with pytest.raises(ValueError, match="file: .*not a zip"):
        load(p)


def test_plain_npy_is_not_an_archive(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match="file"):
        load(p)


@pytest.mark.parametrize("frac", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated(saved, frac):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * frac))])
    with pytest.raises(ValueError, match="file"):
        load(path)


def test_truncated_by_one_byte(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="file|archive|parameters|header"):
        load(path)


def test_raw_parameter_byte_flipped(saved):
    """A flipped byte inside the stored parameters: the zip CRC (or the checksum) catches it."""
    net, path = saved
    data = bytearray(path.read_bytes())
    pos = bytes(data).find(net.parameters.tobytes())
    assert pos > 0
    data[pos + 11] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="parameters"):
        load(path)


def test_raw_header_byte_flipped(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    pos = bytes(data).find(b'"sensinet-network"')
    assert pos > 0
    data[pos + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="header"):
        load(path)


# ------------------------------------------------------------------------------------------- members
def test_missing_parameters(saved):
    _, path = saved
    m = _members(path)
    _write(path, m["header"])
    with pytest.raises(ValueError, match="parameters: .*missing"):
        load(path)


def test_missing_header(saved):
    _, path = saved
    _write(path, parameters=_members(path)["parameters"])
    with pytest.raises(ValueError, match="header: .*missing"):
        load(path)


def test_extra_array(saved):
    _, path = saved
    m = _members(path)
    _write(path, m["header"], m["parameters"], optimizer_state=np.zeros(3))
    with pytest.raises(ValueError, match="archive: .*optimizer_state"):
        load(path)


def test_extra_non_npy_member(saved):
    _, path = saved
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("README.txt", "hi")
    with pytest.raises(ValueError, match="archive: .*README.txt"):
        load(path)


def test_pickled_parameters_refused(saved):
    _, path = saved
    m = _members(path)
    obj = np.empty(3, dtype=object)
    obj[:] = [1.0, 2.0, 3.0]
    _write(path, m["header"], obj)
    with pytest.raises(ValueError, match="parameters"):
        load(path)


# ------------------------------------------------------------------------------------------- header encoding
@pytest.mark.parametrize("raw, match", [
    (b"\xff\xfe\x00garbage", "header: .*UTF-8"),
    (b"{not json", "header: .*JSON"),
    (b"[1, 2, 3]", "header: .*JSON object"),
    (b'"just a string"', "header: .*JSON object"),
    (b"", "header: .*JSON"),
])
def test_header_not_json_object(saved, raw, match):
    _, path = saved
    _write(path, raw, _members(path)["parameters"])
    with pytest.raises(ValueError, match=match):
        load(path)


def test_header_with_nan_constant(saved):
    _, path = saved
    m = _members(path)
    text = m["header"].tobytes().decode().replace('"l2": 0.0', '"l2": NaN', 1)
    _write(path, text.encode(), m["parameters"])
    with pytest.raises(ValueError, match="header"):
        load(path)


@pytest.mark.parametrize("arr", [np.zeros(5, dtype=np.float64), np.zeros((2, 3), dtype=np.uint8)])
def test_header_wrong_array(saved, arr):
    _, path = saved
    _write(path, arr, _members(path)["parameters"])
    with pytest.raises(ValueError, match="header: .*uint8"):
        load(path)


# ------------------------------------------------------------------------------------------- header fields
def _set(key, value):
    def edit(h, p):
        h[key] = value
    return edit


def _set_layer(i, key, value):
    def edit(h, p):
        h["layers"][i][key] = value
    return edit


def _del(key):
    def edit(h, p):
        del h[key]
    return edit


def _del_layer(i, key):
    def edit(h, p):
        del h["layers"][i][key]
    return edit


HEADER_EDITS = [
    (_set("format", "something-else"), r"header\.format"),
    (_set("format", None), r"header\.format"),
    (_del("format"), r"header\.format.*missing"),
    (_set("version", 3), r"header\.version.*upgrade"),
    (_set("version", 99), r"header\.version"),
    (_set("version", 0), r"header\.version"),
    (_set("version", "1"), r"header\.version"),
    (_set("version", 1.0), r"header\.version"),
    (_set("version", True), r"header\.version"),
    (_del("version"), r"header\.version.*missing"),
    (_set("sensinet_version", 1), r"header\.sensinet_version"),
    (_set("dtype", "float16"), r"header\.dtype"),
    (_set("dtype", "int64"), r"header\.dtype"),
    (_set("loss", "hinge"), r"header\.loss"),
    (_set("n_inputs", 0), r"header\.n_inputs"),
    (_set("n_inputs", 3.0), r"header\.n_inputs"),
    (_set("n_inputs", 5), r"header\.layers\[0\]\.n_in.*n_inputs"),
    (_set("layers", []), r"header\.layers"),
    (_set("layers", {"a": 1}), r"header\.layers"),
    (_set("layers", [1, 2]), r"header\.layers\[0\]"),
    (_set("n_params", 1), r"header\.n_params"),
    (_set("n_params", 1e9), r"header\.n_params"),
    (_set("n_params", -3), r"header\.n_params"),
    (_set("sha256", "abc"), r"header\.sha256"),
    (_set("sha256", 12), r"header\.sha256"),
    (_set("sha256", "G" * 64), r"header\.sha256"),
    (_set("metadata", [1]), r"header\.metadata"),
    (_set("surprise", 1), r"header: .*unknown.*surprise"),
    (_set_layer(0, "kind", "conv2d"), r"header\.layers\[0\]\.kind"),
    (_set_layer(2, "kind", "residual3"), r"header\.layers\[2\]\.kind"),
    (_set_layer(1, "activation", "gelu"), r"header\.layers\[1\]\.activation"),
    (_set_layer(1, "activation", None), r"header\.layers\[1\]\.activation"),
    (_set_layer(0, "n_out", 0), r"header\.layers\[0\]\.n_out"),
    (_set_layer(0, "n_out", 4.5), r"header\.layers\[0\]\.n_out"),
    (_set_layer(0, "n_out", True), r"header\.layers\[0\]\.n_out"),
    (_set_layer(0, "n_out", "4"), r"header\.layers\[0\]\.n_out"),
    (_set_layer(0, "n_in", -1), r"header\.layers\[0\]\.n_in"),
    (_set_layer(0, "n_out", 5), r"header\.layers\[1\]\.n_in.*layers\[0\]\.n_out"),
    (_set_layer(3, "n_in", 7), r"header\.layers\[3\]\.n_in.*expected 4"),
    (_set_layer(1, "hidden", 0), r"header\.layers\[1\]\.hidden"),
    (_set_layer(1, "hidden", 2.0), r"header\.layers\[1\]\.hidden"),
    (_set_layer(0, "hidden", 3), r"header\.layers\[0\]\.hidden"),
    (_set_layer(2, "hidden", 4), r"header\.layers\[2\]\.hidden"),
    (_set_layer(3, "n_out", 3), r"header\.n_params"),
    (_set_layer(0, "alpha", -0.1), r"header\.layers\[0\]\.alpha"),
    (_set_layer(0, "alpha", "0.1"), r"header\.layers\[0\]\.alpha"),
    (_set_layer(0, "l2", -1.0), r"header\.layers\[0\]\.l2"),
    (_set_layer(0, "l2", None), r"header\.layers\[0\]\.l2"),
    (_set_layer(0, "extra_field", 1), r"header\.layers\[0\]: .*unknown.*extra_field"),
    (_del_layer(1, "hidden"), r"header\.layers\[1\]\.hidden.*missing"),
    (_del_layer(0, "activation"), r"header\.layers\[0\]\.activation.*missing"),
] + [(_del(k), rf"header\.{k}.*missing")
     for k in ("sensinet_version", "dtype", "loss", "n_inputs", "layers", "n_params", "sha256")]


@pytest.mark.parametrize("edit, match", HEADER_EDITS)
def test_header_field_rejected(saved, edit, match):
    _, path = saved
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_residual_width_change_rejected(tmp_path):
    net = Network(3, [Dense(4), Residual(4, "relu", hidden=2), Dense(1)], seed=0)
    path = tmp_path / "r.npz"
    save(net, path)

    def edit(h, p):
        h["layers"][1]["n_out"] = 5
        h["layers"][2]["n_in"] = 5
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=r"header\.layers\[1\]\.n_out.*keeps its width"):
        load(path)


def test_metadata_missing_is_empty(saved):
    net, path = saved

    def edit(h, p):
        h.pop("metadata", None)
    _rewrite(path, edit)
    back = load(path)
    assert back.metadata == {}
    _assert_same(net, back)


# ------------------------------------------------------------------------------------------- parameters
def test_checksum_mismatch(saved):
    """A changed parameter value with the original header: the sha256 catches it."""
    _, path = saved

    def edit(h, p):
        p.view(np.uint8)[13] ^= 0x01
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="parameters: checksum mismatch"):
        load(path)


def test_parameters_swapped_between_files(tmp_path):
    a = Network(2, [Dense(3, "relu"), Dense(1)], seed=0)
    b = Network(2, [Dense(3, "relu"), Dense(1)], seed=1)
    save(a, tmp_path / "a.npz")
    save(b, tmp_path / "b.npz")
    _write(tmp_path / "c.npz", _members(tmp_path / "a.npz")["header"], _members(tmp_path / "b.npz")["parameters"])
    with pytest.raises(ValueError, match="checksum"):
        load(tmp_path / "c.npz")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters(saved, bad):
    _, path = saved

    def edit(h, p):
        p[2] = bad
        h["sha256"] = _sha(p)
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="parameters: expected finite"):
        load(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16, np.complex128])
def test_parameters_wrong_dtype(saved, dtype):
    _, path = saved

    def edit(h, p):
        q = p.astype(dtype)
        h["sha256"] = _sha(q)
        return h, q
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="parameters: expected dtype float64"):
        load(path)


def test_header_dtype_mismatch(tmp_path):
    net = Network(2, [Dense(1)], dtype=np.float32, seed=0)
    save(net, tmp_path / "f.npz")
    _rewrite(tmp_path / "f.npz", _set("dtype", "float64"))
    with pytest.raises(ValueError, match="parameters: expected dtype float64"):
        load(tmp_path / "f.npz")


def test_parameters_wrong_ndim(saved):
    _, path = saved

    def edit(h, p):
        q = p.reshape(1, -1)
        return h, q
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="parameters: expected a 1-D array"):
        load(path)


def test_parameters_zero_dim(saved):
    _, path = saved
    _rewrite(path, lambda h, p: (h, np.float64(1.0).reshape(())))
    with pytest.raises(ValueError, match="parameters: expected a 1-D array"):
        load(path)


@pytest.mark.parametrize("cut", [1, 5])
def test_parameters_wrong_length(saved, cut):
    _, path = saved

    def edit(h, p):
        q = p[:-cut].copy()
        h["sha256"] = _sha(q)
        return h, q
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=r"parameters: expected shape \(\d+,\)"):
        load(path)


def test_parameters_too_long(saved):
    _, path = saved

    def edit(h, p):
        q = np.concatenate([p, [0.0]])
        h["sha256"] = _sha(q)
        return h, q
    _rewrite(path, edit)
    with pytest.raises(ValueError, match="parameters: expected shape"):
        load(path)


def test_big_endian_parameters_accepted(saved):
    """Another machine's byte order reads back to the same values (the digest covers little-endian bytes)."""
    net, path = saved
    _rewrite(path, lambda h, p: (h, p.astype(">f8")))
    back = load(path)
    _assert_same(net, back)


# ------------------------------------------------------------------------------------------- random architectures
def test_random_architectures_round_trip(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    layer = st.one_of(
        st.tuples(st.just("d"), st.integers(1, 6), st.sampled_from(ACTS)),
        st.tuples(st.just("r2"), st.integers(1, 6), st.sampled_from(ACTS)),
        st.tuples(st.just("r1"), st.just(0), st.sampled_from(ACTS)),
    )

    @hypothesis.settings(max_examples=25, deadline=None)
    @hypothesis.given(n_in=st.integers(1, 5), spec=st.lists(layer, min_size=1, max_size=5),
                      dtype=st.sampled_from([np.float64, np.float32]),
                      alpha=st.floats(0, 1), l2=st.floats(0, 1), seed=st.integers(0, 2**31))
    def check(n_in, spec, dtype, alpha, l2, seed):
        layers, width = [], n_in
        for kind, k, act in spec:
            if kind == "d":
                layers.append(Dense(k, act, alpha=alpha, l2=l2))
                width = k
            elif kind == "r2":
                layers.append(Residual(width, act, hidden=k, alpha=alpha, l2=l2))
            else:
                layers.append(Residual(width, act, weights=1, alpha=alpha, l2=l2))
        net = Network(n_in, layers, dtype=dtype, seed=seed)
        path = tmp_path / "h.npz"
        save(net, path, metadata={"seed": seed})
        back = load(path)
        _assert_same(net, back)
        assert back.metadata == {"seed": seed}

    check()


def test_init_survives_save_load_and_astype(tmp_path):
    """A network's init scheme travels with it, so reinitialize() draws the same weights as the original's."""
    net = Network(3, [Dense(5, "relu"), Dense(2)], seed=0, init="torch")
    sn_path = tmp_path / "torch_init.npz"
    sensinet.save(net, sn_path)
    back = sensinet.load(sn_path)
    assert back.init == "torch" and _header(sn_path)["version"] == 2
    for other in (back, net.astype(np.float32).astype(np.float64)):
        assert other.init == "torch"
        np.testing.assert_array_equal(other.reinitialize(3).parameters, net.copy().reinitialize(3).parameters)
    plain = Network(3, [Dense(5, "relu"), Dense(2)], seed=0)
    sensinet.save(plain, tmp_path / "auto.npz")
    assert _header(tmp_path / "auto.npz")["version"] == 1 and "init" not in _header(tmp_path / "auto.npz")
