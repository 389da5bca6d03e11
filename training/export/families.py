"""The model families that can become the production model, each with its ONNX graph builder.

Importing this module fills the exporter registry (``training.export.registry``); it is the one list to
extend when a new family gets a graph builder. Everything that asks "can this model ship?" imports from
here, so the registrations are always in place.
"""

from __future__ import annotations

from training.export.ngram_graph import build_graph
from training.export.registry import (
    EXPORTERS,
    NoExporterError,
    exportable_families,
    exporter_for,
    is_exportable,
    register_exporter,
)
from training.modeling.text_model import TweetSentimentModel

register_exporter(TweetSentimentModel, build_graph)

__all__ = [
    "EXPORTERS",
    "NoExporterError",
    "exportable_families",
    "exporter_for",
    "is_exportable",
    "register_exporter",
]
