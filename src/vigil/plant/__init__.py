"""The plant file: assets, sensors, sources, models, sinks and alarm rules of one plant, in TOML."""

from vigil.plant.example import EXAMPLE
from vigil.plant.schema import Asset, AssetType, Plant, PlantSource, Problem, check_plant, load_plant, parse_plant

__all__ = [
    "EXAMPLE",
    "Asset",
    "AssetType",
    "Plant",
    "PlantSource",
    "Problem",
    "check_plant",
    "load_plant",
    "parse_plant",
]
