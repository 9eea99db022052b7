"""The plant file: the example is valid, and every problem is reported at once with its line."""

from __future__ import annotations

import pytest

from vigil.cli import main
from vigil.errors import InvalidInputError
from vigil.plant import EXAMPLE, check_plant, load_plant, parse_plant
from vigil.plant.lines import key_lines

GOOD = """\
[asset_types.pump]
sampling_period = 0.5
[asset_types.pump.sensors]
temp_c = { unit = "degC", range = [0, 150] }
flow_m3h = { unit = "m3/h", on_missing = "score_without" }

[sources.line3]
kind = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840/"

[assets.pump-1]
type = "pump"
source = "line3"
map = { temp_c = "ns=2;s=P1.T", flow_m3h = "ns=2;s=P1.F" }

[assets.pump-2]
type = "pump"
source = "line3"
sampling_period = 2
[assets.pump-2.map]
temp_c = "ns=2;s=P2.T"
flow_m3h = "ns=2;s=P2.F"
"""


def problems_of(text: str) -> list[str]:
    plant, problems = parse_plant(text, "plant.toml")
    assert (plant is None) == bool(problems)
    return [p.format("plant.toml") for p in problems]


def test_the_example_is_a_valid_plant_file():
    plant, problems = parse_plant(EXAMPLE)
    assert problems == []
    assert set(plant.assets) == {"pump-1", "pump-2"}
    assert plant.assets["pump-2"].mapping["flow_m3h"] == "ns=2;s=Pump2.Flow"
    pump = plant.asset_types["pump"]
    assert pump.sensors["temp_c"].unit == "degC"
    assert (pump.sensors["temp_c"].low, pump.sensors["temp_c"].high) == (-20, 150)
    assert pump.sensors["pressure_bar"].on_out_of_range == "missing"
    assert pump.sensors["current_a"].numeric_strings is True
    assert pump.alarm.on_delay == 2
    assert plant.sources["line3"].kind == "opcua"


def test_a_good_file_reads_into_the_plant():
    plant, problems = parse_plant(GOOD)
    assert problems == []
    assert plant.assets["pump-1"].sampling_period == 0.5  # from its type
    assert plant.assets["pump-2"].sampling_period == 2.0  # its own
    assert plant.asset_types["pump"].sensors["flow_m3h"].on_missing == "score_without"
    assert plant.silent_after(plant.assets["pump-1"]) == 10.0


def test_every_problem_is_reported_with_its_line():
    text = GOOD.replace("sampling_period = 0.5", "sampling_period = 0.5\ncolour = 'red'")  # line 3
    text = text.replace('"ns=2;s=P2.F"', '"ns=2;s=P1.F"')  # pump-2's flow is pump-1's node (line 23)
    text = text.replace("range = [0, 150]", "range = [150, 0]")  # line 5
    text = text.replace('endpoint = "opc.tcp://127.0.0.1:4840/"', "endpoint = 4840")  # line 10
    assert problems_of(text) == [
        "plant.toml:3: unknown key 'colour' in [asset_types.pump] (known: alarm, model, sampling_period, sensors)",
        "plant.toml:5: asset_types.pump.sensors.temp_c.range must be [low, high] with low < high, got [150, 0]",
        "plant.toml:10: sources.line3.endpoint must be a non-empty string, got 4840",
        "plant.toml:23: opcua address ns=2;s=P1.F of source 'line3' is mapped twice: to pump-1.flow_m3h "
        "(line 15) and to pump-2.flow_m3h",
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("type = \"pump\"\nsource = \"line3\"\nmap", "type = \"fan\"\nsource = \"line3\"\nmap"),
         "plant.toml:12: asset 'pump-1' has type 'fan', which [asset_types] does not declare"),
        (('source = "line3"\nmap', 'source = "line4"\nmap'),
         "plant.toml:13: asset 'pump-1' names source 'line4', which [sources] does not declare"),
        (('flow_m3h = "ns=2;s=P2.F"', 'flow = "ns=2;s=P2.F"'),
         "plant.toml:20: asset 'pump-2': sensor 'flow_m3h' of type 'pump' is not mapped"),
        (('flow_m3h = "ns=2;s=P2.F"', 'flow_m3h = "ns=2;s=P2.F"\nspeed = "ns=2;s=P2.S"'),
         "plant.toml:23: asset 'pump-2' maps 'speed', which type 'pump' does not declare"),
        (('"ns=2;s=P2.T"', '"P2.T"'),
         "plant.toml:21: assets.pump-2.map.temp_c: 'P2.T' is not an OPC UA node id (write for example "
         "ns=2;s=Pump1.Temp or ns=2;i=1001)"),
        (('kind = "opcua"', 'kind = "profinet"'),
         "plant.toml:8: source 'line3' has kind 'profinet': one of ('opcua', 'mqtt', 'modbus', 'sparkplug')"),
        (('on_missing = "score_without"', 'on_missing = "interpolate"'),
         "plant.toml:5: asset_types.pump.sensors.flow_m3h.on_missing must be one of 'reject', 'score_without', "
         "got 'interpolate'"),
        (("[assets.pump-2]", "[assets.pump-2]\n[assets.pump-2]"),
         "plant.toml:17: not valid TOML: Cannot declare ('assets', 'pump-2') twice (at line 17, column 15)"),
        (("[assets.pump-1]", "[asset.pump-1]"), "plant.toml:11: unknown table or key 'asset' (known: service, "
         "asset_types, sources, assets, sinks)"),
    ],
)  # fmt: skip
def test_each_kind_of_problem_names_its_line(edit, expected):
    old, new = edit
    assert old in GOOD
    assert expected in problems_of(GOOD.replace(old, new, 1))


def test_load_plant_raises_with_every_problem(tmp_path):
    path = tmp_path / "plant.toml"
    path.write_text(GOOD.replace("sampling_period = 2", "sampling_period = -2\nfoo = 1"))
    with pytest.raises(InvalidInputError) as info:
        load_plant(path)
    message = str(info.value)
    assert "has 2 problem(s)" in message
    assert f"{path}:19: assets.pump-2.sampling_period must be positive, got -2" in message
    assert f"{path}:20: unknown key 'foo' in [assets.pump-2]" in message
    assert [p.line for p in check_plant(path)] == [19, 20]


def test_config_init_writes_the_example_and_check_accepts_it(tmp_path, capsys):
    path = tmp_path / "plant.toml"
    assert main(["config", "init", str(path)]) == 0
    assert path.read_text() == EXAMPLE
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out.endswith(f"{path}: ok\n")
    assert main(["config", "init", str(path)]) == 2  # never overwrites without --force
    assert "pass --force" in capsys.readouterr().err


def test_config_check_prints_each_problem_and_exits_2(tmp_path, capsys):
    path = tmp_path / "plant.toml"
    path.write_text(GOOD.replace('type = "pump"\nsource', "type = 3\nsource", 1))
    assert main(["config", "check", str(path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}:12: assets.pump-1.type must be a non-empty string, got 3", f"{path}: 1 problem(s)"]


def test_key_lines_follow_headers_arrays_inline_tables_and_multiline_values():
    text = """\
# a comment with key = 1
[a]
x = 1
y = [
  "not = a key",
]
z = \"\"\"
w = 2
\"\"\"
[[b]]
k = { p = 1, q = "s#t" }
[[b]]
k = 2
"quoted key".v = 3
"""
    lines = key_lines(text)
    assert lines[("a", "x")] == 3
    assert lines[("a", "y")] == 4
    assert lines[("a", "z")] == 7
    assert ("a", "w") not in lines and ("a", "not") not in lines
    assert lines[("b", 0, "k", "q")] == 11
    assert lines[("b", 1, "k")] == 13
    assert lines[("b", 1, "quoted key", "v")] == 14


MIXED = """\
[asset_types.pump.sensors]
temp_c = { unit = "degC" }
flow_m3h = { unit = "m3/h" }

[sources.drives]
kind = "modbus"
host = "127.0.0.1"
port = 5020

[sources.edge]
kind = "sparkplug"
url = "mqtt://127.0.0.1:1883"
group = "line3"

[assets.pump-1]
type = "pump"
source = "drives"
sampling_period = 0.5
map.temp_c = { register = 100, type = "float32", word_order = "little" }
map.flow_m3h = { register = 102, table = "input", scale = 0.1 }

[assets.pump-2]
type = "pump"
source = "edge"
edge_node = "node-1"
device = "pump-2"
map = { temp_c = "Pump/Temperature", flow_m3h = "Pump/Flow" }
"""


def test_modbus_and_sparkplug_assets_are_checked_and_become_sources():
    from vigil.plant.deploy import apply_plant
    from vigil.service.server import ServiceConfig

    plant, problems = parse_plant(MIXED)
    assert problems == []
    assert plant.assets["pump-2"].edge_node == "node-1"
    config = apply_plant(plant, ServiceConfig(registry=plant.resolve("registry")))
    assert [name for name, _ in config.sources] == ["drives", "edge"]
    assert config.routes == [("pump-1", "pump"), ("pump-2", "pump")]
    modbus = dict(config.sources)["drives"](object())
    (device,) = modbus.options.devices
    assert (device.asset, device.port, device.poll_period) == ("pump-1", 5020, 0.5)
    assert device.sensors["temp_c"].type == "float32"
    assert device.sensors["flow_m3h"].table == "input"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('type = "float32"', 'type = "int64"'), "plant.toml:19: assets.pump-1.map.temp_c: Modbus register 100: type"),
        (('register = 102, table = "input"', "register = 100"),
         "plant.toml:20: modbus address 1:holding:100 of source 'drives' is mapped twice"),
        (('edge_node = "node-1"\n', ""),
         "plant.toml:22: asset 'pump-2' on Sparkplug B source 'edge' needs 'edge_node'"),
        (('host = "127.0.0.1"\n', ""), "plant.toml:5: source 'drives' of kind 'modbus' needs 'host'"),
    ],
)  # fmt: skip
def test_modbus_and_sparkplug_problems_name_their_line(edit, expected):
    old, new = edit
    assert old in MIXED
    found = problems_of(MIXED.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_a_kafka_sink_is_checked_key_by_key_with_its_line():
    text = GOOD + '\n[sinks.kafka]\nalert_topic = "a"\nbatch = 3\n[sinks.kafka.options]\n"linger.ms" = [1]\n'
    problems = problems_of(text)
    start = len(GOOD.splitlines()) + 2
    assert f"plant.toml:{start}: [sinks.kafka] needs bootstrap (the brokers, host:port[,host:port...])" in problems
    assert any(p.startswith(f"plant.toml:{start + 2}: unknown key 'batch' in [sinks.kafka]") for p in problems)
    assert f"plant.toml:{start + 4}: sinks.kafka.options.linger.ms must be a string, number or boolean, got [1]" in (
        problems
    )


def test_a_kafka_sink_reaches_the_service_config():
    from vigil.plant.deploy import apply_plant
    from vigil.service.server import ServiceConfig

    text = GOOD + '\n[sinks.kafka]\nbootstrap = "k1:9092"\n[sinks.kafka.options]\n"acks" = "all"\n'
    plant, problems = parse_plant(text)
    assert problems == []
    config = apply_plant(plant, ServiceConfig(registry=plant.resolve("registry")))
    assert config.kafka_sink == {"bootstrap": "k1:9092", "kafka_options": {"acks": "all"}}
