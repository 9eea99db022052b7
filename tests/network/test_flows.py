"""Flow readers, the categorical encoder, the supervised classifier and the NSL-KDD bench on small samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.errors import DatasetNotFoundError, InvalidInputError, SchemaError
from vigil.network.encoding import UNKNOWN, FlowEncoder
from vigil.network.flows import (
    NSL_KDD_COLUMNS,
    FlowSchema,
    attack_category,
    read_flow_csv,
    read_nsl_kdd,
    read_zeek_conn,
)


def _kdd_line(label: str = "normal", service: str = "http", src_bytes: str = "181") -> str:
    values = ["0", "tcp", service, "SF", src_bytes, "5450"] + ["0"] * 35
    return ",".join([*values, label, "21"])


def test_read_nsl_kdd_columns_labels_and_categories(tmp_path: Path) -> None:
    path = tmp_path / "kdd.txt"
    path.write_text("\n".join([_kdd_line(), _kdd_line("neptune"), _kdd_line("mscan")]) + "\n")
    table = read_nsl_kdd(path)
    assert list(table.features.columns[:3]) == ["duration", "src_bytes", "dst_bytes"]
    assert set(table.features.columns) == set(NSL_KDD_COLUMNS)
    assert table.y.tolist() == [False, True, True]
    assert table.category.tolist() == ["normal", "DoS", "Probe"]
    assert table.extra["difficulty"].tolist() == [21, 21, 21]
    assert "difficulty" not in table.features


def test_read_nsl_kdd_located_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(_kdd_line() + "\n" + _kdd_line(src_bytes="lots") + "\n")
    with pytest.raises(InvalidInputError, match=r"bad.txt: line 2, column 'src_bytes' is not a number: 'lots'"):
        read_nsl_kdd(path)
    short = tmp_path / "short.txt"
    short.write_text("1,2,3\n")
    with pytest.raises(SchemaError, match="43"):
        read_nsl_kdd(short)
    with pytest.raises(DatasetNotFoundError):
        read_nsl_kdd(tmp_path / "absent.txt")


def test_generic_flow_csv_with_configurable_columns(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("src,proto,bytes,pkts,label\na,tcp,100,2,benign\nb,udp,5,1,ddos\n")
    schema = FlowSchema(numeric=("bytes", "pkts"), categorical=("proto",), label="label")
    table = read_flow_csv(path, schema)
    assert list(table.features.columns) == ["bytes", "pkts", "proto"]
    assert table.y.tolist() == [False, True]
    with pytest.raises(SchemaError, match="missing columns"):
        read_flow_csv(path, FlowSchema(numeric=("octets",), categorical=()))


def test_zeek_conn_log_unset_fields_become_flags(tmp_path: Path) -> None:
    fields = (
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state "
        "local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes"
    ).split()
    rows = [
        "1.0 C1 10.0.0.2 5555 10.0.0.1 22 tcp ssh 1.5 100 200 SF - - 0 ShADadFf 5 400 4 500",
        "2.0 C2 10.0.0.3 5556 10.0.0.1 23 tcp - - - - S0 - - 0 S 1 60 0 0",
    ]
    text = "#separator \\x09\n#fields\t" + "\t".join(fields) + "\n"
    text += "".join("\t".join(r.split()) + "\n" for r in rows) + "#close\t2024-01-01\n"
    path = tmp_path / "conn.log"
    path.write_text(text)
    table = read_zeek_conn(path)
    assert table.features["duration"].tolist() == [1.5, 0.0]
    assert table.features["duration_unset"].tolist() == [0.0, 1.0]
    assert table.features["service"].tolist() == ["ssh", "-"]
    assert table.extra["id.resp_p"].tolist() == ["22", "23"]
    broken = tmp_path / "broken.log"
    broken.write_text(text.replace("1 60 0 0", "1 60 0").replace("\t0\t0\n", "\t0\n"))
    with pytest.raises(InvalidInputError, match="line 4 has 19 fields"):
        read_zeek_conn(broken)


def test_encoder_unknown_bucket_is_counted_and_fit_on_training_only() -> None:
    train = pd.DataFrame({"proto": ["tcp", "udp"], "flag": ["SF", "S0"], "bytes": [1.0, 1000.0]})
    enc = FlowEncoder(categorical=["proto", "flag"], numeric=["bytes"], log_columns=["bytes"]).fit(train)
    test = pd.DataFrame({"proto": ["icmp", "tcp", "icmp"], "flag": ["SF", "RSTOS0", "SF"], "bytes": [5.0] * 3})
    encoded = enc.encode(test)
    assert encoded.unknown == {"proto": {"icmp": 2}, "flag": {"RSTOS0": 1}}
    assert encoded.n_unknown == 3
    assert encoded.X[f"proto={UNKNOWN}"].tolist() == [1.0, 0.0, 1.0]
    # every row has exactly one indicator per categorical column
    proto_cols = [c for c in encoded.X.columns if c.startswith("proto=")]
    assert (encoded.X[proto_cols].sum(axis=1) == 1).all()
    # numbers are standardised with the training log-mean
    assert enc.encode(train).X["bytes"].mean() == pytest.approx(0.0)


def test_encoder_save_load_round_trip(tmp_path: Path) -> None:
    train = pd.DataFrame({"proto": ["tcp", "udp", "tcp"], "bytes": [1.0, 2.0, 3.0]})
    enc = FlowEncoder(categorical=["proto"], numeric=["bytes"]).fit(train)
    loaded = FlowEncoder.load(enc.save(tmp_path / "enc"))
    pd.testing.assert_frame_equal(loaded.transform(train), enc.transform(train))


def test_attack_category_map() -> None:
    assert attack_category(["normal", "smurf", "saint", "phf", "rootkit"]).tolist() == [
        "normal",
        "DoS",
        "Probe",
        "R2L",
        "U2R",
    ]


@pytest.mark.torch
def test_classifier_imbalanced_categories_and_save_load(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from vigil.network.classifier import FlowClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 4))
    category = np.full(600, "normal", dtype=object)
    category[X[:, 0] > 1.0] = "DoS"
    category[(X[:, 1] > 1.8)] = "U2R"  # rare class
    clf = FlowClassifier(hidden=(16,), epochs=40, batch_size=32, random_state=0, n_threads=1)
    clf.fit(X, category != "normal", category)
    assert clf.categories_[0] == "normal"
    assert clf.class_weights_[clf.categories_.index("U2R")] > clf.class_weights_[0]
    again = FlowClassifier(hidden=(16,), epochs=40, batch_size=32, random_state=0, n_threads=1)
    np.testing.assert_array_equal(again.fit(X, category != "normal", category).predict_proba(X), clf.predict_proba(X))
    loaded = FlowClassifier.load(clf.save(tmp_path / "clf"))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(InvalidInputError, match="both normal"):
        FlowClassifier().fit(X, np.zeros(600, dtype=bool))
