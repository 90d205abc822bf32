"""The name registry of feature-generator families."""

from __future__ import annotations

from alphafactory.features._base import FeatureGenerator
from alphafactory.features._candlestick import CandlestickFeatures
from alphafactory.features._market_structure import MarketStructureFeatures
from alphafactory.features._technical import TechnicalFeatures
from alphafactory.features._temporal import TemporalFeatures
from alphafactory.features._volatility import VolatilityFeatures

FEATURE_GENERATORS: dict[str, FeatureGenerator] = {
    generator.name: generator
    for generator in (
        CandlestickFeatures(),
        TechnicalFeatures(),
        TemporalFeatures(),
        MarketStructureFeatures(),
        VolatilityFeatures(),
    )
}
