"""Which ONNX graph builder turns which model family into the file serving loads.

A model family ships only if it has a graph builder (a function: fitted model -> ``onnx.ModelProto``
with the serving contract's input and outputs, no metadata). Families register their builder here, as
skl2onnx projects register a converter for their own estimator; ``Candidate.exportable``, the winner
rule and the ``export`` command all ask this registry, so adding a family touches no ``isinstance``.
``training.export.families`` holds the registrations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GraphBuilder = Callable[[Any], Any]  # fitted model -> onnx.ModelProto

# Model class -> its graph builder (subclasses of a registered class use the same builder).
EXPORTERS: dict[type, GraphBuilder] = {}


class NoExporterError(TypeError):
    """The model's family has no registered graph builder: it cannot become the production model."""


def register_exporter(model_class: type, builder: GraphBuilder) -> GraphBuilder:
    """Make ``builder`` the graph builder of ``model_class`` (and its subclasses)."""
    EXPORTERS[model_class] = builder
    return builder


def _registered_class(model_class: type) -> type | None:
    return next((cls for cls in model_class.__mro__ if cls in EXPORTERS), None)


def is_exportable(model: object) -> bool:
    """Whether a model (or a model class) has a graph builder."""
    return _registered_class(model if isinstance(model, type) else type(model)) is not None


def exporter_for(model: object) -> GraphBuilder:
    """The graph builder of ``model``'s family; ``NoExporterError`` names the families that have one."""
    registered = _registered_class(type(model))
    if registered is None:
        raise NoExporterError(
            f"a {type(model).__name__} cannot be exported to ONNX; exportable families: "
            + ", ".join(exportable_families())
        )
    return EXPORTERS[registered]


def exportable_families() -> list[str]:
    """Names of the model classes that have a graph builder."""
    return sorted(cls.__name__ for cls in EXPORTERS)
