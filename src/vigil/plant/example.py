"""The commented example plant file that ``vigil config init`` writes."""

from __future__ import annotations

__all__ = ["EXAMPLE"]

#: A plant file with every table, each key explained; ``vigil config check`` accepts it as it is.
EXAMPLE = """\
# Vigil plant file: the assets of a plant, their sensors, where their data comes from, which model scores
# them, where alerts go. Check it with `vigil config check plant.toml`; run it with
# `vigil serve --config plant.toml` (command-line options override what is written here).
# Relative paths are relative to this file's folder.

[service]
http = "127.0.0.1:8080"              # where the REST API and the dashboard listen
store = "sqlite:///alerts.db"        # or postgresql://USER@HOST/DB
registry = "vigil-registry"          # the model registry folder
# token_file = "tokens.txt"          # API tokens: lines of "read TOKEN" or "write TOKEN"
device_gap = 30                      # seconds without anomaly that close an alert
target_far = 0.01                    # per-device false-alarm rate after operator feedback
silent_after = 10                    # seconds without a record before a declared asset is reported silent

# One table per kind of asset. Its model scores every asset of the type; its sensors are the model's.
[asset_types.pump]
model = "models/pump"                # a folder written by `vigil fit`; omit when the registry already serves "pump"
sampling_period = 1.0                # seconds between an asset's records (the OPC UA sampling interval)

[asset_types.pump.alarm]             # annunciation rules (ISA-18.2): raise when 2 of the last 3 readings are high,
on_delay = 2                         # clear after 5 quiet ones, with 5 % hysteresis
window = 3
off_delay = 5
deadband = 0.05
holdoff = 0

# Each sensor: its unit, its valid range, and what to do with a partial record:
#   on_missing      = "reject" (default: dead letter with the reason) or "score_without" (score with the other
#                     sensors where the model can: mahalanobis, online-zscore; otherwise a dead letter that
#                     says so)
#   on_out_of_range = "reject" (default: dead letter), "missing" (treated as missing) or "score" (scored,
#                     and the decision says so)
#   numeric_strings = true to read a reading sent as text ("29.8") as its number (default: refused)
[asset_types.pump.sensors.temp_c]
unit = "degC"
range = [-20, 150]

[asset_types.pump.sensors.pressure_bar]
unit = "bar"
range = [0, 16]
on_out_of_range = "missing"

[asset_types.pump.sensors.flow_m3h]
unit = "m3/h"
range = [0, 60]

[asset_types.pump.sensors.current_a]
unit = "A"
range = [0, 40]
numeric_strings = true

# Sources: where records come from.
[sources.line3]
kind = "opcua"                       # an OPC UA server, through data-change subscriptions
endpoint = "opc.tcp://127.0.0.1:4840/line3/"
# username = "vigil"
# password_file = "secrets/opcua-password"       # first line is the password
# security = "Basic256Sha256,SignAndEncrypt,certs/vigil.pem,certs/vigil-key.pem"
reconnect_min = 1                    # back-off between reconnection attempts, seconds
reconnect_max = 5                    # keeps a resumed stream within 10 s of the server being back

# [sources.broker]
# kind = "mqtt"                      # Vigil JSON records on MQTT; the topic level at "+" names the asset
# url = "mqtt://127.0.0.1:1883"
# topic = "plant/+/telemetry"

# [sources.drives]
# kind = "modbus"                    # Modbus TCP: each asset is polled every sampling period
# host = "10.0.0.7"
# port = 502
# ... and each asset's map: sensor = { register = 100, table = "holding", type = "float32", scale = 0.1,
#                                      word_order = "big" }
# [sources.edge]
# kind = "sparkplug"                 # MQTT Sparkplug B; each asset names edge_node = "..." (and device = "...")
# url = "mqtt://127.0.0.1:1883"
# group = "line3"
# ... and each asset's map: sensor = "Pump/Temperature" (the metric name)

# Assets: each has a type and a source, and maps every sensor of its type to where the source finds it.
[assets.pump-1]
type = "pump"
source = "line3"

[assets.pump-1.map]                  # sensor = OPC UA node id
temp_c = "ns=2;s=Pump1.Temperature"
pressure_bar = "ns=2;s=Pump1.Pressure"
flow_m3h = "ns=2;s=Pump1.Flow"
current_a = "ns=2;s=Pump1.Current"

[assets.pump-2]
type = "pump"
source = "line3"
map.temp_c = "ns=2;s=Pump2.Temperature"   # dotted keys work as well as a [map] table
map.pressure_bar = "ns=2;s=Pump2.Pressure"
map.flow_m3h = "ns=2;s=Pump2.Flow"
map.current_a = "ns=2;s=Pump2.Current"

[sinks]
# webhooks = ["https://ops.example.com/vigil"]   # receive every alert event as JSON
# alert_topic = "vigil/alerts"                   # published on the broker of the mqtt source
# dead_letter_topic = "vigil/dead-letters"
# [sinks.kafka]                                  # alert events and dead letters to Kafka as well
# bootstrap = "kafka1:9092,kafka2:9092"
# alert_topic = "vigil.alerts"
# dead_letter_topic = "vigil.dead-letters"
"""
